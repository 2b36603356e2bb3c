//! Where grants live: a trait any backend implements, and its SQLite implementation.
//!
//! Every write bumps a store-wide revision and stamps the changed grant with it, so that a
//! process that did not make the change (the operator CLI, or another bastion node sharing a
//! database) is found by [`GrantStore::changed_since`] within one poll.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Approval, Change, ChangeKind, Grant, GrantError, GrantState, NewGrant, Timestamp};
use crate::store::SqliteStore;

/// Which grants to list.
#[derive(Debug, Clone, Default)]
pub struct GrantFilter {
    /// Only this user's.
    pub user: Option<String>,
    /// Only these states (empty: any).
    pub states: Vec<GrantState>,
    /// At most this many, newest first.
    pub limit: Option<u32>,
}

/// A grant's state as last written, for live enforcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantStatus {
    /// The grant.
    pub id: i64,
    /// Its stored state.
    pub state: GrantState,
    /// Its end, when active.
    pub expires_at: Option<Timestamp>,
    /// Who ended it.
    pub ended_by: Option<String>,
    /// Why.
    pub end_reason: Option<String>,
}

/// The operations Gatehouse needs from a grant store. Implementations must make [`apply`]
/// atomic: a change whose `expected` state no longer holds is refused with
/// [`GrantError::Conflict`].
///
/// [`apply`]: GrantStore::apply
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Inserts a grant; returns its id.
    async fn insert(&self, grant: &NewGrant) -> Result<i64, GrantError>;
    /// One grant with its approvals.
    async fn get(&self, id: i64) -> Result<Option<Grant>, GrantError>;
    /// The user's grants that are active and not past their end at `now`.
    async fn live_for_user(&self, user: &str, now: Timestamp) -> Result<Vec<Grant>, GrantError>;
    /// Grants matching `filter`, newest first.
    async fn list(&self, filter: &GrantFilter) -> Result<Vec<Grant>, GrantError>;
    /// Applies a decision if the grant is still in the expected state.
    async fn apply(&self, change: &Change) -> Result<Grant, GrantError>;
    /// Marks active grants past their end as expired, and pending ones older than `ttl_secs`
    /// as lapsed; returns the grants it ended.
    async fn sweep(&self, now: Timestamp, ttl_secs: i64) -> Result<Vec<Grant>, GrantError>;
    /// How many break-glass grants `user` received since `since` (the rate limit).
    async fn count_break_glass(&self, user: &str, since: Timestamp) -> Result<u64, GrantError>;
    /// The store revision now.
    async fn revision(&self) -> Result<i64, GrantError>;
    /// Grants changed after revision `since`.
    async fn changed_since(&self, since: i64) -> Result<Vec<GrantStatus>, GrantError>;
}

fn db(e: sqlx::Error) -> GrantError {
    GrantError::Store(e.to_string())
}

const COLUMNS: &str = "id, user, role, target, reason, duration_secs, state, break_glass, requested_at, \
                       activated_at, expires_at, ended_at, ended_by, end_reason";

fn grant_from_row(row: &SqliteRow) -> Result<Grant, GrantError> {
    let state: String = row.try_get("state").map_err(db)?;
    Ok(Grant {
        id: row.try_get("id").map_err(db)?,
        user: row.try_get("user").map_err(db)?,
        role: row.try_get("role").map_err(db)?,
        target: row.try_get("target").map_err(db)?,
        reason: row.try_get("reason").map_err(db)?,
        duration: std::time::Duration::from_secs(
            row.try_get::<i64, _>("duration_secs").map_err(db)?.max(0) as u64,
        ),
        state: GrantState::parse(&state)
            .ok_or_else(|| GrantError::Store(format!("unknown grant state {state:?}")))?,
        break_glass: row.try_get::<i64, _>("break_glass").map_err(db)? != 0,
        requested_at: row.try_get("requested_at").map_err(db)?,
        activated_at: row.try_get("activated_at").map_err(db)?,
        expires_at: row.try_get("expires_at").map_err(db)?,
        ended_at: row.try_get("ended_at").map_err(db)?,
        ended_by: row.try_get("ended_by").map_err(db)?,
        end_reason: row.try_get("end_reason").map_err(db)?,
        approvals: Vec::new(),
    })
}

impl SqliteStore {
    async fn with_approvals(&self, mut grants: Vec<Grant>) -> Result<Vec<Grant>, GrantError> {
        for g in &mut grants {
            let rows = sqlx::query("SELECT approver, comment, at FROM approvals WHERE grant_id = ? ORDER BY at, approver")
                .bind(g.id)
                .fetch_all(self.pool())
                .await
                .map_err(db)?;
            g.approvals = rows
                .iter()
                .map(|r| {
                    Ok(Approval {
                        approver: r.try_get("approver").map_err(db)?,
                        comment: r.try_get("comment").map_err(db)?,
                        at: r.try_get("at").map_err(db)?,
                    })
                })
                .collect::<Result<_, GrantError>>()?;
        }
        Ok(grants)
    }
}

