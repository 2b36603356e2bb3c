//! Proving the chain: [`verify`].

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::AuditError;
use super::anchor::{self, Anchor, Point, Position};
use super::lock::FileLock;
use super::record::{self, EVENT_REANCHORED, EVENT_RECOVERED, MAX_LINE_BYTES, ZERO_HASH};

/// What [`verify`] found in a sound log: enough to compare with a copy kept elsewhere (the
/// final hash) and to know what needed explaining (the warnings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Lines in the file, damaged lines left by crashes included.
    pub lines: usize,
    /// The last record's `seq`, which is the number of records (0 for an empty log).
    pub last_seq: u64,
    /// The last record's hash ([`ZERO_HASH`] for an empty log); recording it
    /// off the box makes a later rewrite of the whole log detectable.
    pub last_hash: String,
    /// Things that are not tampering but that a reviewer should know about.
    pub warnings: Vec<VerifyWarning>,
}

/// Something [`verify`] accepted but reports: a crash remnant, an operator's re-anchoring, a
/// missing anchor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyWarning {
    /// The line it is about, when it is about one (1-based).
    pub line: Option<usize>,
    /// What it is, in a sentence.
    pub message: String,
}

impl fmt::Display for VerifyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Whether a failure is evidence about the log or only about reading it, so the CLI can exit
/// differently for "tampered" and "could not check".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FailureKind {
    /// The log is not the unbroken chain Gatehouse wrote.
    Broken,
    /// The log or its anchor could not be read; nothing is known about the chain past `line`.
    Unreadable,
}

/// The first thing wrong with the log, named by line so a reviewer can look at it
/// (`sed -n 'Np' data/audit.jsonl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyFailure {
    /// The first bad line, 1-based; 0 when the problem is not about a line (the file cannot be
    /// opened, the anchor is unreadable).
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
    /// Tampering or I/O.
    pub kind: FailureKind,
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.reason)
        } else {
            write!(f, "line {}: {}", self.line, self.reason)
        }
    }
}

impl std::error::Error for VerifyFailure {}

/// Checks that the log at `path` is the unbroken chain Gatehouse wrote and that it ends where
/// its anchor says, naming the first line that is not.
///
/// Streams the file with constant memory, without blocking writers except while it reads the
/// lines appended during the check and the anchor (under a shared lock). See the module
/// documentation for what is and is not detected.
pub fn verify(path: impl AsRef<Path>) -> Result<VerifyReport, VerifyFailure> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| unreadable(0, format!("{}: {e}", path.display())))?;
    let mut walker = Walker::new();

    // Most of the file, without the lock: complete lines only, since an append may be under
    // way at the end.
    let mut offset = 0u64;
    walk(&file, &mut walker, &mut offset, false)?;

    // The rest, and the anchor, with appends held off so both describe the same moment.
    let _lock = FileLock::shared(&file)
        .map_err(|e| unreadable(0, format!("cannot lock {}: {e}", path.display())))?;
    (&file)
        .seek(SeekFrom::Start(offset))
        .map_err(|e| unreadable(walker.line + 1, e.to_string()))?;
    walk(&file, &mut walker, &mut offset, true)?;
    let anchor_file = anchor::anchor_path(path);
    let anchor = anchor::read(&anchor_file).map_err(|e| match e {
        // Gatehouse only ever writes a valid anchor, atomically.
        AuditError::BadAnchor { .. } => broken(0, e.to_string()),
        _ => unreadable(0, e.to_string()),
    })?;
    walker.finish(anchor, &anchor_file)
}

/// Feeds lines from the current position of `file` to `walker`. Before the end is reached
/// under the lock (`to_end` false) an incomplete last line is left for later.
fn walk(
    file: &File,
    walker: &mut Walker,
    offset: &mut u64,
    to_end: bool,
) -> Result<(), VerifyFailure> {
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut buf = Vec::new();
    loop {
        let line = read_line(&mut reader, &mut buf)
            .map_err(|e| unreadable(walker.line + 1, format!("cannot read: {e}")))?;
        let Some(line) = line else {
            return Ok(());
        };
        if !line.complete && !to_end {
            return Ok(());
        }
        walker.line(&buf, line)?;
        *offset += line.consumed;
    }
}

/// How [`read_line`] found a line.
#[derive(Debug, Clone, Copy)]
struct LineRead {
    /// Bytes taken from the file, newline included.
    consumed: u64,
    /// Whether it ended with a newline.
    complete: bool,
    /// Whether it was longer than [`MAX_LINE_BYTES`] (and so not kept).
    too_long: bool,
}

