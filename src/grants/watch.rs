//! Live enforcement: a session runs only while its grant is active.
//!
//! Each session holds a [`GrantLifetime`]: it fires warnings before the end (interactive
//! sessions), fires at the exact expiry time, and fires at once when the grant is revoked. A
//! revocation made in this process reaches sessions directly through [`GrantWatch::end`]; one
//! made elsewhere (the operator CLI, another node) is found by [`spawn_poller`], which reads the
//! store's revision four times a second, and at once when the store pushes a change
//! (PostgreSQL's `NOTIFY`). Each successful read confirms this process's view of the grants;
//! a view left unconfirmed too long closes the sessions (see [`crate::cluster`]).
//!
//! Each session also registers the permit it runs under, so that a change of policy can find
//! the sessions it no longer allows and close them one by one ([`reevaluate`]).

mod reevaluate;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{debug, warn};

use super::store::GrantStore;
use super::{GrantState, Timestamp};
use crate::access::Permit;
use crate::outcome::EndClass;

pub use reevaluate::{ClosedSession, EndedGrant, Reevaluation, reevaluate};

/// How often other processes' changes are looked for.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Why a grant stopped letting sessions run: the message shown on the user's terminal, and
/// the class of end the session is counted under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantEnd {
    /// The message.
    pub message: String,
    /// The kind of end.
    pub class: EndClass,
}

impl GrantEnd {
    /// The end of grant `grant_id`, which ended in `state` (see [`end_message`]).
    pub fn grant(grant_id: i64, state: GrantState, by: Option<&str>, reason: Option<&str>) -> Self {
        GrantEnd {
            message: end_message(grant_id, state, by, reason),
            class: end_class(state),
        }
    }
}

/// The bastion is shutting down: what every live session is told, in two steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shutdown {
    /// Shown on interactive sessions' terminals; the session goes on for the grace time.
    Notice(String),
    /// The session must close now, with this reason.
    Close(String),
}

/// Sessions waiting on grants, by grant id, the sessions running in this process with the
/// permits they run under, and the bastion's shutdown, which every session watches.
#[derive(Default)]
pub struct GrantWatch {
    senders: Mutex<HashMap<i64, watch::Sender<Option<GrantEnd>>>>,
    shutdown: watch::Sender<Option<Shutdown>>,
    sessions: Mutex<HashMap<u64, Registered>>,
    next_session: AtomicU64,
    /// When the poller last read the store's revision: up to then, every revocation made
    /// elsewhere has been seen. `None` until the poller starts.
    confirmed: Mutex<Option<Instant>>,
}

/// One running session as the watch knows it.
struct Registered {
    permit: Permit,
    session_id: String,
    close: watch::Sender<Option<GrantEnd>>,
}

/// A running session, as listed for a re-evaluation.
#[derive(Debug, Clone)]
pub struct LiveSession {
    /// The watch's handle on it, for [`GrantWatch::close_session`].
    pub key: u64,
    /// The permit it runs under.
    pub permit: Permit,
    /// Its session id.
    pub session_id: String,
}

impl GrantWatch {
    /// A receiver that changes to `Some` when the grant ends early.
    pub fn subscribe(&self, grant_id: i64) -> watch::Receiver<Option<GrantEnd>> {
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        senders.retain(|_, s| s.receiver_count() > 0);
        senders
            .entry(grant_id)
            .or_insert_with(|| watch::channel(None).0)
            .subscribe()
    }

    /// Records that the grants were confirmed against the store just now.
    pub fn confirm(&self) {
        *self.confirmed.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// How long since the grants were last confirmed against the store (zero before the
    /// poller has started).
    pub fn unconfirmed_for(&self) -> Duration {
        self.confirmed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|at| at.elapsed())
            .unwrap_or_default()
    }

    /// Tells every session on `grant_id` that it has ended.
    pub fn end(&self, grant_id: i64, end: GrantEnd) {
        let senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = senders.get(&grant_id) {
            let _ = sender.send(Some(end));
        }
    }

    /// Tells every session, live now or started later, that the bastion is shutting down.
    pub fn shut_down(&self, phase: Shutdown) {
        self.shutdown.send_replace(Some(phase));
    }

    /// Registers a running session under `permit`; the receiver changes to `Some` when the
    /// session must close for a reason of its own (the policy no longer gives it). The session
    /// is forgotten once the receiver is dropped.
    fn register(&self, permit: &Permit, session_id: &str) -> watch::Receiver<Option<GrantEnd>> {
        let (close, receiver) = watch::channel(None);
        let key = self.next_session.fetch_add(1, Ordering::Relaxed);
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| s.close.receiver_count() > 0);
        sessions.insert(
            key,
            Registered {
                permit: permit.clone(),
                session_id: session_id.to_owned(),
                close,
            },
        );
        receiver
    }

    /// The sessions running now (and not already told to close).
    pub fn live_sessions(&self) -> Vec<LiveSession> {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .iter()
            .filter(|(_, s)| s.close.receiver_count() > 0 && s.close.borrow().is_none())
            .map(|(&key, s)| LiveSession {
                key,
                permit: s.permit.clone(),
                session_id: s.session_id.clone(),
            })
            .collect()
    }

    /// Closes one session (listed by [`GrantWatch::live_sessions`]) with `end` as its message.
    pub fn close_session(&self, key: u64, end: GrantEnd) {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(session) = sessions.get(&key) {
            let _ = session.close.send(Some(end));
        }
    }

    /// Whether any session watches `grant_id`.
    pub fn is_watched(&self, grant_id: i64) -> bool {
        let senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        senders
            .get(&grant_id)
            .is_some_and(|s| s.receiver_count() > 0)
    }
}

