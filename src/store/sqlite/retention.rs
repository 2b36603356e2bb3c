//! Legal holds and forgetting sessions in SQLite: each change is one `BEGIN IMMEDIATE`
//! transaction, so a hold and a deletion of the same session (from the server and the operator
//! command, in two processes) run one after the other and each sees what the other did.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use super::sessions::from_row as session_from_row;
use crate::store::StoreError;
use crate::store::retention::{Expiry, ForgetError, Hold, HoldError, Retention, Seal};
use crate::store::sessions::SessionRecord;

fn hold_from_row(row: &SqliteRow) -> Result<Hold, sqlx::Error> {
    Ok(Hold {
        session_id: row.try_get("session_id")?,
        held_by: row.try_get("held_by")?,
        reason: row.try_get("reason")?,
        held_at: row.try_get("held_at")?,
    })
}

/// The rows that derive from a session, deleted with it. The search index's rows belong here
/// too once there are any.
const DERIVED: &[&str] = &[
    "DELETE FROM file_ops WHERE session_id = ?",
    "DELETE FROM reviews WHERE session_id = ?",
];

/// Rolls `tx` back after a failed seal, logging a failure to do so.
async fn undo(tx: sqlx::Transaction<'_, sqlx::Sqlite>) {
    if let Err(e) = tx.rollback().await {
        tracing::error!(error = %e, "rolling back a sealed change failed");
    }
}

#[async_trait]
impl Retention for SqliteStore {
    async fn hold(&self, hold: &Hold, seal: &dyn Seal) -> Result<SessionRecord, HoldError> {
        let mut tx = self.begin_write().await.map_err(StoreError::from)?;
        let session = sqlx::query("SELECT * FROM sessions WHERE id = ?")
            .bind(&hold.session_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?
            .as_ref()
            .map(session_from_row)
            .transpose()
            .map_err(StoreError::from)?
            .ok_or_else(|| HoldError::NoSession(hold.session_id.clone()))?;
        let existing: Option<String> =
            sqlx::query_scalar("SELECT held_by FROM holds WHERE session_id = ?")
                .bind(&hold.session_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        if let Some(by) = existing {
            tx.rollback().await.map_err(StoreError::from)?;
            return Err(HoldError::AlreadyHeld(hold.session_id.clone(), by));
        }
        sqlx::query("INSERT INTO holds (session_id, held_by, reason, held_at) VALUES (?, ?, ?, ?)")
            .bind(&hold.session_id)
            .bind(&hold.held_by)
            .bind(&hold.reason)
            .bind(hold.held_at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        if let Err(e) = seal.seal(&session).await {
            undo(tx).await;
            return Err(e.into());
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(session)
    }

    async fn release(&self, session_id: &str, seal: &dyn Seal) -> Result<Hold, HoldError> {
        let mut tx = self.begin_write().await.map_err(StoreError::from)?;
        let session = sqlx::query("SELECT * FROM sessions WHERE id = ?")
            .bind(session_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?
            .as_ref()
            .map(session_from_row)
            .transpose()
            .map_err(StoreError::from)?
            .ok_or_else(|| HoldError::NoSession(session_id.to_owned()))?;
        let released = sqlx::query("DELETE FROM holds WHERE session_id = ? RETURNING *")
            .bind(session_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?
            .as_ref()
            .map(hold_from_row)
            .transpose()
            .map_err(StoreError::from)?
            .ok_or_else(|| HoldError::NotHeld(session_id.to_owned()))?;
        if let Err(e) = seal.seal(&session).await {
            undo(tx).await;
            return Err(e.into());
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(released)
    }

    async fn hold_of(&self, session_id: &str) -> Result<Option<Hold>, StoreError> {
        let row = sqlx::query("SELECT * FROM holds WHERE session_id = ?")
            .bind(session_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(hold_from_row).transpose()?)
    }

    async fn holds(&self) -> Result<Vec<Hold>, StoreError> {
        let rows = sqlx::query("SELECT * FROM holds ORDER BY held_at, session_id")
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(hold_from_row).collect::<Result<_, _>>()?)
    }

    async fn expired(&self, expiry: &Expiry, limit: u32) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM sessions s WHERE (s.node = ?1 OR s.node = '') \
             AND s.ended_at IS NOT NULL AND s.ended_at < ?2 \
             AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.session_id = s.id) \
             ORDER BY s.ended_at, s.id LIMIT ?3",
        )
        .bind(&expiry.node)
        .bind(expiry.ended_before)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(session_from_row)
            .collect::<Result<_, _>>()?)
    }

    async fn forget_session(
        &self,
        session_id: &str,
        expiry: &Expiry,
        seal: &dyn Seal,
    ) -> Result<Option<SessionRecord>, ForgetError> {
        let mut tx = self.begin_write().await.map_err(StoreError::from)?;
        // Under the write lock: nobody can place a hold or end the session meanwhile.
        let row = sqlx::query(
            "SELECT * FROM sessions s WHERE s.id = ?1 AND (s.node = ?2 OR s.node = '') \
             AND s.ended_at IS NOT NULL AND s.ended_at < ?3 \
             AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.session_id = s.id)",
        )
        .bind(session_id)
        .bind(&expiry.node)
        .bind(expiry.ended_before)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let Some(session) = row
            .as_ref()
            .map(session_from_row)
            .transpose()
            .map_err(StoreError::from)?
        else {
            tx.rollback().await.map_err(StoreError::from)?;
            return Ok(None);
        };
        for sql in DERIVED {
            sqlx::query(sqlx::AssertSqlSafe(*sql))
                .bind(session_id)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        }
        sqlx::query("DELETE FROM sessions WHERE id = ?")
            .bind(session_id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        if let Err(e) = seal.seal(&session).await {
            // Explicitly, so the row is back before the caller reports the failure.
            undo(tx).await;
            return Err(e.into());
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Some(session))
    }
}
