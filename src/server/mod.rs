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
pub mod dial;
pub mod env;
pub mod handler;
pub mod line_editor;
pub mod record;
pub mod session;
pub mod shell;
pub mod verbs;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::{MethodKind, MethodSet};
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::bastion::Bastion;

/// The russh server configuration Gatehouse runs with.
pub fn ssh_config(host_key: PrivateKey) -> Arc<russh::server::Config> {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    Arc::new(russh::server::Config {
        server_id: russh::SshId::Standard(
            format!("SSH-2.0-Gatehouse_{}", env!("CARGO_PKG_VERSION")).into(),
        ),
        methods,
        keys: vec![host_key],
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: 6,
        // Sessions live as long as their grant; dead peers are found by keepalives instead.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        window_size: 8 * 1024 * 1024,
        maximum_packet_size: 32 * 1024,
        nodelay: true,
        ..russh::server::Config::default()
    })
}

/// Serves SSH on `listener` until `shutdown` resolves.
pub async fn serve(
    bastion: Arc<Bastion>,
    listener: TcpListener,
    config: Arc<russh::server::Config>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    spawn_memory_return(active.clone());
    let max = bastion.config.limits.max_connections;
    let grace = bastion.config.limits.login_grace;
    tokio::pin!(shutdown);
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
            () = &mut shutdown => {
                info!("shutting down");
                return Ok(());
            }
        };
        if active.load(Ordering::Relaxed) >= max {
            warn!(%peer, max, "connection refused: too many connections");
            drop(socket);
            continue;
        }
        let _ = socket.set_nodelay(true);
        active.fetch_add(1, Ordering::Relaxed);
        let guard = ActiveGuard(active.clone());
        let bastion = bastion.clone();
        let config = config.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let authenticated = Arc::new(tokio::sync::Notify::new());
            let handler =
                handler::ConnectionHandler::new(bastion, Some(peer), authenticated.clone());
            let running = match russh::server::run_stream(config, socket, handler).await {
                Ok(running) => running,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "handshake failed");
                    return;
                }
            };
            let connection = running.handle();
            let watchdog = tokio::spawn(async move {
                if tokio::time::timeout(grace, authenticated.notified())
                    .await
                    .is_err()
                {
                    let _ = connection
                        .disconnect(
                            russh::Disconnect::ByApplication,
                            "login took too long".into(),
                            "en".into(),
                        )
                        .await;
                }
            });
            if let Err(e) = running.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            watchdog.abort();
        });
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
