//! Reading event lines of a recording for the index, without decoding what the index skips.
//!
//! An event line is `[TIME, "CODE", "DATA"]`. The index needs the time, the code and the data's
//! text; repeated output lines are recognised on the data as written (JSON-escaped), so most of
//! a repetitive stream is never decoded. Lines in Gatehouse's own layout are read here directly;
//! anything else valid goes through `serde_json`, so every asciicast v2 file reads the same.

/// One event line as the index sees it.
#[derive(Debug, PartialEq, Eq)]
pub struct RawEvent<'a> {
    /// Microseconds since the recording started.
    pub time_us: i64,
    /// The event code (`o`, `i`, `m`, …).
    pub code: std::borrow::Cow<'a, str>,
    /// The data, still JSON-escaped (without its quotes).
    pub escaped: std::borrow::Cow<'a, [u8]>,
}

/// Why a line was not read; the indexer skips it, as a reader of the file would fail on it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an event line: {0}")]
pub struct BadLine(pub String);

/// Parses one line (without its `\n`); `Ok(None)` for a blank line or one whose data is not a
/// string (a code the index does not search).
pub fn parse(line: &[u8]) -> Result<Option<RawEvent<'_>>, BadLine> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if let Some(event) = fast(line) {
        return Ok(Some(event));
    }
    let (time, code, data): (f64, String, serde_json::Value) =
        serde_json::from_slice(line).map_err(|e| BadLine(e.to_string()))?;
    if !time.is_finite() || time < 0.0 {
        return Err(BadLine(format!("invalid event time {time}")));
    }
    let serde_json::Value::String(data) = data else {
        return Ok(None);
    };
    let mut escaped = Vec::with_capacity(data.len());
    crate::recording::json::push_escaped(&mut escaped, &data);
    Ok(Some(RawEvent {
        time_us: (time * 1e6).round() as i64,
        code: code.into(),
        escaped: escaped.into(),
    }))
}

/// Gatehouse's own layout: `[SECS.MICROS, "C", "DATA"]` with a one-character code and no other
/// spaces than after the commas.
fn fast(line: &[u8]) -> Option<RawEvent<'_>> {
    let rest = line.strip_prefix(b"[")?;
    let comma = rest.iter().position(|&b| b == b',')?;
    let time_us = micros(&rest[..comma])?;
    let rest = rest[comma + 1..].strip_prefix(b" \"")?;
    let quote = rest.iter().position(|&b| b == b'"')?;
    let code = std::str::from_utf8(&rest[..quote]).ok()?;
    if code.contains('\\') {
        return None;
    }
    let data = rest[quote + 1..].strip_prefix(b", \"")?;
    let data = data.strip_suffix(b"\"]")?;
    if !closes_nowhere(data) {
        return None;
    }
    Some(RawEvent {
        time_us,
        code: code.into(),
        escaped: data.into(),
    })
}

/// Whether `data` is one JSON string's content: every `"` escaped and no `\` left dangling.
///
/// Terminal output has an escape every few bytes (`\r\n` ends each line), so walking them all
/// costs a search per escape. Most data has no `"` at all; then only an escape cut short at the
/// end can be wrong, and the walk starts at the first `\` of the last six bytes, once nothing
/// before it can make it part of an earlier escape (no `\` in the five bytes before, where a
/// `\uXXXX` or a `\X` covering it would start). The answer is the whole walk's.
fn closes_nowhere(data: &[u8]) -> bool {
    if memchr::memchr(b'"', data).is_none() {
        let tail = data.len().saturating_sub(LONGEST_ESCAPE);
        let Some(at) = memchr::memchr(b'\\', &data[tail..]) else {
            return true;
        };
        let first = tail + at;
        let before = &data[first.saturating_sub(LONGEST_ESCAPE - 1)..first];
        if memchr::memchr(b'\\', before).is_none() {
            return escapes_close(data, first);
        }
    }
    escapes_close(data, 0)
}

/// The longest escape, `\uXXXX`.
const LONGEST_ESCAPE: usize = 6;

/// Whether the escapes of `data`, walked from `from` (the start of one, or of plain text),
/// leave no `"` unescaped and end within it.
fn escapes_close(data: &[u8], from: usize) -> bool {
    let mut i = from;
    while let Some(at) = memchr::memchr2(b'"', b'\\', &data[i..]) {
        let at = i + at;
        if data[at] == b'"' {
            return false;
        }
        let Some(&next) = data.get(at + 1) else {
            return false;
        };
        i = at + if next == b'u' { LONGEST_ESCAPE } else { 2 };
        if i > data.len() {
            return false;
        }
    }
    true
}

/// `SECS` or `SECS.FRACTION` as microseconds (rounded); `None` for anything else.
fn micros(text: &[u8]) -> Option<i64> {
    let (whole, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &b""[..]),
    };
    if whole.is_empty() || whole.len() > 12 || !whole.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if fraction.len() > 6 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let secs: i64 = std::str::from_utf8(whole).ok()?.parse().ok()?;
    let mut frac: i64 = 0;
    for i in 0..6 {
        frac = frac * 10 + fraction.get(i).map_or(0, |&d| i64::from(d - b'0'));
    }
    Some(secs * 1_000_000 + frac)
}

/// Where the next escaped newline (`\n` in the data as written) ends, searching from `from`,
/// which must be at the start of a character or escape.
pub fn next_newline(escaped: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(at) = memchr::memchr(b'\\', escaped.get(i..)?) {
        let at = i + at;
        match escaped.get(at + 1) {
            Some(b'n') => return Some(at + 2),
            Some(b'u') => i = at + 6,
            Some(_) => i = at + 2,
            None => return None,
        }
    }
    None
}

