//! The report page's sections other than time and denials.

use maud::{Markup, html};

use super::{grant_links, secs};
use crate::report::model::{Report, Stats};
use crate::report::svg::{self, Column};
use crate::server::verbs::grants::when;

/// Approval latency buckets: upper bounds in seconds, and labels.
const LATENCY: [(u64, &str); 6] = [
    (60, "< 1m"),
    (300, "1–5m"),
    (900, "5–15m"),
    (3600, "15m–1h"),
    (4 * 3600, "1–4h"),
    (u64::MAX, "≥ 4h"),
];

/// The figures an auditor looks at first, each linking to its section.
pub fn glance(r: &Report) -> Markup {
    let unreviewed = r
        .break_glass
        .iter()
        .filter(|u| u.review.state != "reviewed" && u.review.state != "no session")
        .count();
    let integrity_ok = r.integrity.audit.ok
        && r.integrity.recordings.modified.is_empty()
        && r.integrity.recordings.unreadable.is_empty();
    html! {
        section id="glance" {
            h2 { "At a glance" }
            ul class="glance" {
                li { a href="#standing" { (r.standing.roles.len()) " roles with standing privilege" } }
                li { a href="#active" { (r.standing.active.len()) " grants active at " (when(r.standing.active_at)) } }
                li { a href="#grants" { (r.time.grants.len()) " grants requested" } }
                li { a href="#ended" { (r.time.expired.len()) " ended by expiry, " (r.time.revoked.len()) " by revocation" } }
                li { a href="#approvals" { (r.approvals.latency.len()) " approved, median wait " (secs(r.approvals.latency_stats.median)) } }
                li { a href="#refusals" { (r.approvals.self_approvals_refused) " self-approvals refused, " (r.approvals.other_refusals) " other refusals" } }
                li { a href="#break-glass" { (r.break_glass.len()) " break-glass uses, " (unreviewed) " not reviewed" } }
                li { a href="#unused" { (r.unused.roles.len()) " unused roles, " (r.unused.rules.len()) " unused rules" } }
                li { a href="#denials" { (r.denials.total) " denials" } }
                li { a href="#integrity" {
                    "Evidence: "
                    @if integrity_ok { span class="ok" { "intact" } } @else { span class="bad" { "PROBLEMS" } }
                } }
            }
        }
    }
}