/// Reads one line into `buf` without its newline, keeping at most [`MAX_LINE_BYTES`] so a
/// file without newlines cannot exhaust memory. `None` at the end of the file.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Option<LineRead>> {
    buf.clear();
    let mut read = LineRead {
        consumed: 0,
        complete: false,
        too_long: false,
    };
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((read.consumed > 0).then_some(read));
        }
        let newline = available.iter().position(|b| *b == b'\n');
        let part = &available[..newline.unwrap_or(available.len())];
        if !read.too_long {
            if buf.len() + part.len() > MAX_LINE_BYTES {
                read.too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(part);
            }
        }
        let used = part.len() + usize::from(newline.is_some());
        reader.consume(used);
        read.consumed += used as u64;
        if newline.is_some() {
            read.complete = true;
            return Ok(Some(read));
        }
    }
}

fn broken(line: usize, reason: impl Into<String>) -> VerifyFailure {
    VerifyFailure {
        line,
        reason: reason.into(),
        kind: FailureKind::Broken,
    }
}

fn unreadable(line: usize, reason: impl Into<String>) -> VerifyFailure {
    VerifyFailure {
        line,
        reason: reason.into(),
        kind: FailureKind::Unreadable,
    }
}

/// A record that checked out.
#[derive(Debug, Clone)]
struct Link {
    seq: u64,
    hash: String,
    line: usize,
}

/// A line that is not a record, which only an `audit.recovered` record right after it can
/// excuse.
#[derive(Debug)]
struct Broken {
    line: usize,
    hash: String,
    reason: String,
}

/// The verifier's state between lines: a few hashes, whatever the size of the log.
struct Walker {
    /// Lines seen.
    line: usize,
    /// The last good record (line 0, seq 0, [`ZERO_HASH`] before the first).
    last: Link,
    /// The good record before `last`, to recognise an inserted line.
    before_last: Option<Link>,
    /// A damaged line waiting for its `audit.recovered` record.
    broken: Option<Broken>,
    /// (seq, line) of every `audit.recovered` record: each shifts line numbers against seqs by
    /// one. As many as there were crashes.
    recoveries: Vec<(u64, usize)>,
    warnings: Vec<VerifyWarning>,
}

