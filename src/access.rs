//! The decision: may this person open this session, now?
//!
//! [`decide`] is a pure function of the policy, the request and the clock. It does no I/O, so
//! every rule and corner case is a unit test, and its answer is a value: only a [`Permit`] (whose
//! fields are private) opens a recording or a connection to a target, and a [`Denial`] carries
//! the words the user reads and the audit log keeps.

#[cfg(test)]
mod files_tests;
mod forward;
mod standing;

use std::fmt;
use std::sync::Arc;

pub use forward::decide_forward;
pub use standing::{Confirmed, Lapse, Standing, grant_standing, standing};

use crate::grants::{Grant, Timestamp};
use crate::outcome::DenialClass;
use crate::policy::{Policy, Role, ShellMode, Target, User, rules};

/// What the user asked for on one channel, after the first word was split off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    /// Target name as typed.
    pub target: String,
    /// Role named with `TARGET:ROLE`, if any.
    pub role: Option<String>,
    /// Interactive or one command.
    pub action: Action,
}

/// Interactive session or one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A shell (or the restricted prompt); needs a pty.
    Interactive {
        /// Whether the client asked for a pty.
        pty: bool,
    },
    /// One command, exactly the bytes the client sent after the target word.
    Exec(Vec<u8>),
    /// File transfer (SFTP) under the role's file rules.
    Files,
}

/// What the permit lets the session do on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// A login shell on the target with a pty.
    Shell,
    /// Gatehouse's own restricted prompt, each line checked against the role.
    RestrictedShell,
    /// Run this command on the target (already quoted for its shell; also the certificate's
    /// `force-command`).
    Exec {
        /// The command string sent to the target.
        command: String,
    },
    /// The target's SFTP server (`force-command internal-sftp`), each request checked by the
    /// bastion against the role's file rules.
    Files,
    /// A TCP connection from the bastion to this destination of the role's `forward` list.
    Forward {
        /// Where.
        destination: crate::forward::Destination,
    },
}

/// Authorisation for one session. Only [`decide`] builds one (and derives one from another:
/// [`Permit::renewed`] against a newer policy, [`Permit::for_line`] for a restricted-shell line).
/// Signing a certificate and dialling a target take one, so nothing reaches a target without a
/// decision.
#[derive(Debug, Clone)]
pub struct Permit {
    user: Arc<User>,
    target: Arc<Target>,
    role: Arc<Role>,
    grant_id: i64,
    expires_at: Timestamp,
    break_glass: bool,
    allowed: Allowed,
    /// The fingerprint of the key the user logged in with, when they logged in with one.
    login_key: Option<String>,
}

impl Permit {
    /// The person.
    pub fn user(&self) -> &Arc<User> {
        &self.user
    }
    /// The target.
    pub fn target(&self) -> &Arc<Target> {
        &self.target
    }
    /// The role the session runs in.
    pub fn role(&self) -> &Arc<Role> {
        &self.role
    }
    /// The grant that allows it.
    pub fn grant_id(&self) -> i64 {
        self.grant_id
    }
    /// When the grant, and so the session, ends.
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }
    /// Whether the grant came from break-glass.
    pub fn break_glass(&self) -> bool {
        self.break_glass
    }
    /// What may run.
    pub fn allowed(&self) -> &Allowed {
        &self.allowed
    }
    /// The certificate key id: `gatehouse:<user>:<grant-id>:<session-id>`.
    pub fn key_id(&self, session_id: &str) -> String {
        format!(
            "gatehouse:{}:{}:{}",
            self.user.name, self.grant_id, session_id
        )
    }
}

/// Why access was refused: the line the user reads, what to do about it, and the class of
/// refusal that the audit log and the metrics count by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// Printed after `gatehouse: denied: ` and kept in the audit log.
    pub reason: String,
    /// An extra line that helps, such as the request command to type.
    pub hint: Option<String>,
    /// What kind of refusal it is, decided here rather than read back from the words.
    pub class: DenialClass,
}

impl Denial {
    /// A denial of `class` with no hint.
    pub fn new(class: DenialClass, reason: impl Into<String>) -> Denial {
        Denial {
            reason: reason.into(),
            hint: None,
            class,
        }
    }

    /// Adds a hint line.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Denial {
        self.hint = Some(hint.into());
        self
    }
}

