//! Verbs that only read the policy: `whoami`, `targets`, and the lobby a user sees with
//! `ssh -t bastion` and no command.

use std::fmt::Write as _;

use serde_json::json;

use super::Reply;
use crate::policy::{Policy, ShellMode, User};
use crate::server::auth::Identity;

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
pub fn targets(policy: &Policy, user: &User, json: bool) -> Reply {
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
    let listing = targets(policy, &identity.user, false).stdout;
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
