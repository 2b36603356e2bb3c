//! The transcript of one file session: each operation, as it completes, goes into the session
//! index (`file_ops`) and the audit log (`file.op`), with its path, bytes, result and time.
//! File contents are never recorded; a role with `hash = true` gets each file's SHA-256.
//!
//! An operation that cannot be indexed ends the session (fail closed): a transfer that leaves
//! no trace is the thing this module exists to prevent.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::bastion::Bastion;
use crate::events::{Event, EventKind, Events};
use crate::store::StoreError;
use crate::store::transfers::FileOp;

/// What an operation did, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It was allowed and the target did it.
    Ok,
    /// Gatehouse refused it; the text says why.
    Denied(String),
    /// The target refused or failed it.
    Failed(String),
    /// The session ended before it completed.
    Interrupted(String),
}

impl Outcome {
    /// The result column: `ok`, `denied: …`, `failed: …`, `interrupted: …`.
    pub fn text(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Denied(why) => format!("denied: {why}"),
            Outcome::Failed(why) => format!("failed: {why}"),
            Outcome::Interrupted(why) => format!("interrupted: {why}"),
        }
    }
}

/// One operation to record.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `read`, `write`, `list`, …
    pub op: &'static str,
    /// The path on the target.
    pub path: String,
    /// The new name of a rename.
    pub to_path: Option<String>,
    /// File bytes moved.
    pub bytes: Option<u64>,
    /// What came of it.
    pub outcome: Outcome,
    /// The file's SHA-256, if taken.
    pub sha256: Option<String>,
}

impl Entry {
    /// An operation on `path` with `outcome` and nothing else to say.
    pub fn new(op: &'static str, path: &str, outcome: Outcome) -> Entry {
        Entry {
            op,
            path: path.to_owned(),
            to_path: None,
            bytes: None,
            outcome,
            sha256: None,
        }
    }
}

/// The transcript of one file session (one target, one grant).
pub struct Transcript {
    bastion: Arc<Bastion>,
    /// The event every line starts from: user, target, role, grant, session.
    template: Event,
    session_id: String,
    seq: AtomicI64,
}

impl Transcript {
    /// The transcript of session `session_id`; `template` names its user, target, role and grant.
    pub fn new(bastion: Arc<Bastion>, session_id: &str, template: Event) -> Arc<Transcript> {
        Arc::new(Transcript {
            bastion,
            template,
            session_id: session_id.to_owned(),
            seq: AtomicI64::new(0),
        })
    }

    /// Records one operation in the index and the audit log.
    pub async fn record(&self, entry: Entry) -> Result<(), StoreError> {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let op = FileOp {
            session_id: self.session_id.clone(),
            seq,
            at_ms: chrono::Utc::now().timestamp_millis(),
            op: entry.op.to_owned(),
            path: entry.path,
            to_path: entry.to_path,
            bytes: entry.bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
            result: entry.outcome.text(),
            sha256: entry.sha256,
        };
        self.bastion.events.emit(Event {
            reason: match &entry.outcome {
                Outcome::Ok => None,
                other => Some(other.text()),
            },
            detail: Some(serde_json::json!({
                "seq": op.seq,
                "op": op.op,
                "path": op.path,
                "to_path": op.to_path,
                "bytes": op.bytes,
                "result": op.result,
                "sha256": op.sha256,
            })),
            ..self.template.clone()
        });
        self.bastion.store.file_op(&op).await
    }
}

/// An audit line for an operation refused before it reached any target's session (a path that
/// names no target, or the bastion's own root), so that it is on record all the same.
pub fn refused_outside(events: &Events, user: &str, entry: &Entry) {
    events.emit(Event {
        user: Some(user.to_owned()),
        reason: Some(entry.outcome.text()),
        detail: Some(serde_json::json!({
            "op": entry.op,
            "path": entry.path,
            "result": entry.outcome.text(),
        })),
        ..Event::new(EventKind::FileOperation)
    });
}
