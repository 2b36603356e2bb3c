//! Writing session recordings to disk.
//!
//! The [`Recorder`] is owned by the session task and called synchronously on
//! every chunk of output. It appends complete JSON lines to an in-memory buffer
//! and writes the buffer with one syscall when it is due, so the hot path never
//! makes a syscall per event while a crash still loses at most the last
//! moments. See the module documentation of `recording` for the guarantees.

use std::collections::BTreeMap;
use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::cast::CastHeader;
use super::json;
use super::nul_runs::{MAX_NULS_PER_EVENT, NUL_RUNS_CODE, NulRuns};
use super::utf8::{self, RAW_BYTES_CODE, REPLACEMENT, Segment, Utf8Decoder};

/// Mode of the `YYYY/MM/DD` directories: the recordings group may list them,
/// nobody else may.
pub const DIR_MODE: u32 = 0o750;

/// Mode of a recording file: the recordings group may read it, only the
/// bastion may write it.
pub const FILE_MODE: u32 = 0o640;

/// Default cap on a recording's size (8 GiB, as in the server configuration),
/// so a runaway session cannot fill the disk that holds every other session's
/// evidence.
pub const DEFAULT_MAX_BYTES: u64 = 8 << 30;

/// Bytes held back from `max_bytes` so the marker explaining why a recording
/// stops can always be written within the limit.
pub const LIMIT_MARKER_RESERVE: u64 = 128;

/// Label of the marker written when the size limit stops a recording, so a
/// reviewer sees why it ends.
pub const LIMIT_MARKER_LABEL: &str = "gatehouse: recording size limit reached";

/// Buffered bytes at which the recorder writes without waiting for the flush
/// interval, bounding memory under heavy output.
const HIGH_WATER: usize = 64 * 1024;

/// How a recording is written; comes from the role and server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderConfig {
    /// Largest file the recording may grow to, header included. Reaching it
    /// makes the recorder return [`RecordingError::LimitReached`].
    pub max_bytes: u64,
    /// Longest time recorded data may stay only in memory, provided
    /// [`Recorder::tick`] is called at least every [`Recorder::tick_period`]
    /// (half of this).
    pub flush_interval: Duration,
    /// Record what the user types: set when the role asks for it and always
    /// for break-glass sessions.
    pub record_input: bool,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            flush_interval: Duration::from_secs(1),
            record_input: false,
        }
    }
}

/// What a finished recording amounts to, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSummary {
    /// Where the recording is.
    pub path: PathBuf,
    /// SHA-256 of the complete file, lowercase hex, so tampering is detectable.
    pub sha256: String,
    /// Size of the file.
    pub file_bytes: u64,
    /// Raw output bytes recorded.
    pub bytes_out: u64,
    /// Raw input bytes recorded (zero unless input was recorded).
    pub bytes_in: u64,
    /// The recording stopped at the size limit.
    pub limit_reached: bool,
}

/// Why recording failed; every variant means the session must not continue
/// unrecorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// Creating, writing, flushing or syncing the file failed.
    #[error("recording I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The recording reached its configured maximum size.
    #[error("recording size limit of {limit} bytes reached")]
    LimitReached {
        /// The configured maximum.
        limit: u64,
    },
    /// The session id cannot safely be used as a file name.
    #[error("session id {0:?} cannot be used as a recording file name")]
    InvalidSessionId(String),
    /// An earlier write failed, so the file may end in a partial line and
    /// nothing more may be appended.
    #[error("recording {} is unusable after an earlier write error", path.display())]
    Failed {
        /// The recording file.
        path: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Limited,
    Failed,
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Output,
    Input,
}

/// An asciicast v2 recording being written.
///
/// Owned by one session task; all methods are synchronous and cheap except
/// [`Recorder::create`] and [`Recorder::finish`], which sync to disk.
#[derive(Debug)]
pub struct Recorder {
    path: PathBuf,
    file: File,
    cfg: RecorderConfig,
    started: Instant,
    buf: Vec<u8>,
    tokens: String,
    nul_runs: NulRuns,
    out_decoder: Utf8Decoder,
    in_decoder: Utf8Decoder,
    hasher: Sha256,
    written: u64,
    bytes_out: u64,
    bytes_in: u64,
    oldest_unflushed: Option<Instant>,
    state: State,
}

#[derive(Serialize)]
struct HeaderLine<'a> {
    version: u8,
    width: u16,
    height: u16,
    timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    env: &'a BTreeMap<String, String>,
}

