//! Fault injection against a running bastion: its database and its audit log on small tmpfs
//! mounts that fill up, files made immutable or deleted under it, and a lock held on the
//! database by another process. Each case shows that the bastion does not wedge and does not
//! crash (same process, still alive), fails closed while the fault lasts (new sessions exit 126
//! with the reason; verbs fail with a clear error), recovers by itself once the fault is gone
//! (the next session works without a restart), and loses nothing: every session in the index
//! has its end and its recording's hash, and the audit log verifies with the expected lines.
//!
//! **Needs root**: it mounts tmpfs file systems and sets the immutable attribute (`chattr`).
//! CI runs as root. Without root these tests fail, on purpose, rather than skip.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// A tmpfs of a fixed size mounted for one test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, kib: u64) -> Tmpfs {
        assert_root();
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kib}k,mode=0750"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "mount -t tmpfs {} failed", path.display());
        Tmpfs {
            path: path.to_owned(),
        }
    }

    /// Fills the file system to the last byte; returns the filler, whose removal frees it.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0x55u8; 4096];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "filling: {e}");
                    break;
                }
            }
        }
        // Whatever is left is smaller than a page.
        while file.write(&[0x55]).is_ok_and(|n| n == 1) {}
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn assert_root() {
    let out = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "these fault-injection tests need root (tmpfs mounts, chattr); run them as root"
    );
}

fn chattr(flag: &str, path: &Path) {
    let status = Command::new("chattr").arg(flag).arg(path).status().unwrap();
    assert!(status.success(), "chattr {flag} {} failed", path.display());
}

/// A webhook receiver on loopback that keeps every body it gets.
struct Hook {
    port: u16,
    got: Arc<Mutex<Vec<String>>>,
}

