//! Legal holds and the end of a session's life in the store: the holds that keep a session
//! whatever `[recordings] keep` says, and the one method that forgets a session with
//! everything derived from it.
//!
//! Every change here is sealed: its evidence (an audit line, and for a forgotten session the
//! deletion of its recording) is written inside the transaction, before it commits, and a
//! failed seal rolls the change back. A hold and a deletion of the same session take turns on
//! the session's row, so a session is either held or forgotten, never forgotten while held.

use async_trait::async_trait;

use super::StoreError;
use super::sessions::SessionRecord;
use crate::grants::Timestamp;

/// A legal hold on a session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hold {
    /// The session held.
    pub session_id: String,
    /// Who placed it (the operator, as the audit line names them).
    pub held_by: String,
    /// Why (a case or ticket, at least ten characters).
    pub reason: String,
    /// When, in Unix seconds.
    pub held_at: Timestamp,
}

/// The evidence of a change, written before the change commits; an error rolls it back.
#[async_trait]
pub trait Seal: Send + Sync {
    /// Writes the evidence for the change to `session` (as stored when the change was made).
    async fn seal(&self, session: &SessionRecord) -> Result<(), SealError>;
}

/// Why a change's evidence could not be written, so the change was not made.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SealError(pub String);

/// Why a hold was not placed or released.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// No session has that id (or it was forgotten meanwhile).
    #[error("there is no session {0:?}")]
    NoSession(String),
    /// The session is held already; a hold is released before another is placed.
    #[error("session {0} is already on hold (by {1})")]
    AlreadyHeld(String, String),
    /// The session is not held.
    #[error("session {0} is not on hold")]
    NotHeld(String),
    /// Its evidence could not be written, so nothing changed.
    #[error("nothing changed: {0}")]
    Unsealed(#[from] SealError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which sessions may be forgotten: ended before `ended_before`, not held, and run by `node`.
#[derive(Debug, Clone)]
pub struct Expiry {
    /// The node whose recordings these are (`[cluster] node_name`); rows written before nodes
    /// were named (node `''`) count as every node's.
    pub node: String,
    /// Sessions that ended before this (Unix seconds) are past their keep.
    pub ended_before: Timestamp,
}

/// Why a session was not forgotten.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    /// Its evidence (the recording's deletion, the audit line) could not be written, so the
    /// session is still indexed, to be tried again.
    #[error(transparent)]
    Unsealed(#[from] SealError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Legal holds and retention, whichever database holds them.
#[async_trait]
pub trait Retention: Send + Sync {
    /// Places `hold` on its session, sealed by `seal` before it commits.
    async fn hold(&self, hold: &Hold, seal: &dyn Seal) -> Result<SessionRecord, HoldError>;
    /// Releases the hold on `session_id`, sealed by `seal` before it commits; returns the hold
    /// that was released.
    async fn release(&self, session_id: &str, seal: &dyn Seal) -> Result<Hold, HoldError>;
    /// The hold on one session, if any.
    async fn hold_of(&self, session_id: &str) -> Result<Option<Hold>, StoreError>;
    /// Every hold in force, oldest first.
    async fn holds(&self) -> Result<Vec<Hold>, StoreError>;
    /// Up to `limit` sessions that `expiry` lets go, oldest end first.
    async fn expired(&self, expiry: &Expiry, limit: u32) -> Result<Vec<SessionRecord>, StoreError>;
    /// Forgets one session and everything derived from it (its file transcript, its review,
    /// and any other row that names it), if `expiry` still lets it go once its row is locked:
    /// `seal` (which deletes the recording and writes the audit line) runs inside the
    /// transaction. Returns the session as it was, or `None` if it is no longer there, has not
    /// ended, ended too recently, belongs to another node or is held.
    ///
    /// The one place a session leaves the store: whatever is added that derives from a
    /// session must be deleted here too.
    async fn forget_session(
        &self,
        session_id: &str,
        expiry: &Expiry,
        seal: &dyn Seal,
    ) -> Result<Option<SessionRecord>, ForgetError>;
}
