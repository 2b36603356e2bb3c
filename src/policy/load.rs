//! Reading `policies/*.toml` into a [`Policy`], with every error tied to a file and line.
//!
//! Loading is all-or-nothing: all files are read, every problem is collected (not just the first),
//! and only a policy without errors is returned.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PublicKey;
use serde::Deserialize;
use toml::Spanned;

use super::{HostTrust, Policy, Role, ShellMode, Target, User, VERBS, glob, rules};
use crate::config::line_of;
use crate::duration;

mod commands;

/// One problem in one policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// What is wrong, for the operator.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Why the policy did not load: every problem found, in file and line order.
#[derive(Debug)]
pub struct LoadError(pub Vec<PolicyError>);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    user: Vec<Spanned<RawUser>>,
    #[serde(default)]
    target: Vec<Spanned<RawTarget>>,
    #[serde(default)]
    role: Vec<Spanned<RawRole>>,
    #[serde(default)]
    operator: Vec<Spanned<super::operators::RawOperator>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: Spanned<String>,
    #[serde(default)]
    keys: Vec<Spanned<String>>,
    #[serde(default)]
    groups: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: Spanned<String>,
    address: Spanned<String>,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default)]
    host_keys: Vec<Spanned<String>>,
    host_ca: Option<Spanned<String>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn default_port() -> u16 {
    22
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: Spanned<String>,
    #[serde(default)]
    members: Vec<Spanned<String>>,
    #[serde(default)]
    targets: Vec<Spanned<String>>,
    #[serde(default)]
    target_labels: BTreeMap<String, String>,
    login: Spanned<String>,
    max_duration: Option<Spanned<String>>,
    approvals: Option<u32>,
    #[serde(default)]
    approvers: Vec<Spanned<String>>,
    shell: Option<ShellMode>,
    #[serde(default)]
    record_input: bool,
    #[serde(default)]
    commands: Vec<Spanned<commands::RawCommand>>,
    #[serde(default)]
    deny_options: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    exec_pty: bool,
    #[serde(default)]
    break_glass: bool,
}

/// Where a value was written, for messages.
#[derive(Clone, Copy)]
struct At<'a> {
    file: &'a Path,
    text: &'a str,
}

impl At<'_> {
    fn err(&self, offset: usize, message: impl Into<String>) -> PolicyError {
        PolicyError {
            file: self.file.to_owned(),
            line: line_of(self.text, offset),
            message: message.into(),
        }
    }
}

/// A user, target or role with the place it was defined.
struct Placed<T> {
    file: PathBuf,
    line: usize,
    value: T,
}

/// The lines on which a role names groups and targets, for cross-reference errors.
#[derive(Default)]
struct RoleRefs {
    groups: Vec<(String, usize)>,
    targets: Vec<(String, usize)>,
    /// The line of each command rule, in order.
    commands: Vec<usize>,
}

/// Loads every `*.toml` file in `dir` (sorted by name) into one policy.
pub fn load_dir(dir: &Path) -> Result<Policy, LoadError> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect(),
        Err(e) => {
            return Err(LoadError(vec![PolicyError {
                file: dir.to_owned(),
                line: 0,
                message: format!("cannot read the policy directory: {e}"),
            }]));
        }
    };
    files.sort();
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => sources.push((file, text)),
            Err(e) => errors.push(PolicyError {
                file,
                line: 0,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(LoadError(errors));
    }
    let borrowed: Vec<(&Path, &str)> = sources
        .iter()
        .map(|(p, t)| (p.as_path(), t.as_str()))
        .collect();
    load_sources(&borrowed)
}

