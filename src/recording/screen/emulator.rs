//! The terminal emulator a recording is played into, within the size limits.
//!
//! `avt`'s terminal cannot be cloned, so a keyframe is its [`Terminal::dump`]: an escape
//! string that recreates the visible state, modes and unfinished parsing in a fresh terminal
//! of the same size. The emulator keeps no scrollback, so a dump is the whole state.

use avt::Terminal;

use super::frame::{Frame, render};
use super::{MAX_COLS, MAX_ROWS};
use crate::recording::cast::{Event, EventKind};

/// A terminal fed with a recording's output and resizes.
pub(crate) struct Emulator {
    terminal: Terminal,
}

/// A saved emulator state.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    cols: u16,
    rows: u16,
    dump: String,
}

impl Snapshot {
    /// Bytes the snapshot holds.
    pub(crate) fn len(&self) -> usize {
        self.dump.len()
    }
}

impl Emulator {
    /// A blank terminal of the given size (clamped to the limits).
    pub(crate) fn new(cols: u16, rows: u16) -> Self {
        let (cols, rows) = clamp_size(u64::from(cols), u64::from(rows));
        let terminal = Terminal::new(usize::from(cols), usize::from(rows))
            .unwrap_or_else(|_| unreachable_size());
        Self { terminal }
    }

    /// A blank terminal for a recording with `header`: a session without a pty (no `TERM` in
    /// the header) wrote bare line feeds, which its reader's terminal showed as new lines, so
    /// line feed starts a new line here too (new-line mode), rather than a staircase.
    pub(crate) fn for_header(
        header: &crate::recording::cast::CastHeader,
        cols: u16,
        rows: u16,
    ) -> Self {
        let mut emulator = Self::new(cols, rows);
        if !header.env.contains_key("TERM") {
            emulator.terminal.feed("\x1b[20h");
        }
        emulator
    }

    /// Plays one event: output is fed to the terminal, a resize resizes it (a resize whose data
    /// is not `COLSxROWS` is ignored, as players do); nothing else changes the screen.
    pub(crate) fn apply(&mut self, event: &Event) {
        match event.kind {
            EventKind::Output => self.terminal.feed(event.data.as_str()),
            EventKind::Resize => {
                if let Some((cols, rows)) = parse_resize(&event.data) {
                    self.terminal.resize(usize::from(cols), usize::from(rows));
                }
            }
            EventKind::Input | EventKind::Marker | EventKind::Other(_) => {}
        }
    }

    /// The current size.
    pub(crate) fn size(&self) -> (u16, u16) {
        let (cols, rows) = self.terminal.size();
        clamp_size(cols as u64, rows as u64)
    }

    /// Saves the current state.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let (cols, rows) = self.size();
        Snapshot {
            cols,
            rows,
            dump: self.terminal.dump(),
        }
    }

    /// A terminal in the state `snapshot` saved.
    pub(crate) fn restore(snapshot: &Snapshot) -> Self {
        let mut emulator = Self::new(snapshot.cols, snapshot.rows);
        emulator.terminal.feed(snapshot.dump.as_str());
        emulator
    }

    /// The screen as a frame for `time`.
    pub(crate) fn frame(&self, time: f64) -> Frame {
        render(&self.terminal, time)
    }
}

/// Terminal size within the limits, at least 1×1.
pub(crate) fn clamp_size(cols: u64, rows: u64) -> (u16, u16) {
    let clamp = |value: u64, max: u16| u16::try_from(value.clamp(1, u64::from(max))).unwrap_or(max);
    (clamp(cols, MAX_COLS), clamp(rows, MAX_ROWS))
}

/// The size in a resize event's data (`COLSxROWS`), clamped to the limits.
pub(crate) fn parse_resize(data: &str) -> Option<(u16, u16)> {
    let (cols, rows) = data.split_once('x')?;
    let number = |text: &str| -> Option<u64> {
        if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    };
    Some(clamp_size(number(cols)?, number(rows)?))
}

/// `clamp_size` never yields a zero dimension, the only size `avt` refuses.
#[cold]
fn unreachable_size() -> Terminal {
    // A 1×1 terminal is always valid; this keeps the constructor free of panics.
    match Terminal::new(1, 1) {
        Ok(terminal) => terminal,
        Err(_) => unreachable!("avt accepts a 1x1 terminal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_clamped_and_resize_data_checked() {
        assert_eq!(clamp_size(0, 0), (1, 1));
        assert_eq!(clamp_size(80, 24), (80, 24));
        assert_eq!(clamp_size(100_000, 100_000), (MAX_COLS, MAX_ROWS));
        assert_eq!(parse_resize("100x30"), Some((100, 30)));
        assert_eq!(parse_resize("0x0"), Some((1, 1)));
        assert_eq!(parse_resize("99999999x2"), Some((MAX_COLS, 2)));
        for bad in [
            "", "x", "80", "80x", "x24", "-1x2", "+1x2", "1x2x3", "a x b", "1 x 2",
        ] {
            assert_eq!(parse_resize(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_restored_snapshot_continues_like_the_original() {
        let mut original = Emulator::new(10, 3);
        let event = |kind, data: &str| Event {
            time: 0.0,
            kind,
            data: data.to_owned(),
            raw: None,
            nul_runs: Vec::new(),
        };
        original.apply(&event(
            EventKind::Output,
            "ab\x1b[31mcd\x1b[?25l\x1b[2;3Hx\x1b[4",
        ));
        original.apply(&event(EventKind::Resize, "12x4"));
        let snapshot = original.snapshot();
        let mut restored = Emulator::restore(&snapshot);
        for emulator in [&mut original, &mut restored] {
            emulator.apply(&event(EventKind::Output, "4mY\r\nZ"));
        }
        assert_eq!(restored.size(), (12, 4));
        assert_eq!(original.frame(1.0), restored.frame(1.0));
    }
}
