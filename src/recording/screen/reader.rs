//! Reading a recording event by event, without holding the file in memory.
//!
//! A recording may be gigabytes long and may still be growing (a live session appends to it),
//! so the reader takes one line at a time from a `BufRead`, parses it with the same rules as
//! [`parse_cast`](crate::recording::cast::parse_cast), and stops quietly at an unfinished last
//! line. Where it stopped is a [`ReadState`], from which a new reader on the same file,
//! positioned at [`ReadState::offset`], carries on once the file has grown.
//!
//! Companion lines (raw bytes, NUL runs) follow their event, so an event is handed out once the
//! next event's line has been read, with its companions folded in. At the end of the input the
//! last event is handed out as it is; should the recorder append its companions later, they are
//! checked and folded into that event but it is not handed out again. Companions never change
//! what a terminal shows (the event's text already shows undecodable bytes as U+FFFD, and
//! terminals ignore NUL), so a screen is never wrong because of this.

use std::io::{self, BufRead};

use super::MAX_LINE_BYTES;
use crate::recording::cast::{CastError, CastHeader, Event, EventLines, ParsedLine, parse_header};

/// Why reading stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The input could not be read.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The recording is not valid asciicast (or a line is longer than [`MAX_LINE_BYTES`]).
    #[error(transparent)]
    Cast(#[from] CastError),
}

/// An event as the reader hands it out, with where its line starts so a reader can later be
/// started right there (see [`ReadState::at`]).
#[derive(Debug, Clone, Copy)]
pub struct ReaderEvent<'a> {
    /// The event, with its companion lines folded in.
    pub event: &'a Event,
    /// Byte offset of the event's line in the file.
    pub offset: u64,
    /// 1-based number of the event's line.
    pub line: usize,
}

/// Where a reader stopped: enough to continue reading the same file from there.
#[derive(Debug, Clone)]
pub struct ReadState {
    header: CastHeader,
    parser: EventLines,
    /// Bytes of the file consumed: the header and every complete line after it.
    offset: u64,
    /// The last line consumed had no newline yet (it parsed as a whole event at the end of the
    /// input); its newline is expected next and is not a blank line.
    open_line: bool,
    /// The last event handed out, kept so companion lines the recorder appends later can be
    /// checked against it.
    last: Option<Event>,
}

impl ReadState {
    /// A state for reading from the start of the line at byte `offset`, line number `line`,
    /// which must begin an event (such as [`ReaderEvent::offset`] and [`ReaderEvent::line`]).
    pub fn at(header: CastHeader, offset: u64, line: usize) -> Self {
        Self {
            header,
            parser: EventLines::before_line(line),
            offset,
            open_line: false,
            last: None,
        }
    }

    /// Byte offset at which reading continues; a resumed reader's input must start here.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The recording's header.
    pub fn header(&self) -> &CastHeader {
        &self.header
    }
}

/// A streaming reader of asciicast v2 events.
#[derive(Debug)]
pub struct CastReader<R> {
    input: R,
    state: ReadState,
    /// The event read but not yet handed out (its companions may follow), with its position.
    pending: Option<(Event, u64, usize)>,
    line: Vec<u8>,
    truncated: bool,
}

impl<R: BufRead> CastReader<R> {
    /// Reads the header from the start of `input`.
    pub fn new(input: R) -> Result<Self, ReadError> {
        let mut reader = Self {
            input,
            state: ReadState::at(CastHeader::default(), 0, 1),
            pending: None,
            line: Vec::new(),
            truncated: false,
        };
        if !reader.read_line()? {
            return Err(CastError::Header("empty file".to_owned()).into());
        }
        reader.state.header = parse_header(&reader.line)?;
        reader.state.offset = reader.line.len() as u64;
        reader.state.open_line = !reader.line.ends_with(b"\n");
        reader.state.parser = EventLines::after_header();
        Ok(reader)
    }

    /// Continues reading where `state` stopped; `input` must start at [`ReadState::offset`].
    pub fn resume(input: R, state: ReadState) -> Self {
        Self {
            input,
            state,
            pending: None,
            line: Vec::new(),
            truncated: false,
        }
    }

    /// The recording's header.
    pub fn header(&self) -> &CastHeader {
        &self.state.header
    }

    /// Bytes of the input consumed so far, including an event read ahead of the one last
    /// handed out; right after [`CastReader::new`], the length of the header line.
    pub fn consumed(&self) -> u64 {
        self.state.offset
    }

