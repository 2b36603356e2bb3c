//! The durable alert outbox as a store offers it: alert deliveries as rows (`alert_outbox`), so
//! that none is lost to a sink that is down, to a restart, or to a node that dies.
//!
//! A row is claimed by one conditional update that counts the attempt and pushes
//! `next_attempt_ms` to the end of a lease; the attempt then marks it delivered or sets the
//! retry time. Two loops (in one process or on two nodes) therefore never attempt the same row
//! at once, and a process that dies mid-attempt leaves a row that becomes due, for any node,
//! when its lease ends. Times are Unix milliseconds.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;

/// Longest `last_error` kept per row; the full text went to the observer.
pub const MAX_ERROR_LEN: usize = 2048;

/// A row claimed for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The row.
    pub id: i64,
    /// The alert it delivers.
    pub alert_id: Uuid,
    /// The sink's stable name.
    pub sink: String,
    /// The alert as JSON.
    pub payload: String,
    /// The attempt number this claim is (from 1).
    pub attempt: u32,
}

/// An undelivered row, as listed for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The alert it delivers.
    pub alert_id: Uuid,
    /// The sink's stable name.
    pub sink: String,
    /// Attempts started so far.
    pub attempts: u32,
    /// When it may next be tried (Unix ms).
    pub next_attempt_ms: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued (Unix ms).
    pub created_ms: i64,
}

/// The outbox operations the alert dispatcher needs.
#[async_trait]
pub trait AlertOutbox: Send + Sync {
    /// Inserts one row per sink in one transaction and returns the (row id, sink) of each row
    /// inserted; a sink that already has a row for this alert is left alone. `attempts` is 1
    /// for rows the caller attempts at once (claimed until `next_attempt_ms`), else 0.
    async fn enqueue(
        &self,
        alert_id: Uuid,
        payload: &str,
        sinks: &[&str],
        next_attempt_ms: i64,
        attempts: u32,
    ) -> Result<Vec<(i64, String)>, StoreError>;

    /// Claims up to `limit` due rows of the sinks in `known`, oldest due first, leasing each
    /// until `lease_end_ms`. A row another node holds is skipped, never waited for.
    async fn claim_due(
        &self,
        known: &[String],
        now_ms: i64,
        lease_end_ms: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// When the next row of a sink in `known` becomes due (Unix ms), if any is queued.
    async fn next_due(&self, known: &[String]) -> Result<Option<i64>, StoreError>;

    /// Records that row `id` was delivered.
    async fn mark_delivered(&self, id: i64, at_ms: i64) -> Result<(), StoreError>;

    /// Records a failed attempt on row `id` and when to try again (`error` is cut to
    /// [`MAX_ERROR_LEN`]).
    async fn schedule_retry(&self, id: i64, at_ms: i64, error: &str) -> Result<(), StoreError>;

    /// Sinks not in `known` that still have undelivered rows, with how many, oldest first.
    async fn unknown_sinks(&self, known: &[String]) -> Result<Vec<(String, i64)>, StoreError>;

    /// Deletes delivered rows older than `before_ms`: the audit log keeps the history, the
    /// outbox only needs what is still to do.
    async fn prune_delivered(&self, before_ms: i64) -> Result<u64, StoreError>;

    /// Every undelivered row, oldest first.
    async fn pending(&self) -> Result<Vec<Queued>, StoreError>;

    /// How many rows are undelivered, of any sink: the backlog, counted on the index of due
    /// rows, cheap enough to sample every few seconds for the metrics.
    async fn backlog(&self) -> Result<u64, StoreError>;

    /// Deletes the undelivered rows of `sink`.
    async fn forget_sink(&self, sink: &str) -> Result<u64, StoreError>;
}

/// `error` cut to at most [`MAX_ERROR_LEN`] bytes on a character boundary.
pub fn clip_error(error: &str) -> &str {
    if error.len() <= MAX_ERROR_LEN {
        return error;
    }
    let mut cut = MAX_ERROR_LEN;
    while !error.is_char_boundary(cut) {
        cut -= 1;
    }
    &error[..cut]
}
