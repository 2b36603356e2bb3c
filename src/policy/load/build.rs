//! Checking one user, target or role as written and building it, with an error for every
//! problem found.

use std::time::Duration;

use russh::keys::PublicKey;
use toml::Spanned;

use super::raw::{RawRole, RawTarget, RawUser};
use super::{At, PolicyError, commands};
use crate::duration;
use crate::policy::{HostTrust, Role, ShellMode, Target, User, VERBS, rules};

fn parse_key(at: At, text: &Spanned<String>, errors: &mut Vec<PolicyError>) -> Option<PublicKey> {
    match PublicKey::from_openssh(text.get_ref().trim()) {
        Ok(key) => Some(key),
        Err(e) => {
            errors.push(at.err(
                text.span().start,
                format!("not an OpenSSH public key ({e})"),
            ));
            None
        }
    }
}

fn check_name(
    at: At,
    name: &Spanned<String>,
    what: &str,
    valid: fn(&str) -> bool,
    pattern: &str,
    errors: &mut Vec<PolicyError>,
) -> bool {
    if valid(name.get_ref()) {
        return true;
    }
    errors.push(at.err(
        name.span().start,
        format!(
            "{what} name {:?} is not valid (it must match {pattern})",
            name.get_ref()
        ),
    ));
    false
}

pub(super) fn build_user(at: At, raw: RawUser, errors: &mut Vec<PolicyError>) -> Option<User> {
    let before = errors.len();
    check_name(
        at,
        &raw.name,
        "user",
        crate::policy::valid_user_name,
        "[a-z_][a-z0-9_.-]{0,31}",
        errors,
    );
    let keys: Vec<PublicKey> = raw
        .keys
        .iter()
        .filter_map(|k| parse_key(at, k, errors))
        .collect();
    for g in &raw.groups {
        check_name(
            at,
            g,
            "group",
            crate::policy::valid_role_name,
            "[a-z0-9_][a-z0-9_.-]{0,62}",
            errors,
        );
    }
    (errors.len() == before).then(|| User {
        name: raw.name.into_inner(),
        keys,
        groups: raw.groups.into_iter().map(Spanned::into_inner).collect(),
        // The line is filled in when the files are linked.
        source: crate::policy::UserSource::Policy {
            file: at.file.to_owned(),
            line: 0,
        },
    })
}

pub(super) fn build_target(
    at: At,
    raw: RawTarget,
    errors: &mut Vec<PolicyError>,
) -> Option<Target> {
    let before = errors.len();
    let name = raw.name.get_ref();
    if check_name(
        at,
        &raw.name,
        "target",
        crate::policy::valid_target_name,
        "[a-z0-9][a-z0-9-]{0,62}",
        errors,
    ) && VERBS.contains(&name.as_str())
    {
        errors.push(at.err(
            raw.name.span().start,
            format!("target name {name:?} is a Gatehouse verb; choose another name"),
        ));
    }
    let address = raw.address.get_ref();
    if address.is_empty()
        || address.len() > 255
        || !address
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
    {
        errors.push(at.err(
            raw.address.span().start,
            format!("address {address:?} is not a host name or IP address"),
        ));
    }
    if raw.port == 0 {
        errors.push(at.err(raw.name.span().start, "port 0 is not valid"));
    }
    let trust = match (&raw.host_keys[..], &raw.host_ca) {
        ([], None) => {
            errors.push(at.err(
                raw.name.span().start,
                format!("target {name:?} needs host_keys or host_ca: Gatehouse never trusts a host key on first use"),
            ));
            None
        }
        ([_, ..], Some(ca)) => {
            errors.push(at.err(ca.span().start, "set host_keys or host_ca, not both"));
            None
        }
        (keys @ [_, ..], None) => Some(HostTrust::Pinned(
            keys.iter()
                .filter_map(|k| parse_key(at, k, errors))
                .collect(),
        )),
        ([], Some(ca)) => parse_key(at, ca, errors).map(HostTrust::Ca),
    };
    (errors.len() == before).then(|| Target {
        name: raw.name.into_inner(),
        address: raw.address.into_inner(),
        port: raw.port,
        trust: trust.expect("set when no error"),
        labels: raw.labels,
    })
}

