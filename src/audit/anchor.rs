//! The anchor file, `audit.jsonl.head`: where Gatehouse last wrote, so that lines appended or
//! cut off outside Gatehouse can be told from lines it wrote.
//!
//! It holds the `seq` and hash of the last record and, while an append is under way, the
//! record about to be written (`pending`). The order of an append is: anchor with `pending`
//! (durable), then the line (durable), then the anchor without `pending`. A log that ends at the
//! anchored record or at the pending one is therefore consistent whatever moment a crash hit;
//! any other end was made by someone else.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::AuditError;
use super::record::{ZERO_HASH, is_hash};

/// Mode of the log and the anchor: the bastion writes, the auditors' group reads.
pub(super) const FILE_MODE: u32 = 0o640;

/// Largest anchor file read; a real one is about 200 bytes.
const MAX_ANCHOR_BYTES: u64 = 4096;

/// The anchor file that belongs to the log at `log`: the log's path with `.head` appended.
/// Public so the CLI and operators can name it in messages and move it together with the log.
pub fn anchor_path(log: &Path) -> PathBuf {
    let mut name = OsString::from(log.as_os_str());
    name.push(".head");
    PathBuf::from(name)
}

/// One point in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Point {
    pub seq: u64,
    pub hash: String,
}

impl Point {
    /// Where an empty log stands.
    pub fn genesis() -> Point {
        Point {
            seq: 0,
            hash: ZERO_HASH.to_owned(),
        }
    }
}

/// The anchor's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Anchor {
    /// Last record known to be written.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
    /// The record being written when this anchor was saved, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Point>,
}

impl Anchor {
    /// An anchor at `point` with nothing pending.
    pub fn at(point: &Point) -> Anchor {
        Anchor {
            seq: point.seq,
            hash: point.hash.clone(),
            pending: None,
        }
    }
}

/// How the end of a log relates to its anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Position {
    /// The log ends at the anchored record or at the pending one.
    Matches,
    /// Records follow the anchored one that Gatehouse did not write; `after` is the anchored seq.
    Appended { after: u64 },
    /// The log ends before the anchored record.
    Truncated { anchored: u64 },
    /// The last record has the anchored seq but a different hash.
    Replaced,
}

impl Position {
    /// Where the log's last record, `end`, stands relative to `anchor`.
    pub fn of(end: &Point, anchor: &Anchor) -> Position {
        let pending_matches = anchor.pending.as_ref().is_some_and(|p| p == end);
        if (end.seq == anchor.seq && end.hash == anchor.hash) || pending_matches {
            Position::Matches
        } else if end.seq > anchor.seq {
            Position::Appended { after: anchor.seq }
        } else if end.seq < anchor.seq {
            Position::Truncated {
                anchored: anchor.seq,
            }
        } else {
            Position::Replaced
        }
    }

    /// A sentence for an error message, in terms of `seq` (the writer does not count lines).
    pub fn describe(&self, end: &Point) -> String {
        match self {
            Position::Matches => "it matches".to_owned(),
            Position::Appended { after } => format!(
                "its last record is seq {} but the anchor records seq {after} as the last one \
                 written: records from seq {} on were appended outside Gatehouse",
                end.seq,
                after + 1
            ),
            Position::Truncated { anchored } => format!(
                "it ends at seq {} but the anchor records seq {anchored} as written: its tail \
                 was truncated",
                end.seq
            ),
            Position::Replaced => format!(
                "its last record, seq {}, does not have the hash the anchor records: it was \
                 edited or replaced",
                end.seq
            ),
        }
    }
}

/// Reads the anchor; `None` when there is none.
pub(super) fn read(path: &Path) -> Result<Option<Anchor>, AuditError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AuditError::io("open", path)(e)),
    };
    let mut text = String::new();
    file.take(MAX_ANCHOR_BYTES)
        .read_to_string(&mut text)
        .map_err(AuditError::io("read", path))?;
    let bad = |reason: String| AuditError::BadAnchor {
        path: path.to_owned(),
        reason,
    };
    let anchor: Anchor = serde_json::from_str(text.trim_end()).map_err(|e| bad(e.to_string()))?;
    let hashes_ok =
        is_hash(&anchor.hash) && anchor.pending.as_ref().is_none_or(|p| is_hash(&p.hash));
    if !hashes_ok {
        return Err(bad("a hash is not lowercase hex SHA-256".into()));
    }
    Ok(Some(anchor))
}

/// Replaces the anchor atomically: a reader sees the old content or the new, never a mix.
///
/// The temporary file is fsynced before the rename so a crash cannot leave an empty anchor;
/// with `durable` the directory is fsynced too, so the rename itself survives a crash before
/// the caller goes on to write the log.
pub(super) fn write(path: &Path, anchor: &Anchor, durable: bool) -> Result<(), AuditError> {
    let mut tmp_name = OsString::from(path.as_os_str());
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut text = serde_json::to_string(anchor).expect("anchor serializes");
    text.push('\n');
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(&tmp)
        .map_err(AuditError::io("create", &tmp))?;
    // The umask may have removed group read; the mode is part of the contract.
    file.set_permissions(Permissions::from_mode(FILE_MODE))
        .map_err(AuditError::io("set the mode of", &tmp))?;
    file.write_all(text.as_bytes())
        .map_err(AuditError::io("write", &tmp))?;
    file.sync_all().map_err(AuditError::io("fsync", &tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(AuditError::io("rename into place", path))?;
    if durable {
        sync_parent(path)?;
    }
    Ok(())
}

/// Makes a directory entry just created or renamed inside `path`'s directory durable.
pub(super) fn sync_parent(path: &Path) -> Result<(), AuditError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(AuditError::io("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn point(seq: u64, fill: char) -> Point {
        Point {
            seq,
            hash: fill.to_string().repeat(64),
        }
    }

    #[test]
    fn path_appends_head() {
        assert_eq!(
            anchor_path(Path::new("data/audit.jsonl")),
            PathBuf::from("data/audit.jsonl.head")
        );
    }

    #[test]
    fn round_trips_atomically_with_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl.head");
        assert_eq!(read(&path).unwrap(), None);
        let mut anchor = Anchor::at(&point(3, 'a'));
        anchor.pending = Some(point(4, 'b'));
        write(&path, &anchor, true).unwrap();
        assert_eq!(read(&path).unwrap(), Some(anchor));
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, FILE_MODE);
        assert!(!dir.path().join("audit.jsonl.head.tmp").exists());
        fs::write(&path, "{\"seq\":1,\"hash\":\"xyz\"}").unwrap();
        assert!(matches!(read(&path), Err(AuditError::BadAnchor { .. })));
    }

    #[test]
    fn positions() {
        let mut anchor = Anchor::at(&point(5, 'a'));
        assert_eq!(Position::of(&point(5, 'a'), &anchor), Position::Matches);
        assert_eq!(
            Position::of(&point(6, 'b'), &anchor),
            Position::Appended { after: 5 }
        );
        assert_eq!(
            Position::of(&point(4, 'c'), &anchor),
            Position::Truncated { anchored: 5 }
        );
        assert_eq!(Position::of(&point(5, 'c'), &anchor), Position::Replaced);
        anchor.pending = Some(point(6, 'b'));
        assert_eq!(Position::of(&point(6, 'b'), &anchor), Position::Matches);
        assert_eq!(Position::of(&point(5, 'a'), &anchor), Position::Matches);
        assert_eq!(
            Position::of(&point(6, 'c'), &anchor),
            Position::Appended { after: 5 }
        );
    }
}
