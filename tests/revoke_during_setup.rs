//! A grant revoked while its session is being set up: the target runs nothing.
//!
//! The target sits behind a deliberately slow TCP proxy (`common::slow_proxy`) that delays
//! everything the target's sshd sends and holds its k-th chunk of the session's connection. While
//! that chunk is held the bastion is stopped at a definite step of the setup (key exchange,
//! login, channel, pty); the test revokes the grant with the operator CLI (another process, so
//! the bastion only learns of it from the store), lets the chunk go, and checks that the target
//! started nothing: no `Starting session` in its sshd log, and the command's marker file absent.
//! It does this for k = 1, 2, 3, … until the held chunk comes after the shell or exec request
//! reached the target (the target's log says so), which is where setup ends; so every step of
//! the setup is covered, before and after the login, for exec sessions, interactive shells,
//! restricted-shell lines and break-glass sessions alike.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::slow_proxy::SlowProxy;
use common::*;

/// What kind of session is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `ssh bastion web-01:runner touch MARKER` (a `none` role with a rule).
    Exec,
    /// `ssh -tt bastion web-01:admin`, typing `touch MARKER` (a `full` role).
    Shell,
    /// `ssh -tt bastion web-01:lines`, typing `touch MARKER` at the restricted prompt.
    ShellLine,
    /// `ssh bastion breakglass web-01 --reason … -- touch MARKER`.
    BreakGlass,
}

struct Setup {
    world: World,
    alice: Person,
    proxy: SlowProxy,
}

