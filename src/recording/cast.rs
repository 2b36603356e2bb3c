//! Reading asciicast v2 recordings back for replay, search and verification.
//!
//! The reader is deliberately tolerant of the one defect a crash can cause —
//! an unfinished last line — and strict about everything else, because a
//! recording that is damaged in the middle is evidence that something other
//! than the recorder touched it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::nul_runs::{NUL_RUNS_CODE, insert_nul_runs, parse_nul_runs};
use super::utf8::{self, RAW_BYTES_CODE, RawBytesError};

/// The first line of a recording: what the reviewer needs to know before
/// playing it (terminal size, when, who and what).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CastHeader {
    /// Initial terminal width in columns.
    pub width: u16,
    /// Initial terminal height in rows.
    pub height: u16,
    /// Start of the session as unix seconds.
    pub timestamp: i64,
    /// The command requested for exec sessions; `None` for interactive shells.
    pub command: Option<String>,
    /// Human-readable description such as `alice@web-01 [web-ops] grant 17`.
    pub title: Option<String>,
    /// Client environment useful for faithful playback (`TERM`, `SHELL`).
    pub env: BTreeMap<String, String>,
}

/// What an event records, derived from its asciicast event code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `"o"`: data the session wrote to the user's terminal.
    Output,
    /// `"i"`: data the user typed.
    Input,
    /// `"r"`: the terminal was resized; data is `COLSxROWS`.
    Resize,
    /// `"m"`: an annotated point in time, such as a denied command.
    Marker,
    /// Any other code, kept so foreign recordings still load.
    Other(String),
}

impl EventKind {
    /// Maps an asciicast event code to a kind.
    pub fn from_code(code: &str) -> Self {
        match code {
            "o" => Self::Output,
            "i" => Self::Input,
            "r" => Self::Resize,
            "m" => Self::Marker,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The asciicast event code written for this kind.
    pub fn code(&self) -> &str {
        match self {
            Self::Output => "o",
            Self::Input => "i",
            Self::Resize => "r",
            Self::Marker => "m",
            Self::Other(code) => code,
        }
    }
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the start of the recording.
    pub time: f64,
    /// What kind of event this is.
    pub kind: EventKind,
    /// The event data as players see it (undecodable bytes shown as U+FFFD).
    pub data: String,
    /// The recorded bytes when they differ from `data`, restored from the
    /// raw-bytes companion line (still without the NUL runs); `None` when
    /// `data` already is those bytes.
    pub raw: Option<Vec<u8>>,
    /// NUL runs from the NUL-runs companion line, as `(offset, count)` in the
    /// exact bytes, checked when the file was read. Kept as runs, not
    /// expanded, so a recording of a few megabytes that stands for gigabytes
    /// of NUL output still loads in a few megabytes.
    pub nul_runs: Vec<(usize, usize)>,
}

impl Event {
    /// The exact bytes that were recorded, for lossless export and raw
    /// replay; at most [`super::nul_runs::MAX_NULS_PER_EVENT`] more than the event's data.
    pub fn bytes(&self) -> Cow<'_, [u8]> {
        let without = self.raw.as_deref().unwrap_or(self.data.as_bytes());
        if self.nul_runs.is_empty() {
            Cow::Borrowed(without)
        } else {
            Cow::Owned(insert_nul_runs(without, &self.nul_runs))
        }
    }
}

/// A parsed recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Cast {
    /// The header line.
    pub header: CastHeader,
    /// Events in file order; raw-bytes companion lines are folded into the
    /// event they belong to rather than listed.
    pub events: Vec<Event>,
    /// The file ended in an unfinished line (the recorder died mid-write); that
    /// line was ignored, so the recording may be missing its last moments.
    pub truncated: bool,
}

impl Cast {
    /// Time of the last event, i.e. how long the recording plays at speed 1.
    pub fn duration(&self) -> f64 {
        self.events.last().map_or(0.0, |event| event.time)
    }
}

