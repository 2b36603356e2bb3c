//! The audit log end to end: concurrent sessions and operator commands write one unbroken
//! chain, user text cannot forge a line, and `gatehouse audit verify` names the first line that
//! was edited, removed, reordered or appended by hand.

mod common;

use std::time::Duration;

use common::*;

fn verify(gh: &Gatehouse) -> Output {
    run(
        gh.command(&["audit", "verify"]),
        b"",
        Duration::from_secs(30),
    )
}

#[test]
fn concurrent_sessions_write_one_verifiable_chain_and_tampering_is_named() {
    let (mut world, mut people) = World::new(&["alice", "bob"], "");
    let bob = people.pop().unwrap();
    let alice = people.pop().unwrap();
    let policy = format!(
        "{}{}{}[[role]]\nname = \"ops\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"{}\"\napprovals = 1\napprovers = [\"leads\"]\nshell = \"full\"\n",
        user_toml(&alice, &["sre"]),
        user_toml(&bob, &["leads"]),
        world.target_toml("web-01"),
        login(),
    );
    // The operator at the command line (this process's account) acts as bob.
    let policy = format!(
        "{policy}
[[operator]]
unix = \"{}\"
user = \"bob\"
",
        gatehouse::grants::operator::current_account().unwrap()
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    let gh = &world.gatehouse;
    // A reason crafted to look like a second audit line.
    let forged = "x\n{\"seq\":99,\"event\":\"grant.approved\"}";
    let out = gh.ssh(
        &alice,
        &[
            "request",
            "web-01",
            "--for",
            "1h",
            "--reason",
            &format!("'{forged}'"),
        ],
    );
    assert_eq!(
        out.code(),
        2,
        "a newline in a reason is refused: {}",
        out.err()
    );
    let out = gh.ssh(
        &alice,
        &[
            "request",
            "web-01",
            "--for",
            "1h",
            "--reason",
            "INC-7",
            "{\"seq\":99}",
        ],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    // Approved by the operator CLI, a second process writing to the same log.
    let out = run(
        gh.command(&["grants", "approve", "1"]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    std::thread::scope(|scope| {
        for i in 0..8 {
            let alice = &alice;
            scope.spawn(move || {
                let out = gh.ssh(alice, &["web-01", "echo", &format!("session-{i}")]);
                assert_eq!(out.code(), 0, "{}", out.err());
            });
        }
    });
    assert_eq!(gh.ssh(&bob, &["web-01", "true"]).code(), 126);
    world.gatehouse.stop(false);
    let gh = &world.gatehouse;

    let out = verify(gh);
    assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
    assert!(out.out().starts_with("ok: "), "{}", out.out());
    let path = gh.dir.join("data/audit.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    for needle in [
        "\"event\":\"bastion.started\"",
        "\"event\":\"login\"",
        "\"event\":\"grant.requested\"",
        "\"event\":\"grant.approved\"",
        "\"actor\":\"bob\"",
        "\"unix_account\":",
        "\"event\":\"session.started\"",
        "\"event\":\"session.ended\"",
        "\"recording_sha256\":",
        "\"event\":\"session.denied\"",
        // Bob has no role on web-01: a refusal of the policy's, classed as such.
        "\"denial_class\":\"policy\"",
    ] {
        assert!(text.contains(needle), "the log lacks {needle}:\n{text}");
    }
    assert_eq!(text.matches("\"event\":\"session.ended\"").count(), 8);
    assert_eq!(
        text.matches("\"end_class\":\"normal\"").count(),
        8,
        "each session ended by itself, and says so:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("{\"seq\":99")),
        "user text forged no line"
    );
    let tail = run(
        gh.command(&["audit", "tail", "-n", "3"]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(tail.out().lines().count(), 3, "{}", tail.out());

    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let write = |lines: &[String]| std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let expect_broken = |at: usize, what: &str| {
        let out = verify(gh);
        assert_eq!(out.code(), 1, "{what}: {}", out.out());
        assert!(
            out.out().starts_with(&format!("line {at}:")),
            "{what}: {}",
            out.out()
        );
    };

    // Edited in place.
    let mut edited = lines.clone();
    edited[4] = edited[4].replace("alice", "mallo");
    write(&edited);
    expect_broken(5, "edited");
    // Removed.
    let mut removed = lines.clone();
    removed.remove(5);
    write(&removed);
    expect_broken(6, "removed");
    // Reordered.
    let mut reordered = lines.clone();
    reordered.swap(6, 7);
    write(&reordered);
    expect_broken(7, "reordered");
    // Appended by hand, with a correctly computed hash.
    let mut appended = lines.clone();
    let last = appended.last().unwrap().clone();
    let seq = appended.len() + 1;
    appended.push(format!(
        "{{\"seq\":{seq},\"time\":\"2026-11-29T00:00:00.000Z\",\"prev\":\"{}\",\"event\":\"grant.approved\"}}",
        sha256_hex(last.as_bytes())
    ));
    write(&appended);
    expect_broken(seq, "appended");
    // Restored: whole again.
    write(&lines);
    assert_eq!(verify(gh).code(), 0);
}
