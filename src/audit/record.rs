//! The text of one audit line: building it, hashing it and reading it back.
//!
//! Kept apart from the file handling so the writer, the verifier and `tail` agree byte for byte
//! on what a record is.

use std::io::{self, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::ser::{Formatter, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::AuditError;

/// The `prev` of the first record: there is no previous line, and a fixed value makes a log
/// whose first lines were removed detectable.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest line (without its newline) the log writes or accepts. A bound keeps the verifier
/// and `tail` at constant memory on a hostile file; callers shorten user-supplied text long
/// before this.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The header keys, which the caller's fields must not repeat.
pub(super) const HEADER_KEYS: [&str; 4] = ["seq", "time", "prev", "event"];

/// Event written when the log resumes after an incomplete last line.
pub(super) const EVENT_RECOVERED: &str = "audit.recovered";

/// Event written when an operator accepts a log whose end does not match its anchor.
pub(super) const EVENT_REANCHORED: &str = "audit.reanchored";

/// Prefix of the events only the log itself writes.
pub(super) const RESERVED_EVENT_PREFIX: &str = "audit.";

/// One record read back from a line.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Record {
    pub seq: u64,
    pub time: String,
    pub prev: String,
    pub event: String,
    /// The caller's fields, without the header keys.
    pub fields: Map<String, Value>,
}

/// Lowercase hex SHA-256 of `bytes`: the hash that chains one line to the next.
pub(super) fn hash_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The current time as the log writes it.
pub(super) fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The text of a record, without the newline.
pub(super) fn render(
    seq: u64,
    time: &str,
    prev: &str,
    event: &str,
    fields: &Map<String, Value>,
) -> Result<String, AuditError> {
    if let Some(key) = HEADER_KEYS.iter().find(|k| fields.contains_key(**k)) {
        return Err(AuditError::ReservedField((*key).to_owned()));
    }
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b",\"time\":");
    write_json(&mut out, time);
    out.extend_from_slice(b",\"prev\":");
    write_json(&mut out, prev);
    out.extend_from_slice(b",\"event\":");
    write_json(&mut out, event);
    // Without serde_json's `preserve_order` a Map is sorted by key: deterministic, and the
    // same order the verifier would see.
    for (key, value) in fields {
        out.push(b',');
        write_json(&mut out, key);
        out.push(b':');
        write_json(&mut out, value);
    }
    out.push(b'}');
    if out.len() > MAX_LINE_BYTES {
        return Err(AuditError::TooLarge(out.len()));
    }
    // Every byte is printable ASCII by construction.
    Ok(String::from_utf8(out).expect("ASCII JSON"))
}

/// Serializes `value` as compact JSON made only of printable ASCII.
pub(super) fn to_ascii_json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    write_json(&mut out, value);
    String::from_utf8(out).expect("ASCII JSON")
}

fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let mut serializer = Serializer::with_formatter(out, AsciiFormatter);
    // Strings, numbers and `Value`s cannot fail to serialize, and writing to a Vec cannot fail.
    value
        .serialize(&mut serializer)
        .expect("serializing JSON into memory");
}

/// A compact formatter that escapes everything outside printable ASCII.
///
/// serde_json already escapes `"`, `\` and the C0 controls (newline included); this also
/// escapes DEL, the C1 controls, U+2028/U+2029 (line breaks to JavaScript and many editors)
/// and every other non-ASCII character, so a line can never look like two lines to any tool and
/// never carries a raw terminal control sequence.
struct AsciiFormatter;

