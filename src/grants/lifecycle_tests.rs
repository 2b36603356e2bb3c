//! The grant lifecycle's rules, case by case.

use super::*;
use crate::grants::Approval;

const TTL: Duration = Duration::from_secs(24 * 3600);

fn policy() -> Policy {
    crate::testing::sample_policy()
}

fn user(p: &Policy, name: &str) -> Actor {
    Actor::User(p.user(name).unwrap().clone())
}

fn request(p: &Policy, role: &str, target: &str, secs: u64) -> Result<NewGrant, GrantError> {
    let input = RequestInput {
        user: p.user("alice").unwrap(),
        role,
        target,
        duration: Duration::from_secs(secs),
        reason: "INC-4411 nginx is down",
    };
    new_request(p, &input, 1000)
}

fn stored(new: NewGrant, id: i64) -> Grant {
    new.into_grant(id)
}

fn apply(grant: &mut Grant, change: Change) {
    assert_eq!(grant.state, change.expected);
    match change.kind {
        ChangeKind::Approve {
            approver,
            comment,
            at,
            activates,
        } => {
            grant.approvals.push(Approval {
                approver,
                comment,
                at,
            });
            if let Some((from, to)) = activates {
                grant.state = GrantState::Active;
                grant.activated_at = Some(from);
                grant.expires_at = Some(to);
            }
        }
        ChangeKind::End {
            state,
            by,
            reason,
            at,
        } => {
            grant.state = state;
            grant.ended_by = Some(by);
            grant.end_reason = reason;
            grant.ended_at = Some(at);
        }
    }
}

#[test]
fn a_request_waits_and_one_approval_activates_it_from_then() {
    let p = policy();
    let mut g = stored(request(&p, "web-ops", "web-01", 3600).unwrap(), 17);
    assert_eq!(g.state, GrantState::Pending);
    assert!(!g.is_live(1000));
    let change = decide_on(
        &p,
        &g,
        &user(&p, "bob"),
        &Decision::Approve(None),
        1500,
        TTL,
    )
    .unwrap();
    apply(&mut g, change);
    assert_eq!(g.state, GrantState::Active);
    assert_eq!(
        g.expires_at,
        Some(1500 + 3600),
        "the clock starts at the last approval"
    );
    assert!(g.is_live(1500));
    assert!(!g.is_live(5100));
    assert_eq!(g.state_at(5100, TTL), GrantState::Expired);
}

#[test]
fn self_service_roles_are_active_at_once_but_time_bound() {
    let p = policy();
    let g = request(&p, "self", "web-01", 600).unwrap();
    assert_eq!(g.state, GrantState::Active);
    assert_eq!(g.expires_at, Some(1600));
}

