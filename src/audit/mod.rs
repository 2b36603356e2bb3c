//! The tamper-evident audit log: `data/audit.jsonl`.
//!
//! Every decision and state change the bastion makes (a login, a denial and why, a grant
//! transition, a session's start and end, a recording's hash, an alert delivery, a policy
//! reload, a break-glass review) is one line of JSON here, so that after an incident a reviewer
//! can reconstruct who did what, and can prove that nobody quietly removed the awkward part.
//!
//! # Line format
//!
//! ```text
//! {"seq":1,"time":"2025-03-01T09:30:00.125Z","prev":"000…000","event":"session.started","target":"web-01","user":"alice"}
//! {"seq":2,"time":"2025-03-01T09:41:12.002Z","prev":"5d1c…e8a0","event":"session.ended","bytes_out":5120,"exit_status":0,"user":"alice"}
//! ```
//!
//! * `seq` counts records from 1 without gaps, `time` is RFC 3339 UTC with milliseconds, and
//!   `prev` is the lowercase hex SHA-256 of the previous line's exact bytes without its newline
//!   (64 zeros for the first record). These three always come first, in this order, followed by
//!   `event` and then the caller's fields in sorted key order.
//! * Every line is printable ASCII (bytes 0x20–0x7E) and ends with `\n`. Anything else inside
//!   a string (newline, NUL, escape sequences, U+2028, any other non-ASCII character) is
//!   written as a JSON `\uXXXX` escape. So no user-supplied name, reason or command can start a
//!   line of its own or smuggle control characters to whoever `cat`s the file.
//!
//! # What is detected
//!
//! [`verify`] streams the file and names the first line that is wrong:
//!
//! * a line edited in place: the next line's `prev` no longer matches, and the edited line is
//!   named (an edit confined to a line's own `prev` field looks exactly like an edit of the line
//!   before it, and is reported as that);
//! * lines removed: the line after the gap is named (its `seq` jumps);
//! * lines reordered: the first line out of order is named;
//! * a line inserted with a correctly computed hash, or a line duplicated: named, because the
//!   line after it continues the chain from the line before it (or repeats it);
//! * malformed lines, or lines not written by Gatehouse (raw control characters, a different
//!   field order, a bad hash);
//! * lines appended, or the tail truncated, outside Gatehouse: see the anchor below.
//!
//! # The anchor
//!
//! A hash chain alone cannot tell a line that Gatehouse appended from one that someone appended
//! by hand after computing the hash correctly, nor notice the last lines being cut off. So every
//! append also rewrites a small anchor file beside the log, `audit.jsonl.head` (see
//! [`anchor_path`]), holding the `seq` and hash of the last record, atomically (write to a
//! temporary file, fsync, rename). Before the line is written the anchor also names the record
//! about to be written (`pending`), so that a crash between writing the line and updating the
//! anchor is told apart from a hand-appended line. [`verify`] then reports lines after the
//! anchored one, a log that ends before it, and a last line whose hash differs from it;
//! [`AuditLog::open`] refuses to continue a log whose end does not match its anchor rather than
//! overwrite that evidence. [`reanchor`] is the operator's explicit, audited way past that.
//!
//! What the anchor does **not** protect against: anyone able to rewrite both files (recomputing
//! every hash and the anchor), or to delete both, produces a log that verifies. Nor does
//! anything check `time`: it is the clock's word. There is no key to stop them; the
//! defence against an attacker with write access to `data/` is to ship the lines off the box
//! as they are written (syslog, a SIEM) and compare, or to record the final hash that
//! [`verify`] prints somewhere they cannot reach.
//!
//! # Crashes
//!
//! A record is written with one `write` on an append-only descriptor and `fdatasync`ed before
//! [`AuditLog::append`] returns. A crash or a full disk can still leave an incomplete last line
//! (no newline; possibly zeros). Gatehouse keeps it, because truncating it would destroy
//! evidence and refusing to start would take the bastion down over a power cut: the next writer
//! terminates it with a newline and continues the chain from the last complete record with an
//! `audit.recovered` record whose `prev` is the hash of the damaged line's bytes and whose
//! `after`/`after_seq` name the last complete record. [`verify`] accepts exactly that shape and
//! reports it as a warning. A complete line that is not a record is never papered over: no crash
//! can produce one, so [`AuditLog::open`] refuses to continue after it. (A second crash during
//! the recovery write itself can leave that shape too; then an operator must look.)
//!
//! # Concurrency
//!
//! The server and the operator CLI append to the same file. Each append holds an exclusive
//! `flock` on the log for the whole anchor–write–anchor sequence, and re-reads the end of the
//! file when it grew since this process last wrote, so writers never interleave or fork the
//! chain. [`verify`] holds a shared lock only at the end, while it reads the lines appended
//! during the check and the anchor, so a long verification does not hold up the server.
//!
//! Rotation: stop every writer, then move the log and its anchor aside together; the next
//! [`AuditLog::open`] starts a new chain.
//!
//! [`verify`]: fn@verify

