//! Cross-file checks (duplicates, dangling references) and the assembly of the final policy.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use super::{Placed, PolicyError, RoleRefs, commands};
use crate::policy::{Policy, Role, ShellMode, Target, User, UserSource, glob};

/// Cross-file checks (duplicates, dangling references) and assembly of the final policy.
pub(super) fn link(
    users: Vec<Placed<User>>,
    targets: Vec<Placed<Target>>,
    roles: Vec<(Placed<Role>, RoleRefs)>,
    outside_groups: &BTreeSet<String>,
    errors: &mut Vec<PolicyError>,
) -> Policy {
    let mut policy = Policy::default();
    let err = |p: &PathBuf, line: usize, message: String| PolicyError {
        file: p.clone(),
        line,
        message,
    };
    let mut first_seen: HashMap<(&'static str, String), (PathBuf, usize)> = HashMap::new();
    let mut duplicate = |kind: &'static str,
                         name: &str,
                         file: &PathBuf,
                         line: usize,
                         errors: &mut Vec<PolicyError>| {
        match first_seen.get(&(kind, name.to_owned())) {
            Some((f, l)) => {
                errors.push(err(
                    file,
                    line,
                    format!(
                        "duplicate {kind} {name:?} (first defined at {}:{l})",
                        f.display()
                    ),
                ));
                true
            }
            None => {
                first_seen.insert((kind, name.to_owned()), (file.clone(), line));
                false
            }
        }
    };

    let mut groups: HashMap<String, usize> = HashMap::new();
    for u in users {
        if duplicate("user", &u.value.name, &u.file, u.line, errors) {
            continue;
        }
        for key in &u.value.keys {
            let fp = crate::policy::fingerprint(key);
            if let Some(other) = policy.key_owner.get(&fp) {
                errors.push(err(
                    &u.file,
                    u.line,
                    format!(
                        "key {fp} is already listed for user {other:?}; a key must name one person"
                    ),
                ));
            } else {
                policy.key_owner.insert(fp, u.value.name.clone());
            }
        }
        for g in &u.value.groups {
            *groups.entry(g.clone()).or_default() += 1;
        }
        let mut user = u.value;
        user.source = UserSource::Policy {
            file: u.file,
            line: u.line,
        };
        policy.users.insert(user.name.clone(), Arc::new(user));
    }
    for t in targets {
        if !duplicate("target", &t.value.name, &t.file, t.line, errors) {
            policy
                .targets
                .insert(t.value.name.clone(), Arc::new(t.value));
        }
    }
    for (r, refs) in roles {
        if duplicate("role", &r.value.name, &r.file, r.line, errors) {
            continue;
        }
        let role = &r.value;
        for (g, line) in &refs.groups {
            if !groups.contains_key(g) && !outside_groups.contains(g) {
                errors.push(err(
                    &r.file,
                    *line,
                    format!(
                        "role {:?} names group {g:?}, which no user is in",
                        role.name
                    ),
                ));
            }
        }
        for (pattern, line) in &refs.targets {
            let hits = policy
                .targets
                .keys()
                .filter(|n| glob::matches(pattern, n))
                .count();
            if hits == 0 && !glob::is_pattern(pattern) {
                errors.push(err(
                    &r.file,
                    *line,
                    format!(
                        "role {:?} names target {pattern:?}, which is not defined",
                        role.name
                    ),
                ));
            } else if hits == 0 {
                policy.warnings.push(format!(
                    "{}:{line}: role {:?}: target pattern {pattern:?} matches no target",
                    r.file.display(),
                    role.name
                ));
            }
        }
        if role.shell == ShellMode::Full && !role.commands.is_empty() {
            policy.warnings.push(format!("{}:{}: role {:?} has shell = \"full\", so its commands are ignored (any command may run)", r.file.display(), r.line, role.name));
        }
        if role.shell != ShellMode::Full {
            // Rules that are wider than they look, what wildcard subcommands admit, and the
            // reasons given for rules acknowledged as unsafe.
            for (rule, line) in role.allow.rules().iter().zip(&refs.commands) {
                let (warnings, notes) = commands::remarks(rule, role.exec_pty);
                let at = |text: String| {
                    format!(
                        "{}:{line}: role {:?}, rule {:?}: {text}",
                        r.file.display(),
                        role.name,
                        rule.source()
                    )
                };
                policy.warnings.extend(warnings.into_iter().map(at));
                policy.notes.extend(notes.into_iter().map(at));
            }
        }
        super::transfer::link(&mut policy, role, &r.file, r.line, &refs.forward, errors);
        let transfers = role.files.is_some() || !role.forward.is_empty();
        if role.shell != ShellMode::Full && role.commands.is_empty() && !transfers {
            policy.warnings.push(format!(
                "{}:{}: role {:?} allows no commands",
                r.file.display(),
                r.line,
                role.name
            ));
        }
        policy.roles.insert(role.name.clone(), Arc::new(r.value));
    }
    policy
}
