//! The report as CSV files for spreadsheets, one file per table, written into a directory.
//!
//! Fields are quoted as RFC 4180 says (`"` doubled, a field with `,`, `"` or a line break in
//! quotes). A field that a spreadsheet would read as a formula (it starts with `=`, `+`, `-`,
//! `@`, a tab or a carriage return) gets a leading `'`, so that a reason or a command typed by
//! a user cannot run in the reviewer's spreadsheet.

use std::fmt::Write as _;
use std::path::Path;

use super::ReportError;
use super::model::{Count, Report};

/// The files written, in order.
pub const FILES: [&str; 12] = [
    "standing_roles.csv",
    "active_grants.csv",
    "grants.csv",
    "role_time.csv",
    "approvals.csv",
    "refusals.csv",
    "break_glass.csv",
    "unused.csv",
    "rule_use.csv",
    "denials.csv",
    "recordings.csv",
    "summary.csv",
];

/// Writes every table of `r` into `dir` (created if missing); returns the paths written.
///
/// # Errors
///
/// A file cannot be written.
pub fn write(r: &Report, dir: &Path) -> Result<Vec<std::path::PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(ReportError::io(dir))?;
    let tables = tables(r);
    let mut written = Vec::new();
    for (name, text) in FILES.iter().zip(tables) {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(ReportError::io(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// The text of each file of [`FILES`], in the same order.
pub fn tables(r: &Report) -> Vec<String> {
    let mut standing = Table::new(&["role", "why", "max_duration_s", "holders"]);
    for s in &r.standing.roles {
        standing.row([
            s.role.clone(),
            s.why.join("; "),
            s.max_duration.to_string(),
            s.holders.join(" "),
        ]);
    }
    let mut active = Table::new(&[
        "grant",
        "user",
        "role",
        "target",
        "break_glass",
        "activated_at",
        "expires_at",
    ]);
    for g in &r.standing.active {
        active.row([
            g.id.to_string(),
            g.user.clone(),
            g.role.clone(),
            g.target.clone(),
            g.break_glass.to_string(),
            g.activated_at.to_string(),
            g.expires_at.to_string(),
        ]);
    }
    let mut grants = Table::new(&[
        "grant",
        "user",
        "role",
        "target",
        "state",
        "break_glass",
        "requested_at",
        "activated_at",
        "ends_at",
        "requested_s",
        "granted_s",
        "used_s",
        "ended_by",
        "sessions",
    ]);
    for g in &r.time.grants {
        grants.row([
            g.id.to_string(),
            g.user.clone(),
            g.role.clone(),
            g.target.clone(),
            g.state.clone(),
            g.break_glass.to_string(),
            g.requested_at.to_string(),
            opt(g.activated_at),
            opt(g.ends_at),
            g.requested.to_string(),
            opt(g.granted),
            g.used.to_string(),
            g.ended_by.clone().unwrap_or_default(),
            g.sessions.join(" "),
        ]);
    }
    let mut roles = Table::new(&[
        "role",
        "grants",
        "requested_total_s",
        "requested_median_s",
        "granted_total_s",
        "granted_median_s",
        "used_s",
        "used_percent",
        "grant_ids",
    ]);
    for t in &r.time.roles {
        roles.row([
            t.role.clone(),
            t.grants.len().to_string(),
            t.requested.total.to_string(),
            t.requested.median.to_string(),
            t.granted.total.to_string(),
            t.granted.median.to_string(),
            t.used.to_string(),
            t.used_percent
                .map(|p| format!("{p:.1}"))
                .unwrap_or_default(),
            ids(&t.grants),
        ]);
    }
    let mut approvals = Table::new(&["approver", "requester", "count", "grants"]);
    for p in &r.approvals.pairs {
        approvals.row([
            p.approver.clone(),
            p.requester.clone(),
            p.grants.len().to_string(),
            ids(&p.grants),
        ]);
    }
    let mut refusals = Table::new(&[
        "audit_seq",
        "time",
        "actor",
        "requester",
        "grant",
        "role",
        "decision",
        "refusal",
        "reason",
    ]);
    for x in &r.approvals.refusals {
        refusals.row([
            x.seq.to_string(),
            x.time.to_string(),
            x.actor.clone(),
            x.requester.clone().unwrap_or_default(),
            opt(x.grant),
            x.role.clone().unwrap_or_default(),
            x.decision.clone(),
            x.refusal.clone(),
            x.reason.clone(),
        ]);
    }
    let mut glass = Table::new(&[
        "grant",
        "user",
        "role",
        "target",
        "reason",
        "at",
        "granted_s",
        "used_s",
        "state",
        "alert",
        "alert_delivered",
        "alert_sinks",
        "review",
        "reviewers",
        "review_after_s",
        "sessions",
    ]);
    for u in &r.break_glass {
        glass.row([
            u.grant.to_string(),
            u.user.clone(),
            u.role.clone(),
            u.target.clone(),
            u.reason.clone(),
            u.at.to_string(),
            u.granted.to_string(),
            u.used.to_string(),
            u.state.clone(),
            u.alert.state.clone(),
            u.alert.delivered.join(" "),
            u.alert.sinks.join(" "),
            u.review.state.clone(),
            u.review.reviewers.join(" "),
            opt(u.review.seconds_to_review),
            u.sessions.join(" "),
        ]);
    }
    let mut unused = Table::new(&["kind", "role", "name"]);
    for (kind, names) in [
        ("user", &r.unused.users),
        ("role", &r.unused.roles),
        ("target", &r.unused.targets),
    ] {
        for name in names {
            unused.row([kind.to_owned(), String::new(), name.clone()]);
        }
    }
    for rule in &r.unused.rules {
        unused.row(["rule".to_owned(), rule.role.clone(), rule.rule.clone()]);
    }
    for m in &r.unused.memberships {
        unused.row(["membership".to_owned(), m.role.clone(), m.user.clone()]);
    }
    let mut rule_use = Table::new(&["role", "rule", "uses", "sessions"]);
    for role in &r.unused.rule_use {
        for rule in &role.rules {
            rule_use.row([
                role.role.clone(),
                rule.rule.clone(),
                rule.uses.to_string(),
                rule.sessions.join(" "),
            ]);
        }
    }
    let mut denials = Table::new(&["by", "key", "count", "audit_seqs"]);
    for (by, counts) in [
        ("reason", &r.denials.by_reason),
        ("user", &r.denials.by_user),
        ("role", &r.denials.by_role),
        ("class", &r.denials.by_class),
    ] {
        for c in counts {
            denials.row(count_row(by, c));
        }
    }
    let mut recordings = Table::new(&["session", "state", "path", "detail"]);
    let rec = &r.integrity.recordings;
    for (state, problems) in [("modified", &rec.modified), ("unreadable", &rec.unreadable)] {
        for p in problems {
            recordings.row([
                p.session.clone(),
                state.to_owned(),
                p.path.clone(),
                p.detail.clone(),
            ]);
        }
    }
    for s in &rec.unhashed {
        recordings.row([s.clone(), "unhashed".into(), String::new(), String::new()]);
    }
    let mut summary = Table::new(&["item", "value"]);
    let audit = &r.integrity.audit;
    for (item, value) in [
        ("since", r.meta.since.to_string()),
        ("until", r.meta.until.to_string()),
        ("generated_at", r.meta.generated_at.to_string()),
        ("generated_by", r.meta.generated_by.clone()),
        ("gatehouse_version", r.meta.gatehouse_version.clone()),
        ("policy_digest", r.meta.policy_digest.clone()),
        ("audit_chain_ok", audit.ok.to_string()),
        ("audit_first_bad_line", opt(audit.first_bad_line)),
        ("audit_last_hash", audit.last_hash.clone()),
        ("recordings_checked", rec.checked.to_string()),
        ("recordings_matching", rec.matching.to_string()),
        ("denials", r.denials.total.to_string()),
    ] {
        summary.row([item.to_owned(), value]);
    }
    vec![
        standing.text,
        active.text,
        grants.text,
        roles.text,
        approvals.text,
        refusals.text,
        glass.text,
        unused.text,
        rule_use.text,
        denials.text,
        recordings.text,
        summary.text,
    ]
}

fn count_row(by: &str, c: &Count) -> [String; 4] {
    [
        by.to_owned(),
        c.key.clone(),
        c.count.to_string(),
        c.seqs
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" "),
    ]
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

fn ids(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(" ")
}

/// A CSV table being written.
struct Table {
    text: String,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        let mut table = Table {
            text: String::new(),
        };
        table.row(header.iter().map(|h| (*h).to_owned()));
        table
    }

    fn row(&mut self, fields: impl IntoIterator<Item = String>) {
        for (i, field) in fields.into_iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            let _ = write!(self.text, "{}", field_text(&field));
        }
        self.text.push_str("\r\n");
    }
}

/// One field, defused and quoted as needed.
fn field_text(field: &str) -> String {
    let defused = if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{field}")
    } else {
        field.to_owned()
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::aggregate::tests::report;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(field_text("plain"), "plain");
        assert_eq!(field_text("a,b"), "\"a,b\"");
        assert_eq!(field_text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(
            field_text("=HYPERLINK(\"x\")"),
            "\"'=HYPERLINK(\"\"x\"\")\""
        );
        assert_eq!(field_text("-1"), "'-1");
        assert_eq!(field_text("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn every_table_has_its_rows() {
        let r = report();
        let tables = tables(&r);
        assert_eq!(tables.len(), FILES.len());
        let lines = |i: usize| tables[i].lines().count();
        assert_eq!(lines(2), 1 + r.time.grants.len(), "grants.csv");
        assert_eq!(lines(6), 1 + r.break_glass.len(), "break_glass.csv");
        assert!(
            tables[9].contains("reason,\"no role of yours covers target \"\"web-01\"\"\",2,10 13")
        );
        let dir = tempfile::tempdir().unwrap();
        let written = write(&r, &dir.path().join("csv")).unwrap();
        assert_eq!(written.len(), FILES.len());
        assert!(written.iter().all(|p| p.exists()));
    }
}
