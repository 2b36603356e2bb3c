use std::time::Duration;

use super::*;
use crate::testing::sample_policy;

const TTL: Duration = Duration::from_secs(86_400);

fn grant(id: i64, user: &str, role: &str, state: GrantState, expires_at: Option<i64>) -> Grant {
    Grant {
        id,
        user: user.into(),
        role: role.into(),
        target: "web-01".into(),
        reason: "INC-1".into(),
        duration: Duration::from_secs(3600),
        state,
        break_glass: false,
        requested_at: 0,
        activated_at: expires_at.map(|_| 0),
        expires_at,
        ended_at: None,
        ended_by: None,
        end_reason: None,
        approvals: vec![],
    }
}

fn ask(
    policy: &Policy,
    user: &str,
    grants: &[Grant],
    target: &str,
    command: Option<&str>,
    audience: Audience,
) -> Explanation {
    let user = policy.user(user).unwrap();
    let request = SessionRequest {
        target: target.into(),
        role: None,
        action: match command {
            Some(c) => Action::Exec(c.as_bytes().to_vec()),
            None => Action::Interactive { pty: true },
        },
    };
    explain(&Question {
        policy,
        user,
        grants,
        request: &request,
        now: 500,
        request_ttl: TTL,
        audience,
    })
}

fn role<'e>(e: &'e Explanation, name: &str) -> &'e RoleExplanation {
    e.roles
        .iter()
        .find(|r| r.role == name)
        .unwrap_or_else(|| panic!("no role {name} in {e:?}"))
}

#[test]
fn the_verdict_is_the_decision_word_for_word() {
    let p = sample_policy();
    let alice = p.user("alice").unwrap();
    let held = [grant(
        7,
        "alice",
        "web-read",
        GrantState::Active,
        Some(1000),
    )];
    for command in ["systemctl status nginx", "systemctl stop nginx", "rm -rf /"] {
        let e = ask(
            &p,
            "alice",
            &held,
            "web-01",
            Some(command),
            Audience::Operator,
        );
        let request = SessionRequest {
            target: "web-01".into(),
            role: None,
            action: Action::Exec(command.as_bytes().to_vec()),
        };
        let decided = access::decide(&p, alice, &held, &request, 500);
        assert_eq!(e.verdict, Verdict::of(decided), "{command}");
    }
    let e = ask(
        &p,
        "alice",
        &held,
        "web-01",
        Some("systemctl status nginx"),
        Audience::Operator,
    );
    assert!(e.verdict.allowed);
    assert_eq!(e.verdict.grant, Some(7));
    assert_eq!(
        e.verdict.runs.as_deref(),
        Some("'systemctl' 'status' 'nginx'")
    );
    let read = role(&e, "web-read");
    assert_eq!(read.with_grant.rule.as_deref(), Some("systemctl status *"));
    assert_eq!(read.live_grant.as_ref().map(|g| g.id), Some(7));
}

#[test]
fn a_denied_command_names_the_closest_rule_and_each_rules_reason() {
    let p = sample_policy();
    let held = [grant(
        7,
        "alice",
        "web-read",
        GrantState::Active,
        Some(1000),
    )];
    let e = ask(
        &p,
        "alice",
        &held,
        "web-01",
        Some("systemctl stop nginx"),
        Audience::Operator,
    );
    assert_eq!(
        e.verdict.reason.as_deref(),
        Some(
            "no rule allows \"systemctl stop nginx\"; closest: \"systemctl status *\" (word 2 \
             \"stop\" does not match \"status\")"
        )
    );
    let read = role(&e, "web-read");
    assert!(!read.with_grant.allowed);
    assert_eq!(read.with_grant.reason, e.verdict.reason);
    assert_eq!(read.with_grant.rules.len(), 2);
    assert!(
        read.with_grant
            .rules
            .iter()
            .all(|r| r.verdict == "mismatch")
    );
    assert!(read.with_grant.guard.is_empty());
}

