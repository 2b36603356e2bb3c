//! The PostgreSQL grant store.
//!
//! # One grant writer at a time, across all nodes
//!
//! Every [`transact`](GrantStore::transact) first takes one transaction-level advisory lock
//! with a constant key ([`GRANT_LOCK`]) and holds it until it commits or rolls back. Grant
//! writes therefore run one at a time across every node sharing the database: exactly
//! SQLite's one-writer guarantee, which the desk's contract was written against. Reads inside
//! the transaction (read committed) start after the previous writer's commit became visible
//! (PostgreSQL makes a commit visible before it releases the committer's locks), so a decision
//! never acts on a stale read, and nothing a transition read can change before the commit.
//!
//! Finer locks were considered and not taken: a row lock on the grant does not cover the
//! break-glass count (a set of rows that does not exist yet) nor the sweep's set of due
//! grants, and `SERIALIZABLE` with retries would call the audit seal only on the last attempt
//! but make every writer pay for retries under contention. Grant writes are rare (a request,
//! a decision, a break-glass login, a sweep that found something), short, and the lock is
//! held across the audit seal only; one lock is simplest and obviously correct.
//!
//! The revision bump notifies channel `gatehouse_grants` in the same transaction; PostgreSQL
//! delivers the notification at commit (never for a rollback), so the other nodes' grant
//! watches look at once instead of at their next poll.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{GRANT_LOCK, PgStore};
use crate::grants::Timestamp;
use crate::grants::store::{
    Applied, GrantFilter, GrantStatus, GrantStore, Reads, Snapshot, Transition, Write,
    expect_state, state_counts,
};
use crate::grants::{Approval, Change, ChangeKind, Grant, GrantError, GrantState, NewGrant};

/// The channel on which every committed grant change is announced (its payload is the new
/// revision).
pub(crate) const CHANNEL: &str = "gatehouse_grants";

fn db(e: sqlx::Error) -> GrantError {
    GrantError::Store(e.to_string())
}

const COLUMNS: &str = "id, \"user\", role, target, reason, duration_secs, state, break_glass, \
                       requested_at, activated_at, expires_at, ended_at, ended_by, end_reason";

/// Active grants past their end, and pending ones requested at or before the TTL cut-off.
const DUE: &str =
    "(state = 'active' AND expires_at <= $1) OR (state = 'pending' AND requested_at <= $2)";

fn state_of(text: &str) -> Result<GrantState, GrantError> {
    GrantState::parse(text)
        .ok_or_else(|| GrantError::Store(format!("unknown grant state {text:?}")))
}

fn grant_from_row(row: &PgRow) -> Result<Grant, GrantError> {
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
        state: state_of(&state)?,
        break_glass: row.try_get("break_glass").map_err(db)?,
        requested_at: row.try_get("requested_at").map_err(db)?,
        activated_at: row.try_get("activated_at").map_err(db)?,
        expires_at: row.try_get("expires_at").map_err(db)?,
        ended_at: row.try_get("ended_at").map_err(db)?,
        ended_by: row.try_get("ended_by").map_err(db)?,
        end_reason: row.try_get("end_reason").map_err(db)?,
        approvals: Vec::new(),
    })
}

