//! The fault-injection rig: a bastion whose database and audit log live on their own small
//! tmpfs mounts, a webhook receiver for its alerts, and the checks every fault case makes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

/// A tmpfs of a fixed size mounted for one test, unmounted when dropped.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, kib: u64) -> Tmpfs {
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
    pub fn fill(&self) -> PathBuf {
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

pub fn assert_root() {
    let out = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "these fault-injection tests need root (tmpfs mounts, chattr); run them as root"
    );
}

pub fn chattr(flag: &str, path: &Path) {
    let status = Command::new("chattr").arg(flag).arg(path).status().unwrap();
    assert!(status.success(), "chattr {flag} {} failed", path.display());
}

/// A webhook receiver on loopback that keeps every body it gets.
pub struct Hook {
    port: u16,
    got: Arc<Mutex<Vec<String>>>,
}

impl Hook {
    pub fn start() -> Hook {
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
    pub fn wait_for(&self, needles: &[&str], limit: Duration) -> String {
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
pub struct Rig {
    pub world: World,
    pub alice: Person,
    pub hook: Hook,
    pub db: Tmpfs,
    pub audit: Tmpfs,
    pid: u32,
    /// Holds the mount points; dropped after the mounts.
    _mounts: tempfile::TempDir,
}

impl Rig {
    pub fn start(config_extra: &str) -> Rig {
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

    pub fn request(&self) -> Output {
        self.world.gatehouse.ssh(
            &self.alice,
            &[
                "request", "web-01", "--for", "2h", "--reason", "fault", "drill",
            ],
        )
    }

    /// One exec session through the bastion.
    pub fn session(&self) -> Output {
        self.world
            .gatehouse
            .ssh(&self.alice, &["web-01", "echo", "through"])
    }

    pub fn assert_session_works(&self) {
        let out = self.session();
        assert_eq!(out.code(), 0, "session: {}", out.err());
        assert_eq!(out.out(), "through\n");
    }

    /// Asserts that a session is refused, exit 126, with `reason` in its one denial line.
    pub fn assert_session_refused(&self, reason: &str) -> String {
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
    pub fn wait_until_refused(&self, reason: &str, limit: Duration) -> String {
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
    pub fn wait_until_recovered(&self, limit: Duration) {
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
    pub fn assert_alive(&self) {
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
    pub fn assert_index_complete(&self, limit: Duration) -> usize {
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
    pub fn stop_and_verify_audit(&mut self) -> Vec<String> {
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
pub fn find_line(lines: &[String], from: usize, needles: &[&str]) -> Option<usize> {
    lines
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, l)| needles.iter().all(|n| l.contains(n)))
        .map(|(i, _)| i)
}
