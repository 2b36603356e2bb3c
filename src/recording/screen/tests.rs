//! Tests of the screen player on real files: hostile output, keyframes against full replay,
//! unfinished and growing recordings, resizes, the cache and search.

use std::io::Write;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::emulator::Emulator;
use super::index::Refresh;
use super::*;
use crate::recording::cast::parse_cast;
use crate::recording::search::MatchSource;

/// Writes a recording of `cols`×`rows` with `(time, code, data)` events to `path`.
fn write_cast(path: &Path, cols: u32, rows: u32, events: &[(f64, &str, &str)]) {
    std::fs::write(path, cast_text(cols, rows, events)).unwrap();
}

fn cast_text(cols: u32, rows: u32, events: &[(f64, &str, &str)]) -> String {
    let mut text = format!("{{\"version\": 2, \"width\": {cols}, \"height\": {rows}}}\n");
    text.push_str(&event_lines(events));
    text
}

fn event_lines(events: &[(f64, &str, &str)]) -> String {
    let mut text = String::new();
    for (time, code, data) in events {
        let line = serde_json::to_string(&(time, code, data)).unwrap();
        text.push_str(&line);
        text.push('\n');
    }
    text
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn screen_text(frame: &Frame) -> Vec<String> {
    frame
        .lines
        .iter()
        .map(|row| row.iter().map(|span| span.text.as_str()).collect())
        .collect()
}

fn small_keyframes() -> IndexOptions {
    IndexOptions {
        keyframe_bytes: 48,
        keyframe_secs: 0.75,
        keyframe_budget: 16 << 20,
    }
}

/// The screen at `time` by playing the whole recording from the start, read in one piece.
fn full_replay(path: &Path, time: f64) -> Frame {
    let cast = parse_cast(&std::fs::read(path).unwrap()).unwrap();
    let (cols, rows) = emulator::clamp_size(cast.header.width.into(), cast.header.height.into());
    let mut emulator = Emulator::for_header(&cast.header, cols, rows);
    let duration = cast.events.iter().map(|e| e.time).fold(0.0, f64::max);
    let time = time.clamp(0.0, duration);
    for event in cast.events.iter().take_while(|e| e.time <= time) {
        emulator.apply(event);
    }
    emulator.frame(time)
}

#[test]
fn hostile_output_renders_as_inert_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.cast");
    write_cast(
        &path,
        80,
        24,
        &[
            (0.1, "o", "<script>alert(1)</script>\r\n"),
            (0.2, "o", "<img src=x onerror=alert(1)>\r\n"),
            (0.3, "o", "\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\\r\n"),
            (0.4, "o", "\x1b]52;c;c2VjcmV0IHBheWxvYWQ=\x07copied\r\n"),
            (
                0.5,
                "o",
                "\x1b]0;title\x07\x1bP+q\x1b\\\x1b[31mred\x1b[0m\u{9b}1m\u{202e}x\r\n",
            ),
            (0.6, "m", "run: <b>ls</b>\x1b[2J"),
        ],
    );
    let index = ScreenIndex::build(&path).unwrap();
    let frame = index.latest();
    let rows = screen_text(&frame);
    assert_eq!(rows[0], "<script>alert(1)</script>");
    assert_eq!(rows[1], "<img src=x onerror=alert(1)>");
    assert_eq!(rows[2], "link");
    assert_eq!(rows[3], "copied");
    assert_eq!(rows[4], "red\u{fffd}x");
    for span in frame.lines.iter().flatten() {
        assert!(
            !span.text.chars().any(char::is_control),
            "control character in {span:?}"
        );
    }
    let json = serde_json::to_string(&frame).unwrap();
    for absent in ["evil", "c2VjcmV0", "secret", "title", "\\u001b", "\\u0007"] {
        assert!(!json.contains(absent), "{absent} in {json}");
    }
    let marks = &index.timeline().marks;
    assert_eq!(marks.len(), 1);
    assert_eq!(marks[0].kind, MarkKind::Run);
    assert_eq!(marks[0].label, "<b>ls</b>\u{fffd}[2J");
}

