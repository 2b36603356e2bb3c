//! The session index: who was where, when, for how long, with what result, and which recording
//! (with its hash) shows it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;
use crate::grants::Timestamp;

/// One session as indexed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SessionRecord {
    /// The session id (a UUID v7, so ids sort by time).
    pub id: String,
    /// The node that ran it (`[cluster] node_name`).
    pub node: String,
    /// The person.
    pub user: String,
    /// The target.
    pub target: String,
    /// The role.
    pub role: String,
    /// The grant it ran under.
    pub grant_id: i64,
    /// `exec`, `shell`, `restricted`, `files` (SFTP; its operations are in the file
    /// transcript) or `forward` (one forwarded connection).
    pub kind: String,
    /// The command sent to the target, for exec sessions; the destination and the address
    /// connected to, for forwards.
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
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
    /// Only under this role.
    pub role: Option<String>,
    /// Only those started at or after.
    pub since: Option<Timestamp>,
    /// Only those started before.
    pub until: Option<Timestamp>,
    /// Only break-glass sessions (`Some(true)`) or only the others (`Some(false)`).
    pub break_glass: Option<bool>,
    /// Only those still running, with no recorded end (`Some(true)`), or only ended ones.
    pub running: Option<bool>,
    /// At most this many, newest first.
    pub limit: Option<u32>,
    /// Skip this many first (for paging).
    pub offset: Option<u32>,
}

/// Makes a review durable elsewhere (its audit line) before the store commits it; an error
/// rolls the review back, so it can be tried again rather than kept without its line.
#[async_trait]
pub trait ReviewSeal: Send + Sync {
    /// Writes the review's evidence.
    async fn seal(&self) -> Result<(), crate::events::AuditUnwritable>;
}

/// Seals a review with its `review.acked` audit line, written durably before the review
/// commits (the operator command and the web console both review this way).
pub struct AckedLine<'a> {
    /// Where the line goes.
    pub events: &'a crate::events::Events,
    /// The `review.acked` event.
    pub acked: &'a crate::events::Event,
}

#[async_trait]
impl ReviewSeal for AckedLine<'_> {
    async fn seal(&self) -> Result<(), crate::events::AuditUnwritable> {
        self.events
            .record_durable(std::slice::from_ref(self.acked))
            .await
    }
}

/// Why a review was not stored.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    /// Someone reviewed the session first.
    #[error("session {0} has already been reviewed")]
    Taken(String),
    /// Its audit line could not be written, so the review was rolled back.
    #[error(transparent)]
    Unwritable(#[from] crate::events::AuditUnwritable),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The operations the session index offers, whichever database holds it.
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
    /// Records a review, sealed by `seal` inside the same transaction; a session is reviewed
    /// once.
    async fn acknowledge(
        &self,
        session_id: &str,
        review: &Review,
        seal: &dyn ReviewSeal,
    ) -> Result<(), AckError>;
    /// Completes, as ended by `reason`, every session of `node` that started before `before`
    /// and has no end: a node that crashed or was lost could not record them. Returns their ids.
    async fn close_orphans(
        &self,
        node: &str,
        before: Timestamp,
        at: Timestamp,
        reason: &str,
    ) -> Result<Vec<String>, StoreError>;
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
