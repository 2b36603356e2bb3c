//! One SFTP session on the user's side, from its first packet to its close.
//!
//! Gatehouse terminates SFTP here and speaks SFTP to each target itself ([`super::remote`]):
//! every request is read, decoded exactly ([`super::wire`]), its path normalised
//! ([`super::path`]), resolved on the target and checked against the role's rules
//! ([`super::requests`]) before anything is sent on. Reads and writes on a handle the bastion
//! issued are relayed without waiting, many at a time, so a transfer runs at the speed of the
//! link; everything with a path waits for its check. A refusal is an SFTP error with its reason
//! (also written to the client's stderr, which `sftp` and `scp` show), never a closed session.
//!
//! The session ends when the client leaves, when any grant it uses ends (revoked, expired, the
//! policy no longer gives it, the bastion shutting down), or when its transcript cannot be
//! written; open transfers are then recorded as interrupted and every target's index row
//! completed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use russh::server::Msg;
use russh::{ChannelReadHalf, ChannelWriteHalf};
use russh_sftp::protocol::{FileAttributes, FileMode, Packet, StatusCode, Version};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};

use super::handles::{Handles, Opened};
use super::link::{Lapsed, Link, OpenError, Opener};
use super::path::TargetPath;
use super::transcript::{self, Entry, Outcome};
use super::wire;
use crate::bastion::Bastion;
use crate::events::{Event, EventKind};
use crate::outcome::EndClass;
use crate::server::auth::Identity;
use crate::server::bridge::EXIT_GRANT_ENDED;
use crate::server::ends::SessionEnds;

/// Requests relayed to targets and not yet answered to the client, per session: bounds what a
/// client that stops reading its replies can make the bastion hold.
const IN_FLIGHT: usize = 256;

/// Replies waiting for the client to read them before the next request is read: a client that
/// sends requests without reading what comes back is made to wait, not buffered for.
const MAX_QUEUED: usize = 512;

/// Most targets one file session may use at once.
const MAX_LINKS: usize = 16;

/// What the client-side writer sends.
pub(super) enum ToClient {
    /// An SFTP packet, with the slot it held while in flight.
    Packet(Bytes, Option<OwnedSemaphorePermit>),
    /// A line for the client's stderr.
    Notice(String),
}

/// Sends replies to the client, in the order they are ready.
#[derive(Clone)]
pub(super) struct Out {
    tx: mpsc::UnboundedSender<ToClient>,
    slots: Arc<Semaphore>,
    backlog: Arc<Backlog>,
}

/// How many replies wait to be written to the client.
#[derive(Default)]
struct Backlog {
    queued: AtomicUsize,
    drained: Notify,
}

impl Out {
    /// Sends `packet`, answering request `id`.
    pub(super) fn reply(&self, id: u32, packet: Packet) {
        self.reply_held(id, packet, None);
    }

    /// Sends `packet`, answering request `id`, and frees `slot` once it is written.
    pub(super) fn reply_held(&self, id: u32, packet: Packet, slot: Option<OwnedSemaphorePermit>) {
        match wire::encode(with_id(packet, id)) {
            Ok(bytes) => {
                self.backlog.queued.fetch_add(1, Ordering::SeqCst);
                let _ = self.tx.send(ToClient::Packet(bytes, slot));
            }
            Err(e) => tracing::error!(error = %e, "an SFTP reply could not be encoded"),
        }
    }

    /// Answers request `id` with a status.
    pub(super) fn status(&self, id: u32, code: StatusCode, message: impl Into<String>) {
        self.reply(id, wire::status(id, code, message));
    }

    /// Writes a line on the client's stderr.
    pub(super) fn notice(&self, line: String) {
        let _ = self.tx.send(ToClient::Notice(line));
    }

    /// Waits while more than [`MAX_QUEUED`] replies wait for the client.
    async fn caught_up(&self) {
        loop {
            let drained = self.backlog.drained.notified();
            if self.backlog.queued.load(Ordering::SeqCst) <= MAX_QUEUED {
                return;
            }
            drained.await;
        }
    }

    /// A slot for one relayed request; waits while [`IN_FLIGHT`] are out.
    pub(super) async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().acquire_owned().await.ok()
    }
}

/// `packet` answering request `id` instead of the target's request id.
fn with_id(mut packet: Packet, id: u32) -> Packet {
    match &mut packet {
        Packet::Status(p) => p.id = id,
        Packet::Handle(p) => p.id = id,
        Packet::Data(p) => p.id = id,
        Packet::Name(p) => p.id = id,
        Packet::Attrs(p) => p.id = id,
        Packet::ExtendedReply(p) => p.id = id,
        _ => {}
    }
    packet
}

/// Why the session must end now.
pub(super) struct Fault(pub String);

