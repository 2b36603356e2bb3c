//! The session index and the review queue in SQLite.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use crate::grants::Timestamp;
use crate::store::StoreError;
use crate::store::sessions::{
    AckError, Review, ReviewSeal, SessionEnd, SessionFilter, SessionIndex, SessionRecord,
};

pub(super) fn from_row(row: &SqliteRow) -> Result<SessionRecord, sqlx::Error> {
    Ok(SessionRecord {
        id: row.try_get("id")?,
        node: row.try_get("node")?,
        user: row.try_get("user")?,
        target: row.try_get("target")?,
        role: row.try_get("role")?,
        grant_id: row.try_get("grant_id")?,
        kind: row.try_get("kind")?,
        command: row.try_get("command")?,
        break_glass: row.try_get::<i64, _>("break_glass")? != 0,
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

#[async_trait]
impl SessionIndex for SqliteStore {
    async fn started(&self, s: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, node, user, target, role, grant_id, kind, command, break_glass, started_at, recording) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(&s.node)
        .bind(&s.user)
        .bind(&s.target)
        .bind(&s.role)
        .bind(s.grant_id)
        .bind(&s.kind)
        .bind(&s.command)
        .bind(s.break_glass as i64)
        .bind(s.started_at)
        .bind(&s.recording)
        .execute(self.writer())
        .await
        .inspect_err(|e| self.report_fault(format!("a session could not be indexed: {e}")))?;
        Ok(())
    }

    async fn ended(&self, id: &str, end: &SessionEnd) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET ended_at = ?, bytes_in = ?, bytes_out = ?, exit_status = ?, end_reason = ?, sha256 = COALESCE(?, sha256) WHERE id = ?",
        )
        .bind(end.ended_at)
        .bind(end.bytes_in as i64)
        .bind(end.bytes_out as i64)
        .bind(end.exit_status.map(i64::from))
        .bind(&end.end_reason)
        .bind(&end.sha256)
        .bind(id)
        .execute(self.writer())
        .await
        .inspect_err(|e| self.report_fault(format!("a session's end could not be indexed: {e}")))?;
        Ok(())
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM sessions WHERE id = ?")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    async fn sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM sessions WHERE (?1 IS NULL OR user = ?1) AND (?2 IS NULL OR target = ?2) \
             AND (?3 IS NULL OR started_at >= ?3) AND (?4 IS NULL OR role = ?4) \
             AND (?5 IS NULL OR started_at < ?5) AND (?6 IS NULL OR break_glass = ?6) \
             AND (?7 IS NULL OR (ended_at IS NULL) = ?7) \
             ORDER BY started_at DESC, id DESC LIMIT ?8 OFFSET ?9",
        )
        .bind(&filter.user)
        .bind(&filter.target)
        .bind(filter.since)
        .bind(&filter.role)
        .bind(filter.until)
        .bind(filter.break_glass)
        .bind(filter.running)
        .bind(filter.limit.unwrap_or(1000) as i64)
        .bind(filter.offset.unwrap_or(0) as i64)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    async fn review_queue(
        &self,
        pending_only: bool,
    ) -> Result<Vec<(SessionRecord, Option<Review>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.*, r.reviewer AS r_reviewer, r.note AS r_note, r.at AS r_at FROM sessions s \
             LEFT JOIN reviews r ON r.session_id = s.id WHERE s.break_glass = 1 AND (?1 = 0 OR r.session_id IS NULL) \
             ORDER BY s.started_at, s.id",
        )
        .bind(pending_only as i64)
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
        let mut tx = self.begin_write().await.map_err(StoreError::from)?;
        let done = sqlx::query(
            "INSERT OR IGNORE INTO reviews (session_id, reviewer, note, at) VALUES (?, ?, ?, ?)",
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
            "UPDATE sessions SET ended_at = ?, end_reason = ? \
             WHERE node = ? AND ended_at IS NULL AND started_at < ? RETURNING id",
        )
        .bind(at)
        .bind(reason)
        .bind(node)
        .bind(before)
        .fetch_all(self.writer())
        .await?)
    }
}
