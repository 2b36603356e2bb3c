//! Reading a recording file from where its index stopped, whole lines only.
//!
//! The recorder writes whole lines, and the index stores how many bytes of the file it has
//! read (always at the end of a line), so reading resumes there after a pause, a restart or a
//! crash, and a line still being written is left for the next read.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::feed::SessionFeed;
use super::lines;

/// Bytes read from a file at a time.
const READ_BLOCK: usize = 1 << 20;

/// The largest read buffer kept between reads.
const KEEP_BUFFER: usize = 64 << 10;

/// A recording file being read for the index.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    file: Option<File>,
    /// Bytes of the file indexed: everything before is in the feed.
    offset: u64,
    buf: Vec<u8>,
    /// Lines that are not events (counted, and logged by the indexer).
    pub bad_lines: u64,
}

impl Tail {
    /// A reader of `path` that goes on at `offset` (0: from the header).
    pub fn new(path: &Path, offset: u64) -> Tail {
        Tail {
            path: path.to_owned(),
            file: None,
            offset,
            buf: Vec::new(),
            bad_lines: 0,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the file indexed.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The file's length now.
    pub fn file_len(&self) -> io::Result<u64> {
        Ok(std::fs::metadata(&self.path)?.len())
    }

    /// Feeds whole lines from the indexed offset to at most `limit` (the length the writer
    /// reports, or the file's), reading no more than about `budget` bytes; returns the bytes
    /// consumed. A line not yet finished stays for the next call.
    pub fn read(&mut self, limit: u64, budget: usize, feed: &mut SessionFeed) -> io::Result<u64> {
        let start = self.offset;
        while self.offset < limit && self.offset - start < budget as u64 {
            let want = (limit - self.offset).min(READ_BLOCK.max(self.buf.len()) as u64) as usize;
            self.buf.resize(want, 0);
            let offset = self.offset;
            let mut buf = std::mem::take(&mut self.buf);
            let file = self.open()?;
            file.seek(SeekFrom::Start(offset))?;
            let got = read_full(file, &mut buf);
            self.buf = buf;
            let got = got?;
            self.buf.truncate(got);
            let Some(last_newline) = memchr::memrchr(b'\n', &self.buf) else {
                if got < want || offset + got as u64 >= limit {
                    // An unfinished line at the end.
                    break;
                }
                // A line longer than the buffer: read it in a larger one.
                self.buf.reserve(self.buf.len());
                let larger = self.buf.capacity();
                self.buf.resize(larger, 0);
                continue;
            };
            let whole = &self.buf[..=last_newline];
            let mut lines_from = 0;
            if offset == 0 {
                // The header: the session's command is searched in the session index.
                lines_from = memchr::memchr(b'\n', whole).map_or(whole.len(), |at| at + 1);
            }
            for line in lines_of(&whole[lines_from..]) {
                match lines::parse(line) {
                    Ok(Some(event)) => feed.push(&event),
                    Ok(None) => {}
                    Err(_) => self.bad_lines += 1,
                }
            }
            self.offset = offset + whole.len() as u64;
        }
        self.release();
        Ok(self.offset - start)
    }

    /// Closes the file and lets go of a large buffer between reads: an open descriptor would
    /// keep a deleted recording's space from being freed (an operator removing a file to make
    /// room on a full disk would get none back), and every live session would hold one more
    /// descriptor and up to a block of memory while it sits idle.
    fn release(&mut self) {
        self.file = None;
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = Vec::new();
        }
    }

    fn open(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            self.file = Some(File::open(&self.path)?);
        }
        Ok(self.file.as_mut().expect("just opened"))
    }
}

/// The non-empty lines of `bytes` (without their `\n`), found a vector at a time: a byte at a
/// time, looking for line ends cost the indexer more than parsing the lines.
fn lines_of(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', bytes)
        .chain(std::iter::once(bytes.len()))
        .filter_map(move |end| {
            let line = &bytes[start..end];
            start = end + 1;
            (!line.is_empty()).then_some(line)
        })
}

fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::lines_of;

    #[test]
    fn lines_are_split_at_each_newline_and_empty_ones_left_out() {
        fn split(b: &[u8]) -> Vec<&[u8]> {
            lines_of(b).collect()
        }
        assert_eq!(split(b"a\nbb\n\nccc\n"), [&b"a"[..], b"bb", b"ccc"]);
        assert_eq!(split(b"no end"), [&b"no end"[..]]);
        assert!(split(b"").is_empty());
        assert!(split(b"\n\n").is_empty());
    }
}
