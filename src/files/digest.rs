//! The SHA-256 of a file as it crosses the bastion, for roles that ask for one (`hash = true`).
//!
//! SFTP moves a file in chunks at offsets, several in flight at once, and a short read makes a
//! client ask for the rest later, so chunks may arrive out of order, overlap, or repeat. The
//! hash takes bytes in file order: a chunk that continues the file is hashed, one that jumps
//! ahead waits (up to [`MAX_AHEAD`] bytes of them), and bytes already hashed are skipped. A
//! transfer that does not cover the file from its first byte without a gap gets no hash; the
//! transcript then says so rather than showing the hash of something else.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

/// Most bytes held while waiting for a gap to fill: an OpenSSH client keeps at most 64 reads
/// of 32 KiB in flight, so a real gap never needs more, and with at most
/// [`super::handles::MAX_OPEN`] files open this bounds what one session's hashes can hold.
pub const MAX_AHEAD: usize = 2 * 1024 * 1024;

/// A hash being taken.
pub struct Digest {
    sha: Sha256,
    next: u64,
    ahead: BTreeMap<u64, Vec<u8>>,
    ahead_bytes: usize,
    broken: bool,
}

impl Default for Digest {
    fn default() -> Self {
        Digest {
            sha: Sha256::new(),
            next: 0,
            ahead: BTreeMap::new(),
            ahead_bytes: 0,
            broken: false,
        }
    }
}

impl Digest {
    /// Takes in the `data` found at `offset` in the file.
    pub fn push(&mut self, offset: u64, data: &[u8]) {
        if self.broken || data.is_empty() {
            return;
        }
        if offset > self.next {
            self.ahead_bytes += data.len();
            if self.ahead_bytes > MAX_AHEAD {
                self.broken = true;
                self.ahead.clear();
                return;
            }
            let kept = self.ahead.entry(offset).or_default();
            if data.len() > kept.len() {
                self.ahead_bytes -= kept.len();
                *kept = data.to_vec();
            } else {
                self.ahead_bytes -= data.len();
            }
            return;
        }
        self.take(offset, data);
        while let Some((&at, _)) = self.ahead.first_key_value() {
            if at > self.next {
                break;
            }
            let (at, chunk) = self.ahead.pop_first().expect("just seen");
            self.ahead_bytes -= chunk.len();
            self.take(at, &chunk);
        }
    }

    /// Hashes what of `data` (at `offset`, not after `next`) is new.
    fn take(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        if end <= self.next {
            return;
        }
        let skip = (self.next - offset) as usize;
        self.sha.update(&data[skip..]);
        self.next = end;
    }

    /// The hash (lowercase hex) if the bytes taken in cover the file from its start with no
    /// gap, else `None`.
    pub fn finish(self) -> Option<String> {
        if self.broken || !self.ahead.is_empty() {
            return None;
        }
        Some(
            self.sha
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> String {
        Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn chunks_in_any_order_with_repeats_and_overlaps_hash_the_file() {
        let file: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let mut d = Digest::default();
        d.push(4000, &file[4000..8000]);
        d.push(0, &file[0..3000]);
        d.push(0, &file[0..1000]);
        d.push(2500, &file[2500..4500]);
        d.push(8000, &file[8000..]);
        d.push(9000, &file[9000..]);
        assert_eq!(d.finish(), Some(sha(&file)));
        assert_eq!(Digest::default().finish(), Some(sha(b"")));
    }

    #[test]
    fn a_partial_or_gapped_transfer_has_no_hash() {
        let mut resumed = Digest::default();
        resumed.push(100, b"rest of the file");
        assert_eq!(resumed.finish(), None);
        let mut gap = Digest::default();
        gap.push(0, b"abc");
        gap.push(10, b"xyz");
        assert_eq!(gap.finish(), None);
        let mut flood = Digest::default();
        let chunk = vec![0u8; 1024 * 1024];
        for i in 0..40u64 {
            flood.push(1 + i * chunk.len() as u64, &chunk);
        }
        assert!(flood.ahead.is_empty(), "memory is given back");
        flood.push(0, b"x");
        assert_eq!(flood.finish(), None);
    }
}
