//! Connection limits end to end: the idle timeout, the per-user connection limit and the
//! SIGTERM drain, with the real `ssh` and `sshd`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// A world where alice (and bob) hold a full shell on `web-01` through a self-service role.
fn world(config_extra: &str) -> (World, Person, Person) {
    let (mut world, mut people) = World::new(&["alice", "bob"], config_extra);
    let bob = people.pop().unwrap();
    let alice = people.pop().unwrap();
    let policy = format!(
        "{}{}{}[[role]]\nname = \"ops\"\nmembers = [\"ops\"]\ntargets = [\"web-*\"]\nlogin = \"{}\"\napprovals = 0\nshell = \"full\"\n",
        user_toml(&alice, &["ops"]),
        user_toml(&bob, &["ops"]),
        world.target_toml("web-01"),
        login(),
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    for person in [&alice, &bob] {
        let out = world.gatehouse.ssh(
            person,
            &[
                "request",
                "web-01",
                "--for",
                "1h",
                "--reason",
                "transport",
                "tests",
            ],
        );
        assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
    }
    (world, alice, bob)
}
/// The audit log's lines.
fn audit_lines(gh: &Gatehouse) -> Vec<serde_json::Value> {
    std::fs::read_to_string(gh.dir.join("data/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn count_events(gh: &Gatehouse, event: &str, user: &str) -> usize {
    audit_lines(gh)
        .iter()
        .filter(|l| l["event"] == event && l["user"] == user)
        .count()
}
fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
/// An `ssh` running in the background, its output collected as it arrives.
struct Live {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

impl Live {
    fn spawn(mut cmd: Command) -> Live {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn ssh");
        let collect = |mut source: Box<dyn Read + Send>| {
            let buf = Arc::new(Mutex::new(Vec::new()));
            let sink = buf.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = source.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap().extend_from_slice(&chunk[..n]);
                }
            });
            buf
        };
        let out = collect(Box::new(child.stdout.take().unwrap()));
        let err = collect(Box::new(child.stderr.take().unwrap()));
        Live { child, out, err }
    }

    fn text(&self) -> String {
        let mut all = String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned();
        all.push_str(&String::from_utf8_lossy(&self.err.lock().unwrap()));
        all
    }

    fn send(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn wait_for_text(&self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.text().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} after {timeout:?}; so far: {}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the exit code (`None` when it is still running after `timeout`).
    fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
/// An authenticated connection with no session open is closed after `idle_timeout`; a shell
/// sitting quietly at its prompt for longer is not, because a session is open.
#[test]
fn idle_connections_close_but_a_quiet_shell_stays() {
    let (world, alice, _bob) = world("[limits]\nidle_timeout = \"2s\"\n");
    let gh = &world.gatehouse;

    // `ssh -N`: logged in, no channel.
    let started = Instant::now();
    let mut idle = Live::spawn(gh.ssh_command(&alice, &["-N"], &[]));
    let code = idle.wait(Duration::from_secs(30));
    assert_eq!(
        code,
        Some(255),
        "ssh -N is still connected: {}",
        idle.text()
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(
        idle.text().contains("closing the idle connection"),
        "{}",
        idle.text()
    );

    // A shell with nothing typed for three times the idle timeout.
    let mut shell = Live::spawn(gh.ssh_command(&alice, &["-tt"], &["web-01"]));
    shell.send("echo ready-$((6*7))\n");
    shell.wait_for_text("ready-42", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(6));
    shell.send("echo still-$((6*8))\n");
    shell.wait_for_text("still-48", Duration::from_secs(10));
    shell.send("exit\n");
    assert_eq!(
        shell.wait(Duration::from_secs(20)),
        Some(0),
        "{}",
        shell.text()
    );
}

/// A user may hold `connections_per_user` connections; the next login is refused with a
/// message saying why (and audited), other users are unaffected, and a closed connection
/// frees its slot.
#[test]
fn the_per_user_connection_limit_refuses_clearly() {
    let (world, alice, bob) = world("[limits]\nconnections_per_user = 2\n");
    let gh = &world.gatehouse;
    let logins_before = count_events(gh, "login", "alice");
    let mut first = Live::spawn(gh.ssh_command(&alice, &["-N"], &[]));
    let _second = Live::spawn(gh.ssh_command(&alice, &["-N"], &[]));
    wait_until("two logins of alice", Duration::from_secs(30), || {
        count_events(gh, "login", "alice") == logins_before + 2
    });

    let out = gh.ssh(&alice, &["whoami"]);
    assert_eq!(out.code(), 255, "{}{}", out.out(), out.err());
    assert!(
        out.err()
            .contains("gatehouse: too many connections for alice (at most 2 at once)"),
        "{}",
        out.err()
    );
    wait_until(
        "the refusal in the audit log",
        Duration::from_secs(10),
        || {
            audit_lines(gh).iter().any(|l| {
                l["event"] == "login.refused"
                    && l["user"] == "alice"
                    && l["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("too many connections"))
            })
        },
    );
    // The refusal is not a failed login: no penalty for the address.
    assert!(
        !gh.log().contains("source address penalised"),
        "{}",
        gh.log()
    );

    let out = gh.ssh(&bob, &["whoami"]);
    assert_eq!(out.code(), 0, "{}", out.err());

    let _ = first.child.kill();
    let _ = first.child.wait();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = gh.ssh(&alice, &["web-01", "echo", "slot-freed"]);
        if out.code() == 0 {
            assert_eq!(out.out(), "slot-freed\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot was not given back: {}",
            out.err()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// SIGTERM drains: the listener closes at once, a live shell is told on its terminal, a short
/// command finishes normally within the grace time, the shell is closed when the grace time is
/// over, and before the process exits every session's end is in the index and the audit log,
/// which still verifies.
#[test]
fn sigterm_tells_live_sessions_waits_the_grace_time_and_records_every_end() {
    let (mut world, alice, bob) = world("[limits]\nshutdown_grace = \"4s\"\n");
    let gh = &world.gatehouse;
    let mut shell = Live::spawn(gh.ssh_command(&alice, &["-tt"], &["web-01"]));
    shell.send("echo ready-$((6*7))\n");
    shell.wait_for_text("ready-42", Duration::from_secs(30));
    let mut short =
        Live::spawn(gh.ssh_command(&bob, &[], &["web-01", "sleep 2; echo finished-in-grace"]));
    wait_until("both sessions started", Duration::from_secs(30), || {
        audit_lines(gh)
            .iter()
            .filter(|l| l["event"] == "session.started")
            .count()
            == 2
    });

    let port = gh.port;
    let pid = gh.pid();
    let sent = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    shell.wait_for_text(
        "gatehouse: the bastion is shutting down; this session will be closed in 4s",
        Duration::from_secs(10),
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the bastion still accepts connections while draining"
    );
    assert_eq!(
        short.wait(Duration::from_secs(20)),
        Some(0),
        "{}",
        short.text()
    );
    assert!(
        short.text().contains("finished-in-grace"),
        "{}",
        short.text()
    );
    assert_eq!(
        shell.wait(Duration::from_secs(30)),
        Some(126),
        "{}",
        shell.text()
    );
    assert!(
        shell
            .text()
            .contains("gatehouse: the bastion is shutting down: closing the session"),
        "{}",
        shell.text()
    );
    assert!(
        sent.elapsed() >= Duration::from_secs(4),
        "closed before the grace time"
    );
    world.gatehouse.stop(false);
    let gh = &world.gatehouse;
    assert!(
        gh.log().contains("all sessions and connections closed"),
        "{}",
        gh.log()
    );

    let out = run(
        gh.command(&["sessions", "list", "--json"]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let sessions: Vec<serde_json::Value> = serde_json::from_str(&out.out()).unwrap();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    for s in &sessions {
        assert!(s["ended_at"].is_i64(), "no end in the index: {s}");
        assert!(
            s["sha256"].is_string(),
            "no recording hash in the index: {s}"
        );
    }
    let shell_row = sessions.iter().find(|s| s["user"] == "alice").unwrap();
    assert!(
        shell_row["end_reason"]
            .as_str()
            .is_some_and(|r| r.contains("shutting down")),
        "{shell_row}"
    );
    let audit = audit_lines(gh);
    for s in &sessions {
        assert!(
            audit
                .iter()
                .any(|l| l["event"] == "session.ended" && l["session_id"] == s["id"]),
            "no session.ended line for {}",
            s["id"]
        );
    }
    let out = run(
        gh.command(&["audit", "verify"]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
}

/// A second SIGTERM during the grace time closes the live sessions at once, still recording
/// their ends.
#[test]
fn a_second_sigterm_closes_sessions_without_waiting_out_the_grace_time() {
    let (mut world, alice, _bob) = world("[limits]\nshutdown_grace = \"10m\"\n");
    let gh = &world.gatehouse;
    let mut shell = Live::spawn(gh.ssh_command(&alice, &["-tt"], &["web-01"]));
    shell.send("echo ready-$((6*7))\n");
    shell.wait_for_text("ready-42", Duration::from_secs(30));
    let term = |pid: u32| {
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
    };
    let pid = gh.pid();
    term(pid);
    shell.wait_for_text(
        "this session will be closed in 10m",
        Duration::from_secs(10),
    );
    term(pid);
    // Far sooner than ten minutes.
    assert_eq!(
        shell.wait(Duration::from_secs(60)),
        Some(126),
        "{}",
        shell.text()
    );
    assert!(
        shell
            .text()
            .contains("gatehouse: the bastion is shutting down: closing the session"),
        "{}",
        shell.text()
    );
    world.gatehouse.stop(false);
    let gh = &world.gatehouse;
    let out = run(
        gh.command(&["sessions", "list", "--json"]),
        b"",
        Duration::from_secs(30),
    );
    let sessions: Vec<serde_json::Value> = serde_json::from_str(&out.out()).unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert!(sessions[0]["ended_at"].is_i64(), "{}", sessions[0]);
    assert!(
        audit_lines(gh)
            .iter()
            .any(|l| l["event"] == "session.ended" && l["session_id"] == sessions[0]["id"])
    );
}
