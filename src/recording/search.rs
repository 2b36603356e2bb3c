//! Finding text in a recording, for "which sessions ran X" searches and for jumping to the
//! moments a text appeared.
//!
//! Output and input are searched as two continuous streams, because a shell
//! prints a command across several reads and a user types one key per event:
//! a match may span any number of event boundaries. The streams are searched
//! separately so typed keys interleaved with output cannot create or break a
//! match. Matching is case-sensitive on the recorded text, escape sequences
//! included. Marker labels are searched one by one.
//!
//! [`TextSearch`] takes events one at a time, so a recording can be searched while it is read
//! from disk ([`crate::recording::screen::search_times`]) as well as in memory ([`find_text`]).

use serde::Serialize;

use super::cast::{Cast, Event, EventKind};

/// Where a match was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchSource {
    /// The header's `command` (exec sessions).
    Command,
    /// Text the session printed.
    Output,
    /// Text the user typed.
    Input,
    /// The label of a marker, such as `run: ls` written by a restricted shell.
    Marker,
    /// A path in a file session's transcript (the time is the operation's, into the session).
    File,
}

/// A place a needle occurs, so a reviewer can jump to it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TextMatch {
    /// Which part of the recording matched.
    pub source: MatchSource,
    /// Time of the event in which the match starts (0 for the command).
    pub time: f64,
}

/// Whether `needle` occurs in the command, output or input of `cast`. An empty
/// needle matches nothing, so an empty search never lists every recording.
pub fn contains_text(cast: &Cast, needle: &str) -> bool {
    find_text(cast, needle).is_some()
}

/// The earliest occurrence of `needle`: the command first, then whichever of
/// output and input matches earlier. Marker labels are not searched here.
pub fn find_text(cast: &Cast, needle: &str) -> Option<TextMatch> {
    let mut search = TextSearch::new(needle)?;
    if cast
        .header
        .command
        .as_deref()
        .is_some_and(|command| command.contains(needle))
    {
        return Some(TextMatch {
            source: MatchSource::Command,
            time: 0.0,
        });
    }
    let (mut output, mut input) = (None, None);
    for event in &cast.events {
        if output.is_some() && input.is_some() {
            break;
        }
        search.push(event, |found| match found.source {
            MatchSource::Output => {
                output.get_or_insert(found);
            }
            MatchSource::Input => {
                input.get_or_insert(found);
            }
            MatchSource::Command | MatchSource::Marker | MatchSource::File => {}
        });
    }
    match (output, input) {
        (Some(o), Some(i)) => Some(if i.time < o.time { i } else { o }),
        (o, i) => o.or(i),
    }
}

/// Searches events as they come: every occurrence of the needle in the output stream, the
/// input stream and marker labels, each reported once, when the event that completes it is
/// pushed. Memory stays at the needle's length per stream, whatever the recording's size.
#[derive(Debug, Clone)]
pub struct TextSearch {
    needle: String,
    output: StreamWindow,
    input: StreamWindow,
}

impl TextSearch {
    /// A search for `needle`; `None` for an empty needle, which matches nothing.
    pub fn new(needle: &str) -> Option<Self> {
        if needle.is_empty() {
            return None;
        }
        Some(Self {
            needle: needle.to_owned(),
            output: StreamWindow::default(),
            input: StreamWindow::default(),
        })
    }

    /// Searches `event` (with what came before it in its stream) and calls `found` for every
    /// match that ends in it, in order of where the matches start.
    pub fn push(&mut self, event: &Event, mut found: impl FnMut(TextMatch)) {
        let (window, source) = match event.kind {
            EventKind::Output => (&mut self.output, MatchSource::Output),
            EventKind::Input => (&mut self.input, MatchSource::Input),
            EventKind::Marker => {
                if event.data.contains(&self.needle) {
                    found(TextMatch {
                        source: MatchSource::Marker,
                        time: event.time,
                    });
                }
                return;
            }
            EventKind::Resize | EventKind::Other(_) => return,
        };
        window.push(&self.needle, event.time, &event.data, |time| {
            found(TextMatch { source, time });
        });
    }
}

/// The end of one stream: only as much of the past as a match spanning into the next event can
/// need.
#[derive(Debug, Clone, Default)]
struct StreamWindow {
    text: String,
    /// (byte offset in `text` where an event's data starts, its time)
    starts: Vec<(usize, f64)>,
}

