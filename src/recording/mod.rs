//! Session recordings: writing, reading, searching and replaying them.
//!
//! Every session is recorded so that what happened on a server can be shown
//! afterwards, including when the session ended badly. Recordings are
//! [asciicast v2] files at `recordings/YYYY/MM/DD/<session-id>.cast`, so
//! `asciinema play`, `asciinema cat` and the asciinema web player can show
//! them without any Gatehouse tooling.
//!
//! # File format
//!
//! The first line is the header (`version`, `width`, `height`, `timestamp`,
//! `command`, `title`, `env`). Each further line is one event
//! `[seconds, "code", "data"]`: `"o"` output, `"i"` input (only when input is
//! recorded), `"r"` resize (`"COLSxROWS"`), `"m"` marker. Times are seconds
//! since the recording started, with microsecond precision.
//!
//! # Bytes that are not UTF-8
//!
//! Event data must be a JSON string, but terminals carry bytes. Characters
//! split across reads are reassembled (see [`utf8::Utf8Decoder`]), never
//! replaced. A byte that cannot be decoded at all appears in the `"o"` or
//! `"i"` data as U+FFFD — exactly what a UTF-8 terminal would have shown —
//! and the event is immediately followed by a companion line with code
//! `"b"` and the same time:
//!
//! ```text
//! [1.250000, "o", "a\ufffdb\ufffd"]
//! [1.250000, "b", "ff--"]
//! ```
//!
//! Its data holds one two-character token per U+FFFD in the preceding event:
//! two hex digits for the byte that U+FFFD replaced, or `--` for a U+FFFD that
//! was genuinely in the stream. [`cast::read_cast`] folds the companion into
//! the event ([`cast::Event::raw`]), and [`cast::output_bytes`] returns the
//! exact bytes. Events without undecodable bytes have no companion, so
//! ordinary text costs nothing extra and binary output costs two bytes per
//! undecodable byte.
//!
//! # NUL bytes
//!
//! JSON can carry a NUL only as `\u0000`, six bytes for one that no terminal
//! shows. The recorder leaves NUL runs out of the event data and lists them in
//! a companion line with code `"n"` (after the `"b"` line, if there is one):
//! `OFFSET:COUNT` entries giving where runs start in the event's exact bytes.
//! See [`nul_runs`]. A gigabyte of zeros costs a few megabytes of
//! recording (about 50 bytes per event).
//!
//! This is safe for players because the asciicast v2 specification requires
//! tools to ignore event codes they do not understand, and the players do:
//! `asciinema` 2.4 (Python) plays and cats only `"o"` events; `asciinema` 3
//! (Rust) parses unknown codes as "other" events and skips them; the
//! asciinema web player only acts on `o`, `i`, `r` and `m`. The `"o"` data
//! itself stays valid text, so every player shows the same as the user saw.
//!
//! # Durability and failure
//!
//! * The header is written and synced when the file is created.
//! * A session's recording is a [`live::LiveRecording`]: the session queues each event and
//!   waits until a thread of the recording I/O pool ([`pool::IoPool`]) has encoded it and
//!   appended it to the file with `write(2)`; only then are the bytes shown to the user. So the
//!   file always holds at least what the user saw (in the page cache; synced at the end), and a
//!   killed process leaves a valid file holding all of it.
//! * No recording I/O (create, write, sync, hash) runs on the async runtime's threads. A write
//!   that does not complete within the stall timeout is reported as
//!   [`live::WriteError::Stalled`]; while one is stuck, new recordings are refused at once.
//! * `finish()` writes the rest, `fsync`s and returns the SHA-256 of the file.
//! * Every I/O error is returned; after a write error the recorder refuses all
//!   further calls, and the session must end (fail closed).
//! * At `max_bytes` the recorder writes a marker saying so and returns
//!   [`writer::RecordingError::LimitReached`] for every further event.
//! * The [`writer::Recorder`] on its own also buffers: lines are written when the oldest is half
//!   a `flush_interval` old, on [`writer::Recorder::tick`], or at 64 KiB; the live recording
//!   writes out after every batch instead.
//!
//! # Showing recordings in a browser
//!
//! [`screen`] plays a recording into a terminal emulator on the server and hands out each
//! moment's screen as plain text runs with styles, so a web page never interprets a recorded
//! byte; it reads files as a stream and follows recordings that are still growing.
//!
//! [asciicast v2]: https://docs.asciinema.org/manual/asciicast/v2/

pub mod cast;
pub mod files;
pub mod json;
pub mod live;
pub mod nul_runs;
pub mod pool;
pub mod replay;
pub mod sanitize;
pub mod screen;
pub mod search;
pub mod utf8;
pub mod writer;

pub use cast::{
    Cast, CastError, CastHeader, Event, EventKind, input_bytes, output_bytes, parse_cast, read_cast,
};
pub use files::sha256_file;
pub use live::{CreateError, Finishing, LateFinish, LiveRecording, Queued, WriteError};
pub use pool::IoPool;
pub use replay::{RawMode, ReplayEnd, ReplayKey, ReplayOptions, replay, spawn_key_reader};
pub use sanitize::Sanitizer;
pub use search::{MatchSource, TextMatch, TextSearch, contains_text, find_text};
pub use writer::{Recorder, RecorderConfig, RecordingError, RecordingSummary};
