//! The durable outbox: alert deliveries as rows in the store (`alert_outbox`), so that none is
//! lost to a sink that is down or to a restart.
//!
//! A row is claimed by one conditional `UPDATE` that counts the attempt and pushes
//! `next_attempt_ms` to the end of a lease; the attempt then marks it delivered or sets the
//! retry time. Two loops (or a loop and `send_now`) therefore never attempt the same row at
//! once, and a process that dies mid-attempt leaves a row that becomes due when its lease ends.

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{PendingDelivery, sink_label};
use crate::store::SqliteStore;

/// Longest `last_error` kept per row; the full text went to the observer.
const MAX_ERROR_LEN: usize = 2048;

/// The current time as the outbox stores it (Unix milliseconds).
pub(super) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A row claimed for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Claimed {
    pub id: i64,
    pub alert_id: Uuid,
    pub sink: String,
    pub payload: String,
    /// The attempt number this claim is (from 1).
    pub attempt: u32,
}

/// The `alert_outbox` table.
pub(super) struct Outbox {
    store: SqliteStore,
}

impl Outbox {
    pub(super) fn new(store: SqliteStore) -> Outbox {
        Outbox { store }
    }

    /// Inserts one row per sink in one transaction and returns the (row id, sink) of each row
    /// inserted; a sink that already has a row for this alert is left alone. `attempts` is 1
    /// for rows the caller attempts at once (claimed until `next_attempt_ms`), else 0.
    pub(super) async fn enqueue(
        &self,
        alert_id: Uuid,
        payload: &str,
        sinks: &[&str],
        next_attempt_ms: i64,
        attempts: u32,
    ) -> Result<Vec<(i64, String)>, sqlx::Error> {
        let now = now_ms();
        let mut tx = self.store.begin_write().await?;
        let mut rows = Vec::with_capacity(sinks.len());
        for sink in sinks {
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO alert_outbox (alert_id, sink, payload, created_ms, attempts, next_attempt_ms)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (alert_id, sink) DO NOTHING
                 RETURNING id",
            )
            .bind(alert_id.to_string())
            .bind(*sink)
            .bind(payload)
            .bind(now)
            .bind(i64::from(attempts))
            .bind(next_attempt_ms)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(id) = id {
                rows.push((id, (*sink).to_owned()));
            }
        }
        tx.commit().await?;
        Ok(rows)
    }

    /// Claims up to `limit` due rows of the sinks in `known` (a JSON array of names), oldest
    /// due first, leasing each until `lease_end_ms`.
    pub(super) async fn claim_due(
        &self,
        known: &str,
        now_ms: i64,
        lease_end_ms: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>, sqlx::Error> {
        let rows = sqlx::query(
            "UPDATE alert_outbox
             SET attempts = attempts + 1, next_attempt_ms = ?
             WHERE id IN (
                 SELECT id FROM alert_outbox
                 WHERE delivered_ms IS NULL AND next_attempt_ms <= ?
                   AND sink IN (SELECT value FROM json_each(?))
                 ORDER BY next_attempt_ms, id
                 LIMIT ?)
             RETURNING id, alert_id, sink, payload, attempts",
        )
        .bind(lease_end_ms)
        .bind(now_ms)
        .bind(known)
        .bind(limit as i64)
        .fetch_all(self.store.writer())
        .await?;
        let mut claimed: Vec<Claimed> = rows
            .into_iter()
            .map(|row| {
                let alert_id: String = row.get("alert_id");
                Claimed {
                    id: row.get("id"),
                    alert_id: Uuid::parse_str(&alert_id).unwrap_or_default(),
                    sink: row.get("sink"),
                    payload: row.get("payload"),
                    attempt: u32::try_from(row.get::<i64, _>("attempts")).unwrap_or(u32::MAX),
                }
            })
            .collect();
        // RETURNING gives no order guarantee.
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    /// When the next row of a sink in `known` becomes due (Unix ms), if any is queued.
    pub(super) async fn next_due(&self, known: &str) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT MIN(next_attempt_ms) FROM alert_outbox
             WHERE delivered_ms IS NULL AND sink IN (SELECT value FROM json_each(?))",
        )
        .bind(known)
        .fetch_one(self.store.pool())
        .await
    }

    /// Records that row `id` was delivered.
    pub(super) async fn mark_delivered(&self, id: i64, at_ms: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE alert_outbox SET delivered_ms = ? WHERE id = ?")
            .bind(at_ms)
            .bind(id)
            .execute(self.store.writer())
            .await?;
        Ok(())
    }

    /// Records a failed attempt on row `id` and when to try again.
    pub(super) async fn schedule_retry(
        &self,
        id: i64,
        at_ms: i64,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        let mut error = error.to_owned();
        if error.len() > MAX_ERROR_LEN {
            let mut cut = MAX_ERROR_LEN;
            while !error.is_char_boundary(cut) {
                cut -= 1;
            }
            error.truncate(cut);
        }
        sqlx::query(
            "UPDATE alert_outbox SET next_attempt_ms = ?, last_error = ?
             WHERE id = ? AND delivered_ms IS NULL",
        )
        .bind(at_ms)
        .bind(error)
        .bind(id)
        .execute(self.store.writer())
        .await?;
        Ok(())
    }

    /// Sinks not in `known` that still have undelivered rows, with how many, oldest first.
    pub(super) async fn unknown_sinks(
        &self,
        known: &str,
    ) -> Result<Vec<(String, i64)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT sink, COUNT(*) FROM alert_outbox
             WHERE delivered_ms IS NULL AND sink NOT IN (SELECT value FROM json_each(?))
             GROUP BY sink ORDER BY MIN(id)",
        )
        .bind(known)
        .fetch_all(self.store.pool())
        .await
    }

    /// Deletes delivered rows older than `before_ms`: the audit log keeps the history, the
    /// outbox only needs what is still to do.
    pub(super) async fn prune_delivered(&self, before_ms: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "DELETE FROM alert_outbox WHERE delivered_ms IS NOT NULL AND delivered_ms < ?",
        )
        .bind(before_ms)
        .execute(self.store.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// Every undelivered row, oldest first (`configured` is left false for the caller to fill).
    pub(super) async fn pending(&self) -> Result<Vec<PendingDelivery>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT alert_id, sink, attempts, next_attempt_ms, last_error, created_ms
             FROM alert_outbox WHERE delivered_ms IS NULL ORDER BY id",
        )
        .fetch_all(self.store.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let alert_id: String = row.get("alert_id");
                let sink: String = row.get("sink");
                PendingDelivery {
                    alert_id: Uuid::parse_str(&alert_id).unwrap_or_default(),
                    label: sink_label(&sink),
                    sink,
                    configured: false,
                    attempts: u32::try_from(row.get::<i64, _>("attempts")).unwrap_or(u32::MAX),
                    next_attempt: from_ms(row.get("next_attempt_ms")),
                    last_error: row.get("last_error"),
                    queued: from_ms(row.get("created_ms")),
                }
            })
            .collect())
    }

    /// Deletes the undelivered rows of `sink`.
    pub(super) async fn forget_sink(&self, sink: &str) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM alert_outbox WHERE sink = ? AND delivered_ms IS NULL")
            .bind(sink)
            .execute(self.store.writer())
            .await?;
        Ok(done.rows_affected())
    }
}
