//! A verified export end to end: a real session through real `ssh` and `sshd`, exported by
//! `gatehouse sessions export`, checked by `sha256sum -c` (coreutils, not Gatehouse) and by
//! `gatehouse sessions verify --export` run with nothing but the directory; tampered copies
//! fail, an export never overwrites, and an altered recording is not exported.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn gatehouse(gh: &Gatehouse, args: &[&str]) -> Output {
    run(gh.command(args), b"", Duration::from_secs(60))
}

/// `gatehouse sessions verify --export DIR` from an empty directory with no config at all.
fn verify_alone(dir: &Path) -> Output {
    let elsewhere = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(gatehouse_bin());
    cmd.args(["sessions", "verify", "--export"])
        .arg(dir)
        .current_dir(elsewhere.path())
        .env_remove("GATEHOUSE_CONFIG");
    run(cmd, b"", Duration::from_secs(30))
}

/// `sha256sum -c SHA256SUMS` in `dir`.
fn sha256sum(dir: &Path) -> Output {
    let mut cmd = Command::new("sha256sum");
    cmd.args(["-c", "SHA256SUMS"]).current_dir(dir);
    run(cmd, b"", Duration::from_secs(30))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Rewrites `name` in `dir` with `edit`, and its line in SHA256SUMS to match, as someone
/// covering their tracks would.
fn rewrite(dir: &Path, name: &str, edit: impl FnOnce(Vec<u8>) -> Vec<u8>) {
    let bytes = edit(std::fs::read(dir.join(name)).unwrap());
    std::fs::write(dir.join(name), &bytes).unwrap();
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let fixed: String = sums
        .lines()
        .map(|l| {
            if l.ends_with(&format!("  {name}")) {
                format!("{}  {name}\n", sha256_hex(&bytes))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(dir.join("SHA256SUMS"), fixed).unwrap();
}

fn replace(bytes: Vec<u8>, from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains(from), "{from:?} not in {text}");
    text.replacen(from, to, 1).into_bytes()
}

#[test]
fn an_exported_session_verifies_on_its_own_and_a_tampered_one_does_not() {
    let (world, alice) = World::with_granted_role("", "ops", "shell = \"full\"\n");
    let gh = &world.gatehouse;
    let out = gh.ssh(&alice, &["web-01", "echo evidence-7731"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    // Another session under the same grant, whose lines must stay out of the export.
    let out = gh.ssh(&alice, &["web-01", "echo unrelated"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    let list: Value =
        serde_json::from_str(&gatehouse(gh, &["sessions", "list", "--json"]).out()).unwrap();
    let id = list[1]["id"].as_str().unwrap().to_owned();
    let other = list[0]["id"].as_str().unwrap().to_owned();
    let recording = list[1]["recording"].as_str().unwrap().to_owned();
    let sha = list[1]["sha256"].as_str().unwrap().to_owned();

    let dir = world.tmp.path().join("export");
    let out = gatehouse(
        gh,
        &["sessions", "export", &id, "--out", dir.to_str().unwrap()],
    );
    assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());

    // On its own: coreutils, and Gatehouse with nothing but the directory.
    let sums = sha256sum(&dir);
    assert_eq!(sums.code(), 0, "{}{}", sums.out(), sums.err());
    let cast = format!("{id}.cast");
    assert!(
        sums.out().contains(&format!("{cast}: OK")),
        "{}",
        sums.out()
    );
    let verified = verify_alone(&dir);
    assert_eq!(verified.code(), 0, "{}{}", verified.out(), verified.err());
    assert!(verified.out().contains("verifies"), "{}", verified.out());

    // What is in it: the recording as it was, the session's lines and the grant's, nobody
    // else's; the cast's hash is the one its session.ended line records.
    assert_eq!(
        std::fs::read(dir.join(&cast)).unwrap(),
        std::fs::read(&recording).unwrap()
    );
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    let lines: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    for wanted in [
        "grant.requested",
        "grant.activated",
        "session.started",
        "session.ended",
    ] {
        assert!(events.contains(&wanted), "{wanted} in {events:?}");
    }
    assert!(!audit.contains(&other), "another session's lines stay out");
    let ended = lines
        .iter()
        .find(|l| l["event"] == "session.ended")
        .unwrap();
    assert_eq!(ended["detail"]["recording_sha256"], sha.as_str());
    assert_eq!(sha256_hex(&std::fs::read(dir.join(&cast)).unwrap()), sha);
    // Each line's hash is the `prev` of the line after it in the bastion's log.
    let log = std::fs::read_to_string(gh.dir.join("data/audit.jsonl")).unwrap();
    let log: Vec<&str> = log.lines().collect();
    for line in audit.lines() {
        let at = log
            .iter()
            .position(|l| *l == line)
            .expect("the line is in the log, byte for byte");
        if let Some(next) = log.get(at + 1) {
            let next: Value = serde_json::from_str(next).unwrap();
            assert_eq!(next["prev"], sha256_hex(line.as_bytes()).as_str());
        }
    }

    // Never over anything.
    let again = gatehouse(
        gh,
        &["sessions", "export", &id, "--out", dir.to_str().unwrap()],
    );
    assert_eq!(again.code(), 1);
    assert!(again.err().contains("not empty"), "{}", again.err());

    // Tampered: a changed byte in the recording.
    let t1 = world.tmp.path().join("tampered-cast");
    copy_dir(&dir, &t1);
    let mut bytes = std::fs::read(t1.join(&cast)).unwrap();
    let at = bytes.windows(8).position(|w| w == b"evidence").unwrap();
    bytes[at] = b'E';
    std::fs::write(t1.join(&cast), &bytes).unwrap();
    assert_ne!(sha256sum(&t1).code(), 0);
    let failed = verify_alone(&t1);
    assert_eq!(failed.code(), 1, "{}", failed.out());
    assert!(failed.out().contains(&cast), "{}", failed.out());

    // Tampered with the sums fixed: the cast no longer matches its session.ended line.
    let t2 = world.tmp.path().join("tampered-sums");
    copy_dir(&dir, &t2);
    rewrite(&t2, &cast, |b| replace(b, "evidence-7731", "evidence-0000"));
    assert_eq!(sha256sum(&t2).code(), 0, "the sums were fixed");
    let failed = verify_alone(&t2);
    assert_eq!(failed.code(), 1, "{}", failed.out());
    assert!(
        failed.out().contains("session.ended line"),
        "{}",
        failed.out()
    );

    // And the audit line rewritten to match too: the chain gives it away.
    let forged = sha256_hex(&std::fs::read(t2.join(&cast)).unwrap());
    rewrite(&t2, "audit.jsonl", |b| replace(b, &sha, &forged));
    assert_eq!(sha256sum(&t2).code(), 0, "the sums were fixed");
    let failed = verify_alone(&t2);
    assert_eq!(failed.code(), 1, "{}", failed.out());
    assert!(
        failed.out().contains("next line's prev"),
        "{}",
        failed.out()
    );

    // An extra file is noticed.
    let t3 = world.tmp.path().join("extra");
    copy_dir(&dir, &t3);
    std::fs::write(t3.join("note.txt"), "hello").unwrap();
    assert_eq!(verify_alone(&t3).code(), 1);

    // An altered recording is not exported at all.
    let mut original = std::fs::read(&recording).unwrap();
    let at = original.windows(8).position(|w| w == b"evidence").unwrap();
    original[at] = b'X';
    std::fs::write(&recording, &original).unwrap();
    let refused_dir = world.tmp.path().join("refused");
    let refused = gatehouse(
        gh,
        &[
            "sessions",
            "export",
            &id,
            "--out",
            refused_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(refused.code(), 1);
    assert!(refused.err().contains("MODIFIED"), "{}", refused.err());
    assert!(!refused_dir.exists(), "nothing is left behind");
    let leftovers: Vec<_> = std::fs::read_dir(world.tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".partial-"))
        .collect();
    assert!(leftovers.is_empty());
}