/// Why a recording could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CastError {
    /// The file could not be read.
    #[error("cannot read recording {}: {source}", path.display())]
    Io {
        /// The recording file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The first line is missing or is not an asciicast header.
    #[error("invalid asciicast header: {0}")]
    Header(String),
    /// The header declares a format version other than 2.
    #[error("unsupported asciicast version {0} (only version 2 is supported)")]
    Version(u64),
    /// A complete line in the middle of the file is not a valid event.
    #[error("invalid event on line {line}: {message}")]
    Event {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}

#[derive(Deserialize)]
struct RawHeader {
    version: u64,
    width: u16,
    height: u16,
    #[serde(default)]
    timestamp: Option<serde_json::Number>,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    env: Option<BTreeMap<String, Option<String>>>,
}

/// Reads and parses the recording at `path`.
pub fn read_cast(path: &Path) -> Result<Cast, CastError> {
    let bytes = std::fs::read(path).map_err(|source| CastError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_cast(&bytes)
}

/// Parses a recording held in memory, so callers that already have the bytes
/// (or tests) need no file.
pub fn parse_cast(bytes: &[u8]) -> Result<Cast, CastError> {
    let mut lines = bytes.split_inclusive(|&b| b == b'\n');
    let first = lines
        .next()
        .ok_or_else(|| CastError::Header("empty file".to_owned()))?;
    let header = parse_header(first)?;
    let mut parser = EventLines::after_header();
    let mut events: Vec<Event> = Vec::new();
    let mut truncated = false;
    for line in lines {
        match parser.parse(line, events.last_mut())? {
            ParsedLine::Event(event) => events.push(event),
            ParsedLine::Folded | ParsedLine::Blank => {}
            ParsedLine::Unfinished => {
                truncated = true;
                break;
            }
        }
    }
    Ok(Cast {
        header,
        events,
        truncated,
    })
}

/// What one line after the header turned out to be.
#[derive(Debug)]
pub(crate) enum ParsedLine {
    /// A new event (its companion lines, if any, follow).
    Event(Event),
    /// A raw-bytes or NUL-runs companion, now folded into the previous event.
    Folded,
    /// A blank line.
    Blank,
    /// An unfinished last line that does not parse: the recorder died, or is still writing it.
    Unfinished,
}

/// The event parser shared by [`parse_cast`] and the streaming reader of the screen player:
/// one line at a time, remembering which companion lines may follow, so both read a recording
/// by exactly the same rules.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventLines {
    /// 1-based number of the last line given (the header is line 1).
    line_no: usize,
    /// A raw-bytes line may follow: the previous line was an output or input event.
    raw_allowed: bool,
    /// A NUL-runs line may follow: after the event or its raw-bytes line.
    nul_runs_allowed: bool,
}

impl EventLines {
    /// A parser for the line after the header.
    pub(crate) fn after_header() -> Self {
        Self::before_line(2)
    }

    /// A parser that resumes at line `line_no`, which must start an event (or be blank): no
    /// companion line is allowed before one.
    pub(crate) fn before_line(line_no: usize) -> Self {
        Self {
            line_no: line_no.saturating_sub(1),
            raw_allowed: false,
            nul_runs_allowed: false,
        }
    }

    /// 1-based number of the next line.
    pub(crate) fn next_line_no(&self) -> usize {
        self.line_no + 1
    }

    /// Parses the next line (with its `\n`, if it has one). `previous` is the event the line
    /// would belong to if it is a companion; it is updated in place. An unfinished line that
    /// does not parse leaves the parser as it was.
    pub(crate) fn parse(
        &mut self,
        line: &[u8],
        previous: Option<&mut Event>,
    ) -> Result<ParsedLine, CastError> {
        let line_no = self.line_no + 1;
        let complete = line.ends_with(b"\n");
        let parsed = std::str::from_utf8(line)
            .map_err(|err| err.to_string())
            .and_then(|text| parse_event_line(text.trim_end_matches(['\n', '\r'])));
        let bad_line = |message: String| CastError::Event {
            line: line_no,
            message,
        };
        let parsed = match parsed {
            Ok(parsed) => parsed,
            // Left as it was, so the line can be read again once it is finished.
            Err(_) if !complete => return Ok(ParsedLine::Unfinished),
            Err(message) => return Err(bad_line(message)),
        };
        self.line_no = line_no;
        let Some((time, code, data)) = parsed else {
            self.raw_allowed = false;
            self.nul_runs_allowed = false;
            return Ok(ParsedLine::Blank);
        };
        if code == RAW_BYTES_CODE || code == NUL_RUNS_CODE {
            let allowed = if code == RAW_BYTES_CODE {
                self.raw_allowed
            } else {
                self.nul_runs_allowed
            };
            let previous = previous.filter(|_| allowed).ok_or_else(|| {
                bad_line(format!(
                    "{code:?} line does not follow an output or input event"
                ))
            })?;
            if code == RAW_BYTES_CODE {
                let raw = utf8::restore_bytes(&previous.data, &data)
                    .map_err(|err: RawBytesError| bad_line(err.to_string()))?;
                previous.raw = Some(raw);
            } else {
                let without = previous.raw.as_ref().map_or(previous.data.len(), Vec::len);
                previous.nul_runs =
                    parse_nul_runs(&data, without).map_err(|err| bad_line(err.to_string()))?;
            }
            self.raw_allowed = false;
            self.nul_runs_allowed = code == RAW_BYTES_CODE;
            return Ok(ParsedLine::Folded);
        }
        let kind = EventKind::from_code(&code);
        self.raw_allowed = matches!(kind, EventKind::Output | EventKind::Input);
        self.nul_runs_allowed = self.raw_allowed;
        Ok(ParsedLine::Event(Event {
            time,
            kind,
            data,
            raw: None,
            nul_runs: Vec::new(),
        }))
    }
}

/// Parses the header line (the first line of a recording).
pub(crate) fn parse_header(line: &[u8]) -> Result<CastHeader, CastError> {
    let raw: RawHeader =
        serde_json::from_slice(line).map_err(|err| CastError::Header(err.to_string()))?;
    if raw.version != 2 {
        return Err(CastError::Version(raw.version));
    }
    let timestamp = match raw.timestamp {
        None => 0,
        Some(number) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|secs| secs as i64))
            .ok_or_else(|| CastError::Header(format!("invalid timestamp {number}")))?,
    };
    let env = raw
        .env
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(key, value)| value.map(|value| (key, value)))
        .collect();
    Ok(CastHeader {
        width: raw.width,
        height: raw.height,
        timestamp,
        command: raw.command,
        title: raw.title,
        env,
    })
}