/// Bumps the revision inside a transaction and returns the new value.
async fn bump(tx: &mut sqlx::SqliteConnection) -> Result<i64, GrantError> {
    sqlx::query_scalar("UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value")
        .fetch_one(tx)
        .await
        .map_err(db)
}

#[async_trait]
impl GrantStore for SqliteStore {
    async fn insert(&self, g: &NewGrant) -> Result<i64, GrantError> {
        let mut tx = self.begin_write().await.map_err(db)?;
        let rev = bump(&mut tx).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO grants (user, role, target, reason, duration_secs, state, break_glass, requested_at, \
             activated_at, expires_at, rev) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&g.user)
        .bind(&g.role)
        .bind(&g.target)
        .bind(&g.reason)
        .bind(g.duration.as_secs() as i64)
        .bind(g.state.as_str())
        .bind(g.break_glass as i64)
        .bind(g.requested_at)
        .bind(g.activated_at)
        .bind(g.expires_at)
        .bind(rev)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(id)
    }

    async fn get(&self, id: i64) -> Result<Option<Grant>, GrantError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM grants WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(db)?;
        match row {
            Some(row) => Ok(self
                .with_approvals(vec![grant_from_row(&row)?])
                .await?
                .pop()),
            None => Ok(None),
        }
    }

    async fn live_for_user(&self, user: &str, now: Timestamp) -> Result<Vec<Grant>, GrantError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM grants WHERE user = ? AND state = 'active' AND expires_at > ? ORDER BY expires_at DESC"
        )))
        .bind(user)
        .bind(now)
        .fetch_all(self.pool())
        .await
        .map_err(db)?;
        rows.iter().map(grant_from_row).collect()
    }

    async fn list(&self, filter: &GrantFilter) -> Result<Vec<Grant>, GrantError> {
        let mut sql = format!("SELECT {COLUMNS} FROM grants WHERE 1 = 1");
        if filter.user.is_some() {
            sql.push_str(" AND user = ?");
        }
        if !filter.states.is_empty() {
            let marks = vec!["?"; filter.states.len()].join(", ");
            sql.push_str(&format!(" AND state IN ({marks})"));
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(user) = &filter.user {
            query = query.bind(user);
        }
        for s in &filter.states {
            query = query.bind(s.as_str());
        }
        let rows = query
            .bind(filter.limit.unwrap_or(1000) as i64)
            .fetch_all(self.pool())
            .await
            .map_err(db)?;
        let grants = rows
            .iter()
            .map(grant_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        self.with_approvals(grants).await
    }

    async fn apply(&self, change: &Change) -> Result<Grant, GrantError> {
        let mut tx = self.begin_write().await.map_err(db)?;
        let current: Option<String> = sqlx::query_scalar("SELECT state FROM grants WHERE id = ?")
            .bind(change.grant_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some(current) = current else {
            return Err(GrantError::Usage(format!(
                "there is no grant {}",
                change.grant_id
            )));
        };
        if current != change.expected.as_str() {
            return Err(GrantError::Conflict(format!(
                "grant {} is {current}, not {}; nothing was changed",
                change.grant_id, change.expected
            )));
        }
        let rev = bump(&mut tx).await?;
        match &change.kind {
            ChangeKind::Approve {
                approver,
                comment,
                at,
                activates,
            } => {
                let inserted = sqlx::query("INSERT OR IGNORE INTO approvals (grant_id, approver, comment, at) VALUES (?, ?, ?, ?)")
                    .bind(change.grant_id)
                    .bind(approver)
                    .bind(comment)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                if inserted.rows_affected() == 0 {
                    return Err(GrantError::Conflict(format!(
                        "{approver} has already approved grant {}",
                        change.grant_id
                    )));
                }
                match activates {
                    Some((from, to)) => sqlx::query(
                        "UPDATE grants SET state = 'active', activated_at = ?, expires_at = ?, rev = ? WHERE id = ?",
                    )
                    .bind(from)
                    .bind(to)
                    .bind(rev)
                    .bind(change.grant_id),
                    None => sqlx::query("UPDATE grants SET rev = ? WHERE id = ?").bind(rev).bind(change.grant_id),
                }
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            ChangeKind::End {
                state,
                by,
                reason,
                at,
            } => {
                sqlx::query("UPDATE grants SET state = ?, ended_at = ?, ended_by = ?, end_reason = ?, rev = ? WHERE id = ?")
                    .bind(state.as_str())
                    .bind(at)
                    .bind(by)
                    .bind(reason)
                    .bind(rev)
                    .bind(change.grant_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
        }
        tx.commit().await.map_err(db)?;
        self.get(change.grant_id)
            .await?
            .ok_or_else(|| GrantError::Store("the grant vanished".into()))
    }

    async fn sweep(&self, now: Timestamp, ttl_secs: i64) -> Result<Vec<Grant>, GrantError> {
        const DUE: &str = "SELECT id FROM grants WHERE (state = 'active' AND expires_at <= ?) OR (state = 'pending' AND requested_at <= ?)";
        // Most sweeps find nothing: look first without queueing for the writer.
        let due: Vec<i64> = sqlx::query_scalar(DUE)
            .bind(now)
            .bind(now - ttl_secs)
            .fetch_all(self.pool())
            .await
            .map_err(db)?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await.map_err(db)?;
        let due: Vec<i64> = sqlx::query_scalar(DUE)
            .bind(now)
            .bind(now - ttl_secs)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let rev = bump(&mut tx).await?;
        sqlx::query(
            "UPDATE grants SET state = 'expired', ended_at = expires_at, ended_by = 'gatehouse', end_reason = 'time ran out', rev = ? \
             WHERE state = 'active' AND expires_at <= ?",
        )
        .bind(rev)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query(
            "UPDATE grants SET state = 'lapsed', ended_at = ?, ended_by = 'gatehouse', end_reason = 'nobody decided in time', rev = ? \
             WHERE state = 'pending' AND requested_at <= ?",
        )
        .bind(now)
        .bind(rev)
        .bind(now - ttl_secs)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let mut ended = Vec::with_capacity(due.len());
        for id in due {
            if let Some(g) = self.get(id).await? {
                ended.push(g);
            }
        }
        Ok(ended)
    }

    async fn count_break_glass(&self, user: &str, since: Timestamp) -> Result<u64, GrantError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM grants WHERE user = ? AND break_glass = 1 AND requested_at >= ?",
        )
        .bind(user)
        .bind(since)
        .fetch_one(self.pool())
        .await
        .map_err(db)?;
        Ok(n.max(0) as u64)
    }

    async fn revision(&self) -> Result<i64, GrantError> {
        sqlx::query_scalar("SELECT value FROM revision WHERE id = 1")
            .fetch_one(self.pool())
            .await
            .map_err(db)
    }

    async fn changed_since(&self, since: i64) -> Result<Vec<GrantStatus>, GrantError> {
        let rows = sqlx::query(
            "SELECT id, state, expires_at, ended_by, end_reason FROM grants WHERE rev > ?",
        )
        .bind(since)
        .fetch_all(self.pool())
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state").map_err(db)?;
                Ok(GrantStatus {
                    id: r.try_get("id").map_err(db)?,
                    state: GrantState::parse(&state).ok_or_else(|| {
                        GrantError::Store(format!("unknown grant state {state:?}"))
                    })?,
                    expires_at: r.try_get("expires_at").map_err(db)?,
                    ended_by: r.try_get("ended_by").map_err(db)?,
                    end_reason: r.try_get("end_reason").map_err(db)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn new_grant(user: &str, state: GrantState, now: i64) -> NewGrant {
        NewGrant {
            user: user.into(),
            role: "web-ops".into(),
            target: "web-01".into(),
            reason: "INC-1".into(),
            duration: Duration::from_secs(60),
            state,
            break_glass: false,
            requested_at: now,
            activated_at: (state == GrantState::Active).then_some(now),
            expires_at: (state == GrantState::Active).then_some(now + 60),
        }
    }

    #[tokio::test]
    async fn grants_round_trip_and_changes_are_compare_and_set() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("g.db")).await.unwrap();
        let id = store
            .insert(&new_grant("alice", GrantState::Pending, 100))
            .await
            .unwrap();
        let rev = store.revision().await.unwrap();
        let approve = Change {
            grant_id: id,
            expected: GrantState::Pending,
            kind: ChangeKind::Approve {
                approver: "bob".into(),
                comment: None,
                at: 110,
                activates: Some((110, 170)),
            },
        };
        let g = store.apply(&approve).await.unwrap();
        assert_eq!(g.state, GrantState::Active);
        assert_eq!(g.approvals.len(), 1);
        assert!(
            matches!(store.apply(&approve).await, Err(GrantError::Conflict(_))),
            "no longer pending"
        );
        assert_eq!(store.live_for_user("alice", 150).await.unwrap().len(), 1);
        assert!(store.live_for_user("alice", 170).await.unwrap().is_empty());
        let changed = store.changed_since(rev).await.unwrap();
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].state, GrantState::Active);
        let ended = store.sweep(200, 3600).await.unwrap();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].state, GrantState::Expired);
        assert!(store.sweep(200, 3600).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn pending_requests_lapse() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("g.db")).await.unwrap();
        store
            .insert(&new_grant("alice", GrantState::Pending, 100))
            .await
            .unwrap();
        assert!(store.sweep(150, 100).await.unwrap().is_empty());
        let ended = store.sweep(200, 100).await.unwrap();
        assert_eq!(ended[0].state, GrantState::Lapsed);
    }
}
