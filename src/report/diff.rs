//! `gatehouse report --diff OLD.json NEW.json`: drift between two reports, in the direction an
//! access review worries about: new standing privilege, roles that grew, and entitlements that
//! became unused since.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::ReportError;
use super::model::{FORMAT, Membership, Report, RoleSummary, RuleRef};

/// What changed from one report to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// Roles whose standing privilege is new or wider, and new holders of standing roles.
    pub new_standing: Vec<StandingDrift>,
    /// Roles that give more than before: more members, targets or rules, longer grants, fewer
    /// approvals, a wider shell. A role that is new counts whole.
    pub grown: Vec<Growth>,
    /// Entitlements unused now that were used (or did not exist) before.
    pub newly_unused: NewlyUnused,
}

/// New standing privilege of one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StandingDrift {
    /// The role.
    pub role: String,
    /// Reasons it is standing privilege that it did not have before.
    pub why_added: Vec<String>,
    /// People who may now hold it and could not before.
    pub holders_added: Vec<String>,
}

/// How one role grew.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Growth {
    /// The role.
    pub role: String,
    /// Whether the role did not exist before.
    pub new_role: bool,
    /// Users who may now hold it.
    pub members_added: Vec<String>,
    /// Targets it now covers.
    pub targets_added: Vec<String>,
    /// Rules it now has.
    pub rules_added: Vec<String>,
    /// Its longest grant, before and after, when longer.
    pub max_duration: Option<(u64, u64)>,
    /// Approvals needed, before and after, when fewer.
    pub approvals: Option<(u32, u32)>,
    /// Its shell, before and after, when wider.
    pub shell: Option<(String, String)>,
}

/// Entitlements that became unused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NewlyUnused {
    /// Users.
    pub users: Vec<String>,
    /// Roles.
    pub roles: Vec<String>,
    /// Targets.
    pub targets: Vec<String>,
    /// Command rules.
    pub rules: Vec<RuleRef>,
    /// Role memberships.
    pub memberships: Vec<Membership>,
}

impl Drift {
    /// Whether nothing drifted.
    pub fn is_empty(&self) -> bool {
        self == &Drift::default()
    }
}

/// Reads a report written with `--json`.
///
/// # Errors
///
/// The file cannot be read, is not a report, or is of a format this version does not read.
pub fn read(path: &Path) -> Result<Report, ReportError> {
    let text = std::fs::read_to_string(path).map_err(ReportError::io(path))?;
    let not = |why: String| ReportError::NotAReport {
        path: path.display().to_string(),
        why,
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| not(e.to_string()))?;
    let format = value
        .get("meta")
        .and_then(|m| m.get("format"))
        .and_then(serde_json::Value::as_u64);
    if format != Some(u64::from(FORMAT)) {
        return Err(not(format!(
            "its format is {format:?}; this version reads format {FORMAT}"
        )));
    }
    serde_json::from_value(value).map_err(|e| not(e.to_string()))
}

/// The drift from `old` to `new`.
pub fn diff(old: &Report, new: &Report) -> Drift {
    let mut drift = Drift::default();
    for s in &new.standing.roles {
        let before = old.standing.roles.iter().find(|o| o.role == s.role);
        let why_added = added(before.map(|b| b.why.as_slice()), &s.why);
        let holders_added = added(before.map(|b| b.holders.as_slice()), &s.holders);
        if !why_added.is_empty() || !holders_added.is_empty() {
            drift.new_standing.push(StandingDrift {
                role: s.role.clone(),
                why_added,
                holders_added,
            });
        }
    }
    for role in &new.roles {
        let growth = grown(old.roles.iter().find(|o| o.role == role.role), role);
        if growth
            != (Growth {
                role: role.role.clone(),
                ..Growth::default()
            })
        {
            drift.grown.push(growth);
        }
    }
    let (o, n) = (&old.unused, &new.unused);
    drift.newly_unused = NewlyUnused {
        users: added(Some(&o.users), &n.users),
        roles: added(Some(&o.roles), &n.roles),
        targets: added(Some(&o.targets), &n.targets),
        rules: added(Some(&o.rules), &n.rules),
        memberships: added(Some(&o.memberships), &n.memberships),
    };
    drift
}

/// The items of `now` that `before` did not have (all of them when there was no before).
fn added<T: Clone + Ord>(before: Option<&[T]>, now: &[T]) -> Vec<T> {
    let before: BTreeSet<&T> = before.unwrap_or_default().iter().collect();
    now.iter()
        .filter(|x| !before.contains(x))
        .cloned()
        .collect()
}

fn shell_rank(shell: &str) -> u8 {
    match shell {
        "none" => 0,
        "restricted" => 1,
        _ => 2,
    }
}

fn grown(before: Option<&RoleSummary>, now: &RoleSummary) -> Growth {
    let Some(b) = before else {
        return Growth {
            role: now.role.clone(),
            new_role: true,
            members_added: now.members.clone(),
            targets_added: now.targets.clone(),
            rules_added: now.rules.clone(),
            ..Growth::default()
        };
    };
    Growth {
        role: now.role.clone(),
        new_role: false,
        members_added: added(Some(&b.members), &now.members),
        targets_added: added(Some(&b.targets), &now.targets),
        rules_added: added(Some(&b.rules), &now.rules),
        max_duration: (now.max_duration > b.max_duration)
            .then_some((b.max_duration, now.max_duration)),
        approvals: (now.approvals < b.approvals).then_some((b.approvals, now.approvals)),
        shell: (shell_rank(&now.shell) > shell_rank(&b.shell))
            .then(|| (b.shell.clone(), now.shell.clone())),
    }
}

