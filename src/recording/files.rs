//! The files of recordings: where they go, with which modes, and their hashes.
//!
//! Kept apart from the encoder so that naming and permission rules (which decide who may read a
//! recording) are in one short place.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::writer::RecordingError;

/// Mode of the `YYYY/MM/DD` directories: the recordings group may list them,
/// nobody else may.
pub const DIR_MODE: u32 = 0o750;

/// Mode of a recording file: the recordings group may read it, only the
/// bastion may write it.
pub const FILE_MODE: u32 = 0o640;

/// SHA-256 of a file as lowercase hex, to verify a recording against the hash
/// stored when it was finished.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut chunk = vec![0; 64 * 1024];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        hasher.update(&chunk[..n]);
    }
    Ok(to_hex(&hasher.finalize()))
}

/// What a recording's file says against the hash taken when its session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashCheck {
    /// The file matches.
    Matches,
    /// The file was changed: it now hashes to this.
    Modified(String),
    /// The file cannot be read (gone, or not on this machine): why.
    Unreadable(String),
}

/// Checks the recording at `path` against `want`, the SHA-256 taken when its session ended:
/// what `gatehouse sessions verify` says of one session and the access report of every one.
pub fn check_hash(path: &Path, want: &str) -> HashCheck {
    match sha256_file(path) {
        Ok(have) if have == want => HashCheck::Matches,
        Ok(have) => HashCheck::Modified(have),
        Err(e) => HashCheck::Unreadable(e.to_string()),
    }
}

/// Lower-case hexadecimal, the form digests are written in everywhere Gatehouse shows one.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

/// Session ids become file names: allow only characters that cannot escape
/// the day directory or hide the file.
pub(super) fn is_safe_file_stem(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub(super) fn create_private_dir(path: &Path) -> Result<(), RecordingError> {
    let io_err = |source| RecordingError::Io {
        path: path.to_owned(),
        source,
    };
    match DirBuilder::new().mode(DIR_MODE).create(path) {
        Ok(()) => std::fs::set_permissions(path, Permissions::from_mode(DIR_MODE)).map_err(io_err),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(io_err(err)),
    }
}

/// Creates `dir/YYYY/MM/DD/<session_id>.cast` (date of `started`) as a new private file:
/// the file's path, its directory and the open file.
pub(super) fn create_cast_file(
    dir: &Path,
    session_id: &str,
    started: DateTime<Utc>,
) -> Result<(PathBuf, PathBuf, File), RecordingError> {
    if !is_safe_file_stem(session_id) {
        return Err(RecordingError::InvalidSessionId(session_id.to_owned()));
    }
    let mut day_dir = dir.to_owned();
    for part in [
        started.format("%Y").to_string(),
        started.format("%m").to_string(),
        started.format("%d").to_string(),
    ] {
        day_dir.push(part);
        create_private_dir(&day_dir)?;
    }
    let path = day_dir.join(format!("{session_id}.cast"));
    let io_err = |source| RecordingError::Io {
        path: path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(io_err)?;
    // The umask may have removed group read; the mode is part of the contract.
    file.set_permissions(Permissions::from_mode(FILE_MODE))
        .map_err(io_err)?;
    Ok((path, day_dir, file))
}
