//! The report's numbers against the history: what the store holds (read here through the
//! library, as the test sees it) and what the users were told.

use gatehouse::grants::store::GrantFilter;
use gatehouse::grants::{Grant, GrantState};
use gatehouse::store::sessions::{Review, SessionFilter, SessionRecord};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

use crate::common::*;
use crate::gatehouse;
use crate::history::{Made, Setup, report_again};

/// The store after the history, read directly.
pub struct Store {
    pub grants: BTreeMap<i64, Grant>,
    pub sessions: Vec<SessionRecord>,
    pub reviews: BTreeMap<String, Review>,
    pub audit_log: std::path::PathBuf,
}

impl Store {
    pub fn read(gh: &Gatehouse) -> Store {
        let config =
            gatehouse::config::Config::discover(Some(&gh.dir.join("gatehouse.toml"))).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let store = gatehouse::store::open(&config.store).await.unwrap();
            let all = GrantFilter {
                limit: Some(10_000),
                ..GrantFilter::default()
            };
            let grants = store.list(&all).await.unwrap();
            let mut sessions = store
                .sessions(&SessionFilter {
                    limit: Some(10_000),
                    ..SessionFilter::default()
                })
                .await
                .unwrap();
            sessions.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
            let reviews = store
                .review_queue(false)
                .await
                .unwrap()
                .into_iter()
                .filter_map(|(s, r)| r.map(|r| (s.id, r)))
                .collect();
            Store {
                grants: grants.into_iter().map(|g| (g.id, g)).collect(),
                sessions,
                reviews,
                audit_log: config.audit_log.clone(),
            }
        })
    }

    fn sessions_of(&self, grant: i64) -> Vec<&SessionRecord> {
        self.sessions
            .iter()
            .filter(|s| s.grant_id == grant)
            .collect()
    }

    /// When the grant stopped being live: its revocation or its end.
    fn end(&self, grant: i64) -> i64 {
        let g = &self.grants[&grant];
        match g.state {
            GrantState::Revoked => g.ended_at.unwrap(),
            _ => g.expires_at.unwrap(),
        }
    }

    /// Seconds of the grant during which a session ran, overlaps counted once.
    fn used(&self, grant: i64, now: i64) -> u64 {
        let g = &self.grants[&grant];
        let Some(start) = g.activated_at else {
            return 0;
        };
        let end = self.end(grant).min(now);
        let mut covered = BTreeSet::new();
        for s in self.sessions_of(grant) {
            for second in s.started_at.max(start)..s.ended_at.unwrap_or(end).min(end) {
                covered.insert(second);
            }
        }
        covered.len() as u64
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| {
            x.as_str()
                .unwrap_or_else(|| panic!("not text: {x}"))
                .to_owned()
        })
        .collect()
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn find<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x[key] == value)
        .unwrap_or_else(|| panic!("no {key} = {value} in {list}"))
}

pub fn standing(r: &Value, _seen: &Store) {
    let roles = &r["standing"]["roles"];
    let why = |role: &str| strings(&find(roles, "role", role)["why"]);
    let holders = |role: &str| strings(&find(roles, "role", role)["holders"]);
    assert_eq!(why("db-admin"), ["full shell", "long max_duration"]);
    assert_eq!(holders("db-admin"), ["alice", "dave"]);
    assert_eq!(why("emergency"), ["full shell", "break-glass"]);
    assert_eq!(holders("emergency"), ["carol"]);
    assert_eq!(why("quick"), ["self-service", "full shell"]);
    assert_eq!(holders("quick"), ["alice", "dave"]);
    assert_eq!(
        roles.as_array().unwrap().len(),
        3,
        "web-read is no standing privilege"
    );
    let active: Vec<i64> = r["standing"]["active"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_i64().unwrap())
        .collect();
    assert_eq!(active, [4, 5, 6], "two emergencies and grant 6 are live");
}