#[test]
fn resize_events_change_the_size_and_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resize.cast");
    write_cast(
        &path,
        80,
        24,
        &[
            (0.5, "o", "hello"),
            (1.0, "r", "100x30"),
            (1.5, "o", " world"),
            (2.0, "r", "bogus"),
            (2.5, "r", "100000x2"),
        ],
    );
    let index = ScreenIndex::build_with(&path, small_keyframes()).unwrap();
    let at = |time| index.frame_at(time).unwrap();
    assert_eq!((at(0.7).cols, at(0.7).rows), (80, 24));
    assert_eq!((at(1.2).cols, at(1.2).rows), (100, 30));
    assert_eq!(screen_text(&at(1.7))[0], "hello world");
    assert_eq!((at(9.0).cols, at(9.0).rows), (MAX_COLS, 2));
    let timeline = index.timeline();
    assert_eq!(
        (timeline.cols, timeline.rows, timeline.duration),
        (80, 24, 2.5)
    );
    let sizes: Vec<(f64, u16, u16)> = timeline
        .resizes
        .iter()
        .map(|r| (r.time, r.cols, r.rows))
        .collect();
    assert_eq!(sizes, [(1.0, 100, 30), (2.5, MAX_COLS, 2)]);
}

#[test]
fn frames_before_the_start_and_after_the_end_are_clamped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clamp.cast");
    write_cast(&path, 10, 2, &[(0.0, "o", "a"), (1.0, "o", "b")]);
    let index = ScreenIndex::build(&path).unwrap();
    assert_eq!(screen_text(&index.frame_at(-5.0).unwrap())[0], "a");
    assert_eq!(index.frame_at(f64::NAN).unwrap().time, 0.0);
    let end = index.frame_at(f64::INFINITY).unwrap();
    assert_eq!((end.time, screen_text(&end)[0].as_str()), (1.0, "ab"));
    assert_eq!(index.latest(), end);
}

#[test]
fn an_unfinished_last_line_is_left_for_later() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.cast");
    let mut text = cast_text(20, 2, &[(0.5, "o", "kept "), (0.7, "m", "denied: no")]);
    text.push_str("[0.9, \"o\", \"lat");
    std::fs::write(&path, &text).unwrap();
    let mut index = ScreenIndex::build(&path).unwrap();
    assert!(index.truncated());
    assert_eq!(screen_text(&index.latest())[0], "kept");
    assert_eq!(index.timeline().duration, 0.7);
    assert_eq!(index.timeline().marks[0].kind, MarkKind::Denied);
    append(&path, "er\"]\n");
    assert_eq!(index.refresh().unwrap(), Refresh::Extended);
    assert!(!index.truncated());
    assert_eq!(screen_text(&index.latest())[0], "kept later");
    assert_eq!(index.timeline().duration, 0.9);
    assert_eq!(index.refresh().unwrap(), Refresh::Unchanged);
}

#[test]
fn a_growing_recording_is_followed_from_where_reading_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.cast");
    let screens = Screens::with_options(4, small_keyframes());
    write_cast(&path, 30, 5, &[(0.1, "o", "$ ")]);
    assert_eq!(screen_text(&screens.latest(&path).unwrap())[0], "$");
    let mut all = vec![(0.1, "o".to_owned(), "$ ".to_owned())];
    for round in 0..6 {
        let mut batch = Vec::new();
        for i in 0..8 {
            let time = 1.0 + f64::from(round) + f64::from(i) / 10.0;
            batch.push((
                time,
                "o".to_owned(),
                format!("\x1b[3{i}mline {round}.{i}\x1b[0m\r\n"),
            ));
        }
        batch.push((
            1.9 + f64::from(round),
            "m".to_owned(),
            format!("run: step {round}"),
        ));
        let borrowed: Vec<(f64, &str, &str)> = batch
            .iter()
            .map(|(t, c, d)| (*t, c.as_str(), d.as_str()))
            .collect();
        append(&path, &event_lines(&borrowed));
        all.extend(batch);
        let latest = screens.latest(&path).unwrap();
        assert_eq!(latest, full_replay(&path, f64::INFINITY), "round {round}");
        assert_eq!(screen_text(&latest)[3], format!("line {round}.7"));
    }
    // The index followed the file; it equals one built from scratch, keyframes included.
    let followed = screens.timeline(&path).unwrap();
    let fresh = ScreenIndex::build_with(&path, small_keyframes()).unwrap();
    assert_eq!(&followed, fresh.timeline());
    assert_eq!(followed.marks.len(), 6);
    assert_eq!(screens.len(), 1);
    for tenth in 0..80 {
        let time = f64::from(tenth) / 10.0;
        let frame = screens.frame_at(&path, time).unwrap();
        assert_eq!(frame, fresh.frame_at(time).unwrap(), "at {time}");
        assert_eq!(frame, full_replay(&path, time), "at {time}");
    }
    screens
        .with_index(&path, |index| {
            assert_eq!(index.keyframe_count(), fresh.keyframe_count());
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_replaced_recording_is_indexed_again_and_a_broken_one_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replaced.cast");
    write_cast(&path, 10, 2, &[(0.5, "o", "first version")]);
    let mut index = ScreenIndex::build(&path).unwrap();
    let screens = Screens::new(2);
    assert_eq!(
        screen_text(&screens.latest(&path).unwrap())[0],
        "first vers"
    );
    let other = dir.path().join("other.cast");
    write_cast(&other, 10, 2, &[(0.5, "o", "new")]);
    std::fs::rename(&other, &path).unwrap();
    assert_eq!(index.refresh().unwrap(), Refresh::Rebuilt);
    assert_eq!(screen_text(&index.latest())[0], "new");
    assert_eq!(screen_text(&screens.latest(&path).unwrap())[0], "new");
    append(&path, "[0.6, \"o\"\n[0.7, \"o\", \"x\"]\n");
    let err = screens.latest(&path).unwrap_err();
    assert!(matches!(err, ScreenError::Cast { .. }), "{err}");
    assert!(screens.is_empty());
    let err = screens
        .latest(&dir.path().join("missing.cast"))
        .unwrap_err();
    assert!(matches!(err, ScreenError::Io { .. }), "{err}");
}

#[test]
fn the_cache_keeps_the_most_recently_used_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = (0..3)
        .map(|i| {
            let path = dir.path().join(format!("{i}.cast"));
            write_cast(&path, 10, 2, &[(0.5, "o", &format!("rec {i}"))]);
            path
        })
        .collect();
    let screens = Screens::new(2);
    for path in &paths {
        screens.latest(path).unwrap();
    }
    assert_eq!(screens.len(), 2);
    for (i, path) in paths.iter().enumerate() {
        assert_eq!(
            screen_text(&screens.latest(path).unwrap())[0],
            format!("rec {i}")
        );
    }
}

