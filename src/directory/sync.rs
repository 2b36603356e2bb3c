//! One sync: read the directory, decide whether the result may be put in force, and keep it.
//!
//! All or nothing: a read that fails keeps the last good state, records the failure and raises
//! one alert (the first failure since the last good sync). A read that would remove more people
//! than `max_removal` has its removals held, with an alert, until an operator accepts them
//! (`gatehouse directory sync --accept`): a broken filter or a directory restored from an
//! empty backup must not lock everybody out. The rest of such a read (additions, keys and
//! groups taken away) goes on, so a hold never freezes other revocations. Everything else is
//! stored as the new last good state, which every node then puts in force.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ldap::{self, ReadError};
use super::snapshot::{self, Snapshot};
use crate::config::directory::{DirectoryConfig, MaxRemoval};
use crate::events::{Event, EventKind, Events};
use crate::store::{Store, StoreError};

/// Why a sync did not put anything in force.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The directory could not be read.
    #[error("the directory could not be read: {0}")]
    Read(#[from] ReadError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The stored state is not one this version can read.
    #[error("the stored directory state cannot be read: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// A sync waiting for an operator, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldSync {
    /// The people it would remove.
    pub removed: Vec<String>,
    /// How many people the state in force has.
    pub before: usize,
    /// How many the held read has.
    pub after: usize,
}

/// What a sync did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A new state is in force (stored; this node should apply it now).
    Applied {
        /// The state.
        snapshot: Arc<Snapshot>,
        /// The store revision it was saved under.
        revision: i64,
        /// What changed against the state before.
        changes: Changes,
    },
    /// The directory says what the state in force says.
    Unchanged {
        /// People in it.
        users: usize,
    },
    /// Too many people would be removed; nothing changed until an operator accepts.
    Held(HeldSync),
}

/// Who a sync added, removed or changed (keys or groups).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Changes {
    /// New people.
    pub added: Vec<String>,
    /// People gone or disabled.
    pub removed: Vec<String>,
    /// People whose keys or groups changed.
    pub changed: Vec<String>,
}

impl Changes {
    fn between(before: &Snapshot, after: &Snapshot) -> Changes {
        Changes {
            added: after
                .users
                .keys()
                .filter(|n| !before.users.contains_key(*n))
                .cloned()
                .collect(),
            removed: before.removed_in(after),
            changed: after
                .users
                .values()
                .filter(|u| {
                    before
                        .users
                        .get(&u.name)
                        .is_some_and(|b| b.keys != u.keys || b.groups != u.groups)
                })
                .map(|u| u.name.clone())
                .collect(),
        }
    }
}

/// The stored snapshot, if there is one.
pub fn parse_stored(text: Option<&str>) -> Result<Option<Snapshot>, serde_json::Error> {
    text.map(serde_json::from_str).transpose()
}

/// Reads the directory and puts the result in force if it may be (see the module
/// documentation). `by` names who synced (a node, or `cli` and the operator's account) in the
/// store and the audit line; `accept` lifts the `max_removal` guard for this one sync.
pub async fn run(
    config: &DirectoryConfig,
    store: &Store,
    events: &Events,
    by: &str,
    accept: bool,
) -> Result<Outcome, SyncError> {
    let record = store.directory().await?;
    let before = parse_stored(record.snapshot.as_deref())?.unwrap_or_default();
    let now = crate::grants::now();
    let raw = match ldap::read(config).await {
        Ok(raw) => raw,
        Err(e) => {
            let error = e.to_string();
            let first = store.directory_failed(&error, now).await?;
            if first {
                events.emit(Event {
                    actor: Some(by.to_owned()),
                    reason: Some(format!(
                        "{error}; the last good state ({} people) stays in force",
                        before.users.len()
                    )),
                    ..Event::new(EventKind::DirectorySyncFailed)
                });
            } else {
                tracing::warn!(error = %error, "the directory still cannot be read");
            }
            return Err(e.into());
        }
    };
    let built = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || snapshot::build(&config, &raw, now))
            .await
            .map_err(|e| ReadError::Aborted(e.to_string()))?
    };
    let changes = Changes::between(&before, &built);
    if !accept
        && !config
            .max_removal
            .allows(changes.removed.len(), before.users.len())
    {
        // The rest of the change goes on: people added, keys and groups taken away. Only the
        // removals wait, so a hold never freezes every other revocation.
        let kept = keep_removed(&before, &built, &changes.removed);
        if kept.digest() != before.digest() {
            let text = serde_json::to_string(&kept)?;
            store
                .save_directory(record.revision, &text, now, by)
                .await?;
            let mut rest = Changes::between(&before, &kept);
            rest.removed.clear();
            let recovered = record.failure.is_some();
            synced(events, by, &kept, &rest, false, recovered, &changes.removed);
        }
        return hold(
            config.max_removal,
            store,
            events,
            by,
            &record,
            before,
            built,
            changes,
        )
        .await;
    }
    if record.snapshot.is_some()
        && before.digest() == built.digest()
        && record.held.is_none()
        && record.failure.is_none()
    {
        return Ok(Outcome::Unchanged {
            users: built.users.len(),
        });
    }
    let text = serde_json::to_string(&built)?;
    let revision = store
        .save_directory(record.revision, &text, now, by)
        .await?;
    let recovered = record.failure.is_some();
    synced(events, by, &built, &changes, accept, recovered, &[]);
    Ok(Outcome::Applied {
        snapshot: Arc::new(built),
        revision,
        changes,
    })
}

