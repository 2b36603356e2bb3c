//! The grant state machine as pure functions of the policy, the grant, the actor and the time.

use std::sync::Arc;
use std::time::Duration;

use super::{Change, ChangeKind, Grant, GrantError, GrantState, NewGrant, Timestamp};
use crate::policy::{Policy, User, glob};

/// The longest reason or comment accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 500;

/// Who acts on a grant.
#[derive(Debug, Clone)]
pub enum Actor {
    /// A user of the bastion, through an SSH verb.
    User(Arc<User>),
    /// An operator at the `gatehouse` command line, known by the Unix account of the process's
    /// real uid (see [`super::operator`]).
    Operator {
        /// The Unix account.
        account: String,
        /// The policy user it acts as (`[[operator]]`), if mapped: then every rule that applies
        /// to that user over SSH applies here too, and approvals count as that user's.
        user: Option<Arc<User>>,
    },
    /// Gatehouse itself: the expiry sweep (`gatehouse`), or a policy change that took a role
    /// away (`policy`).
    System(&'static str),
    /// A user of the bastion through the web console or the HTTP API: exactly the rights of
    /// [`Actor::User`], with the door named in the audit line.
    Web {
        /// The person.
        user: Arc<User>,
        /// How they came: `browser`, or `token` with the token's id.
        via: WebVia,
    },
}

/// The web door a user came through, named in the audit lines of what they did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebVia {
    /// A signed-in browser session.
    Browser,
    /// An API token, by its public id.
    Token(String),
}

impl Actor {
    /// The name recorded for this actor: the policy user's name for a user or a mapped
    /// operator (so one person is one name whichever door they use), `operator:ACCOUNT` for
    /// an unmapped operator, and the word for Gatehouse itself.
    pub fn name(&self) -> String {
        match self {
            Actor::User(u) | Actor::Web { user: u, .. } | Actor::Operator { user: Some(u), .. } => {
                u.name.clone()
            }
            Actor::Operator {
                account,
                user: None,
            } => format!("operator:{account}"),
            Actor::System(word) => (*word).to_owned(),
        }
    }

    /// The policy user behind this actor, if any.
    pub fn person(&self) -> Option<&Arc<User>> {
        match self {
            Actor::User(u) | Actor::Web { user: u, .. } | Actor::Operator { user: Some(u), .. } => {
                Some(u)
            }
            _ => None,
        }
    }

    /// What the audit line says about the door beside the name: the Unix account of an
    /// operator, the web door of a web user.
    pub fn detail(&self) -> Option<serde_json::Value> {
        match self {
            Actor::Operator { account, .. } => Some(serde_json::json!({ "unix_account": account })),
            Actor::Web {
                via: WebVia::Browser,
                ..
            } => Some(serde_json::json!({ "via": "web" })),
            Actor::Web {
                via: WebVia::Token(id),
                ..
            } => Some(serde_json::json!({ "via": "api", "token": id })),
            _ => None,
        }
    }
}

/// Whether `user` may approve or deny `grant` now: it is pending, not theirs, its role names
/// one of their groups as approvers, and they have not approved it already. The lists of
/// requests a person may decide (SSH `grants`, the web console) show exactly these; the desk
/// checks the same rules again when the decision is made.
pub fn may_decide(
    grant: &Grant,
    user: &User,
    policy: &Policy,
    now: Timestamp,
    request_ttl: Duration,
) -> bool {
    grant.user != user.name
        && grant.state_at(now, request_ttl) == GrantState::Pending
        && policy
            .role(&grant.role)
            .is_some_and(|r| r.has_approver(user))
        && !grant.approvals.iter().any(|ap| ap.approver == user.name)
}

/// A request as typed.
#[derive(Debug, Clone)]
pub struct RequestInput<'a> {
    /// Who asks.
    pub user: &'a User,
    /// For which role.
    pub role: &'a str,
    /// For which target (name or one of the role's patterns).
    pub target: &'a str,
    /// For how long.
    pub duration: Duration,
    /// Why.
    pub reason: &'a str,
}

/// A decision on a grant.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Approve, with an optional comment.
    Approve(Option<String>),
    /// Deny, with a reason.
    Deny(String),
    /// Revoke, with an optional reason.
    Revoke(Option<String>),
}

/// Checks free text (reasons, comments): present, bounded, and free of characters that could
/// forge lines or hide text on a reviewer's terminal.
pub fn check_text(what: &str, text: &str, min_chars: usize) -> Result<String, GrantError> {
    let text = text.trim();
    let count = text.chars().count();
    if count < min_chars.max(1) {
        return Err(GrantError::Usage(if count == 0 {
            format!("a {what} is required")
        } else {
            format!("the {what} must be at least {min_chars} characters")
        }));
    }
    if count > MAX_TEXT_CHARS {
        return Err(GrantError::Usage(format!(
            "the {what} is longer than {MAX_TEXT_CHARS} characters"
        )));
    }
    for (offset, ch) in text.char_indices() {
        if ch != ' ' {
            crate::policy::rules::check_char(offset, ch).map_err(|e| {
                GrantError::Usage(format!(
                    "the {what} has a character that is not allowed: {e}"
                ))
            })?;
        }
    }
    Ok(text.to_owned())
}

