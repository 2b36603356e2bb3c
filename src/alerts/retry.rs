//! The retry schedule of failed deliveries.

use std::time::Duration;

/// When failed deliveries are tried again.
///
/// The delay doubles from `base` up to `cap` and is never given up on: an alert that cannot be
/// delivered is still wanted when the sink comes back. Tests shorten it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay after the first failure (1 s).
    pub base: Duration,
    /// The longest delay (60 s).
    pub cap: Duration,
    /// How often the loop looks for rows that another process (an operator command) queued,
    /// when it has nothing due (5 s); its own process wakes it at once.
    pub poll: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            poll: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The delay after `attempt` (from 1) failed: `base × 2^(attempt−1)`, at most `cap`, less a
    /// random jitter of up to a quarter so that alerts queued together do not retry in lockstep.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doubling = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        let full = self.base.saturating_mul(doubling).min(self.cap);
        let jitter: f64 = rand::random_range(0.0..=0.25);
        full.mul_f64(1.0 - jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_up_to_the_cap_with_jitter() {
        let policy = RetryPolicy::default();
        for (attempt, full) in [(1, 1), (2, 2), (3, 4), (4, 8), (6, 32), (7, 60), (100, 60)] {
            let full = Duration::from_secs(full);
            for _ in 0..50 {
                let d = policy.delay(attempt);
                assert!(d <= full && d >= full.mul_f64(0.75), "{attempt}: {d:?}");
            }
        }
        assert!(policy.delay(0) <= Duration::from_secs(1));
    }
}
