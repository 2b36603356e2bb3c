//! The node registry in SQLite. A single node is a cluster of one: it heartbeats like any
//! other, so `gatehouse nodes list` works the same on the embedded store.
//!
//! Heartbeats hardly queue for the one writer connection: a beat that cannot have it within
//! [`BEAT_WAIT`] is skipped (the next one comes in a moment), so that behind a lock held by
//! another process they never pile up ahead of the writes that matter, decisions and session
//! ends.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::{Row, Sqlite};

use super::SqliteStore;
use crate::grants::Timestamp;
use crate::store::StoreError;
use crate::store::nodes::{Heartbeat, NodeRecord, NodeRegistry, NodeState};

/// Longest a heartbeat waits for the writer connection before it is skipped.
const BEAT_WAIT: Duration = Duration::from_millis(500);

impl SqliteStore {
    /// The writer connection if it is free within [`BEAT_WAIT`], else `None`.
    async fn writer_soon(&self) -> Result<Option<PoolConnection<Sqlite>>, StoreError> {
        match tokio::time::timeout(BEAT_WAIT, self.writer().acquire()).await {
            Ok(conn) => Ok(Some(conn?)),
            Err(_) => Ok(None),
        }
    }
}

#[async_trait]
impl NodeRegistry for SqliteStore {
    async fn heartbeat(&self, beat: &Heartbeat, now: Timestamp) -> Result<(), StoreError> {
        let Some(mut writer) = self.writer_soon().await? else {
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO nodes (name, version, listen, started_at, last_seen, state)
             VALUES (?, ?, ?, ?, ?, 'up')
             ON CONFLICT (name) DO UPDATE SET version = excluded.version,
                 listen = excluded.listen, started_at = excluded.started_at,
                 last_seen = excluded.last_seen, state = 'up'",
        )
        .bind(&beat.name)
        .bind(&beat.version)
        .bind(&beat.listen)
        .bind(beat.started_at)
        .bind(now)
        .execute(&mut *writer)
        .await?;
        Ok(())
    }

    async fn node_stopped(&self, name: &str, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE nodes SET state = 'stopped', last_seen = ? WHERE name = ?")
            .bind(now)
            .bind(name)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT n.name, n.version, n.listen, n.started_at, n.last_seen, n.state,
                    (SELECT COUNT(*) FROM sessions s
                     WHERE s.node = n.name AND s.ended_at IS NULL) AS live
             FROM nodes n ORDER BY n.name",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                Ok(NodeRecord {
                    name: r.try_get("name")?,
                    version: r.try_get("version")?,
                    listen: r.try_get("listen")?,
                    started_at: r.try_get("started_at")?,
                    last_seen: r.try_get("last_seen")?,
                    state: NodeState::parse(&state)
                        .ok_or_else(|| StoreError::Corrupt(format!("node state {state:?}")))?,
                    live_sessions: r.try_get("live")?,
                })
            })
            .collect()
    }

    async fn mark_gone(&self, silent_since: Timestamp) -> Result<Vec<String>, StoreError> {
        let Some(mut writer) = self.writer_soon().await? else {
            return Ok(Vec::new());
        };
        Ok(sqlx::query_scalar(
            "UPDATE nodes SET state = 'gone' WHERE state = 'up' AND last_seen < ? RETURNING name",
        )
        .bind(silent_since)
        .fetch_all(&mut *writer)
        .await?)
    }
}