/// Standing privilege and the grants active at the end of the period.
pub fn standing(r: &Report) -> Markup {
    let s = &r.standing;
    html! {
        section id="standing" {
            h2 { "Standing privilege" }
            p { "Roles that need no approval, give a full shell, are for emergencies, or last longer than " (secs(s.long_after)) ", and everyone who may hold them." }
            table {
                thead { tr { th { "Role" } th { "Why" } th class="n" { "Longest grant" } th { "Who may hold it" } } }
                tbody {
                    @for role in &s.roles {
                        tr { td { (role.role) } td { (role.why.join(", ")) } td class="n" { (secs(role.max_duration)) } td { (role.holders.join(", ")) } }
                    }
                }
            }
            h3 id="active" { "Grants active at " (when(s.active_at)) }
            @if s.active.is_empty() { p { "None." } } @else {
                table {
                    thead { tr { th class="n" { "Grant" } th { "User" } th { "Role" } th { "Target" } th { "Since" } th { "Until" } } }
                    tbody {
                        @for g in &s.active {
                            tr {
                                td class="n id" { (g.id) @if g.break_glass { " ⚠ break-glass" } }
                                td { (g.user) } td { (g.role) } td { (g.target) }
                                td { (when(g.activated_at)) } td { (when(g.expires_at)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Who approved whom, how fast, and what was refused.
pub fn approvals(r: &Report) -> Markup {
    let a = &r.approvals;
    let mut buckets: Vec<Vec<i64>> = vec![Vec::new(); LATENCY.len()];
    for l in &a.latency {
        let i = LATENCY
            .iter()
            .position(|(upper, _)| l.seconds < *upper)
            .unwrap_or(LATENCY.len() - 1);
        buckets[i].push(l.grant);
    }
    let bars: Vec<Column> = LATENCY
        .iter()
        .zip(&buckets)
        .enumerate()
        .map(|(i, ((_, label), ids))| Column {
            label: (*label).to_owned(),
            value: ids.len() as f64,
            href: if ids.is_empty() {
                "#approvals".to_owned()
            } else {
                format!("#latency-{i}")
            },
            title: format!("{} grant(s) active after {label}", ids.len()),
        })
        .collect();
    html! {
        section id="approvals" {
            h2 { "Approvals" }
            h3 { "Who approved whom" }
            @if a.pairs.is_empty() { p { "No approvals in the period." } } @else {
                table {
                    thead { tr { th { "Approver" } th { "Requester" } th class="n" { "Approvals" } th { "Grants" } } }
                    tbody {
                        @for p in &a.pairs {
                            tr { td { (p.approver) } td { (p.requester) } td class="n" { (p.grants.len()) } td class="ids" { (grant_links(&p.grants)) } }
                        }
                    }
                }
            }
            h3 { "Time to approval" }
            figure {
                (svg::columns("Time from request to active grant", "grants", &bars))
                figcaption { (stats_line(&a.latency_stats)) " Each bar links to its grants:" }
                @for (i, ids) in buckets.iter().enumerate() {
                    @if !ids.is_empty() {
                        p id=(format!("latency-{i}")) class="ids" { (LATENCY[i].1) ": " (grant_links(ids)) }
                    }
                }
            }
            p {
                "Requests denied by an approver: " strong { (a.denied.len()) } " (" span class="ids" { (grant_links(&a.denied)) } "). "
                "Requests nobody decided in time: " strong { (a.lapsed.len()) } " (" span class="ids" { (grant_links(&a.lapsed)) } ")."
            }
            h3 id="refusals" { "Decisions refused for separation of duties" }
            p { strong { (a.self_approvals_refused) } " self-approvals and " strong { (a.other_refusals) } " other decisions were refused." }
            @if !a.refusals.is_empty() {
                table {
                    thead { tr { th class="n" { "Audit seq" } th { "When" } th { "Who" } th { "Request of" } th class="n" { "Grant" } th { "Decision" } th { "Refused as" } th { "Reason" } } }
                    tbody {
                        @for x in &a.refusals {
                            tr {
                                td class="n id" { (x.seq) } td { (when(x.time)) } td { (x.actor) }
                                td { (x.requester.as_deref().unwrap_or("")) }
                                td class="n" { @if let Some(g) = x.grant { a href=(format!("#grant-{g}")) { (g) } } }
                                td { (x.decision) } td { (x.refusal.replace('_', " ")) } td { (x.reason) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn stats_line(s: &Stats) -> String {
    if s.count == 0 {
        return "No grant waited for approval.".to_owned();
    }
    format!(
        "{} grant(s): fastest {}, median {}, slowest {}.",
        s.count,
        secs(s.min),
        secs(s.median),
        secs(s.max)
    )
}

/// Every break-glass use, unreviewed first.
pub fn break_glass(r: &Report) -> Markup {
    html! {
        section id="break-glass" {
            h2 { "Break-glass" }
            @if r.break_glass.is_empty() { p { "No emergency access in the period." } } @else {
                table {
                    thead { tr {
                        th class="n" { "Grant" } th { "Who, where" } th { "When" } th { "Reason" } th class="n" { "Live / used" }
                        th { "Alert" } th { "Review" } th { "Sessions" }
                    } }
                    tbody {
                        @for u in &r.break_glass {
                            tr {
                                td class="n id" { a href=(format!("#grant-{}", u.grant)) { (u.grant) } }
                                td { (u.user) " on " (u.target) br; span class="meta" { (u.role) ", " (u.state) } }
                                td { (when(u.at)) }
                                td { (u.reason) }
                                td class="n" { (secs(u.granted)) " / " (secs(u.used)) }
                                td {
                                    @let good = u.alert.state == "delivered";
                                    span class=(if good { "ok" } else { "warn" }) { (u.alert.state) }
                                    @if !u.alert.sinks.is_empty() {
                                        br; span class="meta" { "at once: " (u.alert.at_once.join(", ")) "; delivered: " (u.alert.delivered.join(", ")) " of " (u.alert.sinks.join(", ")) }
                                    }
                                    @if u.alert.failed_attempts > 0 { br; span class="meta" { (u.alert.failed_attempts) " failed attempt(s)" } }
                                }
                                td {
                                    @let done = u.review.state == "reviewed";
                                    span class=(if done { "ok" } else { "bad" }) { (u.review.state) }
                                    @if !u.review.reviewers.is_empty() { br; span class="meta" { "by " (u.review.reviewers.join(", ")) } }
                                    @if let Some(s) = u.review.seconds_to_review { br; span class="meta" { "after " (secs(s)) } }
                                }
                                td class="ids" { (u.sessions.join(" ")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Entitlements with no use, and how each rule was used.
pub fn unused(r: &Report) -> Markup {
    let u = &r.unused;
    let list = |items: &[String]| {
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    html! {
        section id="unused" {
            h2 { "Unused entitlements" }
            p { "Nothing here ran a session in the period: the candidates to remove." }
            table {
                tbody {
                    tr { th { "Users" } td { (list(&u.users)) } }
                    tr { th { "Roles" } td { (list(&u.roles)) } }
                    tr { th { "Targets" } td { (list(&u.targets)) } }
                    tr { th { "Command rules" } td {
                        @if u.rules.is_empty() { "none" }
                        @for (i, rule) in u.rules.iter().enumerate() {
                            @if i > 0 { br; }
                            (rule.role) ": " code { (rule.rule) }
                        }
                    } }
                    tr { th { "Members who never used their role" } td {
                        @if u.memberships.is_empty() { "none" }
                        @for (i, m) in u.memberships.iter().enumerate() {
                            @if i > 0 { ", " }
                            (m.user) " (" (m.role) ")"
                        }
                    } }
                }
            }
            @for role in &u.rule_use {
                h3 id=(format!("rules-{}", role.role)) { "Rules of " (role.role) " (" (role.shell) ")" }
                table {
                    thead { tr { th { "Rule" } th class="n" { "Uses" } th { "Sessions" } } }
                    tbody {
                        @for rule in &role.rules {
                            tr { td { code { (rule.rule) } } td class="n" { (rule.uses) } td class="ids" { (rule.sessions.join(" ")) } }
                        }
                    }
                }
                @if role.unmatched > 0 {
                    p class="meta" { (role.unmatched) " command(s) ran that no rule of the current policy allows (the policy changed since)." }
                }
            }
        }
    }
}

/// Whether the evidence is intact.
pub fn integrity(r: &Report) -> Markup {
    let i = &r.integrity;
    html! {
        section id="integrity" {
            h2 { "Integrity" }
            h3 { "Audit log" }
            @if i.audit.ok {
                p { span class="ok" { "The hash chain is unbroken" } ": " (i.audit.lines) " lines, last seq " (i.audit.last_seq) ", last hash " code { (i.audit.last_hash) } "." }
            } @else {
                p {
                    span class="bad" { "The hash chain is broken" }
                    @if let Some(line) = i.audit.first_bad_line { " at line " strong { (line) } }
                    ": " (i.audit.problem.as_deref().unwrap_or(""))
                }
            }
            @for w in &i.audit.warnings { p class="warn" { "warning: " (w) } }
            h3 { "Recordings" }
            p {
                (i.recordings.checked) " recordings checked, " (i.recordings.matching) " match their hash. "
                @if i.recordings.modified.is_empty() && i.recordings.unreadable.is_empty() { span class="ok" { "None changed." } }
            }
            @for p in i.recordings.modified.iter().chain(&i.recordings.unreadable) {
                p class="bad" { "session " span class="id" { (p.session) } ": " code { (p.path) } " " (p.detail) }
            }
            @if !i.recordings.unhashed.is_empty() {
                p class="meta" { "No hash to check (running, or ended uncleanly): " span class="ids" { (i.recordings.unhashed.join(" ")) } }
            }
            h3 { "Policy and version" }
            p { "Policy digest " code { (i.policy_digest) } "; written by Gatehouse " (i.gatehouse_version) "." }
        }
    }
}
