//! The alert outbox in PostgreSQL. A claim is one `UPDATE` of rows picked with
//! `FOR UPDATE SKIP LOCKED`: the rows another node is claiming at that moment are skipped, not
//! waited for, and a row claimed and committed meanwhile is re-checked against its new lease
//! and left alone, so no row is ever handed to two attempts at once.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::PgStore;
use crate::store::StoreError;
use crate::store::outbox::{AlertOutbox, Claimed, Queued, clip_error};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// An attempt count as the outbox reports it.
fn attempts(row: &PgRow) -> Result<u32, sqlx::Error> {
    Ok(u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX))
}

/// A stored alert id (written by this crate, so always a UUID).
fn alert_id(row: &PgRow) -> Result<Uuid, sqlx::Error> {
    let text: String = row.try_get("alert_id")?;
    Ok(Uuid::parse_str(&text).unwrap_or_default())
}

#[async_trait]
impl AlertOutbox for PgStore {
    async fn enqueue(
        &self,
        alert_id: Uuid,
        payload: &str,
        sinks: &[&str],
        next_attempt_ms: i64,
        attempts: u32,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let mut rows = Vec::with_capacity(sinks.len());
        for sink in sinks {
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO alert_outbox (alert_id, sink, payload, created_ms, attempts, next_attempt_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)
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
             SET attempts = attempts + 1, next_attempt_ms = $1
             WHERE id IN (
                 SELECT id FROM alert_outbox
                 WHERE delivered_ms IS NULL AND next_attempt_ms <= $2 AND sink = ANY($3)
                 ORDER BY next_attempt_ms, id
                 LIMIT $4
                 FOR UPDATE SKIP LOCKED)
             RETURNING id, alert_id, sink, payload, attempts",
        )
        .bind(lease_end_ms)
        .bind(now_ms)
        .bind(known)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok(Claimed {
                    id: row.try_get("id")?,
                    alert_id: alert_id(row)?,
                    sink: row.try_get("sink")?,
                    payload: row.try_get("payload")?,
                    attempt: attempts(row)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        // RETURNING gives no order guarantee.
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    async fn next_due(&self, known: &[String]) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(next_attempt_ms) FROM alert_outbox
             WHERE delivered_ms IS NULL AND sink = ANY($1)",
        )
        .bind(known)
        .fetch_one(self.pool())
        .await?)
    }

    async fn mark_delivered(&self, id: i64, at_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE alert_outbox SET delivered_ms = $1 WHERE id = $2")
            .bind(at_ms)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn schedule_retry(&self, id: i64, at_ms: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE alert_outbox SET next_attempt_ms = $1, last_error = $2
             WHERE id = $3 AND delivered_ms IS NULL",
        )
        .bind(at_ms)
        .bind(clip_error(error))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn unknown_sinks(&self, known: &[String]) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT sink, COUNT(*) FROM alert_outbox
             WHERE delivered_ms IS NULL AND sink <> ALL($1)
             GROUP BY sink ORDER BY MIN(id)",
        )
        .bind(known)
        .fetch_all(self.pool())
        .await?)
    }

    async fn prune_delivered(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM alert_outbox WHERE delivered_ms IS NOT NULL AND delivered_ms < $1",
        )
        .bind(before_ms)
        .execute(self.pool())
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
            .iter()
            .map(|row| {
                Ok(Queued {
                    alert_id: alert_id(row)?,
                    sink: row.try_get("sink")?,
                    attempts: attempts(row)?,
                    next_attempt_ms: row.try_get("next_attempt_ms")?,
                    last_error: row.try_get("last_error")?,
                    created_ms: row.try_get("created_ms")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn backlog(&self) -> Result<u64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM alert_outbox WHERE delivered_ms IS NULL")
                .fetch_one(self.pool())
                .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn forget_sink(&self, sink: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM alert_outbox WHERE sink = $1 AND delivered_ms IS NULL")
            .bind(sink)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
