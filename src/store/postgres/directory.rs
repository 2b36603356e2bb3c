//! The directory's state in PostgreSQL (see [`crate::store::directory`]).

use async_trait::async_trait;
use sqlx::Row;

use super::PgStore;
use crate::grants::Timestamp;
use crate::store::StoreError;
use crate::store::directory::{DirectoryRecord, DirectoryStore};

#[async_trait]
impl DirectoryStore for PgStore {
    async fn directory(&self) -> Result<DirectoryRecord, StoreError> {
        let row = sqlx::query(
            "SELECT revision, snapshot, synced_at, synced_by, held, held_at, failure, failed_at
             FROM directory_state WHERE id = 1",
        )
        .fetch_one(self.pool())
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
                .fetch_one(self.pool())
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
            "UPDATE directory_state SET revision = revision + 1, snapshot = $1, synced_at = $2,
                 synced_by = $3, held = NULL, held_at = NULL, failure = NULL, failed_at = NULL
             WHERE id = 1 AND revision = $4",
        )
        .bind(snapshot)
        .bind(synced_at)
        .bind(synced_by)
        .bind(expected)
        .execute(self.pool())
        .await?;
        if saved.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "another sync of the directory landed meanwhile".into(),
            ));
        }
        Ok(expected + 1)
    }

    async fn hold_directory(&self, held: &str, at: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE directory_state SET held = $1, held_at = $2 WHERE id = 1")
            .bind(held)
            .bind(at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn directory_failed(&self, error: &str, at: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let before: Option<String> =
            sqlx::query_scalar("SELECT failure FROM directory_state WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query("UPDATE directory_state SET failure = $1, failed_at = $2 WHERE id = 1")
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
            "UPDATE directory_state SET lease_node = $1, lease_until = $2
             WHERE id = 1 AND (lease_node IS NULL OR lease_node = $3 OR lease_until < $4)",
        )
        .bind(node)
        .bind(until)
        .bind(node)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(claimed.rows_affected() == 1)
    }
}
