//! JSON string escaping for recordings, on the hot path of every recorded byte.
//!
//! Every byte a session shows passes through [`push_escaped`], so it scans eight bytes at a time
//! for the few that need attention and copies the runs between them in one piece. Control
//! characters, DEL and C1 controls are escaped so the file is plain printable text: viewing it
//! with `cat` cannot drive the viewer's terminal.

const HEX: &[u8; 16] = b"0123456789abcdef";
const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Appends `text` JSON-escaped, without the surrounding quotes.
pub fn push_escaped(buf: &mut Vec<u8>, text: &str) {
    escape(buf, text, None::<fn(usize, usize)>);
}

/// Appends `text` JSON-escaped like [`push_escaped`], but leaves NUL bytes out and reports each
/// run of them as `(offset in text, length)`, for the NUL-runs companion (see
/// [`super::nul_runs`]).
pub fn push_escaped_folding_nul(
    buf: &mut Vec<u8>,
    text: &str,
    on_nul_run: impl FnMut(usize, usize),
) {
    escape(buf, text, Some(on_nul_run));
}

fn escape(buf: &mut Vec<u8>, text: &str, mut on_nul_run: Option<impl FnMut(usize, usize)>) {
    let bytes = text.as_bytes();
    buf.reserve(bytes.len());
    let mut run_start = 0;
    let mut i = 0;
    while let Some(found) = next_candidate(bytes, i) {
        let byte = bytes[found];
        if byte == 0
            && let Some(report) = on_nul_run.as_mut()
        {
            let len = nul_run_len(&bytes[found..]);
            buf.extend_from_slice(&bytes[run_start..found]);
            report(found, len);
            i = found + len;
            run_start = i;
            continue;
        }
        let (escaped_len, code) = match byte {
            b'"' | b'\\' | 0x00..=0x1f | 0x7f => (1, byte),
            // A two-byte C1 control (U+0080..U+009F); any other 0xC2 character is printable.
            0xc2 if matches!(bytes.get(found + 1), Some(0x80..=0x9f)) => (2, bytes[found + 1]),
            _ => {
                i = found + 1;
                continue;
            }
        };
        buf.extend_from_slice(&bytes[run_start..found]);
        push_escape(buf, code);
        i = found + escaped_len;
        run_start = i;
    }
    buf.extend_from_slice(&bytes[run_start..]);
}

/// Length of the run of NUL bytes at the start of `bytes`, eight at a time.
fn nul_run_len(bytes: &[u8]) -> usize {
    let mut words = bytes.chunks_exact(8);
    let mut len = 0;
    for word in words.by_ref() {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        if word != 0 {
            return len + (word.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    len + words.remainder().iter().take_while(|&&b| b == 0).count()
}

fn push_escape(buf: &mut Vec<u8>, code: u8) {
    match code {
        b'"' => buf.extend_from_slice(b"\\\""),
        b'\\' => buf.extend_from_slice(b"\\\\"),
        b'\n' => buf.extend_from_slice(b"\\n"),
        b'\r' => buf.extend_from_slice(b"\\r"),
        b'\t' => buf.extend_from_slice(b"\\t"),
        0x08 => buf.extend_from_slice(b"\\b"),
        0x0c => buf.extend_from_slice(b"\\f"),
        _ => buf.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(code >> 4)],
            HEX[usize::from(code & 0x0f)],
        ]),
    }
}

