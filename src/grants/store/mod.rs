//! Where grants live: the trait every store backend implements (see [`crate::store`]).
//!
//! Every write bumps a store-wide revision and stamps the changed grant with it, so that a
//! process that did not make the change (the operator CLI, or another bastion node sharing a
//! database) is found by [`GrantStore::changed_since`] within one poll.
//!
//! # One write path
//!
//! The trait has exactly one way to change a grant: [`GrantStore::transact`]. It runs a
//! [`Transition`] inside one write transaction: the store reads what the transition decides on
//! ([`Reads`]), the transition decides from that [`Snapshot`] (a pure function), the store
//! applies the resulting [`Write`]s, the transition seals the outcome elsewhere (the audit
//! log), and only then does the store commit. Two decisions therefore never act on the same
//! stale read, and a change whose audit line could not be written is rolled back.

use async_trait::async_trait;

use super::{Change, Grant, GrantError, GrantState, NewGrant, Timestamp};

/// Which grants to list.
#[derive(Debug, Clone, Default)]
pub struct GrantFilter {
    /// Only this user's.
    pub user: Option<String>,
    /// Only these states (empty: any).
    pub states: Vec<GrantState>,
    /// At most this many, newest first.
    pub limit: Option<u32>,
}

/// A grant's state as last written, for live enforcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantStatus {
    /// The grant.
    pub id: i64,
    /// Its stored state.
    pub state: GrantState,
    /// Its end, when active.
    pub expires_at: Option<Timestamp>,
    /// Who ended it.
    pub ended_by: Option<String>,
    /// Why.
    pub end_reason: Option<String>,
}

/// What a transition needs read, inside its transaction, before it decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    /// This grant, with its approvals.
    pub grant: Option<i64>,
    /// How many break-glass grants this user received since this time.
    pub break_glass_uses: Option<(String, Timestamp)>,
    /// The grants due for the sweep at (now, request TTL in seconds): active ones past their
    /// end and pending ones older than the TTL.
    pub due: Option<(Timestamp, i64)>,
}

/// What the store read for a transition, consistent with the writes that follow it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The grant asked for in [`Reads::grant`], if it exists.
    pub grant: Option<Grant>,
    /// The count asked for in [`Reads::break_glass_uses`] (0 if not asked).
    pub break_glass_uses: u64,
    /// The grants asked for in [`Reads::due`].
    pub due: Vec<Grant>,
}

/// One change a transition makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// A new grant.
    Insert(NewGrant),
    /// A decision on an existing grant; refused with [`GrantError::Conflict`] if the grant is
    /// no longer in `expected` state (a second line of defence: the snapshot was read under the
    /// same lock).
    Change(Change),
}

/// A write and the grant as it stands after it, inside the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// What was written.
    pub write: Write,
    /// The grant afterwards (for an insert, with its new id).
    pub grant: Grant,
}

/// A decision the store runs inside one write transaction.
#[async_trait]
pub trait Transition: Send + Sync {
    /// What to read before deciding.
    fn reads(&self) -> Reads;

    /// Decides from what was read: the writes to make, or why not (which rolls back). Must be a
    /// pure function of `seen`: a backend that retries a transaction calls it again.
    fn decide(&self, seen: &Snapshot) -> Result<Vec<Write>, GrantError>;

    /// Makes the applied writes durable elsewhere (the audit log) before the store commits;
    /// an error rolls everything back. Called at most once per committed transaction, after
    /// every lock the commit needs is held.
    async fn seal(&self, applied: &[Applied]) -> Result<(), GrantError>;
}

/// The operations Gatehouse needs from a grant store.
///
/// # Contract for [`transact`](GrantStore::transact)
///
/// Between the reads and the commit, no other transaction may change what was read: the
/// grant's row and approvals, and the set of break-glass grants of the user in the window.
/// SQLite gets this from `BEGIN IMMEDIATE` (one writer at a time, across processes);
/// PostgreSQL from one `pg_advisory_xact_lock` that every grant write takes first (one writer
/// at a time, across nodes). If decide returns no writes, nothing is sealed or changed.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Runs `work` in one write transaction; returns what it applied.
    async fn transact(&self, work: &dyn Transition) -> Result<Vec<Applied>, GrantError>;
    /// One grant with its approvals.
    async fn get(&self, id: i64) -> Result<Option<Grant>, GrantError>;
    /// The user's grants that are active and not past their end at `now`.
    async fn live_for_user(&self, user: &str, now: Timestamp) -> Result<Vec<Grant>, GrantError>;
    /// Grants matching `filter`, newest first.
    async fn list(&self, filter: &GrantFilter) -> Result<Vec<Grant>, GrantError>;
    /// Whether any grant is due for the sweep (a cheap look without taking the write lock).
    async fn any_due(&self, now: Timestamp, ttl_secs: i64) -> Result<bool, GrantError>;
    /// The store revision now.
    async fn revision(&self) -> Result<i64, GrantError>;
    /// Grants changed after revision `since`.
    async fn changed_since(&self, since: i64) -> Result<Vec<GrantStatus>, GrantError>;
    /// How many grants are in each state (states with none are left out); one indexed
    /// aggregate, cheap enough to sample every few seconds for the metrics.
    async fn count_by_state(&self) -> Result<Vec<(GrantState, u64)>, GrantError>;
}

/// Reads the `(state, count)` rows of a `GROUP BY state` count, as both backends return them;
/// a state word that is not one is a store error, not a silent zero.
pub fn state_counts(rows: Vec<(String, i64)>) -> Result<Vec<(GrantState, u64)>, GrantError> {
    rows.into_iter()
        .map(|(state, count)| {
            let state = GrantState::parse(&state)
                .ok_or_else(|| GrantError::Store(format!("unknown grant state {state:?}")))?;
            Ok((state, u64::try_from(count).unwrap_or(0)))
        })
        .collect()
}

/// The compare-and-set check every backend makes before applying a [`Change`]: the grant
/// `id`, whose stored state is `current` (`None`: no such grant), must still be `expected`.
pub fn expect_state(
    id: i64,
    current: Option<&str>,
    expected: GrantState,
) -> Result<(), GrantError> {
    let Some(current) = current else {
        return Err(GrantError::Usage(format!("there is no grant {id}")));
    };
    if current != expected.as_str() {
        return Err(GrantError::Conflict(format!(
            "grant {id} is {current}, not {expected}; nothing was changed"
        )));
    }
    Ok(())
}
