//! The SSH server: listener, per-connection tasks, policy reload and shutdown.
//!
//! The path of one session, top to bottom: [`handler`] authenticates and accepts a channel,
//! [`channel`] takes its request, [`command`] splits the first word, [`crate::access::decide`]
//! decides, [`crate::ca`] signs, [`crate::upstream`] connects, and [`bridge`] moves the bytes.

pub mod auth;
pub mod breakglass;
pub mod bridge;
pub mod channel;
pub mod command;
pub mod connection;
pub mod dial;
pub mod drain;
pub mod ends;
pub mod env;
pub mod handler;
pub mod line_editor;
pub mod penalty;
pub mod record;
pub mod session;
pub mod shell;
pub mod startups;
pub mod transport;
pub mod user_slots;
pub mod verbs;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tracing::{error, info, warn};

use crate::bastion::Bastion;
use connection::{ChannelActivity, ConnectionContext, LoginOutcome};
use drain::Drain;
use penalty::{Activated, Admission, Penalties};
use startups::Startups;
use user_slots::UserSlots;

pub use transport::ssh_config;

/// Serves SSH on `listener` until the future made by `shutdown` resolves, then drains: no new
/// connections, live sessions told and given `[limits] shutdown_grace`, the rest closed with
/// their ends recorded (see [`drain`]). A second `shutdown` during the grace time closes the
/// sessions at once, still recording their ends. Returns once every session has ended.
pub async fn serve<F, Fut>(
    bastion: Arc<Bastion>,
    listener: TcpListener,
    config: Arc<russh::server::Config>,
    shutdown: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let first = shutdown();
    let active = Arc::new(AtomicUsize::new(0));
    spawn_memory_return(active.clone());
    let max = bastion.config.limits.max_connections;
    let penalties = Arc::new(Penalties::new(bastion.config.penalties.clone()));
    let startups = Startups::new(bastion.config.penalties.max_startups, penalties.clone());
    let drain = Drain::new();
    let user_slots = UserSlots::new(bastion.config.limits.connections_per_user);
    tokio::pin!(first);
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut first => {
                info!("shutting down: no longer accepting connections");
                break;
            }
        };
        if let Admission::Refuse(left) = penalties.admit(peer.ip(), Instant::now()) {
            tracing::debug!(%peer, left = ?left, "connection refused: its source address is penalised");
            // As OpenSSH does, say so instead of sending the banner; never wait for the peer.
            let _ = socket.try_write(penalty::REFUSAL_LINE);
            continue;
        }
        if active.load(Ordering::Relaxed) >= max {
            warn!(%peer, max, "connection refused: too many connections");
            drop(socket);
            continue;
        }
        let _ = socket.set_nodelay(true);
        active.fetch_add(1, Ordering::Relaxed);
        let guard = ActiveGuard(active.clone());
        let context = ConnectionContext {
            peer: Some(peer),
            authenticated: Arc::new(tokio::sync::Notify::new()),
            outcome: Arc::new(LoginOutcome::default()),
            activity: ChannelActivity::new(),
            drain: drain.clone(),
            user_slots: user_slots.clone(),
        };
        tokio::spawn(run_connection(
            bastion.clone(),
            config.clone(),
            socket,
            peer,
            context,
            penalties.clone(),
            startups.clone(),
            guard,
        ));
    }
    drop(listener);
    drain::run(&bastion, &drain, shutdown()).await;
    Ok(())
}

/// Runs one client connection to its end, then adds its penalty, if any. Before the banner it
/// takes a place among its source's connections that have not logged in yet (see [`startups`]),
/// or is refused; either way it is charged `[penalties] noauth` (refunded on login).
#[allow(clippy::too_many_arguments)]
async fn run_connection(
    bastion: Arc<Bastion>,
    config: Arc<russh::server::Config>,
    socket: TcpStream,
    peer: SocketAddr,
    context: ConnectionContext,
    penalties: Arc<Penalties>,
    startups: Arc<Startups>,
    _guard: ActiveGuard,
) {
    let slot = startups.start(peer.ip()).await;
    report(
        penalties.admitted(peer.ip(), Instant::now()),
        peer,
        "no login attempt yet",
    );
    match slot {
        Ok(slot) => context.outcome.hold_startup(slot),
        Err(refused) => {
            tracing::debug!(%peer, "connection refused: {refused}");
            let _ = socket.try_write(penalty::REFUSAL_LINE);
            return;
        }
    }
    let limits = &bastion.config.limits;
    let (grace, idle) = (limits.login_grace, limits.idle_timeout);
    let outcome = context.outcome.clone();
    let handler = handler::ConnectionHandler::new(bastion.clone(), context.clone());
    // The client's version line is read before russh returns: a silent peer gets the login
    // grace time for that too.
    let started = Instant::now();
    match tokio::time::timeout(grace, russh::server::run_stream(config, socket, handler)).await {
        Err(_) => outcome.grace_exceeded(),
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "handshake failed"),
        Ok(Ok(running)) => {
            let handle = running.handle();
            let _registered = context.drain.register(handle.clone(), outcome.clone());
            let left = grace.saturating_sub(started.elapsed());
            let supervisor = tokio::spawn(connection::supervise(handle, context, left, idle));
            if let Err(e) = running.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            supervisor.abort();
        }
    }
    outcome.release_startup();
    let ending = outcome.ending();
    report(
        penalties.ended(peer.ip(), ending, Instant::now()),
        peer,
        ending,
    );
}

/// Logs a penalty that has just become enforced, or a full penalty table.
fn report(
    charged: Result<Option<Activated>, penalty::Overflow>,
    peer: SocketAddr,
    last: impl std::fmt::Display,
) {
    match charged {
        Ok(None) => {}
        Ok(Some(activated)) => warn!(
            source = %activated.source,
            refused_for = %crate::duration::format(activated.refused_for),
            last = %last,
            "source address penalised: refusing its connections (too many without a login)"
        ),
        Err(penalty::Overflow) => warn!(
            %peer,
            "penalty table full: this source address is not penalised (raise [penalties] max_sources?)"
        ),
    }
}

/// Gives memory back to the system after a wave of connections has ended.
///
/// The allocator keeps freed memory for reuse; after thousands of sessions close that is a lot
/// of resident memory doing nothing. Every second, when the number of connections has fallen
/// to half of where it was at the last trim or below, the heap is trimmed. A session frees much
/// of its memory after its connection is counted out (the recording is finished and synced,
/// the index updated), so the heap is trimmed again [`SETTLE_TRIMS`] seconds after the last
/// of those trims. A trim costs a few milliseconds and happens only after connections closed.
fn spawn_memory_return(active: Arc<AtomicUsize>) {
    tokio::spawn(async move {
        let mut high = 0usize;
        let mut since_trim: Option<u64> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let now = active.load(Ordering::Relaxed);
            high = high.max(now);
            if high >= 16 && now <= high / 2 {
                trim_heap();
                high = now;
                since_trim = Some(0);
            } else if let Some(seconds) = since_trim.as_mut() {
                *seconds += 1;
                if SETTLE_TRIMS.contains(seconds) {
                    trim_heap();
                }
                if *seconds >= SETTLE_TRIMS[SETTLE_TRIMS.len() - 1] {
                    since_trim = None;
                }
            }
        }
    });
}

/// Seconds after the last trim of a wave at which the heap is trimmed again, for memory that
/// sessions free after their connection has ended.
const SETTLE_TRIMS: [u64; 2] = [2, 10];

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

/// Counts a connection as active until dropped.
struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