/// Fills in each grant's approvals, read on `conn` in one query.
async fn with_approvals(
    conn: &mut PgConnection,
    mut grants: Vec<Grant>,
) -> Result<Vec<Grant>, GrantError> {
    if grants.is_empty() {
        return Ok(grants);
    }
    let ids: Vec<i64> = grants.iter().map(|g| g.id).collect();
    let rows = sqlx::query(
        "SELECT grant_id, approver, comment, at FROM approvals WHERE grant_id = ANY($1) \
         ORDER BY grant_id, at, approver COLLATE \"C\"",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    for row in &rows {
        let id: i64 = row.try_get("grant_id").map_err(db)?;
        let approval = Approval {
            approver: row.try_get("approver").map_err(db)?,
            comment: row.try_get("comment").map_err(db)?,
            at: row.try_get("at").map_err(db)?,
        };
        if let Some(g) = grants.iter_mut().find(|g| g.id == id) {
            g.approvals.push(approval);
        }
    }
    Ok(grants)
}

/// One grant with its approvals, read on `conn`.
async fn grant_on(conn: &mut PgConnection, id: i64) -> Result<Option<Grant>, GrantError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM grants WHERE id = $1"
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

/// Bumps the revision inside a transaction, announces it on [`CHANNEL`] at commit, and
/// returns the new value.
async fn bump(conn: &mut PgConnection) -> Result<i64, GrantError> {
    let rev: i64 =
        sqlx::query_scalar("UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value")
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(rev.to_string())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(rev)
}

/// Reads what a transition asked for, inside its transaction.
async fn read(conn: &mut PgConnection, reads: &Reads) -> Result<Snapshot, GrantError> {
    let mut seen = Snapshot::default();
    if let Some(id) = reads.grant {
        seen.grant = grant_on(conn, id).await?;
    }
    if let Some((user, since)) = &reads.break_glass_uses {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM grants WHERE \"user\" = $1 AND break_glass AND requested_at >= $2",
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

async fn insert(conn: &mut PgConnection, g: &NewGrant, rev: i64) -> Result<i64, GrantError> {
    sqlx::query_scalar(
        "INSERT INTO grants (\"user\", role, target, reason, duration_secs, state, break_glass, \
         requested_at, activated_at, expires_at, rev) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(&g.user)
    .bind(&g.role)
    .bind(&g.target)
    .bind(&g.reason)
    .bind(g.duration.as_secs().min(i64::MAX as u64) as i64)
    .bind(g.state.as_str())
    .bind(g.break_glass)
    .bind(g.requested_at)
    .bind(g.activated_at)
    .bind(g.expires_at)
    .bind(rev)
    .fetch_one(conn)
    .await
    .map_err(db)
}

/// Applies a change if the grant is still in its expected state.
async fn change(conn: &mut PgConnection, change: &Change, rev: i64) -> Result<(), GrantError> {
    let id = change.grant_id;
    let current: Option<String> = sqlx::query_scalar("SELECT state FROM grants WHERE id = $1")
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
                "INSERT INTO approvals (grant_id, approver, comment, at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
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
                    "UPDATE grants SET state = 'active', activated_at = $1, expires_at = $2, \
                     rev = $3 WHERE id = $4",
                )
                .bind(from)
                .bind(to)
                .bind(rev)
                .bind(id),
                None => sqlx::query("UPDATE grants SET rev = $1 WHERE id = $2")
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
                "UPDATE grants SET state = $1, ended_at = $2, ended_by = $3, end_reason = $4, \
                 rev = $5 WHERE id = $6",
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

/// Takes the grant lock, then reads, decides, writes and seals, all on the transaction's
/// connection.
async fn run(conn: &mut PgConnection, work: &dyn Transition) -> Result<Vec<Applied>, GrantError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(GRANT_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
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

fn status_from_row(r: &PgRow) -> Result<GrantStatus, GrantError> {
    let state: String = r.try_get("state").map_err(db)?;
    Ok(GrantStatus {
        id: r.try_get("id").map_err(db)?,
        state: state_of(&state)?,
        expires_at: r.try_get("expires_at").map_err(db)?,
        ended_by: r.try_get("ended_by").map_err(db)?,
        end_reason: r.try_get("end_reason").map_err(db)?,
    })
}

#[async_trait]
impl GrantStore for PgStore {
    async fn transact(&self, work: &dyn Transition) -> Result<Vec<Applied>, GrantError> {
        let _turn = self.grant_turn().await;
        let mut tx = self.pool().begin().await.map_err(db)?;
        match run(&mut tx, work).await {
            Ok(applied) => {
                tx.commit().await.map_err(|e| {
                    GrantError::Store(format!("the change could not be committed: {e}"))
                })?;
                Ok(applied)
            }
            Err(e) => {
                // Explicitly, so the lock is released before the caller reports the error.
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
            "SELECT {COLUMNS} FROM grants WHERE \"user\" = $1 AND state = 'active' \
             AND expires_at > $2 ORDER BY expires_at DESC"
        )))
        .bind(user)
        .bind(now)
        .fetch_all(self.pool())
        .await
        .map_err(db)?;
        rows.iter().map(grant_from_row).collect()
    }

    async fn list(&self, filter: &GrantFilter) -> Result<Vec<Grant>, GrantError> {
        let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
        let mut conn = self.pool().acquire().await.map_err(db)?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM grants WHERE ($1::text IS NULL OR \"user\" = $1) \
             AND (cardinality($2::text[]) = 0 OR state = ANY($2)) ORDER BY id DESC LIMIT $3"
        )))
        .bind(&filter.user)
        .bind(&states)
        .bind(i64::from(filter.limit.unwrap_or(1000)))
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
            "SELECT id, state, expires_at, ended_by, end_reason FROM grants WHERE rev > $1 \
             ORDER BY id",
        )
        .bind(since)
        .fetch_all(self.watch_pool())
        .await
        .map_err(db)?;
        rows.iter().map(status_from_row).collect()
    }
}
