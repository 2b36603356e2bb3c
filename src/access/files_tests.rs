//! Decisions for file transfer, and permits for files and forwards that a reload withdraws.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::forward::Destination;
use crate::grants::GrantState;
use crate::policy::load_sources;
use crate::testing::test_key;

/// alice (sre) on web-01 through `logs` (files), `ops` (commands only) and `db` (forward).
fn policy(logs_files: &str, db_forward: &str) -> Policy {
    let text = format!(
        "[[user]]\nname = \"alice\"\nkeys = [\"{}\"]\ngroups = [\"sre\"]\n\
         [[target]]\nname = \"web-01\"\naddress = \"127.0.0.1\"\nhost_keys = [\"{}\"]\n\
         [[role]]\nname = \"logs\"\nmembers = [\"sre\"]\ntargets = [\"web-*\"]\nlogin = \"ops\"\napprovals = 0\n{logs_files}\n\
         [[role]]\nname = \"ops\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"ops\"\napprovals = 0\ncommands = [\"uptime\"]\n\
         [[role]]\nname = \"db\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"ops\"\napprovals = 0\n{db_forward}\n",
        test_key(1),
        test_key(2),
    );
    load_sources(&[(Path::new("p.toml"), &text)]).unwrap()
}

fn full() -> Policy {
    policy(
        "files = { read = [\"/var/log/**\"] }",
        "forward = [\"127.0.0.1:5432\"]",
    )
}

fn grant(id: i64, role: &str) -> Grant {
    Grant {
        id,
        user: "alice".into(),
        role: role.into(),
        target: "web-01".into(),
        reason: "INC-1".into(),
        duration: Duration::from_secs(3600),
        state: GrantState::Active,
        break_glass: false,
        requested_at: 0,
        activated_at: Some(0),
        expires_at: Some(1000),
        ended_at: None,
        ended_by: None,
        end_reason: None,
        approvals: vec![],
    }
}

fn files(role: Option<&str>) -> SessionRequest {
    SessionRequest {
        target: "web-01".into(),
        role: role.map(str::to_owned),
        action: Action::Files,
    }
}

#[test]
fn file_transfer_needs_a_live_grant_of_a_role_with_files() {
    let p = full();
    let alice = p.user("alice").unwrap();
    let permit = decide(&p, alice, &[grant(1, "logs")], &files(None), 10).unwrap();
    assert_eq!(permit.allowed(), &Allowed::Files);
    let d = decide(&p, alice, &[grant(2, "ops")], &files(None), 10).unwrap_err();
    assert_eq!(d.class, DenialClass::Policy);
    assert!(
        d.reason.contains("role ops does not allow file transfer"),
        "{}",
        d.reason
    );
    let none = decide(&p, alice, &[], &files(None), 10).unwrap_err();
    assert_eq!(none.class, DenialClass::NoGrant);
    // A grant of another role on the same target does not make the choice ambiguous.
    let both = [grant(1, "logs"), grant(2, "ops")];
    assert_eq!(
        decide(&p, alice, &both, &files(None), 10)
            .unwrap()
            .grant_id(),
        1
    );
    assert!(decide(&p, alice, &both, &files(Some("ops")), 10).is_err());
}

#[test]
fn a_reload_that_withdraws_files_or_a_destination_lapses_the_session() {
    let p = full();
    let alice = p.user("alice").unwrap();
    let files_permit = decide(&p, alice, &[grant(1, "logs")], &files(None), 10).unwrap();
    let wanted = Destination::parse("127.0.0.1:5432").unwrap();
    let forward = decide_forward(&p, alice, &[grant(3, "db")], &wanted, 10).unwrap();
    assert!(files_permit.renewed(&p).is_ok());
    assert!(forward.renewed(&p).is_ok());
    let narrower = policy("", "forward = [\"127.0.0.1:5433\"]");
    assert_eq!(
        files_permit.renewed(&narrower).unwrap_err().to_string(),
        "role logs no longer allows file transfer"
    );
    let lapse = forward.renewed(&narrower).unwrap_err();
    assert_eq!(
        lapse.to_string(),
        "role db no longer allows forwarding to 127.0.0.1:5432"
    );
    assert!(lapse.is_policy());
    // Narrower file rules do not lapse the session: each request is checked against the rules
    // in force when it arrives.
    let other_rules = policy(
        "files = { read = [\"/srv/**\"] }",
        "forward = [\"127.0.0.1:5432\"]",
    );
    assert!(files_permit.renewed(&other_rules).is_ok());
}