/// Position of the first byte at or after `from` that may need escaping: a C0 control, `"`,
/// `\`, DEL, or 0xC2 (the lead byte of C1 controls).
fn next_candidate(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(word) = bytes.get(i..i + 8) {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let flags = candidate_flags(word);
        if flags != 0 {
            return Some(i + (flags.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes
        .get(i..)?
        .iter()
        .position(|&b| is_candidate(b))
        .map(|at| i + at)
}

fn is_candidate(byte: u8) -> bool {
    matches!(byte, 0x00..=0x1f | b'"' | b'\\' | 0x7f | 0xc2)
}

/// High bit set in each byte lane of a little-endian word that holds a candidate byte. Lanes
/// above the first flagged one may be flagged wrongly (borrows travel upwards), so only the
/// lowest flag is meaningful; the lowest one is always exact.
fn candidate_flags(word: u64) -> u64 {
    // Lanes below 0x20: subtracting 0x20 borrows into the high bit only from bytes < 0x20
    // (bytes >= 0x80 are masked out by `!word`).
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    below_space
        | zero_lanes(word ^ (ONES * u64::from(b'"')))
        | zero_lanes(word ^ (ONES * u64::from(b'\\')))
        | zero_lanes(word ^ (ONES * 0x7f))
        | zero_lanes(word ^ (ONES * 0xc2))
}

fn zero_lanes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGHS
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn escaped(text: &str) -> String {
        let mut buf = Vec::new();
        push_escaped(&mut buf, text);
        String::from_utf8(buf).unwrap()
    }

    /// The obvious byte-at-a-time definition the word scanner must agree with.
    fn reference(text: &str) -> String {
        let mut out = String::new();
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => {
                    out.push_str(&format!("\\u{:04x}", u32::from(c)))
                }
                _ => out.push(c),
            }
        }
        out
    }

    #[test]
    fn escaping_matches_json_and_hides_controls() {
        let samples = [
            "plain",
            "quote \" backslash \\ slash /",
            "\n\r\t\u{8}\u{c}\u{0}\u{1b}[31m\u{7f}",
            "c1 \u{9b}31m \u{85} end",
            "unicode é € 😀 \u{FFFD} \u{2028} Â ¢",
        ];
        for sample in samples {
            let json = format!("\"{}\"", escaped(sample));
            let back: String = serde_json::from_str(&json).unwrap();
            assert_eq!(back, sample);
            assert!(!json.bytes().any(|b| b < 0x20 || b == 0x7f), "{json}");
            assert!(!json.contains('\u{9b}') && !json.contains('\u{85}'));
        }
        assert_eq!(escaped("\u{0}"), "\\u0000");
        assert_eq!(escaped("\u{1b}[1m"), "\\u001b[1m");
    }

    #[test]
    fn every_position_in_a_word_is_found() {
        for special in ['"', '\\', '\n', '\u{0}', '\u{1f}', '\u{7f}', '\u{85}', '¢'] {
            for at in 0..20 {
                let mut text = "x".repeat(at);
                text.push(special);
                text.push_str(&"y".repeat(20 - at));
                assert_eq!(escaped(&text), reference(&text), "{special:?} at {at}");
            }
        }
    }

    #[test]
    fn bytes_next_to_the_special_ones_are_left_alone() {
        // One below and one above each special byte, in every lane.
        let text: String = (0x1e..=0x24u8)
            .chain(0x5a..=0x5e)
            .chain(0x7d..=0x7f)
            .map(char::from)
            .chain(['\u{c1}', '\u{c2}', '\u{c3}', '\u{a0}', '\u{9f}', '\u{80}'])
            .collect();
        for shift in 0..8 {
            let shifted = format!("{}{}", "_".repeat(shift), text);
            assert_eq!(escaped(&shifted), reference(&shifted));
        }
    }

    fn folded(text: &str) -> (String, Vec<(usize, usize)>) {
        let mut buf = Vec::new();
        let mut runs = Vec::new();
        push_escaped_folding_nul(&mut buf, text, |at, len| runs.push((at, len)));
        (String::from_utf8(buf).unwrap(), runs)
    }

    #[test]
    fn nul_runs_are_left_out_and_reported_where_they_start() {
        assert_eq!(folded("a\0\0b\0"), ("ab".to_owned(), vec![(1, 2), (4, 1)]));
        let zeros = "\0".repeat(70);
        assert_eq!(folded(&zeros), (String::new(), vec![(0, 70)]));
        for at in 0..17 {
            for len in 1..19 {
                let text = format!("{}{}\n{}", "x".repeat(at), "\0".repeat(len), "y".repeat(9));
                let expected = format!("{}\\n{}", "x".repeat(at), "y".repeat(9));
                assert_eq!(folded(&text), (expected, vec![(at, len)]), "{at} {len}");
            }
        }
    }

    proptest! {
        #[test]
        fn folding_loses_nothing(bytes in proptest::collection::vec(prop_oneof![Just(0u8), 1u8..0x80], 0..200)) {
            let text = String::from_utf8(bytes).unwrap();
            let (escaped, runs) = folded(&text);
            let mut back: String = serde_json::from_str(&format!("\"{escaped}\"")).unwrap();
            for (at, len) in runs {
                back.insert_str(at, &"\0".repeat(len));
            }
            prop_assert_eq!(back, text);
        }


        #[test]
        fn agrees_with_the_reference(text in any::<String>()) {
            prop_assert_eq!(escaped(&text), reference(&text));
        }

        #[test]
        fn agrees_on_control_heavy_text(codes in proptest::collection::vec(
            prop_oneof![0u32..0x30, 0x5au32..0x60, 0x7eu32..0xa0, 0xc0u32..0xc4, 0x2028u32..0x2029],
            0..80,
        )) {
            let text: String = codes.into_iter().filter_map(char::from_u32).collect();
            prop_assert_eq!(escaped(&text), reference(&text));
        }
    }
}