pub fn time(r: &Value, seen: &Store) {
    let now = r["meta"]["generated_at"].as_i64().unwrap();
    let grants = r["time"]["grants"].as_array().unwrap();
    let listed: Vec<i64> = grants.iter().map(|g| g["id"].as_i64().unwrap()).collect();
    assert_eq!(listed, [1, 2, 3, 4, 5, 6]);
    for g in grants {
        let id = g["id"].as_i64().unwrap();
        let stored = &seen.grants[&id];
        assert_eq!(g["requested"], stored.duration.as_secs(), "grant {id}");
        let granted = stored.activated_at.map(|a| (seen.end(id) - a) as u64);
        assert_eq!(g["granted"], json!(granted), "grant {id}");
        assert_eq!(g["used"], seen.used(id, now), "grant {id}");
        let sessions: Vec<&str> = seen.sessions_of(id).iter().map(|s| s.id.as_str()).collect();
        assert_eq!(strings(&g["sessions"]), sessions, "grant {id}");
    }
    assert_eq!(
        seen.sessions_of(1).len(),
        3,
        "two commands and a restricted shell"
    );
    assert!(seen.used(2, now) >= 1, "the quick session ran for seconds");
    assert_eq!(ids(&r["time"]["expired"]), [2]);
    assert_eq!(ids(&r["time"]["revoked"]), [1]);
    assert_eq!(
        find(&r["time"]["grants"], "state", "revoked")["ended_by"],
        "bob"
    );
    let read = find(&r["time"]["roles"], "role", "web-read");
    assert_eq!(ids(&read["grants"]), [1, 3, 6]);
    assert_eq!(read["requested"]["total"], 3600 + 7200 + 7200);
    assert_eq!(read["requested"]["count"], 3);
    let granted = (seen.end(1) - seen.grants[&1].activated_at.unwrap()) as u64 + 7200;
    assert_eq!(read["granted"]["total"], granted);
    assert_eq!(read["granted"]["count"], 2, "grant 3 was denied");
    assert_eq!(read["used"], seen.used(1, now) + seen.used(6, now));
}

pub fn approvals(r: &Value, seen: &Store, made: &Made) {
    let a = &r["approvals"];
    assert_eq!(
        a["pairs"],
        json!([{"approver": "bob", "requester": "alice", "grants": [1, 6]}])
    );
    let latency = a["latency"].as_array().unwrap();
    assert_eq!(latency.len(), 2);
    for l in latency {
        let g = &seen.grants[&l["grant"].as_i64().unwrap()];
        assert_eq!(l["seconds"], g.activated_at.unwrap() - g.requested_at);
        assert_eq!(strings(&l["approvers"]), ["bob"]);
    }
    assert_eq!(ids(&a["denied"]), [3]);
    assert_eq!(ids(&a["lapsed"]), Vec::<i64>::new());
    let refusals = a["refusals"].as_array().unwrap();
    assert_eq!(refusals.len(), 2);
    assert_eq!(refusals[0]["actor"], "alice");
    assert_eq!(refusals[0]["requester"], "alice");
    assert_eq!(refusals[0]["grant"], 1);
    assert_eq!(refusals[0]["decision"], "approve");
    assert_eq!(refusals[0]["refusal"], "self_approval");
    assert_eq!(refusals[0]["reason"], made.self_approval.as_str());
    assert_eq!(refusals[1]["actor"], "dave");
    assert_eq!(refusals[1]["refusal"], "not_approver");
    assert_eq!(refusals[1]["reason"], made.not_approver.as_str());
    assert_eq!(a["self_approvals_refused"], 1);
    assert_eq!(a["other_refusals"], 1);
}

pub fn break_glass(r: &Value, seen: &Store, made: &Made) {
    let uses = r["break_glass"].as_array().unwrap();
    let grants: Vec<i64> = uses.iter().map(|u| u["grant"].as_i64().unwrap()).collect();
    assert_eq!(grants, [5, 4], "the unreviewed use first");
    assert_eq!(uses[0]["reason"], "replica lagging INC-10");
    assert_eq!(uses[0]["review"]["state"], "unreviewed");
    assert_eq!(uses[1]["reason"], "primary down INC-9");
    assert_eq!(uses[1]["user"], "carol");
    assert_eq!(uses[1]["target"], "db-01");
    let review = &seen.reviews[&made.reviewed_session];
    assert_eq!(uses[1]["review"]["state"], "reviewed");
    assert_eq!(strings(&uses[1]["review"]["reviewers"]), ["bob"]);
    let at = seen.grants[&4].activated_at.unwrap();
    assert_eq!(uses[1]["review"]["seconds_to_review"], review.at - at);
    for u in uses {
        let id = u["grant"].as_i64().unwrap();
        assert_eq!(u["granted"], 1800);
        assert_eq!(u["state"], "active");
        let sessions: Vec<&str> = seen.sessions_of(id).iter().map(|s| s.id.as_str()).collect();
        assert_eq!(strings(&u["sessions"]), sessions);
        assert_eq!(sessions.len(), 1);
        let alert = &u["alert"];
        assert_eq!(alert["state"], "delivered", "{alert}");
        assert_eq!(strings(&alert["sinks"]).len(), 1, "{alert}");
        assert_eq!(alert["delivered"], alert["sinks"], "{alert}");
        assert!(alert["alert_id"].is_string(), "{alert}");
    }
}