#[test]
fn the_guard_refusal_is_named() {
    let p = sample_policy();
    let held = [grant(
        7,
        "alice",
        "web-read",
        GrantState::Active,
        Some(1000),
    )];
    let e = ask(
        &p,
        "alice",
        &held,
        "web-01",
        Some("journalctl -u nginx --vacuum-time=1s"),
        Audience::Operator,
    );
    let read = role(&e, "web-read");
    assert!(!read.with_grant.allowed);
    let guarded = &read.with_grant.guard;
    assert_eq!(guarded.len(), 1, "{guarded:?}");
    assert_eq!(guarded[0].rule, "journalctl -u nginx *");
    assert_eq!(guarded[0].detail, read.with_grant.reason);
    assert_eq!(e.verdict.reason, read.with_grant.reason);
    assert!(
        e.verdict
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("--vacuum-time"),
        "{:?}",
        e.verdict.reason
    );
}

#[test]
fn without_a_grant_the_role_says_how_to_get_one_and_who_approves() {
    let p = sample_policy();
    let e = ask(
        &p,
        "alice",
        &[],
        "db-01",
        Some("uptime"),
        Audience::Operator,
    );
    assert_eq!(
        e.verdict.reason.as_deref(),
        Some("you hold no active grant for \"db-01\"")
    );
    assert_eq!(e.verdict.class, Some(DenialClass::NoGrant));
    let db = role(&e, "db-ops");
    assert!(db.member);
    assert_eq!(db.member_via, vec!["sre".to_owned()]);
    // carol is a lead and so may approve; alice may not approve her own; bob is a lead.
    assert_eq!(db.approvers, vec!["bob".to_owned(), "carol".to_owned()]);
    assert!(
        db.next
            .starts_with("ssh bastion request db-01 --role db-ops --for 1h")
    );
    assert!(db.with_grant.allowed, "a full role runs any command");
    assert_eq!(db.now.reason, e.verdict.reason);
}

#[test]
fn a_pending_request_and_a_self_service_role_are_told_apart() {
    let p = sample_policy();
    let waiting = [grant(3, "alice", "web-ops", GrantState::Pending, None)];
    let e = ask(&p, "alice", &waiting, "web-01", None, Audience::Operator);
    let ops = role(&e, "web-ops");
    assert_eq!(ops.pending.len(), 1);
    assert_eq!(ops.next, "request 3 is waiting for approval (0 of 1)");
    let own = role(&e, "self");
    assert!(own.approvers.is_empty());
    assert!(
        own.next.ends_with("(self-service: active at once)"),
        "{}",
        own.next
    );
    let read = role(&e, "web-read");
    assert_eq!(
        read.with_grant.reason.as_deref(),
        Some("role \"web-read\" has no interactive shell; run one of its commands instead")
    );
}

#[test]
fn a_non_member_sees_the_denial_and_operators_see_every_role() {
    let p = sample_policy();
    let e = ask(&p, "eve", &[], "web-01", Some("uptime"), Audience::Operator);
    assert_eq!(
        e.verdict.reason.as_deref(),
        Some("no role of yours covers target \"web-01\"")
    );
    assert_eq!(e.target_known, Some(true));
    assert!(!e.roles.is_empty());
    for r in &e.roles {
        assert!(!r.member, "{}", r.role);
        assert_eq!(
            r.now.reason.as_deref(),
            Some(format!("you may not use role {:?} on target \"web-01\"", r.role).as_str())
        );
    }
    // The person themselves learns nothing about roles they cannot hold.
    let own = ask(&p, "eve", &[], "web-01", Some("uptime"), Audience::Holder);
    assert!(own.roles.is_empty());
    assert_eq!(own.target_known, None);
    assert_eq!(own.verdict, e.verdict);
    let unknown = ask(&p, "eve", &[], "nope-01", None, Audience::Holder);
    assert_eq!(
        unknown.verdict.reason.as_deref(),
        Some("no role of yours covers target \"nope-01\"")
    );
    assert!(!render(&unknown).contains("no target named"));
    let operator = ask(&p, "eve", &[], "nope-01", None, Audience::Operator);
    assert_eq!(operator.target_known, Some(false));
    assert!(render(&operator).contains("no target named \"nope-01\""));
}

#[test]
fn the_text_escapes_what_the_user_typed() {
    let p = sample_policy();
    let held = [grant(
        7,
        "alice",
        "web-read",
        GrantState::Active,
        Some(1000),
    )];
    let e = ask(
        &p,
        "alice",
        &held,
        "web-01",
        Some("systemctl status \u{1b}]52;c;x\u{7}"),
        Audience::Operator,
    );
    let text = render(&e);
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(!text.contains('\u{7}'), "{text}");
    assert!(
        text.contains("now: DENIED: the command was refused"),
        "{text}"
    );
}
