//! Cheap checks, without writing anything, that a file could be written now: whether a fresh
//! open for writing would be allowed (an immutable file, a read-only mount) and whether its
//! file system has room.
//!
//! A process that keeps a file open goes on writing through its descriptor after the file was
//! made immutable, so such a fault shows only when something opens the file again (a new
//! database connection, a restart). These checks let the store monitor and the audit writer
//! notice it, and a nearly full disk, before a write is lost to it.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Free bytes below which a file system counts as full: room for a batch of ordinary writes
/// (audit lines are a few hundred bytes, a database page 4 KiB).
pub const MIN_ROOM: u64 = 64 * 1024;

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// `Ok` when the calling process may open `path` for writing now.
pub fn may_write(path: &Path) -> io::Result<()> {
    let c = c_path(path)?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `Ok` when the file system holding `path` has at least [`MIN_ROOM`] bytes free for this
/// process; otherwise the error of a full disk.
pub fn has_room(path: &Path) -> io::Result<()> {
    let c = c_path(path)?;
    let mut fs = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is valid; `fs` is only read after a successful call filled it.
    if unsafe { libc::statvfs(c.as_ptr(), fs.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `fs`.
    let fs = unsafe { fs.assume_init() };
    let room = u128::from(fs.f_bavail) * u128::from(fs.f_frsize);
    if room < u128::from(MIN_ROOM) {
        return Err(io::Error::from_raw_os_error(libc::ENOSPC));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_directory_is_writable_and_a_missing_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        may_write(dir.path()).unwrap();
        has_room(dir.path()).unwrap();
        assert!(may_write(&dir.path().join("missing")).is_err());
    }
}
