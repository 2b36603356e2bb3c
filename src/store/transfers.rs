//! The transcript of file sessions: every SFTP operation with its path, bytes, result and time,
//! kept next to the session index so that a reviewer finds what was copied where.

use async_trait::async_trait;

use super::StoreError;

/// One operation of a file session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileOp {
    /// The session (its index row).
    pub session_id: String,
    /// Its place in the session, from 1.
    pub seq: i64,
    /// When it completed, in Unix milliseconds.
    pub at_ms: i64,
    /// What it did: `read`, `write`, `list`, `stat`, `mkdir`, `rmdir`, `remove`, `rename`,
    /// `setstat`, `symlink`, `readlink`, `extension`.
    pub op: String,
    /// The path on the target it was checked on (resolved on the target when it got that far).
    pub path: String,
    /// The new name, for a rename.
    pub to_path: Option<String>,
    /// File bytes moved (reads and writes).
    pub bytes: Option<i64>,
    /// `ok`, or `denied: …`, `failed: …`, `interrupted: …`.
    pub result: String,
    /// SHA-256 of the file transferred, when the role asks for it and the transfer was whole.
    pub sha256: Option<String>,
}

/// Where file-session transcripts are kept, whichever database it is.
#[async_trait]
pub trait FileTranscripts: Send + Sync {
    /// Appends one operation.
    async fn file_op(&self, op: &FileOp) -> Result<(), StoreError>;
    /// A session's operations, in order.
    async fn file_ops(&self, session_id: &str) -> Result<Vec<FileOp>, StoreError>;
    /// The sessions with an operation whose path (or new name) contains `text`, exactly.
    async fn sessions_with_file_path(&self, text: &str) -> Result<Vec<String>, StoreError>;
}
