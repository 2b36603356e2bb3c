//! Just-in-time grants: the lifecycle as pure functions, and the store that keeps it.
//!
//! ```text
//! pending ──approve×N──▶ active ──time──▶ expired
//!    │                      └──revoke──▶ revoked
//!    ├──deny──▶ denied
//!    └──(request_ttl)──▶ lapsed
//! ```
//!
//! Every function here takes the time as an argument and does no I/O: what a request or a
//! decision would change is computed as a value ([`NewGrant`], [`Change`]). [`desk`] is the one
//! place that turns such a value into a stored change: it computes it from what the store
//! re-reads inside the write transaction, and commits only once the audit line is synced.

pub mod desk;
mod lifecycle;
pub mod operator;
pub mod store;
pub mod watch;

use std::fmt;
use std::time::Duration;

pub use lifecycle::{
    Actor, Decision, RequestInput, WebVia, check_text, decide_on, may_decide, new_request,
};

/// Seconds since the Unix epoch; the unit of every timestamp in grants.
pub type Timestamp = i64;

/// The current time as a [`Timestamp`].
pub fn now() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Where a grant is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantState {
    /// Waiting for approvals.
    Pending,
    /// Live: sessions may use it until it expires.
    Active,
    /// Its time ran out.
    Expired,
    /// Ended early by someone.
    Revoked,
    /// Refused by an approver.
    Denied,
    /// Nobody decided within the request TTL.
    Lapsed,
}

impl GrantState {
    /// The word stored in the database and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantState::Pending => "pending",
            GrantState::Active => "active",
            GrantState::Expired => "expired",
            GrantState::Revoked => "revoked",
            GrantState::Denied => "denied",
            GrantState::Lapsed => "lapsed",
        }
    }

    /// Reads a stored state word.
    pub fn parse(text: &str) -> Option<GrantState> {
        Some(match text {
            "pending" => GrantState::Pending,
            "active" => GrantState::Active,
            "expired" => GrantState::Expired,
            "revoked" => GrantState::Revoked,
            "denied" => GrantState::Denied,
            "lapsed" => GrantState::Lapsed,
            _ => return None,
        })
    }

    /// Whether no transition leaves this state.
    pub fn is_final(self) -> bool {
        !matches!(self, GrantState::Pending | GrantState::Active)
    }
}

impl fmt::Display for GrantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One approval of a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// Who approved (a user name, or `operator:NAME`).
    pub approver: String,
    /// What they said.
    pub comment: Option<String>,
    /// When.
    pub at: Timestamp,
}

/// A grant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Its id, shown to users.
    pub id: i64,
    /// The person it is for.
    pub user: String,
    /// The role it grants.
    pub role: String,
    /// A target name, or a target pattern of the role.
    pub target: String,
    /// Why it was requested.
    pub reason: String,
    /// How long it lasts once active.
    pub duration: Duration,
    /// The stored state (see [`Grant::state_at`] for the state in effect).
    pub state: GrantState,
    /// Whether it came from break-glass.
    pub break_glass: bool,
    /// When it was requested.
    pub requested_at: Timestamp,
    /// When it became active.
    pub activated_at: Option<Timestamp>,
    /// When it ends, once active.
    pub expires_at: Option<Timestamp>,
    /// When it ended (expired, revoked, denied, lapsed).
    pub ended_at: Option<Timestamp>,
    /// Who ended it.
    pub ended_by: Option<String>,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// Approvals so far.
    pub approvals: Vec<Approval>,
}

impl Grant {
    /// The state in effect at `now`: an active grant past its end is expired, and a pending one
    /// older than `request_ttl` has lapsed, even before the sweeper has written so.
    pub fn state_at(&self, now: Timestamp, request_ttl: Duration) -> GrantState {
        match self.state {
            GrantState::Active if self.expires_at.is_none_or(|end| now >= end) => {
                GrantState::Expired
            }
            GrantState::Pending
                if now
                    >= self
                        .requested_at
                        .saturating_add(request_ttl.as_secs() as i64) =>
            {
                GrantState::Lapsed
            }
            state => state,
        }
    }

    /// Whether the grant lets a session run at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.state == GrantState::Active && self.expires_at.is_some_and(|end| now < end)
    }

    /// Whether it covers the target named `name` (its own target, or a pattern matching it).
    pub fn covers(&self, name: &str) -> bool {
        crate::policy::glob::matches(&self.target, name)
    }
}

/// A grant to be inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant {
    /// The person.
    pub user: String,
    /// The role.
    pub role: String,
    /// The target or pattern.
    pub target: String,
    /// Why.
    pub reason: String,
    /// How long once active.
    pub duration: Duration,
    /// Pending, or active at once (self-service and break-glass).
    pub state: GrantState,
    /// Whether this is break-glass.
    pub break_glass: bool,
    /// Now.
    pub requested_at: Timestamp,
    /// Set when active at once.
    pub activated_at: Option<Timestamp>,
    /// Set when active at once.
    pub expires_at: Option<Timestamp>,
}

impl NewGrant {
    /// The grant as the store holds it once inserted under `id`, before any decision.
    pub fn into_grant(self, id: i64) -> Grant {
        Grant {
            id,
            user: self.user,
            role: self.role,
            target: self.target,
            reason: self.reason,
            duration: self.duration,
            state: self.state,
            break_glass: self.break_glass,
            requested_at: self.requested_at,
            activated_at: self.activated_at,
            expires_at: self.expires_at,
            ended_at: None,
            ended_by: None,
            end_reason: None,
            approvals: Vec::new(),
        }
    }
}

/// A decision on an existing grant, ready for the store to apply if the grant is still in
/// `expected` state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The grant.
    pub grant_id: i64,
    /// The stored state the change was computed from; the store refuses it otherwise.
    pub expected: GrantState,
    /// What happens.
    pub kind: ChangeKind,
}

/// What a [`Change`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// One more approval; `activates` is set when it completes the quorum.
    Approve {
        /// Who approves.
        approver: String,
        /// Their comment.
        comment: Option<String>,
        /// When.
        at: Timestamp,
        /// (activated_at, expires_at) when this approval makes the grant active.
        activates: Option<(Timestamp, Timestamp)>,
    },
    /// Refused, revoked, expired or lapsed: the grant ends.
    End {
        /// The final state.
        state: GrantState,
        /// Who ended it.
        by: String,
        /// Why.
        reason: Option<String>,
        /// When.
        at: Timestamp,
    },
}

/// Why a grant operation was refused, sorted by how the user should read it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// The input is malformed (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The person may not do this (exit 126).
    #[error("{0}")]
    Denied(String),
    /// The grant is not in a state that allows it (exit 1).
    #[error("{0}")]
    Conflict(String),
    /// The store failed; nothing was decided (exit 1).
    #[error("the grant store failed: {0}")]
    Store(String),
    /// The change's audit line could not be written, so it was rolled back (exit 1).
    #[error("{0}; nothing was changed")]
    Audit(String),
}
