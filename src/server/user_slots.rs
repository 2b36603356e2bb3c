//! A per-user limit on concurrent connections (`[limits] connections_per_user`).
//!
//! One user's script gone wrong (a loop of `ssh` without waiting) must not use up the bastion's
//! connections for everybody else. A slot is taken when a user logs in and given back when the
//! connection ends, whichever way it ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Logged-in connections per user.
pub struct UserSlots {
    limit: usize,
    held: Mutex<HashMap<String, usize>>,
}

/// One user's connection, counted until dropped.
pub struct UserSlot {
    slots: Arc<UserSlots>,
    user: String,
}

/// The user already holds `limit` connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("at most {limit} at once")]
pub struct OverLimit {
    /// The configured limit.
    pub limit: usize,
}

impl UserSlots {
    /// Slots for at most `limit` connections per user.
    pub fn new(limit: usize) -> Arc<UserSlots> {
        Arc::new(UserSlots {
            limit,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a slot for `user`, or says that they are at the limit.
    pub fn take(self: &Arc<Self>, user: &str) -> Result<UserSlot, OverLimit> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.entry(user.to_owned()).or_insert(0);
        if *count >= self.limit {
            return Err(OverLimit { limit: self.limit });
        }
        *count += 1;
        Ok(UserSlot {
            slots: self.clone(),
            user: user.to_owned(),
        })
    }

    /// Connections `user` holds now.
    pub fn held_by(&self, user: &str) -> usize {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(user).copied().unwrap_or(0)
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_user_and_given_back_on_drop() {
        let slots = UserSlots::new(2);
        let a = slots.take("alice").unwrap();
        let b = slots.take("alice").unwrap();
        assert_eq!(slots.take("alice").err(), Some(OverLimit { limit: 2 }));
        let _bob = slots.take("bob").unwrap();
        drop(a);
        let c = slots.take("alice").unwrap();
        assert_eq!(slots.held_by("alice"), 2);
        drop((b, c));
        assert_eq!(slots.held_by("alice"), 0);
        assert_eq!(slots.held.lock().unwrap().len(), 1, "only bob is left");
    }
}
