//! Writing session recordings to disk.
//!
//! The [`Recorder`] encodes events as complete JSON lines into an in-memory
//! buffer and writes the buffer with one syscall when it is due or when asked
//! ([`Recorder::write_out`]). It blocks on I/O, so sessions use it through
//! [`super::live::LiveRecording`], which runs it on the recording I/O pool.
//! See the module documentation of `recording` for the guarantees.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::cast::CastHeader;
use super::files::{create_cast_file, to_hex};
use super::json;
use super::nul_runs::{MAX_NULS_PER_EVENT, NUL_RUNS_CODE, NulRuns};
use super::utf8::{self, RAW_BYTES_CODE, REPLACEMENT, Segment, Utf8Decoder};

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
    /// Kept at the length written, for the text index that follows the file.
    length_tap: Option<Arc<AtomicU64>>,
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
    /// `dir` must exist; the date directories are created with [`DIR_MODE`](super::files::DIR_MODE) and
    /// the file with [`FILE_MODE`](super::files::FILE_MODE), never overwriting an existing file. The
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
        let (path, day_dir, file) = create_cast_file(dir, session_id, started)
            .inspect_err(|_| crate::metrics::recording_failed())?;
        let io_err = |source| RecordingError::Io {
            path: path.clone(),
            source,
        };

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
            length_tap: None,
        };
        // A failed write is counted by `flush`; a failed sync here.
        recorder.flush()?;
        recorder
            .file
            .sync_all()
            .map_err(io_err_for(&recorder.path))
            .and_then(|()| {
                File::open(&day_dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|source| RecordingError::Io {
                        path: day_dir.clone(),
                        source,
                    })
            })
            .inspect_err(|_| crate::metrics::recording_failed())?;
        Ok(recorder)
    }

    /// Where the recording is being written, for the audit log.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps `tap` at the length of what has been written to the file (whole lines), so the
    /// text index can read the new lines ([`crate::search::indexer`]); dropped with the recorder.
    pub fn report_length_to(&mut self, tap: Arc<AtomicU64>) {
        tap.store(self.written, Ordering::Release);
        self.length_tap = Some(tap);
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

    /// Writes everything buffered now, so that what was recorded so far is in the file (not
    /// yet synced) when this returns: the caller may then show those bytes to the user.
    pub fn write_out(&mut self) -> Result<(), RecordingError> {
        match self.state {
            State::Failed => Err(self.failed()),
            _ => self.flush(),
        }
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
        self.file
            .sync_all()
            .map_err(io_err_for(&self.path))
            .inspect_err(|_| crate::metrics::recording_failed())?;
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
            crate::metrics::recording_failed();
            return Err(RecordingError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.written += self.buf.len() as u64;
        if let Some(tap) = &self.length_tap {
            tap.store(self.written, Ordering::Release);
        }
        crate::metrics::recording_written(self.buf.len() as u64);
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

fn io_err_for(path: &Path) -> impl Fn(io::Error) -> RecordingError + '_ {
    move |source| RecordingError::Io {
        path: path.to_owned(),
        source,
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
mod tests;