pub fn unused(r: &Value, seen: &Store) {
    let u = &r["unused"];
    assert_eq!(strings(&u["users"]), ["bob", "dave", "eve"]);
    assert_eq!(strings(&u["roles"]), ["db-admin"]);
    assert_eq!(strings(&u["targets"]), Vec::<String>::new());
    assert_eq!(u["rules"], json!([{"role": "web-read", "rule": "curl *"}]));
    assert_eq!(
        u["memberships"],
        json!([
            {"role": "db-admin", "user": "alice"},
            {"role": "db-admin", "user": "dave"},
            {"role": "quick", "user": "dave"},
            {"role": "web-read", "user": "dave"},
        ])
    );
    let rules = &find(&u["rule_use"], "role", "web-read")["rules"];
    let of_one: Vec<&str> = seen.sessions_of(1).iter().map(|s| s.id.as_str()).collect();
    let shell = seen
        .sessions_of(1)
        .into_iter()
        .find(|s| s.kind == "restricted")
        .unwrap();
    assert_eq!(find(rules, "rule", "echo *")["uses"], 2);
    assert_eq!(
        strings(&find(rules, "rule", "echo *")["sessions"]),
        [of_one[0], shell.id.as_str()]
    );
    assert_eq!(find(rules, "rule", "uptime")["uses"], 1);
    assert_eq!(find(rules, "rule", "id -un")["uses"], 1);
    assert_eq!(
        strings(&find(rules, "rule", "id -un")["sessions"]),
        [shell.id.as_str()]
    );
    assert_eq!(find(rules, "rule", "curl *")["uses"], 0);
    assert_eq!(find(&u["rule_use"], "role", "web-read")["unmatched"], 0);
}

