//! Cutting one stream of text into index rows.
//!
//! A row holds about [`TARGET_BYTES`] of text. Each row after the first begins with the last
//! (at most) [`OVERLAP_BYTES`] of the row before it, cut on a character boundary, so a needle of
//! up to [`crate::search::NEEDLE_MAX_BYTES`] bytes always lies wholly inside one row: the first
//! row that contains a needle holds its first occurrence. Where text was left out (a repeated
//! line, see [`crate::search::feed`]), or between two marker labels, the row ends and the next
//! begins without overlap, so no match can span what is not contiguous.
//!
//! Each row carries the times of the events its text came from ([`EventTimes`]), so the time
//! of the event in which a match starts is found from the row alone.

use crate::store::search::{ChunkRow, MAX_SEQ, TextStream};

/// Text a row holds before a new one begins.
pub const TARGET_BYTES: usize = 16 * 1024;

/// Most bytes a row repeats from the end of the one before it: one less than the longest
/// needle, so any needle that does not fit in a row lies wholly in the next.
pub const OVERLAP_BYTES: usize = crate::search::NEEDLE_MAX_BYTES - 1;

/// Where each event's text starts in a row and the event's time, in microseconds since the
/// recording started; stored compactly (see [`EventTimes::encode`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventTimes(pub Vec<(u32, i64)>);

impl EventTimes {
    /// The time of the event whose text holds byte `offset` of the row.
    pub fn time_at(&self, offset: usize) -> Option<i64> {
        let index = self
            .0
            .partition_point(|&(start, _)| start as usize <= offset);
        self.0.get(index.checked_sub(1)?).map(|&(_, time)| time)
    }

    /// Two varints per event: the offset after the previous one, and the time as a zigzag
    /// difference from the previous one (times only grow in a recording, but a file need not
    /// be Gatehouse's own).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * 4);
        let (mut offset, mut time) = (0u32, 0i64);
        for &(o, t) in &self.0 {
            push_varint(&mut out, u64::from(o.wrapping_sub(offset)));
            let delta = t.wrapping_sub(time);
            push_varint(&mut out, ((delta << 1) ^ (delta >> 63)) as u64);
            (offset, time) = (o, t);
        }
        out
    }

    /// Reads what [`EventTimes::encode`] wrote; `None` if it is damaged.
    pub fn decode(bytes: &[u8]) -> Option<EventTimes> {
        let mut entries = Vec::new();
        let (mut offset, mut time) = (0u32, 0i64);
        let mut rest = bytes;
        while !rest.is_empty() {
            let (delta_offset, after) = read_varint(rest)?;
            let (zigzag, after) = read_varint(after)?;
            rest = after;
            offset = offset.checked_add(u32::try_from(delta_offset).ok()?)?;
            let delta = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
            time = time.wrapping_add(delta);
            entries.push((offset, time));
        }
        Some(EventTimes(entries))
    }
}

pub(crate) fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn read_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

/// What stands in a row where text was left out (a repeated line, the end of a marker label):
/// a Unicode noncharacter, which terminals do not print and a search text may not contain
/// (see [`crate::search::query::check_needle`]), so no match spans the place. Marking the gap
/// inside the row, rather than ending the row there, keeps rows long: a stream that repeats a
/// line every few lines would otherwise be cut into rows of a few hundred bytes, each with its
/// own postings and its own write.
pub const GAP: char = '\u{FFFF}';

/// The rows of one stream of one session, as its text arrives.
#[derive(Debug)]
pub struct StreamChunker {
    stream: TextStream,
    seq: u32,
    text: String,
    events: EventTimes,
    after_gap: bool,
    /// Text was left out after the current row's: the next text is preceded by [`GAP`].
    gap_pending: bool,
    /// The current row changed since it was last handed out.
    dirty: bool,
    /// Rows finished since the last [`StreamChunker::take_rows`].
    done: Vec<ChunkRow>,
    /// The stream has more rows than a key can number: nothing more is indexed.
    full: bool,
}

impl StreamChunker {
    /// A stream with no rows yet.
    pub fn new(stream: TextStream) -> Self {
        StreamChunker {
            stream,
            seq: 0,
            text: String::new(),
            events: EventTimes::default(),
            after_gap: true,
            gap_pending: false,
            dirty: false,
            done: Vec::new(),
            full: false,
        }
    }

    /// Goes on from the stream's last stored row (after a restart): a row with room left grows
    /// (and is stored again), a full one is followed by a new row with its overlap.
    pub fn resume(last: &ChunkRow) -> Self {
        let mut chunker = StreamChunker::new(last.stream);
        chunker.seq = last.seq;
        chunker.text = last.text.clone();
        chunker.events = EventTimes::decode(&last.events).unwrap_or_default();
        chunker.after_gap = last.after_gap;
        chunker.gap_pending = last.gap_after;
        if chunker.text.len() >= TARGET_BYTES {
            chunker.next_row(true);
        }
        chunker
    }