/// The drift as text.
pub fn render(d: &Drift, old: &Report, new: &Report) -> String {
    let mut out = String::new();
    let period = |r: &Report| {
        format!(
            "{} to {}",
            crate::server::verbs::grants::when(r.meta.since),
            crate::server::verbs::grants::when(r.meta.until)
        )
    };
    let _ = writeln!(out, "drift from the report of {}", period(old));
    let _ = writeln!(out, "        to the report of {}", period(new));
    if d.is_empty() {
        out.push_str("\nno drift\n");
        return out;
    }
    if !d.new_standing.is_empty() {
        out.push_str("\nnew standing privilege:\n");
        for s in &d.new_standing {
            let _ = write!(out, "  {}", s.role);
            if !s.why_added.is_empty() {
                let _ = write!(out, ": now {}", s.why_added.join(", "));
            }
            if !s.holders_added.is_empty() {
                let _ = write!(out, "; new holders: {}", s.holders_added.join(", "));
            }
            out.push('\n');
        }
    }
    if !d.grown.is_empty() {
        out.push_str("\nroles that grew:\n");
        for g in &d.grown {
            let mut parts = Vec::new();
            if g.new_role {
                parts.push("new role".to_owned());
            }
            for (what, items) in [
                ("members", &g.members_added),
                ("targets", &g.targets_added),
                ("rules", &g.rules_added),
            ] {
                if !items.is_empty() {
                    let shown: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
                    parts.push(format!("+{what} {}", shown.join(", ")));
                }
            }
            if let Some((a, b)) = g.max_duration {
                parts.push(format!("max_duration {}s -> {}s", a, b));
            }
            if let Some((a, b)) = g.approvals {
                parts.push(format!("approvals {a} -> {b}"));
            }
            if let Some((a, b)) = &g.shell {
                parts.push(format!("shell {a} -> {b}"));
            }
            let _ = writeln!(out, "  {}: {}", g.role, parts.join("; "));
        }
    }
    let u = &d.newly_unused;
    let lists = [
        ("users", u.users.clone()),
        ("roles", u.roles.clone()),
        ("targets", u.targets.clone()),
        (
            "rules",
            u.rules
                .iter()
                .map(|r| format!("{} {:?}", r.role, r.rule))
                .collect(),
        ),
        (
            "memberships",
            u.memberships
                .iter()
                .map(|m| format!("{} in {}", m.user, m.role))
                .collect(),
        ),
    ];
    if lists.iter().any(|(_, l)| !l.is_empty()) {
        out.push_str("\nbecame unused:\n");
        for (what, list) in lists {
            if !list.is_empty() {
                let _ = writeln!(out, "  {what}: {}", list.join(", "));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::aggregate::tests::report;
    use crate::report::model::StandingRole;

    #[test]
    fn the_same_report_has_no_drift() {
        let r = report();
        assert!(diff(&r, &r).is_empty());
        assert!(render(&diff(&r, &r), &r, &r).ends_with("no drift\n"));
    }

    #[test]
    fn new_standing_privilege_grown_roles_and_new_unused_entitlements_are_found() {
        let old = report();
        let mut new = old.clone();
        // web-read becomes a full-shell role with a new member, a new rule and longer grants.
        let role = new.roles.iter_mut().find(|r| r.role == "web-read").unwrap();
        role.members.push("eve".into());
        role.rules.push("reboot".into());
        role.max_duration = 8 * 3600;
        role.shell = "full".into();
        let standing = new
            .standing
            .roles
            .iter_mut()
            .find(|s| s.role == "web-read")
            .unwrap();
        standing.why.push("full shell".into());
        standing.holders.push("eve".into());
        new.standing.roles.push(StandingRole {
            role: "new-admin".into(),
            why: vec!["self-service".into()],
            max_duration: 3600,
            holders: vec!["bob".into()],
        });
        new.unused.users.push("alice".into());
        new.unused.rules.push(RuleRef {
            role: "web-read".into(),
            rule: "journalctl -u nginx *".into(),
        });
        let d = diff(&old, &new);
        assert_eq!(d.new_standing.len(), 2);
        assert_eq!(d.new_standing[0].role, "web-read");
        assert_eq!(d.new_standing[0].why_added, vec!["full shell".to_owned()]);
        assert_eq!(d.new_standing[0].holders_added, vec!["eve".to_owned()]);
        assert_eq!(d.new_standing[1].why_added, vec!["self-service".to_owned()]);
        assert_eq!(d.grown.len(), 1);
        let g = &d.grown[0];
        assert_eq!(g.members_added, vec!["eve".to_owned()]);
        assert_eq!(g.rules_added, vec!["reboot".to_owned()]);
        assert_eq!(g.max_duration, Some((3600, 8 * 3600)));
        assert_eq!(g.shell, Some(("none".into(), "full".into())));
        assert_eq!(d.newly_unused.users, vec!["alice".to_owned()]);
        assert_eq!(d.newly_unused.rules.len(), 1);
        let text = render(&d, &old, &new);
        assert!(
            text.contains("web-read: now full shell; new holders: eve"),
            "{text}"
        );
        assert!(text.contains("shell none -> full"), "{text}");
        // Shrinking is not drift.
        assert!(diff(&new, &old).grown.is_empty());
    }

    #[test]
    fn only_reports_of_this_format_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, serde_json::to_string(&report()).unwrap()).unwrap();
        assert_eq!(read(&path).unwrap(), report());
        std::fs::write(&path, "{\"meta\": {\"format\": 99}}").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("format"));
        std::fs::write(&path, "not json").unwrap();
        assert!(matches!(read(&path), Err(ReportError::NotAReport { .. })));
    }
}
