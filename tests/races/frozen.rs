//! Grant decisions and durable audit writes while the audit disk is frozen (`fsfreeze` on a
//! loop-mounted ext4 image). Every test here needs root; each fails, rather than skips,
//! without it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{cli, grants, request, setup};

/// A small ext4 image loop-mounted for the life of a test, which can be frozen (`fsfreeze`) to
/// stand for an audit disk that stops answering; always thawed and unmounted on drop.
struct FreezableDisk(PathBuf);

impl FreezableDisk {
    /// Formats and mounts an 16 MiB image at `dir`. Needs root; panics (fails the test)
    /// without it.
    fn mount(image: &Path, dir: &Path) -> FreezableDisk {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::File::create(image)
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        let mkfs = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(image)
            .output()
            .expect("run mkfs.ext4");
        assert!(mkfs.status.success(), "mkfs.ext4: {mkfs:?}");
        let out = Command::new("mount")
            .args(["-o", "loop"])
            .arg(image)
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test needs root to loop-mount an image: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        FreezableDisk(dir.to_owned())
    }

    /// Freezes the filesystem: every write to it blocks until [`FreezableDisk::thaw`].
    fn freeze(&self) {
        let out = Command::new("fsfreeze")
            .arg("-f")
            .arg(&self.0)
            .output()
            .expect("run fsfreeze");
        assert!(out.status.success(), "fsfreeze -f: {out:?}");
    }

    fn thaw(&self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.0).output();
    }
}

impl Drop for FreezableDisk {
    fn drop(&mut self) {
        self.thaw();
        let umount = Command::new("umount")
            .arg(&self.0)
            .output()
            .map(|o| o.status);
        if !matches!(umount, Ok(s) if s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// A durable write the audit writer has already begun, stuck on a frozen disk, is given up on
/// within its limit instead of holding its caller (and the caller's transaction) until the
/// disk thaws. Needs root (loop mount, `fsfreeze`); fails without it.
#[test]
fn a_durable_audit_write_stuck_on_a_frozen_disk_gives_up_within_its_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = FreezableDisk::mount(&tmp.path().join("audit.img"), &tmp.path().join("auditfs"));
    let log = gatehouse::audit::AuditLog::open(disk.0.join("audit.jsonl")).unwrap();
    let (writer, _thread) = gatehouse::audit::AuditWriter::start(log);
    disk.freeze();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome = runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(30),
            writer.record_durable(
                vec![("test.frozen".to_owned(), serde_json::Map::new())],
                Duration::from_secs(1),
            ),
        )
        .await
    });
    disk.thaw();
    match outcome {
        Ok(Err(gatehouse::audit::DurableError::Unfinished(_))) => {}
        other => panic!("expected the write to be given up on while in progress: {other:?}"),
    }
}

