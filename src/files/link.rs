//! One target reached from a file session: decided, indexed, connected and watched like any
//! session.
//!
//! The first request that names a target decides access to it (`decide` with a file request:
//! a live grant of a role with `files`), registers it with the grant watch, confirms the grant
//! as just read, indexes it as a session of kind `files`, and opens the target's `sftp`
//! subsystem with the session's certificate (whose `force-command` is `internal-sftp`, so it
//! can do nothing else). When the grant ends, the watch says so on the session's `lapsed`
//! channel and the whole file session is closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

use super::remote::Remote;
use super::transcript::Transcript;
use crate::access::{self, Action, Denial, Permit, SessionRequest};
use crate::bastion::Bastion;
use crate::events::{Event, EventKind};
use crate::grants::watch::{GrantEnd, GrantLifetime, LifetimeEvent};
use crate::grants::{self, Timestamp};
use crate::outcome::{DenialClass, EndClass, Ending};
use crate::server::auth::Identity;
use crate::server::dial::{self, DialError, Dialer};
use crate::server::ends::{OpenEnd, SessionEnds};
use crate::store::sessions::{SessionEnd, SessionRecord, complete_in_background};

/// A grant ended under a running file session.
#[derive(Debug, Clone)]
pub struct Lapsed {
    /// The session (its index row) whose grant ended.
    pub session_id: String,
    /// Why, as the user reads it.
    pub end: GrantEnd,
}

/// Why a target could not be reached from the file session; the text is what the user reads.
#[derive(Debug)]
pub enum OpenError {
    /// Access was refused.
    Denied(Denial),
    /// The target could not be reached or refused the session.
    Target(String),
}

/// File bytes moved through one target link.
#[derive(Default)]
pub struct Counters {
    /// Written to the target (uploads).
    pub bytes_in: AtomicU64,
    /// Read from the target (downloads).
    pub bytes_out: AtomicU64,
}

/// One target in use by a file session.
pub struct Link {
    /// Under what it runs.
    pub permit: Permit,
    /// Its index row.
    pub session_id: String,
    /// The target's SFTP session.
    pub remote: Remote,
    /// Where its operations are recorded.
    pub transcript: Arc<Transcript>,
    /// File bytes moved.
    pub counters: Arc<Counters>,
    connection: russh::client::Handle<crate::upstream::HostVerifier>,
    open_end: OpenEnd,
    watcher: JoinHandle<()>,
}

/// What opening a link needs from its file session.
pub struct Opener<'a> {
    /// Shared state.
    pub bastion: &'a Arc<Bastion>,
    /// Who is asking.
    pub identity: &'a Identity,
    /// Where indexed sessions register their end.
    pub ends: &'a Arc<SessionEnds>,
    /// Where a grant's end is reported.
    pub lapsed: &'a mpsc::UnboundedSender<Lapsed>,
}

