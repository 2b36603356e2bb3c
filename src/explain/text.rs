//! An explanation as text for a terminal: the verdict first, then each role.
//!
//! Everything that came from a user or a policy (names, commands, reasons) is printed with
//! control characters escaped, so a hostile command cannot drive the reader's terminal.

use std::fmt::Write as _;

use super::{CommandCheck, Explanation, RoleExplanation, Verdict};
use crate::server::verbs::grants::when;

/// `text` safe for a terminal: control and other invisible characters escaped.
fn clean(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let visible = !c.is_control()
                && !matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}');
            let out: Vec<char> = if visible {
                vec![c]
            } else {
                c.escape_default().collect()
            };
            out
        })
        .collect()
}

/// The explanation as lines of text.
pub fn render(e: &Explanation) -> String {
    let mut out = String::new();
    let asked = match &e.command {
        Some(c) => format!("run {c:?}"),
        None => "an interactive session".to_owned(),
    };
    let target = match &e.role {
        Some(role) => format!("{}:{}", clean(&e.target), clean(role)),
        None => clean(&e.target),
    };
    let _ = writeln!(out, "{} on {target}: {asked}", clean(&e.user));
    if e.target_known == Some(false) {
        let _ = writeln!(out, "(the policy has no target named {:?})", e.target);
    }
    let _ = writeln!(out, "{}", verdict_line("now", &e.verdict));
    if let Some(hint) = &e.verdict.hint {
        let _ = writeln!(out, "  hint: {}", clean(hint));
    }
    if e.roles.is_empty() {
        let _ = writeln!(out, "\nno role covers this target for this person");
    }
    for role in &e.roles {
        out.push('\n');
        render_role(&mut out, role);
    }
    out
}

fn verdict_line(label: &str, v: &Verdict) -> String {
    if v.allowed {
        let mut line = format!("{label}: ALLOWED");
        if let Some(role) = &v.role {
            let _ = write!(line, " in role {}", clean(role));
        }
        if let Some(grant) = v.grant {
            let _ = write!(line, " under grant {grant}");
        }
        if let Some(runs) = &v.runs {
            let _ = write!(line, ": runs {}", clean(runs));
        }
        line
    } else {
        format!(
            "{label}: DENIED: {}",
            clean(v.reason.as_deref().unwrap_or("(no reason)"))
        )
    }
}

fn render_role(out: &mut String, r: &RoleExplanation) {
    let mut kind = format!(
        "shell {}, {} approval(s), up to {}",
        r.shell, r.approvals, r.max_duration
    );
    if r.break_glass {
        kind.push_str(", break-glass");
    }
    let _ = writeln!(out, "role {} ({kind})", clean(&r.role));
    let member = if r.member {
        format!("yes, through group {}", r.member_via.join(", "))
    } else {
        format!("no (member groups: {})", r.member_groups.join(", "))
    };
    let _ = writeln!(out, "  member:    {member}");
    let grant = match &r.live_grant {
        Some(g) => format!(
            "live grant {} until {}",
            g.id,
            g.expires_at.map(when).unwrap_or_default()
        ),
        None if r.pending.is_empty() => "none live".to_owned(),
        None => {
            let ids: Vec<String> = r.pending.iter().map(|g| g.id.to_string()).collect();
            format!("none live; pending: {}", ids.join(", "))
        }
    };
    let _ = writeln!(out, "  grant:     {grant}");
    render_check(out, &r.with_grant);
    if !r.approvers.is_empty() {
        let _ = writeln!(out, "  approvers: {}", r.approvers.join(", "));
    } else if r.approvals > 0 && !r.break_glass {
        let _ = writeln!(out, "  approvers: nobody in the policy may approve it");
    }
    let _ = writeln!(out, "  {}", verdict_line("as asked", &r.now));
    if let Some(hint) = &r.now.hint {
        let _ = writeln!(out, "    hint: {}", clean(hint));
    }
    let _ = writeln!(out, "  next:      {}", clean(&r.next));
}

fn render_check(out: &mut String, c: &CommandCheck) {
    if c.allowed {
        let by = c
            .rule
            .as_deref()
            .map(|r| format!(" by rule {r:?}"))
            .unwrap_or_default();
        let runs = c.runs.as_deref().map(clean).unwrap_or_default();
        let _ = writeln!(out, "  command:   allowed{by}: runs {runs}");
    } else {
        let _ = writeln!(
            out,
            "  command:   denied: {}",
            clean(c.reason.as_deref().unwrap_or(""))
        );
        if let Some(hint) = &c.hint {
            let _ = writeln!(out, "             hint: {}", clean(hint));
        }
    }
    for g in &c.guard {
        let _ = writeln!(
            out,
            "  guard:     rule {:?} matches the words, but: {}",
            g.rule,
            clean(g.detail.as_deref().unwrap_or(""))
        );
    }
    if !c.allowed {
        for rule in c.rules.iter().filter(|r| r.verdict == "mismatch") {
            let _ = writeln!(
                out,
                "  rule:      {:?}: {}",
                rule.rule,
                clean(rule.detail.as_deref().unwrap_or(""))
            );
        }
    }
}
