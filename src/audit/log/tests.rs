//! Tests of appending, recovery and refusal.

use serde_json::json;

use super::*;
use crate::audit::record::{EVENT_RECOVERED, MAX_LINE_BYTES};

#[test]
fn a_batch_lands_as_chained_lines_that_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    log.append("one", Map::new()).unwrap();
    let batch: Vec<(String, Map<String, Value>)> =
        (0..5).map(|i| (format!("batch.{i}"), Map::new())).collect();
    let last = log.append_batch(&batch).unwrap().unwrap();
    assert_eq!(last.seq, 6);
    assert_eq!(log.append_batch(&[]).unwrap(), None);
    let report = crate::audit::verify(&path).unwrap();
    assert_eq!(report.lines, 6);
    assert!(report.warnings.is_empty());
    // A reopened log continues the same chain.
    drop(log);
    AuditLog::open(&path)
        .unwrap()
        .append("after", Map::new())
        .unwrap();
    assert_eq!(crate::audit::verify(&path).unwrap().lines, 7);
    assert!(
        AuditLog::open(&path)
            .unwrap()
            .append_batch(&[("audit.fake".into(), Map::new())])
            .is_err()
    );
}
use crate::audit::test_support::{fields, forge, lines, log_with, write_lines};
use crate::audit::{anchor_path, verify};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

#[test]
fn creates_directory_and_file_with_modes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.path(), path);
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, FILE_MODE);
    assert_eq!(
        fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777,
        DIR_MODE
    );
    assert_eq!(
        fs::metadata(anchor_path(&path)).unwrap().mode() & 0o777,
        FILE_MODE
    );
    assert_eq!(
        log.last(),
        AuditRecordRef {
            seq: 0,
            hash: record::ZERO_HASH.to_owned()
        }
    );
}

#[test]
fn chain_continues_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 3);
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.last().seq, 3);
    let r = log
        .append(
            "session.ended",
            fields(json!({"bytes_out": 5120, "exit_status": 0})),
        )
        .unwrap();
    assert_eq!(r.seq, 4);
    assert_eq!(r.hash, record::hash_hex(lines(&path)[3].as_bytes()));
    drop(log);
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.last(), r);
    log.append("e5", Map::new()).unwrap();
    let report = verify(&path).unwrap();
    assert_eq!((report.lines, report.last_seq), (5, 5));
    let all = lines(&path);
    let first = record::parse(all[0].as_bytes()).unwrap();
    assert!(all[0].starts_with(&format!(
        "{{\"seq\":1,\"time\":\"{}\",\"prev\":\"{}\",\"event\":\"e1\"",
        first.time,
        record::ZERO_HASH
    )));
    assert_eq!(first.time.len(), "2025-03-01T09:30:00.125Z".len());
    assert!(first.time.ends_with('Z'));
    assert!(all[3].contains("\"event\":\"session.ended\",\"bytes_out\":5120,\"exit_status\":0}"));
}

#[test]
fn anchor_follows_every_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 0);
    let log = AuditLog::open(&path).unwrap();
    for _ in 0..3 {
        let r = log.append("e", Map::new()).unwrap();
        let anchor = anchor::read(&anchor_path(&path)).unwrap().unwrap();
        assert_eq!(
            anchor,
            Anchor::at(&Point {
                seq: r.seq,
                hash: r.hash
            })
        );
    }
}

#[test]
fn hostile_text_cannot_forge_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 0);
    let log = AuditLog::open(&path).unwrap();
    let hostile = [
        "alice\n{\"seq\":2,\"time\":\"2025-03-01T09:30:00.125Z\",\"prev\":\"0\",\"event\":\"login\"}",
        "bob\r\n{\"seq\":99}",
        "carol\u{2028}{\"seq\":99}\u{2029}",
        "dave\0\u{85}\u{1b}[2J\u{7}",
        "\",\"event\":\"grant.approved",
    ];
    for (i, text) in hostile.iter().enumerate() {
        log.append(
            "session.denied",
            fields(json!({ "user": text, "reason": text, "command": [text, i] })),
        )
        .unwrap();
    }
    let raw = fs::read(&path).unwrap();
    assert_eq!(raw.iter().filter(|b| **b == b'\n').count(), hostile.len());
    assert!(raw.iter().all(|b| *b == b'\n' || (b' '..=b'~').contains(b)));
    for (line, text) in lines(&path).iter().zip(hostile) {
        let rec = record::parse(line.as_bytes()).unwrap();
        assert_eq!(rec.event, "session.denied");
        assert_eq!(rec.fields["user"], text);
        assert_eq!(rec.fields["reason"], text);
        assert_eq!(rec.fields["command"][0], text);
    }
    assert_eq!(verify(&path).unwrap().last_seq, hostile.len() as u64);
}

