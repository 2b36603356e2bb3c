//! The keyframe index of one recording: any moment's screen for at most one interval of
//! replay.
//!
//! One streaming pass plays the whole recording into an emulator and, every
//! [`IndexOptions::keyframe_bytes`] bytes of file or [`IndexOptions::keyframe_secs`] seconds of
//! recording (whichever comes first), saves the emulator's state before the next event. To show
//! time `t`, [`ScreenIndex::frame_at`] restores the last keyframe at or before `t` and replays
//! the file from there. The emulator at the end of the pass is kept: it is the live view
//! ([`ScreenIndex::latest`]) and, for a growing file, the start of the next pass
//! ([`ScreenIndex::refresh`]).
//!
//! # What "the screen at time t" means
//!
//! Events are played in file order up to, not including, the first event later than `t`, as
//! a player does. A keyframe records the latest time of the events before it, so it stands for
//! every `t` at or after that time.
//!
//! # Memory
//!
//! An index holds: its keyframes (at most [`IndexOptions::keyframe_budget`] bytes of dumps
//! plus one dump, since past the budget every other keyframe is dropped and the interval
//! doubles; a dump is a few kilobytes for an ordinary screen and at most a few megabytes at
//! [`super::MAX_COLS`] × [`super::MAX_ROWS`]), one emulator (at most a few megabytes), the last
//! event read (at most [`super::MAX_LINE_BYTES`]) and the timeline (at most
//! [`super::MAX_MARKS`] marks of at most [`super::MAX_LABEL_CHARS`] characters and
//! [`super::MAX_RESIZES`] resizes): about 40 MiB in the worst case with the default budget,
//! well under 1 MiB for an ordinary session.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::ScreenError;
use super::emulator::{Emulator, Snapshot, clamp_size, parse_resize};
use super::frame::Frame;
use super::reader::{CastReader, ReadError, ReadState, ReaderEvent};
use super::timeline::{Timeline, TimelineBuilder};
use crate::recording::cast::{CastHeader, EventKind};

/// Read buffer for recordings: large enough that a pass is not dominated by system calls.
const READ_BUFFER: usize = 256 * 1024;

/// How densely an index keeps keyframes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexOptions {
    /// Bytes of file after which a keyframe is due. Seeking replays at most about this much.
    pub keyframe_bytes: u64,
    /// Seconds of recording after which a keyframe is due (if anything was played since).
    pub keyframe_secs: f64,
    /// Most bytes of keyframe dumps one index keeps before thinning them out.
    pub keyframe_budget: usize,
}

impl Default for IndexOptions {
    /// Measured with `benches/player.rs` on a generated 1 GiB, 38-hour recording of mixed
    /// coloured output (release build, 2 shared cores): a pass reads, parses and emulates about
    /// 17 MiB/s, so 2 MiB between keyframes bounds a cached seek to roughly a tenth of a second
    /// (18 ms on average); a keyframe dump of a busy 120×40 screen is about 1.6 KB and takes
    /// 0.15 ms to make and 0.25 ms to restore, so the 2,264 keyframes of that recording (the
    /// 60-second trigger adds most of them) hold under 5 MB. `avt`'s terminal cannot be cloned,
    /// so dumps are the only way to keep state.
    fn default() -> Self {
        Self {
            keyframe_bytes: 2 << 20,
            keyframe_secs: 60.0,
            keyframe_budget: 16 << 20,
        }
    }
}

#[derive(Debug, Clone)]
struct Keyframe {
    /// Latest time of the events before this keyframe.
    time: f64,
    /// Where the first event after it starts in the file.
    offset: u64,
    line: usize,
    snapshot: Snapshot,
}

