//! A cap on the connections Gatehouse has in their start-up phase with one sshd.
//!
//! sshd counts connections that have not yet authenticated (`MaxStartups`, by default
//! `10:30:100`) and, past the first number, drops new ones at random. A burst of sessions to
//! one target (a deploy, an incident, a thousand people logging in at nine) would otherwise open
//! as many unauthenticated connections at once: some would be dropped, and the rest would share
//! the target's CPU for key exchanges so thinly that they time out together. Gatehouse keeps at
//! most `max_startups` such connections per sshd (address and port) and queues the rest, each
//! for at most `startup_wait`; the connect timeout then measures the target, not the queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::UpstreamError;

/// Start-up slots per sshd.
pub struct StartupLimiter {
    per_target: usize,
    wait: Duration,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// One start-up slot; the connection holds it until it has authenticated (or is dropped).
pub struct StartupSlot {
    _permit: OwnedSemaphorePermit,
}

impl StartupLimiter {
    /// At most `per_target` connections per sshd in their start-up phase; a session waits at
    /// most `wait` for a slot.
    pub fn new(per_target: usize, wait: Duration) -> StartupLimiter {
        StartupLimiter {
            per_target: per_target.max(1),
            wait,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a slot at `address:port`.
    pub async fn acquire(&self, address: &str, port: u16) -> Result<StartupSlot, UpstreamError> {
        let semaphore = self.semaphore(address, port);
        match tokio::time::timeout(self.wait, semaphore.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(StartupSlot { _permit: permit }),
            // The semaphore is never closed; treat it like a full queue all the same.
            Ok(Err(_)) | Err(_) => Err(UpstreamError::Busy {
                waited: self.wait,
                max_startups: self.per_target,
            }),
        }
    }

    /// A slot at `address:port` if one is free now, for work that must not make a session wait.
    pub fn try_acquire(&self, address: &str, port: u16) -> Option<StartupSlot> {
        let permit = self.semaphore(address, port).try_acquire_owned().ok()?;
        Some(StartupSlot { _permit: permit })
    }

    fn semaphore(&self, address: &str, port: u16) -> Arc<Semaphore> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        // Forget sshds nobody is starting a connection to (every waiter and every slot holds a
        // reference), so the map stays small.
        slots.retain(|_, s| Arc::strong_count(s) > 1);
        slots
            .entry(format!("{address}:{port}"))
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_target)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_most_the_cap_start_at_once_and_the_rest_wait_their_turn() {
        let limiter = Arc::new(StartupLimiter::new(2, Duration::from_secs(30)));
        let a = limiter.acquire("10.0.0.1", 22).await.unwrap();
        let _b = limiter.acquire("10.0.0.1", 22).await.unwrap();
        // Another sshd has its own slots.
        let _other = limiter.acquire("10.0.0.2", 22).await.unwrap();
        let waiter = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire("10.0.0.1", 22).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiter.is_finished());
        // Work that must not wait gets nothing while the slots are taken.
        assert!(limiter.try_acquire("10.0.0.1", 22).is_none());
        drop(a);
        waiter.await.unwrap().unwrap();
        assert!(limiter.try_acquire("10.0.0.1", 22).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_refuses_after_the_wait() {
        let limiter = StartupLimiter::new(1, Duration::from_secs(30));
        let _held = limiter.acquire("10.0.0.1", 22).await.unwrap();
        let started = tokio::time::Instant::now();
        let err = limiter.acquire("10.0.0.1", 22).await.err().unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert!(err.to_string().contains("max_startups = 1"), "{err}");
    }
}
