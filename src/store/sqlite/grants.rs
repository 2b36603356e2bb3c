//! The SQLite grant store: reads on the shared pool, every change through one `BEGIN IMMEDIATE`
//! transaction on the writer connection, which also serialises against the operator CLI (another
//! process on the same file).

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::SqliteStore;
use crate::grants::Timestamp;
use crate::grants::store::{
    Applied, GrantFilter, GrantStatus, GrantStore, Reads, Snapshot, Transition, Write,
    expect_state, state_counts,
};
use crate::grants::{Approval, Change, ChangeKind, Grant, GrantError, GrantState, NewGrant};

fn db(e: sqlx::Error) -> GrantError {
    GrantError::Store(e.to_string())
}

const COLUMNS: &str = "id, user, role, target, reason, duration_secs, state, break_glass, requested_at, \
                       activated_at, expires_at, ended_at, ended_by, end_reason";

/// Active grants past their end, and pending ones requested at or before the TTL cut-off.
const DUE: &str =
    "(state = 'active' AND expires_at <= ?) OR (state = 'pending' AND requested_at <= ?)";

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

/// Fills in each grant's approvals, read on `conn`.
async fn with_approvals(
    conn: &mut SqliteConnection,
    mut grants: Vec<Grant>,
) -> Result<Vec<Grant>, GrantError> {
    for g in &mut grants {
        let rows = sqlx::query(
            "SELECT approver, comment, at FROM approvals WHERE grant_id = ? ORDER BY at, approver",
        )
        .bind(g.id)
        .fetch_all(&mut *conn)
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

/// One grant with its approvals, read on `conn`.
async fn grant_on(conn: &mut SqliteConnection, id: i64) -> Result<Option<Grant>, GrantError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM grants WHERE id = ?"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    match row {
        Some(row) => Ok(with_approvals(conn, vec![grant_from_row(&row)?])
            .await?
            .pop()),
        None => Ok(None),
    }
}

/// Bumps the revision inside a transaction and returns the new value.
async fn bump(conn: &mut SqliteConnection) -> Result<i64, GrantError> {
    sqlx::query_scalar("UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value")
        .fetch_one(conn)
        .await
        .map_err(db)
}

/// Reads what a transition asked for, inside its transaction.
async fn read(conn: &mut SqliteConnection, reads: &Reads) -> Result<Snapshot, GrantError> {
    let mut seen = Snapshot::default();
    if let Some(id) = reads.grant {
        seen.grant = grant_on(conn, id).await?;
    }
    if let Some((user, since)) = &reads.break_glass_uses {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM grants WHERE user = ? AND break_glass = 1 AND requested_at >= ?",
        )
        .bind(user)
        .bind(since)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
        seen.break_glass_uses = n.max(0) as u64;
    }
    if let Some((now, ttl)) = reads.due {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM grants WHERE {DUE} ORDER BY id"
        )))
        .bind(now)
        .bind(now - ttl)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        let due = rows.iter().map(grant_from_row).collect::<Result<_, _>>()?;
        seen.due = with_approvals(conn, due).await?;
    }
    Ok(seen)
}

