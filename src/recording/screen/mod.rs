//! Terminal screens of a recording at any moment, for the web console's player.
//!
//! The browser never interprets a recorded byte. The server runs the recording through a
//! terminal emulator ([`avt`]) and sends the page [`Frame`]s: the visible grid as runs of plain
//! text with style attributes, which the page puts in the DOM as `textContent`. Whatever a
//! session printed — `<script>`, HTML, OSC 8 hyperlinks, OSC 52 clipboard writes, bidi
//! overrides — reaches the browser as inert characters or not at all (see [`frame`]).
//!
//! # Pieces
//!
//! * [`CastReader`] reads a recording line by line from any `BufRead`, with the same event
//!   rules as [`super::cast::parse_cast`] (one shared parser), without holding the file in
//!   memory, and can resume where it stopped when a live recording grows.
//! * [`ScreenIndex`] reads a recording once and keeps keyframes (emulator state dumps) so that
//!   [`ScreenIndex::frame_at`] replays at most one keyframe interval, and the [`Timeline`]
//!   (duration, marks, resizes) from the same pass. A growing file is followed from the last
//!   byte read ([`ScreenIndex::refresh`]).
//! * [`Screens`] caches a few indexes, keyed by path and checked against the file's identity,
//!   length and modification time on every call.
//! * [`search_times`] lists when a text appeared, so the page can jump to it.
//!
//! # Bounds
//!
//! Recorded bytes are hostile, so every cost has a ceiling:
//!
//! * A line longer than [`MAX_LINE_BYTES`] is refused (the recorder never writes one: events
//!   hold at most [`super::nul_runs::MAX_NULS_PER_EVENT`] bytes, at most six JSON bytes each).
//! * The emulated terminal is at most [`MAX_COLS`] × [`MAX_ROWS`] (larger sizes are clamped)
//!   and keeps no scrollback, so one emulator holds at most a few megabytes and one frame has
//!   at most `MAX_COLS * MAX_ROWS` characters.
//! * Keyframe dumps of one index take at most [`IndexOptions::keyframe_budget`] bytes plus one
//!   dump: past the budget every other keyframe is dropped and the interval doubles.
//! * The timeline keeps at most [`MAX_MARKS`] marks of at most [`MAX_LABEL_CHARS`]
//!   characters and [`MAX_RESIZES`] resizes; later ones are counted, not kept.
//!
//! All of it blocks (file I/O and emulation): async callers run it on a blocking thread.

mod cache;
mod emulator;
mod frame;
mod index;
mod reader;
mod search;
mod timeline;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

pub use cache::Screens;
pub use frame::{Frame, FrameCursor, Span};
pub use index::{IndexOptions, Refresh, ScreenIndex};
pub use reader::{CastReader, ReadError, ReadState, ReaderEvent};
pub use search::search_times;
pub use timeline::{Mark, MarkKind, ResizeMark, Timeline};

use super::cast::CastError;

/// Longest line the streaming reader accepts, comfortably above the longest line the recorder
/// writes (a [`super::nul_runs::MAX_NULS_PER_EVENT`]-byte event of control bytes, six JSON
/// bytes each), so a damaged or forged file cannot make a reader buffer without end.
pub const MAX_LINE_BYTES: usize = 8 * super::nul_runs::MAX_NULS_PER_EVENT;

/// Widest terminal emulated; wider recordings are shown clipped to this many columns.
pub const MAX_COLS: u16 = 512;

/// Tallest terminal emulated; taller recordings are shown clipped to this many rows.
pub const MAX_ROWS: u16 = 256;

/// Most marks a timeline lists; a session with more (a script running thousands of commands
/// in a restricted shell) lists the first ones.
pub const MAX_MARKS: usize = 10_000;

/// Most characters of a mark label kept; longer labels end in `…`.
pub const MAX_LABEL_CHARS: usize = 256;

/// Most resizes a timeline lists.
pub const MAX_RESIZES: usize = 10_000;

/// Why a screen could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ScreenError {
    /// The recording file could not be opened, examined or read.
    #[error("cannot read recording {}: {source}", path.display())]
    Io {
        /// The recording file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The recording is not a valid asciicast file.
    #[error("recording {}: {source}", path.display())]
    Cast {
        /// The recording file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: CastError,
    },
}

impl ScreenError {
    fn io(path: &std::path::Path) -> impl FnOnce(io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_owned(),
            source,
        }
    }

    fn cast(path: &std::path::Path) -> impl FnOnce(CastError) -> Self + '_ {
        move |source| Self::Cast {
            path: path.to_owned(),
            source,
        }
    }
}