impl Opener<'_> {
    /// Decides, indexes and opens a file session on `target` (under `role` if named).
    pub async fn open(&self, target: &str, role: Option<&str>) -> Result<Link, OpenError> {
        let bastion = self.bastion;
        let denied = |class: DenialClass, why: String| OpenError::Denied(Denial::new(class, why));
        let policy = bastion.policy();
        let now = grants::now();
        let (user, held) = bastion
            .standing(self.identity, &policy, now)
            .await
            .map_err(OpenError::Denied)?;
        let request = SessionRequest {
            target: target.to_owned(),
            role: role.map(str::to_owned),
            action: Action::Files,
        };
        // Tied to the key the user logged in with, like any session: removing the key ends it.
        let permit = access::decide(&policy, &user, &held, &request, now)
            .map_err(OpenError::Denied)?
            .logged_in_with(self.identity.method.key_fingerprint());
        let session_id = uuid::Uuid::now_v7().to_string();
        let mut lifetime = GrantLifetime::new(&bastion.watch, &permit, &session_id, false, now);
        if let Err(lapse) = dial::confirm(bastion, &permit).await {
            return Err(denied(lapse.denial_class(), lapse.to_string()));
        }
        if let Err(why) = bastion.health.check() {
            return Err(denied(DenialClass::StoreUnavailable, why.to_string()));
        }
        let event = session_event(&permit, &session_id);
        bastion
            .sessions
            .started(&record(bastion, &permit, &session_id, now))
            .await
            .map_err(|e| {
                denied(
                    DenialClass::StoreUnavailable,
                    bastion.store_unavailable("the session cannot be indexed", &e),
                )
            })?;
        let open_end = self.ends.open(&session_id, event(EventKind::SessionEnded));
        let dialer = Dialer {
            bastion,
            session_id: &session_id,
            env: &[],
        };
        let failed = |why: String, class: EndClass| {
            end_unstarted(bastion, &permit, &session_id, &open_end, why, class)
        };
        let upstream = match dialer.open(&permit, None).await {
            Ok(upstream) => upstream,
            Err(DialError::Lapsed(lapse)) => {
                failed(format!("refused during setup: {lapse}"), EndClass::Refused);
                return Err(denied(lapse.denial_class(), lapse.to_string()));
            }
            Err(DialError::Target(e)) => {
                warn!(session = %session_id, target = %target, error = %e, "target unavailable");
                failed(
                    format!("target unavailable: {e}"),
                    EndClass::TargetUnavailable,
                );
                return Err(OpenError::Target(e));
            }
        };
        let early: Vec<u8> = upstream
            .early
            .iter()
            .filter_map(|m| match m {
                russh::ChannelMsg::Data { data } => Some(data.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        let (read, write) = tokio::io::split(upstream.channel.into_stream());
        let read = tokio::io::AsyncReadExt::chain(std::io::Cursor::new(early), read);
        let timeout = bastion.config.upstream.connect_timeout;
        let remote = match Remote::start(read, write, timeout).await {
            Ok(remote) => remote,
            Err(e) => {
                failed(
                    format!("target unavailable: {e}"),
                    EndClass::TargetUnavailable,
                );
                return Err(OpenError::Target(e.to_string()));
            }
        };
        open_end.started();
        bastion.events.emit(Event {
            detail: Some(serde_json::json!({ "kind": "files" })),
            ..event(EventKind::SessionStarted)
        });
        let lapsed = self.lapsed.clone();
        let watched = session_id.clone();
        let watcher = tokio::spawn(async move {
            loop {
                if let LifetimeEvent::End(end) = lifetime.next().await {
                    let _ = lapsed.send(Lapsed {
                        session_id: watched,
                        end,
                    });
                    return;
                }
            }
        });
        Ok(Link {
            transcript: Transcript::new(
                bastion.clone(),
                &session_id,
                event(EventKind::FileOperation),
            ),
            permit,
            session_id,
            remote,
            counters: Arc::default(),
            connection: upstream.connection,
            open_end,
            watcher,
        })
    }
}

impl Link {
    /// The session is over: closes the target's connection, completes the index row with the
    /// bytes moved and `reason`, and writes `session.ended`.
    pub async fn finish(&self, bastion: &Bastion, reason: Option<String>, class: EndClass) {
        self.watcher.abort();
        let _ = self
            .connection
            .disconnect(
                russh::Disconnect::ByApplication,
                "the file session ended",
                "en",
            )
            .await;
        if !self.open_end.claim() {
            return;
        }
        let end = SessionEnd {
            ended_at: grants::now(),
            bytes_in: self.counters.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.counters.bytes_out.load(Ordering::Relaxed),
            exit_status: None,
            end_reason: reason.clone(),
            sha256: None,
        };
        complete_in_background(
            bastion.sessions.clone(),
            self.session_id.clone(),
            end.clone(),
        );
        bastion.events.emit(Event {
            reason,
            detail: Some(serde_json::json!({
                "kind": "files",
                "bytes_in": end.bytes_in,
                "bytes_out": end.bytes_out,
            })),
            ending: Some(Ending {
                class,
                started: true,
            }),
            ..session_event(&self.permit, &self.session_id)(EventKind::SessionEnded)
        });
    }
}

/// The events of session `session_id` under `permit`, by kind.
fn session_event(permit: &Permit, session_id: &str) -> impl Fn(EventKind) -> Event + use<> {
    let base = Event {
        user: Some(permit.user().name.clone()),
        target: Some(permit.target().name.clone()),
        role: Some(permit.role().name.clone()),
        grant_id: Some(permit.grant_id()),
        session_id: Some(session_id.to_owned()),
        ..Event::default()
    };
    move |kind| Event {
        kind: Some(kind),
        ..base.clone()
    }
}

/// The index row of a file session.
fn record(bastion: &Bastion, permit: &Permit, session_id: &str, now: Timestamp) -> SessionRecord {
    SessionRecord {
        id: session_id.to_owned(),
        node: bastion.config.cluster.node_name.clone(),
        user: permit.user().name.clone(),
        target: permit.target().name.clone(),
        role: permit.role().name.clone(),
        grant_id: permit.grant_id(),
        kind: "files".into(),
        command: None,
        break_glass: permit.break_glass(),
        started_at: now,
        ended_at: None,
        bytes_in: None,
        bytes_out: None,
        exit_status: None,
        end_reason: None,
        recording: None,
        sha256: None,
    }
}

/// Ends the index row of a file session that never started on its target.
fn end_unstarted(
    bastion: &Bastion,
    permit: &Permit,
    session_id: &str,
    open_end: &OpenEnd,
    why: String,
    class: EndClass,
) {
    if !open_end.claim() {
        return;
    }
    let end = SessionEnd {
        ended_at: grants::now(),
        end_reason: Some(why.clone()),
        ..SessionEnd::default()
    };
    complete_in_background(bastion.sessions.clone(), session_id.to_owned(), end);
    bastion.events.emit(Event {
        reason: Some(why),
        ending: Some(Ending {
            class,
            started: false,
        }),
        ..session_event(permit, session_id)(EventKind::SessionEnded)
    });
}

impl Drop for Link {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}
