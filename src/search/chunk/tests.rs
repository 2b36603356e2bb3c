use super::*;
use crate::search::feed::SessionFeed;
use crate::search::lines::RawEvent;

fn rows_of(chunker: &mut StreamChunker) -> Vec<ChunkRow> {
    let mut rows = Vec::new();
    chunker.take_rows("s", &mut rows);
    rows
}

/// The rows as stored: a later row with the same seq replaces an earlier one.
fn stored(rows: Vec<ChunkRow>) -> Vec<ChunkRow> {
    let mut by_seq: std::collections::BTreeMap<(i64, u32), ChunkRow> = Default::default();
    for row in rows {
        by_seq.insert((row.stream.code(), row.seq), row);
    }
    by_seq.into_values().collect()
}

/// The first row holding `needle` and the time of the event where it starts there.
fn find(rows: &[ChunkRow], stream: TextStream, needle: &str) -> Option<i64> {
    rows.iter().filter(|r| r.stream == stream).find_map(|r| {
        let at = r.text.find(needle)?;
        EventTimes::decode(&r.events).unwrap().time_at(at)
    })
}

#[test]
fn event_times_round_trip_and_answer_by_offset() {
    let times = EventTimes(vec![(0, 5), (3, 1_000_000), (300, 1_000_000), (70_000, 9)]);
    let decoded = EventTimes::decode(&times.encode()).unwrap();
    assert_eq!(decoded, times);
    assert_eq!(decoded.time_at(0), Some(5));
    assert_eq!(decoded.time_at(2), Some(5));
    assert_eq!(decoded.time_at(3), Some(1_000_000));
    assert_eq!(decoded.time_at(80_000), Some(9));
    assert_eq!(EventTimes::default().time_at(0), None);
    assert_eq!(EventTimes::decode(&[0x80]), None, "a cut varint");
}

#[test]
fn rows_overlap_so_any_needle_up_to_the_limit_is_in_one_row() {
    let mut chunker = StreamChunker::new(TextStream::Output);
    // 40 KiB in events of 1000 bytes, each a distinct run of digits.
    let text: String = (0..40_000)
        .map(|i| char::from(b'0' + (i % 7) as u8))
        .collect();
    for (i, piece) in text.as_bytes().chunks(1000).enumerate() {
        chunker.push(std::str::from_utf8(piece).unwrap(), i as i64 * 10);
    }
    let rows = stored(rows_of(&mut chunker));
    assert_eq!(rows.len(), 3);
    assert!(rows[0].after_gap && !rows[1].after_gap);
    let first = &rows[0].text;
    assert_eq!(first.len(), TARGET_BYTES);
    assert_eq!(
        rows[1].text[..OVERLAP_BYTES],
        first[first.len() - OVERLAP_BYTES..]
    );
    // Every needle of the longest length is inside some row, at every position.
    let rebuilt: String = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if i == 0 {
                &r.text[..]
            } else {
                &r.text[OVERLAP_BYTES..]
            }
        })
        .collect();
    assert_eq!(rebuilt, text);
    let len = crate::search::NEEDLE_MAX_BYTES;
    for start in (0..text.len() - len).step_by(97) {
        let needle = &text[start..start + len];
        assert!(rows.iter().any(|r| r.text.contains(needle)), "at {start}");
    }
    // The overlap's first byte keeps the time of the event it came from.
    let at = TARGET_BYTES - OVERLAP_BYTES;
    assert_eq!(
        EventTimes::decode(&rows[1].events).unwrap().time_at(0),
        Some((at / 1000) as i64 * 10)
    );
}

#[test]
fn rows_are_cut_on_character_boundaries() {
    let mut chunker = StreamChunker::new(TextStream::Output);
    let text = "é😀x".repeat(3000);
    chunker.push(&text, 1);
    let rows = stored(rows_of(&mut chunker));
    assert!(rows.len() >= 2);
    for row in &rows {
        assert!(row.text.len() <= TARGET_BYTES);
    }
    assert!(rows[1].text.len() - OVERLAP_BYTES < TARGET_BYTES);
    assert!(rows[1].text.starts_with(['é', '😀', 'x']));
}