impl Hook {
    fn start() -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let keep = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                keep.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Hook { port, got }
    }

    /// Waits for an alert whose body contains every one of `needles`.
    fn wait_for(&self, needles: &[&str], limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(body) = self
                .got
                .lock()
                .unwrap()
                .iter()
                .find(|b| needles.iter().all(|n| b.contains(n)))
            {
                return body.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no alert with {needles:?} within {limit:?}; got {:?}",
                self.got.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A bastion whose database and audit log live on their own small tmpfs mounts.
struct Rig {
    world: World,
    alice: Person,
    hook: Hook,
    db: Tmpfs,
    audit: Tmpfs,
    pid: u32,
    /// Holds the mount points; dropped after the mounts.
    _mounts: tempfile::TempDir,
}

impl Rig {
    fn start(config_extra: &str) -> Rig {
        assert_root();
        let hook = Hook::start();
        let mounts = tempfile::tempdir().unwrap();
        let db = Tmpfs::mount(&mounts.path().join("db"), 2048);
        let audit = Tmpfs::mount(&mounts.path().join("audit"), 1024);
        let config = format!(
            "store = \"sqlite://{}/gatehouse.db\"\naudit_log = \"{}/audit.jsonl\"\n{config_extra}\n\
             [[alerts.webhook]]\nurl = \"http://127.0.0.1:{}/hook\"\n",
            db.path.display(),
            audit.path.display(),
            hook.port
        );
        let (mut world, mut people) = World::new(&["alice"], &config);
        let alice = people.pop().unwrap();
        let policy = format!(
            "{}{}[[role]]\nname = \"ops\"\nmembers = [\"ops\"]\ntargets = [\"web-01\"]\nlogin = \"{}\"\n\
             approvals = 0\nshell = \"full\"\nmax_duration = \"4h\"\n",
            user_toml(&alice, &["ops"]),
            world.target_toml("web-01"),
            login()
        );
        world.gatehouse.write_policy("main.toml", &policy);
        world.gatehouse.start();
        let pid = world.gatehouse.pid();
        let rig = Rig {
            world,
            alice,
            hook,
            db,
            audit,
            pid,
            _mounts: mounts,
        };
        let out = rig.request();
        assert_eq!(out.code(), 0, "request: {}", out.err());
        rig
    }

    fn request(&self) -> Output {
        self.world.gatehouse.ssh(
            &self.alice,
            &[
                "request", "web-01", "--for", "2h", "--reason", "fault", "drill",
            ],
        )
    }

    /// One exec session through the bastion.
    fn session(&self) -> Output {
        self.world
            .gatehouse
            .ssh(&self.alice, &["web-01", "echo", "through"])
    }

    fn assert_session_works(&self) {
        let out = self.session();
        assert_eq!(out.code(), 0, "session: {}", out.err());
        assert_eq!(out.out(), "through\n");
    }

    /// Asserts that a session is refused, exit 126, with `reason` in its one denial line.
    fn assert_session_refused(&self, reason: &str) -> String {
        let out = self.session();
        assert_eq!(out.code(), 126, "session was not refused: {}", out.err());
        let err = out.err();
        assert!(
            err.starts_with("gatehouse: denied:") && err.contains(reason),
            "denial without {reason:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "nothing ran: {}", out.out());
        err
    }

    /// Runs sessions until one is refused for `reason` (a fault is noticed by a write that
    /// hits it or by a probe, whichever comes first), then returns the denial.
    fn wait_until_refused(&self, reason: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let out = self.session();
            if out.code() == 126 && out.err().contains(reason) {
                return out.err();
            }
            assert!(
                out.code() == 0 || out.code() == 126,
                "neither ran nor refused: {} {}",
                out.code(),
                out.err()
            );
            assert!(
                Instant::now() < deadline,
                "no session was refused for {reason:?} within {limit:?}:\n{}",
                self.world.gatehouse.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Waits until sessions work again, without a restart.
    fn wait_until_recovered(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let out = self.session();
            if out.code() == 0 {
                assert_eq!(out.out(), "through\n");
                return;
            }
            assert_eq!(out.code(), 126, "{}", out.err());
            assert!(
                Instant::now() < deadline,
                "the bastion did not recover within {limit:?}: {}\n{}",
                out.err(),
                self.world.gatehouse.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The same process is still running and is not a zombie.
    fn assert_alive(&self) {
        assert_eq!(self.world.gatehouse.pid(), self.pid);
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .unwrap_or_else(|_| panic!("gatehouse (pid {}) is gone", self.pid));
        let state = status
            .lines()
            .find(|l| l.starts_with("State:"))
            .unwrap_or("");
        assert!(
            !state.contains('Z') && !state.contains('X'),
            "gatehouse died: {state}\n{}",
            self.world.gatehouse.log()
        );
    }

    /// Every session in the index has its end and its recording's hash (waiting for writes
    /// that are being retried); returns how many there are.
    fn assert_index_complete(&self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let out = run(
                self.world
                    .gatehouse
                    .command(&["sessions", "list", "--json"]),
                b"",
                Duration::from_secs(30),
            );
            assert_eq!(out.code(), 0, "sessions list: {}", out.err());
            let rows: Vec<serde_json::Value> = serde_json::from_str(&out.out()).unwrap();
            let incomplete: Vec<_> = rows
                .iter()
                .filter(|r| r["ended_at"].is_null() || r["sha256"].is_null())
                .collect();
            if incomplete.is_empty() {
                return rows.len();
            }
            assert!(
                Instant::now() < deadline,
                "sessions without their end or hash: {incomplete:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Stops the bastion (it flushes the audit queue), then verifies the audit log and returns
    /// its lines.
    fn stop_and_verify_audit(&mut self) -> Vec<String> {
        self.world.gatehouse.stop(false);
        let out = run(
            self.world.gatehouse.command(&["audit", "verify"]),
            b"",
            Duration::from_secs(30),
        );
        assert_eq!(out.code(), 0, "audit verify: {} {}", out.out(), out.err());
        std::fs::read_to_string(self.audit.path.join("audit.jsonl"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Position of the first line containing every needle, after `from`.
fn find_line(lines: &[String], from: usize, needles: &[&str]) -> Option<usize> {
    lines
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, l)| needles.iter().all(|n| l.contains(n)))
        .map(|(i, _)| i)
}

#[test]
fn a_full_database_disk_refuses_sessions_and_recovers_without_a_restart() {
    let mut rig = Rig::start("");
    rig.assert_session_works();
    let filler = rig.db.fill();

    // The first write that needs room fails; sessions are refused from then on.
    rig.wait_until_refused("store unavailable", Duration::from_secs(60));
    for _ in 0..3 {
        rig.assert_session_refused("store unavailable");
    }
    let verb = rig.request();
    assert_eq!(verb.code(), 1, "a verb that writes fails: {}", verb.err());
    assert!(verb.err().contains("store"), "{}", verb.err());
    rig.hook.wait_for(
        &["bastion.degraded", "store unavailable"],
        Duration::from_secs(20),
    );
    rig.assert_alive();

    std::fs::remove_file(&filler).unwrap();
    rig.wait_until_recovered(Duration::from_secs(20));
    rig.hook
        .wait_for(&["bastion.recovered"], Duration::from_secs(20));
    // No wedge: transactions on the writer work again.
    let verb = rig.request();
    assert_eq!(verb.code(), 0, "request after recovery: {}", verb.err());
    rig.assert_session_works();
    rig.assert_alive();
    assert!(rig.assert_index_complete(Duration::from_secs(30)) >= 3);
    let lines = rig.stop_and_verify_audit();
    let degraded = find_line(&lines, 0, &["bastion.degraded", "store unavailable"])
        .expect("the fault is in the audit log");
    find_line(&lines, degraded, &["bastion.recovered"]).expect("and the recovery after it");
}

#[test]
fn a_full_audit_disk_refuses_sessions_holds_the_lines_and_recovers() {
    let mut rig = Rig::start("");
    rig.assert_session_works();
    let filler = rig.audit.fill();

    let first = rig.wait_until_refused("audit log unavailable", Duration::from_secs(30));
    assert!(first.contains("No space left"), "{first}");
    for _ in 0..3 {
        rig.assert_session_refused("audit log unavailable");
    }
    rig.hook.wait_for(
        &["bastion.degraded", "audit log unavailable"],
        Duration::from_secs(20),
    );
    rig.assert_alive();

    std::fs::remove_file(&filler).unwrap();
    rig.wait_until_recovered(Duration::from_secs(20));
    rig.hook
        .wait_for(&["bastion.recovered"], Duration::from_secs(20));
    rig.assert_alive();
    rig.assert_index_complete(Duration::from_secs(30));

    // Every line emitted while the disk was full was written, in order, once it had room.
    let lines = rig.stop_and_verify_audit();
    let degraded =
        find_line(&lines, 0, &["bastion.degraded", "audit log unavailable"]).expect("fault");
    let denials = lines
        .iter()
        .skip(degraded)
        .filter(|l| l.contains("session.denied") && l.contains("audit log unavailable"))
        .count();
    assert!(
        denials >= 4,
        "each refused session is in the log: {denials}"
    );
    let recovered = find_line(&lines, degraded, &["bastion.recovered"]).expect("recovery");
    find_line(&lines, recovered, &["session.started"]).expect("a session after recovery");
}

#[test]
fn immutable_files_refuse_sessions_until_the_attribute_is_removed() {
    let mut rig = Rig::start("");
    rig.assert_session_works();

    // The database's write-ahead log, where every write goes first.
    let wal = rig.db.path.join("gatehouse.db-wal");
    chattr("+i", &wal);
    let denial = rig.wait_until_refused("store unavailable", Duration::from_secs(30));
    assert!(denial.contains("Operation not permitted"), "{denial}");
    // Open connections still write through their descriptors, so a verb may succeed; what
    // matters is that it answers, and that nothing wedges.
    let verb = rig.request();
    assert!(
        verb.code() == 0 || verb.err().contains("store"),
        "{}",
        verb.err()
    );
    rig.assert_alive();
    chattr("-i", &wal);
    rig.wait_until_recovered(Duration::from_secs(20));
    assert_eq!(rig.request().code(), 0, "no wedge after the failed writes");

    // The audit log.
    let log = rig.audit.path.join("audit.jsonl");
    chattr("+i", &log);
    rig.wait_until_refused("audit log unavailable", Duration::from_secs(30));
    rig.assert_session_refused("audit log unavailable");
    rig.assert_alive();
    chattr("-i", &log);
    rig.wait_until_recovered(Duration::from_secs(20));
    rig.assert_alive();
    rig.assert_index_complete(Duration::from_secs(30));
    let lines = rig.stop_and_verify_audit();
    let degraded =
        find_line(&lines, 0, &["bastion.degraded", "audit log unavailable"]).expect("fault");
    find_line(&lines, degraded, &["bastion.recovered"]).expect("recovery");
}

#[test]
fn a_lock_held_by_another_process_refuses_sessions_and_session_ends_still_land() {
    let rig = Rig::start("");
    rig.assert_session_works();

    // A session that is running when the lock is taken and ends while it is held.
    let long = rig
        .world
        .gatehouse
        .ssh_command(&rig.alice, &[], &["web-01", "sleep 3; echo finished"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));

    // Another process holds the write lock (python3's sqlite3 module, BEGIN EXCLUSIVE).
    let db = rig.db.path.join("gatehouse.db");
    let mut holder = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             sys.stdin.read()\n\
             c.execute('ROLLBACK')\n",
        )
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(holder.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");

    let denial = rig.wait_until_refused("store unavailable", Duration::from_secs(60));
    assert!(denial.contains("locked"), "{denial}");
    let out = long.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "finished\n");
    // Its end could not be written while the lock is held; keep it held past a few tries.
    std::thread::sleep(Duration::from_secs(6));
    rig.assert_alive();

    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    rig.wait_until_recovered(Duration::from_secs(30));
    rig.hook.wait_for(
        &["bastion.degraded", "store unavailable"],
        Duration::from_secs(20),
    );
    let sessions = rig.assert_index_complete(Duration::from_secs(30));
    assert!(sessions >= 3, "{sessions}");
    rig.assert_alive();
}

#[test]
fn a_database_deleted_under_the_bastion_is_noticed_and_refuses_sessions() {
    let rig = Rig::start("");
    rig.assert_session_works();
    std::fs::remove_file(rig.db.path.join("gatehouse.db")).unwrap();
    let denial = rig.wait_until_refused("store unavailable", Duration::from_secs(10));
    assert!(denial.contains("was deleted"), "{denial}");
    rig.assert_session_refused("was deleted");
    rig.hook.wait_for(
        &["bastion.degraded", "was deleted"],
        Duration::from_secs(20),
    );
    rig.assert_alive();
}

#[test]
fn an_audit_log_deleted_under_the_bastion_holds_its_lines_until_reanchored() {
    let mut rig = Rig::start("");
    rig.assert_session_works();
    let log = rig.audit.path.join("audit.jsonl");
    std::fs::remove_file(&log).unwrap();
    let denial = rig.wait_until_refused("audit log unavailable", Duration::from_secs(10));
    assert!(denial.contains("was deleted"), "{denial}");
    rig.hook.wait_for(
        &["bastion.degraded", "audit log unavailable"],
        Duration::from_secs(20),
    );
    assert!(
        !log.exists(),
        "a deleted audit log is not recreated silently"
    );
    rig.assert_alive();

    // The operator's explicit step: a new log that records the gap.
    let out = run(
        rig.world.gatehouse.command(&[
            "audit",
            "reanchor",
            "--reason",
            "audit log deleted during a fault drill",
        ]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(out.code(), 0, "reanchor: {}", out.err());
    rig.wait_until_recovered(Duration::from_secs(20));
    rig.assert_alive();
    rig.assert_index_complete(Duration::from_secs(30));
    let lines = rig.stop_and_verify_audit();
    assert!(lines[0].contains("audit.reanchored"), "{}", lines[0]);
    // The lines emitted while there was no log follow it.
    let denied = find_line(&lines, 1, &["session.denied", "audit log unavailable"])
        .expect("the refused session is in the new log");
    find_line(&lines, denied, &["bastion.recovered"]).expect("and the recovery");
}

#[test]
fn with_on_failure_allow_a_full_audit_disk_lets_sessions_run_and_loses_no_line() {
    let mut rig = Rig::start("[audit]\non_failure = \"allow\"\n");
    rig.assert_session_works();
    let filler = rig.audit.fill();
    for _ in 0..3 {
        rig.assert_session_works();
    }
    assert!(
        rig.world.gatehouse.log().contains("AUDIT LOG WRITE FAILED"),
        "each failure is logged"
    );
    rig.assert_alive();
    std::fs::remove_file(&filler).unwrap();
    rig.assert_session_works();
    rig.assert_index_complete(Duration::from_secs(30));
    let lines = rig.stop_and_verify_audit();
    let ended = lines.iter().filter(|l| l.contains("session.ended")).count();
    assert_eq!(ended, 5, "every session's end is in the log");
}