#[test]
fn reserved_names_and_oversized_records_are_refused_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 1);
    let log = AuditLog::open(&path).unwrap();
    assert!(matches!(
        log.append("e", fields(json!({"prev": "x"}))),
        Err(AuditError::ReservedField(f)) if f == "prev"
    ));
    assert!(matches!(
        log.append("audit.recovered", Map::new()),
        Err(AuditError::ReservedEvent(_))
    ));
    assert!(matches!(
        log.append("e", fields(json!({"cmd": "x".repeat(MAX_LINE_BYTES)}))),
        Err(AuditError::TooLarge(_))
    ));
    assert_eq!(lines(&path).len(), 1);
    assert_eq!(log.append("e", Map::new()).unwrap().seq, 2);
}

/// Appends an incomplete line, as a crash in the middle of a write leaves it.
fn crash_remnant(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

#[test]
fn an_incomplete_last_line_is_kept_and_the_chain_resumes_after_it() {
    for remnant in [&b"{\"seq\":4,\"time\":\"2025-03-"[..], &[0u8; 300][..]] {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with(dir.path(), 3);
        crash_remnant(&path, remnant);
        assert_eq!(
            verify(&path).unwrap_err().to_string().split(':').next(),
            Some("line 4")
        );
        let log = AuditLog::open(&path).unwrap();
        assert_eq!(log.last().seq, 4);
        log.append("after.crash", Map::new()).unwrap();
        let raw = fs::read(&path).unwrap();
        assert!(
            raw.windows(remnant.len()).any(|w| w == remnant),
            "evidence kept"
        );
        let report = verify(&path).unwrap();
        assert_eq!((report.lines, report.last_seq), (6, 5));
        assert_eq!(report.warnings.len(), 1);
        assert_eq!(report.warnings[0].line, Some(4));
        assert!(report.warnings[0].message.contains("resumes at line 5"));
        let recovered = record::parse(lines(&path)[4].as_bytes()).unwrap();
        assert_eq!(recovered.event, EVENT_RECOVERED);
        assert_eq!(recovered.prev, record::hash_hex(remnant));
    }
}

#[test]
fn a_running_writer_recovers_after_another_process_crashed() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 2);
    let log = AuditLog::open(&path).unwrap();
    crash_remnant(&path, b"{\"seq\":3");
    assert_eq!(log.append("e", Map::new()).unwrap().seq, 4);
    let report = verify(&path).unwrap();
    assert_eq!(
        (report.lines, report.last_seq, report.warnings.len()),
        (5, 4, 1)
    );
}

#[test]
fn a_crash_between_the_line_and_the_anchor_update_is_not_tampering() {
    /// Record `seq` of the log at `path` as the anchor names it.
    fn point(path: &Path, seq: u64) -> Point {
        let line = &lines(path)[seq as usize - 1];
        Point {
            seq,
            hash: record::hash_hex(line.as_bytes()),
        }
    }

    // Crashed after the line was written, before the anchor moved on to it.
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 3);
    let anchor = Anchor {
        pending: Some(point(&path, 3)),
        ..Anchor::at(&point(&path, 2))
    };
    anchor::write(&anchor_path(&path), &anchor, false).unwrap();
    verify(&path).unwrap();
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.append("e", Map::new()).unwrap().seq, 4);
    verify(&path).unwrap();

    // Crashed after the anchor named the pending line, before the line was written.
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 3);
    let never_written = Point {
        seq: 4,
        hash: "ab".repeat(32),
    };
    let anchor = Anchor {
        pending: Some(never_written),
        ..Anchor::at(&point(&path, 3))
    };
    anchor::write(&anchor_path(&path), &anchor, false).unwrap();
    verify(&path).unwrap();
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.append("e", Map::new()).unwrap().seq, 4);
    verify(&path).unwrap();
}

