//! Connections kept ready for the next session to a target.
//!
//! The slowest step of a session's setup is the key exchange with the target. After a session
//! to a target takes a connection, the pool opens the next one in the background (key exchange
//! and host key check done, nobody logged in), so the next session to that target only logs in
//! with its own certificate. An idle connection grants nothing, is never shared, and is closed
//! after [`MAX_IDLE`] (well inside sshd's `LoginGraceTime`); a target that is not used again
//! is not reconnected. Preparing one only takes a start-up slot (see [`super::startups`]) that
//! is free when it starts, never queueing ahead of sessions, and gives it back once the key
//! exchange is done; sshd still counts the idle connection as starting up, which is why
//! `max_startups` stays a little below sshd's `MaxStartups`. A change of the target in the
//! policy (address, port or trusted keys) makes its idle connection unusable.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::startups::StartupLimiter;
use super::{Connected, UpstreamError, connect};
use crate::access::Permit;
use crate::policy::{HostTrust, Target, fingerprint};

/// How long a ready connection may wait before it is closed.
pub const MAX_IDLE: Duration = Duration::from_secs(60);

/// Ready connections by target identity, and the start-up slots every new connection takes.
pub struct WarmPool {
    timeout: Duration,
    enabled: bool,
    startups: StartupLimiter,
    idle: Mutex<HashMap<String, Connected>>,
    /// Targets whose next connection is being opened, so a burst of sessions opens one, not
    /// one per session.
    refilling: Mutex<HashSet<String>>,
}

/// What a pooled connection was verified against: name, address, port and trusted keys.
fn identity(target: &Target) -> String {
    let trust = match &target.trust {
        HostTrust::Pinned(keys) => keys.iter().map(fingerprint).collect::<Vec<_>>().join(","),
        HostTrust::Ca(ca) => format!("ca:{}", fingerprint(ca)),
    };
    format!("{}|{}|{}|{trust}", target.name, target.address, target.port)
}

impl WarmPool {
    /// A pool that connects within `timeout`, taking a slot from `startups` for each new
    /// connection; when not `enabled`, every session connects afresh.
    pub(crate) fn new(timeout: Duration, enabled: bool, startups: StartupLimiter) -> Arc<WarmPool> {
        Arc::new(WarmPool {
            timeout,
            enabled,
            startups,
            idle: Mutex::new(HashMap::new()),
            refilling: Mutex::new(HashSet::new()),
        })
    }

    /// A new connection: a start-up slot for the target's sshd first, then the key exchange.
    async fn connect(&self, target: &Arc<Target>) -> Result<Connected, UpstreamError> {
        let slot = self.startups.acquire(&target.address, target.port).await?;
        connect(target.clone(), self.timeout, slot).await
    }

    /// A verified connection to the permitted target: a ready one if there is one, else a new
    /// one, knowing how long the session waited for it. Once the session has logged in on it,
    /// call [`WarmPool::prepare_next`].
    pub(crate) async fn get(self: &Arc<Self>, permit: &Permit) -> Result<Connected, UpstreamError> {
        let asked = std::time::Instant::now();
        self.take(permit)
            .await
            .map(|connected| connected.waited(asked.elapsed()))
    }

    /// A ready connection to the permitted target if there is one, else a new one.
    async fn take(self: &Arc<Self>, permit: &Permit) -> Result<Connected, UpstreamError> {
        let target = permit.target();
        if !self.enabled {
            return self.connect(target).await;
        }
        let key = identity(target);
        let ready = self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        match ready {
            Some(c) if !c.is_closed() && c.age() < MAX_IDLE => Ok(c),
            stale => {
                if let Some(c) = stale {
                    c.close().await;
                }
                self.connect(target).await
            }
        }
    }

    /// Prepares the next connection to `target` in the background, after a session has logged
    /// in: by then the session has given its start-up slot back, so even with one slot per
    /// target there is one free, and a target that refused the session is not dialled again.
    pub(crate) fn prepare_next(self: &Arc<Self>, permit: &Permit) {
        let target = permit.target();
        if self.enabled {
            self.refill(identity(target), target.clone());
        }
    }

    /// Opens the next connection to `target` in the background, unless one is ready or being
    /// opened, and closes it if nobody takes it within [`MAX_IDLE`].
    fn refill(self: &Arc<Self>, key: String, target: Arc<Target>) {
        let slot = {
            // Checked and marked under the `idle` lock, which the opener also holds while it
            // moves a new connection from "being opened" to "ready".
            let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle
                .get(&key)
                .is_some_and(|c| !c.is_closed() && c.age() < MAX_IDLE)
            {
                return;
            }
            let mut refilling = self.refilling.lock().unwrap_or_else(|p| p.into_inner());
            if !refilling.insert(key.clone()) {
                return;
            }
            match self.startups.try_acquire(&target.address, target.port) {
                Some(slot) => slot,
                None => {
                    // Sessions are waiting for this target: they come first.
                    refilling.remove(&key);
                    return;
                }
            }
        };
        let pool = self.clone();
        tokio::spawn(async move {
            let connected = connect(target, pool.timeout, slot)
                .await
                .map(Connected::without_startup_slot);
            let replaced = {
                let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
                pool.refilling
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
                match connected {
                    Ok(connected) => idle.insert(key.clone(), connected),
                    // The session's own connection reports the problem; nothing to keep.
                    Err(_) => return,
                }
            };
            if let Some(old) = replaced {
                old.close().await;
            }
            tokio::time::sleep(MAX_IDLE).await;
            let expired = {
                let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
                match idle.get(&key) {
                    Some(c) if c.age() >= MAX_IDLE => idle.remove(&key),
                    _ => None,
                }
            };
            if let Some(c) = expired {
                c.close().await;
            }
        });
    }
}
