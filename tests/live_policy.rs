//! Live sessions follow the policy: a reload (SIGHUP) re-evaluates every running session and
//! every grant. With an exec session and a restricted shell open on one grant, a reload that
//! removes
//! (a) a command rule: the exec session runs on, the shell denies the next line under it;
//! (b) the user, (c) the role, (d) the user's membership of the role: both sessions close with
//!     the reason on the user's terminal, the grant is revoked with `ended_by = policy`, and the
//!     audit log has the revocation, both sessions' ends with the reason, and the reload.

mod common;

use std::time::Duration;

use common::interactive::Interactive;
use common::*;

/// What the reload takes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removed {
    Nothing,
    SleepRule,
    User,
    Role,
    Membership,
}

/// The policy: alice and carol in `sre`; role `ops` (restricted, `echo *` and `sleep *`, on
/// web-01, self-service) for `sre`; minus what `removed` says.
fn policy(world: &World, alice: &Person, carol: &Person, removed: Removed) -> String {
    let alice_groups: &[&str] = if removed == Removed::Membership {
        &["qa"]
    } else {
        &["sre"]
    };
    let alice = if removed == Removed::User {
        String::new()
    } else {
        user_toml(alice, alice_groups)
    };
    let commands = if removed == Removed::SleepRule {
        "[\"echo *\"]"
    } else {
        "[\"echo *\", \"sleep *\"]"
    };
    let role = if removed == Removed::Role {
        String::new()
    } else {
        format!(
            "[[role]]\nname = \"ops\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"{}\"\napprovals = 0\nshell = \"restricted\"\ncommands = {commands}\n",
            login()
        )
    };
    format!(
        "{alice}{}{}{role}",
        user_toml(carol, &["sre"]),
        world.target_toml("web-01")
    )
}