impl Recorder {
    /// Creates `dir/YYYY/MM/DD/<session_id>.cast` (date of `started`, UTC) and
    /// writes the header to disk.
    ///
    /// `dir` must exist; the date directories are created with [`DIR_MODE`] and
    /// the file with [`FILE_MODE`], never overwriting an existing file. The
    /// header and the new directory entry are synced so the recording exists
    /// even if the machine fails right after the session starts; like
    /// [`Recorder::finish`], this blocks on `fsync`.
    pub fn create(
        dir: &Path,
        session_id: &str,
        started: DateTime<Utc>,
        header: CastHeader,
        cfg: RecorderConfig,
    ) -> Result<Recorder, RecordingError> {
        // Event times count from here, not from after the syncs below.
        let clock_start = Instant::now();
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

        let env = header.env;
        let line = HeaderLine {
            version: 2,
            width: header.width,
            height: header.height,
            timestamp: header.timestamp,
            command: header.command.as_deref(),
            title: header.title.as_deref(),
            env: &env,
        };
        let mut buf = serde_json::to_vec(&line).map_err(|err| io_err(io::Error::other(err)))?;
        buf.push(b'\n');

        let mut recorder = Recorder {
            path,
            file,
            cfg,
            started: clock_start,
            buf,
            tokens: String::new(),
            nul_runs: NulRuns::default(),
            out_decoder: Utf8Decoder::new(),
            in_decoder: Utf8Decoder::new(),
            hasher: Sha256::new(),
            written: 0,
            bytes_out: 0,
            bytes_in: 0,
            oldest_unflushed: None,
            state: State::Open,
        };
        recorder.flush()?;
        recorder
            .file
            .sync_all()
            .map_err(io_err_for(&recorder.path))?;
        File::open(&day_dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| RecordingError::Io {
                path: day_dir.clone(),
                source,
            })?;
        Ok(recorder)
    }

    /// Where the recording is being written, for the audit log.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How often the session must call [`Recorder::tick`] for the
    /// `flush_interval` guarantee to hold.
    pub fn tick_period(&self) -> Duration {
        self.cfg.flush_interval / 2
    }

    /// When buffered data becomes due for writing, or `None` if nothing is
    /// buffered; lets a session sleep exactly until the next needed tick.
    pub fn flush_deadline(&self) -> Option<Instant> {
        self.oldest_unflushed
            .map(|oldest| oldest + self.tick_period())
    }

    /// Records output sent to the user's terminal.
    pub fn output(&mut self, data: &[u8]) -> Result<(), RecordingError> {
        self.output_at(data, Instant::now())
    }

    /// Records what the user typed; does nothing unless input recording is on.
    pub fn input(&mut self, data: &[u8]) -> Result<(), RecordingError> {
        self.input_at(data, Instant::now())
    }

    /// Records a terminal resize so playback reflows like the session did.
    pub fn resize(&mut self, cols: u32, rows: u32) -> Result<(), RecordingError> {
        self.resize_at(cols, rows, Instant::now())
    }

    /// Records an annotated marker (e.g. a denied command) that players show
    /// as a chapter point.
    pub fn marker(&mut self, label: &str) -> Result<(), RecordingError> {
        self.marker_at(label, Instant::now())
    }

    /// Writes buffered data if it is due; call every [`Recorder::tick_period`]
    /// from the session loop so idle sessions still reach disk.
    pub fn tick(&mut self) -> Result<(), RecordingError> {
        self.tick_at(Instant::now())
    }

    /// Ends the recording: writes everything, syncs the file to disk and
    /// returns its hash and sizes.
    ///
    /// This blocks on `fsync`; async callers may want `spawn_blocking`.
    pub fn finish(mut self) -> Result<RecordingSummary, RecordingError> {
        self.finish_at(Instant::now())
    }

    fn output_at(&mut self, data: &[u8], now: Instant) -> Result<(), RecordingError> {
        self.record_chunks(Stream::Output, data, now)
    }

    /// Records `data` as events of at most [`MAX_NULS_PER_EVENT`] bytes, the most a reader
    /// accepts in one event's NUL runs.
    fn record_chunks(
        &mut self,
        stream: Stream,
        data: &[u8],
        now: Instant,
    ) -> Result<(), RecordingError> {
        for chunk in data.chunks(MAX_NULS_PER_EVENT) {
            self.record_stream(stream, chunk, false, now)?;
        }
        Ok(())
    }

    fn input_at(&mut self, data: &[u8], now: Instant) -> Result<(), RecordingError> {
        if !self.cfg.record_input {
            return Ok(());
        }
        self.record_chunks(Stream::Input, data, now)
    }