/// Which file an index was built from, to notice when it grew or was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileIdentity {
    fn of(path: &Path) -> Result<Self, ScreenError> {
        let meta = std::fs::metadata(path).map_err(ScreenError::io(path))?;
        Ok(Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

/// What [`ScreenIndex::refresh`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// The file has not changed.
    Unchanged,
    /// The file grew and the index read the new events.
    Extended,
    /// The file was replaced or shrank, and the index was built again.
    Rebuilt,
}

/// Keyframes and timeline of one recording; see the module documentation.
pub struct ScreenIndex {
    path: PathBuf,
    options: IndexOptions,
    identity: FileIdentity,
    /// Where reading stopped; the end of what the index covers.
    state: ReadState,
    truncated: bool,
    /// A pass failed part-way, so the emulator may be ahead of `state`: the next refresh
    /// builds the index again.
    stale: bool,
    /// The emulator after every event read.
    emulator: Emulator,
    keyframes: Vec<Keyframe>,
    keyframe_bytes_total: usize,
    interval_bytes: u64,
    interval_secs: f64,
    timeline: TimelineBuilder,
}

impl ScreenIndex {
    /// Reads the recording at `path` once with the default options.
    pub fn build(path: &Path) -> Result<Self, ScreenError> {
        Self::build_with(path, IndexOptions::default())
    }

    /// Reads the recording at `path` once, keeping keyframes as `options` say.
    pub fn build_with(path: &Path, options: IndexOptions) -> Result<Self, ScreenError> {
        let identity = FileIdentity::of(path)?;
        let file = File::open(path).map_err(ScreenError::io(path))?;
        let reader = CastReader::new(BufReader::with_capacity(READ_BUFFER, file))
            .map_err(|err| read_error(path, err))?;
        let header = reader.header();
        let (cols, rows) = clamp_size(u64::from(header.width), u64::from(header.height));
        let emulator = Emulator::for_header(header, cols, rows);
        let first = Keyframe {
            time: 0.0,
            offset: reader.consumed(),
            line: 2,
            snapshot: emulator.snapshot(),
        };
        let mut index = Self {
            path: path.to_owned(),
            options,
            identity,
            state: ReadState::at(CastHeader::default(), 0, 2),
            truncated: false,
            stale: false,
            emulator,
            keyframe_bytes_total: first.snapshot.len(),
            keyframes: vec![first],
            interval_bytes: options.keyframe_bytes.max(1),
            interval_secs: options.keyframe_secs,
            timeline: TimelineBuilder::new(cols, rows),
        };
        index.absorb(reader)?;
        Ok(index)
    }

    /// Brings the index up to date with the file: reads what a growing recording appended
    /// since the last pass, or builds the index again if the file was replaced or shrank.
    pub fn refresh(&mut self) -> Result<Refresh, ScreenError> {
        let now = FileIdentity::of(&self.path)?;
        let seen = self.identity;
        if now == seen && !self.stale {
            return Ok(Refresh::Unchanged);
        }
        let same_file = (now.dev, now.ino) == (seen.dev, seen.ino);
        let replaced = now.len < seen.len || (now.len == seen.len && now.modified != seen.modified);
        if self.stale || !same_file || replaced {
            *self = Self::build_with(&self.path, self.options)?;
            return Ok(Refresh::Rebuilt);
        }
        let mut file = File::open(&self.path).map_err(ScreenError::io(&self.path))?;
        file.seek(SeekFrom::Start(self.state.offset()))
            .map_err(ScreenError::io(&self.path))?;
        let state = self.state.clone();
        self.identity = now;
        let reader = CastReader::resume(BufReader::with_capacity(READ_BUFFER, file), state);
        self.stale = true;
        self.absorb(reader)?;
        self.stale = false;
        Ok(Refresh::Extended)
    }

    /// The recording's header.
    pub fn header(&self) -> &CastHeader {
        self.state.header()
    }

    /// Duration, marks and resizes.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline.timeline
    }

    /// Marks beyond [`super::MAX_MARKS`] that the timeline leaves out.
    pub fn marks_dropped(&self) -> u64 {
        self.timeline.marks_dropped
    }

    /// Resizes beyond [`super::MAX_RESIZES`] that the timeline leaves out.
    pub fn resizes_dropped(&self) -> u64 {
        self.timeline.resizes_dropped
    }

    /// Whether the file ends in an unfinished line (cut short, or still being written); the
    /// index covers what comes before it.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Bytes of the file the index covers.
    pub fn bytes_indexed(&self) -> u64 {
        self.state.offset()
    }

    /// How many keyframes the index holds.
    pub fn keyframe_count(&self) -> usize {
        self.keyframes.len()
    }

    /// Bytes of keyframe dumps the index holds.
    pub fn keyframe_bytes(&self) -> usize {
        self.keyframe_bytes_total
    }

    /// The screen after the last event read: the live view of a recording in progress.
    pub fn latest(&self) -> Frame {
        self.emulator.frame(self.timeline.timeline.duration)
    }

    /// The screen at `time` seconds (clamped to the recording; NaN counts as 0), replaying at
    /// most one keyframe interval of the file.
    pub fn frame_at(&self, time: f64) -> Result<Frame, ScreenError> {
        let duration = self.timeline.timeline.duration;
        let time = if time.is_nan() { 0.0 } else { time.max(0.0) };
        if time >= duration {
            return Ok(self.latest());
        }
        let at = self.keyframes.partition_point(|kf| kf.time <= time);
        let keyframe = &self.keyframes[at.saturating_sub(1)];
        let mut emulator = Emulator::restore(&keyframe.snapshot);
        let path = &self.path;
        let mut file = File::open(path).map_err(ScreenError::io(path))?;
        file.seek(SeekFrom::Start(keyframe.offset))
            .map_err(ScreenError::io(path))?;
        let covered = file.take(self.state.offset().saturating_sub(keyframe.offset));
        let state = ReadState::at(self.header().clone(), keyframe.offset, keyframe.line);
        let mut reader = CastReader::resume(BufReader::with_capacity(READ_BUFFER, covered), state);
        while let Some(ReaderEvent { event, .. }) =
            reader.next_event().map_err(|err| read_error(path, err))?
        {
            if event.time > time {
                break;
            }
            emulator.apply(event);
        }
        Ok(emulator.frame(time))
    }

    /// Plays every event `reader` yields into the emulator, keeping keyframes and the
    /// timeline, and remembers where reading stopped.
    fn absorb<R: std::io::BufRead>(
        &mut self,
        mut reader: CastReader<R>,
    ) -> Result<(), ScreenError> {
        let path = self.path.clone();
        while let Some(ReaderEvent {
            event,
            offset,
            line,
        }) = reader.next_event().map_err(|err| read_error(&path, err))?
        {
            let timeline = &mut self.timeline.timeline;
            let last = self
                .keyframes
                .last()
                .map_or((0, 0.0), |kf| (kf.offset, kf.time));
            if offset > last.0
                && (offset - last.0 >= self.interval_bytes
                    || timeline.duration - last.1 >= self.interval_secs)
            {
                self.keyframes.push(Keyframe {
                    time: timeline.duration,
                    offset,
                    line,
                    snapshot: self.emulator.snapshot(),
                });
                self.keyframe_bytes_total +=
                    self.keyframes.last().map_or(0, |kf| kf.snapshot.len());
                self.thin_out();
            }
            self.emulator.apply(event);
            let timeline = &mut self.timeline;
            timeline.timeline.duration = timeline.timeline.duration.max(event.time);
            match event.kind {
                EventKind::Marker => timeline.mark(event.time, &event.data),
                EventKind::Resize => {
                    if let Some((cols, rows)) = parse_resize(&event.data) {
                        timeline.resize(event.time, cols, rows);
                    }
                }
                _ => {}
            }
        }
        self.truncated = reader.truncated();
        self.state = reader.into_state();
        Ok(())
    }

    /// Keeps keyframe dumps within the budget: drops every other keyframe (never the first)
    /// and doubles the interval, as often as needed.
    fn thin_out(&mut self) {
        while self.keyframe_bytes_total > self.options.keyframe_budget && self.keyframes.len() > 1 {
            let mut position = 0;
            self.keyframes.retain(|_| {
                position += 1;
                position % 2 == 1
            });
            self.keyframe_bytes_total = self.keyframes.iter().map(|kf| kf.snapshot.len()).sum();
            self.interval_bytes = self.interval_bytes.saturating_mul(2);
            self.interval_secs *= 2.0;
        }
    }
}

fn read_error(path: &Path, err: ReadError) -> ScreenError {
    match err {
        ReadError::Io(source) => ScreenError::io(path)(source),
        ReadError::Cast(source) => ScreenError::cast(path)(source),
    }
}