/// The audit line of a state put in force; `held_back` names removals that wait for an
/// operator.
fn synced(
    events: &Events,
    by: &str,
    snapshot: &Snapshot,
    changes: &Changes,
    accepted: bool,
    recovered: bool,
    held_back: &[String],
) {
    let skipped: Vec<&String> = snapshot.skipped.iter().take(50).collect();
    let held_back: Vec<&String> = held_back.iter().take(50).collect();
    events.emit(Event {
        actor: Some(by.to_owned()),
        detail: Some(serde_json::json!({
            "users": snapshot.users.len(),
            "disabled": snapshot.disabled.len(),
            "added": changes.added,
            "removed": changes.removed,
            "changed": changes.changed,
            "held_back": held_back,
            "skipped": skipped,
            "skipped_total": snapshot.skipped.len(),
            "accepted": accepted,
            "recovered": recovered,
            "digest": snapshot.digest(),
        })),
        ..Event::new(EventKind::DirectorySynced)
    });
}

/// `after`, with the people of `removed` kept as `before` has them.
fn keep_removed(before: &Snapshot, after: &Snapshot, removed: &[String]) -> Snapshot {
    let mut kept = after.clone();
    for name in removed {
        if let Some(user) = before.users.get(name) {
            kept.users.insert(name.clone(), user.clone());
            kept.disabled.remove(name);
        }
    }
    kept
}

/// Holds a sync that removes too many people: stored for `directory status`, with one alert
/// per distinct held change.
#[allow(clippy::too_many_arguments)]
async fn hold(
    limit: MaxRemoval,
    store: &Store,
    events: &Events,
    by: &str,
    record: &crate::store::directory::DirectoryRecord,
    before: Snapshot,
    after: Snapshot,
    changes: Changes,
) -> Result<Outcome, SyncError> {
    let held = HeldSync {
        removed: changes.removed,
        before: before.users.len(),
        after: after.users.len(),
    };
    let text = serde_json::to_string(&held)?;
    let same_as_before = record.held.as_ref().is_some_and(|(t, _)| *t == text);
    // Written every time: saving the rest of the change clears what was held.
    store.hold_directory(&text, crate::grants::now()).await?;
    if !same_as_before {
        let shown: Vec<&String> = held.removed.iter().take(50).collect();
        events.emit(Event {
            actor: Some(by.to_owned()),
            reason: Some(format!(
                "the directory now has {} of {} people: {} would be removed, over the limit \
                 of {}; nothing changed until an operator runs `gatehouse directory sync \
                 --accept`",
                held.after,
                held.before,
                held.removed.len(),
                limit_text(limit)
            )),
            detail: Some(
                serde_json::json!({ "removed": shown, "removed_total": held.removed.len() }),
            ),
            ..Event::new(EventKind::DirectorySyncHeld)
        });
    }
    Ok(Outcome::Held(held))
}

/// The limit as written in the config.
pub fn limit_text(limit: MaxRemoval) -> String {
    match limit {
        MaxRemoval::Percent(p) => format!("{p}%"),
        MaxRemoval::Count(n) => n.to_string(),
    }
}