impl From<rules::CommandDenial> for Denial {
    /// The role's command rules refused the command.
    fn from(d: rules::CommandDenial) -> Denial {
        Denial {
            reason: d.reason,
            hint: d.hint,
            class: DenialClass::CommandNotAllowed,
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Decides a session request for `user`, given the user's grants and the time.
///
/// The session needs a live grant (active, not past its end) of a role the user is still a
/// member of, that still covers the target in the current policy.
pub fn decide(
    policy: &Policy,
    user: &Arc<User>,
    grants: &[Grant],
    request: &SessionRequest,
    now: Timestamp,
) -> Result<Permit, Denial> {
    // Unknown targets and targets the user has no role on get the same answer, so that the
    // bastion does not reveal which hosts exist to people who may not use them.
    let unknown = || {
        Denial::new(
            DenialClass::Policy,
            format!("no role of yours covers target {:?}", request.target),
        )
        .with_hint("see what you may use: ssh bastion targets")
    };
    let target = policy.target(&request.target).ok_or_else(unknown)?;
    let mut roles: Vec<&Arc<Role>> = policy.roles_for(user, target).collect();
    if let Some(wanted) = &request.role {
        roles.retain(|r| &r.name == wanted);
    }
    if roles.is_empty() {
        return Err(match &request.role {
            Some(wanted) => Denial::new(
                DenialClass::Policy,
                format!(
                    "you may not use role {wanted:?} on target {:?}",
                    request.target
                ),
            ),
            None => unknown(),
        });
    }
    let mut live: Vec<(&Grant, &Arc<Role>)> = grants
        .iter()
        .filter(|g| g.user == user.name && g.is_live(now) && g.covers(&target.name))
        .filter_map(|g| roles.iter().find(|r| r.name == g.role).map(|r| (g, *r)))
        .collect();
    if live.is_empty() {
        return Err(no_grant(&request.target, &roles));
    }
    if request.action == Action::Files {
        let held: Vec<&str> = live.iter().map(|(_, r)| r.name.as_str()).collect();
        live.retain(|(_, r)| r.files.is_some());
        if live.is_empty() {
            return Err(Denial::new(
                DenialClass::Policy,
                format!(
                    "role {} does not allow file transfer on {:?}",
                    held.join(", "),
                    request.target
                ),
            ));
        }
    }
    let mut held: Vec<&str> = live.iter().map(|(_, r)| r.name.as_str()).collect();
    held.sort_unstable();
    held.dedup();
    if held.len() > 1 {
        return Err(Denial::new(
            DenialClass::Other,
            format!(
                "several live grants cover {:?} (roles {}); name one",
                request.target,
                held.join(", ")
            ),
        )
        .with_hint(format!("ssh bastion {}:{} …", request.target, held[0])));
    }
    // Of several grants of the one role, the one that lasts longest.
    live.sort_by_key(|(g, _)| std::cmp::Reverse(g.expires_at));
    let (grant, role) = live[0];
    let allowed = allowed_action(role, &request.action)?;
    Ok(Permit {
        user: user.clone(),
        target: target.clone(),
        role: role.clone(),
        grant_id: grant.id,
        expires_at: grant.expires_at.unwrap_or(now),
        break_glass: grant.break_glass,
        allowed,
        login_key: None,
    })
}

/// The denial for a user with roles on a target but no live grant, with the command to type.
fn no_grant(target: &str, roles: &[&Arc<Role>]) -> Denial {
    let requestable: Vec<&str> = roles
        .iter()
        .filter(|r| !r.break_glass)
        .map(|r| r.name.as_str())
        .collect();
    let denial = Denial::new(
        DenialClass::NoGrant,
        format!("you hold no active grant for {target:?}"),
    );
    match requestable.as_slice() {
        [] => denial.with_hint(format!(
            "in an emergency: ssh bastion breakglass {target} --reason TEXT"
        )),
        [role] => denial.with_hint(format!(
            "ssh bastion request {target} --role {role} --for 1h --reason TEXT"
        )),
        several => denial.with_hint(format!(
            "ssh bastion request {target} --role ROLE --for 1h --reason TEXT (ROLE: {})",
            several.join(", ")
        )),
    }
}

/// What the role lets this action do, or the denial a session under a live grant of the role
/// would get: the same words whether a session asks ([`decide`]) or `gatehouse explain` does.
pub fn allowed_action(role: &Role, action: &Action) -> Result<Allowed, Denial> {
    match (action, role.shell) {
        (Action::Files, _) => Ok(Allowed::Files),
        (Action::Interactive { pty: false }, _) => Err(Denial::new(
            DenialClass::Other,
            "an interactive session needs a terminal",
        )
        .with_hint("use ssh -t, or give a command to run")),
        (Action::Interactive { pty: true }, ShellMode::Full) => Ok(Allowed::Shell),
        (Action::Interactive { pty: true }, ShellMode::Restricted) => Ok(Allowed::RestrictedShell),
        (Action::Interactive { pty: true }, ShellMode::None) => Err(Denial::new(
            DenialClass::Policy,
            format!(
                "role {:?} has no interactive shell; run one of its commands instead",
                role.name
            ),
        )),
        (Action::Exec(bytes), ShellMode::Full) => {
            let command = std::str::from_utf8(bytes).map_err(|_| {
                Denial::new(
                    DenialClass::CommandNotAllowed,
                    "the command is not valid UTF-8",
                )
            })?;
            if command.contains('\0') {
                return Err(Denial::new(
                    DenialClass::CommandNotAllowed,
                    "the command contains a NUL byte",
                ));
            }
            Ok(Allowed::Exec {
                command: command.to_owned(),
            })
        }
        (Action::Exec(bytes), ShellMode::None | ShellMode::Restricted) => {
            let argv = rules::tokenize(bytes).map_err(|e| {
                Denial::new(
                    DenialClass::CommandNotAllowed,
                    format!("the command was refused: {e}"),
                )
            })?;
            role.allow.check(&argv).map_err(Denial::from)?;
            // Only the approved words go to the target, each quoted: never the user's string.
            Ok(Allowed::Exec {
                command: rules::quote(&argv),
            })
        }
    }
}

#[cfg(test)]
mod tests;
