//! The report's numbers over a small history written by hand, checked one by one.

use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::grants::{Approval, Grant, GrantState};
use crate::report::facts::{Delivered, SentAlert};
use crate::report::model::{AuditCheck, RecordingCheck, Refusal, RuleRef};
use crate::store::sessions::{Review, SessionRecord};
use crate::testing::sample_policy;

fn grant(id: i64, user: &str, role: &str, requested_at: i64, duration: u64) -> Grant {
    Grant {
        id,
        user: user.into(),
        role: role.into(),
        target: "web-01".into(),
        reason: format!("reason {id}"),
        duration: Duration::from_secs(duration),
        state: GrantState::Pending,
        break_glass: false,
        requested_at,
        activated_at: None,
        expires_at: None,
        ended_at: None,
        ended_by: None,
        end_reason: None,
        approvals: vec![],
    }
}

fn active(mut g: Grant, at: i64) -> Grant {
    g.state = GrantState::Active;
    g.activated_at = Some(at);
    g.expires_at = Some(at + g.duration.as_secs() as i64);
    g
}

fn ended(mut g: Grant, state: GrantState, at: i64, by: &str) -> Grant {
    g.state = state;
    g.ended_at = Some(at);
    g.ended_by = Some(by.into());
    g
}

fn session(
    id: &str,
    g: &Grant,
    kind: &str,
    span: (i64, i64),
    command: Option<&str>,
) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        node: "a".into(),
        user: g.user.clone(),
        target: g.target.clone(),
        role: g.role.clone(),
        grant_id: g.id,
        kind: kind.into(),
        command: command.map(str::to_owned),
        break_glass: g.break_glass,
        started_at: span.0,
        ended_at: Some(span.1),
        bytes_in: Some(0),
        bytes_out: Some(0),
        exit_status: Some(0),
        end_reason: None,
        recording: None,
        sha256: None,
    }
}

fn denied(seq: u64, user: &str, role: Option<&str>, reason: &str, class: &str) -> Denied {
    Denied {
        seq,
        user: user.into(),
        role: role.map(str::to_owned),
        reason: reason.into(),
        class: class.into(),
    }
}

fn refusal(seq: u64, actor: &str, refusal: &str) -> Refusal {
    Refusal {
        seq,
        time: 1010,
        actor: actor.into(),
        requester: Some("alice".into()),
        grant: Some(1),
        role: Some("web-ops".into()),
        decision: "approve".into(),
        refusal: refusal.into(),
        reason: "no".into(),
    }
}

/// The history: alice's approved and revoked web-ops grant with two overlapping sessions, her
/// self-service web-read grant that expired with an exec and a restricted session, carol's
/// denied db-ops request, two break-glass uses (one reviewed), a grant from before the period
/// still active, a pending request, four denials and two refused approvals.
pub(crate) fn facts() -> Facts {
    let mut g1 = active(grant(1, "alice", "web-ops", 1000, 3600), 1060);
    g1.approvals.push(Approval {
        approver: "bob".into(),
        comment: None,
        at: 1060,
    });
    let g1 = ended(g1, GrantState::Revoked, 2060, "bob");
    let g2 = ended(
        active(grant(2, "alice", "web-read", 1100, 600), 1100),
        GrantState::Expired,
        1700,
        "gatehouse",
    );
    let g3 = ended(
        grant(3, "carol", "db-ops", 1200, 3600),
        GrantState::Denied,
        1250,
        "bob",
    );
    let mut g4 = active(grant(4, "alice", "emergency", 1300, 1800), 1300);
    g4.break_glass = true;
    g4.target = "db-01".into();
    let g5 = active(grant(5, "bob", "web-ops", 500, 9500), 500);
    let g6 = grant(6, "bob", "db-ops", 3000, 1800);
    let mut g7 = active(grant(7, "carol", "emergency", 1500, 1800), 1500);
    g7.break_glass = true;
    let sessions = vec![
        session("s1", &g1, "exec", (1100, 1200), Some("uptime")),
        session("s2", &g1, "shell", (1150, 1300), None),
        session(
            "s3",
            &g2,
            "exec",
            (1200, 1210),
            Some("'systemctl' 'status' 'nginx'"),
        ),
        session("s4", &g2, "restricted", (1300, 1400), None),
        session("s5", &g4, "shell", (1310, 1400), None),
        session("s6", &g7, "shell", (1500, 1600), None),
    ];
    let mut shell_lines = HashMap::new();
    shell_lines.insert(
        "s4".to_owned(),
        vec![
            "'journalctl' '-u' 'nginx' '-n' '5'".to_owned(),
            "'systemctl' 'status' 'x'".to_owned(),
            "'rm' 'x'".to_owned(),
        ],
    );
    let mut reviews = HashMap::new();
    reviews.insert(
        "s5".to_owned(),
        Review {
            reviewer: "bob".into(),
            note: "fine".into(),
            at: 2000,
        },
    );
    let mut alerts = HashMap::new();
    alerts.insert(
        4,
        SentAlert {
            alert_id: Some("a-4".into()),
            sinks: vec!["hook".into(), "log".into()],
            acknowledged: vec!["log".into()],
        },
    );
    let mut deliveries = HashMap::new();
    deliveries.insert(
        "a-4".to_owned(),
        Delivered {
            sinks: ["hook".to_owned()].into_iter().collect(),
            failed: 2,
        },
    );
    let no_role = "no role of yours covers target \"web-01\"";
    Facts {
        since: 900,
        until: 4000,
        now: 5000,
        request_ttl: Duration::from_secs(86_400),
        grants: vec![g1, g2, g3, g4, g5, g6, g7],
        sessions,
        reviews,
        shell_lines,
        denials: vec![
            denied(10, "eve", None, no_role, "policy"),
            denied(
                11,
                "alice",
                None,
                "you hold no active grant for \"db-01\"",
                "no_grant",
            ),
            denied(
                12,
                "alice",
                Some("web-read"),
                "no rule allows \"ls\"",
                "command_not_allowed",
            ),
            denied(13, "eve", None, no_role, "policy"),
        ],
        refusals: vec![
            refusal(5, "alice", "self_approval"),
            refusal(6, "eve", "not_approver"),
        ],
        alerts,
        deliveries,
    }
}

