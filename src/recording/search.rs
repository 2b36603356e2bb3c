//! Finding text in a recording, for "which sessions ran X" searches.
//!
//! Output and input are searched as two continuous streams, because a shell
//! prints a command across several reads and a user types one key per event:
//! a match may span any number of event boundaries. The streams are searched
//! separately so typed keys interleaved with output cannot create or break a
//! match. Matching is case-sensitive on the recorded text, escape sequences
//! included.

use super::cast::{Cast, Event, EventKind};

/// Where a match was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchSource {
    /// The header's `command` (exec sessions).
    Command,
    /// Text the session printed.
    Output,
    /// Text the user typed.
    Input,
}

/// The first place a needle occurs, so a reviewer can jump to it.
#[derive(Debug, Clone, Copy, PartialEq)]
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
/// output and input matches earlier.
pub fn find_text(cast: &Cast, needle: &str) -> Option<TextMatch> {
    if needle.is_empty() {
        return None;
    }
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
    let output = find_in_stream(&cast.events, &EventKind::Output, needle).map(|time| TextMatch {
        source: MatchSource::Output,
        time,
    });
    let input = find_in_stream(&cast.events, &EventKind::Input, needle).map(|time| TextMatch {
        source: MatchSource::Input,
        time,
    });
    match (output, input) {
        (Some(o), Some(i)) => Some(if i.time < o.time { i } else { o }),
        (o, i) => o.or(i),
    }
}

/// Searches the concatenated data of `kind` events, keeping only as much of
/// the past as a match spanning into the next event can need.
fn find_in_stream(events: &[Event], kind: &EventKind, needle: &str) -> Option<f64> {
    let keep = needle.len() - 1;
    let mut window = String::new();
    // (byte offset in `window` where an event's data starts, its time)
    let mut starts: Vec<(usize, f64)> = Vec::new();
    for event in events.iter().filter(|event| &event.kind == kind) {
        // Only positions that can include new data need searching.
        let search_from = floor_char_boundary(&window, window.len().saturating_sub(keep));
        starts.push((window.len(), event.time));
        window.push_str(&event.data);
        if let Some(found) = window[search_from..].find(needle) {
            let at = search_from + found;
            let index = starts.partition_point(|&(offset, _)| offset <= at);
            return starts.get(index.saturating_sub(1)).map(|&(_, time)| time);
        }
        let cut = floor_char_boundary(&window, window.len().saturating_sub(keep));
        if cut > 0 {
            window.drain(..cut);
            // The event in which the retained text starts now starts at 0.
            let first_kept = starts.partition_point(|&(offset, _)| offset <= cut) - 1;
            starts.drain(..first_kept);
            for (offset, _) in &mut starts {
                *offset = offset.saturating_sub(cut);
            }
        }
    }
    None
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
