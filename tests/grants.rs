//! Just-in-time grants end to end: no grant, no session; request, approval, revocation and
//! expiry with real `ssh` and `sshd`; sessions end with their grant.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

struct Setup {
    world: World,
    alice: Person,
    bob: Person,
}

/// alice (sre) may hold `web-ops` (one approval by sre-leads, up to 4h) and `quick` (self-service,
/// up to 10s); bob (sre-leads) approves.
fn setup() -> Setup {
    let (mut world, mut people) = World::new(&["alice", "bob"], "");
    let bob = people.pop().unwrap();
    let alice = people.pop().unwrap();
    let policy = format!(
        "{}{}{}\
         [[role]]\nname = \"web-ops\"\nmembers = [\"sre\"]\ntargets = [\"web-*\"]\nlogin = \"{login}\"\nmax_duration = \"4h\"\napprovals = 1\napprovers = [\"sre-leads\"]\nshell = \"full\"\n\n\
         [[role]]\nname = \"quick\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"{login}\"\nmax_duration = \"10s\"\napprovals = 0\nshell = \"full\"\n",
        user_toml(&alice, &["sre"]),
        user_toml(&bob, &["sre-leads"]),
        world.target_toml("web-01"),
        login = login(),
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    Setup { world, alice, bob }
}

/// Files a request and returns its grant id.
fn request(gh: &Gatehouse, who: &Person, args: &[&str]) -> i64 {
    let mut all = vec!["request"];
    all.extend_from_slice(args);
    let out = gh.ssh(who, &all);
    assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
    let text = out.out();
    text.split_whitespace()
        .nth(1)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no grant id in {text:?}"))
}

#[test]
fn without_a_grant_the_session_is_denied_and_the_target_sees_nothing() {
    let s = setup();
    let gh = &s.world.gatehouse;
    let out = gh.ssh(&s.alice, &["web-01:web-ops", "echo", "hi"]);
    assert_eq!(out.code(), 126);
    assert!(
        out.err()
            .starts_with("gatehouse: denied: you hold no active grant for \"web-01\""),
        "{}",
        out.err()
    );
    assert!(
        out.err()
            .contains("ssh bastion request web-01 --role web-ops"),
        "{}",
        out.err()
    );
    assert_eq!(s.world.target.accepted_logins(), 0);
}

#[test]
fn request_then_approval_by_another_user_opens_the_session() {
    let s = setup();
    let gh = &s.world.gatehouse;
    let id = request(
        gh,
        &s.alice,
        &[
            "web-01", "--role", "web-ops", "--for", "1h", "--reason", "INC-4411", "nginx", "is",
            "down",
        ],
    );
    assert_eq!(
        gh.ssh(&s.alice, &["web-01:web-ops", "true"]).code(),
        126,
        "pending is not active"
    );
    // The requester cannot approve her own request.
    let own = gh.ssh(&s.alice, &["approve", &id.to_string()]);
    assert_eq!(own.code(), 126, "{}", own.err());
    // bob sees it and approves it.
    let listing = gh.ssh(&s.bob, &["grants"]);
    assert!(
        listing.out().contains("INC-4411 nginx is down"),
        "{}",
        listing.out()
    );
    let out = gh.ssh(
        &s.bob,
        &["approve", &id.to_string(), "--comment", "go", "ahead"],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let out = gh.ssh(&s.alice, &["web-01:web-ops", "echo", "in"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(out.out(), "in\n");
    // A second decision on a grant that is no longer pending is refused.
    let again = gh.ssh(
        &s.bob,
        &["deny", &id.to_string(), "--reason", "too", "late"],
    );
    assert_eq!(again.code(), 1, "{}", again.err());
    assert!(again.err().contains("not pending"), "{}", again.err());
    // The key id names the grant.
    assert!(
        s.world
            .target
            .log()
            .contains(&format!("ID gatehouse:alice:{id}:"))
    );
}

/// A session that prints `started` and then sits idle.
const IDLE: &str = "echo started; sleep 60";
/// A session that prints `started` and then streams output without pause.
const STREAMING: &str = "echo started; yes streaming-output-line";

/// Starts `command` on `target` through the bastion and returns the running ssh.
fn long_session(gh: &Gatehouse, who: &Person, target: &str, command: &str) -> std::process::Child {
    gh.ssh_command(who, &[], &[target, command])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_started(child: &mut std::process::Child) {
    use std::io::Read;
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = [0u8; 8];
    stdout.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"started\n");
    // Keep reading, so that a streaming session really streams instead of waiting on a pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> (i32, String) {
    use std::io::Read;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            let _ = child.stderr.as_mut().unwrap().read_to_string(&mut err);
            return (status.code().unwrap_or(-1), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the session did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A grant of `web-ops` on web-01 for alice, approved by bob.
fn approved_grant(s: &Setup, reason: &str) -> i64 {
    let gh = &s.world.gatehouse;
    let id = request(
        gh,
        &s.alice,
        &[
            "web-01", "--role", "web-ops", "--for", "1h", "--reason", reason,
        ],
    );
    assert_eq!(gh.ssh(&s.bob, &["approve", &id.to_string()]).code(), 0);
    id
}

/// Runs `command` as alice on web-01, calls `revoke` once it has started, and returns the
/// session's exit code and stderr after checking that it ended within about a second.
fn revoke_under_session(s: &Setup, command: &str, revoke: impl FnOnce()) -> (i32, String) {
    let mut session = long_session(&s.world.gatehouse, &s.alice, "web-01", command);
    wait_started(&mut session);
    revoke();
    let revoked_at = Instant::now();
    let ended = wait_exit(&mut session, Duration::from_secs(5));
    assert!(
        revoked_at.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        revoked_at.elapsed()
    );
    ended
}

#[test]
fn a_revocation_closes_running_sessions_within_a_second() {
    let s = setup();
    let gh = &s.world.gatehouse;

    // Revoked over SSH by the approver, while the session is idle.
    let id = approved_grant(&s, "revoke over ssh");
    let (code, err) = revoke_under_session(&s, IDLE, || {
        let out = gh.ssh(
            &s.bob,
            &["revoke", &id.to_string(), "--reason", "done", "here"],
        );
        assert_eq!(out.code(), 0, "{}", out.err());
    });
    assert_eq!(code, 126);
    assert!(
        err.contains(&format!("grant {id} was revoked by bob")),
        "{err}"
    );
    assert_eq!(
        gh.ssh(&s.alice, &["web-01", "true"]).code(),
        126,
        "no new sessions either"
    );

    // Revoked by the operator CLI, a separate process.
    let id = approved_grant(&s, "revoke from the cli");
    let (code, err) = revoke_under_session(&s, IDLE, || {
        let out = run(
            gh.command(&[
                "grants",
                "revoke",
                &id.to_string(),
                "--reason",
                "operator says so",
            ]),
            b"",
            Duration::from_secs(30),
        );
        assert_eq!(out.code(), 0, "{}", out.err());
    });
    assert_eq!(code, 126);
    assert!(err.contains("revoked by operator:"), "{err}");

    // Revoked while the session streams output as fast as it can.
    let id = approved_grant(&s, "revoke while streaming");
    let (code, err) = revoke_under_session(&s, STREAMING, || {
        let out = gh.ssh(&s.bob, &["revoke", &id.to_string()]);
        assert_eq!(out.code(), 0, "{}", out.err());
    });
    assert_eq!(code, 126);
    assert!(
        err.contains(&format!("grant {id} was revoked by bob")),
        "{err}"
    );
}

#[test]
fn a_short_grant_ends_a_running_session_at_expiry() {
    let s = setup();
    let gh = &s.world.gatehouse;
    request(
        gh,
        &s.alice,
        &[
            "web-01", "--role", "quick", "--for", "5s", "--reason", "expiry", "test",
        ],
    );
    let started = Instant::now();
    let mut session = long_session(gh, &s.alice, "web-01:quick", IDLE);
    wait_started(&mut session);
    let (code, err) = wait_exit(&mut session, Duration::from_secs(15));
    let lasted = started.elapsed();
    assert!(lasted < Duration::from_secs(7), "lasted {lasted:?}");
    assert_eq!(code, 126);
    assert!(err.contains("has expired"), "{err}");
    assert_eq!(gh.ssh(&s.alice, &["web-01:quick", "true"]).code(), 126);
}

#[test]
fn grants_survive_a_restart_of_the_bastion() {
    let mut s = setup();
    let id = request(
        &s.world.gatehouse,
        &s.alice,
        &[
            "web-01", "--role", "web-ops", "--for", "1h", "--reason", "restart",
        ],
    );
    assert_eq!(
        s.world
            .gatehouse
            .ssh(&s.bob, &["approve", &id.to_string()])
            .code(),
        0
    );
    s.world.gatehouse.stop(false);
    s.world.gatehouse.start();
    let out = s
        .world
        .gatehouse
        .ssh(&s.alice, &["web-01", "echo", "still"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    let out = s.world.gatehouse.ssh(&s.alice, &["grants", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.out()).unwrap();
    assert_eq!(v["grants"][0]["id"], id);
    assert_eq!(v["grants"][0]["state"], "active");
}

#[test]
fn bad_verb_input_is_a_usage_error_and_stores_nothing() {
    let s = setup();
    let gh = &s.world.gatehouse;
    let long = "x".repeat(600);
    let cases: Vec<Vec<&str>> = vec![
        vec!["approve", "999"],
        vec!["approve", "nine"],
        vec![
            "request",
            "web-01",
            "--role",
            "web-ops",
            "--for",
            "90 minutes",
            "--reason",
            "x",
        ],
        vec!["request", "web-01", "--role", "web-ops", "--for", "1h"],
        vec![
            "request", "web-01", "--role", "web-ops", "--for", "1h", "--reason", &long,
        ],
        vec![
            "request",
            "web-01",
            "--role",
            "web-ops",
            "--for",
            "1h",
            "--reason",
            "bell\u{7}here",
        ],
        vec![
            "request",
            "web-01",
            "--role",
            "web-ops",
            "--for",
            "1h",
            "--reason",
            "bidi\u{202e}txt",
        ],
        vec![
            "request", "web-01", "--role", "web-ops", "--for", "5h", "--reason", "too long",
        ],
        vec!["request", "web-01", "--bogus", "1"],
        vec!["deny", "1"],
    ];
    for args in cases {
        let out = gh.ssh(&s.alice, &args);
        assert_eq!(out.code(), 2, "{args:?}: {}", out.err());
        assert!(
            out.err().starts_with("gatehouse: "),
            "{args:?}: {}",
            out.err()
        );
    }
    let out = gh.ssh(&s.alice, &["grants", "--all", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.out()).unwrap();
    assert_eq!(
        v["grants"].as_array().unwrap().len(),
        0,
        "nothing was stored: {v}"
    );
}
