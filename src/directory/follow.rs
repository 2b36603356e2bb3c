//! The directory in `gatehouse serve`: sync on an interval, and put every new last good state
//! in force on this node.
//!
//! One node at a time reads the directory (a lease in the store, renewed by the node that holds
//! it), so several nodes neither multiply the load on the directory nor the alerts. Every node
//! polls the stored state's revision twice a second and applies a new state as soon as it
//! sees it; the node that synced applies it at once. A sync run from the command line is
//! picked up the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tracing::{info, warn};

use super::sync::{self, Outcome};
use crate::bastion::Bastion;
use crate::config::directory::DirectoryConfig;

/// How often each node looks for a new state.
const POLL: Duration = Duration::from_millis(500);

/// Starts following the directory; `revision` is the stored revision the bastion started with.
pub fn spawn(bastion: Arc<Bastion>, config: DirectoryConfig, revision: i64) {
    if config.is_plain() {
        warn!(
            url = %config.url,
            "the directory is read over plain LDAP (allowed on loopback only); use ldaps:// or \
             starttls = true for any other address"
        );
    }
    let applied = Arc::new(AtomicI64::new(revision));
    tokio::spawn(poll(bastion.clone(), applied.clone()));
    tokio::spawn(sync_on_interval(bastion, config, applied));
}

/// Applies every new stored state.
async fn poll(bastion: Arc<Bastion>, applied: Arc<AtomicI64>) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let revision = match bastion.store.directory_revision().await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "cannot read the directory state's revision");
                continue;
            }
        };
        if revision == applied.load(Ordering::Acquire) {
            continue;
        }
        let record = match bastion.store.directory().await {
            Ok(record) => record,
            Err(e) => {
                warn!(error = %e, "cannot read the directory state");
                continue;
            }
        };
        match sync::parse_stored(record.snapshot.as_deref()) {
            Ok(Some(snapshot)) => {
                apply(&bastion, Arc::new(snapshot)).await;
                applied.store(record.revision, Ordering::Release);
            }
            Ok(None) => applied.store(record.revision, Ordering::Release),
            Err(e) => {
                warn!(error = %e, "the stored directory state cannot be read; the state in force stays")
            }
        }
    }
}

/// Syncs every `sync_interval` while this node holds the lease.
async fn sync_on_interval(bastion: Arc<Bastion>, config: DirectoryConfig, applied: Arc<AtomicI64>) {
    let node = bastion.config.cluster.node_name.clone();
    let lease = (config.sync_interval * 2 + config.timeout).as_secs() as i64;
    let mut tick = tokio::time::interval(config.sync_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = crate::grants::now();
        match bastion
            .store
            .claim_directory_sync(&node, now, now + lease)
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                warn!(error = %e, "cannot take the directory sync lease");
                continue;
            }
        }
        match sync::run(&config, &bastion.store, &bastion.events, &node, false).await {
            Ok(Outcome::Applied {
                snapshot,
                revision,
                changes,
            }) => {
                info!(
                    users = snapshot.users.len(),
                    added = changes.added.len(),
                    removed = changes.removed.len(),
                    changed = changes.changed.len(),
                    "directory synced"
                );
                apply(&bastion, snapshot).await;
                applied.fetch_max(revision, Ordering::AcqRel);
            }
            Ok(Outcome::Unchanged { .. }) => {}
            Ok(Outcome::Held(held)) => warn!(
                removed = held.removed.len(),
                "a directory sync is held for an operator (gatehouse directory sync --accept)"
            ),
            Err(e) => warn!(error = %e, "directory sync failed; the last good state stays"),
        }
    }
}

/// Puts `snapshot` in force on this node and logs what that ended.
async fn apply(bastion: &Bastion, snapshot: Arc<super::snapshot::Snapshot>) {
    let report = bastion.apply_directory(snapshot).await;
    for e in &report.errors {
        warn!("applying the directory: {e}");
    }
    if !report.sessions_closed.is_empty() || !report.grants_ended.is_empty() {
        info!(
            sessions_closed = report.sessions_closed.len(),
            grants_ended = report.grants_ended.len(),
            "the directory's new state ended access"
        );
    }
}
