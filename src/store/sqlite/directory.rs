//! The directory's state in SQLite (see [`crate::store::directory`]).

use async_trait::async_trait;
use sqlx::Row;

use super::SqliteStore;
use crate::grants::Timestamp;
use crate::store::StoreError;
use crate::store::directory::{DirectoryRecord, DirectoryStore};

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn directory(&self) -> Result<DirectoryRecord, StoreError> {
        let row = sqlx::query(
            "SELECT revision, snapshot, synced_at, synced_by, held, held_at, failure, failed_at
             FROM directory_state WHERE id = 1",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(crate::store::directory::record(
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
            (row.try_get(4)?, row.try_get(5)?),
            (row.try_get(6)?, row.try_get(7)?),
        ))
    }

    async fn directory_revision(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT revision FROM directory_state WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn save_directory(
        &self,
        expected: i64,
        snapshot: &str,
        synced_at: Timestamp,
        synced_by: &str,
    ) -> Result<i64, StoreError> {
        let saved = sqlx::query(
            "UPDATE directory_state SET revision = revision + 1, snapshot = ?, synced_at = ?,
                 synced_by = ?, held = NULL, held_at = NULL, failure = NULL, failed_at = NULL
             WHERE id = 1 AND revision = ?",
        )
        .bind(snapshot)
        .bind(synced_at)
        .bind(synced_by)
        .bind(expected)
        .execute(self.writer())
        .await?;
        if saved.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "another sync of the directory landed meanwhile".into(),
            ));
        }
        Ok(expected + 1)
    }

    async fn hold_directory(&self, held: &str, at: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE directory_state SET held = ?, held_at = ? WHERE id = 1")
            .bind(held)
            .bind(at)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn directory_failed(&self, error: &str, at: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let before: Option<String> =
            sqlx::query_scalar("SELECT failure FROM directory_state WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query("UPDATE directory_state SET failure = ?, failed_at = ? WHERE id = 1")
            .bind(error)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(before.is_none())
    }

    async fn claim_directory_sync(
        &self,
        node: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let claimed = sqlx::query(
            "UPDATE directory_state SET lease_node = ?, lease_until = ?
             WHERE id = 1 AND (lease_node IS NULL OR lease_node = ? OR lease_until < ?)",
        )
        .bind(node)
        .bind(until)
        .bind(node)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(claimed.rows_affected() == 1)
    }
}
