//! Hears of grant changes made by other nodes the moment they commit, through PostgreSQL's
//! `LISTEN` on the channel every grant write notifies.
//!
//! The push only makes the grant watch fast; the store revision stays the truth. A notification
//! sent while this node's listening connection was down is lost for good, so after every
//! (re)connect the task wakes the watch once, and the watch catches up through the revision:
//! a lost notification delays nothing beyond the reconnect and never loses a revocation.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::sync::Notify;
use tracing::{info, warn};

use super::grants::CHANNEL;

/// First wait before connecting again after a failure; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(200);

/// Longest wait between two connection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// After this long without a notification the connection is checked with a query, so a
/// connection that died silently (a network that drops packets instead of refusing them) is
/// noticed and replaced.
const QUIET_CHECK: Duration = Duration::from_secs(10);

/// Longest that check may take before the connection counts as dead.
const CHECK_LIMIT: Duration = Duration::from_secs(5);

/// Starts the listening task and returns what it wakes. The task ends once nothing but it
/// holds the returned handle (the store and every watch that took it are gone).
pub(super) fn spawn(options: &PgConnectOptions, shown: &str) -> Arc<Notify> {
    let changes = Arc::new(Notify::new());
    // A pool of one connection, of its own: it opens (and reopens) the listening connection,
    // which stays out of the shared pool for as long as it listens.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(CONNECT_TIMEOUT)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(true)
        .connect_lazy_with(options.clone());
    tokio::spawn(listen(pool, Arc::downgrade(&changes), shown.to_owned()));
    changes
}

/// Wakes the watch; false once nobody is left to wake.
fn wake(changes: &Weak<Notify>) -> bool {
    match changes.upgrade() {
        Some(changes) => {
            changes.notify_one();
            true
        }
        None => false,
    }
}

/// Listens, reconnecting after every loss with a short backoff, until nobody is left to wake.
async fn listen(pool: PgPool, changes: Weak<Notify>, shown: String) {
    let mut backoff = BACKOFF_FIRST;
    let mut lost = false;
    loop {
        match subscribe(&pool).await {
            Ok(mut listener) => {
                backoff = BACKOFF_FIRST;
                if lost {
                    info!(store = %shown, "listening for grant changes again");
                }
                // Whatever was announced while not listening is caught up through the revision.
                if !wake(&changes) {
                    return;
                }
                let why = hear(&mut listener, &changes).await;
                let Some(why) = why else {
                    return;
                };
                warn!(store = %shown, reason = %why,
                    "lost the connection that listens for grant changes; reconnecting");
                lost = true;
            }
            Err(e) => {
                if !lost {
                    warn!(store = %shown, error = %e, "cannot listen for grant changes; retrying");
                }
                lost = true;
            }
        }
        if changes.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// A listener subscribed to [`CHANNEL`].
async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection is reported to `hear`, which reconnects here after its backoff.
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    tokio::time::timeout(CONNECT_TIMEOUT, listener.listen(CHANNEL))
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
    Ok(listener)
}

/// Wakes the watch for every notification until the connection is lost (returns why) or
/// nobody is left to wake (returns `None`).
async fn hear(listener: &mut PgListener, changes: &Weak<Notify>) -> Option<String> {
    loop {
        match tokio::time::timeout(QUIET_CHECK, listener.try_recv()).await {
            Ok(Ok(Some(_))) => {
                if !wake(changes) {
                    return None;
                }
            }
            Ok(Ok(None)) => return Some("the server closed it".into()),
            Ok(Err(e)) => return Some(e.to_string()),
            Err(_) => {
                if changes.strong_count() == 0 {
                    return None;
                }
                let check = sqlx::query("SELECT 1").execute(&mut *listener);
                match tokio::time::timeout(CHECK_LIMIT, check).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Some(e.to_string()),
                    Err(_) => return Some(format!("no answer within {CHECK_LIMIT:?}")),
                }
            }
        }
    }
}