fn setup() -> Setup {
    let (mut world, mut people) = World::new(
        &["alice"],
        "[upstream]\nprewarm = false\n[breakglass]\nmax_uses = 100\n",
    );
    let alice = people.pop().unwrap();
    let proxy = SlowProxy::start(world.target.port, Duration::from_millis(40));
    let role = |name: &str, extra: &str| {
        format!(
            "[[role]]\nname = \"{name}\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"{}\"\n{extra}\n",
            login()
        )
    };
    let policy = format!(
        "{}[[target]]\nname = \"web-01\"\naddress = \"127.0.0.1\"\nport = {}\nhost_keys = [\"{}\"]\n\n{}{}{}{}",
        user_toml(&alice, &["sre"]),
        proxy.port,
        world.target.host_key,
        role(
            "runner",
            "approvals = 0\nshell = \"none\"\ncommands = [\"touch *\"]"
        ),
        role("admin", "approvals = 0\nshell = \"full\""),
        role(
            "lines",
            "approvals = 0\nshell = \"restricted\"\ncommands = [\"touch *\"]"
        ),
        role(
            "glass",
            "break_glass = true\nshell = \"full\"\nmax_duration = \"30m\""
        ),
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    Setup {
        world,
        alice,
        proxy,
    }
}

impl Setup {
    /// A fresh self-service grant of `role` for alice; its id.
    fn grant(&self, role: &str) -> i64 {
        let out = self.world.gatehouse.ssh(
            &self.alice,
            &[
                "request", "web-01", "--role", role, "--for", "1h", "--reason", "setup", "race",
            ],
        );
        assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
        out.out()
            .split_whitespace()
            .nth(1)
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no grant id in {:?}", out.out()))
    }

    /// The id of alice's active break-glass grant (made by the session being set up).
    fn break_glass_grant(&self) -> i64 {
        let out = run(
            self.world
                .gatehouse
                .command(&["grants", "list", "--user", "alice", "--json"]),
            b"",
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "{}", out.err());
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ids: Vec<i64> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["break_glass"] == true && g["state"] == "active")
            .map(|g| g["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids.len(), 1, "one live break-glass grant: {list}");
        ids[0]
    }

    /// Revokes grant `id` with the operator CLI.
    fn revoke(&self, id: i64) {
        let out = run(
            self.world.gatehouse.command(&[
                "grants",
                "revoke",
                &id.to_string(),
                "--reason",
                "revoked during setup",
            ]),
            b"",
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "revoke {id}: {}", out.err());
    }

    /// Sessions the target has started (shell or command), from its sshd log.
    fn started(&self) -> usize {
        self.world.target.log().matches("Starting session:").count()
    }

    /// The ssh command and its input for `kind`, touching `marker` on the target.
    fn session(&self, kind: Kind, marker: &std::path::Path) -> (std::process::Command, Vec<u8>) {
        let gh = &self.world.gatehouse;
        let touch = format!("touch {}", marker.display());
        match kind {
            Kind::Exec => (
                gh.ssh_command(&self.alice, &[], &["web-01:runner", &touch]),
                Vec::new(),
            ),
            Kind::Shell => (
                gh.ssh_command(&self.alice, &["-tt"], &["web-01:admin"]),
                format!("{touch}\rexit\r").into_bytes(),
            ),
            Kind::ShellLine => (
                gh.ssh_command(&self.alice, &["-tt"], &["web-01:lines"]),
                format!("{touch}\r").into_bytes(),
            ),
            Kind::BreakGlass => (
                gh.ssh_command(
                    &self.alice,
                    &[],
                    &[
                        "breakglass",
                        "web-01",
                        "--reason",
                        "primary down, INC-4412",
                        "--",
                        &touch,
                    ],
                ),
                Vec::new(),
            ),
        }
    }
}

/// Revokes the session's grant while the k-th chunk from the target is held, for every k
/// until setup is over, and checks each time that the target started nothing.
fn revoke_at_every_moment_of_setup(kind: Kind) {
    let s = setup();
    let mut moments = 0;
    let mut after_login = 0;
    for k in 1..=60 {
        let marker: PathBuf = s.world.tmp.path().join(format!("ran-{kind:?}-{k}"));
        let grant = match kind {
            Kind::Exec => Some(s.grant("runner")),
            Kind::Shell => Some(s.grant("admin")),
            Kind::ShellLine => Some(s.grant("lines")),
            Kind::BreakGlass => None,
        };
        let started = s.started();
        let logins = s.world.target.accepted_logins();
        s.proxy.hold_chunk_of_next_connection(k);
        let (cmd, input) = s.session(kind, &marker);
        let client = std::thread::spawn(move || run(cmd, &input, Duration::from_secs(90)));
        assert!(
            s.proxy.wait_holding(Duration::from_secs(60)),
            "{kind:?}, moment {k}: the target's chunk {k} never came"
        );
        // The target logs `Starting session` before it answers the request that started it,
        // so a held answer to it is already in the log; anything the bastion sent just before
        // the hold gets a moment to reach the log too.
        s.proxy.wait_client_quiet(Duration::from_millis(300));
        let settle = std::time::Instant::now() + Duration::from_millis(700);
        while s.started() == started && std::time::Instant::now() < settle {
            std::thread::sleep(Duration::from_millis(20));
        }
        if s.started() > started {
            // The shell or exec request reached the target before its k-th chunk: the setup
            // is over, and every moment of it has been tried.
            s.proxy.release();
            let out = client.join().unwrap();
            assert_eq!(out.code(), 0, "{kind:?}: {}{}", out.out(), out.err());
            break;
        }
        let id = grant.unwrap_or_else(|| s.break_glass_grant());
        s.revoke(id);
        s.proxy.release();
        let out = client.join().unwrap();
        let text = format!("{}{}", out.out(), out.err());
        assert_eq!(out.code(), 126, "{kind:?}, moment {k}: {text}");
        assert!(
            text.contains(&format!("grant {id} was revoked")),
            "{kind:?}, moment {k}: {text}"
        );
        assert_eq!(
            s.started(),
            started,
            "{kind:?}, moment {k}: the target started something:\n{}",
            s.world.target.log()
        );
        assert!(!marker.exists(), "{kind:?}, moment {k}: the command ran");
        moments += 1;
        if s.world.target.accepted_logins() > logins {
            after_login += 1;
        }
    }
    assert!(
        moments >= 4,
        "{kind:?}: only {moments} moments of setup were tried"
    );
    assert!(
        after_login >= 1 && after_login < moments,
        "{kind:?}: revokes both before and after the login on the target ({after_login} of {moments} after)"
    );
    eprintln!("{kind:?}: revoked at {moments} moments of setup, {after_login} after the login");
}

#[test]
fn a_revoke_during_exec_setup_runs_nothing_on_the_target() {
    revoke_at_every_moment_of_setup(Kind::Exec);
}

#[test]
fn a_revoke_during_shell_setup_starts_no_shell() {
    revoke_at_every_moment_of_setup(Kind::Shell);
}

#[test]
fn a_revoke_while_a_restricted_shell_line_is_dialled_runs_nothing() {
    revoke_at_every_moment_of_setup(Kind::ShellLine);
}

#[test]
fn a_revoke_during_break_glass_setup_runs_nothing() {
    revoke_at_every_moment_of_setup(Kind::BreakGlass);
}

/// Runs one SQL statement on the bastion's database from another process.
fn sql(s: &Setup, statement: &str) {
    let db = s.world.gatehouse.dir.join("data/gatehouse.db");
    let out = run(
        {
            let mut cmd = std::process::Command::new("python3");
            cmd.args([
                "-c",
                "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=10); c.execute(sys.argv[2]); c.commit()",
            ])
            .arg(&db)
            .arg(statement);
            cmd
        },
        b"",
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{statement}: {}", out.err());
}

#[test]
fn a_grant_that_cannot_be_read_during_setup_is_a_denial() {
    let s = setup();
    for k in [1, 6] {
        let marker = s.world.tmp.path().join(format!("ran-unreadable-{k}"));
        s.grant("runner");
        let started = s.started();
        s.proxy.hold_chunk_of_next_connection(k);
        let (cmd, input) = s.session(Kind::Exec, &marker);
        let client = std::thread::spawn(move || run(cmd, &input, Duration::from_secs(90)));
        assert!(s.proxy.wait_holding(Duration::from_secs(60)));
        // A store fault while the session is being set up: the grants table is gone.
        sql(&s, "ALTER TABLE grants RENAME TO grants_away");
        s.proxy.release();
        let out = client.join().unwrap();
        sql(&s, "ALTER TABLE grants_away RENAME TO grants");
        assert_eq!(out.code(), 126, "moment {k}: {}", out.err());
        assert!(
            out.err().starts_with(
                "gatehouse: denied: store unavailable: the grant cannot be checked now"
            ),
            "moment {k}: {}",
            out.err()
        );
        assert_eq!(s.started(), started, "moment {k}: {}", s.world.target.log());
        assert!(!marker.exists());
    }
    // Once the store answers again, so does the bastion.
    let marker = s.world.tmp.path().join("ran-after");
    let (cmd, input) = s.session(Kind::Exec, &marker);
    let out = run(cmd, &input, Duration::from_secs(60));
    assert_eq!(out.code(), 0, "{}", out.err());
    assert!(marker.exists());
}
