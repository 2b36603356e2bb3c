//! Grant decisions under races and faults, with real `ssh`, `sshd` and `gatehouse` processes:
//! dozens of approvals at the same moment through both doors (SSH verbs and the operator CLI),
//! a burst of break-glass logins against `max_uses`, operators known by their uid rather than
//! their environment, and a revoke refused while its audit line cannot be written or its audit
//! disk is frozen.
//!
//! The tests that mount a tmpfs or loop-mount and freeze (`fsfreeze`) an ext4 image need
//! root (CI runs as root); they fail, rather than skip, without it.

mod common;
/// The same decisions while the audit disk is frozen.
#[path = "races/frozen.rs"]
mod frozen;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Barrier;
use std::time::Duration;

use common::disk::{Tmpfs, fill};
use common::*;

/// The Unix account running these tests: the operator the CLI will see.
fn me() -> String {
    gatehouse::grants::operator::current_account().expect("this account has a passwd entry")
}

struct Setup {
    world: World,
    alice: Person,
    bob: Person,
    carol: Person,
}

/// alice (sre, oncall) requests `db-ops` on db-01, which needs two approvals from `leads`
/// (bob and carol); `emergency` is break-glass for oncall. `operator` is the `[[operator]]`
/// table (or nothing).
fn policy(s: &Setup, operator: &str) -> String {
    format!(
        "{}{}{}{}\
         [[role]]\nname = \"db-ops\"\nmembers = [\"sre\"]\ntargets = [\"db-01\"]\nlogin = \"{login}\"\nmax_duration = \"1h\"\napprovals = 2\napprovers = [\"leads\"]\nshell = \"full\"\n\n\
         [[role]]\nname = \"self\"\nmembers = [\"sre\"]\ntargets = [\"db-01\"]\nlogin = \"{login}\"\nmax_duration = \"1h\"\napprovals = 0\nshell = \"full\"\n\n\
         [[role]]\nname = \"emergency\"\nmembers = [\"oncall\"]\ntargets = [\"*\"]\nlogin = \"{login}\"\nmax_duration = \"30m\"\nshell = \"full\"\nbreak_glass = true\n\n\
         {operator}",
        user_toml(&s.alice, &["sre", "oncall"]),
        user_toml(&s.bob, &["leads"]),
        user_toml(&s.carol, &["leads"]),
        s.world.target_toml("db-01"),
        login = login(),
    )
}

/// An `[[operator]]` table mapping this test's account to `user`.
fn operator_as(user: &str) -> String {
    format!("[[operator]]\nunix = \"{}\"\nuser = \"{user}\"\n", me())
}

fn setup(config_extra: &str) -> Setup {
    let (world, mut people) = World::new(&["alice", "bob", "carol"], config_extra);
    let carol = people.pop().unwrap();
    let bob = people.pop().unwrap();
    let alice = people.pop().unwrap();
    let mut s = Setup {
        world,
        alice,
        bob,
        carol,
    };
    let text = policy(&s, &operator_as("carol"));
    s.world.gatehouse.write_policy("main.toml", &text);
    s.world.gatehouse.start();
    s
}

/// Files a `db-ops` request as alice and returns its id.
fn request(gh: &Gatehouse, alice: &Person, role: &str, n: usize) -> i64 {
    let reason = format!("INC-{n}");
    let out = gh.ssh(
        alice,
        &[
            "request", "db-01", "--role", role, "--for", "30m", "--reason", &reason,
        ],
    );
    assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
    out.out()
        .split_whitespace()
        .nth(1)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no grant id in {:?}", out.out()))
}

/// `gatehouse ARGS…` with a hostile environment: USER and SUDO_USER name someone else.
fn cli(gh: &Gatehouse, args: &[&str], pretend: &str) -> Output {
    let mut cmd: Command = gh.command(args);
    cmd.env("USER", pretend)
        .env("SUDO_USER", pretend)
        .env("LOGNAME", pretend);
    run(cmd, b"", Duration::from_secs(60))
}

