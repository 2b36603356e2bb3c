//! The core path end to end: real `ssh` → `gatehouse` → real `sshd`, with a per-session
//! certificate, exit codes, stdio, large transfers, host key pinning and channel hardening.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use common::*;

struct Setup {
    world: World,
    alice: Person,
    dave: Person,
    mallory: Person,
}

/// alice is in `sre`, whose role `ops` has a full shell on `web-01`; dave is in no role;
/// mallory's key is in no policy at all.
fn setup() -> Setup {
    setup_with("", "")
}

/// Like [`setup`], with `config_extra` in the bastion's config and `target_extra` in the
/// target's `sshd_config`.
fn setup_with(config_extra: &str, target_extra: &str) -> Setup {
    let (mut world, mut people) =
        World::with_target_config(&["alice", "dave", "mallory"], config_extra, |_| {
            target_extra.to_owned()
        });
    let mallory = people.pop().unwrap();
    let dave = people.pop().unwrap();
    let alice = people.pop().unwrap();
    let policy = format!(
        "{}{}{}[[role]]\nname = \"ops\"\nmembers = [\"sre\"]\ntargets = [\"web-*\"]\nlogin = \"{}\"\napprovals = 0\nshell = \"full\"\n",
        user_toml(&alice, &["sre"]),
        user_toml(&dave, &["qa"]),
        world.target_toml("web-01"),
        login(),
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    let out = world.gatehouse.ssh(
        &alice,
        &[
            "request", "web-01", "--role", "ops", "--for", "1h", "--reason", "core", "path",
            "tests",
        ],
    );
    assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
    Setup {
        world,
        alice,
        dave,
        mallory,
    }
}

#[test]
fn exec_passes_output_and_exit_codes_through() {
    let s = setup();
    let gh = &s.world.gatehouse;
    let out = gh.ssh(
        &s.alice,
        &["web-01", "echo", "hello", "from", "the", "target"],
    );
    assert_eq!(out.code(), 0, "stderr: {}\nlog: {}", out.err(), gh.log());
    assert_eq!(out.out(), "hello from the target\n");
    for code in [0, 1, 42] {
        let out = gh.ssh(&s.alice, &["web-01", &format!("exit {code}")]);
        assert_eq!(out.code(), code, "stderr: {}", out.err());
    }
}

/// The target's sshd drops any connection beyond three that have not yet authenticated
/// (`MaxStartups 3`). Gatehouse starts one at a time (`max_startups = 1`) and queues the rest;
/// sshd also counts the prepared connection waiting in the pool, and a connection for a moment
/// after it has authenticated. A burst of sessions loses none.
#[test]
fn a_burst_of_sessions_queues_for_the_targets_startup_slots() {
    let s = setup_with("[upstream]\nmax_startups = 1\n", "MaxStartups 3");
    let (gh, alice) = (&s.world.gatehouse, &s.alice);
    let outputs: Vec<Output> = std::thread::scope(|scope| {
        let sessions: Vec<_> = (0..32)
            .map(|i| {
                scope.spawn(move || gh.ssh(alice, &["web-01", "echo", &format!("session-{i}")]))
            })
            .collect();
        sessions.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (i, out) in outputs.iter().enumerate() {
        assert_eq!(
            out.code(),
            0,
            "session {i}: {}\nlog: {}",
            out.err(),
            gh.log()
        );
        assert_eq!(out.out(), format!("session-{i}\n"));
    }
}

/// After a session has logged in, the next connection to the target is prepared (key exchange
/// done, nobody logged in), and the next session logs in on it, even with a single start-up slot
/// per target.
#[test]
fn the_next_connection_is_prepared_and_used() {
    let s = setup_with("[upstream]\nmax_startups = 1\n", "");
    let (gh, target) = (&s.world.gatehouse, &s.world.target);
    // The harness's check that sshd listens is a connection too.
    let base = target.log().matches("Connection from").count();
    let connections = || target.log().matches("Connection from").count() - base;
    let settle_at = |expected: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while connections() < expected && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            connections(),
            expected,
            "target log:\n{}\ngatehouse log:\n{}",
            target.log(),
            gh.log()
        );
    };
    for (session, expected) in [(1, 2), (2, 3)] {
        let out = gh.ssh(&s.alice, &["web-01", "true"]);
        assert_eq!(out.code(), 0, "session {session}: {}", out.err());
        // The session's own connection (the prepared one from the second session on), and
        // the next one.
        settle_at(expected);
    }
    assert_eq!(target.accepted_logins(), 2);
}

#[test]
fn stderr_stays_stderr() {
    let s = setup();
    let out = s
        .world
        .gatehouse
        .ssh(&s.alice, &["web-01", "echo to-out; echo to-err >&2"]);
    assert_eq!(out.code(), 0);
    assert_eq!(out.out(), "to-out\n");
    assert_eq!(out.err(), "to-err\n");
}

#[test]
fn interactive_session_runs_commands_and_returns_the_shell_status() {
    let s = setup();
    let gh = &s.world.gatehouse;
    let cmd = gh.ssh_command(&s.alice, &["-tt"], &["web-01"]);
    let out = run(
        cmd,
        b"echo marker-$((40+2))\ntty\nexit 7\n",
        Duration::from_secs(60),
    );
    assert_eq!(
        out.code(),
        7,
        "stdout: {}\nstderr: {}",
        out.out(),
        out.err()
    );
    assert!(out.out().contains("marker-42"), "{}", out.out());
    assert!(
        out.out().contains("/dev/pts/"),
        "the target gave the shell a pty: {}",
        out.out()
    );
}

#[test]
fn exec_sessions_get_no_pty_on_the_target() {
    let s = setup();
    let out = s.world.gatehouse.ssh(&s.alice, &["web-01", "tty"]);
    assert_eq!(out.out().trim(), "not a tty");
}

#[test]
fn two_hundred_megabytes_arrive_byte_exact_both_ways() {
    let s = setup();
    let gh = &s.world.gatehouse;
    // Download: the target streams a file the test wrote; compare digests.
    let file = s.world.tmp.path().join("payload.bin");
    let mut payload = vec![0u8; 200_000_000];
    let mut seed = 0x9e3779b97f4a7c15u64;
    for chunk in payload.chunks_mut(8) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&file, &payload).unwrap();
    let want = sha256_hex(&payload);
    let out = run(
        gh.ssh_command(
            &s.alice,
            &[],
            &["web-01", &format!("cat {}", file.display())],
        ),
        b"",
        Duration::from_secs(300),
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(out.stdout.len(), payload.len());
    assert_eq!(sha256_hex(&out.stdout), want);
    // Upload: the target hashes what it receives.
    let out = run(
        gh.ssh_command(&s.alice, &[], &["web-01", "sha256sum"]),
        &payload,
        Duration::from_secs(300),
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(out.out().split_whitespace().next().unwrap(), want);
}

#[test]
fn the_target_log_names_the_person_through_the_certificate() {
    let s = setup();
    let out = s.world.gatehouse.ssh(&s.alice, &["web-01", "true"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    let log = s.world.target.log();
    let line = log
        .lines()
        .find(|l| l.contains("Accepted publickey") && l.contains("CERT"))
        .unwrap_or_else(|| panic!("no certificate login in the sshd log:\n{log}"));
    assert!(
        line.contains(&format!("for {} from 127.0.0.1", login())),
        "{line}"
    );
    assert!(line.contains("ID gatehouse:alice:"), "{line}");
    // The session id is a UUID, the last field of the key id.
    let id = line.split("ID gatehouse:alice:").nth(1).unwrap();
    let session = id.split(' ').next().unwrap().rsplit(':').next().unwrap();
    assert_eq!(session.len(), 36, "{line}");
}

#[test]
fn a_wrong_pinned_host_key_refuses_with_255() {
    let (mut world, mut people) = World::new(&["alice"], "");
    let alice = people.pop().unwrap();
    let other = keygen(&world.tmp.path().join("other_host"), "other");
    let policy = format!(
        "{}[[target]]\nname = \"web-01\"\naddress = \"127.0.0.1\"\nport = {}\nhost_keys = [\"{other}\"]\n\n\
         [[role]]\nname = \"ops\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"{}\"\napprovals = 0\nshell = \"full\"\n",
        user_toml(&alice, &["sre"]),
        world.target.port,
        login()
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    let out = world.gatehouse.ssh(
        &alice,
        &[
            "request", "web-01", "--role", "ops", "--for", "1h", "--reason", "test",
        ],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let before = world.target.accepted_logins();
    let out = world
        .gatehouse
        .ssh(&alice, &["web-01", "echo", "should-not-run"]);
    assert_eq!(out.code(), 255, "{}", out.err());
    assert!(
        out.err()
            .contains("gatehouse: target web-01: host key verification failed"),
        "{}",
        out.err()
    );
    assert!(!out.out().contains("should-not-run"));
    assert_eq!(world.target.accepted_logins(), before);
}

#[test]
fn unknown_keys_and_non_members_are_refused() {
    let s = setup();
    let gh = &s.world.gatehouse;
    let before = s.world.target.accepted_logins();
    let out = gh.ssh(&s.mallory, &["web-01", "true"]);
    assert_eq!(out.code(), 255);
    assert!(out.err().contains("Permission denied"), "{}", out.err());
    // mallory's key cannot log in under alice's name either.
    let impostor = Person {
        name: "alice".into(),
        key: s.mallory.key.clone(),
        public: s.mallory.public.clone(),
    };
    assert_eq!(gh.ssh(&impostor, &["web-01", "true"]).code(), 255);
    let out = gh.ssh(&s.dave, &["web-01", "true"]);
    assert_eq!(out.code(), 126, "{}", out.err());
    assert!(
        out.err().starts_with("gatehouse: denied: "),
        "{}",
        out.err()
    );
    assert_eq!(
        s.world.target.accepted_logins(),
        before,
        "the target saw no connection"
    );
}

#[test]
fn forwarding_gets_nothing_through() {
    let s = setup();
    let gh = &s.world.gatehouse;
    // -W: a stdio forward to the target's sshd.
    let out = run(
        gh.ssh_command(
            &s.alice,
            &["-W", &format!("127.0.0.1:{}", s.world.target.port)],
            &[],
        ),
        b"",
        Duration::from_secs(30),
    );
    assert_ne!(out.code(), 0);
    assert!(
        !out.out().contains("SSH-2.0"),
        "no banner came through: {}",
        out.out()
    );

    // -L: a local forward while a session runs; connecting to it yields no target banner.
    let local = free_port();
    let mut child = gh
        .ssh_command(
            &s.alice,
            &[
                "-L",
                &format!("127.0.0.1:{local}:127.0.0.1:{}", s.world.target.port),
            ],
            &["web-01", "sleep", "5"],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(local, Duration::from_secs(10));
    let mut conn = TcpStream::connect(("127.0.0.1", local)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let _ = conn.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("SSH-2.0"),
        "the forward reached the target"
    );
    let _ = child.kill();
    let _ = child.wait();

    // -R: a remote forward is refused; with ExitOnForwardFailure the client gives up.
    let out = run(
        gh.ssh_command(
            &s.alice,
            &[
                "-o",
                "ExitOnForwardFailure=yes",
                "-R",
                "127.0.0.1:0:127.0.0.1:22",
            ],
            &["web-01", "echo", "ran"],
        ),
        b"",
        Duration::from_secs(30),
    );
    assert!(!out.out().contains("ran"), "{}", out.out());

    // -A: with an agent holding alice's key, the target still sees no agent.
    let agent_sock = s.world.tmp.path().join("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&agent_sock)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if agent_sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let added = std::process::Command::new("ssh-add")
        .arg(&s.alice.key)
        .env("SSH_AUTH_SOCK", &agent_sock)
        .output()
        .unwrap();
    assert!(added.status.success());
    let mut cmd = gh.ssh_command(&s.alice, &["-A"], &["web-01", "echo \"[$SSH_AUTH_SOCK]\""]);
    cmd.env("SSH_AUTH_SOCK", &agent_sock);
    let out = run(cmd, b"", Duration::from_secs(30));
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(out.out(), "[]\n");
}

#[test]
fn subsystems_are_refused() {
    let s = setup();
    let out = run(
        s.world.gatehouse.ssh_command(&s.alice, &["-s"], &["sftp"]),
        b"",
        Duration::from_secs(30),
    );
    assert_ne!(out.code(), 0);
}

#[test]
fn the_certificate_never_touches_the_disk_and_the_ca_key_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup();
    let gh = &s.world.gatehouse;
    assert_eq!(gh.ssh(&s.alice, &["web-01", "true"]).code(), 0);
    let ca_key = gh.dir.join("data/keys/user_ca");
    assert_eq!(
        std::fs::metadata(&ca_key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Nothing under the bastion's directory holds a certificate or a session key.
    let mut stack = vec![gh.dir.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("cert-v01@openssh.com"),
                "{} holds a certificate",
                path.display()
            );
        }
    }
    let keys: Vec<_> = std::fs::read_dir(gh.dir.join("data/keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(keys.len(), 2, "only the CA and host keys: {keys:?}");
}

#[test]
fn env_requests_pass_only_locales() {
    let s = setup();
    let mut cmd = s.world.gatehouse.ssh_command(
        &s.alice,
        &["-o", "SendEnv=LANG LC_ALL EVIL"],
        &["web-01", "echo \"$LANG|$LC_ALL|$EVIL\""],
    );
    cmd.env("LANG", "C.UTF-8")
        .env("LC_ALL", "C; reboot")
        .env("EVIL", "x");
    let out = run(cmd, b"", Duration::from_secs(30));
    assert_eq!(out.out(), "C.UTF-8||\n");
}

#[test]
fn an_exit_signal_is_passed_through() {
    let s = setup();
    let out = run(
        s.world
            .gatehouse
            .ssh_command(&s.alice, &["-v"], &["web-01", "kill -TERM $$"]),
        b"",
        Duration::from_secs(30),
    );
    // OpenSSH reports a remote signal in its debug output and exits 255.
    assert!(out.err().contains("exit-signal"), "{}", out.err());
    assert_eq!(out.code(), 255);
}

#[test]
fn window_changes_reach_the_target_and_the_recording() {
    let s = setup();
    let gh = &s.world.gatehouse;
    // A real terminal on the client side, resized in the middle of the session.
    let ssh = gh.ssh_command(&s.alice, &["-t"], &["web-01"]);
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/pty_session.py"
    ))
    .arg("send:stty size\\n;;until:24 80;;size:40x100;;send:stty size\\n;;until:40 100;;send:exit\\n")
    .arg("--")
    .arg(ssh.get_program())
    .args(ssh.get_args());
    let out = run(cmd, b"", Duration::from_secs(60));
    let text = out.out();
    assert_eq!(out.code(), 0, "{text}");
    assert!(text.contains("24 80"), "{text}");
    assert!(
        text.contains("40 100"),
        "the resize reached the target: {text}"
    );
    let list = run(
        gh.command(&["sessions", "list", "--json"]),
        b"",
        Duration::from_secs(30),
    );
    let sessions: serde_json::Value = serde_json::from_str(&list.out()).unwrap();
    let path = sessions[0]["recording"].as_str().unwrap().to_owned();
    let cast = gatehouse::recording::read_cast(std::path::Path::new(&path)).unwrap();
    assert!(
        cast.events
            .iter()
            .any(|e| e.kind == gatehouse::recording::EventKind::Resize && e.data == "100x40"),
        "the recording has the resize"
    );
}

#[test]
fn a_target_trusted_through_a_host_ca_is_verified_by_its_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let alice_key = tmp.path().join("alice");
    let alice = Person {
        name: "alice".into(),
        public: keygen(&alice_key, "alice"),
        key: alice_key,
    };
    let host_ca = tmp.path().join("host_ca");
    let host_ca_public = keygen(&host_ca, "host-ca");
    let (mut gh, ca) = Gatehouse::prepare(&tmp.path().join("bastion"), "");
    // The target's host key, certified by the host CA for the name Gatehouse connects to.
    let target_dir = tmp.path().join("target");
    std::fs::create_dir_all(&target_dir).unwrap();
    let host_key = target_dir.join("certified_host_ed25519");
    keygen(&host_key, "target");
    let signed = std::process::Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&host_ca)
        .args([
            "-I",
            "web-01",
            "-h",
            "-n",
            "127.0.0.1,web-01",
            "-V",
            "-5m:+1h",
        ])
        .arg(host_key.with_extension("pub"))
        .status()
        .unwrap();
    assert!(signed.success());
    let cert = target_dir.join("certified_host_ed25519-cert.pub");
    let extra = format!(
        "HostKey {}\nHostCertificate {}",
        host_key.display(),
        cert.display()
    );
    let target = Target::start(&target_dir, &ca, &extra);
    let policy = format!(
        "{}[[target]]\nname = \"web-01\"\naddress = \"127.0.0.1\"\nport = {}\nhost_ca = \"{host_ca_public}\"\n\n\
         [[role]]\nname = \"ops\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"{}\"\napprovals = 0\nshell = \"full\"\n",
        user_toml(&alice, &["sre"]),
        target.port,
        login()
    );
    gh.write_policy("main.toml", &policy);
    gh.start();
    assert_eq!(
        gh.ssh(
            &alice,
            &["request", "web-01", "--for", "1h", "--reason", "ca"]
        )
        .code(),
        0
    );
    let out = gh.ssh(&alice, &["web-01", "echo", "certified"]);
    assert_eq!(out.code(), 0, "{}\n{}", out.err(), gh.log());
    assert_eq!(out.out(), "certified\n");
}
