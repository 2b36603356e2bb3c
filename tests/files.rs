//! File transfer end to end: the real OpenSSH `sftp` and `scp` clients through the bastion to a
//! real `sshd`, under a grant whose role allows reading one tree and writing one directory.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Setup {
    world: World,
    alice: Person,
    bob: Person,
    /// The target's files (a real directory, symlinks resolved).
    data: PathBuf,
    /// Where the client keeps its files.
    local: PathBuf,
}

const LOG: &str = "GET /index.html 200\nGET /favicon.ico 404\n";

/// alice (sre) may hold `logs` on web-01: read `DATA/var/log/nginx/**`, write
/// `DATA/srv/upload/*`, with hashes; bob (leads) approves.
fn setup() -> Setup {
    // Targets serve SFTP as a subsystem, as every distribution's sshd_config does; the
    // session's certificate forces it to be sshd's internal SFTP server.
    let (mut world, mut people) = World::with_target_config(&["alice", "bob"], "", |_| {
        "Subsystem sftp /usr/lib/openssh/sftp-server".into()
    });
    let bob = people.pop().unwrap();
    let alice = people.pop().unwrap();
    let data = world.tmp.path().join("data");
    for dir in ["var/log/nginx/old", "srv/upload", "etc"] {
        std::fs::create_dir_all(data.join(dir)).unwrap();
    }
    let data = data.canonicalize().unwrap();
    std::fs::write(data.join("var/log/nginx/access.log"), LOG.repeat(500)).unwrap();
    std::fs::write(data.join("etc/secret"), "the keys to everything\n").unwrap();
    // A link out of the allowed tree, and one that stays inside it.
    std::os::unix::fs::symlink(data.join("etc/secret"), data.join("var/log/nginx/evil")).unwrap();
    std::os::unix::fs::symlink("access.log", data.join("var/log/nginx/current")).unwrap();
    let local = world.tmp.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let policy = format!(
        "{}{}{}[[role]]\nname = \"logs\"\nmembers = [\"sre\"]\ntargets = [\"web-*\"]\nlogin = \"{}\"\n\
         approvals = 1\napprovers = [\"leads\"]\n\
         files = {{ read = [\"{d}/var/log/nginx/**\"], write = [\"{d}/srv/upload/*\"], hash = true }}\n",
        user_toml(&alice, &["sre"]),
        user_toml(&bob, &["leads"]),
        world.target_toml("web-01"),
        login(),
        d = data.display(),
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    Setup {
        world,
        alice,
        bob,
        data,
        local,
    }
}

impl Setup {
    fn gh(&self) -> &Gatehouse {
        &self.world.gatehouse
    }

    /// A grant of `logs` on web-01 for alice, approved by bob.
    fn grant(&self) -> i64 {
        let out = self.gh().ssh(
            &self.alice,
            &[
                "request", "web-01", "--role", "logs", "--for", "1h", "--reason", "copy", "logs",
            ],
        );
        assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
        let id: i64 = out
            .out()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let ok = self.gh().ssh(&self.bob, &["approve", &id.to_string()]);
        assert_eq!(ok.code(), 0, "{}", ok.err());
        id
    }

    /// `/web-01` followed by the path of `rel` on the target.
    fn remote(&self, rel: &str) -> String {
        format!("/web-01{}/{rel}", self.data.display())
    }

    /// The options every OpenSSH client here takes.
    fn options(&self, cmd: &mut Command) {
        let gh = self.gh();
        cmd.args(["-F", "/dev/null", "-i"])
            .arg(&self.alice.key)
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", gh.known_hosts.display()));
    }

    /// `sftp -b -` as alice with `batch` on stdin.
    fn sftp_command(&self) -> Command {
        let mut cmd = Command::new("sftp");
        cmd.args(["-P", &self.gh().port.to_string()]);
        self.options(&mut cmd);
        cmd.args(["-b", "-", "alice@127.0.0.1"]);
        cmd
    }

    fn sftp(&self, batch: &str) -> Output {
        run(
            self.sftp_command(),
            batch.as_bytes(),
            Duration::from_secs(120),
        )
    }

    /// `scp` as alice with `args`.
    fn scp(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("scp");
        cmd.args(["-P", &self.gh().port.to_string()]);
        self.options(&mut cmd);
        cmd.args(args);
        run(cmd, b"", Duration::from_secs(120))
    }

    /// Alice's file sessions in the index, newest first.
    fn file_sessions(&self) -> Vec<serde_json::Value> {
        let out = run(
            self.gh()
                .command(&["sessions", "list", "--user", "alice", "--json"]),
            b"",
            Duration::from_secs(30),
        );
        assert_eq!(out.code(), 0, "{}", out.err());
        let all: Vec<serde_json::Value> = serde_json::from_str(&out.out()).unwrap();
        all.into_iter().filter(|s| s["kind"] == "files").collect()
    }

    /// `gatehouse sessions show ID`, once the session has its end in the index.
    fn show(&self, id: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = run(
                self.gh().command(&["sessions", "show", id]),
                b"",
                Duration::from_secs(30),
            );
            assert_eq!(out.code(), 0, "{}", out.err());
            if !out.out().contains("(no end recorded)") || Instant::now() > deadline {
                return out.out();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn sha256_file(path: &Path) -> String {
    sha256_hex(&std::fs::read(path).unwrap())
}

#[test]
fn an_allowed_log_comes_down_and_an_upload_goes_into_the_allowed_directory() {
    let s = setup();
    s.grant();
    let upload = s.local.join("report.txt");
    std::fs::write(&upload, "uploaded through the bastion\n".repeat(1000)).unwrap();
    let log = s.data.join("var/log/nginx/access.log");
    let batch = format!(
        "ls /\nget {} {}\nput {} {}\n",
        s.remote("var/log/nginx/access.log"),
        s.local.join("access.log").display(),
        upload.display(),
        s.remote("srv/upload/report.txt"),
    );
    let out = s.sftp(&batch);
    assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
    assert!(
        out.out().contains("web-01"),
        "the root lists the target: {}",
        out.out()
    );
    assert_eq!(
        std::fs::read(s.local.join("access.log")).unwrap(),
        std::fs::read(&log).unwrap()
    );
    assert_eq!(
        std::fs::read(s.data.join("srv/upload/report.txt")).unwrap(),
        std::fs::read(&upload).unwrap()
    );

    // scp speaks SFTP too, both ways.
    let copied = s.local.join("by-scp.log");
    let source = format!("alice@127.0.0.1:{}", s.remote("var/log/nginx/access.log"));
    let out = s.scp(&[&source, copied.to_str().unwrap()]);
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(
        std::fs::read(&copied).unwrap(),
        std::fs::read(&log).unwrap()
    );
    let dest = format!("alice@127.0.0.1:{}", s.remote("srv/upload/by-scp.txt"));
    let out = s.scp(&[upload.to_str().unwrap(), &dest]);
    assert_eq!(out.code(), 0, "{}", out.err());
    assert!(s.data.join("srv/upload/by-scp.txt").exists());

    // The transcript: each transfer with its path, bytes, result and hash.
    let sessions = s.file_sessions();
    assert_eq!(sessions.len(), 3, "one per sftp and scp run: {sessions:?}");
    let first = sessions.last().unwrap()["id"].as_str().unwrap().to_owned();
    let shown = s.show(&first);
    let log_len = std::fs::metadata(&log).unwrap().len();
    let read_line = shown
        .lines()
        .find(|l| l.contains(" read ") && l.contains("access.log"))
        .unwrap_or_else(|| panic!("no read in {shown}"));
    assert!(read_line.contains(" ok "), "{read_line}");
    assert!(
        read_line.contains(&format!("{log_len} bytes")),
        "{read_line}"
    );
    assert!(read_line.contains(&sha256_file(&log)), "{read_line}");
    let write_line = shown
        .lines()
        .find(|l| l.contains(" write ") && l.contains("report.txt"))
        .unwrap_or_else(|| panic!("no write in {shown}"));
    assert!(write_line.contains(&sha256_file(&upload)), "{write_line}");
    assert!(shown.contains("kind         files"), "{shown}");
    assert!(
        shown.contains(&format!(
            "bytes        {} in, {log_len} out",
            std::fs::metadata(&upload).unwrap().len()
        )),
        "{shown}"
    );

    // Searchable by path, and in the audit log line by line.
    let search = |text: &str| {
        let found = run(
            s.gh().command(&["sessions", "search", text, "--json"]),
            b"",
            Duration::from_secs(30),
        );
        let hits: Vec<serde_json::Value> = serde_json::from_str(&found.out()).unwrap_or_default();
        hits.len()
    };
    assert_eq!(
        search("nginx/access.log"),
        2,
        "the sftp get and the scp download"
    );
    assert_eq!(search("upload/report.txt"), 1);
    assert_eq!(search("upload/nothing-like-this"), 0);
    let audit = std::fs::read_to_string(s.gh().dir.join("data/audit.jsonl")).unwrap();
    let ops: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["event"] == "file.op")
        .collect();
    assert!(
        ops.iter().any(|l| l["detail"]["op"] == "read"
            && l["detail"]["bytes"] == log_len
            && l["detail"]["result"] == "ok"),
        "{ops:?}"
    );
}

#[test]
fn refusals_are_sftp_errors_with_reasons_and_the_session_goes_on() {
    let s = setup();
    s.grant();
    let local = |name: &str| s.local.join(name).display().to_string();
    std::fs::write(s.local.join("x"), "x").unwrap();
    let batch = [
        format!("-get {} {}", s.remote("etc/secret"), local("outside")),
        format!(
            "-get {} {}",
            s.remote("var/log/nginx/../../../etc/secret"),
            local("dotdot")
        ),
        format!("-get /web-01/../../etc/passwd {}", local("above")),
        format!("-get {} {}", s.remote("var/log/nginx/evil"), local("evil")),
        format!("-put {} {}", local("x"), s.remote("var/log/nginx/new.log")),
        format!("-put {} {}", local("x"), s.remote("etc/new")),
        format!(
            "-symlink {} {}",
            s.remote("var/log/nginx/access.log"),
            s.remote("srv/upload/link")
        ),
        format!("-rm {}", s.remote("var/log/nginx/access.log")),
        format!("-ls {}", s.remote("etc")),
        // Still open: an allowed read through a link that stays inside the tree.
        format!(
            "get {} {}",
            s.remote("var/log/nginx/current"),
            local("current")
        ),
    ]
    .join("\n");
    let out = s.sftp(&batch);
    assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
    assert_eq!(
        std::fs::read_to_string(s.local.join("current")).unwrap(),
        LOG.repeat(500)
    );
    for name in ["outside", "dotdot", "above", "evil"] {
        assert!(!s.local.join(name).exists(), "{name} came down");
    }
    assert!(!s.data.join("var/log/nginx/new.log").exists());
    assert!(!s.data.join("etc/new").exists());
    assert!(std::fs::symlink_metadata(s.data.join("srv/upload/link")).is_err());
    assert!(s.data.join("var/log/nginx/access.log").exists());
    let err = out.err();
    let denials = err
        .lines()
        .filter(|l| l.starts_with("gatehouse: denied:"))
        .count();
    assert!(denials >= 8, "{err}");
    assert!(err.contains("is not allowed by role logs"), "{err}");
    assert!(
        err.contains("resolves to it on the target"),
        "the symlink: {err}"
    );
    assert!(err.contains("climbs above the root"), "{err}");
    assert!(err.contains("creating links is not allowed"), "{err}");

    // Each refusal is in the transcript, with what it resolved to.
    let session = s.file_sessions()[0]["id"].as_str().unwrap().to_owned();
    let shown = s.show(&session);
    let secret = s.data.join("etc/secret").display().to_string();
    let refused: Vec<&str> = shown.lines().filter(|l| l.contains("denied:")).collect();
    assert!(refused.len() >= 7, "{shown}");
    assert!(
        refused.iter().filter(|l| l.contains(&secret)).count() >= 3,
        "outside, .. and the link all checked as the secret: {shown}"
    );
}

#[test]
fn the_legacy_scp_protocol_is_refused_with_what_to_use_instead() {
    let s = setup();
    s.grant();
    let source = format!("alice@127.0.0.1:{}", s.remote("var/log/nginx/access.log"));
    let dest = s.local.join("legacy.log");
    let out = s.scp(&["-O", &source, dest.to_str().unwrap()]);
    assert_ne!(out.code(), 0);
    assert!(out.err().contains("use scp without -O"), "{}", out.err());
    assert!(!dest.exists());
    // Without a grant, SFTP shows nothing and reads nothing.
    let s = setup();
    let out = s.sftp(&format!(
        "ls /\nget {} {}\n",
        s.remote("var/log/nginx/access.log"),
        s.local.join("no").display()
    ));
    assert_ne!(out.code(), 0);
    let listed = out.out();
    assert!(
        !listed
            .lines()
            .any(|l| !l.starts_with("sftp>") && l.contains("web-01")),
        "{listed}"
    );
    assert!(
        out.err().contains("you hold no active grant"),
        "{}",
        out.err()
    );
}

#[test]
fn a_revoke_ends_a_large_download_within_a_second() {
    let s = setup();
    let id = s.grant();
    let big = s.data.join("var/log/nginx/big.log");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let dest = s.local.join("big.log");
    let mut sftp = s
        .sftp_command()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = sftp.stdin.take().unwrap();
        writeln!(
            stdin,
            "get {} {}",
            s.remote("var/log/nginx/big.log"),
            dest.display()
        )
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0) < 8 << 20 {
        assert!(Instant::now() < deadline, "the download did not start");
        assert!(sftp.try_wait().unwrap().is_none(), "sftp ended early");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = s
        .gh()
        .ssh(&s.bob, &["revoke", &id.to_string(), "--reason", "enough"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    let revoked = Instant::now();
    let status = loop {
        if let Some(status) = sftp.try_wait().unwrap() {
            break status;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(10),
            "sftp still running"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = revoked.elapsed();
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert!(!status.success());
    let mut err = String::new();
    sftp.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains(&format!("grant {id} was revoked by bob")),
        "{err}"
    );
    let got = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
    assert!(got < 1 << 30, "the whole file came down");
    let session = s.file_sessions()[0]["id"].as_str().unwrap().to_owned();
    let shown = s.show(&session);
    assert!(
        shown.lines().any(|l| l.contains(" read ")
            && l.contains("interrupted: grant")
            && l.contains("big.log")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("grant {id} was revoked by bob")),
        "{shown}"
    );
    eprintln!("the download ended {took:?} after the revoke, {got} bytes in");
}
