use std::time::Duration;

use super::*;
use crate::grants::GrantState;
use crate::testing::sample_policy;

fn grant(
    id: i64,
    user: &str,
    role: &str,
    target: &str,
    state: GrantState,
    expires_at: Option<Timestamp>,
) -> Grant {
    Grant {
        id,
        user: user.into(),
        role: role.into(),
        target: target.into(),
        reason: "INC-1".into(),
        duration: Duration::from_secs(3600),
        state,
        break_glass: false,
        requested_at: 0,
        activated_at: Some(0),
        expires_at,
        ended_at: None,
        ended_by: None,
        end_reason: None,
        approvals: vec![],
    }
}

fn exec(target: &str, role: Option<&str>) -> SessionRequest {
    SessionRequest {
        target: target.into(),
        role: role.map(str::to_owned),
        action: Action::Exec(b"uptime".to_vec()),
    }
}

#[test]
fn a_live_grant_permits_and_names_itself_in_the_key_id() {
    let p = sample_policy();
    let alice = p.user("alice").unwrap();
    let grants = [grant(
        17,
        "alice",
        "web-ops",
        "web-01",
        GrantState::Active,
        Some(1000),
    )];
    let permit = decide(&p, alice, &grants, &exec("web-01", None), 500).unwrap();
    assert_eq!(permit.grant_id(), 17);
    assert_eq!(permit.role().name, "web-ops");
    assert_eq!(permit.key_id("s1"), "gatehouse:alice:17:s1");
    assert_eq!(
        permit.allowed(),
        &Allowed::Exec {
            command: "uptime".into()
        }
    );
}

#[test]
fn no_grant_expired_or_pending_is_a_denial_with_the_request_to_type() {
    let p = sample_policy();
    let alice = p.user("alice").unwrap();
    let d = decide(&p, alice, &[], &exec("web-01", Some("web-ops")), 500).unwrap_err();
    assert!(
        d.hint
            .unwrap()
            .contains("ssh bastion request web-01 --role web-ops")
    );
    let expired = [grant(
        1,
        "alice",
        "web-ops",
        "web-01",
        GrantState::Active,
        Some(500),
    )];
    assert!(
        decide(&p, alice, &expired, &exec("web-01", None), 500).is_err(),
        "ends at 500"
    );
    let pending = [grant(
        2,
        "alice",
        "web-ops",
        "web-01",
        GrantState::Pending,
        None,
    )];
    assert!(decide(&p, alice, &pending, &exec("web-01", None), 500).is_err());
    let revoked = [grant(
        3,
        "alice",
        "web-ops",
        "web-01",
        GrantState::Revoked,
        Some(1000),
    )];
    assert!(decide(&p, alice, &revoked, &exec("web-01", None), 500).is_err());
}

#[test]
fn a_grant_covers_only_its_target_role_and_person() {
    let p = sample_policy();
    let alice = p.user("alice").unwrap();
    let web = [grant(
        1,
        "alice",
        "web-ops",
        "web-01",
        GrantState::Active,
        Some(1000),
    )];
    assert!(
        decide(&p, alice, &web, &exec("db-01", None), 500).is_err(),
        "wrong target"
    );
    assert!(
        decide(&p, alice, &web, &exec("web-01", Some("self")), 500).is_err(),
        "wrong role"
    );
    let bobs = [grant(
        1,
        "bob",
        "web-ops",
        "web-01",
        GrantState::Active,
        Some(1000),
    )];
    assert!(
        decide(&p, alice, &bobs, &exec("web-01", None), 500).is_err(),
        "someone else's"
    );
    let eve = p.user("eve").unwrap();
    let eves = [grant(
        1,
        "eve",
        "web-ops",
        "web-01",
        GrantState::Active,
        Some(1000),
    )];
    assert!(
        decide(&p, eve, &eves, &exec("web-01", None), 500).is_err(),
        "no longer a member"
    );
    assert!(
        decide(&p, alice, &web, &exec("nope-01", None), 500).is_err(),
        "unknown target"
    );
}

#[test]
fn several_roles_must_be_named() {
    let p = sample_policy();
    let alice = p.user("alice").unwrap();
    let both = [
        grant(
            1,
            "alice",
            "web-ops",
            "web-01",
            GrantState::Active,
            Some(1000),
        ),
        grant(2, "alice", "self", "web-01", GrantState::Active, Some(900)),
    ];
    let d = decide(&p, alice, &both, &exec("web-01", None), 500).unwrap_err();
    assert!(d.reason.contains("name one"), "{}", d.reason);
    assert_eq!(
        decide(&p, alice, &both, &exec("web-01", Some("self")), 500)
            .unwrap()
            .grant_id(),
        2
    );
}

