use super::*;
use crate::audit::test_support::{forge, lines, log_with, write_lines};
use crate::audit::{AuditLog, anchor_path};

/// Applies `tamper` to the lines of a six-record log and returns what verify says.
fn tampered(tamper: impl FnOnce(&mut Vec<String>)) -> VerifyFailure {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 6);
    let mut all = lines(&path);
    tamper(&mut all);
    write_lines(&path, &all);
    verify(&path).unwrap_err()
}

fn assert_names(failure: &VerifyFailure, line: usize, words: &str) {
    assert_eq!(failure.line, line, "{failure}");
    assert_eq!(failure.kind, FailureKind::Broken, "{failure}");
    assert!(failure.reason.contains(words), "{failure}");
}

#[test]
fn an_intact_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 6);
    let report = verify(&path).unwrap();
    let last = AuditLog::open(&path).unwrap().last();
    assert_eq!(report.lines, 6);
    assert_eq!(report.last_seq, 6);
    assert_eq!(report.last_hash, last.hash);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[test]
fn an_empty_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 0);
    let report = verify(&path).unwrap();
    assert_eq!((report.lines, report.last_seq), (0, 0));
    assert_eq!(report.last_hash, ZERO_HASH);
}

#[test]
fn an_edited_line_is_named() {
    for line in [1, 3, 5] {
        let failure = tampered(|l| l[line - 1] = l[line - 1].replace("\"n\":", "\"n\":1"));
        assert_names(&failure, line, "edited");
    }
    let failure = tampered(|l| l[2] = l[2].replace("\"e3\"", "\"e9\""));
    assert_names(&failure, 3, "edited");
}

#[test]
fn an_edited_last_line_is_named_through_the_anchor() {
    let failure = tampered(|l| l[5] = l[5].replace("\"e6\"", "\"e7\""));
    assert_names(&failure, 6, "no longer matches the anchor");
}

#[test]
fn an_edit_of_only_a_prev_field_names_the_line_before() {
    let failure = tampered(|l| {
        let at = l[3].find("\"prev\":\"").unwrap() + 8;
        let flipped = if &l[3][at..=at] == "0" { "1" } else { "0" };
        l[3].replace_range(at..=at, flipped);
    });
    // Documented: indistinguishable from an edit of line 3.
    assert_eq!(failure.line, 3, "{failure}");
}

#[test]
fn raw_control_characters_are_named() {
    let failure = tampered(|l| l[1] = l[1].replace("\"e2\"", "\"e\u{1b}[2J\""));
    assert_names(&failure, 2, "raw byte 0x1b");
}

#[test]
fn a_removed_line_names_the_line_after_the_gap() {
    assert_names(&tampered(|l| drop(l.remove(2))), 3, "removed");
    assert_names(&tampered(|l| drop(l.remove(0))), 1, "removed");
    assert_names(&tampered(|l| drop(l.drain(1..4))), 2, "3 record(s)");
}

#[test]
fn reordered_lines_name_the_first_out_of_order() {
    assert_names(&tampered(|l| l.swap(2, 3)), 3, "removed or moved");
    let failure = tampered(|l| {
        let moved = l.remove(4);
        l.insert(1, moved);
    });
    assert_names(&failure, 2, "removed or moved");
    let failure = tampered(|l| {
        let moved = l.remove(1);
        l.insert(4, moved);
    });
    assert_names(&failure, 2, "removed or moved");
}

#[test]
fn an_inserted_or_duplicated_line_is_named() {
    let failure = tampered(|l| {
        let forged = forge(4, &l[2], "forged");
        l.insert(3, forged);
    });
    assert_names(&failure, 4, "inserted");
    let failure = tampered(|l| {
        let copy = l[2].clone();
        l.insert(3, copy);
    });
    assert_names(&failure, 4, "duplicate");
}

#[test]
fn lines_appended_by_hand_are_named_even_with_correct_hashes() {
    let failure = tampered(|l| {
        let first = forge(7, &l[5], "forged");
        let second = forge(8, &first, "forged");
        l.extend([first, second]);
    });
    assert_names(&failure, 7, "appended outside Gatehouse");
}

#[test]
fn appended_garbage_is_named() {
    assert_names(
        &tampered(|l| l.push("hello".into())),
        7,
        "not an audit record",
    );
    assert_names(
        &tampered(|l| l.push(String::new())),
        7,
        "not an audit record",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 2);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"seq\":3");
    std::fs::write(&path, text).unwrap();
    assert_names(&verify(&path).unwrap_err(), 3, "incomplete last line");
}

#[test]
fn malformed_json_is_named() {
    assert_names(
        &tampered(|l| l[3] = "{\"seq\":4,".into()),
        4,
        "not an audit record",
    );
    assert_names(&tampered(|l| l[3].truncate(40)), 4, "not an audit record");
}

#[test]
fn a_truncated_tail_is_named() {
    let failure = tampered(|l| l.truncate(4));
    assert_names(&failure, 5, "the log ends at line 4");
    let failure = tampered(Vec::clear);
    assert_names(&failure, 1, "the log ends at line 0");
}

#[test]
fn a_missing_anchor_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 3);
    std::fs::remove_file(anchor_path(&path)).unwrap();
    let report = verify(&path).unwrap();
    assert_eq!(report.warnings.len(), 1);
    assert!(report.warnings[0].message.contains("no anchor file"));
}

#[test]
fn unreadable_is_not_broken_but_a_garbled_anchor_is() {
    let dir = tempfile::tempdir().unwrap();
    let failure = verify(dir.path().join("nope.jsonl")).unwrap_err();
    assert_eq!((failure.line, failure.kind), (0, FailureKind::Unreadable));
    let path = log_with(dir.path(), 1);
    std::fs::write(anchor_path(&path), "garbage").unwrap();
    let failure = verify(&path).unwrap_err();
    assert_eq!((failure.line, failure.kind), (0, FailureKind::Broken));
    assert!(failure.to_string().starts_with("audit anchor"), "{failure}");
}

#[test]
fn display_names_the_line() {
    assert_eq!(broken(3, "edited").to_string(), "line 3: edited");
    assert_eq!(unreadable(0, "no file").to_string(), "no file");
}

#[test]
fn a_huge_line_is_refused_without_keeping_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 1);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&"x".repeat(MAX_LINE_BYTES + 10));
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    assert_names(&verify(&path).unwrap_err(), 2, "longer than");
}