/// Loads policy from in-memory (file name, text) pairs: the whole of [`load_dir`] but the reading.
pub fn load_sources(sources: &[(&Path, &str)]) -> Result<Policy, LoadError> {
    let mut errors = Vec::new();
    let mut users = Vec::new();
    let mut targets = Vec::new();
    let mut roles = Vec::new();
    let mut operators = Vec::new();
    for &(file, text) in sources {
        let at = At { file, text };
        let raw: RawFile = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                errors.push(at.err(e.span().map(|s| s.start).unwrap_or(0), e.message().trim()));
                continue;
            }
        };
        for u in raw.user {
            let line = line_of(text, u.span().start);
            if let Some(user) = build_user(at, u.into_inner(), &mut errors) {
                users.push(Placed {
                    file: file.to_owned(),
                    line,
                    value: user,
                });
            }
        }
        for t in raw.target {
            let line = line_of(text, t.span().start);
            if let Some(target) = build_target(at, t.into_inner(), &mut errors) {
                targets.push(Placed {
                    file: file.to_owned(),
                    line,
                    value: target,
                });
            }
        }
        for r in raw.role {
            let line = line_of(text, r.span().start);
            let raw_role = r.into_inner();
            let refs = RoleRefs {
                groups: raw_role
                    .members
                    .iter()
                    .chain(&raw_role.approvers)
                    .map(|g| (g.get_ref().clone(), line_of(text, g.span().start)))
                    .collect(),
                targets: raw_role
                    .targets
                    .iter()
                    .map(|t| (t.get_ref().clone(), line_of(text, t.span().start)))
                    .collect(),
                commands: raw_role
                    .commands
                    .iter()
                    .map(|c| line_of(text, c.span().start))
                    .collect(),
            };
            if let Some(role) = build_role(at, raw_role, &mut errors) {
                roles.push((
                    Placed {
                        file: file.to_owned(),
                        line,
                        value: role,
                    },
                    refs,
                ));
            }
        }
        for o in raw.operator {
            if let Some(op) = super::operators::build(file, text, o.into_inner(), &mut errors) {
                operators.push(op);
            }
        }
    }
    let mut policy = link(users, targets, roles, &mut errors);
    super::operators::link(&mut policy, operators, &mut errors);
    if errors.is_empty() {
        Ok(policy)
    } else {
        errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        Err(LoadError(errors))
    }
}

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

fn build_user(at: At, raw: RawUser, errors: &mut Vec<PolicyError>) -> Option<User> {
    let before = errors.len();
    check_name(
        at,
        &raw.name,
        "user",
        super::valid_user_name,
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
            super::valid_role_name,
            "[a-z0-9_][a-z0-9_.-]{0,62}",
            errors,
        );
    }
    (errors.len() == before).then(|| User {
        name: raw.name.into_inner(),
        keys,
        groups: raw.groups.into_iter().map(Spanned::into_inner).collect(),
    })
}