async fn insert(conn: &mut SqliteConnection, g: &NewGrant, rev: i64) -> Result<i64, GrantError> {
    sqlx::query_scalar(
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
    .fetch_one(conn)
    .await
    .map_err(db)
}

/// Applies a change if the grant is still in its expected state.
async fn change(conn: &mut SqliteConnection, change: &Change, rev: i64) -> Result<(), GrantError> {
    let id = change.grant_id;
    let current: Option<String> = sqlx::query_scalar("SELECT state FROM grants WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    expect_state(id, current.as_deref(), change.expected)?;
    match &change.kind {
        ChangeKind::Approve {
            approver,
            comment,
            at,
            activates,
        } => {
            let inserted = sqlx::query(
                "INSERT OR IGNORE INTO approvals (grant_id, approver, comment, at) VALUES (?, ?, ?, ?)",
            )
            .bind(id)
            .bind(approver)
            .bind(comment)
            .bind(at)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            if inserted.rows_affected() == 0 {
                return Err(GrantError::Conflict(format!(
                    "{approver} has already approved grant {id}"
                )));
            }
            match activates {
                Some((from, to)) => sqlx::query(
                    "UPDATE grants SET state = 'active', activated_at = ?, expires_at = ?, rev = ? WHERE id = ?",
                )
                .bind(from)
                .bind(to)
                .bind(rev)
                .bind(id),
                None => sqlx::query("UPDATE grants SET rev = ? WHERE id = ?")
                    .bind(rev)
                    .bind(id),
            }
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        }
        ChangeKind::End {
            state,
            by,
            reason,
            at,
        } => {
            sqlx::query(
                "UPDATE grants SET state = ?, ended_at = ?, ended_by = ?, end_reason = ?, rev = ? WHERE id = ?",
            )
            .bind(state.as_str())
            .bind(at)
            .bind(by)
            .bind(reason)
            .bind(rev)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        }
    }
    Ok(())
}

/// Reads, decides, writes and seals, all on the transaction's connection.
async fn run(
    conn: &mut SqliteConnection,
    work: &dyn Transition,
) -> Result<Vec<Applied>, GrantError> {
    let seen = read(conn, &work.reads()).await?;
    let writes = work.decide(&seen)?;
    if writes.is_empty() {
        return Ok(Vec::new());
    }
    let rev = bump(conn).await?;
    let mut applied = Vec::with_capacity(writes.len());
    for write in writes {
        let id = match &write {
            Write::Insert(new) => insert(conn, new, rev).await?,
            Write::Change(c) => {
                change(conn, c, rev).await?;
                c.grant_id
            }
        };
        let grant = grant_on(conn, id)
            .await?
            .ok_or_else(|| GrantError::Store(format!("grant {id} vanished while written")))?;
        applied.push(Applied { write, grant });
    }
    work.seal(&applied).await?;
    Ok(applied)
}

#[async_trait]
impl GrantStore for SqliteStore {
    async fn transact(&self, work: &dyn Transition) -> Result<Vec<Applied>, GrantError> {
        let mut tx = self.begin_write().await.map_err(db)?;
        match run(&mut tx, work).await {
            Ok(applied) => {
                tx.commit().await.map_err(|e| {
                    GrantError::Store(format!("the change could not be committed: {e}"))
                })?;
                Ok(applied)
            }
            Err(e) => {
                // Explicitly, so the writer connection is clean for the next transaction.
                if let Err(undo) = tx.rollback().await {
                    tracing::error!(error = %undo, "rolling back a grant transaction failed");
                }
                Err(e)
            }
        }
    }

    async fn get(&self, id: i64) -> Result<Option<Grant>, GrantError> {
        let mut conn = self.pool().acquire().await.map_err(db)?;
        grant_on(&mut conn, id).await
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
        let mut conn = self.pool().acquire().await.map_err(db)?;
        let rows = query
            .bind(filter.limit.unwrap_or(1000) as i64)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
        let grants = rows
            .iter()
            .map(grant_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        with_approvals(&mut conn, grants).await
    }

    async fn any_due(&self, now: Timestamp, ttl_secs: i64) -> Result<bool, GrantError> {
        let any: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM grants WHERE {DUE} LIMIT 1"
        )))
        .bind(now)
        .bind(now - ttl_secs)
        .fetch_optional(self.pool())
        .await
        .map_err(db)?;
        Ok(any.is_some())
    }

    async fn revision(&self) -> Result<i64, GrantError> {
        sqlx::query_scalar("SELECT value FROM revision WHERE id = 1")
            .fetch_one(self.watch_pool())
            .await
            .map_err(db)
    }

    async fn count_by_state(&self) -> Result<Vec<(GrantState, u64)>, GrantError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM grants GROUP BY state")
                .fetch_all(self.pool())
                .await
                .map_err(db)?;
        state_counts(rows)
    }

    async fn changed_since(&self, since: i64) -> Result<Vec<GrantStatus>, GrantError> {
        let rows = sqlx::query(
            "SELECT id, state, expires_at, ended_by, end_reason FROM grants WHERE rev > ?",
        )
        .bind(since)
        .fetch_all(self.watch_pool())
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
