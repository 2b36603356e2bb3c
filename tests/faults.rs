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
#[path = "faults/rig.rs"]
mod rig;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use rig::*;

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
    find_line(
        &lines,
        0,
        &["session.denied", "\"denial_class\":\"store_unavailable\""],
    )
    .expect("the refusals are classed as the store's");
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
        .filter(|l| l.contains("\"denial_class\":\"audit_unavailable\""))
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
    let verb = rig.request();
    assert_eq!(verb.code(), 1, "a verb that writes fails: {}", verb.err());
    assert!(
        verb.err().contains("locked"),
        "{}\n{}",
        verb.err(),
        rig.world.gatehouse.log()
    );
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
