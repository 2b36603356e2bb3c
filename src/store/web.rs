//! Web sign-in and API tokens as the store keeps them: one-time sign-in links, browser
//! sessions and API tokens, each found by the SHA-256 of its secret (the secrets themselves are
//! never stored; see [`crate::credentials`]).
//!
//! Every check that decides whether a credential is accepted is one conditional statement that
//! also records its use, so two requests at once (two browsers on one link, on one node or on
//! two) cannot both get what only one may have.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;
use crate::credentials::{LinkOutcome, NewToken, NewWebSession, TokenRecord, WebSession};
use crate::grants::Timestamp;

/// Sign-in links, browser sessions and API tokens.
#[async_trait]
pub trait WebAuth: Send + Sync {
    /// Stores a one-time sign-in link for `user` by the hash of its secret, valid from
    /// `created_at` until just before `expires_at`.
    async fn create_login_link(
        &self,
        hash: &str,
        user: &str,
        created_at: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Spends the link with this hash at `now`. Of any number of calls at once for one link,
    /// on any number of nodes, exactly one gets [`LinkOutcome::SignedIn`] (if the link is
    /// valid); the others learn why not.
    async fn consume_login_link(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<LinkOutcome, StoreError>;

    /// Stores a new browser session.
    async fn create_web_session(&self, session: &NewWebSession) -> Result<(), StoreError>;

    /// The session with this cookie hash, if it is still good at `now`: not ended, not past its
    /// maximum age, and seen within `idle`. Finding it marks it seen at `now`, in the same
    /// statement, so a session in use never idles out.
    async fn web_session(
        &self,
        hash: &str,
        now: Timestamp,
        idle: Duration,
    ) -> Result<Option<WebSession>, StoreError>;

    /// Ends the session with this cookie hash (signing out). True if it was open until now.
    async fn end_web_session(&self, hash: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Ends every session of `user` that is neither ended nor past its maximum age (the user
    /// left, or their access was taken away); returns how many that was.
    async fn end_web_sessions_of(&self, user: &str, now: Timestamp) -> Result<u64, StoreError>;

    /// Stores a new API token. A token id already taken is [`StoreError::Conflict`], so the
    /// caller can draw another.
    async fn create_token(&self, token: &NewToken) -> Result<(), StoreError>;

    /// Every token (of `user` only, if given), oldest first; never their hashes.
    async fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenRecord>, StoreError>;

    /// Revokes the token `id` at `now`. True only for the call that revoked it: false when
    /// there is no such token or it was revoked already.
    async fn revoke_token(&self, id: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// The token with this hash if it is accepted at `now` (not revoked, not expired), marking
    /// it used at `now` in the same statement.
    async fn token_by_hash(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<TokenRecord>, StoreError>;

    /// Deletes what can no longer sign anyone in and is older than `before`: links that
    /// expired, sessions that ended or expired. Tokens stay (they are listed until deleted by
    /// hand, revoked or not). Returns how many rows went.
    async fn forget_web_before(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// How long a session may have been idle at `now`, as the earliest `last_seen` still good.
pub(crate) fn idle_cutoff(now: Timestamp, idle: Duration) -> Timestamp {
    now.saturating_sub(i64::try_from(idle.as_secs()).unwrap_or(i64::MAX))
}

/// Classifies a link that could not be spent, from its stored `used_at` (if the row exists).
pub(crate) fn link_refusal(row: Option<Option<Timestamp>>) -> LinkOutcome {
    match row {
        None => LinkOutcome::Unknown,
        Some(Some(_)) => LinkOutcome::AlreadyUsed,
        Some(None) => LinkOutcome::Expired,
    }
}

/// Whether a database error is a unique-key violation (a token id drawn twice).
pub(crate) fn is_duplicate(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}