#[test]
fn a_growing_row_is_handed_out_again_and_resumes_after_a_restart() {
    let mut chunker = StreamChunker::new(TextStream::Input);
    chunker.push("ab", 1);
    let first = rows_of(&mut chunker);
    assert_eq!(first.len(), 1);
    assert!(rows_of(&mut chunker).is_empty(), "nothing new");
    chunker.push("cd", 2);
    let second = rows_of(&mut chunker);
    assert_eq!((second[0].seq, second[0].text.as_str()), (0, "abcd"));
    let mut resumed = StreamChunker::resume(&second[0]);
    resumed.push("ef", 3);
    let third = rows_of(&mut resumed);
    assert_eq!((third[0].seq, third[0].text.as_str()), (0, "abcdef"));
    assert_eq!(find(&third, TextStream::Input, "def"), Some(2));
    assert_eq!(find(&third, TextStream::Input, "ef"), Some(3));
}

#[test]
fn a_gap_is_marked_in_the_row_and_no_match_spans_it() {
    let mut chunker = StreamChunker::new(TextStream::Marker);
    chunker.push("run: ls", 1);
    chunker.gap();
    chunker.push("denied: rm", 2);
    chunker.gap();
    let rows = stored(rows_of(&mut chunker));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].text, "run: ls\u{FFFF}denied: rm");
    assert!(rows[0].after_gap && rows[0].gap_after);
    assert!(!rows.iter().any(|r| r.text.contains("lsdenied")));
    assert_eq!(find(&rows, TextStream::Marker, "denied"), Some(2));
    // After a restart the row goes on, with the pending gap marked first.
    let mut resumed = StreamChunker::resume(&rows[0]);
    resumed.push("run: id", 3);
    let more = rows_of(&mut resumed);
    assert_eq!(
        (more[0].seq, more[0].text.as_str()),
        (0, "run: ls\u{FFFF}denied: rm\u{FFFF}run: id")
    );
    assert_eq!(find(&more, TextStream::Marker, "run: id"), Some(3));
}

#[test]
fn a_gap_in_a_full_row_starts_the_next_row_without_overlap() {
    let mut chunker = StreamChunker::new(TextStream::Output);
    chunker.push(&"a".repeat(TARGET_BYTES - 1), 1);
    chunker.gap();
    chunker.push("after", 2);
    let rows = stored(rows_of(&mut chunker));
    assert_eq!(rows.len(), 2);
    assert!(rows[0].gap_after && rows[1].after_gap);
    assert_eq!(rows[1].text, "after");
    assert_eq!(find(&rows, TextStream::Output, "aafter"), None);
}

fn output(feed: &mut SessionFeed, time: i64, text: &str) {
    let mut escaped = Vec::new();
    crate::recording::json::push_escaped(&mut escaped, text);
    feed.push(&RawEvent {
        time_us: time,
        code: "o".into(),
        escaped: escaped.into(),
    });
}

fn feed_rows(feed: &mut SessionFeed) -> Vec<ChunkRow> {
    let mut rows = Vec::new();
    feed.take_rows("s", &mut rows);
    stored(rows)
}

#[test]
fn repeated_whole_lines_are_left_out_with_a_gap() {
    let mut feed = SessionFeed::default();
    output(&mut feed, 1, "$ yes\ny\ny\ny\ny\n");
    output(&mut feed, 2, "y\ny\nother\ny\nlast");
    output(&mut feed, 3, " line\n");
    let rows = feed_rows(&mut feed);
    let indexed: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    // The first line of each event is always indexed (it may continue a line); "y\n" once as a
    // whole line, then left out, each time marked in the row; a line split across events is
    // indexed in both parts.
    assert_eq!(
        indexed,
        ["$ yes\ny\n\u{FFFF}y\n\u{FFFF}other\n\u{FFFF}last line\n"]
    );
    assert_eq!(find(&rows, TextStream::Output, "other"), Some(2));
    assert_eq!(find(&rows, TextStream::Output, "last line"), Some(2));
    assert_eq!(find(&rows, TextStream::Output, "line"), Some(3));
    // Nothing spans a left-out line.
    assert_eq!(find(&rows, TextStream::Output, "y\nother\nlast"), None);
}

#[test]
fn the_same_events_give_the_same_rows_whenever_they_are_taken() {
    let events: Vec<(i64, String)> = (0..400)
        .map(|i| (i, format!("line {}\nline {}\n", i % 13, i)))
        .collect();
    let mut once = SessionFeed::default();
    for (t, text) in &events {
        output(&mut once, *t, text);
    }
    let all_at_once = feed_rows(&mut once);
    let mut often = SessionFeed::default();
    let mut taken = Vec::new();
    for (t, text) in &events {
        output(&mut often, *t, text);
        often.take_rows("s", &mut taken);
    }
    assert_eq!(stored(taken), all_at_once);
}
