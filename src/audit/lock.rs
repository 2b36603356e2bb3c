//! `flock` on the log file, which serialises writers across processes (the server and the
//! operator CLI) and lets the verifier read a consistent end.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Holds a `flock` until dropped.
///
/// The lock belongs to the open file description, so two handles on the same log exclude each
/// other even inside one process. The guard keeps its own duplicate of the descriptor (same
/// description, same lock), so it does not borrow the file its holder goes on using.
#[derive(Debug)]
pub(super) struct FileLock {
    file: File,
}

impl FileLock {
    /// Waits for the exclusive lock that every append holds.
    pub fn exclusive(file: &File) -> io::Result<Self> {
        Self::take(file, libc::LOCK_EX)
    }

    /// Waits for a shared lock, which no append holds at the same time.
    pub fn shared(file: &File) -> io::Result<Self> {
        Self::take(file, libc::LOCK_SH)
    }

    fn take(file: &File, operation: libc::c_int) -> io::Result<Self> {
        let file = file.try_clone()?;
        loop {
            // SAFETY: flock only reads the descriptor, which `file` keeps open.
            if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
                return Ok(FileLock { file });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: as above. Closing the descriptor would release the lock anyway, so a failure
        // here cannot leave it held for long.
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn try_exclusive(file: &File) -> bool {
        // SAFETY: as above.
        let ok = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if ok {
            // SAFETY: as above.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        }
        ok
    }

    #[test]
    fn excludes_other_handles_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"").unwrap();
        let a = File::open(&path).unwrap();
        let b = File::open(&path).unwrap();
        let guard = FileLock::shared(&a).unwrap();
        assert!(!try_exclusive(&b));
        drop(guard);
        assert!(try_exclusive(&b));
        let guard = FileLock::exclusive(&a).unwrap();
        assert!(!try_exclusive(&b));
        drop(guard);
    }
}