    fn resize_at(&mut self, cols: u32, rows: u32, now: Instant) -> Result<(), RecordingError> {
        self.record_text("r", &format!("{cols}x{rows}"), now)
    }

    fn marker_at(&mut self, label: &str, now: Instant) -> Result<(), RecordingError> {
        self.record_text("m", label, now)
    }

    fn tick_at(&mut self, now: Instant) -> Result<(), RecordingError> {
        match self.state {
            State::Failed => Err(self.failed()),
            _ => self.flush_if_due(now),
        }
    }

    fn finish_at(&mut self, now: Instant) -> Result<RecordingSummary, RecordingError> {
        if self.state == State::Failed {
            return Err(self.failed());
        }
        let mut limit_reached = self.state == State::Limited;
        for stream in [Stream::Output, Stream::Input] {
            match self.record_stream(stream, &[], true, now) {
                Ok(()) => {}
                Err(RecordingError::LimitReached { .. }) => limit_reached = true,
                Err(err) => return Err(err),
            }
        }
        self.flush()?;
        self.file.sync_all().map_err(io_err_for(&self.path))?;
        self.state = State::Finished;
        Ok(RecordingSummary {
            path: self.path.clone(),
            sha256: to_hex(&self.hasher.clone().finalize()),
            file_bytes: self.written,
            bytes_out: self.bytes_out,
            bytes_in: self.bytes_in,
            limit_reached,
        })
    }

    fn check_open(&self) -> Result<(), RecordingError> {
        match self.state {
            State::Open => Ok(()),
            State::Limited => Err(RecordingError::LimitReached {
                limit: self.cfg.max_bytes,
            }),
            State::Failed | State::Finished => Err(self.failed()),
        }
    }

    /// Encodes a chunk of output or input (and, at the end, whatever the
    /// decoder still holds) as one event plus, if needed, its raw-bytes line.
    fn record_stream(
        &mut self,
        stream: Stream,
        data: &[u8],
        at_end: bool,
        now: Instant,
    ) -> Result<(), RecordingError> {
        self.check_open()?;
        let (code, decoder) = match stream {
            Stream::Output => ("o", &mut self.out_decoder),
            Stream::Input => ("i", &mut self.in_decoder),
        };
        if at_end && !decoder.has_pending() {
            return Ok(());
        }
        let line_start = self.buf.len();
        let time = now.saturating_duration_since(self.started);
        push_event_start(&mut self.buf, time, code);
        let content_start = self.buf.len();
        self.tokens.clear();
        self.nul_runs.clear();
        let mut has_invalid = false;
        // Exact bytes of this event emitted so far, where the next NUL run would start.
        let mut offset = 0;
        let buf = &mut self.buf;
        let tokens = &mut self.tokens;
        let nul_runs = &mut self.nul_runs;
        let mut sink = |segment: Segment<'_>| match segment {
            Segment::Text(text) => {
                json::push_escaped_folding_nul(buf, text, |at, len| {
                    nul_runs.push(offset + at, len)
                });
                if has_invalid {
                    utf8::push_genuine_tokens(tokens, text);
                }
                offset += text.len();
            }
            Segment::Invalid(byte) => {
                if !has_invalid {
                    // Tokens are needed from now on: catch up with the genuine U+FFFD
                    // already in this event (the escaper leaves them as they are).
                    utf8::push_genuine_tokens(
                        tokens,
                        &String::from_utf8_lossy(&buf[content_start..]),
                    );
                    has_invalid = true;
                }
                let mut utf8 = [0; 4];
                buf.extend_from_slice(REPLACEMENT.encode_utf8(&mut utf8).as_bytes());
                utf8::push_invalid_token(tokens, byte);
                offset += 1;
            }
        };
        if at_end {
            decoder.finish(&mut sink);
        } else {
            decoder.decode(data, &mut sink);
        }
        if self.buf.len() == content_start && self.nul_runs.is_empty() {
            // Everything was held back as an incomplete character; it is written with the
            // next chunk, and counted now.
            self.buf.truncate(line_start);
        } else {
            self.buf.extend_from_slice(b"\"]\n");
            if has_invalid {
                push_event_start(&mut self.buf, time, RAW_BYTES_CODE);
                self.buf.extend_from_slice(self.tokens.as_bytes());
                self.buf.extend_from_slice(b"\"]\n");
            }
            if !self.nul_runs.is_empty() {
                push_event_start(&mut self.buf, time, NUL_RUNS_CODE);
                self.nul_runs.write_to(&mut self.buf);
                self.buf.extend_from_slice(b"\"]\n");
            }
            self.commit_line(line_start, now)?;
        }
        let counter = match stream {
            Stream::Output => &mut self.bytes_out,
            Stream::Input => &mut self.bytes_in,
        };
        *counter += data.len() as u64;
        Ok(())
    }

    fn record_text(&mut self, code: &str, text: &str, now: Instant) -> Result<(), RecordingError> {
        self.check_open()?;
        let line_start = self.buf.len();
        push_event_start(
            &mut self.buf,
            now.saturating_duration_since(self.started),
            code,
        );
        json::push_escaped(&mut self.buf, text);
        self.buf.extend_from_slice(b"\"]\n");
        self.commit_line(line_start, now)
    }

    /// Accepts the lines appended since `line_start` if they fit the size
    /// limit, otherwise replaces them with the limit marker.
    fn commit_line(&mut self, line_start: usize, now: Instant) -> Result<(), RecordingError> {
        let budget = self.cfg.max_bytes.saturating_sub(LIMIT_MARKER_RESERVE);
        if self.written + self.buf.len() as u64 > budget {
            self.buf.truncate(line_start);
            return Err(self.hit_limit(now));
        }
        if self.oldest_unflushed.is_none() {
            self.oldest_unflushed = Some(now);
        }
        if self.buf.len() >= HIGH_WATER {
            self.flush()?;
        } else {
            self.flush_if_due(now)?;
        }
        Ok(())
    }

    fn hit_limit(&mut self, now: Instant) -> RecordingError {
        push_event_start(
            &mut self.buf,
            now.saturating_duration_since(self.started),
            "m",
        );
        json::push_escaped(&mut self.buf, LIMIT_MARKER_LABEL);
        self.buf.extend_from_slice(b"\"]\n");
        self.state = State::Limited;
        match self.flush() {
            Ok(()) => RecordingError::LimitReached {
                limit: self.cfg.max_bytes,
            },
            Err(err) => err,
        }
    }

    fn flush_if_due(&mut self, now: Instant) -> Result<(), RecordingError> {
        match self.oldest_unflushed {
            Some(oldest) if now.saturating_duration_since(oldest) >= self.tick_period() => {
                self.flush()
            }
            _ => Ok(()),
        }
    }

    /// Writes the whole buffer; it only ever holds complete lines, so the file
    /// never ends in a partial line because of a flush.
    fn flush(&mut self) -> Result<(), RecordingError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.hasher.update(&self.buf);
        if let Err(source) = self.file.write_all(&self.buf) {
            self.state = State::Failed;
            return Err(RecordingError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.written += self.buf.len() as u64;
        self.buf.clear();
        self.oldest_unflushed = None;
        Ok(())
    }

    fn failed(&self) -> RecordingError {
        RecordingError::Failed {
            path: self.path.clone(),
        }
    }
}