fn build_target(at: At, raw: RawTarget, errors: &mut Vec<PolicyError>) -> Option<Target> {
    let before = errors.len();
    let name = raw.name.get_ref();
    if check_name(
        at,
        &raw.name,
        "target",
        super::valid_target_name,
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

fn build_role(at: At, raw: RawRole, errors: &mut Vec<PolicyError>) -> Option<Role> {
    let before = errors.len();
    let start = raw.name.span().start;
    check_name(
        at,
        &raw.name,
        "role",
        super::valid_role_name,
        "[a-z0-9_][a-z0-9_.-]{0,62}",
        errors,
    );
    check_name(
        at,
        &raw.login,
        "login",
        super::valid_user_name,
        "[a-z_][a-z0-9_.-]{0,31}",
        errors,
    );
    for g in raw.members.iter().chain(&raw.approvers) {
        check_name(
            at,
            g,
            "group",
            super::valid_role_name,
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
    })
}

/// Cross-file checks (duplicates, dangling references) and assembly of the final policy.
fn link(
    users: Vec<Placed<User>>,
    targets: Vec<Placed<Target>>,
    roles: Vec<(Placed<Role>, RoleRefs)>,
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
            let fp = super::fingerprint(key);
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
        policy.users.insert(u.value.name.clone(), Arc::new(u.value));
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
            if !groups.contains_key(g) {
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
        if role.shell != ShellMode::Full && role.commands.is_empty() {
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

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgdDjKMSrY8qUgnxyBR4qy1pPUWL3qHFqK7jGmAgydd alice@laptop";
    const BOB_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDbTPZxQ9pvczXNJzmaMhjfhmQXmsCYU8+7fItj58GZn bob@laptop";
    const HOST_KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPfh9C9Q8BvQz2cXhJjrhhG3nsoTTsGNqwE4W8JLlpIV";

    fn good() -> String {
        format!(
            r#"
[[user]]
name = "alice"
keys = ["{ALICE_KEY}"]
groups = ["sre"]

[[user]]
name = "bob"
keys = ["{BOB_KEY}"]
groups = ["sre-leads"]

[[target]]
name = "web-01"
address = "127.0.0.1"
port = 2201
host_keys = ["{HOST_KEY}"]
labels = {{ env = "prod", service = "web" }}

[[role]]
name = "web-ops"
members = ["sre"]
targets = ["web-*"]
login = "ops"
max_duration = "4h"
approvals = 1
approvers = ["sre-leads"]
shell = "restricted"
commands = ["systemctl status *"]
"#
        )
    }

    fn load(text: &str) -> Result<Policy, LoadError> {
        load_sources(&[(Path::new("policies/main.toml"), text)])
    }

    #[test]
    fn a_good_policy_loads() {
        let p = load(&good()).unwrap();
        let alice = p.user("alice").unwrap();
        let web = p.target("web-01").unwrap();
        let role = p.role("web-ops").unwrap();
        assert!(role.covers(web));
        assert!(role.has_member(alice));
        assert_eq!(p.roles_for(alice, web).count(), 1);
        assert_eq!(p.user_by_key(&alice.keys[0]).unwrap().name, "alice");
        assert_eq!(role.max_duration, Duration::from_secs(4 * 3600));
    }

    fn expect_error(text: &str, line: usize, needle: &str) {
        let err = load(text).unwrap_err().to_string();
        let want = format!("policies/main.toml:{line}:");
        assert!(
            err.contains(&want) && err.contains(needle),
            "wanted {want} … {needle}, got:\n{err}"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_lines() {
        expect_error(
            &good().replace("login = \"ops\"", "login = \"ops\"\nlogn = \"x\""),
            24,
            "logn",
        );
    }

    #[test]
    fn bad_names_are_errors_with_lines() {
        expect_error(
            &good().replace("name = \"web-01\"", "name = \"Web_01\""),
            13,
            "target name",
        );
        expect_error(
            &good().replace("name = \"alice\"", "name = \"Alice\""),
            3,
            "user name",
        );
        expect_error(
            &good().replace("name = \"web-01\"", "name = \"grants\""),
            13,
            "verb",
        );
    }

    #[test]
    fn duplicates_and_dangling_references_are_errors() {
        let dup = format!(
            "{}\n[[user]]\nname = \"alice\"\nkeys = [\"{}\"]\n",
            good(),
            HOST_KEY
        );
        expect_error(
            &dup,
            30,
            "duplicate user \"alice\" (first defined at policies/main.toml:2)",
        );
        expect_error(
            &good().replace("approvers = [\"sre-leads\"]", "approvers = [\"sre-leadz\"]"),
            26,
            "sre-leadz",
        );
        expect_error(
            &good().replace("targets = [\"web-*\"]", "targets = [\"web-02\"]"),
            22,
            "web-02",
        );
        let shared_key = good().replace(BOB_KEY, ALICE_KEY);
        expect_error(&shared_key, 7, "already listed");
    }

    #[test]
    fn targets_need_pinned_trust() {
        expect_error(
            &good().replace(&format!("host_keys = [\"{HOST_KEY}\"]"), ""),
            13,
            "never trusts a host key on first use",
        );
        expect_error(
            &good().replace(HOST_KEY, "ssh-ed25519 AAAA"),
            16,
            "not an OpenSSH public key",
        );
    }

    #[test]
    fn malformed_toml_is_an_error_with_a_line() {
        expect_error("[[user]]\nname = \"alice\nkeys = []\n", 2, "");
        expect_error(
            &good().replace("max_duration = \"4h\"", "max_duration = \"4 hours\""),
            24,
            "invalid duration",
        );
    }

    #[test]
    fn labels_narrow_a_role() {
        let text = good().replace(
            "targets = [\"web-*\"]",
            "targets = [\"web-*\"]\ntarget_labels = { env = \"staging\" }",
        );
        let p = load(&text).unwrap();
        assert!(
            !p.role("web-ops")
                .unwrap()
                .covers(p.target("web-01").unwrap())
        );
    }
}
