//! The report as one self-contained HTML page: inline CSS, inline SVG charts, no script, no
//! external asset, readable on screen and on paper. Every chart bar and every count links to the
//! list of ids it counts; every grant has an anchor (`#grant-ID`). All text is escaped by maud.

use std::time::Duration;

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::model::{Count, GrantTime, Report};
use super::svg::{self, Column, Row};
use crate::server::verbs::grants::when;

mod sections;

/// The page's style: plain, compact, and printable.
const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1b1f24;margin:2rem auto;max-width:1100px;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:2px solid #d0d7de;padding-bottom:.2rem;margin-top:2.2rem}
h3{margin-top:1.4rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}th,td{border:1px solid #d0d7de;padding:.25rem .45rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code,.id{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.92em}
.meta{color:#57606a}.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.warn{color:#9a6700;font-weight:600}
.ids{font-family:ui-monospace,monospace;font-size:.88em;word-break:break-all}
ul.glance{columns:2;padding-left:1.2rem}
.chart{width:100%;height:auto;margin:.5rem 0}.chart .bar,.chart .s0{fill:#0969da}.chart .s1{fill:#8250df}.chart .s2{fill:#1a7f37}
.chart a:hover rect{opacity:.75}.chart .tick,.chart .value{font-size:10px;fill:#57606a}.chart .axis{stroke:#57606a}.chart .grid{stroke:#d0d7de;stroke-dasharray:3 3}
figure{margin:1rem 0}figcaption{color:#57606a;font-size:.9em}
@media print{body{margin:0;max-width:none}a{color:inherit;text-decoration:none}section{break-before:auto}h2{break-after:avoid}table,figure{break-inside:avoid}}
";

/// Renders the whole page.
pub fn render(r: &Report) -> String {
    let title = format!(
        "Gatehouse access report, {} to {}",
        day(r.meta.since),
        day(r.meta.until)
    );
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                // Nothing but the page's own style: no request leaves the page, whatever it holds.
                meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="generator" content=(format!("gatehouse {}", r.meta.gatehouse_version));
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { (title) }
                    p class="meta" {
                        "From " (when(r.meta.since)) " to " (when(r.meta.until)) " (excluded). Written "
                        (when(r.meta.generated_at)) " by " (r.meta.generated_by) " with Gatehouse "
                        (r.meta.gatehouse_version) ", from " code { (r.meta.store) } ", policy "
                        code { (r.meta.policies) } " (sha256 " code { (r.meta.policy_digest) } ")."
                    }
                }
                (sections::glance(r))
                (sections::standing(r))
                (time(r))
                (sections::approvals(r))
                (sections::break_glass(r))
                (sections::unused(r))
                (denials(r))
                (sections::integrity(r))
            }
        }
    };
    page.into_string()
}

/// The time section: charts, per-role figures, and every grant.
fn time(r: &Report) -> Markup {
    let t = &r.time;
    let buckets = buckets(r.meta.since, r.meta.until, &t.grants);
    let bars: Vec<Column> = buckets
        .iter()
        .enumerate()
        .map(|(i, (start, ids))| Column {
            label: bucket_label(*start, buckets.step),
            value: ids.len() as f64,
            href: if ids.is_empty() {
                "#grants".to_owned()
            } else {
                format!("#requested-{i}")
            },
            title: format!("{} grant(s) requested from {}", ids.len(), when(*start)),
        })
        .collect();
    let max = t
        .roles
        .iter()
        .map(|x| x.requested.total.max(x.granted.total))
        .max()
        .unwrap_or(0);
    let (unit, per) = unit_for(max);
    let role_rows: Vec<Row> = t
        .roles
        .iter()
        .map(|x| Row {
            label: x.role.clone(),
            values: vec![
                x.requested.total as f64 / per,
                x.granted.total as f64 / per,
                x.used as f64 / per,
            ],
            href: format!("#time-{}", x.role),
        })
        .collect();
    html! {
        section id="time" {
            h2 { "Time" }
            p { "Grants requested in the period: how long they were asked for, how long they were live, and how much of that time a session ran." }
            figure {
                (svg::columns("Grants requested over time", "grants", &bars))
                figcaption { "Grants requested per " (buckets.step_name) ". Each bar links to its grants:" }
                @for (i, (start, ids)) in buckets.iter().enumerate() {
                    @if !ids.is_empty() {
                        p id=(format!("requested-{i}")) class="ids" {
                            (bucket_label(*start, buckets.step)) ": " (grant_links(ids))
                        }
                    }
                }
            }
            figure {
                (svg::rows("Durations per role", unit, &["requested", "granted", "used by sessions"], &role_rows))
                figcaption { "Totals per role, in " (unit) "; each role links to its grants below." }
            }
            table {
                thead { tr {
                    th { "Role" } th class="n" { "Grants" } th class="n" { "Requested (median / max)" }
                    th class="n" { "Granted (median / max)" } th class="n" { "Used" } th class="n" { "Used %" } th { "Grant ids" }
                } }
                tbody {
                    @for x in &t.roles {
                        tr id=(format!("time-{}", x.role)) {
                            td { (x.role) }
                            td class="n" { (x.grants.len()) }
                            td class="n" { (secs(x.requested.median)) " / " (secs(x.requested.max)) }
                            td class="n" { (secs(x.granted.median)) " / " (secs(x.granted.max)) }
                            td class="n" { (secs(x.used)) }
                            td class="n" { @if let Some(p) = x.used_percent { (format!("{p:.1}")) } @else { "–" } }
                            td class="ids" { (grant_links(&x.grants)) }
                        }
                    }
                }
            }
            p id="ended" {
                "Ended by expiry: " strong { (t.expired.len()) } " (" span class="ids" { (grant_links(&t.expired)) } "). "
                "Ended by revocation: " strong { (t.revoked.len()) } " (" span class="ids" { (grant_links(&t.revoked)) } ")."
            }
            h3 id="grants" { "Every grant of the period" }
            (grants_table(&t.grants))
        }
    }
}

fn grants_table(grants: &[GrantTime]) -> Markup {
    html! {
        table {
            thead { tr {
                th class="n" { "Grant" } th { "User" } th { "Role" } th { "Target" } th { "State" }
                th { "Requested at" } th class="n" { "Asked" } th class="n" { "Granted" } th class="n" { "Used" }
                th { "Ended by" } th { "Sessions" }
            } }
            tbody {
                @for g in grants {
                    tr id=(format!("grant-{}", g.id)) {
                        td class="n id" { (g.id) @if g.break_glass { " ⚠" } }
                        td { (g.user) } td { (g.role) } td { (g.target) } td { (g.state) }
                        td { (when(g.requested_at)) }
                        td class="n" { (secs(g.requested)) }
                        td class="n" { @if let Some(x) = g.granted { (secs(x)) } @else { "–" } }
                        td class="n" { (secs(g.used)) }
                        td { (g.ended_by.as_deref().unwrap_or("")) }
                        td class="ids" { (g.sessions.join(" ")) }
                    }
                }
            }
        }
    }
}

/// The denials section.
fn denials(r: &Report) -> Markup {
    let d = &r.denials;
    html! {
        section id="denials" {
            h2 { "Denials" }
            p { strong { (d.total) } " sessions or restricted-shell lines were refused in the period. The numbers after each count are the audit log's " code { "seq" } " of each refusal." }
            h3 { "Top reasons" }
            (count_table("Reason", &d.by_reason, 20))
            h3 { "By user" }
            (count_table("User", &d.by_user, usize::MAX))
            h3 { "By role" }
            (count_table("Role", &d.by_role, usize::MAX))
            h3 { "By class" }
            (count_table("Class", &d.by_class, usize::MAX))
        }
    }
}

fn count_table(what: &str, counts: &[Count], top: usize) -> Markup {
    html! {
        @if counts.is_empty() { p { "None." } } @else {
            table {
                thead { tr { th { (what) } th class="n" { "Count" } th { "Audit lines" } } }
                tbody {
                    @for c in counts.iter().take(top) {
                        tr { td { (c.key) } td class="n" { (c.count) } td class="ids" { (seqs(&c.seqs)) } }
                    }
                }
            }
            @if counts.len() > top { p class="meta" { (counts.len() - top) " more in the JSON and CSV reports." } }
        }
    }
}

/// Links to grants by id.
pub(super) fn grant_links(ids: &[i64]) -> Markup {
    html! {
        @for (i, id) in ids.iter().enumerate() {
            @if i > 0 { " " }
            a href=(format!("#grant-{id}")) { (id) }
        }
    }
}

/// Audit `seq`s, space separated.
pub(super) fn seqs(seqs: &[u64]) -> String {
    seqs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A number of seconds as a duration (`1h30m`).
pub(super) fn secs(s: u64) -> String {
    crate::duration::format(Duration::from_secs(s))
}

/// A date (UTC).
fn day(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// The unit a chart of durations up to `max` seconds reads best in, and its size.
fn unit_for(max: u64) -> (&'static str, f64) {
    if max >= 2 * 3600 {
        ("hours", 3600.0)
    } else if max >= 120 {
        ("minutes", 60.0)
    } else {
        ("seconds", 1.0)
    }
}

/// Grants requested, by time bucket.
struct Buckets {
    step: i64,
    step_name: &'static str,
    start: Vec<(i64, Vec<i64>)>,
}

impl Buckets {
    fn iter(&self) -> std::slice::Iter<'_, (i64, Vec<i64>)> {
        self.start.iter()
    }
}

/// At most 60 buckets of an hour, a day, a week or 30 days over the period.
fn buckets(since: i64, until: i64, grants: &[GrantTime]) -> Buckets {
    let span = (until - since).max(1);
    let (step, step_name) = [
        (3600, "hour"),
        (86_400, "day"),
        (7 * 86_400, "week"),
        (30 * 86_400, "30 days"),
    ]
    .into_iter()
    .find(|(step, _)| span / step < 60)
    .unwrap_or((span / 59 + 1, "period"));
    let first = since - since.rem_euclid(step);
    let count = ((until - first + step - 1) / step).clamp(1, 64) as usize;
    let mut start: Vec<(i64, Vec<i64>)> = (0..count)
        .map(|i| (first + i as i64 * step, Vec::new()))
        .collect();
    for g in grants {
        let i = ((g.requested_at - first) / step).clamp(0, count as i64 - 1) as usize;
        start[i].1.push(g.id);
    }
    Buckets {
        step,
        step_name,
        start,
    }
}

fn bucket_label(start: i64, step: i64) -> String {
    let format = if step < 86_400 {
        "%m-%d %H:00"
    } else {
        "%Y-%m-%d"
    };
    chrono::DateTime::from_timestamp(start, 0)
        .map(|d| d.format(format).to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