    /// Whether reading stopped at an unfinished line that does not parse: a recording cut
    /// short, or one still being written. The line is not consumed, so a resumed reader reads
    /// it again.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The next event, or `None` at the end of the input (which, for a growing file, is only
    /// the end for now).
    pub fn next_event(&mut self) -> Result<Option<ReaderEvent<'_>>, ReadError> {
        loop {
            if !self.read_line()? {
                return Ok(self.hand_out_pending());
            }
            let len = self.line.len() as u64;
            let complete = self.line.ends_with(b"\n");
            if std::mem::take(&mut self.state.open_line)
                && self.line.iter().all(u8::is_ascii_whitespace)
            {
                // The newline of the line that was open at the previous end of the input.
                self.state.offset += len;
                continue;
            }
            let (offset, line_no) = (self.state.offset, self.state.parser.next_line_no());
            let previous = match &mut self.pending {
                Some((event, _, _)) => Some(event),
                None => self.state.last.as_mut(),
            };
            match self.state.parser.parse(&self.line, previous)? {
                ParsedLine::Unfinished => {
                    self.truncated = true;
                    return Ok(self.hand_out_pending());
                }
                ParsedLine::Blank | ParsedLine::Folded => {
                    self.truncated = false;
                    self.state.offset += len;
                }
                ParsedLine::Event(event) => {
                    self.truncated = false;
                    self.state.offset += len;
                    self.state.open_line = !complete;
                    if let Some(done) = self.pending.replace((event, offset, line_no)) {
                        return Ok(Some(self.hand_out(done)));
                    }
                }
            }
        }
    }

    /// Where reading stopped, to resume later. An event read but not handed out is read again
    /// by the resumed reader.
    pub fn into_state(mut self) -> ReadState {
        if let Some((_, offset, line)) = self.pending.take() {
            let header = std::mem::take(&mut self.state.header);
            self.state = ReadState::at(header, offset, line);
        }
        self.state
    }

    fn hand_out_pending(&mut self) -> Option<ReaderEvent<'_>> {
        let pending = self.pending.take()?;
        Some(self.hand_out(pending))
    }

    fn hand_out(&mut self, (event, offset, line): (Event, u64, usize)) -> ReaderEvent<'_> {
        ReaderEvent {
            event: self.state.last.insert(event),
            offset,
            line,
        }
    }

    /// Reads the next line, with its newline if it has one, into `self.line`; `false` at the
    /// end of the input.
    fn read_line(&mut self) -> Result<bool, ReadError> {
        self.line.clear();
        loop {
            let available = match self.input.fill_buf() {
                Ok(available) => available,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err.into()),
            };
            if available.is_empty() {
                return Ok(!self.line.is_empty());
            }
            let (take, done) = match available.iter().position(|&b| b == b'\n') {
                Some(at) => (at + 1, true),
                None => (available.len(), false),
            };
            if self.line.len() + take > MAX_LINE_BYTES {
                return Err(CastError::Event {
                    line: self.state.parser.next_line_no(),
                    message: format!("line longer than {MAX_LINE_BYTES} bytes"),
                }
                .into());
            }
            self.line.extend_from_slice(&available[..take]);
            self.input.consume(take);
            if done {
                return Ok(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::cast::{EventKind, parse_cast};
    use std::io::Cursor;

    const HEADER: &str = "{\"version\": 2, \"width\": 80, \"height\": 24}\n";

    fn read_all(bytes: &[u8]) -> Result<(Vec<Event>, bool), ReadError> {
        let mut reader = CastReader::new(Cursor::new(bytes))?;
        let mut events = Vec::new();
        while let Some(read) = reader.next_event()? {
            events.push(read.event.clone());
        }
        Ok((events, reader.truncated()))
    }

    #[test]
    fn reads_what_parse_cast_reads() {
        let text = format!(
            "{HEADER}[0.5, \"o\", \"a\\ufffdb\"]\n[0.5, \"b\", \"ff\"]\n[0.5, \"n\", \"1:2\"]\n\n\
             [1.0, \"i\", \"ls\"]\n[1.5, \"m\", \"run: ls\"]\n[2.0, \"o\", \"unfin"
        );
        let cast = parse_cast(text.as_bytes()).unwrap();
        let (events, truncated) = read_all(text.as_bytes()).unwrap();
        assert_eq!(events, cast.events);
        assert!(truncated && cast.truncated);
        assert_eq!(events[0].bytes().as_ref(), b"a\0\0\xffb");
    }

    #[test]
    fn damage_and_overlong_lines_are_errors() {
        let text = format!("{HEADER}[0.5, \"o\", \"a\"]\n[0.6, \"o\"\n[0.7, \"o\", \"b\"]\n");
        let err = read_all(text.as_bytes()).unwrap_err();
        assert!(
            matches!(err, ReadError::Cast(CastError::Event { line: 3, .. })),
            "{err}"
        );
        let mut long = HEADER.as_bytes().to_vec();
        long.extend(std::iter::repeat_n(b'[', MAX_LINE_BYTES + 1));
        let err = read_all(&long).unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
        assert!(matches!(
            read_all(b"").unwrap_err(),
            ReadError::Cast(CastError::Header(_))
        ));
    }

    #[test]
    fn resumes_after_an_unfinished_line_and_late_companions() {
        let first = format!("{HEADER}[0.5, \"o\", \"a\\ufffd\"]\n[0.6, \"o\", \"b");
        let mut reader = CastReader::new(Cursor::new(first.as_bytes())).unwrap();
        let read = reader.next_event().unwrap().unwrap();
        assert_eq!((read.event.data.as_str(), read.line), ("a\u{fffd}", 2));
        assert_eq!(read.offset, HEADER.len() as u64);
        assert!(reader.next_event().unwrap().is_none());
        assert!(reader.truncated());
        let state = reader.into_state();
        let rest_start = state.offset() as usize;
        assert_eq!(
            rest_start,
            HEADER.len() + "[0.5, \"o\", \"a\\ufffd\"]\n".len()
        );
        // The recorder finishes the line, with a companion for it.
        let full = format!(
            "{HEADER}[0.5, \"o\", \"a\\ufffd\"]\n[0.6, \"o\", \"b\\ufffd\"]\n\
             [0.6, \"b\", \"--\"]\n[0.7, \"r\", \"9x9\"]\n"
        );
        assert!(full.starts_with(&first[..rest_start]));
        let mut reader = CastReader::resume(Cursor::new(&full.as_bytes()[rest_start..]), state);
        let read = reader.next_event().unwrap().unwrap();
        assert_eq!(read.event.data, "b\u{fffd}");
        assert_eq!(read.event.bytes().as_ref(), "b\u{fffd}".as_bytes());
        assert_eq!(read.line, 3);
        let read = reader.next_event().unwrap().unwrap();
        assert_eq!(read.event.kind, EventKind::Resize);
        assert_eq!(read.line, 5);
        assert!(reader.next_event().unwrap().is_none());
        assert!(!reader.truncated());
    }

    #[test]
    fn companions_written_after_the_end_fold_into_the_last_event() {
        let first = format!("{HEADER}[0.5, \"o\", \"a\\ufffd\"]\n");
        let mut reader = CastReader::new(Cursor::new(first.as_bytes())).unwrap();
        assert!(reader.next_event().unwrap().is_some());
        assert!(reader.next_event().unwrap().is_none());
        let state = reader.into_state();
        let more = b"[0.5, \"b\", \"ff\"]\n[0.5, \"n\", \"0:1\"]\n[0.9, \"o\", \"z\"]\n";
        let mut reader = CastReader::resume(Cursor::new(&more[..]), state);
        let read = reader.next_event().unwrap().unwrap();
        assert_eq!((read.event.data.as_str(), read.line), ("z", 5));
        // A companion out of place is still refused.
        let state = reader.into_state();
        let mut reader = CastReader::resume(Cursor::new(&b"[1, \"b\", \"ff\"]\n"[..]), state);
        assert!(reader.next_event().is_err());
    }

    #[test]
    fn a_whole_last_line_without_newline_is_read_and_its_newline_later_skipped() {
        let first = format!("{HEADER}[0.5, \"o\", \"a\\ufffd\"]");
        let mut reader = CastReader::new(Cursor::new(first.as_bytes())).unwrap();
        assert_eq!(
            reader.next_event().unwrap().unwrap().event.data,
            "a\u{fffd}"
        );
        assert!(reader.next_event().unwrap().is_none());
        assert!(!reader.truncated());
        let state = reader.into_state();
        assert_eq!(state.offset(), first.len() as u64);
        let mut reader = CastReader::resume(Cursor::new(&b"\n[0.5, \"b\", \"ff\"]\n"[..]), state);
        assert!(reader.next_event().unwrap().is_none());
        assert_eq!(reader.into_state().last.unwrap().bytes().as_ref(), b"a\xff");
    }

    #[test]
    fn a_reader_started_at_an_event_reads_from_there() {
        let text =
            format!("{HEADER}[0.5, \"o\", \"a\"]\n[0.6, \"o\", \"b\"]\n[0.7, \"o\", \"c\"]\n");
        let mut reader = CastReader::new(Cursor::new(text.as_bytes())).unwrap();
        reader.next_event().unwrap();
        let second = reader.next_event().unwrap().unwrap();
        let (offset, line) = (second.offset, second.line);
        let state = ReadState::at(reader.header().clone(), offset, line);
        let mut reader =
            CastReader::resume(Cursor::new(&text.as_bytes()[offset as usize..]), state);
        let mut data = String::new();
        while let Some(read) = reader.next_event().unwrap() {
            data.push_str(&read.event.data);
        }
        assert_eq!(data, "bc");
    }
}
