//! Who is calling and what they may do: a person from the policy in force, signed in through
//! a browser session or calling with an API token of a limited scope.
//!
//! A caller's rights are the person's rights, never more: a token's scope only narrows them.
//! The person is looked up in the policy in force on every request, so a user removed from
//! the policy loses the console at once, whatever session or token they still hold.

use std::sync::Arc;

use crate::credentials::TokenScope;
use crate::grants::{Actor, WebVia};
use crate::policy::{Policy, User};

use super::error::ApiError;

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A browser session (cookie), with the value its forms must echo against CSRF.
    Browser {
        /// The session's hash, to sign it out.
        session: String,
        /// The anti-CSRF value of this session.
        csrf: String,
    },
    /// An API token.
    Token {
        /// The token's public id.
        id: String,
        /// What the token allows.
        scope: TokenScope,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The person, as the policy in force has them.
    pub user: Arc<User>,
    /// The policy in force when the request arrived.
    pub policy: Arc<Policy>,
    /// How they came.
    pub via: Via,
    /// Whether they are in one of `[http] reviewers`' groups.
    pub reviewer: bool,
}

/// What an action needs from a token's scope (a browser session has every scope; the
/// person's own rights still apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Seeing what the person may see.
    Read,
    /// Acknowledging break-glass reviews.
    Review,
    /// Approving, denying and revoking grants.
    Approve,
}

impl Caller {
    /// The caller for `user` in `policy`, with reviewer rights from `reviewers`.
    pub fn new(user: Arc<User>, policy: Arc<Policy>, via: Via, reviewers: &[String]) -> Caller {
        let reviewer = user.groups.iter().any(|g| reviewers.contains(g));
        Caller {
            user,
            policy,
            via,
            reviewer,
        }
    }

    /// `Ok` when the caller's token (if any) allows `need`.
    pub fn require(&self, need: Need) -> Result<(), ApiError> {
        let Via::Token { scope, id } = &self.via else {
            return Ok(());
        };
        let allowed = match need {
            Need::Read => true,
            Need::Review => *scope == TokenScope::Review,
            Need::Approve => *scope == TokenScope::Approve,
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "token {id} has scope {scope}, which does not allow this"
            )))
        }
    }

    /// `Ok` for a reviewer (a member of `[http] reviewers`), whose token allows `need`.
    pub fn require_reviewer(&self, need: Need) -> Result<(), ApiError> {
        self.require(need)?;
        if self.reviewer {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "only reviewers (the groups in [http] reviewers) may do this",
            ))
        }
    }

    /// The actor the grant desk records for this caller.
    pub fn actor(&self) -> Actor {
        Actor::Web {
            user: self.user.clone(),
            via: match &self.via {
                Via::Browser { .. } => WebVia::Browser,
                Via::Token { id, .. } => WebVia::Token(id.clone()),
            },
        }
    }

    /// The audit detail naming the door (`{"via":"web"}` or `{"via":"api","token":ID}`).
    pub fn door(&self) -> Option<serde_json::Value> {
        self.actor().detail()
    }

    /// Whether the caller may see what `owner` did (their own, or everything as a reviewer).
    pub fn may_see(&self, owner: &str) -> bool {
        self.reviewer || self.user.name == owner
    }
}