impl Formatter for AsciiFormatter {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + Write,
    {
        let mut start = 0;
        for (index, ch) in fragment.char_indices() {
            if (' '..='~').contains(&ch) {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..index])?;
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = index + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Reads a line back, insisting on everything [`render`] guarantees, so that a line typed in
/// by hand stands out even when its hash is right.
pub(super) fn parse(line: &[u8]) -> Result<Record, String> {
    if line.len() > MAX_LINE_BYTES {
        return Err(format!("longer than {MAX_LINE_BYTES} bytes"));
    }
    if let Some(pos) = line.iter().position(|b| !(b' '..=b'~').contains(b)) {
        return Err(format!(
            "raw byte 0x{:02x} at column {} (Gatehouse writes only printable ASCII)",
            line[pos],
            pos + 1
        ));
    }
    let mut fields: Map<String, Value> =
        serde_json::from_slice(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let seq = match fields.remove("seq") {
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or("seq is not a positive integer")?,
        _ => return Err("no integer seq".into()),
    };
    let time = take_string(&mut fields, "time")?;
    DateTime::parse_from_rfc3339(&time).map_err(|e| format!("time is not RFC 3339: {e}"))?;
    let prev = take_string(&mut fields, "prev")?;
    if !is_hash(&prev) {
        return Err("prev is not a lowercase hex SHA-256".into());
    }
    let event = take_string(&mut fields, "event")?;
    let header = format!(
        "{{\"seq\":{seq},\"time\":{},\"prev\":\"{prev}\",\"event\":",
        to_ascii_json(&time)
    );
    if !line.starts_with(header.as_bytes()) {
        return Err("header is not seq, time, prev, event in that order".into());
    }
    Ok(Record {
        seq,
        time,
        prev,
        event,
        fields,
    })
}

fn take_string(fields: &mut Map<String, Value>, key: &str) -> Result<String, String> {
    match fields.remove(key) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(format!("no string {key}")),
    }
}

/// Whether `s` looks like a hash this log writes.
pub(super) fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn renders_header_first_then_sorted_fields() {
        let line = render(
            7,
            "2025-03-01T09:30:00.125Z",
            ZERO_HASH,
            "session.started",
            &fields(json!({"user": "alice", "target": "web-01", "bytes": 12})),
        )
        .unwrap();
        assert_eq!(
            line,
            format!(
                "{{\"seq\":7,\"time\":\"2025-03-01T09:30:00.125Z\",\"prev\":\"{ZERO_HASH}\",\
                 \"event\":\"session.started\",\"bytes\":12,\"target\":\"web-01\",\"user\":\"alice\"}}"
            )
        );
        let record = parse(line.as_bytes()).unwrap();
        assert_eq!(record.seq, 7);
        assert_eq!(record.event, "session.started");
        assert_eq!(record.fields["user"], "alice");
        assert_eq!(record.fields.len(), 3);
    }

    #[test]
    fn every_hostile_string_round_trips_as_printable_ascii() {
        let hostile = [
            "\n{\"seq\":99,\"time\":\"x\",\"prev\":\"0\",\"event\":\"login\"}",
            "a\u{2028}b\u{2029}c",
            "nul\0byte",
            "\r\n\t\u{1b}[31mred\u{7}\u{7f}\u{85}\u{9b}",
            "quote\" back\\slash",
            "\u{202e}evil\u{200b}",
            "emoji 🦀 and é",
            "\",\"seq\":1,\"x\":\"",
        ];
        for text in hostile {
            let line = render(
                1,
                "2025-03-01T09:30:00.125Z",
                ZERO_HASH,
                text,
                &fields(json!({ "reason": text, text: 1, "list": [text] })),
            )
            .unwrap();
            assert!(
                line.bytes().all(|b| (b' '..=b'~').contains(&b)),
                "{line:?} has a byte outside printable ASCII"
            );
            let record = parse(line.as_bytes()).unwrap();
            assert_eq!(record.seq, 1);
            assert_eq!(record.event, text);
            assert_eq!(record.fields["reason"], text);
            assert_eq!(record.fields[text], 1);
            assert_eq!(record.fields["list"][0], text);
        }
    }

    #[test]
    fn header_keys_cannot_be_supplied_by_callers() {
        for key in HEADER_KEYS {
            let err = render(1, "t", ZERO_HASH, "e", &fields(json!({ key: 1 }))).unwrap_err();
            assert!(matches!(err, AuditError::ReservedField(k) if k == key));
        }
    }

    #[test]
    fn oversized_records_are_refused() {
        let big = "x".repeat(MAX_LINE_BYTES);
        let err = render(1, "t", ZERO_HASH, "e", &fields(json!({ "cmd": big }))).unwrap_err();
        assert!(matches!(err, AuditError::TooLarge(_)));
    }

    #[test]
    fn parse_rejects_what_render_never_writes() {
        let good = render(1, "2025-03-01T09:30:00.125Z", ZERO_HASH, "e", &Map::new()).unwrap();
        assert!(parse(good.as_bytes()).is_ok());
        let cases = [
            (good.replace("\"seq\":1", "\"seq\":0"), "positive"),
            (
                good.replace("\"event\":\"e\"", "\"event\":\"\u{1b}\""),
                "raw byte",
            ),
            (good.replacen('{', "{\"a\":1,", 1), "header"),
            (good.replace(ZERO_HASH, "00"), "prev"),
            (
                good.replace("2025-03-01T09:30:00.125Z", "yesterday"),
                "RFC 3339",
            ),
            (good[..good.len() - 1].to_owned(), "JSON"),
            ("[1,2]".to_owned(), "JSON object"),
        ];
        for (line, why) in cases {
            let err = parse(line.as_bytes()).unwrap_err();
            assert!(err.contains(why), "{line}: {err}");
        }
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_hash(&hash_hex(b"")));
        assert!(is_hash(ZERO_HASH));
    }
}