#[test]
fn requests_are_checked() {
    let p = policy();
    assert!(
        matches!(request(&p, "web-ops", "web-01", 5 * 3600), Err(GrantError::Usage(m)) if m.contains("longer than"))
    );
    assert!(
        matches!(
            request(&p, "web-ops", "db-01", 60),
            Err(GrantError::Denied(_))
        ),
        "wrong target"
    );
    assert!(
        matches!(request(&p, "nope", "web-01", 60), Err(GrantError::Usage(_))),
        "unknown role"
    );
    assert!(
        request(&p, "web-ops", "web-*", 60).is_ok(),
        "a pattern the role names"
    );
    assert!(
        request(&p, "web-ops", "w*", 60).is_err(),
        "a pattern it does not"
    );
    let eve = p.user("eve").unwrap();
    let input = RequestInput {
        user: eve,
        role: "web-ops",
        target: "web-01",
        duration: Duration::from_secs(60),
        reason: "x",
    };
    assert!(
        matches!(new_request(&p, &input, 0), Err(GrantError::Denied(_))),
        "not a member"
    );
    for bad in ["", "   ", "bell\u{7}", "bidi\u{202e}txt", &"x".repeat(501)] {
        let input = RequestInput {
            reason: bad,
            ..input.clone()
        };
        let input = RequestInput {
            user: p.user("alice").unwrap(),
            ..input
        };
        assert!(
            matches!(new_request(&p, &input, 0), Err(GrantError::Usage(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn separation_of_duties() {
    let p = policy();
    let g = stored(request(&p, "web-ops", "web-01", 60).unwrap(), 1);
    let alice = user(&p, "alice");
    let eve = user(&p, "eve");
    assert!(
        matches!(decide_on(&p, &g, &alice, &Decision::Approve(None), 1001, TTL), Err(GrantError::Denied(m)) if m.contains("your own"))
    );
    assert!(matches!(
        decide_on(&p, &g, &eve, &Decision::Approve(None), 1001, TTL),
        Err(GrantError::Denied(_))
    ));
    assert!(matches!(
        decide_on(&p, &g, &alice, &Decision::Deny("no".into()), 1001, TTL),
        Err(GrantError::Denied(_))
    ));
    let operator = |account: &str, as_user: Option<&str>| Actor::Operator {
        account: account.into(),
        user: as_user.map(|n| p.user(n).unwrap().clone()),
    };
    // An operator mapped to an approver approves as that person.
    let change = decide_on(
        &p,
        &g,
        &operator("bob-admin", Some("bob")),
        &Decision::Approve(None),
        1001,
        TTL,
    )
    .unwrap();
    assert!(
        matches!(&change.kind, ChangeKind::Approve { approver, .. } if approver == "bob"),
        "{change:?}"
    );
    // An unmapped operator (root) may not approve; one mapped to the requester may not
    // either, nor one mapped to someone who is no approver.
    for (who, why) in [
        (operator("root", None), "not mapped"),
        (operator("alice", Some("alice")), "your own"),
        (operator("eve", Some("eve")), "may not approve"),
    ] {
        assert!(
            matches!(decide_on(&p, &g, &who, &Decision::Approve(None), 1001, TTL), Err(GrantError::Denied(m)) if m.contains(why)),
            "{who:?}"
        );
    }
    // Any operator may deny, and revoke what is active.
    assert!(
        decide_on(
            &p,
            &g,
            &operator("root", None),
            &Decision::Deny("no".into()),
            1001,
            TTL
        )
        .is_ok()
    );
    let mut active = g.clone();
    apply(
        &mut active,
        decide_on(
            &p,
            &g,
            &user(&p, "bob"),
            &Decision::Approve(None),
            1001,
            TTL,
        )
        .unwrap(),
    );
    let change = decide_on(
        &p,
        &active,
        &operator("root", None),
        &Decision::Revoke(None),
        1002,
        TTL,
    )
    .unwrap();
    assert!(matches!(&change.kind, ChangeKind::End { by, .. } if by == "operator:root"));
    let change = decide_on(
        &p,
        &active,
        &Actor::System("policy"),
        &Decision::Revoke(Some("role removed".into())),
        1002,
        TTL,
    )
    .unwrap();
    assert!(matches!(&change.kind, ChangeKind::End { by, .. } if by == "policy"));
}

#[test]
fn one_person_counts_once_whichever_door_they_use() {
    let p = policy();
    let mut g = stored(request(&p, "db-ops", "db-01", 600).unwrap(), 9);
    let change = decide_on(
        &p,
        &g,
        &user(&p, "bob"),
        &Decision::Approve(None),
        1100,
        TTL,
    )
    .unwrap();
    apply(&mut g, change);
    let bob_at_cli = Actor::Operator {
        account: "bob".into(),
        user: Some(p.user("bob").unwrap().clone()),
    };
    assert!(
        matches!(decide_on(&p, &g, &bob_at_cli, &Decision::Approve(None), 1200, TTL), Err(GrantError::Conflict(m)) if m.contains("already")),
        "bob by SSH, then bob at the command line"
    );
}

#[test]
fn an_approver_counts_once_and_a_quorum_of_two_needs_two() {
    let p = policy();
    let mut g = stored(request(&p, "db-ops", "db-01", 600).unwrap(), 2);
    let bob = user(&p, "bob");
    let change = decide_on(
        &p,
        &g,
        &bob,
        &Decision::Approve(Some("ok".into())),
        1100,
        TTL,
    )
    .unwrap();
    apply(&mut g, change);
    assert_eq!(g.state, GrantState::Pending, "one of two");
    assert!(
        matches!(decide_on(&p, &g, &bob, &Decision::Approve(None), 1200, TTL), Err(GrantError::Conflict(m)) if m.contains("already"))
    );
    let change = decide_on(
        &p,
        &g,
        &user(&p, "carol"),
        &Decision::Approve(None),
        1300,
        TTL,
    )
    .unwrap();
    apply(&mut g, change);
    assert_eq!(g.state, GrantState::Active);
    assert_eq!(g.expires_at, Some(1900));
}

#[test]
fn decisions_on_grants_that_moved_on_are_refused() {
    let p = policy();
    let bob = user(&p, "bob");
    let mut g = stored(request(&p, "web-ops", "web-01", 60).unwrap(), 3);
    let change = decide_on(&p, &g, &bob, &Decision::Approve(None), 1001, TTL).unwrap();
    apply(&mut g, change);
    let change = decide_on(
        &p,
        &g,
        &bob,
        &Decision::Revoke(Some("done".into())),
        1002,
        TTL,
    )
    .unwrap();
    apply(&mut g, change);
    assert_eq!(g.state, GrantState::Revoked);
    for d in [
        Decision::Approve(None),
        Decision::Deny("x".into()),
        Decision::Revoke(None),
    ] {
        assert!(
            matches!(
                decide_on(&p, &g, &bob, &d, 1003, TTL),
                Err(GrantError::Conflict(_))
            ),
            "{d:?}"
        );
    }
    // A pending request past its TTL has lapsed, even if nobody wrote so yet.
    let g = stored(request(&p, "web-ops", "web-01", 60).unwrap(), 4);
    let late = 1000 + TTL.as_secs() as i64;
    assert_eq!(g.state_at(late, TTL), GrantState::Lapsed);
    assert!(matches!(
        decide_on(&p, &g, &bob, &Decision::Approve(None), late, TTL),
        Err(GrantError::Conflict(_))
    ));
}

#[test]
fn the_holder_may_give_a_grant_up_but_not_others() {
    let p = policy();
    let bob = user(&p, "bob");
    let mut g = stored(request(&p, "web-ops", "web-01", 60).unwrap(), 5);
    let change = decide_on(&p, &g, &bob, &Decision::Approve(None), 1001, TTL).unwrap();
    apply(&mut g, change);
    assert!(
        decide_on(
            &p,
            &g,
            &user(&p, "alice"),
            &Decision::Revoke(None),
            1002,
            TTL
        )
        .is_ok()
    );
    assert!(matches!(
        decide_on(&p, &g, &user(&p, "eve"), &Decision::Revoke(None), 1002, TTL),
        Err(GrantError::Denied(_))
    ));
}