/// The audit log's lines as JSON.
fn audit(world: &World) -> Vec<serde_json::Value> {
    std::fs::read_to_string(world.gatehouse.dir.join("data/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn events<'a>(lines: &'a [serde_json::Value], name: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["event"] == name).collect()
}

/// Writes the policy and sends SIGHUP; returns once the reload is in the audit log.
fn reload(world: &World, text: &str) {
    let before = events(&audit(world), "policy.reloaded").len();
    world.gatehouse.write_policy("main.toml", text);
    let status = std::process::Command::new("kill")
        .arg("-HUP")
        .arg(world.gatehouse.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while events(&audit(world), "policy.reloaded").len() <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload in the audit log:\n{}",
            world.gatehouse.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts alice's exec session (`sleep SECONDS`) and restricted shell on one grant, with one
/// line already run in the shell, then reloads a policy without `removed`; returns both
/// sessions and the grant.
fn reload_during_sessions(
    removed: Removed,
    sleep: u32,
) -> (World, Interactive, Interactive, i64, Person) {
    let (mut world, mut people) = World::new(&["alice", "carol"], "");
    let carol = people.pop().unwrap();
    let alice = people.pop().unwrap();
    world.gatehouse.write_policy(
        "main.toml",
        &policy(&world, &alice, &carol, Removed::Nothing),
    );
    world.gatehouse.start();
    let gh = &world.gatehouse;
    let out = gh.ssh(
        &alice,
        &[
            "request", "web-01", "--for", "1h", "--reason", "live", "policy",
        ],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let grant: i64 = out
        .out()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();

    let exec =
        Interactive::spawn(gh.ssh_command(&alice, &[], &["web-01", "sleep", &sleep.to_string()]));
    let mut shell = Interactive::spawn(gh.ssh_command(&alice, &["-tt"], &["web-01"]));
    shell.wait_for("alice@web-01 [ops]$ ", Duration::from_secs(30));
    shell.send(b"echo one\r");
    shell.wait_for("one\r\n", Duration::from_secs(30));
    shell.wait_for_count("alice@web-01 [ops]$ ", 2, Duration::from_secs(30));
    // The exec session is running on the target.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while world.target.log().matches("Starting session:").count() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            world.target.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    reload(&world, &policy(&world, &alice, &carol, removed));
    (world, exec, shell, grant, alice)
}

/// (b), (c), (d): both sessions close with `why`, the grant is revoked by policy, and the
/// audit log says so.
fn sessions_close_and_the_grant_ends(removed: Removed, why: &str) {
    let (world, exec, shell, grant, _alice) = reload_during_sessions(removed, 60);
    let exec = exec.wait_exit(Duration::from_secs(10));
    assert_eq!(exec.code(), 126, "{}{}", exec.out(), exec.err());
    assert!(exec.err().contains(why), "{}", exec.err());
    assert!(exec.err().contains("closing the session"), "{}", exec.err());
    let shell = shell.wait_exit(Duration::from_secs(10));
    assert_eq!(shell.code(), 126, "{}", shell.out());
    assert!(shell.out().contains(why), "{}", shell.out());
    assert!(
        shell.out().contains("closing the session"),
        "{}",
        shell.out()
    );

    let show = run(
        world
            .gatehouse
            .command(&["grants", "show", &grant.to_string()]),
        b"",
        Duration::from_secs(30),
    );
    assert!(
        show.out().contains("state        revoked"),
        "{}",
        show.out()
    );
    assert!(show.out().contains("ended by     policy"), "{}", show.out());
    assert!(show.out().contains(why), "{}", show.out());

    // The session ends reach the audit log when the sessions have finished closing.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines = audit(&world);
        if events(&lines, "session.ended").len() >= 2 || std::time::Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let revoked = events(&lines, "grant.revoked");
    assert!(
        revoked
            .iter()
            .any(|l| l["grant_id"] == grant && l["actor"] == "policy"),
        "{revoked:?}"
    );
    let closed: Vec<_> = events(&lines, "session.ended")
        .into_iter()
        .filter(|l| l["reason"].as_str().is_some_and(|r| r.contains(why)))
        .collect();
    assert_eq!(
        closed.len(),
        2,
        "both sessions' ends give the reason: {lines:?}"
    );
    assert!(
        closed.iter().all(|l| l["end_class"] == "policy"),
        "and are classed as closed by the policy: {closed:?}"
    );
    let reloaded = events(&lines, "policy.reloaded");
    let detail = &reloaded.last().unwrap()["detail"];
    assert_eq!(
        detail["sessions_closed"].as_array().map(Vec::len),
        Some(2),
        "{detail}"
    );
    assert_eq!(detail["grants_ended"][0]["grant_id"], grant, "{detail}");
    // Nothing ran after the reload: only the shell's first line and the exec session.
    assert_eq!(world.target.log().matches("Starting session:").count(), 2);
}

#[test]
fn removing_the_user_closes_live_sessions_and_revokes_the_grant() {
    sessions_close_and_the_grant_ends(Removed::User, "user alice is no longer in the policy");
}

#[test]
fn removing_the_role_closes_live_sessions_and_revokes_the_grant() {
    sessions_close_and_the_grant_ends(Removed::Role, "role ops is no longer in the policy");
}

#[test]
fn removing_the_membership_closes_live_sessions_and_revokes_the_grant() {
    sessions_close_and_the_grant_ends(
        Removed::Membership,
        "alice is no longer a member of role ops",
    );
}

#[test]
fn removing_a_command_rule_denies_the_next_line_but_cuts_no_running_exec() {
    let (world, exec, mut shell, grant, _alice) = reload_during_sessions(Removed::SleepRule, 4);
    // The next line under the removed rule is denied; one under a remaining rule runs.
    shell.send(b"sleep 1\r");
    shell.wait_for("gatehouse: denied: ", Duration::from_secs(30));
    shell.send(b"echo two\r");
    shell.wait_for("two\r\n", Duration::from_secs(30));
    shell.send(b"exit\r");
    let shell = shell.wait_exit(Duration::from_secs(30));
    assert_eq!(shell.code(), 0, "{}", shell.out());
    // The exec session, started under the removed rule, runs to its end.
    let exec = exec.wait_exit(Duration::from_secs(30));
    assert_eq!(exec.code(), 0, "{}{}", exec.out(), exec.err());
    let show = run(
        world
            .gatehouse
            .command(&["grants", "show", &grant.to_string()]),
        b"",
        Duration::from_secs(30),
    );
    assert!(show.out().contains("state        active"), "{}", show.out());
    // Only the allowed lines reached the target: echo one, echo two, and the exec session.
    assert_eq!(world.target.log().matches("Starting session:").count(), 3);
}

#[test]
fn grants_the_policy_no_longer_gives_are_ended_when_the_bastion_starts() {
    let (mut world, mut people) = World::new(&["alice", "carol"], "");
    let carol = people.pop().unwrap();
    let alice = people.pop().unwrap();
    world.gatehouse.write_policy(
        "main.toml",
        &policy(&world, &alice, &carol, Removed::Nothing),
    );
    world.gatehouse.start();
    let out = world.gatehouse.ssh(
        &alice,
        &[
            "request", "web-01", "--for", "1h", "--reason", "before", "restart",
        ],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let grant: i64 = out
        .out()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    world.gatehouse.stop(false);
    // The policy changes while the bastion is down.
    world
        .gatehouse
        .write_policy("main.toml", &policy(&world, &alice, &carol, Removed::Role));
    world.gatehouse.start();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let show = run(
            world
                .gatehouse
                .command(&["grants", "show", &grant.to_string()]),
            b"",
            Duration::from_secs(30),
        );
        if show.out().contains("ended by     policy") {
            assert!(
                show.out().contains("state        revoked"),
                "{}",
                show.out()
            );
            assert!(
                show.out().contains("role ops is no longer in the policy"),
                "{}",
                show.out()
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}\n{}",
            show.out(),
            world.gatehouse.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