/// Parses one event line; `Ok(None)` for blank lines.
fn parse_event_line(text: &str) -> Result<Option<(f64, String, String)>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let (time, code, data): (f64, String, serde_json::Value) =
        serde_json::from_str(text).map_err(|err| err.to_string())?;
    if !time.is_finite() || time < 0.0 {
        return Err(format!("invalid event time {time}"));
    }
    let data = match data {
        serde_json::Value::String(data) => data,
        other => match EventKind::from_code(&code) {
            EventKind::Other(_) if code != RAW_BYTES_CODE && code != NUL_RUNS_CODE => {
                other.to_string()
            }
            _ => return Err(format!("event {code:?} needs string data")),
        },
    };
    Ok(Some((time, code, data)))
}

/// Everything the session wrote to the user's terminal, with undecodable
/// bytes restored exactly; the input to verification and export.
pub fn output_bytes(cast: &Cast) -> Vec<u8> {
    joined_bytes(cast, &EventKind::Output)
}

/// Everything the user typed (when input was recorded), restored exactly.
pub fn input_bytes(cast: &Cast) -> Vec<u8> {
    joined_bytes(cast, &EventKind::Input)
}

fn joined_bytes(cast: &Cast, kind: &EventKind) -> Vec<u8> {
    let mut out = Vec::new();
    for event in cast.events.iter().filter(|event| &event.kind == kind) {
        out.extend_from_slice(&event.bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::nul_runs::MAX_NULS_PER_EVENT;
    use super::*;

    const HEADER: &str = r#"{"version": 2, "width": 80, "height": 24, "timestamp": 1700000000, "title": "t", "env": {"TERM": "xterm", "SHELL": null}}"#;

    fn cast_text(lines: &[&str]) -> String {
        let mut text = String::from(HEADER);
        text.push('\n');
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    #[test]
    fn parses_header_and_events() {
        let text = cast_text(&[
            r#"[0.5, "o", "hi\r\n"]"#,
            r#"[1.0, "i", "ls\r"]"#,
            r#"[1.5, "r", "100x30"]"#,
            r#"[2.0, "m", "denied"]"#,
            r#"[2.5, "z", {"custom": true}]"#,
        ]);
        let cast = parse_cast(text.as_bytes()).unwrap();
        assert_eq!(cast.header.width, 80);
        assert_eq!(cast.header.height, 24);
        assert_eq!(cast.header.timestamp, 1_700_000_000);
        assert_eq!(cast.header.title.as_deref(), Some("t"));
        assert_eq!(cast.header.command, None);
        assert_eq!(
            cast.header.env.get("TERM").map(String::as_str),
            Some("xterm")
        );
        assert!(!cast.header.env.contains_key("SHELL"));
        let kinds: Vec<&str> = cast.events.iter().map(|e| e.kind.code()).collect();
        assert_eq!(kinds, ["o", "i", "r", "m", "z"]);
        assert!(!cast.truncated);
        assert_eq!(cast.duration(), 2.5);
        assert_eq!(output_bytes(&cast), b"hi\r\n");
        assert_eq!(input_bytes(&cast), b"ls\r");
    }

    #[test]
    fn truncated_last_line_is_ignored_and_reported() {
        let mut text = cast_text(&[r#"[0.5, "o", "kept"]"#]);
        text.push_str(r#"[0.9, "o", "lo"#);
        let cast = parse_cast(text.as_bytes()).unwrap();
        assert!(cast.truncated);
        assert_eq!(output_bytes(&cast), b"kept");
    }

    #[test]
    fn truncation_inside_a_multibyte_character_is_tolerated() {
        let mut bytes = cast_text(&[r#"[0.5, "o", "kept"]"#]).into_bytes();
        bytes.extend_from_slice(b"[0.9, \"o\", \"\xe2\x82");
        let cast = parse_cast(&bytes).unwrap();
        assert!(cast.truncated);
        assert_eq!(cast.events.len(), 1);
    }

    #[test]
    fn complete_last_line_without_newline_is_accepted() {
        let mut text = cast_text(&[]);
        text.push_str(r#"[0.5, "o", "end"]"#);
        let cast = parse_cast(text.as_bytes()).unwrap();
        assert!(!cast.truncated);
        assert_eq!(output_bytes(&cast), b"end");
    }

    #[test]
    fn damage_in_the_middle_is_an_error() {
        let text = cast_text(&[r#"[0.5, "o", "a"]"#, r#"[0.6, "o""#, r#"[0.7, "o", "b"]"#]);
        let err = parse_cast(text.as_bytes()).unwrap_err();
        assert!(matches!(err, CastError::Event { line: 3, .. }), "{err}");
    }

    #[test]
    fn raw_bytes_companion_restores_exact_bytes() {
        let text = cast_text(&[
            r#"[0.5, "o", "a\ufffdb\ufffd"]"#,
            r#"[0.5, "b", "ff--"]"#,
            r#"[0.6, "o", "c"]"#,
        ]);
        let cast = parse_cast(text.as_bytes()).unwrap();
        assert_eq!(cast.events.len(), 2);
        assert_eq!(output_bytes(&cast), b"a\xffb\xef\xbf\xbdc");
        assert_eq!(cast.events[0].data, "a\u{FFFD}b\u{FFFD}");
    }

    #[test]
    fn misplaced_or_wrong_companion_is_an_error() {
        for lines in [
            [r#"[0.5, "r", "1x1"]"#, r#"[0.5, "b", "ff"]"#],
            [r#"[0.5, "o", "a\ufffd"]"#, r#"[0.5, "b", "ffff"]"#],
            [r#"[0.5, "o", "a\ufffd"]"#, r#"[0.5, "b", 7]"#],
        ] {
            let text = cast_text(&lines);
            assert!(parse_cast(text.as_bytes()).is_err(), "{lines:?}");
        }
    }

    #[test]
    fn nul_runs_companion_follows_the_event_or_its_raw_bytes_line() {
        let text = cast_text(&[
            r#"[0.5, "o", "a\ufffdb"]"#,
            r#"[0.5, "b", "ff"]"#,
            r#"[0.5, "n", "1:2 5:1"]"#,
            r#"[0.6, "o", ""]"#,
            r#"[0.6, "n", "0:3"]"#,
        ]);
        let cast = parse_cast(text.as_bytes()).unwrap();
        assert_eq!(output_bytes(&cast), b"a\0\0\xffb\0\0\0\0");
        for lines in [
            // Not after an output event, twice, before the raw-bytes line, out of place.
            &[r#"[0.5, "m", "x"]"#, r#"[0.5, "n", "0:1"]"#][..],
            &[
                r#"[0.5, "o", "a"]"#,
                r#"[0.5, "n", "0:1"]"#,
                r#"[0.5, "n", "0:1"]"#,
            ],
            &[
                r#"[0.5, "o", "\ufffd"]"#,
                r#"[0.5, "n", "0:1"]"#,
                r#"[0.5, "b", "ff"]"#,
            ],
            &[r#"[0.5, "o", "a"]"#, r#"[0.5, "n", "2:1"]"#],
            &[r#"[0.5, "o", "a"]"#, r#"[0.5, "n", 7]"#],
        ] {
            let text = cast_text(lines);
            assert!(parse_cast(text.as_bytes()).is_err(), "{lines:?}");
        }
    }

    #[test]
    fn nul_runs_stay_runs_in_memory() {
        // A small file that stands for 200 MiB of NUL output loads in about its own size; the
        // bytes of one event are expanded only when asked for.
        let mut lines = Vec::new();
        for _ in 0..200 {
            lines.push(r#"[0.1, "o", ""]"#.to_owned());
            lines.push(format!(r#"[0.1, "n", "0:{MAX_NULS_PER_EVENT}"]"#));
        }
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let text = cast_text(&lines);
        assert!(text.len() < 10_000);
        let cast = parse_cast(text.as_bytes()).unwrap();
        assert_eq!(cast.events.len(), 200);
        assert!(
            cast.events
                .iter()
                .all(|e| e.raw.is_none() && e.data.is_empty())
        );
        assert_eq!(cast.events[7].nul_runs, vec![(0, MAX_NULS_PER_EVENT)]);
        assert_eq!(cast.events[7].bytes().len(), MAX_NULS_PER_EVENT);
    }

    #[test]
    fn header_errors() {
        assert!(matches!(parse_cast(b""), Err(CastError::Header(_))));
        assert!(matches!(
            parse_cast(b"{\"version\": 1, \"width\": 1, \"height\": 1}\n"),
            Err(CastError::Version(1))
        ));
        assert!(matches!(
            parse_cast(b"{\"version\": 2, \"wid"),
            Err(CastError::Header(_))
        ));
    }

    #[test]
    fn read_cast_reports_the_path() {
        let err = read_cast(Path::new("/nonexistent/x.cast")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.cast"));
    }
}