#[test]
fn keyframes_stay_within_their_budget() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.cast");
    let events: Vec<(f64, String)> = (0..400)
        .map(|i| (f64::from(i), format!("\x1b[{}m{i:>40}\r\n", 31 + i % 7)))
        .collect();
    let events: Vec<(f64, &str, &str)> =
        events.iter().map(|(t, d)| (*t, "o", d.as_str())).collect();
    write_cast(&path, 40, 10, &events);
    let options = IndexOptions {
        keyframe_bytes: 1,
        keyframe_secs: 1.0,
        keyframe_budget: 20_000,
    };
    let index = ScreenIndex::build_with(&path, options).unwrap();
    assert!(
        index.keyframe_bytes() <= 20_000,
        "{}",
        index.keyframe_bytes()
    );
    assert!(index.keyframe_count() > 4, "{}", index.keyframe_count());
    for time in [0.0, 13.5, 200.0, 398.9] {
        assert_eq!(index.frame_at(time).unwrap(), full_replay(&path, time));
    }
}

#[test]
fn an_oversized_terminal_is_clamped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.cast");
    write_cast(&path, 65_535, 65_535, &[(0.1, "o", "\x1b[65535;65535Hx")]);
    let index = ScreenIndex::build(&path).unwrap();
    let frame = index.latest();
    assert_eq!((frame.cols, frame.rows), (MAX_COLS, MAX_ROWS));
    assert_eq!(frame.lines.len(), usize::from(MAX_ROWS));
    assert_eq!(
        (index.timeline().cols, index.timeline().rows),
        (MAX_COLS, MAX_ROWS)
    );
}

#[test]
fn search_lists_every_moment_a_text_appeared() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("search.cast");
    write_cast(
        &path,
        80,
        24,
        &[
            (1.0, "o", "$ sudo rm "),
            (2.0, "o", "-rf /tmp\r\n$ rm -"),
            (2.5, "i", "rm -rf x"),
            (3.0, "o", "rf /var rm -rf rm -rf"),
            (4.0, "m", "run: rm -rf /"),
            (5.0, "m", "denied: nothing"),
        ],
    );
    let hits = search_times(&path, "rm -rf", 100).unwrap();
    let found: Vec<(MatchSource, f64)> = hits.iter().map(|h| (h.source, h.time)).collect();
    assert_eq!(
        found,
        [
            (MatchSource::Output, 1.0),
            (MatchSource::Input, 2.5),
            (MatchSource::Output, 2.0),
            (MatchSource::Output, 3.0),
            (MatchSource::Marker, 4.0),
        ]
    );
    assert_eq!(search_times(&path, "rm -rf", 2).unwrap().len(), 2);
    assert!(search_times(&path, "", 100).unwrap().is_empty());
    assert!(search_times(&path, "absent", 100).unwrap().is_empty());
    let json = serde_json::to_value(hits[4]).unwrap();
    assert_eq!(json, serde_json::json!({"source": "marker", "time": 4.0}));
}

