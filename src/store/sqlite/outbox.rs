//! The alert outbox in SQLite. Every change goes through the one writer connection, so a claim
//! (one `UPDATE … RETURNING`) is atomic against every other claim, in this process or another.

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::SqliteStore;
use crate::store::StoreError;
use crate::store::outbox::{AlertOutbox, Claimed, Queued, clip_error};

/// The sink names as the JSON array that `json_each` reads.
fn json_list(names: &[String]) -> String {
    serde_json::to_string(names).unwrap_or_else(|_| "[]".to_owned())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[async_trait]
impl AlertOutbox for SqliteStore {
    async fn enqueue(
        &self,
        alert_id: Uuid,
        payload: &str,
        sinks: &[&str],
        next_attempt_ms: i64,
        attempts: u32,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
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

    async fn claim_due(
        &self,
        known: &[String],
        now_ms: i64,
        lease_end_ms: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
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
        .bind(json_list(known))
        .bind(limit as i64)
        .fetch_all(self.writer())
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

    async fn next_due(&self, known: &[String]) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(next_attempt_ms) FROM alert_outbox
             WHERE delivered_ms IS NULL AND sink IN (SELECT value FROM json_each(?))",
        )
        .bind(json_list(known))
        .fetch_one(self.pool())
        .await?)
    }

    async fn mark_delivered(&self, id: i64, at_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE alert_outbox SET delivered_ms = ? WHERE id = ?")
            .bind(at_ms)
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn schedule_retry(&self, id: i64, at_ms: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE alert_outbox SET next_attempt_ms = ?, last_error = ?
             WHERE id = ? AND delivered_ms IS NULL",
        )
        .bind(at_ms)
        .bind(clip_error(error))
        .bind(id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn unknown_sinks(&self, known: &[String]) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT sink, COUNT(*) FROM alert_outbox
             WHERE delivered_ms IS NULL AND sink NOT IN (SELECT value FROM json_each(?))
             GROUP BY sink ORDER BY MIN(id)",
        )
        .bind(json_list(known))
        .fetch_all(self.pool())
        .await?)
    }

    async fn prune_delivered(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM alert_outbox WHERE delivered_ms IS NOT NULL AND delivered_ms < ?",
        )
        .bind(before_ms)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    async fn pending(&self) -> Result<Vec<Queued>, StoreError> {
        let rows = sqlx::query(
            "SELECT alert_id, sink, attempts, next_attempt_ms, last_error, created_ms
             FROM alert_outbox WHERE delivered_ms IS NULL ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let alert_id: String = row.get("alert_id");
                Queued {
                    alert_id: Uuid::parse_str(&alert_id).unwrap_or_default(),
                    sink: row.get("sink"),
                    attempts: u32::try_from(row.get::<i64, _>("attempts")).unwrap_or(u32::MAX),
                    next_attempt_ms: row.get("next_attempt_ms"),
                    last_error: row.get("last_error"),
                    created_ms: row.get("created_ms"),
                }
            })
            .collect())
    }

    async fn backlog(&self) -> Result<u64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM alert_outbox WHERE delivered_ms IS NULL")
                .fetch_one(self.pool())
                .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn forget_sink(&self, sink: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM alert_outbox WHERE sink = ? AND delivered_ms IS NULL")
            .bind(sink)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }
}
