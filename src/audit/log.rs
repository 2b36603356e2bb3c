//! Appending to the log: [`AuditLog`].

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde_json::{Map, Value, json};

use super::anchor::{self, Anchor, FILE_MODE, Point, Position};
use super::backwards::read_end;
use super::lock::FileLock;
use super::record::{self, EVENT_REANCHORED, EVENT_RECOVERED, MAX_LINE_BYTES};
use super::{AuditError, AuditRecordRef};

/// Mode of a directory the log creates: the auditors' group may enter it, nobody else.
const DIR_MODE: u32 = 0o750;

/// The most that is read from the end of the log to find its last record: the last complete
/// line and an incomplete one after it, each at most [`MAX_LINE_BYTES`] long.
const MAX_END_BYTES: u64 = 3 * MAX_LINE_BYTES as u64;

/// The append-only, hash-chained audit log.
///
/// One per process is enough; it is `Sync`, and [`AuditLog::append`] may be called from any
/// thread. Other processes (the operator CLI) may append to the same file at the same time.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    anchor_path: PathBuf,
    state: Mutex<State>,
    /// The node that writes (`[cluster] node_name`), stamped as `node` on every record that
    /// does not name one, so the lines of several nodes can be merged and still told apart.
    node: Option<String>,
}

/// What this handle knows about the file, valid while it holds the lock or while the file has
/// not grown since.
#[derive(Debug)]
struct State {
    /// Opened for reading and appending (`O_APPEND`, so every write lands at the end).
    file: File,
    /// The last record.
    last: Point,
    /// The file's length after `last`, as this handle left it.
    len: u64,
    /// False after a failed write, when the end of the file is not known.
    in_sync: bool,
}

/// What to do when the log's end does not match its anchor.
enum OnMismatch<'a> {
    /// Refuse: the log was changed outside Gatehouse.
    Refuse,
    /// Accept it and record that an operator did, and why.
    Reanchor(&'a str),
}

impl AuditLog {
    /// Opens the log at `path` (normally `data/audit.jsonl`), creating it and its directory if
    /// missing, and learns where the chain stands from the end of the file only.
    ///
    /// An incomplete last line left by a crash is kept and the chain continued after it (see
    /// the module documentation). A log whose end does not match its anchor, whose anchor is
    /// missing, or whose last complete line is not a record is refused: continuing it would
    /// bury the evidence of what happened.
    pub fn open(path: impl AsRef<Path>) -> Result<AuditLog, AuditError> {
        Self::open_with(path.as_ref(), OnMismatch::Refuse).map(|(log, _)| log)
    }

    fn open_with(
        path: &Path,
        on_mismatch: OnMismatch<'_>,
    ) -> Result<(AuditLog, Option<AuditRecordRef>), AuditError> {
        let log = AuditLog {
            path: path.to_owned(),
            anchor_path: anchor::anchor_path(path),
            state: Mutex::new(State {
                file: open_file(path)?,
                last: Point::genesis(),
                len: 0,
                in_sync: false,
            }),
            node: None,
        };
        let reanchored = {
            let mut state = log.lock_state();
            let _lock = FileLock::exclusive(&state.file).map_err(log.io("lock"))?;
            log.resync(&mut state, on_mismatch)?
        };
        Ok((log, reanchored))
    }

    /// Appends one record: `event` (a dotted name such as `session.started`) followed by
    /// `fields` in key order. Returns once the line is on disk (`fdatasync`), so an event the
    /// caller acts on is never lost to a crash afterwards.
    ///
    /// Blocks on the file lock and on the disk: from async code call it through
    /// `tokio::task::spawn_blocking` where a few milliseconds matter. Fails without writing
    /// when `fields` uses a header key, when `event` starts with `audit.`, when the line would
    /// exceed [`MAX_LINE_BYTES`], or when the log was changed outside Gatehouse since it was
    /// opened (see [`AuditLog::open`]).
    pub fn append(
        &self,
        event: &str,
        mut fields: Map<String, Value>,
    ) -> Result<AuditRecordRef, AuditError> {
        self.stamp(&mut fields);
        if event.starts_with(record::RESERVED_EVENT_PREFIX) {
            return Err(AuditError::ReservedEvent(event.to_owned()));
        }
        // Catch a bad field before taking any lock.
        record::render(u64::MAX, &record::now(), record::ZERO_HASH, event, &fields)?;
        let mut state = self.lock_state();
        let _lock = FileLock::exclusive(&state.file).map_err(self.io("lock"))?;
        let len = state.file.metadata().map_err(self.io("stat"))?.len();
        if !state.in_sync || len != state.len {
            // Another process appended (or this one failed half-way): learn the new end.
            self.resync(&mut state, OnMismatch::Refuse)?;
        }
        let prev = state.last.hash.clone();
        self.write_record(&mut state, false, &prev, event, &fields)
    }

