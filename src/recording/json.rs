//! JSON string escaping for recordings, on the hot path of every recorded byte.
//!
//! Every byte a session shows passes through [`push_escaped`], so it looks at sixteen bytes at a
//! time for the few that need attention, copies whole blocks into a buffer on the stack, writes
//! each escape with one table lookup, and appends to the caller's buffer a few kilobytes at a
//! time. Control
//! characters, DEL and C1 controls are escaped so the file is plain printable text: viewing it
//! with `cat` cannot drive the viewer's terminal.

const HEX: &[u8; 16] = b"0123456789abcdef";
#[cfg(not(target_arch = "x86_64"))]
const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
#[cfg(not(target_arch = "x86_64"))]
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

/// Bytes the escaper examines at once.
const BLOCK: usize = 16;

/// Escaped bytes gathered on the stack before they are appended to the caller's buffer in one
/// copy (plus room for one block and one escape past it).
const SCRATCH: usize = 8 * 1024;

/// The longest escape: `\u00XX`.
const MAX_ESCAPE: usize = 6;

fn escape(buf: &mut Vec<u8>, text: &str, mut on_nul_run: Option<impl FnMut(usize, usize)>) {
    let bytes = text.as_bytes();
    buf.reserve(bytes.len());
    let mut out = [0u8; SCRATCH + BLOCK + 8];
    let mut o = 0;
    let mut i = 0;
    loop {
        if o >= SCRATCH {
            buf.extend_from_slice(&out[..o]);
            o = 0;
        }
        // A whole block is copied out before it is looked at: most blocks need nothing, and in
        // one that does, the bytes before the first candidate are then already in place.
        let at = match bytes.get(i..i + BLOCK) {
            Some(block) => {
                let block: &[u8; BLOCK] = block.try_into().expect("a block");
                out[o..o + BLOCK].copy_from_slice(block);
                match first_candidate(block) {
                    None => {
                        i += BLOCK;
                        o += BLOCK;
                        continue;
                    }
                    Some(at) => at,
                }
            }
            None => {
                let tail = &bytes[i..];
                let found = tail.iter().position(|&b| is_candidate(b));
                let plain = found.unwrap_or(tail.len());
                out[o..o + plain].copy_from_slice(&tail[..plain]);
                match found {
                    None => {
                        o += plain;
                        break;
                    }
                    Some(at) => at,
                }
            }
        };
        i += at;
        o += at;
        let byte = bytes[i];
        if byte == 0
            && let Some(report) = on_nul_run.as_mut()
        {
            let len = nul_run_len(&bytes[i..]);
            report(i, len);
            i += len;
            continue;
        }
        let (consumed, code) = match byte {
            b'"' | b'\\' | 0x00..=0x1f | 0x7f => (1, byte),
            // A two-byte C1 control (U+0080..U+009F); any other 0xC2 character is printable.
            0xc2 if matches!(bytes.get(i + 1), Some(0x80..=0x9f)) => (2, bytes[i + 1]),
            _ => {
                out[o] = byte;
                o += 1;
                i += 1;
                continue;
            }
        };
        let (escaped, len) = ESCAPES[usize::from(code)];
        out[o..o + 8].copy_from_slice(&escaped);
        o += usize::from(len);
        i += consumed;
    }
    buf.extend_from_slice(&out[..o]);
}

/// The escape of each byte that has one, padded to eight bytes so it is copied in one move,
/// with its length.
static ESCAPES: [([u8; 8], u8); 256] = escapes();

const fn escapes() -> [([u8; 8], u8); 256] {
    let mut table = [([0u8; 8], 0u8); 256];
    let mut code = 0;
    while code < 256 {
        let c = code as u8;
        table[code] = match c {
            b'"' => (*b"\\\"\0\0\0\0\0\0", 2),
            b'\\' => (*b"\\\\\0\0\0\0\0\0", 2),
            b'\n' => (*b"\\n\0\0\0\0\0\0", 2),
            b'\r' => (*b"\\r\0\0\0\0\0\0", 2),
            b'\t' => (*b"\\t\0\0\0\0\0\0", 2),
            0x08 => (*b"\\b\0\0\0\0\0\0", 2),
            0x0c => (*b"\\f\0\0\0\0\0\0", 2),
            _ => (
                [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(c >> 4) as usize],
                    HEX[(c & 0x0f) as usize],
                    0,
                    0,
                ],
                MAX_ESCAPE as u8,
            ),
        };
        code += 1;
    }
    table
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

fn is_candidate(byte: u8) -> bool {
    matches!(byte, 0x00..=0x1f | b'"' | b'\\' | 0x7f | 0xc2)
}

/// Index of the first byte of `block` that may need escaping: a C0 control, `"`, `\`, DEL, or
/// 0xC2 (the lead byte of C1 controls). Sixteen compares at once with SSE2, which every x86-64
/// processor has.
#[cfg(target_arch = "x86_64")]
fn first_candidate(block: &[u8; BLOCK]) -> Option<usize> {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of every x86-64 target, so these instructions exist wherever this
    // code runs; the unaligned load reads exactly the 16 bytes of `block`.
    let mask = unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let splat = |b: u8| _mm_set1_epi8(b as i8);
        // Bytes up to 0x1f are those that an unsigned minimum with 0x1f leaves unchanged.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, splat(0x1f)), v);
        let special = _mm_or_si128(
            _mm_or_si128(
                _mm_cmpeq_epi8(v, splat(b'"')),
                _mm_cmpeq_epi8(v, splat(b'\\')),
            ),
            _mm_or_si128(
                _mm_cmpeq_epi8(v, splat(0x7f)),
                _mm_cmpeq_epi8(v, splat(0xc2)),
            ),
        );
        _mm_movemask_epi8(_mm_or_si128(control, special)) as u32
    };
    (mask != 0).then(|| mask.trailing_zeros() as usize)
}

/// Index of the first byte of `block` that may need escaping, eight bytes at a time.
#[cfg(not(target_arch = "x86_64"))]
fn first_candidate(block: &[u8; BLOCK]) -> Option<usize> {
    block.chunks_exact(8).enumerate().find_map(|(n, word)| {
        let flags = candidate_flags(u64::from_le_bytes(word.try_into().expect("eight bytes")));
        (flags != 0).then(|| n * 8 + (flags.trailing_zeros() / 8) as usize)
    })
}

/// High bit set in each byte lane of a little-endian word that holds a candidate byte. Lanes
/// above the first flagged one may be flagged wrongly (borrows travel upwards), so only the
/// lowest flag is meaningful; the lowest one is always exact.
#[cfg(not(target_arch = "x86_64"))]
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

#[cfg(not(target_arch = "x86_64"))]
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

    #[test]
    fn text_longer_than_the_stack_buffer_comes_out_whole() {
        // Escapes straddling every block and scratch boundary, NUL runs crossing them too.
        let unit = "the quick brown fox 0123456789\n\"q\" \u{1b}[1m é \u{85}\\";
        let text: String = unit.repeat(SCRATCH / unit.len() * 5 + 7);
        assert_eq!(escaped(&text), reference(&text));
        let with_nuls = text.replace('q', "\0\0\0");
        let (out, runs) = folded(&with_nuls);
        let mut back: String = serde_json::from_str(&format!("\"{out}\"")).unwrap();
        for (at, len) in runs {
            back.insert_str(at, &"\0".repeat(len));
        }
        assert_eq!(back, with_nuls);
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