/// Appends the decoded text of escaped data to `out`; `false` (with `out` as it was) if it is
/// not valid.
pub fn unescape_into(escaped: &[u8], out: &mut String) -> bool {
    let start = out.len();
    let ok = unescape(escaped, out);
    if !ok {
        out.truncate(start);
    }
    ok
}

fn unescape(escaped: &[u8], out: &mut String) -> bool {
    let mut i = 0;
    while i < escaped.len() {
        let run_end = memchr::memchr(b'\\', &escaped[i..]).map_or(escaped.len(), |at| i + at);
        match std::str::from_utf8(&escaped[i..run_end]) {
            Ok(run) => out.push_str(run),
            Err(_) => return false,
        }
        i = run_end;
        if i == escaped.len() {
            break;
        }
        let Some(&kind) = escaped.get(i + 1) else {
            return false;
        };
        i += 2;
        let c = match kind {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let Some(high) = hex4(escaped.get(i..i + 4)) else {
                    return false;
                };
                i += 4;
                match high {
                    0xd800..=0xdbff => {
                        if escaped.get(i..i + 2) != Some(b"\\u") {
                            return false;
                        }
                        let Some(low @ 0xdc00..=0xdfff) = hex4(escaped.get(i + 2..i + 6)) else {
                            return false;
                        };
                        i += 6;
                        let code = 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00);
                        match char::from_u32(code) {
                            Some(c) => c,
                            None => return false,
                        }
                    }
                    0xdc00..=0xdfff => return false,
                    _ => match char::from_u32(high) {
                        Some(c) => c,
                        None => return false,
                    },
                }
            }
            _ => return false,
        };
        // NUL never appears in event data (the recorder lists NUL runs apart), and a file
        // that has one anyway is searched as a reader shows it: without it.
        if c != '\0' {
            out.push(c);
        }
    }
    true
}

fn hex4(digits: Option<&[u8]>) -> Option<u32> {
    let digits = digits?;
    let text = std::str::from_utf8(digits).ok()?;
    if text.len() != 4 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shortcut_for_data_without_quotes_answers_as_the_whole_walk() {
        // Every string of up to seven of these bytes, valid JSON or not.
        let alphabet = [b'a', b'\\', b'u', b'"', b'n', b'0'];
        let mut checked = 0;
        for len in 0..=7u32 {
            for mut n in 0..alphabet.len().pow(len) {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        let b = alphabet[n % alphabet.len()];
                        n /= alphabet.len();
                        b
                    })
                    .collect();
                for prefix in [&b""[..], b"plain text ", b"x\\r\\n"] {
                    let data = [prefix, &data].concat();
                    assert_eq!(
                        closes_nowhere(&data),
                        escapes_close(&data, 0),
                        "{:?}",
                        String::from_utf8_lossy(&data)
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 100_000);
        assert!(closes_nowhere(b"yes yes\\r\\n"));
        assert!(!closes_nowhere(b"cut \\u00"));
        assert!(!closes_nowhere(b"dangling \\"));
    }

    fn escaped(text: &str) -> Vec<u8> {
        let json = serde_json::to_string(text).unwrap();
        json.as_bytes()[1..json.len() - 1].to_vec()
    }

    #[test]
    fn gatehouse_lines_are_read_directly_and_others_through_json() {
        let e = parse(br#"[1.250000, "o", "a\u001b[0m\"b\\"]"#)
            .unwrap()
            .unwrap();
        assert_eq!(e.time_us, 1_250_000);
        assert_eq!(e.code, "o");
        let mut text = String::new();
        assert!(unescape_into(&e.escaped, &mut text));
        assert_eq!(text, "a\u{1b}[0m\"b\\");
        let e = parse(br#"[ 2.5 , "i" , "x\ty" ]"#).unwrap().unwrap();
        assert_eq!((e.time_us, &*e.code), (2_500_000, "i"));
        let mut text = String::new();
        assert!(unescape_into(&e.escaped, &mut text));
        assert_eq!(text, "x\ty");
        assert_eq!(parse(b"  ").unwrap(), None);
        assert_eq!(parse(br#"[1.0, "x", {"a": 1}]"#).unwrap(), None);
        assert!(parse(br#"[1.0, "o", "unterminated]"#).is_err());
        assert!(parse(br#"[-1.0, "o", "x"]"#).is_err());
        // A quote that ends the string early is not taken for data.
        assert!(fast(br#"[1.0, "o", "a", "b"]"#).is_none());
    }

    #[test]
    fn unescaping_matches_json_for_any_text() {
        for text in [
            "plain",
            "caf\u{e9} \u{1f600} \u{80}\u{9f}",
            "\u{7f}\u{1}\r\n\t\"\\/",
            "\u{fffd}\u{ffff}",
        ] {
            let mut out = String::new();
            assert!(unescape_into(&escaped(text), &mut out), "{text:?}");
            assert_eq!(out, text);
            let mut ours = Vec::new();
            crate::recording::json::push_escaped(&mut ours, text);
            let mut out = String::new();
            assert!(unescape_into(&ours, &mut out));
            assert_eq!(out, text);
        }
        let mut out = String::from("kept");
        assert!(!unescape_into(br"\ud800x", &mut out));
        assert!(!unescape_into(br"\q", &mut out));
        assert_eq!(out, "kept");
    }

    #[test]
    fn newlines_are_found_only_where_a_newline_was_escaped() {
        let data = escaped("a\\nb\nc\u{1}\n");
        let first = next_newline(&data, 0).unwrap();
        let mut text = String::new();
        unescape_into(&data[..first], &mut text);
        assert_eq!(text, "a\\nb\n");
        let second = next_newline(&data, first).unwrap();
        assert_eq!(second, data.len());
        assert_eq!(next_newline(&data, second), None);
    }
}
