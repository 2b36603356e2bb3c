//! The bastion's own commands: `help`, `whoami`, `targets`, and the lobby a user sees with
//! `ssh -t bastion` and no command.
//!
//! Each verb is a function from the caller and its arguments to a [`Reply`]; none touches the
//! network, so they are tested like any other function.

use std::fmt::Write as _;

use serde_json::json;

use crate::policy::{Policy, ShellMode, User};
use crate::server::auth::Identity;

/// Exit status for a malformed verb.
pub const EXIT_USAGE: u32 = 2;

/// What a verb prints and how it exits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// Text for stdout.
    pub stdout: String,
    /// Text for stderr.
    pub stderr: String,
    /// Exit status.
    pub status: u32,
}

impl Reply {
    /// Success with text on stdout.
    pub fn ok(stdout: impl Into<String>) -> Reply {
        Reply {
            stdout: stdout.into(),
            ..Reply::default()
        }
    }

    /// A usage error: the message and the usage text on stderr, exit 2.
    pub fn usage(message: &str) -> Reply {
        Reply {
            stderr: format!("gatehouse: {message}\n\n{}", help_text()),
            status: EXIT_USAGE,
            ..Reply::default()
        }
    }
}

/// The usage text printed by `help` and with usage errors.
pub fn help_text() -> String {
    "\
usage: ssh bastion COMMAND

  TARGET [COMMAND...]          open a session (no command: interactive, needs ssh -t)
  TARGET:ROLE [COMMAND...]     the same, naming the role
  targets [--json]             targets you may request, and what you hold now
  grants [--all] [--json]      your grants (approvers also see pending requests)
  request TARGET --role ROLE --for DURATION --reason TEXT
  approve ID [--comment TEXT]  deny ID --reason TEXT  revoke ID [--reason TEXT]
  breakglass TARGET --reason TEXT [-- COMMAND...]
  whoami                       who the bastion thinks you are
  help                         this text

Durations: 90s, 15m, 2h, 1h30m.
"
    .to_owned()
}

/// `whoami`: the identity as the bastion sees it.
pub fn whoami(identity: &Identity) -> Reply {
    let user = &identity.user;
    Reply::ok(format!(
        "user:   {}\ngroups: {}\nlogin:  {}\n",
        user.name,
        if user.groups.is_empty() {
            "-".into()
        } else {
            user.groups.join(", ")
        },
        identity.method
    ))
}

/// `targets [--json]`: what the user may request, by role.
pub fn targets(policy: &Policy, user: &User, args: &[String]) -> Reply {
    let json = match args {
        [] => false,
        [flag] if flag == "--json" => true,
        _ => return Reply::usage("targets takes only --json"),
    };
    let mut rows = Vec::new();
    for role in policy.roles().filter(|r| r.has_member(user)) {
        for target in policy.targets_of(role) {
            rows.push((
                target.name.clone(),
                role.name.clone(),
                role.shell,
                role.max_duration,
                role.approvals,
            ));
        }
    }
    if json {
        let items: Vec<_> = rows
            .iter()
            .map(|(t, r, shell, max, approvals)| {
                json!({"target": t, "role": r, "shell": shell.as_str(), "max_duration": crate::duration::format(*max), "approvals": approvals})
            })
            .collect();
        return Reply::ok(format!("{}\n", serde_json::Value::Array(items)));
    }
    if rows.is_empty() {
        return Reply::ok("You are not a member of any role.\n");
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(6).max(6);
    let rwidth = rows.iter().map(|r| r.1.len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "{:width$}  {:rwidth$}  {:10}  {:8}  APPROVALS\n",
        "TARGET", "ROLE", "SHELL", "MAX"
    );
    for (t, r, shell, max, approvals) in rows {
        let _ = writeln!(
            out,
            "{t:width$}  {r:rwidth$}  {:10}  {:8}  {approvals}",
            shell.as_str(),
            crate::duration::format(max)
        );
    }
    Reply::ok(out)
}

/// The lobby: shown on an interactive login with no command.
pub fn lobby(policy: &Policy, identity: &Identity) -> Reply {
    let mut out = format!("\r\nWelcome to Gatehouse, {}.\r\n\r\n", identity.user.name);
    let listing = targets(policy, &identity.user, &[]).stdout;
    for line in listing.lines() {
        let _ = write!(out, "  {line}\r\n");
    }
    let has_full = policy
        .roles()
        .any(|r| r.has_member(&identity.user) && r.shell == ShellMode::Full);
    out.push_str("\r\nOpen a session:   ssh -t bastion TARGET\r\n");
    if !has_full {
        out.push_str("Run a command:    ssh bastion TARGET COMMAND...\r\n");
    }
    out.push_str("More:             ssh bastion help\r\n\r\n");
    Reply::ok(out)
}