/// The operator command's durable write (a direct append, made while its transaction holds the
/// store's write lock) is bounded like the server's: stuck on a frozen disk, it is refused
/// within seconds. Needs root (loop mount, `fsfreeze`); fails without it.
#[test]
fn a_direct_durable_audit_write_on_a_frozen_disk_is_refused_within_seconds() {
    use gatehouse::events::{AuditRecorder, Event, EventKind, Events};
    let tmp = tempfile::tempdir().unwrap();
    let disk = FreezableDisk::mount(&tmp.path().join("audit.img"), &tmp.path().join("auditfs"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome = runtime.block_on(async {
        let log = gatehouse::events::open_direct(&disk.0.join("audit.jsonl"), "frozen")
            .await
            .unwrap();
        let events = Events::new(Some(AuditRecorder::Direct(log)), None);
        disk.freeze();
        tokio::time::timeout(
            Duration::from_secs(30),
            events.record_durable(&[Event::new(EventKind::ReviewAcked)]),
        )
        .await
    });
    disk.thaw();
    match outcome {
        Ok(Err(e)) => assert!(e.to_string().contains("did not finish"), "{e}"),
        other => panic!("expected the direct write to be refused in time: {other:?}"),
    }
    // The runtime's shutdown must not wait for the abandoned write either.
    drop(runtime);
}

/// Runs `cmd` in the background and waits (at most `limit`) for a line on its stderr that
/// contains `needle`; returns the child (still running or not) and the line, or what it said
/// instead.
fn stderr_line_within(
    mut cmd: Command,
    needle: &'static str,
    limit: Duration,
) -> (std::process::Child, Result<String, String>) {
    use std::io::BufRead;
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains(needle) {
                let _ = tx.send(Ok(line));
                return;
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        let _ = tx.send(Err(seen));
    });
    let line = match rx.recv_timeout(limit) {
        Ok(Ok(line)) => Ok(line),
        Ok(Err(seen)) => Err(format!("it said only: {seen}")),
        Err(_) => Err(format!("nothing within {limit:?}")),
    };
    (child, line)
}

/// A decision whose audit line is stuck on a frozen audit disk is refused within seconds, at
/// the command line and over SSH, and does not hold the store's write lock while the disk
/// stays frozen; once it thaws, decisions go through again. Needs root (loop mount,
/// `fsfreeze`); fails without it.
#[test]
fn a_revoke_is_refused_within_seconds_while_the_audit_disk_is_frozen() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = FreezableDisk::mount(&tmp.path().join("audit.img"), &tmp.path().join("auditfs"));
    let s = setup(&format!(
        "audit_log = \"{}/audit.jsonl\"\n",
        disk.0.display()
    ));
    let gh = &s.world.gatehouse;
    let first = request(gh, &s.alice, "self", 1);
    let second = request(gh, &s.alice, "self", 2);
    disk.freeze();

    // The command line's write starts and sticks; the revoke is refused all the same.
    let mut revoke = gh.command(&["grants", "revoke", &first.to_string(), "--reason", "frozen"]);
    revoke.env("RUST_LOG", "off");
    let (mut child, refusal) = stderr_line_within(revoke, "audit log", Duration::from_secs(20));
    let refusal = refusal.unwrap_or_else(|e| {
        disk.thaw();
        panic!("the revoke was not refused while the audit disk was frozen: {e}")
    });
    assert!(refusal.starts_with("gatehouse:"), "{refusal}");

    // The store's writer is free: the server's own decision fails on the audit log (its writer
    // is stuck too), not on a locked database.
    let out = gh.ssh(
        &s.alice,
        &["revoke", &second.to_string(), "--reason", "frozen"],
    );
    // What the bastion said and what reached the audit file, should this ever go through.
    let context = || {
        format!(
            "stdout: {}\nstderr: {}\naudit file: {}\nbastion log: {}",
            out.out(),
            out.err(),
            audit_text_at(&disk.0),
            gh.log()
        )
    };
    assert_ne!(out.code(), 0, "{}", context());
    assert!(out.err().contains("audit log"), "{}", context());
    assert!(out.err().contains("nothing was changed"), "{}", context());

    disk.thaw();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "the refused revoke exits 1");
    let all = grants(gh);
    assert_eq!(all[&first]["state"], "active", "{}", all[&first]);
    assert_eq!(all[&second]["state"], "active", "{}", all[&second]);

    // Thawed: both decisions go through, each with its line.
    let out = gh.ssh(
        &s.alice,
        &["revoke", &second.to_string(), "--reason", "thawed"],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let out = cli(
        gh,
        &["grants", "revoke", &first.to_string(), "--reason", "thawed"],
        "x",
    );
    assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
    let all = grants(gh);
    assert_eq!(all[&first]["state"], "revoked");
    assert_eq!(all[&second]["state"], "revoked");
    let audit = audit_text_at(&disk.0);
    assert!(audit.contains("\"reason\":\"thawed\""), "{audit}");
}

fn audit_text_at(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("audit.jsonl")).unwrap_or_default()
}
