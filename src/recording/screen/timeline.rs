//! What the player's scrub bar shows: how long the recording is, where the restricted shell
//! ran or denied commands, and where the terminal changed size.

use serde::Serialize;

use super::frame::display_char;
use super::{MAX_LABEL_CHARS, MAX_MARKS, MAX_RESIZES};

/// The outline of a recording, built in the same pass as its keyframes.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Timeline {
    /// Time of the latest event, in seconds.
    pub duration: f64,
    /// Terminal width at the start (as emulated: at most [`super::MAX_COLS`]).
    pub cols: u16,
    /// Terminal height at the start (as emulated: at most [`super::MAX_ROWS`]).
    pub rows: u16,
    /// Marker events in file order, at most [`MAX_MARKS`].
    pub marks: Vec<Mark>,
    /// Resize events in file order, at most [`MAX_RESIZES`].
    pub resizes: Vec<ResizeMark>,
}

/// A marker event: a point the page lists and can jump to.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Mark {
    /// Seconds since the start.
    pub time: f64,
    /// What the marker says happened.
    pub kind: MarkKind,
    /// The marker's text without its `run: ` or `denied: ` prefix, with control and invisible
    /// characters shown as U+FFFD and at most [`MAX_LABEL_CHARS`] characters (then `…`).
    pub label: String,
}

/// What a marker stands for, from the label prefixes the restricted shell writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MarkKind {
    /// `run: <command>`: the restricted shell ran a command.
    Run,
    /// `denied: <reason>`: the restricted shell refused a command.
    Denied,
    /// Any other marker (such as the recorder's size-limit note).
    Marker,
}

/// A change of terminal size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ResizeMark {
    /// Seconds since the start.
    pub time: f64,
    /// New width (as emulated).
    pub cols: u16,
    /// New height (as emulated).
    pub rows: u16,
}

impl Mark {
    /// The mark for a marker event with `label` at `time`.
    pub fn from_label(time: f64, label: &str) -> Self {
        let (kind, text) = if let Some(command) = label.strip_prefix("run: ") {
            (MarkKind::Run, command)
        } else if let Some(reason) = label.strip_prefix("denied: ") {
            (MarkKind::Denied, reason)
        } else {
            (MarkKind::Marker, label)
        };
        let mut label: String = text
            .chars()
            .take(MAX_LABEL_CHARS)
            .map(display_char)
            .collect();
        if text.chars().nth(MAX_LABEL_CHARS).is_some() {
            label.push('…');
        }
        Self { time, kind, label }
    }
}

/// The timeline under construction, counting what its caps leave out.
#[derive(Debug, Clone)]
pub(crate) struct TimelineBuilder {
    pub(crate) timeline: Timeline,
    pub(crate) marks_dropped: u64,
    pub(crate) resizes_dropped: u64,
}

impl TimelineBuilder {
    pub(crate) fn new(cols: u16, rows: u16) -> Self {
        Self {
            timeline: Timeline {
                duration: 0.0,
                cols,
                rows,
                marks: Vec::new(),
                resizes: Vec::new(),
            },
            marks_dropped: 0,
            resizes_dropped: 0,
        }
    }

    pub(crate) fn mark(&mut self, time: f64, label: &str) {
        if self.timeline.marks.len() < MAX_MARKS {
            self.timeline.marks.push(Mark::from_label(time, label));
        } else {
            self.marks_dropped += 1;
        }
    }

    pub(crate) fn resize(&mut self, time: f64, cols: u16, rows: u16) {
        if self.timeline.resizes.len() < MAX_RESIZES {
            self.timeline.resizes.push(ResizeMark { time, cols, rows });
        } else {
            self.resizes_dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_classified_cleaned_and_capped() {
        let run = Mark::from_label(1.0, "run: ls -l");
        assert_eq!((run.kind, run.label.as_str()), (MarkKind::Run, "ls -l"));
        let denied = Mark::from_label(2.0, "denied: rm is not allowed");
        assert_eq!(denied.kind, MarkKind::Denied);
        assert_eq!(denied.label, "rm is not allowed");
        let other = Mark::from_label(3.0, "gatehouse: recording size limit reached");
        assert_eq!(other.kind, MarkKind::Marker);
        assert_eq!(other.label, "gatehouse: recording size limit reached");
        let hostile = Mark::from_label(4.0, "run: \x1b[31mred\x07\u{202e}");
        assert_eq!(hostile.label, "\u{fffd}[31mred\u{fffd}\u{fffd}");
        let long = Mark::from_label(5.0, &format!("run: {}", "é".repeat(1000)));
        assert_eq!(long.label.chars().count(), MAX_LABEL_CHARS + 1);
        assert!(long.label.ends_with('…'));
        let json = serde_json::to_value(&run).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"time": 1.0, "kind": "run", "label": "ls -l"})
        );
    }

    #[test]
    fn caps_count_what_they_leave_out() {
        let mut builder = TimelineBuilder::new(80, 24);
        for i in 0..MAX_MARKS + 3 {
            builder.mark(i as f64, "x");
        }
        for i in 0..MAX_RESIZES + 2 {
            builder.resize(i as f64, 1, 1);
        }
        assert_eq!(builder.timeline.marks.len(), MAX_MARKS);
        assert_eq!(builder.marks_dropped, 3);
        assert_eq!(builder.timeline.resizes.len(), MAX_RESIZES);
        assert_eq!(builder.resizes_dropped, 2);
    }
}
