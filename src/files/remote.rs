//! The SFTP client side: one SFTP session on one target, carrying requests in the order they
//! are made and handing each reply to whoever asked.
//!
//! Requests are written in the order [`Remote::call`] is called (each call waits for its turn on
//! a bounded queue), so the target sees a client's requests in the order the client sent them;
//! replies are matched by request id, so many reads and writes can be in flight at once. When
//! the target goes away, every request still waiting is answered with [`Gone`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use russh_sftp::protocol::{Init, Packet};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::wire::{self, WireError};

/// The target's SFTP session ended; the text says how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Gone(pub String);

/// What to do with a reply.
pub type OnReply = Box<dyn FnOnce(Result<Packet, Gone>) + Send>;

#[derive(Default)]
struct Waiting {
    next_id: u32,
    replies: HashMap<u32, OnReply>,
    gone: Option<Gone>,
}

impl Waiting {
    /// Ends the session: every waiting request is answered with `why`.
    fn end(&mut self, why: Gone) -> Vec<OnReply> {
        self.gone.get_or_insert(why);
        self.replies.drain().map(|(_, r)| r).collect()
    }
}

/// One SFTP session on a target.
pub struct Remote {
    queue: mpsc::Sender<Bytes>,
    waiting: Arc<Mutex<Waiting>>,
    tasks: Vec<JoinHandle<()>>,
}

/// Requests queued for the target before the writer takes them; the queue's bound (and the
/// window of the SSH channel) keeps a fast client from piling up memory.
const QUEUE: usize = 64;

impl Remote {
    /// Starts SFTP (version 3) over the target's `sftp` subsystem channel, waiting at most
    /// `timeout` for its version.
    pub async fn start<R, W>(mut read: R, mut write: W, timeout: Duration) -> Result<Remote, Gone>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let lost = |e: WireError| Gone(format!("the target's SFTP server failed: {e}"));
        let handshake = async {
            let init = wire::encode(Packet::Init(Init::new())).map_err(lost)?;
            write.write_all(&init).await.map_err(|e| lost(e.into()))?;
            write.flush().await.map_err(|e| lost(e.into()))?;
            let frame = wire::read_frame(&mut read)
                .await
                .map_err(lost)?
                .ok_or_else(|| Gone("the target closed its SFTP server at once".into()))?;
            match wire::decode(&frame).map_err(lost)? {
                Packet::Version(v) if v.version >= 3 => Ok(()),
                Packet::Version(v) => Err(Gone(format!(
                    "the target speaks SFTP version {}, not 3",
                    v.version
                ))),
                _ => Err(Gone("the target's SFTP server did not start".into())),
            }
        };
        tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| {
                Gone(format!(
                    "the target's SFTP server did not answer within {timeout:?}"
                ))
            })??;
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let (queue, mut outgoing) = mpsc::channel::<Bytes>(QUEUE);
        let writer_waiting = waiting.clone();
        let writer = tokio::spawn(async move {
            while let Some(bytes) = outgoing.recv().await {
                if let Err(e) = write.write_all(&bytes).await {
                    fail(
                        &writer_waiting,
                        Gone(format!("the connection to the target failed: {e}")),
                    );
                    return;
                }
            }
            let _ = write.shutdown().await;
        });
        let reader_waiting = waiting.clone();
        let reader = tokio::spawn(async move {
            let why = loop {
                let frame = match wire::read_frame(&mut read).await {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break Gone("the target ended the file session".into()),
                    Err(e) => break lost(e),
                };
                let Some(id) = wire::request_id(&frame) else {
                    break Gone("the target's SFTP server sent a packet out of turn".into());
                };
                let reply = match wire::decode(&frame) {
                    Ok(packet) => Ok(packet),
                    Err(e) => Err(lost(e)),
                };
                let waiter = lock(&reader_waiting).replies.remove(&id);
                match (waiter, reply) {
                    (Some(waiter), reply) => waiter(reply),
                    (None, _) => {
                        tracing::debug!(id, "a reply from the target that nobody waits for")
                    }
                }
            };
            fail(&reader_waiting, why);
        });
        Ok(Remote {
            queue,
            waiting,
            tasks: vec![writer, reader],
        })
    }

    /// Sends the request `make` builds with the request id it is given; `on_reply` gets the
    /// target's answer, or [`Gone`] (at once if the session has ended). Returns once the
    /// request is queued, in call order.
    pub async fn call(&self, make: impl FnOnce(u32) -> Packet, on_reply: OnReply) {
        let id = {
            let mut waiting = lock(&self.waiting);
            match waiting.gone.clone() {
                Some(gone) => {
                    drop(waiting);
                    on_reply(Err(gone));
                    return;
                }
                None => {
                    let id = waiting.next_id;
                    waiting.next_id = waiting.next_id.wrapping_add(1);
                    waiting.replies.insert(id, on_reply);
                    id
                }
            }
        };
        let sent = match wire::encode(make(id)) {
            Ok(bytes) => self.queue.send(bytes).await.is_ok(),
            Err(_) => false,
        };
        if !sent {
            let waiter = lock(&self.waiting).replies.remove(&id);
            if let Some(waiter) = waiter {
                waiter(Err(Gone(
                    "the request could not be sent to the target".into(),
                )));
            }
        }
    }

    /// Sends a request and waits for its answer.
    pub async fn ask(&self, make: impl FnOnce(u32) -> Packet) -> Result<Packet, Gone> {
        let (tx, rx) = oneshot::channel();
        self.call(
            make,
            Box::new(move |reply| {
                let _ = tx.send(reply);
            }),
        )
        .await;
        rx.await
            .unwrap_or_else(|_| Err(Gone("the target ended the file session".into())))
    }

    /// Whether the target's session has ended.
    pub fn is_gone(&self) -> bool {
        lock(&self.waiting).gone.is_some()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        fail(&self.waiting, Gone("the file session ended".into()));
    }
}

fn lock(waiting: &Mutex<Waiting>) -> std::sync::MutexGuard<'_, Waiting> {
    waiting.lock().unwrap_or_else(|p| p.into_inner())
}

/// Ends the session and answers every waiting request, outside the lock.
fn fail(waiting: &Mutex<Waiting>, why: Gone) {
    let waiters = lock(waiting).end(why.clone());
    for waiter in waiters {
        waiter(Err(why.clone()));
    }
}
