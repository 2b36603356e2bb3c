//! The session index: who was where, when, for how long, with what result, and which recording
//! (with its hash) shows it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, StoreError};
use crate::grants::Timestamp;

/// One session as indexed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionRecord {
    /// The session id (a UUID v7, so ids sort by time).
    pub id: String,
    /// The person.
    pub user: String,
    /// The target.
    pub target: String,
    /// The role.
    pub role: String,
    /// The grant it ran under.
    pub grant_id: i64,
    /// `exec`, `shell` or `restricted`.
    pub kind: String,
    /// The command sent to the target, for exec sessions.
    pub command: Option<String>,
    /// Whether it ran under break-glass.
    pub break_glass: bool,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended (none if the bastion stopped meanwhile).
    pub ended_at: Option<Timestamp>,
    /// Bytes from the user.
    pub bytes_in: Option<i64>,
    /// Bytes to the user.
    pub bytes_out: Option<i64>,
    /// The target's exit status.
    pub exit_status: Option<i64>,
    /// Why the bastion ended it, if it did.
    pub end_reason: Option<String>,
    /// The recording file.
    pub recording: Option<String>,
    /// SHA-256 of the finished recording.
    pub sha256: Option<String>,
}

/// A review of a break-glass session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Review {
    /// Who reviewed it.
    pub reviewer: String,
    /// What they found.
    pub note: String,
    /// When.
    pub at: Timestamp,
}

/// How a session ended, for [`SessionIndex::ended`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionEnd {
    /// When.
    pub ended_at: Timestamp,
    /// Bytes from the user.
    pub bytes_in: u64,
    /// Bytes to the user.
    pub bytes_out: u64,
    /// The target's exit status.
    pub exit_status: Option<u32>,
    /// Why the bastion ended it.
    pub end_reason: Option<String>,
    /// SHA-256 of the finished recording.
    pub sha256: Option<String>,
}

/// Which sessions to list.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    /// Only this user's.
    pub user: Option<String>,
    /// Only on this target.
    pub target: Option<String>,
    /// Only those started at or after.
    pub since: Option<Timestamp>,
    /// At most this many, newest first.
    pub limit: Option<u32>,
}

/// The operations the session index offers; SQLite implements it, another backend may.
#[async_trait]
pub trait SessionIndex: Send + Sync {
    /// Records a session that is starting.
    async fn started(&self, session: &SessionRecord) -> Result<(), StoreError>;
    /// Completes a session's row.
    async fn ended(&self, id: &str, end: &SessionEnd) -> Result<(), StoreError>;
    /// One session.
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// Sessions matching `filter`, newest first.
    async fn sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionRecord>, StoreError>;
    /// Break-glass sessions with their review, oldest first; `pending_only` leaves out reviewed ones.
    async fn review_queue(
        &self,
        pending_only: bool,
    ) -> Result<Vec<(SessionRecord, Option<Review>)>, StoreError>;
    /// Records a review; a session is reviewed once.
    async fn acknowledge(&self, session_id: &str, review: &Review) -> Result<(), StoreError>;
}

/// First wait before a failed [`SessionIndex::ended`] is tried again; it doubles up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(200);

/// Longest wait between two tries of [`SessionIndex::ended`].
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Completes a session's row (its end and its recording's hash: the evidence) in the
/// background, trying again with backoff until the write lands, so a lock or a full disk at the
/// moment a session ends never leaves a row without its end. The session does not wait for it;
/// a stopping bastion waits for it with [`settle_ends`].
pub fn complete_in_background(index: Arc<dyn SessionIndex>, id: String, end: SessionEnd) {
    let task = tokio::spawn(async move {
        let mut wait = RETRY_FIRST;
        let mut tries: u32 = 0;
        loop {
            tries += 1;
            match index.ended(&id, &end).await {
                Ok(()) => {
                    if tries > 1 {
                        tracing::info!(session = %id, tries, "the session's end is in the index");
                    }
                    return;
                }
                Err(e) => {
                    tracing::error!(session = %id, tries, error = %e, retry_in = ?wait,
                        "the session's end could not be indexed; trying again");
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_MAX);
        }
    });
    let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
    pending.retain(|t| !t.is_finished());
    pending.push(task);
}

/// Session ends still being written, so that a stopping bastion can wait for them. One list
/// per process: the index is written by one server per process.
static PENDING: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>> =
    std::sync::Mutex::new(Vec::new());

/// Waits at most `limit` for the session ends still being written (at shutdown); returns how
/// many did not land, each of which is logged.
pub async fn settle_ends(limit: Duration) -> usize {
    let tasks = std::mem::take(&mut *PENDING.lock().unwrap_or_else(|p| p.into_inner()));
    let deadline = tokio::time::Instant::now() + limit;
    let mut lost = 0;
    for task in tasks {
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            lost += 1;
        }
    }
    if lost > 0 {
        tracing::error!(
            sessions = lost,
            "stopping with session ends not yet in the index"
        );
    }
    lost
}