    /// Appends the text of an event at `time` (microseconds into the recording).
    pub fn push(&mut self, mut text: &str, time: i64) {
        if text.is_empty() || self.full {
            return;
        }
        if self.gap_pending {
            self.gap_pending = false;
            if !self.text.is_empty() {
                if self.text.len() + GAP.len_utf8() > TARGET_BYTES {
                    // No room for the mark: the row ends here and the next starts without
                    // overlap, which separates them as well.
                    self.finish_row(true);
                    self.next_row(false);
                } else {
                    self.text.push(GAP);
                    self.dirty = true;
                }
            }
        }
        while !text.is_empty() && !self.full {
            let room = TARGET_BYTES.saturating_sub(self.text.len());
            let mut take = floor_char_boundary(text, room.min(text.len()));
            if take == 0 {
                if !self.text.is_empty() {
                    // The next character does not fit: the row ends a few bytes short.
                    self.finish_row(false);
                    self.next_row(true);
                    continue;
                }
                take = text.chars().next().map_or(text.len(), char::len_utf8);
            }
            let offset = self.text.len() as u32;
            match self.events.0.last_mut() {
                Some(last) if last.0 == offset => last.1 = time,
                Some(last) if last.1 == time => {}
                _ => self.events.0.push((offset, time)),
            }
            self.text.push_str(&text[..take]);
            self.dirty = true;
            text = &text[take..];
            if self.text.len() >= TARGET_BYTES {
                self.finish_row(false);
                self.next_row(true);
            }
        }
    }

    /// Notes that text was left out here: what comes next does not continue what came before
    /// (a [`GAP`] is put between them).
    pub fn gap(&mut self) {
        if !self.text.is_empty() {
            self.gap_pending = true;
        }
    }

    /// The rows finished since the last call, and the current row if it changed (it is handed
    /// out again, replacing the stored one, each time it grows).
    pub fn take_rows(&mut self, session_id: &str, into: &mut Vec<ChunkRow>) {
        for mut row in self.done.drain(..) {
            row.session_id = session_id.to_owned();
            into.push(row);
        }
        if self.dirty && !self.text.is_empty() {
            into.push(self.row(session_id, self.gap_pending));
        }
        self.dirty = false;
    }

    /// The current row's seq: rows of the stream before it are final.
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// Hands out the current row once more at the next [`StreamChunker::take_rows`] (the
    /// session ended: the row is final, and the index is told so).
    pub fn finish(&mut self) {
        self.dirty = !self.text.is_empty();
    }

    /// Bytes held for the current row (for bounding memory).
    pub fn held_bytes(&self) -> usize {
        self.text.capacity() + self.events.0.capacity() * 16
    }

    fn row(&self, session_id: &str, gap_after: bool) -> ChunkRow {
        ChunkRow {
            session_id: session_id.to_owned(),
            stream: self.stream,
            seq: self.seq,
            text: self.text.clone(),
            events: self.events.encode(),
            after_gap: self.after_gap,
            gap_after,
        }
    }

    fn finish_row(&mut self, gap_after: bool) {
        let row = self.row("", gap_after);
        self.done.push(row);
        self.dirty = false;
    }

    /// Starts the next row, with the end of the current one when the text goes on.
    fn next_row(&mut self, overlap: bool) {
        if self.seq >= MAX_SEQ {
            tracing::warn!(stream = ?self.stream, "a recording stream has more text than the index numbers; the rest of it is not indexed");
            self.full = true;
            self.text = String::new();
            self.events.0.clear();
            return;
        }
        self.seq += 1;
        if !overlap {
            self.text.clear();
            self.events.0.clear();
            self.after_gap = true;
            return;
        }
        let cut = ceil_char_boundary(&self.text, self.text.len().saturating_sub(OVERLAP_BYTES));
        let first = self.events.time_at(cut);
        self.text.drain(..cut);
        let cut = cut as u32;
        let mut events: Vec<(u32, i64)> = first.map(|t| (0, t)).into_iter().collect();
        events.extend(
            self.events
                .0
                .iter()
                .filter(|&&(offset, _)| offset > cut)
                .map(|&(offset, time)| (offset - cut, time)),
        );
        self.events = EventTimes(events);
        self.after_gap = false;
        // Only the overlap so far: the row is stored once new text follows it.
        self.dirty = false;
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

fn ceil_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index += 1;
    }
    index
}

#[cfg(test)]
mod tests;