/// Every grant, by id, as `gatehouse grants list --all --json` shows it.
fn grants(gh: &Gatehouse) -> BTreeMap<i64, serde_json::Value> {
    let out = run(
        gh.command(&["grants", "list", "--all", "--json"]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let all: serde_json::Value = serde_json::from_str(&out.out()).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .map(|g| (g["id"].as_i64().unwrap(), g.clone()))
        .collect()
}

fn approvers(g: &serde_json::Value) -> Vec<String> {
    let mut who: Vec<String> = g["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    who.sort();
    who
}

fn audit_text(gh: &Gatehouse) -> String {
    std::fs::read_to_string(gh.dir.join("data/audit.jsonl")).unwrap_or_default()
}

#[test]
fn simultaneous_approvals_through_ssh_and_the_cli_activate_every_grant() {
    let s = setup("");
    let gh = &s.world.gatehouse;
    let (alice, bob, carol) = (&s.alice, &s.bob, &s.carol);
    let mut all = Vec::new();
    for round in 0..2 {
        // Requests at the same moment, too.
        let ids: Vec<i64> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..12)
                .map(|n| scope.spawn(move || request(gh, alice, "db-ops", round * 100 + n)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // Both approvals of each grant at once: bob over SSH, carol over SSH or, for every
        // other grant, at the command line (as the operator mapped to her).
        let start = Barrier::new(ids.len() * 2);
        std::thread::scope(|scope| {
            for (i, &id) in ids.iter().enumerate() {
                let start = &start;
                let id = id.to_string();
                let id2 = id.clone();
                scope.spawn(move || {
                    start.wait();
                    let out = gh.ssh(bob, &["approve", &id]);
                    assert_eq!(out.code(), 0, "bob on {id}: {}", out.err());
                });
                scope.spawn(move || {
                    start.wait();
                    let out = if i % 2 == 0 {
                        cli(gh, &["grants", "approve", &id2], "bob")
                    } else {
                        gh.ssh(carol, &["approve", &id2])
                    };
                    assert_eq!(out.code(), 0, "carol on {id2}: {}", out.err());
                });
            }
        });
        all.extend(ids);
    }
    let stored = grants(gh);
    let audit = audit_text(gh);
    for id in &all {
        let g = &stored[id];
        assert_eq!(g["state"], "active", "grant {id} is stuck: {g}");
        assert_eq!(approvers(g), ["bob", "carol"], "grant {id}");
        let activated = audit
            .lines()
            .filter(|l| {
                l.contains("\"event\":\"grant.activated\"")
                    && l.contains(&format!("\"grant_id\":{id},"))
            })
            .count();
        assert_eq!(activated, 1, "grant {id} is activated exactly once");
    }
    assert_eq!(all.len(), 24);
    // A session on one of them runs.
    let out = gh.ssh(&s.alice, &["db-01:db-ops", "echo", "in"]);
    assert_eq!(out.code(), 0, "{}", out.err());
}

#[test]
fn parallel_break_glass_logins_run_exactly_max_uses_sessions_each_under_its_own_grant() {
    let s = setup("[breakglass]\nmax_uses = 3\n");
    let gh = &s.world.gatehouse;
    let n = 24;
    let alice = &s.alice;
    let start = Barrier::new(n);
    let outcomes: Vec<(usize, Output)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let start = &start;
                scope.spawn(move || {
                    let marker = format!("ran-{i}-end");
                    start.wait();
                    let out = gh.ssh(
                        alice,
                        &[
                            "breakglass",
                            "db-01",
                            "--reason",
                            "primary",
                            "is",
                            "down",
                            "INC-77",
                            "--",
                            "echo",
                            &marker,
                        ],
                    );
                    (i, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ran = Vec::new();
    for (i, out) in &outcomes {
        match out.code() {
            0 => {
                assert_eq!(out.out(), format!("ran-{i}-end\n"));
                let banner = out.err();
                let grant: i64 = banner
                    .split("BREAK-GLASS: grant ")
                    .nth(1)
                    .and_then(|t| t.split(',').next())
                    .and_then(|t| t.parse().ok())
                    .unwrap_or_else(|| panic!("no grant in the banner: {banner}"));
                ran.push((*i, grant));
            }
            126 => assert!(
                out.err().contains("break-glass limit reached: 3 use(s)"),
                "{}",
                out.err()
            ),
            other => panic!("exit {other}: {}", out.err()),
        }
    }
    assert_eq!(ran.len(), 3, "exactly max_uses sessions ran: {ran:?}");
    let mut granted: Vec<i64> = ran.iter().map(|(_, g)| *g).collect();
    granted.sort_unstable();
    granted.dedup();
    assert_eq!(granted.len(), 3, "three different grants: {ran:?}");
    assert_eq!(grants(gh).len(), 3, "no grant beyond the limit was stored");
    assert_eq!(s.world.target.accepted_logins(), 3);

    // The index row and the audit line of each session name the grant its banner named.
    let list = run(
        gh.command(&["sessions", "list", "--json"]),
        b"",
        Duration::from_secs(30),
    );
    let sessions: serde_json::Value = serde_json::from_str(&list.out()).unwrap();
    let audit = audit_text(gh);
    for (i, grant) in &ran {
        let marker = format!("ran-{i}-end");
        let row = sessions
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["command"].as_str().is_some_and(|c| c.contains(&marker)))
            .unwrap_or_else(|| panic!("no index row for {marker}: {sessions}"));
        assert_eq!(row["grant_id"].as_i64(), Some(*grant), "{row}");
        let session = row["id"].as_str().unwrap();
        let started = audit
            .lines()
            .find(|l| {
                l.contains("\"event\":\"session.started\"")
                    && l.contains(&format!("\"session_id\":\"{session}\""))
            })
            .unwrap_or_else(|| panic!("no session.started for {session}"));
        assert!(
            started.contains(&format!("\"grant_id\":{grant},")),
            "{started}"
        );
        let activated = audit
            .lines()
            .filter(|l| {
                l.contains("\"event\":\"breakglass.activated\"")
                    && l.contains(&format!("\"grant_id\":{grant},"))
            })
            .count();
        assert_eq!(activated, 1);
    }
}

#[test]
fn the_operator_is_the_uid_mapped_by_policy_and_counts_once_as_that_person() {
    let s = setup("");
    let gh = &s.world.gatehouse;
    // USER and SUDO_USER name bob; the uid is mapped to carol, so carol approves.
    let id = request(gh, &s.alice, "db-ops", 1).to_string();
    let out = cli(gh, &["grants", "approve", &id], "bob");
    assert_eq!(out.code(), 0, "{}", out.err());
    assert!(out.out().contains("(by carol)"), "{}", out.out());
    let g = &grants(gh)[&id.parse::<i64>().unwrap()];
    assert_eq!(approvers(g), ["carol"], "{g}");
    assert_eq!(g["state"], "pending");
    // carol cannot count a second time over SSH, nor through the CLI again.
    let twice = gh.ssh(&s.carol, &["approve", &id]);
    assert_eq!(twice.code(), 1, "{}", twice.err());
    assert!(twice.err().contains("already approved"), "{}", twice.err());
    let again = cli(gh, &["grants", "approve", &id], "alice");
    assert_eq!(again.code(), 1, "{}", again.err());
    // The other way round: bob over SSH first, then bob at the command line.
    let other = request(gh, &s.alice, "db-ops", 2).to_string();
    assert_eq!(gh.ssh(&s.bob, &["approve", &other]).code(), 0);
    let text = policy(&s, &operator_as("bob"));
    gh.write_policy("main.toml", &text);
    let out = cli(gh, &["grants", "approve", &other], "carol");
    assert_eq!(out.code(), 1, "{}", out.err());
    assert!(out.err().contains("already approved"), "{}", out.err());
    assert_eq!(
        grants(gh)[&other.parse::<i64>().unwrap()]["state"],
        "pending"
    );

    // Mapped to the requester: her own request is refused, whatever the environment says.
    let text = policy(&s, &operator_as("alice"));
    gh.write_policy("main.toml", &text);
    let own = cli(gh, &["grants", "approve", &other], "bob");
    assert_eq!(own.code(), 126, "{}", own.err());
    assert!(own.err().contains("your own request"), "{}", own.err());

    // Unmapped (root at the console): no approvals, but revocation works and is recorded
    // under the account.
    let text = policy(&s, "");
    gh.write_policy("main.toml", &text);
    let unmapped = cli(gh, &["grants", "approve", &other], "bob");
    assert_eq!(unmapped.code(), 126, "{}", unmapped.err());
    assert!(unmapped.err().contains("not mapped"), "{}", unmapped.err());
    let active = request(gh, &s.alice, "self", 3).to_string();
    let out = cli(
        gh,
        &["grants", "revoke", &active, "--reason", "console says so"],
        "bob",
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let shown = run(
        gh.command(&["grants", "show", &active]),
        b"",
        Duration::from_secs(30),
    );
    assert!(
        shown
            .out()
            .contains(&format!("ended by     operator:{} ", me())),
        "{}",
        shown.out()
    );

    // A mapping to a user the policy does not have is an error with file and line.
    let bad = policy(&s, "[[operator]]\nunix = \"ops\"\nuser = \"mallory\"\n");
    gh.write_policy("main.toml", &bad);
    let check = run(gh.command(&["check"]), b"", Duration::from_secs(30));
    assert_ne!(check.code(), 0);
    assert!(
        check.err().contains("main.toml:") && check.err().contains("\"mallory\""),
        "{}",
        check.err()
    );
}

#[test]
fn a_revoke_is_refused_while_the_audit_log_cannot_be_written() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("auditfs");
    let _mount = Tmpfs::mount(&disk, "2m");
    let s = setup(&format!("audit_log = \"{}/audit.jsonl\"\n", disk.display()));
    let gh = &s.world.gatehouse;
    let id = request(gh, &s.alice, "self", 1).to_string();
    let filler = fill(&disk);

    // At the command line: refused, non-zero, and the grant is as it was.
    let out = cli(gh, &["grants", "revoke", &id, "--reason", "disk test"], "x");
    assert_eq!(out.code(), 1, "{}{}", out.out(), out.err());
    assert!(out.err().contains("audit log"), "{}", out.err());
    assert!(!out.out().contains("is now revoked"), "{}", out.out());
    // Over SSH (the holder gives it up): the same.
    let out = gh.ssh(&s.alice, &["revoke", &id, "--reason", "disk", "test"]);
    assert_ne!(out.code(), 0, "{}", out.out());
    assert!(out.err().contains("audit log"), "{}", out.err());
    assert!(out.err().contains("nothing was changed"), "{}", out.err());
    let g = &grants(gh)[&id.parse::<i64>().unwrap()];
    assert_eq!(g["state"], "active", "the grant stays as it was: {g}");
    let audit = std::fs::read_to_string(disk.join("audit.jsonl")).unwrap();
    assert!(!audit.contains("grant.revoked"), "{audit}");

    // Room again: the same revoke goes through, with its line.
    std::fs::remove_file(filler).unwrap();
    let out = gh.ssh(&s.alice, &["revoke", &id, "--reason", "disk", "test"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(grants(gh)[&id.parse::<i64>().unwrap()]["state"], "revoked");
    let audit = std::fs::read_to_string(disk.join("audit.jsonl")).unwrap();
    assert_eq!(audit.matches("\"event\":\"grant.revoked\"").count(), 1);
}