impl StreamWindow {
    fn push(&mut self, needle: &str, time: f64, data: &str, mut found: impl FnMut(f64)) {
        let keep = needle.len() - 1;
        // Only positions that can include new data need searching: a match that starts
        // earlier lies wholly in text already searched.
        let mut from = floor_char_boundary(&self.text, self.text.len().saturating_sub(keep));
        self.starts.push((self.text.len(), time));
        self.text.push_str(data);
        while let Some(at) = self.text[from..].find(needle).map(|found| from + found) {
            let index = self.starts.partition_point(|&(offset, _)| offset <= at);
            if let Some(&(_, time)) = self.starts.get(index.saturating_sub(1)) {
                found(time);
            }
            from = at + self.text[at..].chars().next().map_or(1, char::len_utf8);
        }
        let cut = floor_char_boundary(&self.text, self.text.len().saturating_sub(keep));
        if cut > 0 {
            self.text.drain(..cut);
            // The event in which the retained text starts now starts at 0.
            let first_kept = self.starts.partition_point(|&(offset, _)| offset <= cut) - 1;
            self.starts.drain(..first_kept);
            for (offset, _) in &mut self.starts {
                *offset = offset.saturating_sub(cut);
            }
        }
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::super::cast::CastHeader;
    use super::*;

    fn event(time: f64, kind: EventKind, data: &str) -> Event {
        Event {
            time,
            kind,
            data: data.to_owned(),
            raw: None,
            nul_runs: Vec::new(),
        }
    }

    fn cast(command: Option<&str>, events: Vec<Event>) -> Cast {
        Cast {
            header: CastHeader {
                command: command.map(str::to_owned),
                ..CastHeader::default()
            },
            events,
            truncated: false,
        }
    }

    #[test]
    fn finds_matches_across_event_boundaries() {
        let c = cast(
            None,
            vec![
                event(1.0, EventKind::Output, "$ sudo rm "),
                event(2.0, EventKind::Output, "-"),
                event(3.0, EventKind::Resize, "80x24"),
                event(4.0, EventKind::Output, "rf /var/"),
                event(5.0, EventKind::Output, "lib"),
            ],
        );
        assert_eq!(
            find_text(&c, "rm -rf /var/lib"),
            Some(TextMatch {
                source: MatchSource::Output,
                time: 1.0
            })
        );
        assert!(contains_text(&c, "-rf"));
        assert!(!contains_text(&c, "80x24"));
        assert!(!contains_text(&c, "RM"));
        assert!(!contains_text(&c, ""));
    }

    #[test]
    fn typed_keys_are_searched_as_their_own_stream() {
        let c = cast(
            None,
            vec![
                event(1.0, EventKind::Input, "p"),
                event(1.1, EventKind::Output, "p"),
                event(1.2, EventKind::Input, "w"),
                event(1.3, EventKind::Output, "w"),
                event(1.4, EventKind::Input, "d"),
            ],
        );
        assert_eq!(
            find_text(&c, "pwd"),
            Some(TextMatch {
                source: MatchSource::Input,
                time: 1.0
            })
        );
        assert!(!contains_text(&c, "ppw"));
    }

    #[test]
    fn earliest_stream_match_wins_and_command_first() {
        let events = vec![
            event(1.0, EventKind::Output, "xx"),
            event(2.0, EventKind::Input, "needle"),
            event(3.0, EventKind::Output, "needle"),
        ];
        assert_eq!(
            find_text(&cast(None, events.clone()), "needle")
                .unwrap()
                .time,
            2.0
        );
        assert_eq!(
            find_text(&cast(Some("grep needle"), events), "needle")
                .unwrap()
                .source,
            MatchSource::Command
        );
    }

    #[test]
    fn long_streams_with_multibyte_text_and_late_matches() {
        let mut events: Vec<Event> = (0..500)
            .map(|i| event(f64::from(i), EventKind::Output, "é😀abc"))
            .collect();
        events.push(event(500.0, EventKind::Output, "ta"));
        events.push(event(501.0, EventKind::Output, "rg"));
        events.push(event(502.0, EventKind::Output, "et😀"));
        let c = cast(None, events);
        assert_eq!(find_text(&c, "target😀").unwrap().time, 500.0);
        assert_eq!(find_text(&c, "c\u{e9}").unwrap().time, 0.0);
        assert_eq!(find_text(&c, "😀abcta").unwrap().time, 499.0);
        assert!(!contains_text(&c, "abcabc"));
    }

    #[test]
    fn text_search_reports_every_match_and_marker_labels() {
        let mut search = TextSearch::new("ab").unwrap();
        let mut found = Vec::new();
        for e in [
            event(1.0, EventKind::Output, "xab a"),
            event(2.0, EventKind::Output, "bab"),
            event(3.0, EventKind::Marker, "run: ab"),
            event(4.0, EventKind::Input, "ab"),
            event(5.0, EventKind::Resize, "ab"),
            event(6.0, EventKind::Marker, "a"),
        ] {
            search.push(&e, |m| found.push((m.source, m.time)));
        }
        assert_eq!(
            found,
            [
                (MatchSource::Output, 1.0),
                (MatchSource::Output, 1.0),
                (MatchSource::Output, 2.0),
                (MatchSource::Marker, 3.0),
                (MatchSource::Input, 4.0),
            ]
        );
        assert!(TextSearch::new("").is_none());
        // Overlapping occurrences are each reported, none twice.
        let mut search = TextSearch::new("aa").unwrap();
        let mut times = Vec::new();
        for (i, data) in ["a", "aa", "a"].iter().enumerate() {
            search.push(&event(i as f64, EventKind::Output, data), |m| {
                times.push(m.time)
            });
        }
        assert_eq!(times, [0.0, 1.0, 1.0]);
    }

    proptest::proptest! {
        #[test]
        fn any_substring_of_the_output_is_found(
            pieces in proptest::collection::vec("[ab😀é]{0,6}", 1..12),
            start in 0usize..80,
            len in 1usize..20,
        ) {
            let events: Vec<Event> = pieces
                .iter()
                .enumerate()
                .map(|(i, piece)| event(i as f64, EventKind::Output, piece))
                .collect();
            let joined: String = pieces.concat();
            let chars: Vec<char> = joined.chars().collect();
            proptest::prop_assume!(!chars.is_empty());
            let start = start % chars.len();
            let end = (start + len).min(chars.len());
            let needle: String = chars[start..end].iter().collect();
            let c = cast(None, events);
            let found = find_text(&c, &needle);
            proptest::prop_assert!(found.is_some());
            // The reported event is where the first occurrence starts.
            let first = joined.find(&needle).unwrap();
            let mut offset = 0;
            let mut expected = None;
            for (i, piece) in pieces.iter().enumerate() {
                if offset + piece.len() > first {
                    expected = Some(i as f64);
                    break;
                }
                offset += piece.len();
            }
            proptest::prop_assert_eq!(found.unwrap().time, expected.unwrap());
        }
    }
}
