//! Appending to the log: [`AuditLog`]. Learning where the log stands when it is opened, or
//! after another process wrote to it, is in [`resync`].

mod resync;
#[cfg(test)]
mod tests;

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde_json::{Map, Value};

use super::anchor::{self, Anchor, FILE_MODE, Point};
use super::lock::FileLock;
use super::record;
use super::{AuditError, AuditRecordRef};
use resync::OnMismatch;

/// Mode of a directory the log creates: the auditors' group may enter it, nobody else.
const DIR_MODE: u32 = 0o750;

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
    /// exceed [`MAX_LINE_BYTES`](record::MAX_LINE_BYTES), or when the log was changed outside
    /// Gatehouse since it was opened (see [`AuditLog::open`]).
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