/// The state of one file session.
pub(super) struct FileSession {
    pub(super) bastion: Arc<Bastion>,
    pub(super) identity: Arc<Identity>,
    pub(super) ends: Arc<SessionEnds>,
    pub(super) links: HashMap<String, Arc<Link>>,
    pub(super) handles: Handles,
    pub(super) out: Out,
    pub(super) lapsed: mpsc::UnboundedSender<Lapsed>,
}

/// Serves SFTP on a session channel whose `sftp` subsystem request was accepted.
pub async fn serve(
    bastion: Arc<Bastion>,
    identity: Arc<Identity>,
    mut read: ChannelReadHalf,
    write: ChannelWriteHalf<Msg>,
    ends: Arc<SessionEnds>,
) {
    let write = Arc::new(write);
    let (tx, rx) = mpsc::unbounded_channel();
    let backlog: Arc<Backlog> = Arc::default();
    let writer = tokio::spawn(write_to_client(write.clone(), rx, backlog.clone()));
    let (lapsed, mut lapsed_rx) = mpsc::unbounded_channel::<Lapsed>();
    let mut session = FileSession {
        bastion,
        identity,
        ends,
        links: HashMap::new(),
        handles: Handles::default(),
        out: Out {
            tx,
            slots: Arc::new(Semaphore::new(IN_FLIGHT)),
            backlog,
        },
        lapsed,
    };
    let mut reader = read.make_reader();
    let closed: Option<(String, EndClass)> = loop {
        let out = session.out.clone();
        tokio::select! {
            () = out.caught_up() => {}
            Some(l) = lapsed_rx.recv() => break Some((l.end.message, l.end.class)),
        }
        let frame = tokio::select! {
            frame = wire::read_frame(&mut reader) => frame,
            Some(l) = lapsed_rx.recv() => break Some((l.end.message, l.end.class)),
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break None,
            Err(e) => {
                break Some((
                    format!("the client broke the SFTP protocol: {e}"),
                    EndClass::Other,
                ));
            }
        };
        tokio::select! {
            result = session.dispatch(frame) => {
                if let Err(Fault(why)) = result {
                    break Some((why, EndClass::Other));
                }
            }
            Some(l) = lapsed_rx.recv() => break Some((l.end.message, l.end.class)),
        }
    };
    session.finish(closed.clone()).await;
    let out = session.out.clone();
    if let Some((why, _)) = &closed {
        out.notice(format!("gatehouse: {why}; the file session is closed\r\n"));
    }
    drop(session);
    drop(out);
    // The writer ends once every sender is gone (the last replies of relayed requests too).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
    // scp judges the transfer by ssh's exit status, which is this.
    let status = if closed.is_some() {
        EXIT_GRANT_ENDED
    } else {
        0
    };
    let _ = write.exit_status(status).await;
    let _ = write.eof().await;
    let _ = write.close().await;
}

/// Writes replies and notices to the client until the session drops its senders.
async fn write_to_client(
    write: Arc<ChannelWriteHalf<Msg>>,
    mut rx: mpsc::UnboundedReceiver<ToClient>,
    backlog: Arc<Backlog>,
) {
    let mut data = write.make_writer();
    // Once the client cannot be written to, what is left is still counted off (and dropped),
    // so that nothing waits on a backlog that will never drain.
    let mut broken = false;
    while let Some(next) = rx.recv().await {
        match next {
            ToClient::Packet(bytes, slot) => {
                if !broken {
                    broken = data.write_all(&bytes).await.is_err();
                }
                backlog.queued.fetch_sub(1, Ordering::SeqCst);
                backlog.drained.notify_waiters();
                drop(slot);
            }
            ToClient::Notice(_) if broken => {}
            ToClient::Notice(line) => {
                let _ = data.flush().await;
                let _ = write.extended_data_bytes(1, line.into_bytes()).await;
            }
        }
    }
    let _ = data.flush().await;
}

impl FileSession {
    /// Answers one request from the client. `Err` ends the session.
    async fn dispatch(&mut self, frame: Bytes) -> Result<(), Fault> {
        let id = wire::request_id(&frame);
        let packet = match wire::decode_exact(&frame) {
            Ok(packet) => packet,
            Err(e) => {
                let Some(id) = id else {
                    return Err(Fault(format!("the client broke the SFTP protocol: {e}")));
                };
                let why = format!("the request was refused: {e}");
                self.refuse_outside(id, "request", "", why);
                return Ok(());
            }
        };
        self.answer(packet).await
    }