/// The report of [`facts`], for the renderers' tests.
pub(crate) fn report() -> Report {
    let meta = Meta {
        format: super::super::model::FORMAT,
        gatehouse_version: "test".into(),
        generated_at: 5000,
        generated_by: "root".into(),
        since: 900,
        until: 4000,
        store: "sqlite://x".into(),
        policies: "p".into(),
        policy_digest: "d".into(),
        audit_log: "a".into(),
    };
    let integrity = Integrity {
        audit: AuditCheck {
            ok: true,
            lines: 0,
            last_seq: 0,
            last_hash: String::new(),
            first_bad_line: None,
            problem: None,
            warnings: vec![],
        },
        recordings: RecordingCheck {
            checked: 0,
            matching: 0,
            modified: vec![],
            unreadable: vec![],
            unhashed: vec![],
        },
        policy_digest: "d".into(),
        gatehouse_version: "test".into(),
    };
    build(
        &sample_policy(),
        &facts(),
        meta,
        integrity,
        Duration::from_secs(8 * 3600),
    )
}

#[test]
fn time_counts_requested_granted_and_used_seconds_per_grant_and_role() {
    let r = report();
    let ids: Vec<i64> = r.time.grants.iter().map(|g| g.id).collect();
    assert_eq!(
        ids,
        vec![1, 2, 3, 4, 6, 7],
        "grant 5 was requested before the period"
    );
    let g1 = &r.time.grants[0];
    assert_eq!((g1.requested, g1.granted, g1.used), (3600, Some(1000), 200));
    assert_eq!(g1.sessions, vec!["s1".to_owned(), "s2".to_owned()]);
    assert_eq!(g1.state, "revoked");
    assert_eq!(g1.ended_by.as_deref(), Some("bob"));
    let g2 = &r.time.grants[1];
    assert_eq!((g2.granted, g2.used), (Some(600), 110));
    let g3 = &r.time.grants[2];
    assert_eq!(
        (g3.granted, g3.used, g3.state.as_str()),
        (None, 0, "denied")
    );
    assert_eq!(r.time.expired, vec![2, 4, 7]);
    assert_eq!(r.time.revoked, vec![1]);
    let ops = r.time.roles.iter().find(|t| t.role == "web-ops").unwrap();
    assert_eq!(ops.requested.total, 3600);
    assert_eq!(ops.granted.total, 1000);
    assert_eq!(ops.used, 200);
    assert_eq!(ops.used_percent, Some(20.0));
    let db = r.time.roles.iter().find(|t| t.role == "db-ops").unwrap();
    assert_eq!(db.requested.count, 2);
    assert_eq!(db.requested.median, 1800);
    assert_eq!(db.granted.count, 0);
    assert_eq!(db.used_percent, None);
    assert_eq!(db.grants, vec![3, 6]);
}

#[test]
fn approvals_pair_approvers_with_requesters_and_count_refusals() {
    let r = report();
    assert_eq!(r.approvals.pairs.len(), 1);
    assert_eq!(r.approvals.pairs[0].approver, "bob");
    assert_eq!(r.approvals.pairs[0].requester, "alice");
    assert_eq!(r.approvals.pairs[0].grants, vec![1]);
    assert_eq!(r.approvals.latency.len(), 1);
    assert_eq!(r.approvals.latency[0].seconds, 60);
    assert_eq!(r.approvals.latency_stats.max, 60);
    assert_eq!(r.approvals.denied, vec![3]);
    assert!(r.approvals.lapsed.is_empty());
    assert_eq!(r.approvals.self_approvals_refused, 1);
    assert_eq!(r.approvals.other_refusals, 1);
}

