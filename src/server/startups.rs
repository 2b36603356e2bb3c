//! Connections per source address that have not logged in yet, after OpenSSH's
//! `PerSourceMaxStartups`.
//!
//! Penalties alone only see a connection once it ends, so connections opened in parallel would
//! each get a key exchange (real CPU: a Diffie-Hellman exponentiation and a host key signature)
//! and could hold every `[limits] max_connections` slot for the login grace time. Here each
//! source (keyed like the penalty table: an IPv4 address, an IPv6 /64, the same exemptions) may
//! have at most `[penalties] max_startups` connections between admission and login. A few more
//! ([`QUEUE_FACTOR`] times that) wait, without a banner and without costing a key exchange, for
//! at most [`STARTUP_WAIT`] until one of those logs in or ends; the rest are refused at once and
//! charged `noauth`. Real logins leave the count within a second or so, so a burst of logins
//! from one NAT address queues briefly instead of being refused.
//!
//! The table holds only sources with a connection in this phase, so it is bounded by the
//! number of connections (`[limits] max_connections`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::penalty::{Penalties, source_block};

/// How many connections per source may wait for a place, in multiples of `max_startups`.
pub const QUEUE_FACTOR: usize = 3;

/// How long a waiting connection waits for a place before it is refused.
pub const STARTUP_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Clone, Copy)]
struct Count {
    started: usize,
    waiting: usize,
}

/// The per-source counts shared by every connection.
pub struct Startups {
    cap: usize,
    penalties: Arc<Penalties>,
    table: Mutex<HashMap<IpAddr, Count>>,
    freed: Notify,
}

/// A connection counted against its source until it logs in or ends.
pub struct StartupSlot {
    startups: Arc<Startups>,
    /// The source and its block; `None` for exempt sources, which are not counted.
    source: Option<(IpAddr, IpAddr)>,
    released: AtomicBool,
}

/// Why a connection was not given a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Its source already had `max_startups` connections in progress and as many waiting as
    /// allowed, or none of them finished within [`STARTUP_WAIT`].
    #[error("too many connections from this source address have not logged in yet")]
    TooManyStartups,
}

impl Startups {
    /// No connection counted yet; at most `cap` per source.
    pub fn new(cap: usize, penalties: Arc<Penalties>) -> Arc<Startups> {
        Arc::new(Startups {
            cap,
            penalties,
            table: Mutex::new(HashMap::new()),
            freed: Notify::new(),
        })
    }

    /// Counts a new connection from `ip`, waiting (at most [`STARTUP_WAIT`]) for a place when
    /// its source is at the cap. The caller charges the penalty for it (see
    /// [`Penalties::admitted`]) whether it got a place or not.
    pub async fn start(self: &Arc<Self>, ip: IpAddr) -> Result<StartupSlot, Refused> {
        if self.penalties.is_exempt(ip) {
            return Ok(self.slot(None));
        }
        let block = source_block(ip);
        let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
        let mut waiting = false;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
                let count = table.entry(block).or_default();
                if count.started < self.cap {
                    count.started += 1;
                    if waiting {
                        count.waiting -= 1;
                    }
                    return Ok(self.slot(Some((ip, block))));
                }
                if !waiting {
                    if count.waiting >= self.cap.saturating_mul(QUEUE_FACTOR) {
                        return Err(Refused::TooManyStartups);
                    }
                    count.waiting += 1;
                    waiting = true;
                }
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(count) = table.get_mut(&block) {
                    count.waiting = count.waiting.saturating_sub(1);
                    if count.started == 0 && count.waiting == 0 {
                        table.remove(&block);
                    }
                }
                return Err(Refused::TooManyStartups);
            }
        }
    }

    /// Connections from `ip`'s block that have a place now (for tests and diagnostics).
    pub fn started(&self, ip: IpAddr) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&source_block(ip))
            .map_or(0, |c| c.started)
    }

    fn slot(self: &Arc<Self>, source: Option<(IpAddr, IpAddr)>) -> StartupSlot {
        StartupSlot {
            startups: self.clone(),
            source,
            released: AtomicBool::new(false),
        }
    }

    fn release(&self, block: IpAddr) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = table.get_mut(&block) {
            count.started = count.started.saturating_sub(1);
            if count.started == 0 && count.waiting == 0 {
                table.remove(&block);
            }
        }
        drop(table);
        self.freed.notify_waiters();
    }
}

impl StartupSlot {
    /// The user logged in: the connection leaves the count and its `noauth` charge is refunded.
    pub fn logged_in(&self) {
        if let Some((ip, _)) = self.source
            && !self.released.load(Ordering::Relaxed)
        {
            self.startups.penalties.logged_in(ip, Instant::now());
        }
        self.release();
    }

    /// The connection ended (or logged in): it leaves the count. Done at most once.
    pub fn release(&self) {
        if self.released.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Some((_, block)) = self.source {
            self.startups.release(block);
        }
    }
}

impl Drop for StartupSlot {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PenaltiesConfig;

    fn startups(cap: usize) -> Arc<Startups> {
        let penalties = Penalties::new(PenaltiesConfig {
            enabled: true,
            noauth: Duration::from_secs(1),
            authfail: Duration::from_secs(5),
            grace_exceeded: Duration::from_secs(10),
            min: Duration::from_secs(15),
            max: Duration::from_secs(600),
            max_sources: 16,
            exempt: vec!["10.9.0.0/16".parse().unwrap()],
            max_startups: 10,
        });
        Startups::new(cap, Arc::new(penalties))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn parallel_connections_beyond_the_cap_wait_then_are_refused() {
        let s = startups(2);
        let a = ip("192.0.2.7");
        let first = s.start(a).await.unwrap();
        let _second = s.start(ip("192.0.2.7")).await.unwrap();
        assert_eq!(s.started(a), 2);
        // Other sources and exempt ones are unaffected.
        let _other = s.start(ip("192.0.2.8")).await.unwrap();
        for _ in 0..10 {
            std::mem::forget(s.start(ip("10.9.1.1")).await.unwrap());
        }
        // A third waits; a login frees a place for it.
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.start(a).await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        first.logged_in();
        assert_eq!(waiter.await.unwrap(), Ok(()));
        // With nobody logging in, waiters are refused after STARTUP_WAIT, and beyond the queue
        // at once.
        let _third = s.start(a).await.unwrap();
        let queued: Vec<_> = (0..2 * QUEUE_FACTOR)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.start(a).await.map(|_| ()) })
            })
            .collect();
        tokio::task::yield_now().await;
        assert_eq!(s.start(a).await.err(), Some(Refused::TooManyStartups));
        for q in queued {
            assert_eq!(q.await.unwrap(), Err(Refused::TooManyStartups));
        }
        assert_eq!(s.started(a), 2);
    }
}
