//! Recordings under disk faults, end to end with real `ssh` and `sshd`: a recordings file system
//! that freezes (`fsfreeze`), one that fills up (a small tmpfs), and the size limit with
//! `on_failure = "allow"`.
//!
//! **These tests need root**: they mount an ext4 image on a loop device and a tmpfs as the
//! recordings directory. Without root they fail (they do not skip); CI runs them as root. Every
//! mount is thawed and unmounted when its test ends, also when it fails.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use gatehouse::recording::{output_bytes, parse_cast};

/// The stall bound the tests configure: short, so that a frozen disk is noticed quickly.
const STALL: Duration = Duration::from_secs(1);

/// Slack on top of a bound, for a busy test machine.
const SLACK: Duration = Duration::from_secs(4);

fn require_root() {
    let out = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "this test needs root: it mounts file systems for the recordings (CI runs as root)"
    );
}

fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A file system mounted for one test at `dir`; thawed and unmounted on drop.
struct Mounted {
    dir: PathBuf,
    frozen: Mutex<bool>,
}

impl Mounted {
    /// A fresh 32 MiB ext4 image (`image`) on a loop device at `dir`.
    fn ext4(image: &Path, dir: &Path) -> Mounted {
        require_root();
        std::fs::create_dir_all(dir).unwrap();
        sh("truncate", &["-s", "32M", image.to_str().unwrap()]);
        sh("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()]);
        sh(
            "mount",
            &["-o", "loop", image.to_str().unwrap(), dir.to_str().unwrap()],
        );
        Mounted {
            dir: dir.to_owned(),
            frozen: Mutex::new(false),
        }
    }

    /// A tmpfs of `size` (as `mount -o size=` takes it) at `dir`.
    fn tmpfs(dir: &Path, size: &str) -> Mounted {
        require_root();
        std::fs::create_dir_all(dir).unwrap();
        sh(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0750"),
                "tmpfs",
                dir.to_str().unwrap(),
            ],
        );
        Mounted {
            dir: dir.to_owned(),
            frozen: Mutex::new(false),
        }
    }

    fn freeze(&self) {
        sh("fsfreeze", &["-f", self.dir.to_str().unwrap()]);
        *self.frozen.lock().unwrap() = true;
    }

