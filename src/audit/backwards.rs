//! Reading the last lines of a file without reading the rest, so opening a years-old log and
//! `tail` cost the same as on a new one.

use std::fs::File;
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileExt;

/// How much is read per step backwards.
const CHUNK: u64 = 64 * 1024;

/// The end of a file.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct End {
    /// Up to the requested number of complete lines, oldest first, without their newlines.
    pub lines: Vec<Vec<u8>>,
    /// Bytes after the last newline: an incomplete line, usually empty.
    pub partial: Vec<u8>,
    /// Offset just past the last newline, where `partial` starts.
    pub complete_len: u64,
}

/// Reads the last `n` complete lines of the first `len` bytes of `file`, and whatever follows
/// the last newline. Gives up with `InvalidData` once more than `max_bytes` would be needed,
/// which bounds memory on a file without newlines.
pub(super) fn read_end(file: &File, len: u64, n: usize, max_bytes: u64) -> io::Result<End> {
    let mut start = len;
    let mut buf: Vec<u8> = Vec::new();
    let mut newlines = 0usize;
    // The n lines' own newlines, plus the one before the oldest of them.
    while start > 0 && newlines <= n {
        let step = CHUNK.min(start);
        if len - start + step > max_bytes {
            return Err(io::Error::new(
                ErrorKind::InvalidData,
                format!("the last lines are longer than {max_bytes} bytes"),
            ));
        }
        start -= step;
        let mut chunk = vec![0u8; usize::try_from(step).expect("chunk fits in memory")];
        file.read_exact_at(&mut chunk, start)?;
        newlines += chunk.iter().filter(|b| **b == b'\n').count();
        chunk.extend_from_slice(&buf);
        buf = chunk;
    }
    let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let partial = buf.split_off(complete);
    let mut lines: Vec<Vec<u8>> = buf.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    // `buf` ends with a newline (or is empty), so the last piece is empty.
    lines.pop();
    if start > 0 && !lines.is_empty() {
        // The first piece began before the window.
        lines.remove(0);
    }
    let keep_from = lines.len().saturating_sub(n);
    lines.drain(..keep_from);
    Ok(End {
        lines,
        partial,
        complete_len: start + complete as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn end_of(content: &[u8], n: usize) -> End {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(content).unwrap();
        read_end(&file, content.len() as u64, n, u64::MAX).unwrap()
    }

    fn lines(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn small_files() {
        assert_eq!(end_of(b"", 3), End::default());
        let end = end_of(b"a\nb\nc\n", 2);
        assert_eq!(end.lines, lines(&["b", "c"]));
        assert!(end.partial.is_empty());
        assert_eq!(end.complete_len, 6);
        let end = end_of(b"a\nb\nxy", 5);
        assert_eq!(end.lines, lines(&["a", "b"]));
        assert_eq!(end.partial, b"xy");
        assert_eq!(end.complete_len, 4);
        let end = end_of(b"xy", 1);
        assert!(end.lines.is_empty());
        assert_eq!(end.partial, b"xy");
        assert_eq!(end.complete_len, 0);
        assert_eq!(end_of(b"a\n\nb\n", 3).lines, lines(&["a", "", "b"]));
        assert_eq!(end_of(b"a\nb\n", 0).lines, Vec::<Vec<u8>>::new());
    }

    #[test]
    fn lines_across_chunks() {
        let long = "x".repeat(150_000);
        let content = format!("first\n{long}\nmiddle\n{long}\nlast\npart");
        let end = end_of(content.as_bytes(), 3);
        assert_eq!(end.lines, lines(&["middle", &long, "last"]));
        assert_eq!(end.partial, b"part");
        let end = end_of(content.as_bytes(), 10);
        assert_eq!(end.lines, lines(&["first", &long, "middle", &long, "last"]));
    }

    #[test]
    fn bounded() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&[b'x'; 200_000]).unwrap();
        let err = read_end(&file, 200_000, 1, 100_000).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData);
    }
}