    /// The link to the target `at` names, opened now if need be. `Err` is the answer the
    /// client gets (a refusal is already reported).
    pub(super) async fn link(
        &mut self,
        at: &TargetPath,
    ) -> Result<Arc<Link>, (StatusCode, String)> {
        let key = at.prefix();
        if let Some(link) = self.links.get(&key) {
            if !link.remote.is_gone() {
                return Ok(link.clone());
            }
            let gone = self.links.remove(&key).expect("just seen");
            gone.finish(
                &self.bastion,
                Some("the target ended the file session".into()),
                EndClass::Other,
            )
            .await;
        }
        if self.links.len() >= MAX_LINKS {
            return Err((
                StatusCode::Failure,
                format!("gatehouse: at most {MAX_LINKS} targets per file session"),
            ));
        }
        let opener = Opener {
            bastion: &self.bastion,
            identity: &self.identity,
            ends: &self.ends,
            lapsed: &self.lapsed,
        };
        match opener.open(&at.target, at.role.as_deref()).await {
            Ok(link) => {
                let link = Arc::new(link);
                self.links.insert(key, link.clone());
                Ok(link)
            }
            Err(OpenError::Denied(denial)) => {
                self.bastion.events.emit(Event {
                    user: Some(self.identity.user.name.clone()),
                    target: Some(at.target.clone()),
                    role: at.role.clone(),
                    reason: Some(denial.reason.clone()),
                    denial: Some(denial.class),
                    detail: Some(serde_json::json!({ "kind": "files" })),
                    ..Event::new(EventKind::SessionDenied)
                });
                let mut line = format!("gatehouse: denied: {}", denial.reason);
                if let Some(hint) = &denial.hint {
                    line.push_str(&format!("\r\nhint: {hint}"));
                }
                self.out.notice(format!("{line}\r\n"));
                Err((StatusCode::PermissionDenied, line))
            }
            Err(OpenError::Target(e)) => {
                let line = format!("gatehouse: target {}: {e}", at.target);
                self.out.notice(format!("{line}\r\n"));
                Err((StatusCode::Failure, line))
            }
        }
    }

    /// The targets listed at the root: those the user holds a live grant for, of a role that
    /// allows file transfer and still covers them.
    pub(super) async fn root_entries(&self) -> Result<Vec<String>, String> {
        let policy = self.bastion.policy();
        let Some(user) = policy.user(&self.identity.user.name) else {
            return Ok(Vec::new());
        };
        let now = crate::grants::now();
        let held = self
            .bastion
            .grants
            .live_for_user(&user.name, now)
            .await
            .map_err(|e| {
                self.bastion
                    .store_unavailable("grants cannot be listed now", &e)
            })?;
        let mut names = BTreeSet::new();
        for grant in held.iter().filter(|g| g.is_live(now)) {
            let Some(role) = policy.role(&grant.role) else {
                continue;
            };
            if role.files.is_none() || !role.has_member(user) {
                continue;
            }
            for target in policy.targets_of(role).filter(|t| grant.covers(&t.name)) {
                names.insert(target.name.clone());
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Refuses a request before it reached any target (its path names none, or it is malformed),
    /// with an audit line.
    pub(super) fn refuse_outside(&self, id: u32, op: &'static str, path: &str, why: String) {
        transcript::refused_outside(
            &self.bastion.events,
            &self.identity.user.name,
            &Entry::new(op, path, Outcome::Denied(why.clone())),
        );
        self.out.notice(format!("gatehouse: denied: {why}\r\n"));
        self.out.status(
            id,
            StatusCode::PermissionDenied,
            format!("gatehouse: denied: {why}"),
        );
    }

    /// Records `entry` in `link`'s transcript; a transcript that cannot be written ends the
    /// session.
    pub(super) async fn record(&self, link: &Link, entry: Entry) -> Result<(), Fault> {
        link.transcript.record(entry).await.map_err(|e| {
            Fault(
                self.bastion
                    .store_unavailable("the transfer transcript cannot be written", &e),
            )
        })
    }

    /// Ends the session: open transfers are recorded as interrupted (with `closed`'s reason, or
    /// as the client leaving), and every target's index row is completed.
    async fn finish(&mut self, closed: Option<(String, EndClass)>) {
        let why = closed
            .as_ref()
            .map(|(why, _)| why.clone())
            .unwrap_or_else(|| "the client left".into());
        for opened in self.handles.drain() {
            if let Opened::File {
                link,
                path,
                mode,
                traffic,
                ..
            } = opened
            {
                let entry = super::requests::transfer_entry(
                    &path,
                    mode,
                    &traffic,
                    Outcome::Interrupted(why.clone()),
                );
                if let Err(e) = link.transcript.record(entry).await {
                    tracing::error!(session = %link.session_id, error = %e, "an interrupted transfer could not be indexed");
                }
            }
        }
        let (reason, class) = match closed {
            Some((why, class)) => (Some(why), class),
            None => (None, EndClass::Normal),
        };
        for (_, link) in self.links.drain() {
            link.finish(&self.bastion, reason.clone(), class).await;
        }
    }
}

/// The attributes of a directory the bastion shows itself (the root and its target entries).
pub(super) fn directory_attrs() -> FileAttributes {
    let mut attrs = FileAttributes::dummy();
    attrs.permissions = Some(0o555 | FileMode::DIR.bits());
    attrs
}

/// The `VERSION` reply: SFTP version 3, no extensions (none is offered that the checks do not
/// cover).
pub(super) fn version() -> Packet {
    Packet::Version(Version::new())
}