pub(super) fn build_role(at: At, raw: RawRole, errors: &mut Vec<PolicyError>) -> Option<Role> {
    let before = errors.len();
    let start = raw.name.span().start;
    check_name(
        at,
        &raw.name,
        "role",
        crate::policy::valid_role_name,
        "[a-z0-9_][a-z0-9_.-]{0,62}",
        errors,
    );
    check_name(
        at,
        &raw.login,
        "login",
        crate::policy::valid_user_name,
        "[a-z_][a-z0-9_.-]{0,31}",
        errors,
    );
    for g in raw.members.iter().chain(&raw.approvers) {
        check_name(
            at,
            g,
            "group",
            crate::policy::valid_role_name,
            "[a-z0-9_][a-z0-9_.-]{0,62}",
            errors,
        );
    }
    for t in &raw.targets {
        let ok = t
            .get_ref()
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '*' | '?'));
        if !ok || t.get_ref().is_empty() {
            errors.push(at.err(
                t.span().start,
                format!("target pattern {:?} is not valid", t.get_ref()),
            ));
        }
    }
    if raw.targets.is_empty() && raw.target_labels.is_empty() {
        errors.push(at.err(start, "a role needs targets or target_labels"));
    }
    if raw.members.is_empty() {
        errors.push(at.err(
            start,
            "a role needs members (groups whose users may hold it)",
        ));
    }
    let max_duration = match &raw.max_duration {
        Some(text) => match duration::parse(text.get_ref()) {
            Ok(d) => d,
            Err(e) => {
                errors.push(at.err(text.span().start, e.to_string()));
                Duration::ZERO
            }
        },
        None => Duration::from_secs(3600),
    };
    let approvals = raw.approvals.unwrap_or(1);
    if raw.break_glass && raw.approvals.is_some_and(|n| n > 0) {
        errors.push(at.err(
            start,
            "a break_glass role is used without approval; remove approvals",
        ));
    }
    let approvals = if raw.break_glass { 0 } else { approvals };
    if approvals > 0 && raw.approvers.is_empty() {
        errors.push(at.err(start, format!("approvals = {approvals} needs approvers")));
    }
    if approvals > 10 {
        errors.push(at.err(start, "approvals may be at most 10"));
    }
    let guard = match rules::OptionGuard::builtin().with_extra(&raw.deny_options) {
        Ok(guard) => guard,
        Err(e) => {
            errors.push(at.err(start, format!("deny_options: {e}")));
            rules::OptionGuard::builtin()
        }
    };
    // A full shell ignores its rules, so what they would hand over does not matter.
    let full = raw.shell == Some(ShellMode::Full);
    let parsed = commands::build(at, &raw.commands, raw.exec_pty && !full, full, errors);
    let files = super::transfer::files(at, raw.files.as_ref(), errors);
    let forward = super::transfer::forward(at, &raw.forward, errors);
    (errors.len() == before).then(|| Role {
        name: raw.name.into_inner(),
        members: raw.members.into_iter().map(Spanned::into_inner).collect(),
        targets: raw.targets.into_iter().map(Spanned::into_inner).collect(),
        target_labels: raw.target_labels,
        login: raw.login.into_inner(),
        max_duration,
        approvals,
        approvers: raw.approvers.into_iter().map(Spanned::into_inner).collect(),
        shell: raw.shell.unwrap_or(ShellMode::None),
        record_input: raw.record_input,
        commands: raw
            .commands
            .into_iter()
            .map(|c| c.into_inner().rule)
            .collect(),
        allow: rules::AllowList::new(parsed, guard).on_terminal(raw.exec_pty),
        exec_pty: raw.exec_pty,
        break_glass: raw.break_glass,
        files,
        forward,
    })
}
