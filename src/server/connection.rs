//! What one client connection shares between its russh handler and the task that runs it: how
//! its login went (for penalties), whether a session channel is in progress (for the idle
//! timeout), and the supervisor that closes it when login takes too long or it sits idle.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tracing::info;

use super::drain::Drain;
use super::penalty::Ending;
use super::startups::StartupSlot;
use super::user_slots::UserSlots;

/// How the connection's login went, set by the handler and read when the connection ends.
#[derive(Default)]
pub struct LoginOutcome {
    attempted: AtomicBool,
    logged_in: AtomicBool,
    grace_exceeded: AtomicBool,
    closed_by_bastion: AtomicBool,
    /// The connection's place among its source's connections that have not logged in yet.
    startup: Mutex<Option<StartupSlot>>,
}

impl LoginOutcome {
    /// Counts the connection against its source until it logs in or ends.
    pub fn hold_startup(&self, slot: StartupSlot) {
        *self.startup.lock().unwrap_or_else(|p| p.into_inner()) = Some(slot);
    }

    /// The connection ended: it leaves its source's count of connections not logged in.
    pub fn release_startup(&self) {
        if let Some(slot) = self
            .startup
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            slot.release();
        }
    }

    /// A credential was offered and refused.
    pub fn failed_attempt(&self) {
        self.attempted.store(true, Ordering::Relaxed);
    }

    /// The user logged in (even if the connection is then refused for being over a limit:
    /// that is not an attack and must not be penalised).
    pub fn logged_in(&self) {
        self.logged_in.store(true, Ordering::Relaxed);
        if let Some(slot) = self
            .startup
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            slot.logged_in();
        }
    }

    /// The login grace time ran out.
    pub fn grace_exceeded(&self) {
        self.grace_exceeded.store(true, Ordering::Relaxed);
    }

    /// The bastion closed the connection for its own reasons (shutting down).
    pub fn closed_by_bastion(&self) {
        self.closed_by_bastion.store(true, Ordering::Relaxed);
    }

    /// How the connection ended, as penalties see it.
    pub fn ending(&self) -> Ending {
        if self.logged_in.load(Ordering::Relaxed) {
            Ending::LoggedIn
        } else if self.closed_by_bastion.load(Ordering::Relaxed) {
            Ending::ClosedByBastion
        } else if self.attempted.load(Ordering::Relaxed) {
            Ending::LoginFailed
        } else if self.grace_exceeded.load(Ordering::Relaxed) {
            Ending::GraceExceeded
        } else {
            Ending::NoLogin
        }
    }
}

/// Session channels in progress on one connection, and since when there has been none.
#[derive(Debug, Clone, Copy)]
struct Activity {
    running: usize,
    idle_since: Instant,
}

/// The channel activity of one connection.
pub struct ChannelActivity {
    state: watch::Sender<Activity>,
}

impl ChannelActivity {
    /// No channel yet: idle from now.
    pub fn new() -> Arc<ChannelActivity> {
        Arc::new(ChannelActivity {
            state: watch::Sender::new(Activity {
                running: 0,
                idle_since: Instant::now(),
            }),
        })
    }

    /// A session channel started.
    pub fn started(&self) {
        self.state.send_modify(|a| a.running += 1);
    }

    /// A session channel finished.
    pub fn finished(&self) {
        self.state.send_modify(|a| {
            a.running = a.running.saturating_sub(1);
            if a.running == 0 {
                a.idle_since = Instant::now();
            }
        });
    }

    fn subscribe(&self) -> watch::Receiver<Activity> {
        self.state.subscribe()
    }
}

/// Everything one connection's handler needs besides the bastion.
#[derive(Clone)]
pub struct ConnectionContext {
    /// Where the client connects from.
    pub peer: Option<SocketAddr>,
    /// Notified once the user has logged in (the supervisor waits on it).
    pub authenticated: Arc<Notify>,
    /// How the login went.
    pub outcome: Arc<LoginOutcome>,
    /// Session channels in progress.
    pub activity: Arc<ChannelActivity>,
    /// The bastion-wide count of sessions, and whether it is shutting down.
    pub drain: Arc<Drain>,
    /// The per-user connection limit.
    pub user_slots: Arc<UserSlots>,
}

/// Closes the connection when its login takes longer than `login_grace`, and once logged in,
/// when no session channel has been in progress for `idle_timeout`. A running session, however
/// quiet, keeps the connection open: a shell at its prompt is not idle.
pub async fn supervise(
    connection: russh::server::Handle,
    context: ConnectionContext,
    login_grace: Duration,
    idle_timeout: Duration,
) {
    if tokio::time::timeout(login_grace, context.authenticated.notified())
        .await
        .is_err()
    {
        context.outcome.grace_exceeded();
        let _ = connection
            .disconnect(
                russh::Disconnect::ByApplication,
                "login took too long".into(),
                "en".into(),
            )
            .await;
        return;
    }
    let logged_in_at = Instant::now();
    let mut activity = context.activity.subscribe();
    loop {
        let now = *activity.borrow_and_update();
        let deadline = if now.running == 0 {
            Some(now.idle_since.max(logged_in_at) + idle_timeout)
        } else {
            None
        };
        match deadline {
            Some(deadline) if deadline <= Instant::now() => break,
            Some(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline.into()) => {}
                    changed = activity.changed() => if changed.is_err() { return },
                }
            }
            None => {
                if activity.changed().await.is_err() {
                    return;
                }
            }
        }
    }
    let text = format!(
        "no session for {}: closing the idle connection",
        crate::duration::format(idle_timeout)
    );
    info!(peer = ?context.peer, "{text}");
    let _ = connection
        .disconnect(russh::Disconnect::ByApplication, text, "en".into())
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ending_prefers_a_login_over_everything_else() {
        let o = LoginOutcome::default();
        assert_eq!(o.ending(), Ending::NoLogin);
        o.grace_exceeded();
        assert_eq!(o.ending(), Ending::GraceExceeded);
        o.failed_attempt();
        assert_eq!(o.ending(), Ending::LoginFailed);
        o.closed_by_bastion();
        assert_eq!(o.ending(), Ending::ClosedByBastion);
        o.logged_in();
        assert_eq!(o.ending(), Ending::LoggedIn);
    }

    #[test]
    fn idle_starts_when_the_last_channel_finishes() {
        let a = ChannelActivity::new();
        a.started();
        a.started();
        a.finished();
        assert_eq!(a.subscribe().borrow().running, 1);
        let before = Instant::now();
        a.finished();
        let now = *a.subscribe().borrow();
        assert_eq!(now.running, 0);
        assert!(now.idle_since >= before);
    }
}
