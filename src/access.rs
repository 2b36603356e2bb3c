//! The decision: may this person open this session, now?
//!
//! [`decide`] is a pure function of the policy, the request and the clock. It does no I/O, so
//! every rule and corner case is a unit test, and its answer is a value: only a [`Permit`] (whose
//! fields are private) opens a recording or a connection to a target, and a [`Denial`] carries
//! the words the user reads and the audit log keeps.

use std::fmt;
use std::sync::Arc;

use crate::policy::{Policy, Role, ShellMode, Target, User};

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
}

/// Authorisation for one session. Only [`decide`] builds one.
#[derive(Debug, Clone)]
pub struct Permit {
    user: Arc<User>,
    target: Arc<Target>,
    role: Arc<Role>,
    grant_id: Option<i64>,
    allowed: Allowed,
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
    /// The grant that allows it, when grants apply.
    pub fn grant_id(&self) -> Option<i64> {
        self.grant_id
    }
    /// What may run.
    pub fn allowed(&self) -> &Allowed {
        &self.allowed
    }
    /// The certificate key id: `gatehouse:<user>:<grant-id>:<session-id>`.
    pub fn key_id(&self, session_id: &str) -> String {
        let grant = self
            .grant_id
            .map(|g| g.to_string())
            .unwrap_or_else(|| "-".into());
        format!("gatehouse:{}:{}:{}", self.user.name, grant, session_id)
    }
}

/// Why access was refused: the line the user reads, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// Printed after `gatehouse: denied: ` and kept in the audit log.
    pub reason: String,
    /// An extra line that helps, such as the request command to type.
    pub hint: Option<String>,
}

impl Denial {
    /// A denial with no hint.
    pub fn new(reason: impl Into<String>) -> Denial {
        Denial {
            reason: reason.into(),
            hint: None,
        }
    }

    /// Adds a hint line.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Denial {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Decides a session request for `user`.
pub fn decide(
    policy: &Policy,
    user: &Arc<User>,
    request: &SessionRequest,
) -> Result<Permit, Denial> {
    // Unknown targets and targets the user has no role on get the same answer, so that the
    // bastion does not reveal which hosts exist to people who may not use them.
    let unknown = || {
        Denial::new(format!(
            "no role of yours covers target {:?}",
            request.target
        ))
        .with_hint("see what you may use: ssh bastion targets")
    };
    let target = policy.target(&request.target).ok_or_else(unknown)?;
    let mut roles: Vec<&Arc<Role>> = policy.roles_for(user, target).collect();
    if roles.is_empty() {
        return Err(unknown());
    }
    if let Some(wanted) = &request.role {
        roles.retain(|r| &r.name == wanted);
        if roles.is_empty() {
            return Err(Denial::new(format!(
                "you do not hold role {wanted:?} on target {:?}",
                request.target
            )));
        }
    }
    let role = match roles.as_slice() {
        [only] => *only,
        several => {
            let names: Vec<&str> = several.iter().map(|r| r.name.as_str()).collect();
            return Err(Denial::new(format!(
                "several roles cover {:?} ({}); name one",
                request.target,
                names.join(", ")
            ))
            .with_hint(format!("ssh bastion {}:{} …", request.target, names[0])));
        }
    };
    let allowed = allowed_action(role, &request.action)?;
    Ok(Permit {
        user: user.clone(),
        target: target.clone(),
        role: role.clone(),
        grant_id: None,
        allowed,
    })
}

/// What the role lets this action do.
fn allowed_action(role: &Role, action: &Action) -> Result<Allowed, Denial> {
    match (action, role.shell) {
        (Action::Interactive { pty: false }, _) => {
            Err(Denial::new("an interactive session needs a terminal")
                .with_hint("use ssh -t, or give a command to run"))
        }
        (Action::Interactive { pty: true }, ShellMode::Full) => Ok(Allowed::Shell),
        (Action::Interactive { pty: true }, ShellMode::Restricted) => Ok(Allowed::RestrictedShell),
        (Action::Interactive { pty: true }, ShellMode::None) => Err(Denial::new(format!(
            "role {:?} has no interactive shell; run one of its commands instead",
            role.name
        ))),
        (Action::Exec(bytes), ShellMode::Full) => {
            let command = std::str::from_utf8(bytes)
                .map_err(|_| Denial::new("the command is not valid UTF-8"))?;
            if command.contains('\0') {
                return Err(Denial::new("the command contains a NUL byte"));
            }
            Ok(Allowed::Exec {
                command: command.to_owned(),
            })
        }
        (Action::Exec(_), _) => Err(Denial::new(format!(
            "role {:?} runs commands only under its allow-list, which this bastion does not enforce yet",
            role.name
        ))),
    }
}