/// The class of a session's end when its grant ended in `state`.
pub fn end_class(state: GrantState) -> EndClass {
    match state {
        GrantState::Revoked => EndClass::Revoked,
        GrantState::Expired => EndClass::Expired,
        _ => EndClass::Other,
    }
}

/// The message for a grant that ended in `state`.
pub fn end_message(
    grant_id: i64,
    state: GrantState,
    by: Option<&str>,
    reason: Option<&str>,
) -> String {
    let mut text = match state {
        GrantState::Revoked => format!("grant {grant_id} was revoked"),
        GrantState::Expired => format!("grant {grant_id} has expired"),
        other => format!("grant {grant_id} is {other}"),
    };
    if let Some(by) = by.filter(|_| state == GrantState::Revoked) {
        text.push_str(&format!(" by {by}"));
    }
    if let Some(reason) = reason.filter(|_| state == GrantState::Revoked) {
        text.push_str(&format!(" ({reason:?})"));
    }
    text
}

/// Polls the store for changes made by other processes and ends watched grants that stopped
/// being active.
pub fn spawn_poller(
    store: Arc<dyn GrantStore>,
    watch: Arc<GrantWatch>,
    pushed: Option<Arc<tokio::sync::Notify>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // The store opened a moment ago: the view starts confirmed.
        watch.confirm();
        let mut seen = match store.revision().await {
            Ok(rev) => rev,
            Err(e) => {
                warn!(error = %e, "cannot read the grant store revision; retrying");
                0
            }
        };
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            match &pushed {
                Some(push) => {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = push.notified() => {}
                    }
                }
                None => {
                    tick.tick().await;
                }
            }
            let rev = match store.revision().await {
                Ok(rev) => rev,
                Err(e) => {
                    warn!(error = %e, "grant store unavailable");
                    continue;
                }
            };
            if rev == seen {
                watch.confirm();
                continue;
            }
            match store.changed_since(seen).await {
                Ok(changed) => {
                    for status in changed {
                        if status.state != GrantState::Active && watch.is_watched(status.id) {
                            debug!(grant = status.id, state = %status.state, "ending sessions of a grant changed elsewhere");
                            watch.end(
                                status.id,
                                GrantEnd::grant(
                                    status.id,
                                    status.state,
                                    status.ended_by.as_deref(),
                                    status.end_reason.as_deref(),
                                ),
                            );
                        }
                    }
                    seen = rev;
                    watch.confirm();
                }
                Err(e) => warn!(error = %e, "cannot read grant changes"),
            }
        }
    })
}

/// What a session's grant has to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifetimeEvent {
    /// Time is running out.
    Warning(String),
    /// The session must close now.
    End(GrantEnd),
}

/// One session's view of its grant's remaining life, and of its own standing: the session is
/// registered with the watch for as long as this lives.
pub struct GrantLifetime {
    grant_id: i64,
    expires_at: Timestamp,
    warnings: Vec<i64>,
    ended: watch::Receiver<Option<GrantEnd>>,
    closed: watch::Receiver<Option<GrantEnd>>,
    interactive: bool,
    shutdown: watch::Receiver<Option<Shutdown>>,
    shutdown_noticed: bool,
}

/// Seconds before the end at which interactive sessions are warned.
const WARN_BEFORE: [i64; 3] = [300, 60, 10];

impl GrantLifetime {
    /// Watches the grant of `permit`, and registers session `session_id` as running under it;
    /// `warn` asks for warnings before the grant's end.
    pub fn new(
        watch: &GrantWatch,
        permit: &Permit,
        session_id: &str,
        warn: bool,
        now: Timestamp,
    ) -> GrantLifetime {
        let grant_id = permit.grant_id();
        let expires_at = permit.expires_at();
        let remaining = expires_at - now;
        let warnings = if warn {
            WARN_BEFORE
                .iter()
                .copied()
                .filter(|&w| w < remaining)
                .collect()
        } else {
            Vec::new()
        };
        GrantLifetime {
            grant_id,
            expires_at,
            warnings,
            ended: watch.subscribe(grant_id),
            closed: watch.register(permit, session_id),
            interactive: warn,
            shutdown: watch.shutdown.subscribe(),
            shutdown_noticed: false,
        }
    }