fn from_row(row: &SqliteRow) -> Result<SessionRecord, sqlx::Error> {
    Ok(SessionRecord {
        id: row.try_get("id")?,
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
            "INSERT INTO sessions (id, user, target, role, grant_id, kind, command, break_glass, started_at, recording) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
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
             AND (?3 IS NULL OR started_at >= ?3) ORDER BY started_at DESC, id DESC LIMIT ?4",
        )
        .bind(&filter.user)
        .bind(&filter.target)
        .bind(filter.since)
        .bind(filter.limit.unwrap_or(1000) as i64)
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

    async fn acknowledge(&self, session_id: &str, review: &Review) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT OR IGNORE INTO reviews (session_id, reviewer, note, at) VALUES (?, ?, ?, ?)",
        )
        .bind(session_id)
        .bind(&review.reviewer)
        .bind(&review.note)
        .bind(review.at)
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "session {session_id} has already been reviewed"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod review_tests {
    use super::*;

    #[tokio::test]
    async fn break_glass_sessions_wait_for_one_review() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
        for (id, bg) in [("a", true), ("b", false)] {
            let record = SessionRecord {
                id: id.into(),
                user: "carol".into(),
                target: "db-01".into(),
                role: "emergency".into(),
                grant_id: 1,
                kind: "shell".into(),
                command: None,
                break_glass: bg,
                started_at: 1,
                ended_at: None,
                bytes_in: None,
                bytes_out: None,
                exit_status: None,
                end_reason: None,
                recording: None,
                sha256: None,
            };
            store.started(&record).await.unwrap();
        }
        let queue = store.review_queue(true).await.unwrap();
        assert_eq!(queue.len(), 1, "only break-glass sessions");
        let review = Review {
            reviewer: "bob".into(),
            note: "restart was needed".into(),
            at: 5,
        };
        store.acknowledge("a", &review).await.unwrap();
        assert!(store.review_queue(true).await.unwrap().is_empty());
        assert_eq!(
            store.review_queue(false).await.unwrap()[0].1.as_ref(),
            Some(&review)
        );
        assert!(
            store.acknowledge("a", &review).await.is_err(),
            "reviewed once"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_are_indexed_and_completed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
        let record = SessionRecord {
            id: "0190-a".into(),
            user: "alice".into(),
            target: "web-01".into(),
            role: "web-ops".into(),
            grant_id: 7,
            kind: "exec".into(),
            command: Some("'uptime'".into()),
            break_glass: false,
            started_at: 100,
            ended_at: None,
            bytes_in: None,
            bytes_out: None,
            exit_status: None,
            end_reason: None,
            recording: Some("recordings/x.cast".into()),
            sha256: None,
        };
        store.started(&record).await.unwrap();
        let end = SessionEnd {
            ended_at: 105,
            bytes_out: 42,
            exit_status: Some(0),
            sha256: Some("ab".into()),
            ..Default::default()
        };
        store.ended("0190-a", &end).await.unwrap();
        let got = store.session("0190-a").await.unwrap().unwrap();
        assert_eq!(got.ended_at, Some(105));
        assert_eq!(got.sha256.as_deref(), Some("ab"));
        // An end written again without a hash (a retry that lands after the late hash) keeps
        // the hash already there.
        let again = SessionEnd {
            sha256: None,
            ..end.clone()
        };
        store.ended("0190-a", &again).await.unwrap();
        let got = store.session("0190-a").await.unwrap().unwrap();
        assert_eq!(got.sha256.as_deref(), Some("ab"));
        let by_user = store
            .sessions(&SessionFilter {
                user: Some("alice".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(by_user.len(), 1);
        let other = store
            .sessions(&SessionFilter {
                target: Some("db-01".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(other.is_empty());
        let later = store
            .sessions(&SessionFilter {
                since: Some(101),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(later.is_empty());
    }
}