    /// Appends several records under one lock and one disk sync: the way a busy bastion keeps
    /// the log durable without paying a sync per line. The records land all together or, after
    /// a crash mid-write, as an incomplete line the next writer recovers from. Refuses the whole
    /// batch, writing nothing, if any record would be refused by [`AuditLog::append`].
    pub fn append_batch(
        &self,
        records: &[(String, Map<String, Value>)],
    ) -> Result<Option<AuditRecordRef>, AuditError> {
        for (event, fields) in records {
            if event.starts_with(record::RESERVED_EVENT_PREFIX) {
                return Err(AuditError::ReservedEvent(event.clone()));
            }
            record::render(u64::MAX, &record::now(), record::ZERO_HASH, event, fields)?;
        }
        if records.is_empty() {
            return Ok(None);
        }
        let stamped: Vec<(String, Map<String, Value>)>;
        let records = match &self.node {
            Some(_) => {
                stamped = records
                    .iter()
                    .map(|(e, f)| {
                        let mut f = f.clone();
                        self.stamp(&mut f);
                        (e.clone(), f)
                    })
                    .collect();
                &stamped[..]
            }
            None => records,
        };
        let mut state = self.lock_state();
        let _lock = FileLock::exclusive(&state.file).map_err(self.io("lock"))?;
        let len = state.file.metadata().map_err(self.io("stat"))?.len();
        if !state.in_sync || len != state.len {
            self.resync(&mut state, OnMismatch::Refuse)?;
        }
        let prev = state.last.hash.clone();
        let batch: Vec<(&str, &Map<String, Value>)> =
            records.iter().map(|(e, f)| (e.as_str(), f)).collect();
        self.write_records(&mut state, false, &prev, &batch)
            .map(Some)
    }

    /// Stamps every record this handle writes with `node`, unless the record names one.
    pub fn stamped_with(mut self, node: &str) -> AuditLog {
        self.node = Some(node.to_owned());
        self
    }

    fn stamp(&self, fields: &mut Map<String, Value>) {
        if let Some(node) = &self.node
            && !fields.contains_key("node")
        {
            fields.insert("node".to_owned(), Value::String(node.clone()));
        }
    }

