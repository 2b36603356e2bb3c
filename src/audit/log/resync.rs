//! Learning where the log stands: reading its end and its anchor under the lock, refusing a
//! log changed outside Gatehouse, continuing after an interrupted write, and recording that an
//! operator accepted a changed log.

use std::io::ErrorKind;

use serde_json::{Map, Value, json};

use super::{AuditLog, State};
use crate::audit::anchor::{self, Anchor, Point, Position};
use crate::audit::backwards::read_end;
use crate::audit::record::{self, EVENT_REANCHORED, EVENT_RECOVERED, MAX_LINE_BYTES};
use crate::audit::{AuditError, AuditRecordRef};

/// The most that is read from the end of the log to find its last record: the last complete
/// line and an incomplete one after it, each at most [`MAX_LINE_BYTES`] long.
const MAX_END_BYTES: u64 = 3 * MAX_LINE_BYTES as u64;

/// What to do when the log's end does not match its anchor.
pub(super) enum OnMismatch<'a> {
    /// Refuse: the log was changed outside Gatehouse.
    Refuse,
    /// Accept it and record that an operator did, and why.
    Reanchor(&'a str),
}

impl AuditLog {
    /// Reads the end of the file and the anchor (under the exclusive lock), checks that they
    /// agree, and resumes after an incomplete last line. Returns the `audit.reanchored` record
    /// if one was written.
    pub(super) fn resync(
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

    fn broken_tail(&self, reason: String) -> AuditError {
        AuditError::BrokenTail {
            path: self.path.clone(),
            reason,
        }
    }
}