    /// The shutdown news this session has not acted on yet: the notice once (interactive
    /// sessions only; an exec session's output is not interrupted), then the close.
    fn shutdown_event(&mut self) -> Option<LifetimeEvent> {
        match self.shutdown.borrow_and_update().clone()? {
            Shutdown::Close(text) => Some(LifetimeEvent::End(GrantEnd {
                message: text,
                class: EndClass::Shutdown,
            })),
            Shutdown::Notice(text) if !self.shutdown_noticed => {
                self.shutdown_noticed = true;
                self.interactive.then_some(LifetimeEvent::Warning(text))
            }
            Shutdown::Notice(_) => None,
        }
    }

    /// Waits for the next warning or the end. Cancel-safe: state changes only when it returns.
    pub async fn next(&mut self) -> LifetimeEvent {
        loop {
            if let Some(event) = self.shutdown_event() {
                return event;
            }
            let already = self
                .closed
                .borrow()
                .clone()
                .or_else(|| self.ended.borrow().clone());
            if let Some(end) = already {
                return LifetimeEvent::End(end);
            }
            let next_warning = self.warnings.first().copied();
            let warning_at = next_warning
                .map(|w| self.expires_at - w)
                .unwrap_or(i64::MAX);
            let event = tokio::select! {
                () = sleep_until_unix(self.expires_at) => {
                    LifetimeEvent::End(GrantEnd::grant(self.grant_id, GrantState::Expired, None, None))
                }
                () = sleep_until_unix(warning_at), if next_warning.is_some() => {
                    let left = self.warnings.remove(0);
                    LifetimeEvent::Warning(format!(
                        "grant {} expires in {}; the session will close then",
                        self.grant_id,
                        crate::duration::format(Duration::from_secs(left as u64))
                    ))
                }
                // The sender lives as long as the bastion; a closed one has nothing more to say.
                Ok(()) = self.shutdown.changed() => continue,
                Ok(()) = self.closed.changed() => {
                    let end = self.closed.borrow().clone();
                    LifetimeEvent::End(end.unwrap_or_else(|| GrantEnd {
                        message: "the bastion closed the session".to_owned(),
                        class: EndClass::ClosedByBastion,
                    }))
                }
                changed = self.ended.changed() => {
                    let end = self.ended.borrow().clone();
                    match (changed, end) {
                        (Ok(()), Some(end)) => LifetimeEvent::End(end),
                        // The sender never goes away while we hold a receiver; if it does, nothing
                        // more can be learned, so the end time is all that is left.
                        _ => {
                            sleep_until_unix(self.expires_at).await;
                            LifetimeEvent::End(GrantEnd::grant(self.grant_id, GrantState::Expired, None, None))
                        }
                    }
                }
            };
            return event;
        }
    }
}

/// Sleeps until a Unix time (seconds), measured against the wall clock now.
async fn sleep_until_unix(at: Timestamp) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let target = Duration::from_secs(at.max(0) as u64);
    tokio::time::sleep(target.saturating_sub(now)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{Action, SessionRequest, decide};
    use crate::grants::Grant;

    /// A permit from `decide` for alice's grant `id` (role `self` on web-01), ending at `end`.
    fn permit(id: i64, end: Timestamp, now: Timestamp) -> Permit {
        let policy = crate::testing::sample_policy();
        let alice = policy.user("alice").unwrap();
        let grant = Grant {
            id,
            user: "alice".into(),
            role: "self".into(),
            target: "web-01".into(),
            reason: "INC-1".into(),
            duration: Duration::from_secs(3600),
            state: GrantState::Active,
            break_glass: false,
            requested_at: now,
            activated_at: Some(now),
            expires_at: Some(end),
            ended_at: None,
            ended_by: None,
            end_reason: None,
            approvals: vec![],
        };
        let request = SessionRequest {
            target: "web-01".into(),
            role: None,
            action: Action::Exec(b"uptime".to_vec()),
        };
        decide(&policy, alice, &[grant], &request, now).unwrap()
    }

    #[tokio::test]
    async fn shutdown_notices_interactive_sessions_then_closes_every_session() {
        let watch = GrantWatch::default();
        let now = crate::grants::now();
        let mut shell = GrantLifetime::new(&watch, &permit(1, now + 3600, now), "s1", true, now);
        let mut exec = GrantLifetime::new(&watch, &permit(2, now + 3600, now), "s2", false, now);
        watch.shut_down(Shutdown::Notice("closing in 30s".into()));
        assert_eq!(
            shell.next().await,
            LifetimeEvent::Warning("closing in 30s".into())
        );
        // The notice is shown once; an exec session's output is not interrupted by it.
        let quiet = Duration::from_millis(50);
        assert!(tokio::time::timeout(quiet, shell.next()).await.is_err());
        assert!(tokio::time::timeout(quiet, exec.next()).await.is_err());
        watch.shut_down(Shutdown::Close("shutting down".into()));
        let closed = LifetimeEvent::End(GrantEnd {
            message: "shutting down".into(),
            class: EndClass::Shutdown,
        });
        assert_eq!(shell.next().await, closed);
        assert_eq!(exec.next().await, closed);
        // A session that starts after the close is closed at once.
        let mut late = GrantLifetime::new(&watch, &permit(3, now + 3600, now), "s3", true, now);
        assert_eq!(late.next().await, closed);
    }
}