    /// Whether the log's path still names the file this handle writes to; a log deleted or
    /// replaced under a running writer would otherwise take lines nobody can ever read.
    pub fn still_at_path(&self) -> Result<(), AuditError> {
        use std::os::unix::fs::MetadataExt;
        let state = self.lock_state();
        let open = state.file.metadata().map_err(self.io("stat"))?;
        match std::fs::metadata(&self.path) {
            Ok(now) if now.dev() == open.dev() && now.ino() == open.ino() => Ok(()),
            Ok(_) => Err(AuditError::Moved {
                path: self.path.clone(),
                what: "replaced",
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(AuditError::Moved {
                path: self.path.clone(),
                what: "deleted",
            }),
            Err(e) => Err(self.io("stat")(e)),
        }
    }

    /// The log's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last record this handle wrote or saw, e.g. to print the head of the chain.
    pub fn last(&self) -> AuditRecordRef {
        let state = self.lock_state();
        AuditRecordRef {
            seq: state.last.seq,
            hash: state.last.hash.clone(),
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the mutex leaves the state possibly stale; re-reading the file
        // on the next append makes it right again.
        self.state.lock().unwrap_or_else(|poisoned| {
            let mut state = poisoned.into_inner();
            state.in_sync = false;
            state
        })
    }

    fn io(&self, op: &'static str) -> impl FnOnce(std::io::Error) -> AuditError {
        AuditError::io(op, &self.path)
    }

    /// Reads the end of the file and the anchor (under the exclusive lock), checks that they
    /// agree, and resumes after an incomplete last line. Returns the `audit.reanchored` record
    /// if one was written.
    fn resync(
        &self,
        state: &mut State,
        on_mismatch: OnMismatch<'_>,
    ) -> Result<Option<AuditRecordRef>, AuditError> {
        // Until this succeeds, no append may rely on the cached end.
        state.in_sync = false;
        let len = state.file.metadata().map_err(self.io("stat"))?.len();
        let end = read_end(&state.file, len, 1, MAX_END_BYTES).map_err(|e| {
            if e.kind() == ErrorKind::InvalidData {
                self.broken_tail(format!("no line break in its last {MAX_END_BYTES} bytes"))
            } else {
                self.io("read")(e)
            }
        })?;
        let last = match end.lines.last() {
            None => Point::genesis(),
            Some(line) => {
                let record = record::parse(line)
                    .map_err(|reason| self.broken_tail(format!("last complete line: {reason}")))?;
                Point {
                    seq: record.seq,
                    hash: record::hash_hex(line),
                }
            }
        };
        state.last = last.clone();
        state.len = len;

        let anchor = anchor::read(&self.anchor_path)?;
        let mismatch = match &anchor {
            None if len == 0 => {
                // A new log: anchor it before anything is written.
                anchor::write(&self.anchor_path, &Anchor::at(&last), true)?;
                None
            }
            None => Some("its anchor file is missing".to_owned()),
            Some(anchor) => match Position::of(&last, anchor) {
                Position::Matches => None,
                position => Some(position.describe(&last)),
            },
        };
        if let (Some(_), OnMismatch::Refuse) = (&mismatch, &on_mismatch) {
            // Refuse before writing anything, so the anchor keeps its evidence.
            return Err(match anchor {
                None => AuditError::AnchorMissing {
                    path: self.path.clone(),
                },
                Some(_) => AuditError::AnchorMismatch {
                    path: self.path.clone(),
                    detail: mismatch.unwrap_or_default(),
                },
            });
        }
        if end.partial.len() > MAX_LINE_BYTES {
            // Longer than any record: not a write cut short, and the verifier would refuse it.
            return Err(self.broken_tail(format!(
                "an incomplete last line of {} bytes, longer than any record",
                end.partial.len()
            )));
        }
        if !end.partial.is_empty() {
            self.recover(state, &end.partial)?;
        }
        let reanchored = match (mismatch, on_mismatch) {
            (Some(detail), OnMismatch::Reanchor(reason)) => {
                let mut fields = Map::new();
                fields.insert("reason".into(), reason.into());
                fields.insert("found".into(), detail.into());
                fields.insert(
                    "anchor_seq".into(),
                    anchor.as_ref().map_or(Value::Null, |a| a.seq.into()),
                );
                fields.insert(
                    "anchor_hash".into(),
                    anchor.map_or(Value::Null, |a| a.hash.into()),
                );
                let prev = state.last.hash.clone();
                Some(self.write_record(state, false, &prev, EVENT_REANCHORED, &fields)?)
            }
            _ => None,
        };
        state.in_sync = true;
        Ok(reanchored)
    }

    /// Terminates an incomplete last line and continues the chain after it with an
    /// `audit.recovered` record whose `prev` is the hash of the damaged bytes.
    fn recover(&self, state: &mut State, partial: &[u8]) -> Result<(), AuditError> {
        let fields = json!({
            "after": state.last.hash,
            "after_seq": state.last.seq,
            "damaged_bytes": partial.len(),
        });
        let Value::Object(fields) = fields else {
            unreachable!("json! object")
        };
        tracing::warn!(
            path = %self.path.display(),
            bytes = partial.len(),
            after_seq = state.last.seq,
            "audit log ended in an incomplete line (interrupted write); continuing after it"
        );
        // The damaged line is the previous line, so its bytes are what `prev` hashes.
        let prev = record::hash_hex(partial);
        self.write_record(state, true, &prev, EVENT_RECOVERED, &fields)?;
        Ok(())
    }

    /// Writes the record after `state.last`, chained to the line whose hash is `prev`, with
    /// the anchor protocol: anchor with the record pending (durable), the line (durable), then
    /// the anchor at the record. The caller holds the exclusive lock.
    fn write_record(
        &self,
        state: &mut State,
        newline_first: bool,
        prev: &str,
        event: &str,
        fields: &Map<String, Value>,
    ) -> Result<AuditRecordRef, AuditError> {
        self.write_records(state, newline_first, prev, &[(event, fields)])
    }

    /// Writes records after `state.last`, the first chained to the line whose hash is `prev`,
    /// with the anchor protocol: anchor with the last of them pending (durable), the lines in one
    /// write (durable), then the anchor at the last. The caller holds the exclusive lock.
    fn write_records(
        &self,
        state: &mut State,
        newline_first: bool,
        prev: &str,
        records: &[(&str, &Map<String, Value>)],
    ) -> Result<AuditRecordRef, AuditError> {
        let mut bytes = Vec::new();
        if newline_first {
            bytes.push(b'\n');
        }
        let mut prev = prev.to_owned();
        let mut next = state.last.clone();
        let time = record::now();
        for (event, fields) in records {
            let seq = next.seq + 1;
            let line = record::render(seq, &time, &prev, event, fields)?;
            let hash = record::hash_hex(line.as_bytes());
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            prev = hash.clone();
            next = Point { seq, hash };
        }

        // The anchor still vouches for the previous record; `pending` also vouches for the
        // last of these, so a crash after the write below is not mistaken for lines added by
        // hand.
        let pending = Anchor {
            pending: Some(next.clone()),
            ..Anchor::at(&state.last)
        };
        anchor::write(&self.anchor_path, &pending, true)?;

        // One write on an O_APPEND descriptor: the whole batch lands at the end, or (crash,
        // full disk) an incomplete line that the next writer recovers from.
        let written = state
            .file
            .write_all(&bytes)
            .map_err(self.io("append to"))
            .and_then(|()| state.file.sync_data().map_err(self.io("fdatasync")));
        if let Err(err) = written {
            // A full disk can take part of the write: whole lines the anchor does not vouch
            // for, which would stop the log, and a cut line. Nobody was told these records
            // exist, so cut the file back to where this handle left it (under the lock), and
            // the same records are written again, with the same `seq`s, once the disk allows.
            // If that fails too, the next append re-reads the end and recovers from it.
            if state.file.set_len(state.len).is_err() {
                state.in_sync = false;
            }
            return Err(err);
        }
        state.len += bytes.len() as u64;
        state.last = next.clone();

        // If this fails the anchor still names the record as pending, which verifies; the
        // next append rewrites it anyway.
        if let Err(err) = anchor::write(&self.anchor_path, &Anchor::at(&next), false) {
            tracing::warn!(error = %err, "could not update the audit anchor after an append");
        }
        Ok(AuditRecordRef {
            seq: next.seq,
            hash: next.hash,
        })
    }

    fn broken_tail(&self, reason: String) -> AuditError {
        AuditError::BrokenTail {
            path: self.path.clone(),
            reason,
        }
    }
}

/// Accepts a log whose end no longer matches its anchor (or whose anchor is missing), after an
/// operator has investigated why, by appending an `audit.reanchored` record that keeps what the
/// anchor said, what the log held and `reason`, then anchoring at that record.
///
/// This is the only way to make [`AuditLog::open`] continue such a log, and [`verify`] reports
/// the record as a warning forever, so the acceptance is itself evidence. Returns `None`, and
/// writes nothing, when the log already matches its anchor.
///
/// [`verify`]: super::verify()
pub fn reanchor(
    path: impl AsRef<Path>,
    reason: &str,
) -> Result<Option<AuditRecordRef>, AuditError> {
    AuditLog::open_with(path.as_ref(), OnMismatch::Reanchor(reason)).map(|(_, r)| r)
}

/// Opens (or creates, with its directory) the log for reading and appending.
fn open_file(path: &Path) -> Result<File, AuditError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(AuditError::io("create directory", dir))?;
    }
    let mut options = OpenOptions::new();
    options.read(true).append(true).mode(FILE_MODE);
    match options.clone().create_new(true).open(path) {
        Ok(file) => {
            // The umask may have removed group read; the mode is part of the contract.
            file.set_permissions(Permissions::from_mode(FILE_MODE))
                .map_err(AuditError::io("set the mode of", path))?;
            anchor::sync_parent(path)?;
            Ok(file)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            options.open(path).map_err(AuditError::io("open", path))
        }
        Err(e) => Err(AuditError::io("create", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(
            all[3].contains("\"event\":\"session.ended\",\"bytes_out\":5120,\"exit_status\":0}")
        );
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
}
