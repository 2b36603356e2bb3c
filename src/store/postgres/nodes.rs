//! The node registry in PostgreSQL: the nodes sharing the database heartbeat into one table,
//! and a silent node is declared gone by one conditional `UPDATE`, which gives each name to
//! exactly one of the nodes that look at once (the others wait on its row, then see it gone).

use async_trait::async_trait;
use sqlx::Row;

use super::PgStore;
use crate::grants::Timestamp;
use crate::store::StoreError;
use crate::store::nodes::{Heartbeat, NodeRecord, NodeRegistry, NodeState};

#[async_trait]
impl NodeRegistry for PgStore {
    async fn heartbeat(&self, beat: &Heartbeat, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nodes (name, version, listen, started_at, last_seen, state)
             VALUES ($1, $2, $3, $4, $5, 'up')
             ON CONFLICT (name) DO UPDATE SET version = excluded.version,
                 listen = excluded.listen, started_at = excluded.started_at,
                 last_seen = excluded.last_seen, state = 'up'",
        )
        .bind(&beat.name)
        .bind(&beat.version)
        .bind(&beat.listen)
        .bind(beat.started_at)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn node_stopped(&self, name: &str, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE nodes SET state = 'stopped', last_seen = $1 WHERE name = $2")
            .bind(now)
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT n.name, n.version, n.listen, n.started_at, n.last_seen, n.state,
                    (SELECT COUNT(*) FROM sessions s
                     WHERE s.node = n.name AND s.ended_at IS NULL) AS live
             FROM nodes n ORDER BY n.name COLLATE \"C\"",
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
        Ok(sqlx::query_scalar(
            "UPDATE nodes SET state = 'gone' WHERE state = 'up' AND last_seen < $1 RETURNING name",
        )
        .bind(silent_since)
        .fetch_all(self.pool())
        .await?)
    }
}
