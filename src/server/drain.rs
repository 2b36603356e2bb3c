//! Shutting down without losing evidence (SIGTERM).
//!
//! The listener is closed first, so nothing new arrives. Live sessions are told on their
//! terminal and given `[limits] shutdown_grace` to finish; those still running then are closed
//! the way a revoked grant closes them, which writes each session's end to the index and its
//! `session.ended` line to the audit log. Only when every session channel has finished are the
//! remaining connections disconnected, and only then does `serve` return and flush the audit log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info};

use super::connection::ChannelActivity;
use super::ends::{SessionEnds, UNFINISHED_REASON};
use crate::bastion::Bastion;
use crate::events::Event;
use crate::grants::watch::Shutdown;
use crate::store::sessions::SessionEnd;

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    draining: bool,
    channels: usize,
}

/// The bastion-wide count of session channels in progress, and the live connections.
#[derive(Default)]
pub struct Drain {
    counts: watch::Sender<Counts>,
    connections: Mutex<HashMap<u64, (russh::server::Handle, Arc<super::connection::LoginOutcome>)>>,
    next_id: AtomicU64,
    /// Indexed sessions whose end is not written yet.
    pub ends: Arc<SessionEnds>,
}

/// A session channel in progress; counted until dropped (even when its task panics).
pub struct ChannelTask {
    drain: Arc<Drain>,
    activity: Arc<ChannelActivity>,
}

impl Drop for ChannelTask {
    fn drop(&mut self) {
        self.activity.finished();
        self.drain
            .counts
            .send_modify(|c| c.channels = c.channels.saturating_sub(1));
    }
}

/// A connection registered for the final disconnect; unregistered when dropped.
pub struct Registered {
    drain: Arc<Drain>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.drain
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl Drain {
    /// Nothing running yet.
    pub fn new() -> Arc<Drain> {
        Arc::new(Drain::default())
    }

    /// Counts a new session channel on a connection, or refuses it (`None`) once shutting down.
    pub fn start_channel(self: &Arc<Self>, activity: &Arc<ChannelActivity>) -> Option<ChannelTask> {
        let mut admitted = false;
        self.counts.send_if_modified(|c| {
            if c.draining {
                return false;
            }
            c.channels += 1;
            admitted = true;
            true
        });
        if !admitted {
            return None;
        }
        activity.started();
        Some(ChannelTask {
            drain: self.clone(),
            activity: activity.clone(),
        })
    }

    /// Session channels in progress now.
    pub fn channels(&self) -> usize {
        self.counts.borrow().channels
    }

    /// Registers a connection so that the end of the drain can disconnect it.
    pub fn register(
        self: &Arc<Self>,
        handle: russh::server::Handle,
        outcome: Arc<super::connection::LoginOutcome>,
    ) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (handle, outcome));
        Registered {
            drain: self.clone(),
            id,
        }
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Refuses new session channels from now on.
    fn begin(&self) {
        self.counts.send_modify(|c| c.draining = true);
    }

    /// Waits until no session channel is in progress, at most `limit`; whether they all ended.
    async fn settled(&self, limit: Duration) -> bool {
        let mut counts = self.counts.subscribe();
        tokio::time::timeout(limit, counts.wait_for(|c| c.channels == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Disconnects every connection still open, and waits at most `limit` for them to go.
    async fn disconnect_all(&self, text: &str, limit: Duration) {
        let open: Vec<_> = self
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for (handle, outcome) in open {
            outcome.closed_by_bastion();
            let _ = handle
                .disconnect(
                    russh::Disconnect::ByApplication,
                    text.to_owned(),
                    "en".into(),
                )
                .await;
        }
        self.connections_gone(limit).await;
    }

    /// Waits until no connection is open, at most `limit`.
    async fn connections_gone(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// How long connections whose sessions have all ended get to close by themselves before they
/// are disconnected. An OpenSSH client that reads its last session's exit status and the
/// disconnect in one go reports the disconnect (exit 255) instead of the session's status;
/// left a moment, it closes the connection itself once its last channel is closed.
const CLIENT_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// How long closed sessions get to write their ends: a session still setting up may be waiting
/// for a target's start-up slot and its connect timeout before it notices that it was closed.
fn close_bound(bastion: &Bastion) -> Duration {
    bastion.config.upstream.connect_timeout
        + bastion.config.upstream.startup_wait
        + Duration::from_secs(10)
}

/// How long the drain waits for the index to take one unfinished session's end.
const INDEX_WAIT: Duration = Duration::from_secs(5);

/// Writes the end of every session that did not write its own within the close bound (its
/// recording stuck on a frozen disk, say): end time and reason [`UNFINISHED_REASON`], no
/// recording hash, and its `session.ended` line. A session that resumes later writes nothing.
async fn write_unfinished_ends(bastion: &Bastion, drain: &Drain) {
    let unfinished = drain.ends.claim_unfinished();
    error!(
        sessions = drain.channels(),
        unfinished = unfinished.len(),
        "sessions did not finish closing; writing their ends without a recording hash"
    );
    for (id, ended) in unfinished {
        let end = SessionEnd {
            ended_at: crate::grants::now(),
            end_reason: Some(UNFINISHED_REASON.to_owned()),
            ..SessionEnd::default()
        };
        match tokio::time::timeout(INDEX_WAIT, bastion.sessions.ended(&id, &end)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                error!(session = %id, error = %e, "the session index could not be completed")
            }
            Err(_) => {
                error!(session = %id, "the session index did not answer; its end is only in the audit log")
            }
        }
        bastion.events.emit(Event {
            reason: Some(UNFINISHED_REASON.to_owned()),
            detail: Some(serde_json::json!({ "recording_finished": false })),
            ..ended
        });
    }
}

/// Drains the bastion after the listener has been closed; see the module documentation.
/// `hurry` (a second signal) cuts the grace time short: the sessions are closed at once, with
/// their ends recorded all the same.
pub async fn run(bastion: &Bastion, drain: &Drain, hurry: impl std::future::Future<Output = ()>) {
    let grace = bastion.config.limits.shutdown_grace;
    drain.begin();
    info!(
        sessions = drain.channels(),
        connections = drain.connections(),
        grace = %crate::duration::format(grace),
        "shutting down: no new connections or sessions; live sessions have the grace time to finish"
    );
    let mut settled = drain.channels() == 0;
    if !settled && !grace.is_zero() {
        bastion.watch.shut_down(Shutdown::Notice(format!(
            "the bastion is shutting down; this session will be closed in {}",
            crate::duration::format(grace)
        )));
        tokio::select! {
            done = drain.settled(grace) => settled = done,
            () = hurry => info!("asked again: not waiting for the rest of the grace time"),
        }
    }
    if !settled {
        info!(
            sessions = drain.channels(),
            "closing the sessions still running"
        );
        bastion
            .watch
            .shut_down(Shutdown::Close("the bastion is shutting down".to_owned()));
        if !drain.settled(close_bound(bastion)).await {
            write_unfinished_ends(bastion, drain).await;
        }
    }
    drain.connections_gone(CLIENT_CLOSE_WAIT).await;
    drain
        .disconnect_all("the bastion is shutting down", Duration::from_secs(5))
        .await;
    info!("all sessions and connections closed");
}