#[test]
fn lines_appended_by_hand_stop_the_log_until_reanchored() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 3);
    let running = AuditLog::open(&path).unwrap();
    let mut all = lines(&path);
    let anchor_before = fs::read(anchor_path(&path)).unwrap();
    all.push(forge(4, &all[2], "forged"));
    write_lines(&path, &all);

    let err = AuditLog::open(&path).unwrap_err();
    assert!(matches!(err, AuditError::AnchorMismatch { .. }), "{err}");
    assert!(err.to_string().contains("from seq 4 on"), "{err}");
    // A handle opened before notices too, and keeps refusing.
    for _ in 0..2 {
        assert!(matches!(
            running.append("e", Map::new()),
            Err(AuditError::AnchorMismatch { .. })
        ));
    }
    assert_eq!(fs::read(anchor_path(&path)).unwrap(), anchor_before);
    assert_eq!(verify(&path).unwrap_err().line, 4);

    let r = reanchor(&path, "forged line \u{1b}[2J investigated")
        .unwrap()
        .unwrap();
    assert_eq!(r.seq, 5);
    assert_eq!(reanchor(&path, "again").unwrap(), None);
    let report = verify(&path).unwrap();
    assert_eq!(report.warnings.len(), 1);
    let warning = report.warnings[0].to_string();
    assert!(
        warning.starts_with("line 5: an operator re-anchored"),
        "{warning}"
    );
    assert!(
        warning.contains("\\u{1b}[2J") && !warning.contains('\u{1b}'),
        "{warning}"
    );
    assert!(warning.contains("recorded seq 3"), "{warning}");
    assert_eq!(running.append("e", Map::new()).unwrap().seq, 6);
    verify(&path).unwrap();
}

#[test]
fn a_truncated_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 3);
    let mut all = lines(&path);
    all.pop();
    write_lines(&path, &all);
    let err = AuditLog::open(&path).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    write_lines(&path, &[]);
    assert!(matches!(
        AuditLog::open(&path),
        Err(AuditError::AnchorMismatch { .. })
    ));
}

#[test]
fn a_missing_anchor_is_refused_until_reanchored() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 2);
    fs::remove_file(anchor_path(&path)).unwrap();
    assert!(matches!(
        AuditLog::open(&path),
        Err(AuditError::AnchorMissing { .. })
    ));
    reanchor(&path, "restored from backup").unwrap().unwrap();
    let report = verify(&path).unwrap();
    assert_eq!(report.last_seq, 3);
    assert!(report.warnings[0].message.contains("recorded seq null"));
}

#[test]
fn a_complete_damaged_last_line_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 2);
    let mut all = lines(&path);
    all.push("not a record".into());
    write_lines(&path, &all);
    let err = AuditLog::open(&path).unwrap_err();
    assert!(matches!(err, AuditError::BrokenTail { .. }), "{err}");
}

#[test]
fn threads_and_handles_never_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 0);
    let shared = Arc::new(AuditLog::open(&path).unwrap());
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let log = if t % 2 == 0 {
                Arc::clone(&shared)
            } else {
                // A second handle behaves like another process.
                Arc::new(AuditLog::open(&path).unwrap())
            };
            std::thread::spawn(move || {
                for i in 0..20 {
                    log.append(
                        "t",
                        fields(json!({"thread": t, "i": i, "pad": "x".repeat(i * 97)})),
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let report = verify(&path).unwrap();
    assert_eq!((report.lines, report.last_seq), (120, 120));
    assert!(report.warnings.is_empty());
}

const CHILD_LOG: &str = "GATEHOUSE_AUDIT_TEST_CHILD_LOG";
const CHILD_ID: &str = "GATEHOUSE_AUDIT_TEST_CHILD_ID";
const PER_CHILD: usize = 25;

/// Run by `processes_never_interleave` in child processes; does nothing otherwise.
#[test]
#[ignore = "helper for processes_never_interleave"]
fn child_appender() {
    let (Ok(path), Ok(id)) = (std::env::var(CHILD_LOG), std::env::var(CHILD_ID)) else {
        return;
    };
    let log = AuditLog::open(&path).unwrap();
    for i in 0..PER_CHILD {
        log.append("child", fields(json!({"child": id, "i": i})))
            .unwrap();
    }
}

#[test]
fn processes_never_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 0);
    let module = module_path!();
    let test = format!(
        "{}::child_appender",
        module.split_once("::").map_or(module, |(_, rest)| rest)
    );
    let children: Vec<_> = (0..4)
        .map(|id| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([&test, "--exact", "--ignored", "--test-threads=1", "--quiet"])
                .env(CHILD_LOG, &path)
                .env(CHILD_ID, id.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let log = AuditLog::open(&path).unwrap();
    for i in 0..PER_CHILD {
        log.append("parent", fields(json!({"i": i}))).unwrap();
    }
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let report = verify(&path).unwrap();
    assert_eq!(report.last_seq as usize, 5 * PER_CHILD);
    assert_eq!(report.lines, 5 * PER_CHILD);
    for id in 0..4 {
        let needle = format!("\"child\":\"{id}\"");
        let count = lines(&path).iter().filter(|l| l.contains(&needle)).count();
        assert_eq!(count, PER_CHILD, "child {id}");
    }
    assert_eq!(
        log.append("parent", Map::new()).unwrap().seq as usize,
        5 * PER_CHILD + 1
    );
}
