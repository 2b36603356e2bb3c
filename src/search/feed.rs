//! Turning one session's events into index rows, leaving out repeated output lines.
//!
//! # Repeated lines
//!
//! Terminal output repeats a lot (a `yes` stream is one line a billion times; a `watch`
//! redraws the same screen), and a search returns the earliest hit of each session, which a
//! repeat can never be. So a line of output that is *complete inside one event* (it starts
//! after a newline of that event and ends with a newline of that event) and equals a line
//! indexed before in the session (the last such line, or one of the last
//! [`REPEATS_REMEMBERED`] distinct ones) is left out, and a [`super::chunk::GAP`] takes its
//! place in the row, so no match spans the gap.
//!
//! What this changes, exactly: a needle that crosses a line boundary where one of the two
//! lines is such a left-out repeat is not found there (it is found if it occurs anywhere
//! else). Text within one line, and every line split across events or printed for the first
//! time, is always indexed. The rule depends only on the events, never on timing, so indexing
//! a recording live and again from its file (`gatehouse sessions reindex`) gives the same rows.
//! After a restart, lines seen before it are not remembered: they may be indexed once more.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use super::chunk::StreamChunker;
use super::lines::{self, RawEvent};
use crate::store::search::{ChunkRow, TextStream};

/// Distinct lines remembered per session for leaving out repeats; the set starts again when
/// it is full, which bounds an indexed session's memory.
pub const REPEATS_REMEMBERED: usize = 1024;

/// Lines longer than this (as written) are always indexed and never remembered.
const LONGEST_REMEMBERED: usize = 4096;

/// The text index's view of one session being indexed.
#[derive(Debug)]
pub struct SessionFeed {
    output: StreamChunker,
    input: StreamChunker,
    marker: StreamChunker,
    repeats: Repeats,
    scratch: String,
    /// Events whose data could not be decoded (skipped, as a reader would fail on them).
    pub bad_events: u64,
}

impl Default for SessionFeed {
    fn default() -> Self {
        SessionFeed {
            output: StreamChunker::new(TextStream::Output),
            input: StreamChunker::new(TextStream::Input),
            marker: StreamChunker::new(TextStream::Marker),
            repeats: Repeats::default(),
            scratch: String::new(),
            bad_events: 0,
        }
    }
}

impl SessionFeed {
    /// Goes on from the last stored rows of the session (after a restart).
    pub fn resume(last_rows: &[ChunkRow]) -> SessionFeed {
        let mut feed = SessionFeed::default();
        for row in last_rows {
            let chunker = StreamChunker::resume(row);
            match row.stream {
                TextStream::Output => feed.output = chunker,
                TextStream::Input => feed.input = chunker,
                TextStream::Marker => feed.marker = chunker,
            }
        }
        feed
    }

    /// Indexes one event (codes other than output, input and marker are ignored).
    pub fn push(&mut self, event: &RawEvent<'_>) {
        match &*event.code {
            "o" => self.push_output(&event.escaped, event.time_us),
            "i" if self.decode(&event.escaped) => {
                self.input.push(&self.scratch, event.time_us);
            }
            "m" => {
                if self.decode(&event.escaped) {
                    self.marker.push(&self.scratch, event.time_us);
                }
                // Each label is searched on its own.
                self.marker.gap();
            }
            _ => {}
        }
    }

    /// The rows to store now (see [`StreamChunker::take_rows`]).
    pub fn take_rows(&mut self, session_id: &str, into: &mut Vec<ChunkRow>) {
        self.output.take_rows(session_id, into);
        self.input.take_rows(session_id, into);
        self.marker.take_rows(session_id, into);
    }

    /// The session ended: its current rows are final and are handed out once more.
    pub fn finish(&mut self) {
        self.output.finish();
        self.input.finish();
        self.marker.finish();
    }

    /// Whether a row taken from this feed is final: its stream has moved on to a later row.
    /// (Once the session ended, every row is.)
    pub fn is_final(&self, row: &ChunkRow) -> bool {
        let current = match row.stream {
            TextStream::Output => &self.output,
            TextStream::Input => &self.input,
            TextStream::Marker => &self.marker,
        };
        row.seq < current.seq()
    }

    /// Bytes held in memory for this session (for bounding the indexer's memory).
    pub fn held_bytes(&self) -> usize {
        self.output.held_bytes()
            + self.input.held_bytes()
            + self.marker.held_bytes()
            + self.repeats.held_bytes()
            + self.scratch.capacity()
    }

    /// Decodes escaped data into the scratch text; `false` (counted) if it is not valid.
    fn decode(&mut self, escaped: &[u8]) -> bool {
        self.scratch.clear();
        let ok = lines::unescape_into(escaped, &mut self.scratch);
        if !ok {
            self.bad_events += 1;
        }
        ok
    }

    fn push_output(&mut self, data: &[u8], time: i64) {
        // The first line may continue one begun in an earlier event: always indexed.
        let Some(head_end) = lines::next_newline(data, 0) else {
            self.push_output_text(data, time);
            return;
        };
        self.push_output_text(&data[..head_end], time);
        let mut at = head_end;
        while at < data.len() {
            if self.repeats.is_last(&data[at..]) {
                at += self.repeats.last.len();
                self.output.gap();
                continue;
            }
            let Some(end) = lines::next_newline(data, at) else {
                // The last line goes on in a later event: always indexed.
                self.push_output_text(&data[at..], time);
                return;
            };
            let line = &data[at..end];
            if self.repeats.seen_before(line) {
                self.output.gap();
            } else {
                self.push_output_text(line, time);
            }
            at = end;
        }
    }

    fn push_output_text(&mut self, escaped: &[u8], time: i64) {
        if escaped.is_empty() {
            return;
        }
        if self.decode(escaped) {
            self.output.push(&self.scratch, time);
        }
    }
}

/// The output lines a session showed before, as hashes keyed for this process (so no one can
/// craft a line that is taken for another), and the last line as written.
#[derive(Debug, Default)]
struct Repeats {
    keys: RandomState,
    seen: HashSet<u64, IdentityHash>,
    last: Vec<u8>,
}

impl Repeats {
    /// Whether `rest` begins with the last complete line (cheap: no hashing).
    fn is_last(&self, rest: &[u8]) -> bool {
        !self.last.is_empty() && rest.starts_with(&self.last)
    }

    /// Whether `line` was seen before; remembers it if not.
    fn seen_before(&mut self, line: &[u8]) -> bool {
        if line.len() > LONGEST_REMEMBERED {
            self.last.clear();
            return false;
        }
        self.last.clear();
        self.last.extend_from_slice(line);
        let hash = self.keys.hash_one(line);
        if self.seen.contains(&hash) {
            return true;
        }
        if self.seen.len() >= REPEATS_REMEMBERED {
            self.seen.clear();
        }
        self.seen.insert(hash);
        false
    }

    fn held_bytes(&self) -> usize {
        self.seen.capacity() * 9 + self.last.capacity()
    }
}

/// The set holds hashes already keyed: it needs no second hash.
#[derive(Debug, Default, Clone, Copy)]
struct IdentityHash;

impl BuildHasher for IdentityHash {
    type Hasher = IdentityHasher;
    fn build_hasher(&self) -> IdentityHasher {
        IdentityHasher(0)
    }
}

#[derive(Debug, Default)]
struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}