    fn thaw(&self) {
        let mut frozen = self.frozen.lock().unwrap();
        if *frozen {
            sh("fsfreeze", &["-u", self.dir.to_str().unwrap()]);
            *frozen = false;
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze")
            .args(["-u", self.dir.to_str().unwrap()])
            .output();
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

struct Setup {
    world: World,
    alice: Person,
    bob: Person,
    /// Declared after the world: a frozen disk is thawed first (see `Drop`), the bastion stopped
    /// next, and the file system unmounted last.
    mount: Mounted,
    _mount_parent: tempfile::TempDir,
}

impl Drop for Setup {
    /// A process with a thread stuck on a frozen file system cannot be reaped until it thaws,
    /// so thaw before the world (and its bastion) goes.
    fn drop(&mut self) {
        self.mount.thaw();
    }
}

/// KiB free on the file system holding `dir`, as `df` reports it.
fn available_kib(dir: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-k"])
        .arg(dir)
        .output()
        .expect("df runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or_else(|| panic!("df says: {}", String::from_utf8_lossy(&out.stdout)))
}

/// alice and bob may each take `ops` on web-01 themselves (no approvals); the recordings live
/// on the file system `mount` makes in the directory it is given.
fn setup(recordings: &str, mount: impl FnOnce(&Path) -> Mounted) -> Setup {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("recordings");
    let mount = mount(&dir);
    let config = format!(
        "[recordings]\ndir = \"{}\"\nstall_timeout = \"{}s\"\n{recordings}\n",
        dir.display(),
        STALL.as_secs()
    );
    let (mut world, mut people) = World::new(&["alice", "bob"], &config);
    let bob = people.pop().unwrap();
    let alice = people.pop().unwrap();
    let policy = format!(
        "{}{}{}[[role]]\nname = \"ops\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"{}\"\napprovals = 0\nshell = \"full\"\n",
        user_toml(&alice, &["sre"]),
        user_toml(&bob, &["sre"]),
        world.target_toml("web-01"),
        login(),
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    Setup {
        world,
        alice,
        bob,
        mount,
        _mount_parent: parent,
    }
}

/// Requests (self-service, so active at once) a grant of `ops` on web-01; returns its id.
fn grant(gh: &Gatehouse, who: &Person) -> i64 {
    let out = gh.ssh(
        who,
        &[
            "request", "web-01", "--for", "1h", "--reason", "fault", "tests",
        ],
    );
    assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
    out.out()
        .split_whitespace()
        .nth(1)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no grant id in {:?}", out.out()))
}

/// A running session whose stdout and stderr are collected as they come.
struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Running {
    fn start(gh: &Gatehouse, who: &Person, command: &str) -> Running {
        let mut child = gh
            .ssh_command(who, &[], &["web-01", command])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Running {
            child,
            stdout,
            stderr,
        }
    }

    fn stdout(&self) -> Vec<u8> {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits until stdout holds `text`.
    fn wait_for_output(&self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !String::from_utf8_lossy(&self.stdout()).contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} within {limit:?}; stderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the client to exit; returns its exit code, or `None` if it is still running
    /// after `limit` (then it is killed).
    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the readers take the last bytes.
                std::thread::sleep(Duration::from_millis(100));
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    });
    seen
}

/// The indexed session whose command contains `marker`.
fn session_with(gh: &Gatehouse, marker: &str) -> serde_json::Value {
    let out = run(
        gh.command(&["sessions", "list", "--json"]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let list: serde_json::Value = serde_json::from_str(&out.out()).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|s| s["command"].as_str().is_some_and(|c| c.contains(marker)))
        .unwrap_or_else(|| panic!("no session with {marker:?}: {list:#}"))
        .clone()
}

/// The indexed session whose command contains `marker`, once its `field` is set (within 15 s).
fn wait_row(gh: &Gatehouse, marker: &str, field: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let row = session_with(gh, marker);
        if !row[field].is_null() {
            return row;
        }
        assert!(Instant::now() < deadline, "no {field}: {row:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The output bytes a (possibly cut) recording holds.
fn recorded_output(path: &str) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    output_bytes(&parse_cast(&bytes).expect("the recording parses"))
}

#[test]
fn a_frozen_recordings_disk_closes_the_sessions_it_stalls_and_nothing_else() {
    let s = setup("", |dir| {
        Mounted::ext4(&dir.with_file_name("recordings.img"), dir)
    });
    let gh = &s.world.gatehouse;
    grant(gh, &s.alice);
    let bob_grant = grant(gh, &s.bob);

    // alice streams output; bob's session sits idle.
    let mut streaming = Running::start(
        gh,
        &s.alice,
        "echo started; i=0; while true; do i=$((i+1)); echo stream-tick-$i; sleep 0.02; done",
    );
    let mut idle = Running::start(gh, &s.bob, "echo started; sleep 120 # idle-session");
    streaming.wait_for_output("stream-tick-5\n", Duration::from_secs(20));
    idle.wait_for_output("started\n", Duration::from_secs(20));

    // Writes block from the moment freezing starts, which flushes the filesystem first and may
    // take a while on a busy machine: the bound counts from there.
    let frozen_at = Instant::now();
    s.mount.freeze();

    // The streaming session's next write stalls: it is closed within about the bound, with a
    // message, and what alice saw is all in the recording.
    let code = streaming.wait_exit(STALL + SLACK);
    let took = frozen_at.elapsed();
    assert_eq!(
        code,
        Some(126),
        "closed after {took:?}; stderr: {}",
        streaming.stderr()
    );
    assert!(took >= STALL, "closed before the bound: {took:?}");
    assert!(
        streaming
            .stderr()
            .contains("gatehouse: the recording stalled: nothing was written to it for 1s: closing the session"),
        "{}",
        streaming.stderr()
    );

    // Logins still work while the disk is frozen.
    let started = Instant::now();
    let out = gh.ssh(&s.alice, &["grants"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    assert!(
        started.elapsed() < SLACK,
        "a login took {:?}",
        started.elapsed()
    );

    // A new recorded session is refused at once, saying why (no new recording can be made).
    let started = Instant::now();
    let before = s.world.target.accepted_logins();
    let out = gh.ssh(&s.alice, &["web-01", "echo", "while-frozen"]);
    assert_eq!(out.code(), 126, "{}", out.err());
    assert!(
        out.err().starts_with(
            "gatehouse: denied: the session cannot be recorded (the recordings disk is not responding: "
        ),
        "{}",
        out.err()
    );
    assert!(!out.out().contains("while-frozen"));
    assert!(
        started.elapsed() < SLACK,
        "the refusal took {:?}",
        started.elapsed()
    );
    assert_eq!(
        s.world.target.accepted_logins(),
        before,
        "the target saw nothing"
    );

    // Revoking bob's grant still closes his session within about a second.
    let out = run(
        gh.command(&[
            "grants",
            "revoke",
            &bob_grant.to_string(),
            "--reason",
            "disk frozen drill",
        ]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let revoked_at = Instant::now();
    let code = idle.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(126), "stderr: {}", idle.stderr());
    assert!(
        revoked_at.elapsed() < Duration::from_millis(2000),
        "the revoked session took {:?} to close",
        revoked_at.elapsed()
    );
    assert!(idle.stderr().contains("revoked"), "{}", idle.stderr());

    // Both ends are indexed while the disk is still frozen (a session waits at most the bound
    // for its recording to be finished).
    let stalled = wait_row(gh, "stream-tick", "ended_at");
    assert!(
        stalled["end_reason"]
            .as_str()
            .unwrap_or("")
            .contains("the recording stalled"),
        "{stalled:#}"
    );
    let revoked = wait_row(gh, "idle-session", "ended_at");
    assert!(
        revoked["end_reason"]
            .as_str()
            .unwrap_or("")
            .contains("revoked"),
        "{revoked:#}"
    );

    // After the thaw everything works again, and nothing is wedged.
    s.mount.thaw();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = gh.ssh(&s.alice, &["web-01", "echo", "after-thaw"]);
        if out.code() == 0 {
            assert_eq!(out.out(), "after-thaw\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused after the thaw: {}",
            out.err()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = session_with(gh, "after-thaw");
    assert_eq!(
        recorded_output(after["recording"].as_str().unwrap()),
        b"after-thaw\n"
    );

    // The stalled recordings are finished once the disk responds: their hashes reach the index
    // and verify, and the stalled one holds everything alice saw.
    for marker in ["stream-tick", "idle-session"] {
        let row = wait_row(gh, marker, "sha256");
        let verify = run(
            gh.command(&["sessions", "verify", row["id"].as_str().unwrap()]),
            b"",
            Duration::from_secs(30),
        );
        assert_eq!(verify.code(), 0, "{}{}", verify.out(), verify.err());
    }
    let seen = streaming.stdout();
    let recorded = recorded_output(stalled["recording"].as_str().unwrap());
    assert!(
        recorded.starts_with(&seen),
        "the client got bytes the recording does not hold:\nseen {} bytes, recorded {}",
        seen.len(),
        recorded.len()
    );
    assert!(
        gh.log()
            .contains("the recording failed: closing the session"),
        "{}",
        gh.log()
    );
}

#[test]
fn a_full_recordings_disk_closes_the_session_before_unrecorded_bytes_go_out() {
    let s = setup("", |dir| Mounted::tmpfs(dir, "1m"));
    let gh = &s.world.gatehouse;
    grant(gh, &s.alice);

    // Numbered lines, so a gap or a reordering would show.
    let mut session = Running::start(gh, &s.alice, "seq 1 10000000 # fill-the-disk");
    let code = session.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(126), "stderr: {}", session.stderr());
    assert!(
        session
            .stderr()
            .contains("gatehouse: the recording failed (recording I/O error on"),
        "{}",
        session.stderr()
    );
    assert!(
        session.stderr().contains("No space left on device"),
        "{}",
        session.stderr()
    );

    let row = session_with(gh, "fill-the-disk");
    let seen = session.stdout();
    let recorded = recorded_output(row["recording"].as_str().unwrap());
    assert!(
        seen.len() > 100_000,
        "the session streamed: {} bytes",
        seen.len()
    );
    assert!(
        recorded.starts_with(&seen),
        "the client got bytes the recording does not hold: seen {} bytes, recorded {}",
        seen.len(),
        recorded.len()
    );
    // The index row has its end, and says why.
    assert!(row["ended_at"].is_i64(), "{row:#}");
    assert!(
        row["end_reason"]
            .as_str()
            .unwrap_or("")
            .contains("the recording failed"),
        "{row:#}"
    );

    // While the disk is full, new sessions are refused; once there is room, they run again.
    let out = gh.ssh(&s.alice, &["web-01", "echo", "while-full"]);
    assert_eq!(out.code(), 126, "{}", out.err());
    assert!(
        out.err()
            .starts_with("gatehouse: denied: the session cannot be recorded"),
        "{}",
        out.err()
    );
    let recording = Path::new(row["recording"].as_str().unwrap());
    std::fs::remove_file(recording).unwrap();
    // The text index may be reading the file at this moment; its space comes back when that
    // read ends (it keeps no file open between reads).
    let deadline = Instant::now() + Duration::from_secs(10);
    while available_kib(recording.parent().unwrap()) < 512 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        available_kib(recording.parent().unwrap()) >= 512,
        "the deleted recording's space did not come back within 10 s"
    );
    let out = gh.ssh(&s.alice, &["web-01", "echo", "room-again"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(out.out(), "room-again\n");
    let _ = &s.bob;
}

#[test]
fn with_on_failure_allow_the_size_limit_still_closes_the_session() {
    let s = setup("on_failure = \"allow\"\nmax_bytes = 200000\n", |dir| {
        Mounted::tmpfs(dir, "64m")
    });
    let gh = &s.world.gatehouse;
    grant(gh, &s.alice);

    let mut session = Running::start(gh, &s.alice, "seq 1 10000000 # past-the-limit");
    let code = session.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(126), "stderr: {}", session.stderr());
    assert!(
        session.stderr().contains(
            "gatehouse: the recording reached its size limit (200000 bytes): closing the session"
        ),
        "{}",
        session.stderr()
    );
    let row = session_with(gh, "past-the-limit");
    let path = row["recording"].as_str().unwrap();
    let size = std::fs::metadata(path).unwrap().len();
    assert!(size <= 200_000, "the recording is {size} bytes");
    let seen = session.stdout();
    let recorded = recorded_output(path);
    assert!(
        recorded.starts_with(&seen),
        "seen {} bytes, recorded {}",
        seen.len(),
        recorded.len()
    );
    assert!(
        seen.len() < 200_000,
        "the session ran past the limit: {} bytes",
        seen.len()
    );
    let cast = parse_cast(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(
        cast.events.last().unwrap().data,
        "gatehouse: recording size limit reached"
    );
    assert!(row["sha256"].is_string(), "{row:#}");
    let _ = &s.bob;
}