impl Walker {
    fn new() -> Walker {
        Walker {
            line: 0,
            last: Link {
                seq: 0,
                hash: ZERO_HASH.to_owned(),
                line: 0,
            },
            before_last: None,
            broken: None,
            recoveries: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn line(&mut self, bytes: &[u8], read: LineRead) -> Result<(), VerifyFailure> {
        self.line += 1;
        let line = self.line;
        if !read.complete {
            if let Some(b) = self.broken.take() {
                return Err(broken(b.line, format!("not an audit record: {}", b.reason)));
            }
            return Err(broken(
                line,
                "incomplete last line (no newline): a write was interrupted, and Gatehouse \
                 resumes after it when it next opens the log, or the line was added by hand",
            ));
        }
        if read.too_long {
            if let Some(b) = self.broken.take() {
                return Err(broken(b.line, format!("not an audit record: {}", b.reason)));
            }
            return Err(broken(
                line,
                format!("not an audit record: longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        let parsed = record::parse(bytes);
        let hash = record::hash_hex(bytes);
        let rec = match parsed {
            Ok(rec) => rec,
            Err(reason) => {
                if let Some(b) = self.broken.take() {
                    return Err(broken(b.line, format!("not an audit record: {}", b.reason)));
                }
                self.broken = Some(Broken { line, hash, reason });
                return Ok(());
            }
        };

        if let Some(b) = self.broken.take() {
            // Only the record Gatehouse writes after an interrupted write may follow a damaged
            // line: the next seq, chained to the damaged bytes, naming the last good record.
            let excuses = rec.event == EVENT_RECOVERED
                && rec.seq == self.last.seq + 1
                && rec.prev == b.hash
                && rec.fields.get("after").and_then(Value::as_str) == Some(&self.last.hash)
                && rec.fields.get("after_seq").and_then(Value::as_u64) == Some(self.last.seq);
            if !excuses {
                return Err(broken(b.line, format!("not an audit record: {}", b.reason)));
            }
            self.warnings.push(VerifyWarning {
                line: Some(b.line),
                message: format!(
                    "incomplete record left by an interrupted write (crash or full disk); the \
                     chain resumes at line {line}"
                ),
            });
            self.recoveries.push((rec.seq, line));
        } else {
            self.check_link(&rec, &hash, line)?;
            if rec.event == EVENT_RECOVERED {
                return Err(broken(
                    line,
                    "audit.recovered record without the damaged line it covers before it: that \
                     line was removed",
                ));
            }
        }

        if rec.event == EVENT_REANCHORED {
            let text = |key: &str| match rec.fields.get(key) {
                Some(Value::String(s)) => s.escape_debug().to_string(),
                Some(other) => record::to_ascii_json(other),
                None => "?".to_owned(),
            };
            self.warnings.push(VerifyWarning {
                line: Some(line),
                message: format!(
                    "an operator re-anchored the log here (reason: \"{}\"): the anchor had \
                     recorded seq {} as the last record, but {}",
                    text("reason"),
                    text("anchor_seq"),
                    text("found")
                ),
            });
        }
        self.before_last = Some(std::mem::replace(
            &mut self.last,
            Link {
                seq: rec.seq,
                hash,
                line,
            },
        ));
        Ok(())
    }

    /// Checks that `rec` (whose line hashes to `hash`) follows the last good record, and
    /// otherwise names the first bad line.
    fn check_link(
        &self,
        rec: &record::Record,
        hash: &str,
        line: usize,
    ) -> Result<(), VerifyFailure> {
        let last = &self.last;
        if hash == last.hash {
            return Err(broken(
                line,
                format!("duplicate: a copy of line {}", last.line),
            ));
        }
        if rec.seq == last.seq + 1 {
            if rec.prev == last.hash {
                return Ok(());
            }
            if last.line == 0 {
                return Err(broken(
                    line,
                    "edited: the first record's prev must be 64 zeros",
                ));
            }
            // The line before changed after this one recorded its hash. (Editing only this
            // line's prev looks the same and is reported the same way.)
            return Err(broken(
                last.line,
                format!("edited: its hash no longer matches the prev recorded by line {line}"),
            ));
        }
        if rec.seq > last.seq + 1 {
            return Err(broken(
                line,
                format!(
                    "seq {} follows seq {}: {} record(s) before this line were removed or moved",
                    rec.seq,
                    last.seq,
                    rec.seq - last.seq - 1
                ),
            ));
        }
        if let Some(before) = &self.before_last
            && rec.seq == last.seq
            && rec.prev == before.hash
        {
            return Err(broken(
                last.line,
                format!(
                    "inserted: line {line} continues the chain from line {}, skipping this line",
                    before.line
                ),
            ));
        }
        Err(broken(
            line,
            format!(
                "seq {} does not follow seq {}: line out of order or duplicated",
                rec.seq, last.seq
            ),
        ))
    }

    /// The line that holds record `seq`, given that the chain checked out up to it.
    fn line_of_seq(&self, seq: u64) -> usize {
        let (base_seq, base_line) = self
            .recoveries
            .iter()
            .rev()
            .find(|(s, _)| *s <= seq)
            .copied()
            .unwrap_or((0, 0));
        base_line + usize::try_from(seq - base_seq).unwrap_or(usize::MAX)
    }

    /// Checks the end of the log against the anchor and produces the report.
    fn finish(
        mut self,
        anchor: Option<Anchor>,
        anchor_file: &Path,
    ) -> Result<VerifyReport, VerifyFailure> {
        if let Some(b) = self.broken.take() {
            return Err(broken(b.line, format!("not an audit record: {}", b.reason)));
        }
        let end = Point {
            seq: self.last.seq,
            hash: self.last.hash.clone(),
        };
        match anchor {
            None if self.line > 0 => self.warnings.push(VerifyWarning {
                line: None,
                message: format!(
                    "no anchor file {}: records appended to or cut from the end of the log by \
                     hand cannot be detected",
                    anchor_file.display()
                ),
            }),
            None => {}
            Some(anchor) => match Position::of(&end, &anchor) {
                Position::Matches => {}
                Position::Appended { after } => {
                    return Err(broken(
                        self.line_of_seq(after + 1),
                        format!(
                            "appended outside Gatehouse: the anchor records seq {after} as the \
                             last record written, and this line holds seq {}",
                            after + 1
                        ),
                    ));
                }
                Position::Truncated { anchored } => {
                    return Err(broken(
                        self.line + 1,
                        format!(
                            "missing: the log ends at line {} (seq {}) but the anchor records \
                             seq {anchored} as written: the tail was removed",
                            self.line, end.seq
                        ),
                    ));
                }
                Position::Replaced => {
                    return Err(broken(
                        self.last.line,
                        "edited: its hash no longer matches the anchor",
                    ));
                }
            },
        }
        Ok(VerifyReport {
            lines: self.line,
            last_seq: end.seq,
            last_hash: end.hash,
            warnings: self.warnings,
        })
    }
}

#[cfg(test)]
mod tests;