pub fn denials(r: &Value, made: &Made) {
    let d = &r["denials"];
    assert_eq!(d["total"], 5);
    let mut reasons: Vec<String> = d["by_reason"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["count"], 1, "{c}");
            c["key"].as_str().unwrap().to_owned()
        })
        .collect();
    reasons.sort();
    let mut told = made.denials.clone();
    told.sort();
    assert_eq!(reasons, told, "the report keeps the words the users read");
    let counts = |by: &str| -> Vec<(String, u64)> {
        d[by]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["key"].as_str().unwrap().to_owned(),
                    c["count"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(counts("by_user"), [("alice".into(), 4), ("eve".into(), 1)]);
    assert_eq!(counts("by_role"), [("-".into(), 4), ("web-read".into(), 1)]);
    assert_eq!(
        counts("by_class"),
        [
            ("command_not_allowed".into(), 3),
            ("no_grant".into(), 1),
            ("policy".into(), 1)
        ]
    );
}

pub fn integrity(r: &Value, seen: &Store) {
    let i = &r["integrity"];
    assert_eq!(i["audit"]["ok"], true, "{i}");
    assert!(i["audit"]["lines"].as_u64().unwrap() > 20);
    assert_eq!(i["recordings"]["checked"], seen.sessions.len());
    assert_eq!(i["recordings"]["matching"], seen.sessions.len());
    assert_eq!(i["recordings"]["modified"], json!([]));
    assert_eq!(i["recordings"]["unhashed"], json!([]));
    assert_eq!(seen.sessions.len(), 6);
    assert_eq!(i["gatehouse_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(i["policy_digest"], r["meta"]["policy_digest"]);
    assert_eq!(i["policy_digest"].as_str().unwrap().len(), 64);
}

pub fn files(s: &Setup) {
    let dir = s.world.tmp.path();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("id=\"grant-6\""));
    assert!(!html.contains("<script"));
    assert!(html.contains("replica lagging INC-10"));
    let grants = std::fs::read_to_string(dir.join("report-csv/grants.csv")).unwrap();
    assert_eq!(grants.lines().count(), 7, "{grants}");
}

/// The HTML report in a real headless Chromium: it loads nothing, logs nothing, and its charts
/// are drawn (the bars' colour is on the screenshot inside each chart) and lead to their ids.
pub fn in_browser(s: &Setup) {
    let dir = s.world.tmp.path();
    let browser = crate::chromium::Browser::start(&dir.join("browser"));
    browser.goto(&format!("file://{}", dir.join("report.html").display()));
    browser.wait_for("#time figure svg");
    let console = browser.console();
    assert!(console.is_empty(), "the console: {console:?}");
    let loaded = browser.script("return performance.getEntriesByType('resource').map(e => e.name)");
    assert_eq!(loaded, json!([]), "no request besides the page");
    let blue = [0x09, 0x69, 0xda];
    for chart in [
        "#time figure:nth-of-type(1) svg",
        "#time figure:nth-of-type(2) svg",
        "#approvals figure svg",
    ] {
        let rect = browser.rect(chart);
        let shot = browser.screenshot(&chart.replace(['#', ' ', ':', '(', ')'], "_"));
        assert!(
            shot.count_near(rect, blue) > 30,
            "{chart}: no bars in {} at {rect:?}",
            shot.path.display()
        );
    }
    // A bar leads to the grants it counts, and they to their rows.
    let bar = "#time figure svg a[href^='#requested-']";
    let href = browser.attr(bar, "href").unwrap();
    browser.click(bar);
    browser.until(
        "the bar's link is followed",
        std::time::Duration::from_secs(10),
        |b| b.url().ends_with(&href),
    );
    let listed = browser.text(&href);
    assert!(
        listed.split(": ").nth(1).is_some_and(|ids| ids
            .trim()
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ')
            && !ids.trim().is_empty()),
        "{listed}"
    );
    assert!(browser.console().is_empty());
}

pub fn drift(s: &Setup, _before: &Value) {
    let gh = &s.world.gatehouse;
    gh.write_policy(
        "main.toml",
        &s.policy
            .replace("\"curl *\"]", "\"curl *\", \"ls *\"]")
            .replace("max_duration = \"1m\"", "max_duration = \"24h\""),
    );
    report_again(s, "after");
    let dir = s.world.tmp.path();
    let (old, new) = (dir.join("report.json"), dir.join("after.json"));
    let out = gatehouse(
        gh,
        &[
            "report",
            "--diff",
            &old.display().to_string(),
            &new.display().to_string(),
        ],
        &[],
    );
    assert_eq!(out.code(), 1, "{}{}", out.out(), out.err());
    let text = out.out();
    assert!(text.contains("quick: now long max_duration"), "{text}");
    assert!(text.contains("web-read: +rules \"ls *\""), "{text}");
    let same = gatehouse(
        gh,
        &[
            "report",
            "--diff",
            &old.display().to_string(),
            &old.display().to_string(),
        ],
        &[],
    );
    assert_eq!(same.code(), 0, "{}", same.out());
    assert!(same.out().contains("no drift"));
    gh.write_policy("main.toml", &s.policy);
}

pub fn tampering(s: &mut Setup, seen: &Store) {
    // A recording changed after the fact is named.
    let victim = &seen.sessions[0];
    let path = victim.recording.clone().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"[9.9, \"o\", \"forged\"]\n");
    std::fs::write(&path, bytes).unwrap();
    let r = report_again(s, "tampered");
    let modified = r["integrity"]["recordings"]["modified"].as_array().unwrap();
    assert_eq!(modified.len(), 1, "{modified:?}");
    assert_eq!(modified[0]["session"], victim.id.as_str());
    // An edited audit line is named by its number (the bastion stopped, so nothing appends).
    s.world.gatehouse.stop(false);
    let log = std::fs::read_to_string(&seen.audit_log).unwrap();
    let mut lines: Vec<String> = log.lines().map(str::to_owned).collect();
    let at = lines
        .iter()
        .position(|l| l.contains("\"reason\":\"INC-1 read logs\""))
        .unwrap();
    lines[at] = lines[at].replace("INC-1 read logs", "INC-1 read LOGS");
    std::fs::write(&seen.audit_log, lines.join("\n") + "\n").unwrap();
    let r = report_again(s, "edited");
    let audit = &r["integrity"]["audit"];
    assert_eq!(audit["ok"], false, "{audit}");
    assert_eq!(audit["first_bad_line"], at as u64 + 1, "{audit}");
}
