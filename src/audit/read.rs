//! Reading the log back as records, for reports: [`scan`].
//!
//! A report wants a few kinds of records out of millions of lines, so the event name is read
//! from the fixed header first and only the lines asked for are parsed, with the same strict
//! reader the verifier uses. Lines are read with a bound, so a hostile file cannot make the
//! reader hold more than [`MAX_LINE_BYTES`] at once. Whether the chain is whole is
//! [`super::verify`]'s question, not this one's: a line that does not parse is counted and
//! skipped.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use chrono::DateTime;
use serde_json::{Map, Value};

use super::record::{self, MAX_LINE_BYTES};

/// One record, as a report reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its `seq`.
    pub seq: u64,
    /// Its `time`, in Unix seconds.
    pub time: i64,
    /// Its `event`.
    pub event: String,
    /// The other fields.
    pub fields: Map<String, Value>,
}

impl Entry {
    /// A string field.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    /// An integer field.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.fields.get(key).and_then(Value::as_i64)
    }
}

/// What [`scan`] went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scanned {
    /// Lines read.
    pub lines: u64,
    /// Lines asked for that could not be read as records (the verifier names them).
    pub unreadable: u64,
}

/// Calls `visit` with every record of the log at `path` whose event `wanted` accepts, in the
/// order of the file.
///
/// # Errors
///
/// The file cannot be opened or read.
pub fn scan(
    path: &Path,
    wanted: impl Fn(&str) -> bool,
    mut visit: impl FnMut(Entry),
) -> io::Result<Scanned> {
    let file = File::open(path)?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut line = Vec::with_capacity(1024);
    let mut scanned = Scanned::default();
    while read_bounded(&mut reader, &mut line)? {
        scanned.lines += 1;
        let Some(event) = event_name(&line) else {
            scanned.unreadable += 1;
            continue;
        };
        if !wanted(event) {
            continue;
        }
        let Ok(record) = record::parse(&line) else {
            scanned.unreadable += 1;
            continue;
        };
        let Ok(time) = DateTime::parse_from_rfc3339(&record.time) else {
            scanned.unreadable += 1;
            continue;
        };
        visit(Entry {
            seq: record.seq,
            time: time.timestamp(),
            event: record.event,
            fields: record.fields,
        });
    }
    Ok(scanned)
}

/// Calls `visit` with every line of the log at `path`, without its newline, in the order of
/// the file, read with the same bound as [`scan`]; for an export, which needs the exact bytes
/// that the chain hashes. Returns how many lines there were.
///
/// # Errors
///
/// The file cannot be opened or read.
pub fn each_line(path: &Path, mut visit: impl FnMut(&[u8])) -> io::Result<u64> {
    let file = File::open(path)?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut line = Vec::with_capacity(1024);
    let mut lines = 0;
    while read_bounded(&mut reader, &mut line)? {
        lines += 1;
        visit(&line);
    }
    Ok(lines)
}

/// One line read as a record, as strictly as the verifier reads it, with its `prev`; `None`
/// for a line that is not one.
pub fn read_line(line: &[u8]) -> Option<(Entry, String)> {
    let record = record::parse(line).ok()?;
    let time = DateTime::parse_from_rfc3339(&record.time).ok()?;
    Some((
        Entry {
            seq: record.seq,
            time: time.timestamp(),
            event: record.event,
            fields: record.fields,
        },
        record.prev,
    ))
}

/// The event name from a line's fixed header (`{"seq":…,"time":…,"prev":…,"event":"NAME"`),
/// without parsing the rest.
fn event_name(line: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b",\"event\":\"";
    let at = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &line[at..];
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// Reads one line without its newline into `line`; a line longer than [`MAX_LINE_BYTES`] is
/// cut there (and then fails to parse). False at the end of the file.
fn read_bounded(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<bool> {
    line.clear();
    let mut any = false;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(any);
        }
        any = true;
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        let room = (MAX_LINE_BYTES + 1).saturating_sub(line.len());
        line.extend_from_slice(&buf[..take.min(room)]);
        reader.consume(if done { take + 1 } else { take });
        if done {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditLog;
    use crate::audit::test_support::fields;
    use serde_json::json;

    #[test]
    fn only_the_events_asked_for_are_read_and_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        log.append("session.started", fields(json!({"user": "alice"})))
            .unwrap();
        log.append(
            "session.denied",
            fields(json!({"user": "bob", "reason": "no \"grant\"\n"})),
        )
        .unwrap();
        log.append("grant.requested", fields(json!({"grant_id": 4})))
            .unwrap();
        let mut seen = Vec::new();
        let scanned = scan(
            &path,
            |e| e == "session.denied" || e == "grant.requested",
            |e| seen.push(e),
        )
        .unwrap();
        assert_eq!(
            scanned,
            Scanned {
                lines: 3,
                unreadable: 0
            }
        );
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].seq, 2);
        assert_eq!(seen[0].str("reason"), Some("no \"grant\"\n"));
        assert_eq!(seen[1].int("grant_id"), Some(4));
        assert!(seen[1].time > 1_600_000_000);
    }

    #[test]
    fn damaged_and_oversized_lines_are_counted_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let long = format!(
            "{{\"seq\":2,\"time\":\"x\",\"prev\":\"y\",\"event\":\"e\",\"pad\":\"{}\"}}",
            "a".repeat(MAX_LINE_BYTES + 10)
        );
        let text = format!(
            "garbage\n{{\"seq\":1,\"time\":\"t\",\"prev\":\"p\",\"event\":\"e\"}}\n{long}\nlast"
        );
        std::fs::write(&path, text).unwrap();
        let mut seen = 0;
        let scanned = scan(&path, |_| true, |_| seen += 1).unwrap();
        assert_eq!(seen, 0);
        assert_eq!(
            scanned,
            Scanned {
                lines: 4,
                unreadable: 4
            }
        );
    }
}
