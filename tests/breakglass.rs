//! Break-glass end to end: immediate access for members of an emergency role, a banner, input
//! recorded, a review queue that the user cannot clear themselves, and clear denials (each
//! audited) for non-members, missing or short reasons, and users over the rate limit.

mod common;

use std::time::Duration;

use common::disk::{Tmpfs, fill};
use common::*;
use gatehouse::recording::{EventKind, read_cast};

struct Setup {
    world: World,
    carol: Person,
    dave: Person,
    policy: String,
}

/// carol is on call (role `emergency`, break-glass on every target); dave is not.
fn setup(config_extra: &str) -> Setup {
    let (mut world, mut people) = World::new(&["carol", "dave"], config_extra);
    let dave = people.pop().unwrap();
    let carol = people.pop().unwrap();
    let policy = format!(
        "{}{}{}[[role]]\nname = \"emergency\"\nmembers = [\"oncall\"]\ntargets = [\"*\"]\nlogin = \"{}\"\nmax_duration = \"30m\"\n\
         shell = \"full\"\nbreak_glass = true\n",
        user_toml(&carol, &["oncall"]),
        user_toml(&dave, &["qa"]),
        world.target_toml("db-01"),
        login(),
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    Setup {
        world,
        carol,
        dave,
        policy,
    }
}

/// Runs a review command as the operator of this process's uid, mapped by `[[operator]]` to
/// the policy user `as_user`. The environment names someone else, which changes nothing.
fn review(s: &Setup, args: &[&str], as_user: &str) -> Output {
    let account = gatehouse::grants::operator::current_account().unwrap();
    s.world.gatehouse.write_policy(
        "main.toml",
        &format!(
            "{}\n[[operator]]\nunix = \"{account}\"\nuser = \"{as_user}\"\n",
            s.policy
        ),
    );
    let mut cmd = s.world.gatehouse.command(args);
    cmd.env("USER", "nobody-real")
        .env("SUDO_USER", "nobody-real");
    run(cmd, b"", Duration::from_secs(30))
}

#[test]
fn break_glass_opens_at_once_records_input_and_waits_for_someone_elses_review() {
    let s = setup("");
    let gh = &s.world.gatehouse;
    let out = gh.ssh(
        &s.carol,
        &[
            "breakglass",
            "db-01",
            "--reason",
            "primary",
            "down,",
            "INC-4412",
            "--",
            "echo",
            "inside",
        ],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(out.out(), "inside\n");
    assert!(
        out.err()
            .contains("*** BREAK-GLASS: grant 1, role emergency, on db-01"),
        "{}",
        out.err()
    );

    // An interactive break-glass session records keystrokes.
    let out = run(
        gh.ssh_command(
            &s.carol,
            &["-tt"],
            &[
                "breakglass",
                "db-01",
                "--reason",
                "replica",
                "lagging",
                "INC-4413",
            ],
        ),
        b"echo typed-by-carol\nexit\n",
        Duration::from_secs(60),
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let list = run(
        gh.command(&["sessions", "list", "--json"]),
        b"",
        Duration::from_secs(30),
    );
    let sessions: serde_json::Value = serde_json::from_str(&list.out()).unwrap();
    let newest = &sessions[0];
    assert_eq!(newest["break_glass"], true);
    let cast = read_cast(std::path::Path::new(newest["recording"].as_str().unwrap())).unwrap();
    let typed: String = cast
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Input)
        .map(|e| e.data.clone())
        .collect();
    assert!(
        typed.contains("echo typed-by-carol"),
        "input events: {typed:?}"
    );

    // Both sessions wait for review; carol cannot clear her own, whatever USER says.
    let queue = review(&s, &["review", "list", "--json"], "dave");
    let items: serde_json::Value = serde_json::from_str(&queue.out()).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 2, "{}", queue.out());
    let id = items[0]["session"]["id"].as_str().unwrap().to_owned();
    let own = review(
        &s,
        &["review", "ack", &id, "--note", "looked fine"],
        "carol",
    );
    assert_eq!(own.code(), 126, "{}", own.err());
    assert!(own.err().contains("broke the glass"), "{}", own.err());
    // `--as` is gone: a name on the command line proves nothing.
    let named = review(
        &s,
        &["review", "ack", &id, "--note", "x", "--as", "dave"],
        "carol",
    );
    assert_eq!(named.code(), 2, "{}", named.err());
    // An account the policy does not map (root at the console) cannot review.
    s.world.gatehouse.write_policy("main.toml", &s.policy);
    let unmapped = run(
        gh.command(&["review", "ack", &id, "--note", "root says fine"]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(unmapped.code(), 126, "{}", unmapped.err());
    assert!(unmapped.err().contains("not mapped"), "{}", unmapped.err());
    let other = review(
        &s,
        &["review", "ack", &id, "--note", "restart was the right call"],
        "dave",
    );
    assert_eq!(other.code(), 0, "{}", other.err());
    let again = review(&s, &["review", "ack", &id, "--note", "twice"], "dave");
    assert_ne!(again.code(), 0);
    let queue = review(&s, &["review", "list", "--json"], "dave");
    let items: serde_json::Value = serde_json::from_str(&queue.out()).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 1);
}

#[test]
fn non_members_missing_or_short_reasons_and_the_rate_limit_are_refused() {
    let s = setup("[breakglass]\nmax_uses = 2\n");
    let gh = &s.world.gatehouse;
    let out = gh.ssh(
        &s.dave,
        &[
            "breakglass",
            "db-01",
            "--reason",
            "i",
            "am",
            "not",
            "on",
            "call",
        ],
    );
    assert_eq!(out.code(), 126, "{}", out.err());
    assert!(
        out.err().contains("not a member of an emergency role"),
        "{}",
        out.err()
    );
    let out = gh.ssh(&s.carol, &["breakglass", "db-01"]);
    assert_eq!(out.code(), 2, "{}", out.err());
    assert!(out.err().contains("--reason"), "{}", out.err());
    let out = gh.ssh(&s.carol, &["breakglass", "db-01", "--reason", "down"]);
    assert_eq!(out.code(), 2, "{}", out.err());
    assert!(
        out.err().contains("at least 10 characters"),
        "{}",
        out.err()
    );
    assert_eq!(
        s.world.target.accepted_logins(),
        0,
        "nothing reached the target"
    );
    for _ in 0..2 {
        let out = gh.ssh(
            &s.carol,
            &[
                "breakglass",
                "db-01",
                "--reason",
                "disk",
                "full",
                "INC-1",
                "--",
                "true",
            ],
        );
        assert_eq!(out.code(), 0, "{}", out.err());
    }
    let out = gh.ssh(
        &s.carol,
        &[
            "breakglass",
            "db-01",
            "--reason",
            "disk",
            "full",
            "INC-1",
            "--",
            "true",
        ],
    );
    assert_eq!(out.code(), 126, "{}", out.err());
    assert!(
        out.err().contains("break-glass limit reached"),
        "{}",
        out.err()
    );
}

/// A review whose `review.acked` line cannot be written is not stored, so it can be made again
/// once the audit log has room, and then has exactly one line. Mounts a tmpfs, so needs root
/// (CI runs as root); fails, rather than skips, without it.
#[test]
fn a_review_whose_audit_line_is_lost_is_not_stored_and_can_be_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("auditfs");
    let _mount = Tmpfs::mount(&disk, "2m");
    let s = setup(&format!("audit_log = \"{}/audit.jsonl\"\n", disk.display()));
    let gh = &s.world.gatehouse;
    let out = gh.ssh(
        &s.carol,
        &[
            "breakglass",
            "db-01",
            "--reason",
            "primary",
            "down,",
            "INC-1",
            "--",
            "true",
        ],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let queue = review(&s, &["review", "list", "--json"], "dave");
    let items: serde_json::Value = serde_json::from_str(&queue.out()).unwrap();
    let id = items[0]["session"]["id"].as_str().unwrap().to_owned();

    let filler = fill(&disk);
    let lost = review(&s, &["review", "ack", &id, "--note", "checked"], "dave");
    assert_eq!(lost.code(), 1, "{}{}", lost.out(), lost.err());
    assert!(lost.err().contains("audit log"), "{}", lost.err());
    assert!(lost.err().contains("not stored"), "{}", lost.err());
    let queue = review(&s, &["review", "list", "--json"], "dave");
    let items: serde_json::Value = serde_json::from_str(&queue.out()).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 1, "still pending: {items}");

    std::fs::remove_file(filler).unwrap();
    let retried = review(&s, &["review", "ack", &id, "--note", "checked"], "dave");
    assert_eq!(retried.code(), 0, "{}", retried.err());
    let queue = review(&s, &["review", "list", "--json"], "dave");
    assert_eq!(queue.out().trim(), "[]", "{}", queue.out());
    let audit = std::fs::read_to_string(disk.join("audit.jsonl")).unwrap();
    assert_eq!(
        audit.matches("\"event\":\"review.acked\"").count(),
        1,
        "{audit}"
    );
}