/// Files a request (or, for self-service roles, a grant active at once).
pub fn new_request(
    policy: &Policy,
    input: &RequestInput<'_>,
    now: Timestamp,
) -> Result<NewGrant, GrantError> {
    let reason = check_text("reason", input.reason, 1)?;
    let role = policy
        .role(input.role)
        .ok_or_else(|| GrantError::Usage(format!("there is no role {:?}", input.role)))?;
    if !role.has_member(input.user) {
        return Err(GrantError::Denied(format!(
            "you are not a member of role {:?}",
            role.name
        )));
    }
    if role.break_glass {
        return Err(GrantError::Usage(format!(
            "role {:?} is for emergencies: use breakglass TARGET --reason TEXT",
            role.name
        )));
    }
    let target_ok = match policy.target(input.target) {
        Some(target) => role.covers(target),
        None => glob::is_pattern(input.target) && role.targets.iter().any(|p| p == input.target),
    };
    if !target_ok {
        return Err(GrantError::Denied(format!(
            "role {:?} does not cover target {:?}",
            role.name, input.target
        )));
    }
    if input.duration > role.max_duration {
        return Err(GrantError::Usage(format!(
            "{} is longer than role {:?} allows ({})",
            crate::duration::format(input.duration),
            role.name,
            crate::duration::format(role.max_duration)
        )));
    }
    let secs = input.duration.as_secs() as i64;
    let at_once = role.approvals == 0;
    Ok(NewGrant {
        user: input.user.name.clone(),
        role: role.name.clone(),
        target: input.target.to_owned(),
        reason,
        duration: input.duration,
        state: if at_once {
            GrantState::Active
        } else {
            GrantState::Pending
        },
        break_glass: false,
        requested_at: now,
        activated_at: at_once.then_some(now),
        expires_at: at_once.then_some(now + secs),
    })
}

/// Computes what `actor` deciding `decision` on `grant` changes, or why they may not.
pub fn decide_on(
    policy: &Policy,
    grant: &Grant,
    actor: &Actor,
    decision: &Decision,
    now: Timestamp,
    request_ttl: Duration,
) -> Result<Change, GrantError> {
    let state = grant.state_at(now, request_ttl);
    let role = policy.role(&grant.role);
    let person = actor.person();
    // Approvals follow the person: a mapped operator is exactly that user, an unmapped one is
    // nobody who may approve.
    let may_approve = person.is_some_and(|u| role.is_some_and(|r| r.has_approver(u)));
    let is_requester = person.is_some_and(|u| u.name == grant.user);
    // Taking access away is open to anyone at the bastion's command line and to Gatehouse
    // itself; over SSH it needs an approver of the role (or the holder, for a revoke).
    let may_end = match actor {
        Actor::User(_) | Actor::Web { .. } => may_approve,
        Actor::Operator { .. } | Actor::System(_) => true,
    };
    let by = actor.name();
    let id = grant.id;
    match decision {
        Decision::Approve(comment) => {
            let comment = comment
                .as_deref()
                .map(|c| check_text("comment", c, 1))
                .transpose()?;
            if state != GrantState::Pending {
                return Err(GrantError::Conflict(format!(
                    "grant {id} is {state}, not pending; it cannot be approved"
                )));
            }
            if is_requester {
                return Err(GrantError::Denied(format!(
                    "grant {id} is your own request; someone else must approve it"
                )));
            }
            if let Actor::Operator {
                account,
                user: None,
            } = actor
            {
                return Err(GrantError::Denied(format!(
                    "the account {account:?} is not mapped to a policy user; only an [[operator]] \
                     mapped to an approver of role {:?} may approve",
                    grant.role
                )));
            }
            if !may_approve {
                return Err(GrantError::Denied(format!(
                    "you may not approve role {:?}",
                    grant.role
                )));
            }
            if grant.approvals.iter().any(|a| a.approver == by) {
                return Err(GrantError::Conflict(format!(
                    "you have already approved grant {id}"
                )));
            }
            let needed = role.map(|r| r.approvals).unwrap_or(u32::MAX) as usize;
            let activates = (grant.approvals.len() + 1 >= needed)
                .then(|| (now, now + grant.duration.as_secs() as i64));
            Ok(Change {
                grant_id: id,
                expected: GrantState::Pending,
                kind: ChangeKind::Approve {
                    approver: by,
                    comment,
                    at: now,
                    activates,
                },
            })
        }
        Decision::Deny(reason) => {
            let reason = check_text("reason", reason, 1)?;
            if state != GrantState::Pending {
                return Err(GrantError::Conflict(format!(
                    "grant {id} is {state}, not pending; it cannot be denied"
                )));
            }
            if is_requester {
                return Err(GrantError::Denied(format!(
                    "grant {id} is your own request; an approver decides it"
                )));
            }
            if !may_end {
                return Err(GrantError::Denied(format!(
                    "you may not decide requests for role {:?}",
                    grant.role
                )));
            }
            Ok(end(
                id,
                GrantState::Pending,
                GrantState::Denied,
                by,
                Some(reason),
                now,
            ))
        }
        Decision::Revoke(reason) => {
            let reason = reason
                .as_deref()
                .map(|r| check_text("reason", r, 1))
                .transpose()?;
            if state != GrantState::Active {
                let hint = if state == GrantState::Pending {
                    " (deny a pending request instead)"
                } else {
                    ""
                };
                return Err(GrantError::Conflict(format!(
                    "grant {id} is {state}, not active; it cannot be revoked{hint}"
                )));
            }
            // The holder may always give a grant up; approvers and operators may end anyone's.
            if !is_requester && !may_end {
                return Err(GrantError::Denied(format!(
                    "you may not revoke grants of role {:?}",
                    grant.role
                )));
            }
            Ok(end(
                id,
                GrantState::Active,
                GrantState::Revoked,
                by,
                reason,
                now,
            ))
        }
    }
}

fn end(
    id: i64,
    expected: GrantState,
    state: GrantState,
    by: String,
    reason: Option<String>,
    at: Timestamp,
) -> Change {
    Change {
        grant_id: id,
        expected,
        kind: ChangeKind::End {
            state,
            by,
            reason,
            at,
        },
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