impl Drop for Recorder {
    /// Writes out buffered events if the recorder is dropped without
    /// [`Recorder::finish`] (e.g. the session task unwound), so as little as
    /// possible is lost.
    fn drop(&mut self) {
        if self.state == State::Open
            && let Err(err) = self.flush()
        {
            tracing::warn!(error = %err, "could not flush recording on drop");
        }
    }
}

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

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

fn io_err_for(path: &Path) -> impl Fn(io::Error) -> RecordingError + '_ {
    move |source| RecordingError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Session ids become file names: allow only characters that cannot escape
/// the day directory or hide the file.
fn is_safe_file_stem(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn create_private_dir(path: &Path) -> Result<(), RecordingError> {
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

/// Appends `[<time>, "<code>", "` with the time in seconds and microseconds.
fn push_event_start(buf: &mut Vec<u8>, time: Duration, code: &str) {
    // Writing into a Vec cannot fail.
    let _ = write!(
        buf,
        "[{}.{:06}, \"{code}\", \"",
        time.as_secs(),
        time.subsec_micros()
    );
}

#[cfg(test)]
mod tests {
    use super::super::cast::{EventKind, output_bytes, parse_cast, read_cast};
    use super::*;
    use chrono::TimeZone;
    use std::os::unix::fs::MetadataExt;

    fn header() -> CastHeader {
        CastHeader {
            width: 120,
            height: 40,
            timestamp: 1_700_000_000,
            command: Some("uptime".to_owned()),
            title: Some("alice@web-01 [web-ops] grant 17".to_owned()),
            env: BTreeMap::from([
                ("TERM".to_owned(), "xterm-256color".to_owned()),
                ("SHELL".to_owned(), "/bin/bash".to_owned()),
            ]),
        }
    }

    fn started() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 7, 12, 0, 0).unwrap()
    }

    fn create(dir: &Path, cfg: RecorderConfig) -> Recorder {
        Recorder::create(dir, "sess-1", started(), header(), cfg).unwrap()
    }

    #[test]
    fn creates_dated_path_with_modes_and_header() {
        let tmp = tempfile::tempdir().unwrap();
        let rec = create(tmp.path(), RecorderConfig::default());
        let expected = tmp.path().join("2024/03/07/sess-1.cast");
        assert_eq!(rec.path(), expected);
        for dir in ["2024", "2024/03", "2024/03/07"] {
            let mode = std::fs::metadata(tmp.path().join(dir)).unwrap().mode();
            assert_eq!(mode & 0o777, DIR_MODE, "{dir}");
        }
        assert_eq!(
            std::fs::metadata(&expected).unwrap().mode() & 0o777,
            FILE_MODE
        );
        // The header is on disk immediately.
        let text = std::fs::read_to_string(&expected).unwrap();
        assert!(text.ends_with('\n'));
        let json: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(json["version"], 2);
        assert_eq!(json["width"], 120);
        assert_eq!(json["height"], 40);
        assert_eq!(json["timestamp"], 1_700_000_000);
        assert_eq!(json["command"], "uptime");
        assert_eq!(json["title"], "alice@web-01 [web-ops] grant 17");
        assert_eq!(json["env"]["TERM"], "xterm-256color");
        assert_eq!(json["env"]["SHELL"], "/bin/bash");
        drop(rec);
    }

    #[test]
    fn header_omits_absent_command_and_title() {
        let tmp = tempfile::tempdir().unwrap();
        let mut h = header();
        h.command = None;
        h.title = None;
        h.env.clear();
        let rec =
            Recorder::create(tmp.path(), "s", started(), h, RecorderConfig::default()).unwrap();
        let text = std::fs::read_to_string(rec.path()).unwrap();
        let json: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert!(json.get("command").is_none() && json.get("title").is_none());
        assert_eq!(json["env"], serde_json::json!({}));
    }

    #[test]
    fn never_overwrites_and_rejects_unsafe_ids() {
        let tmp = tempfile::tempdir().unwrap();
        let first = create(tmp.path(), RecorderConfig::default());
        let again = Recorder::create(
            tmp.path(),
            "sess-1",
            started(),
            header(),
            RecorderConfig::default(),
        );
        assert!(matches!(again, Err(RecordingError::Io { .. })));
        for bad in ["", "../x", "a/b", ".hidden", "a\0b", "é"] {
            let result = Recorder::create(
                tmp.path(),
                bad,
                started(),
                header(),
                RecorderConfig::default(),
            );
            assert!(
                matches!(result, Err(RecordingError::InvalidSessionId(_))),
                "{bad:?}"
            );
        }
        drop(first);
    }

    #[test]
    fn missing_base_directory_is_an_error_with_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("absent");
        let err = Recorder::create(&base, "s", started(), header(), RecorderConfig::default())
            .unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
    }

    #[test]
    fn data_is_buffered_until_due_then_flushed_by_tick() {
        let tmp = tempfile::tempdir().unwrap();
        let mut rec = create(tmp.path(), RecorderConfig::default());
        let t0 = rec.started;
        rec.output_at(b"hello ", t0 + Duration::from_millis(100))
            .unwrap();
        rec.output_at(b"world", t0 + Duration::from_millis(200))
            .unwrap();
        assert_eq!(rec.flush_deadline(), Some(t0 + Duration::from_millis(600)));
        rec.tick_at(t0 + Duration::from_millis(599)).unwrap();
        let on_disk = read_cast(rec.path()).unwrap();
        assert!(on_disk.events.is_empty(), "still buffered before due");
        rec.tick_at(t0 + Duration::from_millis(600)).unwrap();
        let on_disk = read_cast(rec.path()).unwrap();
        assert!(!on_disk.truncated);
        assert_eq!(output_bytes(&on_disk), b"hello world");
        assert_eq!(on_disk.events[0].time, 0.1);
        assert_eq!(on_disk.events[1].time, 0.2);
        assert_eq!(rec.flush_deadline(), None);
    }

    #[test]
    fn continuous_output_flushes_without_tick() {
        let tmp = tempfile::tempdir().unwrap();
        let mut rec = create(tmp.path(), RecorderConfig::default());
        let t0 = rec.started;
        for ms in (0..=600).step_by(100) {
            rec.output_at(b"x", t0 + Duration::from_millis(ms)).unwrap();
        }
        let on_disk = read_cast(rec.path()).unwrap();
        assert_eq!(output_bytes(&on_disk), b"xxxxxx");
    }

    #[test]
    fn large_output_flushes_at_high_water() {
        let tmp = tempfile::tempdir().unwrap();
        let mut rec = create(tmp.path(), RecorderConfig::default());
        let t0 = rec.started;
        // Each 0x01 is written as `\u0001`, so a quarter of the high water mark passes it.
        rec.output_at(&[1u8; HIGH_WATER / 4], t0).unwrap();
        let on_disk = read_cast(rec.path()).unwrap();
        assert_eq!(output_bytes(&on_disk), vec![1u8; HIGH_WATER / 4]);
    }

    #[test]
    fn crash_leaves_a_valid_file_up_to_the_last_flush() {
        let tmp = tempfile::tempdir().unwrap();
        let mut rec = create(tmp.path(), RecorderConfig::default());
        let path = rec.path().to_owned();
        let t0 = rec.started;
        rec.output_at("flushed €".as_bytes(), t0).unwrap();
        rec.resize_at(100, 30, t0).unwrap();
        rec.tick_at(t0 + Duration::from_secs(1)).unwrap();
        rec.output_at(b"lost in the crash", t0 + Duration::from_millis(1100))
            .unwrap();
        // A crash: no finish, no Drop.
        std::mem::forget(rec);
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.ends_with(b"\n"));
        let cast = parse_cast(&bytes).unwrap();
        assert!(!cast.truncated);
        assert_eq!(output_bytes(&cast), "flushed €".as_bytes());
        assert_eq!(cast.events[1].kind, EventKind::Resize);
        assert_eq!(cast.events[1].data, "100x30");
    }

    const CRASH_CHILD_ENV: &str = "GATEHOUSE_RECORDING_CRASH_CHILD";

    /// Runs a recorder in a child process (this test binary again), kills it
    /// with SIGKILL mid-stream and checks what is on disk.
    #[test]
    fn killed_process_leaves_a_playable_file() {
        if let Some(dir) = std::env::var_os(CRASH_CHILD_ENV) {
            crash_child(Path::new(&dir));
        }
        let tmp = tempfile::tempdir().unwrap();
        let module = module_path!();
        let test_name = format!(
            "{}::killed_process_leaves_a_playable_file",
            &module[module.find("::").map_or(0, |i| i + 2)..]
        );
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &test_name, "--nocapture", "--test-threads=1"])
            .env(CRASH_CHILD_ENV, tmp.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let path = tmp.path().join("2024/01/02/crash.cast");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let lines = std::fs::read(&path).map_or(0, |b| b.split(|&c| c == b'\n').count());
            if lines > 3 {
                break;
            }
            assert!(Instant::now() < deadline, "child recorded nothing");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        child.kill().unwrap();
        child.wait().unwrap();
        let cast = read_cast(&path).unwrap();
        let expected: String = (0..)
            .map(|n| format!("line {n}\r\n"))
            .take(100_000)
            .collect();
        let recorded = String::from_utf8(output_bytes(&cast)).unwrap();
        assert!(recorded.len() > 10);
        assert!(
            expected.starts_with(&recorded),
            "not a prefix of the stream"
        );
    }

    fn crash_child(dir: &Path) -> ! {
        let started = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        let cfg = RecorderConfig {
            flush_interval: Duration::from_millis(100),
            ..RecorderConfig::default()
        };
        let mut rec = Recorder::create(dir, "crash", started, header(), cfg).unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        let mut n = 0;
        while Instant::now() < until {
            rec.output(format!("line {n}\r\n").as_bytes()).unwrap();
            rec.tick().unwrap();
            n += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
        std::process::exit(1);
    }

    #[test]
    fn drop_without_finish_flushes() {
        let tmp = tempfile::tempdir().unwrap();
        let mut rec = create(tmp.path(), RecorderConfig::default());
        let path = rec.path().to_owned();
        rec.output(b"kept").unwrap();
        drop(rec);
        assert_eq!(output_bytes(&read_cast(&path).unwrap()), b"kept");
    }

    #[test]
    fn finish_returns_hash_and_counts() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = RecorderConfig {
            record_input: true,
            ..RecorderConfig::default()
        };
        let mut rec = create(tmp.path(), cfg);
        rec.output(b"$ ").unwrap();
        rec.input(b"ls\r").unwrap();
        rec.output(b"ls\r\nfile\r\n").unwrap();
        rec.marker("command: ls").unwrap();
        let summary = rec.finish().unwrap();
        assert_eq!(summary.bytes_out, 12);
        assert_eq!(summary.bytes_in, 3);
        assert!(!summary.limit_reached);
        assert_eq!(
            summary.file_bytes,
            std::fs::metadata(&summary.path).unwrap().len()
        );
        assert_eq!(summary.sha256, sha256_file(&summary.path).unwrap());
        assert_eq!(summary.sha256.len(), 64);
        let cast = read_cast(&summary.path).unwrap();
        let codes: Vec<&str> = cast.events.iter().map(|e| e.kind.code()).collect();
        assert_eq!(codes, ["o", "i", "o", "m"]);
        assert_eq!(cast.events[3].data, "command: ls");
    }

    #[test]
    fn input_is_ignored_unless_enabled() {
        let tmp = tempfile::tempdir().unwrap();
        let mut rec = create(tmp.path(), RecorderConfig::default());
        rec.input(b"secret").unwrap();
        let summary = rec.finish().unwrap();
        assert_eq!(summary.bytes_in, 0);
        assert!(read_cast(&summary.path).unwrap().events.is_empty());
    }

    #[test]
    fn split_and_invalid_utf8_is_recorded_losslessly() {
        let tmp = tempfile::tempdir().unwrap();
        let mut rec = create(tmp.path(), RecorderConfig::default());
        let mut original = Vec::new();
        let chunks: [&[u8]; 6] = [
            b"emoji \xf0\x9f",
            b"\x98\x80 euro \xe2",
            b"\x82\xac bad \xff\xfe",
            "genuine \u{FFFD} ".as_bytes(),
            b"\x00\x1b[31mred\x1b[0m",
            b" cut \xe2\x82",
        ];
        for chunk in chunks {
            rec.output(chunk).unwrap();
            original.extend_from_slice(chunk);
        }
        let summary = rec.finish().unwrap();
        let cast = read_cast(&summary.path).unwrap();
        assert_eq!(output_bytes(&cast), original);
        let shown: String = cast.events.iter().map(|e| e.data.as_str()).collect();
        assert!(shown.starts_with("emoji 😀 euro € bad \u{FFFD}\u{FFFD}"));
        assert!(shown.ends_with(" cut \u{FFFD}\u{FFFD}"));
        assert_eq!(summary.bytes_out, original.len() as u64);
    }

    #[test]
    fn size_limit_stops_recording_with_a_marker() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = RecorderConfig {
            max_bytes: 600,
            ..RecorderConfig::default()
        };
        let mut rec = create(tmp.path(), cfg);
        let mut accepted = 0;
        let err = loop {
            match rec.output(&[b'a'; 40]) {
                Ok(()) => accepted += 1,
                Err(err) => break err,
            }
        };
        assert!(matches!(err, RecordingError::LimitReached { limit: 600 }));
        assert!(accepted > 0);
        // Further events keep failing; finish still works.
        assert!(matches!(
            rec.marker("late"),
            Err(RecordingError::LimitReached { .. })
        ));
        rec.tick().unwrap();
        let summary = rec.finish().unwrap();
        assert!(summary.limit_reached);
        assert!(summary.file_bytes <= 600, "{}", summary.file_bytes);
        let cast = read_cast(&summary.path).unwrap();
        let last = cast.events.last().unwrap();
        assert_eq!(last.kind, EventKind::Marker);
        assert_eq!(last.data, LIMIT_MARKER_LABEL);
        assert_eq!(output_bytes(&cast).len(), accepted * 40);
        assert_eq!(summary.bytes_out, accepted as u64 * 40);
    }

    #[test]
    fn write_errors_fail_closed() {
        let tmp = tempfile::tempdir().unwrap();
        let mut rec = create(tmp.path(), RecorderConfig::default());
        // Replace the file handle with a read-only one so writes fail.
        rec.file = File::open(rec.path()).unwrap();
        rec.output(b"x").unwrap();
        let err = rec
            .tick_at(Instant::now() + Duration::from_secs(5))
            .unwrap_err();
        assert!(matches!(err, RecordingError::Io { .. }), "{err}");
        assert!(matches!(
            rec.output(b"y"),
            Err(RecordingError::Failed { .. })
        ));
        assert!(matches!(rec.tick(), Err(RecordingError::Failed { .. })));
        assert!(matches!(rec.finish(), Err(RecordingError::Failed { .. })));
    }

    /// Plays a recording with every Gatehouse feature through the reference
    /// asciinema implementation (`pip install asciinema==2.4.0`), if present.
    #[test]
    fn reference_asciinema_plays_the_file() {
        let available = std::process::Command::new("python3")
            .args(["-c", "import asciinema"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !available {
            println!("note: python asciinema package not installed; skipping compatibility check");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let cfg = RecorderConfig {
            record_input: true,
            ..RecorderConfig::default()
        };
        let mut rec = create(tmp.path(), cfg);
        rec.output(b"\x1b[1;31mbold red\x1b[0m \"quoted\" \\ tab\t\r\n")
            .unwrap();
        rec.output(b"split \xe2\x82").unwrap();
        rec.input(b"ls\r").unwrap();
        rec.output(b"\xac and bad \xff\xc3( nul \x00 c1 \xc2\x9b end\r\n")
            .unwrap();
        rec.resize(100, 30).unwrap();
        rec.marker("denied: rm -rf /").unwrap();
        rec.output("genuine \u{FFFD} 😀\r\n".as_bytes()).unwrap();
        let summary = rec.finish().unwrap();
        let cast = read_cast(&summary.path).unwrap();
        let shown: String = cast
            .events
            .iter()
            .filter(|event| event.kind == EventKind::Output)
            .map(|event| event.data.as_str())
            .collect();
        let path = summary.path.to_str().unwrap();
        for args in [
            &["cat", path][..],
            &["play", "-s", "1000", path][..],
            &["play", "-s", "1000", "-i", "0.1", path][..],
        ] {
            let result = std::process::Command::new("python3")
                .args(["-m", "asciinema"])
                .args(args)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            assert!(
                result.status.success(),
                "asciinema {args:?}: {}",
                String::from_utf8_lossy(&result.stderr)
            );
            assert_eq!(String::from_utf8(result.stdout).unwrap(), shown, "{args:?}");
        }
    }

    #[test]
    fn bytes_held_back_as_incomplete_characters_are_counted() {
        let tmp = tempfile::tempdir().unwrap();
        let mut rec = create(tmp.path(), RecorderConfig::default());
        for chunk in [&b"\xe2"[..], b"\x82\0\0", b"\xac", b"\xe2\x82"] {
            rec.output(chunk).unwrap();
        }
        let summary = rec.finish().unwrap();
        assert_eq!(summary.bytes_out, 7);
        let cast = read_cast(&summary.path).unwrap();
        assert_eq!(output_bytes(&cast), b"\xe2\x82\0\0\xac\xe2\x82");
    }

    #[test]
    fn binary_heavy_output_stays_compact() {
        let tmp = tempfile::tempdir().unwrap();
        let mut rec = create(tmp.path(), RecorderConfig::default());
        // More than one event's worth in one call, then NULs among invalid bytes and a
        // genuine U+FFFD.
        let mut shown = vec![0u8; 3 * MAX_NULS_PER_EVENT + 5];
        rec.output(&shown).unwrap();
        let mixed = b"a\0\0\xff\0\xef\xbf\xbd\0b\xfe\0";
        rec.output(mixed).unwrap();
        shown.extend_from_slice(mixed);
        let summary = rec.finish().unwrap();
        assert!(summary.file_bytes < 1024, "{} bytes", summary.file_bytes);
        let cast = read_cast(&summary.path).unwrap();
        assert_eq!(output_bytes(&cast), shown);
        // Players see what a terminal shows: NUL is not there, invalid bytes are U+FFFD.
        let data: String = cast.events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, "a\u{FFFD}\u{FFFD}b\u{FFFD}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        #[test]
        fn any_output_and_input_round_trip_through_the_file(
            chunks in proptest::collection::vec(
                (
                    proptest::bool::ANY,
                    proptest::collection::vec(
                        proptest::prop_oneof![
                            proptest::num::u8::ANY,
                            proptest::strategy::Just(0u8),
                            proptest::strategy::Just(0xffu8),
                            proptest::strategy::Just(b'a'),
                        ],
                        0..64,
                    ),
                ),
                0..24,
            ),
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let cfg = RecorderConfig {
                record_input: true,
                ..RecorderConfig::default()
            };
            let mut rec = create(tmp.path(), cfg);
            let (mut out, mut input) = (Vec::new(), Vec::new());
            for (is_input, chunk) in &chunks {
                if *is_input {
                    rec.input(chunk).unwrap();
                    input.extend_from_slice(chunk);
                } else {
                    rec.output(chunk).unwrap();
                    out.extend_from_slice(chunk);
                }
            }
            let summary = rec.finish().unwrap();
            let cast = read_cast(&summary.path).unwrap();
            proptest::prop_assert_eq!(output_bytes(&cast), out);
            proptest::prop_assert_eq!(super::super::cast::input_bytes(&cast), input);
        }
    }
}
