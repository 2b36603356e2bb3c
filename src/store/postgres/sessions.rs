//! The session index and the review queue in PostgreSQL.
//!
//! A review is one `INSERT … ON CONFLICT DO NOTHING` inside a transaction that stays open
//! until its audit line is written: a second reviewer, on this node or another, waits on the
//! first one's row and then finds it taken (or, if the first was rolled back, takes it).

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgStore;
use crate::grants::Timestamp;
use crate::store::StoreError;
use crate::store::sessions::{
    AckError, Review, ReviewSeal, SessionEnd, SessionFilter, SessionIndex, SessionRecord,
};

pub(super) const COLUMNS: &str = "s.id, s.node, s.\"user\", s.target, s.role, s.grant_id, s.kind, \
                       s.command, s.break_glass, s.started_at, s.ended_at, s.bytes_in, \
                       s.bytes_out, s.exit_status, s.end_reason, s.recording, s.sha256";

pub(super) fn from_row(row: &PgRow) -> Result<SessionRecord, sqlx::Error> {
    Ok(SessionRecord {
        id: row.try_get("id")?,
        node: row.try_get("node")?,
        user: row.try_get("user")?,
        target: row.try_get("target")?,
        role: row.try_get("role")?,
        grant_id: row.try_get("grant_id")?,
        kind: row.try_get("kind")?,
        command: row.try_get("command")?,
        break_glass: row.try_get("break_glass")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        bytes_in: row.try_get("bytes_in")?,
        bytes_out: row.try_get("bytes_out")?,
        exit_status: row.try_get("exit_status")?,
        end_reason: row.try_get("end_reason")?,
        recording: row.try_get("recording")?,
        sha256: row.try_get("sha256")?,
    })
}

/// A byte count as stored (counts beyond `i64::MAX` cannot happen; they are capped).
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl SessionIndex for PgStore {
    async fn started(&self, s: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, node, \"user\", target, role, grant_id, kind, command, \
             break_glass, started_at, recording) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&s.id)
        .bind(&s.node)
        .bind(&s.user)
        .bind(&s.target)
        .bind(&s.role)
        .bind(s.grant_id)
        .bind(&s.kind)
        .bind(&s.command)
        .bind(s.break_glass)
        .bind(s.started_at)
        .bind(&s.recording)
        .execute(self.pool())
        .await
        .inspect_err(|e| self.report_fault(format!("a session could not be indexed: {e}")))?;
        Ok(())
    }

    async fn ended(&self, id: &str, end: &SessionEnd) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET ended_at = $1, bytes_in = $2, bytes_out = $3, exit_status = $4, \
             end_reason = $5, sha256 = COALESCE($6, sha256) WHERE id = $7",
        )
        .bind(end.ended_at)
        .bind(count(end.bytes_in))
        .bind(count(end.bytes_out))
        .bind(end.exit_status.map(i64::from))
        .bind(&end.end_reason)
        .bind(&end.sha256)
        .bind(id)
        .execute(self.pool())
        .await
        .inspect_err(|e| self.report_fault(format!("a session's end could not be indexed: {e}")))?;
        Ok(())
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM sessions s WHERE s.id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    async fn sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM sessions s WHERE ($1::text IS NULL OR s.\"user\" = $1) \
             AND ($2::text IS NULL OR s.target = $2) AND ($3::bigint IS NULL OR s.started_at >= $3) \
             AND ($4::text IS NULL OR s.role = $4) AND ($5::bigint IS NULL OR s.started_at < $5) \
             AND ($6::boolean IS NULL OR s.break_glass = $6) \
             AND ($7::boolean IS NULL OR (s.ended_at IS NULL) = $7) \
             ORDER BY s.started_at DESC, s.id COLLATE \"C\" DESC LIMIT $8 OFFSET $9"
        )))
        .bind(&filter.user)
        .bind(&filter.target)
        .bind(filter.since)
        .bind(&filter.role)
        .bind(filter.until)
        .bind(filter.break_glass)
        .bind(filter.running)
        .bind(i64::from(filter.limit.unwrap_or(1000)))
        .bind(i64::from(filter.offset.unwrap_or(0)))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    async fn review_queue(
        &self,
        pending_only: bool,
    ) -> Result<Vec<(SessionRecord, Option<Review>)>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS}, r.reviewer AS r_reviewer, r.note AS r_note, r.at AS r_at \
             FROM sessions s LEFT JOIN reviews r ON r.session_id = s.id \
             WHERE s.break_glass AND (NOT $1 OR r.session_id IS NULL) \
             ORDER BY s.started_at, s.id COLLATE \"C\""
        )))
        .bind(pending_only)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let review = match row.try_get::<Option<String>, _>("r_reviewer")? {
                Some(reviewer) => Some(Review {
                    reviewer,
                    note: row.try_get("r_note")?,
                    at: row.try_get("r_at")?,
                }),
                None => None,
            };
            out.push((from_row(row)?, review));
        }
        Ok(out)
    }

    async fn acknowledge(
        &self,
        session_id: &str,
        review: &Review,
        seal: &dyn ReviewSeal,
    ) -> Result<(), AckError> {
        let mut tx = self.pool().begin().await.map_err(StoreError::from)?;
        let done = sqlx::query(
            "INSERT INTO reviews (session_id, reviewer, note, at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(session_id)
        .bind(&review.reviewer)
        .bind(&review.note)
        .bind(review.at)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if done.rows_affected() == 0 {
            tx.rollback().await.map_err(StoreError::from)?;
            return Err(AckError::Taken(session_id.to_owned()));
        }
        if let Err(e) = seal.seal().await {
            // Explicitly, so the review is gone before the caller reports it.
            if let Err(undo) = tx.rollback().await {
                tracing::error!(error = %undo, "rolling back a review failed");
            }
            return Err(e.into());
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    async fn close_orphans(
        &self,
        node: &str,
        before: Timestamp,
        at: Timestamp,
        reason: &str,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "UPDATE sessions SET ended_at = $1, end_reason = $2 \
             WHERE node = $3 AND ended_at IS NULL AND started_at < $4 RETURNING id",
        )
        .bind(at)
        .bind(reason)
        .bind(node)
        .bind(before)
        .fetch_all(self.pool())
        .await?)
    }
}