#[test]
fn allow_listed_roles_run_only_approved_argv_requoted() {
    let p = sample_policy();
    let alice = p.user("alice").unwrap();
    let grants = [grant(
        9,
        "alice",
        "web-read",
        "web-01",
        GrantState::Active,
        Some(1000),
    )];
    let ask = |cmd: &[u8]| {
        let request = SessionRequest {
            target: "web-01".into(),
            role: Some("web-read".into()),
            action: Action::Exec(cmd.to_vec()),
        };
        decide(&p, alice, &grants, &request, 1)
    };
    assert_eq!(
        ask(b"systemctl status nginx").unwrap().allowed(),
        &Allowed::Exec {
            command: "'systemctl' 'status' 'nginx'".into()
        }
    );
    assert!(ask(b"systemctl stop nginx").is_err());
    assert!(ask(b"systemctl status nginx; reboot").is_err());
    assert!(ask(b"systemctl status $(reboot)").is_err());
    assert!(ask(b"/usr/bin/systemctl status nginx").is_err());
}

#[test]
fn every_denial_is_classified_where_it_is_decided() {
    let p = sample_policy();
    let alice = p.user("alice").unwrap();
    let eve = p.user("eve").unwrap();
    let live = |role: &str| grant(1, "alice", role, "web-01", GrantState::Active, Some(1000));
    let held = [live("web-ops")];
    let class = |user: &Arc<User>, grants: &[Grant], request: &SessionRequest| {
        decide(&p, user, grants, request, 500).unwrap_err().class
    };
    let shell = |role: &str, pty: bool| SessionRequest {
        target: "web-01".into(),
        role: Some(role.into()),
        action: Action::Interactive { pty },
    };
    let run = |role: &str, cmd: &[u8]| SessionRequest {
        target: "web-01".into(),
        role: Some(role.into()),
        action: Action::Exec(cmd.to_vec()),
    };
    // Roles on the target, but no live grant of the one asked for.
    assert_eq!(
        class(alice, &[], &exec("web-01", None)),
        DenialClass::NoGrant
    );
    assert_eq!(
        class(alice, &held, &exec("db-01", None)),
        DenialClass::NoGrant
    );
    assert_eq!(
        class(alice, &held, &exec("web-01", Some("self"))),
        DenialClass::NoGrant
    );
    // The policy gives no such access.
    assert_eq!(
        class(alice, &held, &exec("nope-01", None)),
        DenialClass::Policy
    );
    assert_eq!(class(eve, &[], &exec("web-01", None)), DenialClass::Policy);
    assert_eq!(
        class(alice, &held, &exec("web-01", Some("db-ops"))),
        DenialClass::Policy
    );
    assert_eq!(
        class(alice, &[live("web-read")], &shell("web-read", true)),
        DenialClass::Policy
    );
    // The role's command rules, or a command that cannot be read as one.
    let reader = [live("web-read")];
    for cmd in [
        &b"systemctl stop nginx"[..],
        b"systemctl status $(reboot)",
        b"systemctl 'status",
    ] {
        assert_eq!(
            class(alice, &reader, &run("web-read", cmd)),
            DenialClass::CommandNotAllowed,
            "{}",
            String::from_utf8_lossy(cmd)
        );
    }
    assert_eq!(
        class(alice, &held, &run("web-ops", b"ls \xff")),
        DenialClass::CommandNotAllowed
    );
    assert_eq!(
        class(alice, &held, &run("web-ops", b"ls\0")),
        DenialClass::CommandNotAllowed
    );
    // Anything else.
    assert_eq!(
        class(alice, &held, &shell("web-ops", false)),
        DenialClass::Other
    );
    let both = [live("web-ops"), live("self")];
    assert_eq!(
        class(alice, &both, &exec("web-01", None)),
        DenialClass::Other
    );
    // A restricted-shell line is judged by the same rules.
    let exec_permit = decide(
        &p,
        alice,
        &reader,
        &run("web-read", b"systemctl status nginx"),
        500,
    )
    .unwrap();
    assert_eq!(
        exec_permit.for_line(&["uptime".into()]).unwrap_err().class,
        DenialClass::Policy,
        "an exec permit has no lines"
    );
}

#[test]
fn a_pattern_grant_covers_matching_targets() {
    let p = sample_policy();
    let alice = p.user("alice").unwrap();
    let grants = [grant(
        5,
        "alice",
        "web-ops",
        "web-*",
        GrantState::Active,
        Some(1000),
    )];
    assert_eq!(
        decide(&p, alice, &grants, &exec("web-01", None), 1)
            .unwrap()
            .grant_id(),
        5
    );
}