/// Pieces of terminal output likely to exercise state a keyframe must carry: unfinished escape
/// sequences, attributes, cursor moves, scrolling regions, the alternate screen, wide and
/// invalid characters.
fn output_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ]{1,12}",
        Just("\r\n".to_owned()),
        Just("\x1b[".to_owned()),
        Just("\x1b".to_owned()),
        "[0-9;]{1,5}",
        prop::sample::select(vec!["m", "H", "J", "K", "A", "C", "r", "L", "M", "@", "P"])
            .prop_map(str::to_owned),
        prop::sample::select(vec![
            "\x1b[31m",
            "\x1b[1;4;7m",
            "\x1b[0m",
            "\x1b[38;5;123m",
            "\x1b[48;2;1;2;3m",
            "\x1b[2J",
            "\x1b[H",
            "\x1b[?1049h",
            "\x1b[?1049l",
            "\x1b[?25l",
            "\x1b[?25h",
            "\x1b[2;4r",
            "\x1b7",
            "\x1b8",
            "\x1b]8;;http://x\x1b\\",
            "\x1b]0;t\x07",
            "\x1b(0q\x1b(B",
            "\x1b[4h",
            "\x1b[4l",
            "\x1b[?7l",
            "\x1b[?7h",
            "\x1bM",
            "\x1b[5S",
            "\t",
            "\x08",
        ])
        .prop_map(str::to_owned),
        prop::sample::select(vec!["界", "é", "😀", "\u{fffd}", "\u{202e}", "\u{9b}"])
            .prop_map(str::to_owned),
    ]
}

fn event_strategy() -> impl Strategy<Value = (f64, bool, String)> {
    (
        0u8..4,
        prop::bool::weighted(0.1),
        prop::collection::vec(output_piece(), 1..6),
        (1u16..30, 1u16..8),
    )
        .prop_map(|(gap, resize, pieces, (cols, rows))| {
            let data = if resize {
                format!("{cols}x{rows}")
            } else {
                pieces.concat()
            };
            (f64::from(gap) * 0.25, resize, data)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn frame_at_equals_a_full_replay(
        events in prop::collection::vec(event_strategy(), 1..60),
        seeks in prop::collection::vec(0.0f64..20.0, 1..8),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("random.cast");
        let mut time = 0.0;
        let owned: Vec<(f64, &str, &str)> = events
            .iter()
            .map(|(gap, resize, data)| {
                time += gap;
                (time, if *resize { "r" } else { "o" }, data.as_str())
            })
            .collect();
        write_cast(&path, 12, 4, &owned);
        let index = ScreenIndex::build_with(&path, small_keyframes()).unwrap();
        prop_assert!(index.keyframe_count() >= 1);
        for &seek in &seeks {
            prop_assert_eq!(index.frame_at(seek).unwrap(), full_replay(&path, seek));
        }
        // Seeking exactly to event times (where keyframes sit) too.
        for &(time, _, _) in owned.iter().step_by(5) {
            prop_assert_eq!(index.frame_at(time).unwrap(), full_replay(&path, time));
        }
        for frame in seeks.iter().map(|&t| index.frame_at(t).unwrap()) {
            for span in frame.lines.iter().flatten() {
                prop_assert!(!span.text.chars().any(char::is_control));
            }
        }
    }
}

#[test]
fn output_without_a_pty_starts_each_line_at_the_left_and_with_a_pty_as_the_terminal_did() {
    let dir = tempfile::tempdir().unwrap();
    let without = dir.path().join("exec.cast");
    write_cast(&without, 10, 3, &[(0.1, "o", "one\ntwo")]);
    let frame = ScreenIndex::build(&without).unwrap().latest();
    assert_eq!(screen_text(&frame)[..2], ["one", "two"]);

    let with = dir.path().join("pty.cast");
    let header = "{\"version\": 2, \"width\": 10, \"height\": 3, \"env\": {\"TERM\": \"xterm\"}}\n";
    std::fs::write(
        &with,
        format!("{header}{}", event_lines(&[(0.1, "o", "one\ntwo")])),
    )
    .unwrap();
    let frame = ScreenIndex::build(&with).unwrap().latest();
    assert_eq!(screen_text(&frame)[..2], ["one", "   two"]);
}
