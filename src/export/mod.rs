//! A verified export of one session (`gatehouse sessions export ID --out DIR`): evidence that
//! can be handed to someone who has no access to the bastion, and checked by them.
//!
//! The directory holds:
//!
//! * `<session-id>.cast`: the recording, byte for byte (none for file and forward sessions,
//!   whose operations are audit lines);
//! * `audit.jsonl`: the audit lines of the session (start, end with the recording's hash,
//!   denials and file operations in it, its review) and of the grant it ran under (request,
//!   approvals, activation, break-glass, end), exactly as the log holds them, in log order;
//! * `manifest.json`: the session as indexed, its hold, and for every line its `seq`, its
//!   SHA-256 and the `prev` of the line that follows it in the log, plus the log's last line
//!   when the export was made;
//! * `VERIFY.txt`: how to check all this by hand;
//! * `SHA256SUMS`: the SHA-256 of every other file, in the format `sha256sum -c` reads.
//!
//! What a third party can check without Gatehouse: every file against `SHA256SUMS`; the cast's
//! hash against `recording_sha256` in the session's `session.ended` line; each line's hash
//! against the next line's `prev` (directly when the next line is exported too, and against a
//! copy of the audit log kept elsewhere, by `seq`, otherwise). `gatehouse sessions verify
//! --export DIR` does all of it ([`verify`]).
//!
//! An export is a statement that the evidence holds: a session whose recording is missing or
//! no longer matches its recorded hash, or whose lines are not in an unbroken stretch of the
//! chain, is not exported; the error says which.

mod select;
pub mod verify;
mod write;

use serde::{Deserialize, Serialize};

pub use select::{belongs, hex_sha256};
pub use verify::{VerifyOutcome, verify};
pub use write::{ExportRequest, export};

/// The `format` of the manifests this version writes and reads.
pub const FORMAT: &str = "gatehouse-session-export/1";

/// The checksum file, in `sha256sum` format.
pub const SUMS: &str = "SHA256SUMS";

/// The manifest.
pub const MANIFEST: &str = "manifest.json";

/// The audit lines.
pub const AUDIT: &str = "audit.jsonl";

/// How to check the export by hand.
pub const HOWTO: &str = "VERIFY.txt";

/// What an export holds besides its files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The session's id.
    pub session_id: String,
    /// The grant it ran under.
    pub grant_id: i64,
    /// The session as the index holds it.
    pub session: serde_json::Value,
    /// Its legal hold, if any.
    pub hold: Option<serde_json::Value>,
    /// The recording, if the session has one.
    pub recording: Option<RecordingEntry>,
    /// The audit lines.
    pub audit: AuditEntry,
    /// When the export was made (RFC 3339).
    pub exported_at: String,
    /// Who made it (the operator account).
    pub exported_by: String,
    /// The node it was made on.
    pub node: String,
}

/// The recording in an export.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordingEntry {
    /// Its file name in the export.
    pub file: String,
    /// Its SHA-256, as the session's `session.ended` line records it.
    pub sha256: String,
    /// The `seq` of that line.
    pub ended_seq: u64,
}

/// The audit lines in an export.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Their file name in the export.
    pub file: String,
    /// The log they were taken from, on the bastion.
    pub log: String,
    /// One entry per line, in the file's order.
    pub lines: Vec<LineEntry>,
    /// The log's last line when the export was made: its `seq` and SHA-256, to compare with
    /// the hash `gatehouse audit verify` prints, or with a copy kept elsewhere.
    pub head_seq: Option<u64>,
    /// See `head_seq`.
    pub head_sha256: Option<String>,
}

/// One exported audit line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineEntry {
    /// Its `seq`.
    pub seq: u64,
    /// Its `event`.
    pub event: String,
    /// SHA-256 of the line's bytes without its newline: what the next line's `prev` holds.
    pub sha256: String,
    /// The `prev` of the line after it in the log (none if it was the last line).
    pub next_prev: Option<String>,
}

/// Why a session was not exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The output directory exists and holds something.
    #[error(
        "{0} is not empty; an export never overwrites anything (name a new or empty directory)"
    )]
    NotEmpty(String),
    /// The session ran on another node, which holds its recording and audit lines.
    #[error(
        "session {id} ran on node {node}, which holds its recording and its audit lines; run the export there"
    )]
    OtherNode {
        /// The session.
        id: String,
        /// Its node.
        node: String,
    },
    /// The recording cannot be vouched for.
    #[error("the recording cannot be exported: {0}")]
    Recording(String),
    /// The audit lines cannot be read or vouched for.
    #[error("the audit lines cannot be exported: {0}")]
    Audit(String),
    /// Writing the export failed (nothing is left at the output path).
    #[error("writing the export: {0}")]
    Io(String),
}