#[test]
fn break_glass_lists_unreviewed_uses_first_with_alert_and_review() {
    let r = report();
    let grants: Vec<i64> = r.break_glass.iter().map(|u| u.grant).collect();
    assert_eq!(grants, vec![7, 4]);
    let open = &r.break_glass[0];
    assert_eq!(open.review.state, "unreviewed");
    assert_eq!(open.alert.state, "not recorded");
    let done = &r.break_glass[1];
    assert_eq!(done.review.state, "reviewed");
    assert_eq!(done.review.reviewers, vec!["bob".to_owned()]);
    assert_eq!(done.review.seconds_to_review, Some(700));
    assert_eq!(done.alert.state, "delivered");
    assert_eq!(done.alert.at_once, vec!["log".to_owned()]);
    assert_eq!(
        done.alert.delivered,
        vec!["hook".to_owned(), "log".to_owned()]
    );
    assert_eq!(done.alert.failed_attempts, 2);
    assert_eq!((done.granted, done.used), (1800, 90));
    assert_eq!(done.reason, "reason 4");
}

#[test]
fn standing_privilege_and_grants_active_at_the_end_of_the_period() {
    let r = report();
    let why: Vec<(&str, Vec<&str>)> = r
        .standing
        .roles
        .iter()
        .map(|s| (s.role.as_str(), s.why.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        why,
        vec![
            ("db-ops", vec!["full shell"]),
            ("self", vec!["self-service", "full shell"]),
            ("web-ops", vec!["full shell"]),
            ("web-read", vec!["self-service"]),
        ]
    );
    let own = r.standing.roles.iter().find(|s| s.role == "self").unwrap();
    assert_eq!(own.holders, vec!["alice".to_owned(), "carol".to_owned()]);
    assert_eq!(r.standing.active_at, 4000);
    let active: Vec<i64> = r.standing.active.iter().map(|g| g.id).collect();
    assert_eq!(active, vec![5]);
}

#[test]
fn unused_entitlements_and_rule_use() {
    let r = report();
    assert_eq!(r.unused.users, vec!["bob".to_owned(), "eve".to_owned()]);
    assert_eq!(r.unused.roles, vec!["db-ops".to_owned(), "self".to_owned()]);
    assert!(r.unused.targets.is_empty());
    assert!(r.unused.rules.is_empty());
    let pairs: Vec<(&str, &str)> = r
        .unused
        .memberships
        .iter()
        .map(|m| (m.role.as_str(), m.user.as_str()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("db-ops", "alice"),
            ("db-ops", "carol"),
            ("self", "alice"),
            ("self", "carol"),
            ("web-ops", "carol"),
            ("web-read", "carol"),
        ]
    );
    assert_eq!(r.unused.rule_use.len(), 1);
    let read = &r.unused.rule_use[0];
    assert_eq!(read.role, "web-read");
    assert_eq!(read.rules[0].rule, "systemctl status *");
    assert_eq!(read.rules[0].uses, 2);
    assert_eq!(
        read.rules[0].sessions,
        vec!["s3".to_owned(), "s4".to_owned()]
    );
    assert_eq!(read.rules[1].uses, 1);
    assert_eq!(read.unmatched, 1);
}

#[test]
fn an_unused_rule_is_a_candidate_to_remove() {
    let mut f = facts();
    f.shell_lines.clear();
    let r = build(
        &sample_policy(),
        &f,
        report().meta,
        report().integrity,
        Duration::from_secs(3600),
    );
    assert_eq!(
        r.unused.rules,
        vec![RuleRef {
            role: "web-read".into(),
            rule: "journalctl -u nginx *".into()
        }]
    );
    let long: Vec<&str> = r
        .standing
        .roles
        .iter()
        .filter(|s| s.why.iter().any(|w| w == "long max_duration"))
        .map(|s| s.role.as_str())
        .collect();
    assert_eq!(long, vec!["web-ops"], "4h is long when the line is at 1h");
}

#[test]
fn denials_by_reason_user_role_and_class() {
    let r = report();
    assert_eq!(r.denials.total, 4);
    assert_eq!(
        r.denials.by_reason[0].key,
        "no role of yours covers target \"web-01\""
    );
    assert_eq!(r.denials.by_reason[0].seqs, vec![10, 13]);
    let users: Vec<(&str, u64)> = r
        .denials
        .by_user
        .iter()
        .map(|c| (c.key.as_str(), c.count))
        .collect();
    assert_eq!(users, vec![("alice", 2), ("eve", 2)]);
    assert_eq!(r.denials.by_role[0].key, "-");
    assert_eq!(r.denials.by_role[0].count, 3);
    assert_eq!(r.denials.by_class[0].key, "policy");
}

#[test]
fn the_used_time_of_overlapping_and_open_sessions_counts_once() {
    let g = active(grant(1, "alice", "web-ops", 0, 100), 0);
    let mut open = session("b", &g, "shell", (50, 0), None);
    open.ended_at = None;
    let sessions = [
        session("a", &g, "shell", (10, 30), None),
        session("c", &g, "shell", (20, 40), None),
        open,
    ];
    let refs: Vec<&SessionRecord> = sessions.iter().collect();
    // 10..40 and 50..(the grant's end at 100, now being later).
    assert_eq!(timing::used_seconds(&g, &refs, 1000), 80);
    // A session still running counts to now, not past it.
    assert_eq!(timing::used_seconds(&g, &refs, 70), 50);
    assert_eq!(timing::stats(vec![5, 1, 9, 3]).median, 3);
}
