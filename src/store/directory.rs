//! The directory's last good state, kept in the store so that every node (and the operator
//! CLI) works from the same one, and so that it survives a restart while the directory is
//! down: people from the directory keep their access when the directory cannot be read, and
//! lose it only when a successful read says so.
//!
//! One row holds the snapshot in force, a sync held for an operator (one that would remove
//! too many people), the last error, and a lease that lets one node at a time read the
//! directory. Every change of the snapshot bumps its revision, which nodes poll.

use async_trait::async_trait;

use super::StoreError;
use crate::grants::Timestamp;

/// The directory's state as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryRecord {
    /// Bumped by every change of the snapshot in force.
    pub revision: i64,
    /// The snapshot in force (JSON), `None` before the first successful sync.
    pub snapshot: Option<String>,
    /// When it was read from the directory.
    pub synced_at: Option<Timestamp>,
    /// Who wrote it: a node's name, or `cli` with the operator.
    pub synced_by: Option<String>,
    /// A sync waiting for `directory sync --accept` (JSON), with when it was held.
    pub held: Option<(String, Timestamp)>,
    /// The last failed sync since the last good one: its error and when.
    pub failure: Option<(String, Timestamp)>,
}

/// Where the directory's state is kept.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// The whole state.
    async fn directory(&self) -> Result<DirectoryRecord, StoreError>;
    /// The revision only, cheap enough to poll.
    async fn directory_revision(&self) -> Result<i64, StoreError>;
    /// Puts `snapshot` in force if the revision is still `expected` (another sync did not land
    /// meanwhile), clearing any held sync and the last failure; returns the new revision, or
    /// [`StoreError::Conflict`].
    async fn save_directory(
        &self,
        expected: i64,
        snapshot: &str,
        synced_at: Timestamp,
        synced_by: &str,
    ) -> Result<i64, StoreError>;
    /// Records a sync held for an operator; the snapshot in force stays.
    async fn hold_directory(&self, held: &str, at: Timestamp) -> Result<(), StoreError>;
    /// Records a failed sync; returns whether it is the first failure since the last good
    /// sync (the one that raises an alert).
    async fn directory_failed(&self, error: &str, at: Timestamp) -> Result<bool, StoreError>;
    /// Takes the lease to read the directory until `until`, if no other node holds it;
    /// returns whether `node` holds it now.
    async fn claim_directory_sync(
        &self,
        node: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError>;
}

/// Assembles a record from a row's columns; each backend reads them its own way.
pub(super) fn record(
    revision: i64,
    snapshot: Option<String>,
    synced_at: Option<Timestamp>,
    synced_by: Option<String>,
    held: (Option<String>, Option<Timestamp>),
    failure: (Option<String>, Option<Timestamp>),
) -> DirectoryRecord {
    DirectoryRecord {
        revision,
        snapshot,
        synced_at,
        synced_by,
        held: held.0.zip(held.1),
        failure: failure.0.zip(failure.1),
    }
}