mod anchor;
mod backwards;
mod lock;
mod log;
mod read;
mod record;
mod tail;
#[cfg(test)]
mod test_support;
mod verify;
mod writer;

use std::io;
use std::path::PathBuf;

use serde::Serialize;

pub use anchor::anchor_path;
pub use log::{AuditLog, reanchor};
pub use read::{Entry, Scanned, each_line, read_line, scan};
pub use record::{MAX_LINE_BYTES, ZERO_HASH};
pub use tail::{DEFAULT_TAIL_LINES, follow, format_line, tail};
pub use verify::{FailureKind, VerifyFailure, VerifyReport, VerifyWarning, verify};
pub use writer::{AuditThread, AuditWriter, DurableError};

/// Which record an append produced, so a caller can point at it from elsewhere (the sessions
/// table, an alert) and a reviewer can find it with `seq` and prove it with `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecordRef {
    /// The record's `seq`.
    pub seq: u64,
    /// Lowercase hex SHA-256 of the record's line, as the next record's `prev` will hold it.
    pub hash: String,
}

/// Why the audit log could not be opened or written; each says what the operator should do,
/// because a bastion that cannot audit is expected to stop granting access.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file operation failed.
    #[error("audit log: cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A field would collide with the header fields, which would make the line ambiguous.
    #[error(
        "audit record field {0:?} is reserved (seq, time, prev and event are written by the log)"
    )]
    ReservedField(String),
    /// The `audit.` events are written by the log itself; letting callers write them would let
    /// a caller fake a recovery.
    #[error("audit event name {0:?} is reserved for the log's own records")]
    ReservedEvent(String),
    /// The line would exceed [`MAX_LINE_BYTES`]; callers should shorten user-supplied text.
    #[error("audit record of {0} bytes exceeds the limit of {MAX_LINE_BYTES} bytes")]
    TooLarge(usize),
    /// The log ends in a complete line that is not a record, which no crash can produce.
    #[error(
        "audit log {} ends in a damaged record ({reason}); run `gatehouse audit verify`, investigate, then move the log and its anchor aside",
        path.display()
    )]
    BrokenTail {
        /// The log.
        path: PathBuf,
        /// What is wrong with the last line.
        reason: String,
    },
    /// The log does not end where the anchor says Gatehouse last wrote: lines were appended or
    /// removed outside Gatehouse.
    #[error(
        "audit log {} does not end where Gatehouse last wrote it: {detail}; run `gatehouse audit verify`, and once this is explained `gatehouse audit reanchor --reason TEXT`",
        path.display()
    )]
    AnchorMismatch {
        /// The log.
        path: PathBuf,
        /// How the end differs from the anchor.
        detail: String,
    },
    /// The log has records but its anchor file is gone, so appended or truncated lines could
    /// no longer be detected.
    #[error(
        "audit log {} has records but its anchor {} is missing; run `gatehouse audit verify`, and once this is explained `gatehouse audit reanchor --reason TEXT`",
        path.display(),
        anchor_path(path).display()
    )]
    AnchorMissing {
        /// The log.
        path: PathBuf,
    },
    /// The log's path no longer names the file being written.
    #[error(
        "audit log {} was {what} while in use; lines are held until a log can be opened there again (after investigating, `gatehouse audit reanchor --reason TEXT` starts one that records the gap)",
        path.display()
    )]
    Moved {
        /// The log.
        path: PathBuf,
        /// `deleted` or `replaced`.
        what: &'static str,
    },
    /// The anchor file exists but cannot be understood.
    #[error("audit anchor {} is not valid: {reason}", path.display())]
    BadAnchor {
        /// The anchor file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl AuditError {
    /// Wraps an I/O error with what was being done to which file.
    fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> AuditError {
        let path = path.into();
        move |source| AuditError::Io { op, path, source }
    }
}
