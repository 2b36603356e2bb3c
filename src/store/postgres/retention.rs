//! Legal holds and forgetting sessions in PostgreSQL, shared by every node.
//!
//! A deletion locks the session's row (`FOR UPDATE`) before it looks for a hold; a hold locks
//! the same row (`FOR SHARE`) before it writes one. The two conflict, so whichever comes second
//! waits for the first to commit and then sees its result: a new statement in `READ COMMITTED`
//! reads what was committed before it started. A session is therefore never forgotten while a
//! hold on it commits, and two nodes never forget the same session twice (the second finds the
//! row gone).

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgStore;
use super::sessions::{COLUMNS, from_row as session_from_row};
use crate::store::StoreError;
use crate::store::retention::{Expiry, ForgetError, Hold, HoldError, Retention, Seal};
use crate::store::sessions::SessionRecord;

fn hold_from_row(row: &PgRow) -> Result<Hold, sqlx::Error> {
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
    "DELETE FROM file_ops WHERE session_id = $1",
    "DELETE FROM reviews WHERE session_id = $1",
];

/// The session `id`, its row locked in `tx` with `lock` (`FOR SHARE` or `FOR UPDATE`).
async fn locked_session(
    tx: &mut sqlx::PgConnection,
    id: &str,
    lock: &str,
) -> Result<Option<SessionRecord>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sessions s WHERE s.id = $1 {lock}"
    )))
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.as_ref().map(session_from_row).transpose()?)
}

/// Rolls `tx` back after a failed seal, logging a failure to do so.
async fn undo(tx: sqlx::Transaction<'_, sqlx::Postgres>) {
    if let Err(e) = tx.rollback().await {
        tracing::error!(error = %e, "rolling back a sealed change failed");
    }
}

#[async_trait]
impl Retention for PgStore {
    async fn hold(&self, hold: &Hold, seal: &dyn Seal) -> Result<SessionRecord, HoldError> {
        let mut tx = self.pool().begin().await.map_err(StoreError::from)?;
        let session = locked_session(&mut tx, &hold.session_id, "FOR SHARE")
            .await?
            .ok_or_else(|| HoldError::NoSession(hold.session_id.clone()))?;
        let done = sqlx::query(
            "INSERT INTO holds (session_id, held_by, reason, held_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&hold.session_id)
        .bind(&hold.held_by)
        .bind(&hold.reason)
        .bind(hold.held_at)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if done.rows_affected() == 0 {
            let by: Option<String> =
                sqlx::query_scalar("SELECT held_by FROM holds WHERE session_id = $1")
                    .bind(&hold.session_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
            tx.rollback().await.map_err(StoreError::from)?;
            return Err(HoldError::AlreadyHeld(
                hold.session_id.clone(),
                by.unwrap_or_default(),
            ));
        }
        if let Err(e) = seal.seal(&session).await {
            undo(tx).await;
            return Err(e.into());
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(session)
    }

    async fn release(&self, session_id: &str, seal: &dyn Seal) -> Result<Hold, HoldError> {
        let mut tx = self.pool().begin().await.map_err(StoreError::from)?;
        let session = locked_session(&mut tx, session_id, "FOR SHARE")
            .await?
            .ok_or_else(|| HoldError::NoSession(session_id.to_owned()))?;
        let released = sqlx::query("DELETE FROM holds WHERE session_id = $1 RETURNING *")
            .bind(session_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?
            .as_ref()
            .map(hold_from_row)
            .transpose()
            .map_err(StoreError::from)?;
        let Some(released) = released else {
            tx.rollback().await.map_err(StoreError::from)?;
            return Err(HoldError::NotHeld(session_id.to_owned()));
        };
        if let Err(e) = seal.seal(&session).await {
            undo(tx).await;
            return Err(e.into());
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(released)
    }

    async fn hold_of(&self, session_id: &str) -> Result<Option<Hold>, StoreError> {
        let row = sqlx::query("SELECT * FROM holds WHERE session_id = $1")
            .bind(session_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(hold_from_row).transpose()?)
    }

    async fn holds(&self) -> Result<Vec<Hold>, StoreError> {
        let rows = sqlx::query("SELECT * FROM holds ORDER BY held_at, session_id COLLATE \"C\"")
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(hold_from_row).collect::<Result<_, _>>()?)
    }

    async fn expired(&self, expiry: &Expiry, limit: u32) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM sessions s WHERE (s.node = $1 OR s.node = '') \
             AND s.ended_at IS NOT NULL AND s.ended_at < $2 \
             AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.session_id = s.id) \
             ORDER BY s.ended_at, s.id COLLATE \"C\" LIMIT $3"
        )))
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
        let mut tx = self.pool().begin().await.map_err(StoreError::from)?;
        let locked = locked_session(&mut tx, session_id, "FOR UPDATE").await?;
        // Read after the lock is granted, so a hold committed while this waited is seen.
        let held: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM holds WHERE session_id = $1)")
                .bind(session_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        let session = locked.filter(|s| {
            !held
                && (s.node == expiry.node || s.node.is_empty())
                && s.ended_at.is_some_and(|end| end < expiry.ended_before)
        });
        let Some(session) = session else {
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
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(session_id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        if let Err(e) = seal.seal(&session).await {
            undo(tx).await;
            return Err(e.into());
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Some(session))
    }
}
