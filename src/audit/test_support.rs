//! Helpers shared by the audit log's tests: building logs and tampering with them by hand.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::AuditLog;

/// `json!({...})` as the map `append` takes.
pub fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// A log in `dir` with records `e1..=en`, each with a field `n`.
pub fn log_with(dir: &Path, n: u64) -> PathBuf {
    let path = dir.join("data").join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    for i in 1..=n {
        log.append(&format!("e{i}"), fields(serde_json::json!({ "n": i })))
            .unwrap();
    }
    path
}

/// The log's lines without their newlines.
pub fn lines(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap();
    text.lines().map(str::to_owned).collect()
}

/// Rewrites the log by hand (the anchor is left alone), each line followed by a newline.
pub fn write_lines(path: &Path, lines: &[String]) {
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    fs::write(path, text).unwrap();
}

/// A record as Gatehouse would write it after `prev_line`, for forging lines by hand.
pub fn forge(seq: u64, prev_line: &str, event: &str) -> String {
    super::record::render(
        seq,
        "2025-03-01T09:30:00.125Z",
        &super::record::hash_hex(prev_line.as_bytes()),
        event,
        &Map::new(),
    )
    .unwrap()
}
