//! Lossless text representation of a terminal byte stream.
//!
//! asciicast stores terminal data as JSON strings, so every chunk must become
//! valid Unicode. Two things can go wrong when converting bytes read from a
//! pty: a multi-byte character split across two reads, and bytes that are
//! simply not UTF-8 (binary output, legacy encodings). [`Utf8Decoder`] carries
//! incomplete trailing sequences over to the next chunk so the first problem
//! never produces replacement characters, and reports every undecodable byte
//! individually so the writer can keep it recoverably.
//!
//! Undecodable bytes are shown to players as U+FFFD and recorded exactly in a
//! companion event (code [`RAW_BYTES_CODE`]) whose data is a list of two-character
//! tokens, one per U+FFFD in the event it follows: two lowercase hex digits give
//! the byte that U+FFFD replaced, and [`GENUINE_REPLACEMENT_TOKEN`] marks a U+FFFD
//! that really was in the stream. [`restore_bytes`] turns the pair back into the
//! exact original bytes.

use std::fmt;

/// Event code of the companion line that makes undecodable bytes recoverable.
///
/// Chosen because asciicast v2 requires players to ignore codes they do not
/// know, and `"b"` is not used by any asciicast version (v3 took `"x"`).
pub const RAW_BYTES_CODE: &str = "b";

/// Token marking a U+FFFD that was genuinely present in the recorded stream,
/// so it is not mistaken for a replaced byte when restoring.
pub const GENUINE_REPLACEMENT_TOKEN: &str = "--";

/// The character players see in place of each undecodable byte.
pub const REPLACEMENT: char = '\u{FFFD}';

/// One piece of a decoded byte stream, in stream order.
///
/// Exists so callers can write text and undecodable bytes straight into their
/// own buffers without an intermediate allocation per chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Well-formed text, including characters completed across chunk boundaries.
    Text(&'a str),
    /// One byte that is not part of any well-formed UTF-8 sequence.
    Invalid(u8),
}

/// Incremental UTF-8 decoder that never splits a character across chunks.
///
/// Needed because a pty read can end in the middle of a multi-byte character;
/// decoding each read on its own would corrupt it into replacement characters.
#[derive(Debug, Default, Clone)]
pub struct Utf8Decoder {
    carry: [u8; 4],
    carry_len: usize,
}

impl Utf8Decoder {
    /// Creates a decoder with no carried-over bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether an incomplete sequence is waiting for the next chunk, so a
    /// caller finishing a stream knows there is something left to report.
    pub fn has_pending(&self) -> bool {
        self.carry_len > 0
    }

    /// Decodes `input`, calling `emit` for each text run and undecodable byte.
    ///
    /// An incomplete sequence at the end of `input` is held back and completed
    /// by (or reported as invalid with) the next call.
    pub fn decode(&mut self, input: &[u8], mut emit: impl FnMut(Segment<'_>)) {
        let mut rest = input;
        while self.carry_len > 0 {
            match std::str::from_utf8(&self.carry[..self.carry_len]) {
                Ok(text) => {
                    emit(Segment::Text(text));
                    self.carry_len = 0;
                }
                Err(err) => {
                    let valid = err.valid_up_to();
                    if let Ok(text) = std::str::from_utf8(&self.carry[..valid])
                        && !text.is_empty()
                    {
                        emit(Segment::Text(text));
                    }
                    match err.error_len() {
                        Some(bad) => {
                            for &byte in &self.carry[valid..valid + bad] {
                                emit(Segment::Invalid(byte));
                            }
                            self.shift_carry(valid + bad);
                        }
                        None => {
                            self.shift_carry(valid);
                            let Some((&byte, tail)) = rest.split_first() else {
                                return;
                            };
                            self.carry[self.carry_len] = byte;
                            self.carry_len += 1;
                            rest = tail;
                        }
                    }
                }
            }
        }
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    if !text.is_empty() {
                        emit(Segment::Text(text));
                    }
                    return;
                }
                Err(err) => {
                    let (valid, tail) = rest.split_at(err.valid_up_to());
                    if let Ok(text) = std::str::from_utf8(valid)
                        && !text.is_empty()
                    {
                        emit(Segment::Text(text));
                    }
                    match err.error_len() {
                        Some(bad) => {
                            for &byte in &tail[..bad] {
                                emit(Segment::Invalid(byte));
                            }
                            rest = &tail[bad..];
                        }
                        None => {
                            // An incomplete sequence is at most three bytes long.
                            self.carry[..tail.len()].copy_from_slice(tail);
                            self.carry_len = tail.len();
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Reports any carried-over incomplete sequence as undecodable bytes; the
    /// stream has ended, so it can never be completed.
    pub fn finish(&mut self, mut emit: impl FnMut(Segment<'_>)) {
        for &byte in &self.carry[..self.carry_len] {
            emit(Segment::Invalid(byte));
        }
        self.carry_len = 0;
    }

    fn shift_carry(&mut self, by: usize) {
        self.carry.copy_within(by..self.carry_len, 0);
        self.carry_len -= by;
    }
}

/// Appends the token for one undecodable byte to a companion token list.
pub fn push_invalid_token(tokens: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    tokens.push(char::from(HEX[usize::from(byte >> 4)]));
    tokens.push(char::from(HEX[usize::from(byte & 0x0f)]));
}

/// Appends one [`GENUINE_REPLACEMENT_TOKEN`] per U+FFFD in `text`, keeping the
/// token list aligned with the replacement characters of the event data.
pub fn push_genuine_tokens(tokens: &mut String, text: &str) {
    for _ in text.matches(REPLACEMENT) {
        tokens.push_str(GENUINE_REPLACEMENT_TOKEN);
    }
}

/// Why a companion token list does not fit the event it follows; a sign of a
/// damaged or edited recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawBytesError {
    /// The number of tokens differs from the number of U+FFFD in the data.
    CountMismatch {
        /// Replacement characters in the event data.
        replacements: usize,
        /// Tokens in the companion data.
        tokens: usize,
    },
    /// A token is neither two hex digits nor the genuine-replacement marker.
    BadToken(String),
}

impl fmt::Display for RawBytesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CountMismatch {
                replacements,
                tokens,
            } => write!(
                f,
                "{tokens} raw-byte tokens for {replacements} replacement characters"
            ),
            Self::BadToken(token) => write!(f, "invalid raw-byte token {token:?}"),
        }
    }
}

impl std::error::Error for RawBytesError {}

/// Rebuilds the exact recorded bytes from event data and its companion tokens.
pub fn restore_bytes(text: &str, tokens: &str) -> Result<Vec<u8>, RawBytesError> {
    let replacements = text.matches(REPLACEMENT).count();
    let token_bytes = tokens.as_bytes();
    if !token_bytes.len().is_multiple_of(2) || token_bytes.len() / 2 != replacements {
        return Err(RawBytesError::CountMismatch {
            replacements,
            tokens: token_bytes.len().div_ceil(2),
        });
    }
    let mut out = Vec::with_capacity(text.len());
    let mut pieces = text.split(REPLACEMENT);
    if let Some(first) = pieces.next() {
        out.extend_from_slice(first.as_bytes());
    }
    for (piece, token) in pieces.zip(token_bytes.chunks_exact(2)) {
        if token == GENUINE_REPLACEMENT_TOKEN.as_bytes() {
            let mut utf8 = [0; 4];
            out.extend_from_slice(REPLACEMENT.encode_utf8(&mut utf8).as_bytes());
        } else {
            match (hex_value(token[0]), hex_value(token[1])) {
                (Some(high), Some(low)) => out.push((high << 4) | low),
                _ => {
                    return Err(RawBytesError::BadToken(
                        String::from_utf8_lossy(token).into_owned(),
                    ));
                }
            }
        }
        out.extend_from_slice(piece.as_bytes());
    }
    Ok(out)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `chunks` and returns (text as players see it, tokens, had_invalid).
    fn run(chunks: &[&[u8]]) -> (String, String, bool) {
        let mut decoder = Utf8Decoder::new();
        let mut text = String::new();
        let mut tokens = String::new();
        let mut invalid = false;
        let mut sink = |segment: Segment<'_>| match segment {
            Segment::Text(s) => {
                push_genuine_tokens(&mut tokens, s);
                text.push_str(s);
            }
            Segment::Invalid(byte) => {
                invalid = true;
                push_invalid_token(&mut tokens, byte);
                text.push(REPLACEMENT);
            }
        };
        for chunk in chunks {
            decoder.decode(chunk, &mut sink);
        }
        decoder.finish(&mut sink);
        (text, tokens, invalid)
    }

    #[test]
    fn multibyte_split_at_every_position_is_preserved() {
        for sample in ["é", "€", "😀", "a€b😀c"] {
            let bytes = sample.as_bytes();
            for cut in 0..=bytes.len() {
                let (text, _, invalid) = run(&[&bytes[..cut], &bytes[cut..]]);
                assert_eq!(text, sample, "cut at {cut}");
                assert!(!invalid);
            }
        }
    }

    #[test]
    fn emoji_fed_one_byte_at_a_time_is_preserved() {
        let bytes = "x😀y".as_bytes();
        let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
        let (text, _, invalid) = run(&chunks);
        assert_eq!(text, "x😀y");
        assert!(!invalid);
    }

    #[test]
    fn carried_text_is_emitted_before_new_text() {
        let mut decoder = Utf8Decoder::new();
        let mut seen = Vec::new();
        decoder.decode(b"a\xe2\x82", |s| seen.push(format!("{s:?}")));
        assert!(decoder.has_pending());
        decoder.decode(b"\xacb", |s| seen.push(format!("{s:?}")));
        assert!(!decoder.has_pending());
        assert_eq!(seen, ["Text(\"a\")", "Text(\"€\")", "Text(\"b\")"]);
    }

    #[test]
    fn invalid_bytes_become_one_replacement_each_and_restore_exactly() {
        let cases: &[&[&[u8]]] = &[
            &[b"\xff\xfe"],
            &[b"ok\x80", b"\xc3"],
            &[b"\xf0\x9f", b"A"],
            &[b"\xe2\x82", b"\xe2\x82\xac"],
            &[b"\xed\xa0\x80"],
            &[b"tail\xf0\x9f\x98"],
            &["genuine \u{FFFD} and bad \u{FFFD}".as_bytes(), b"\x9b"],
        ];
        for chunks in cases {
            let original: Vec<u8> = chunks.concat();
            let (text, tokens, invalid) = run(chunks);
            assert!(invalid, "{original:?}");
            assert_eq!(
                text.matches(REPLACEMENT).count() * 2,
                tokens.len(),
                "{original:?}"
            );
            assert_eq!(restore_bytes(&text, &tokens).unwrap(), original);
        }
    }

    #[test]
    fn every_single_byte_value_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        let (text, tokens, _) = run(&[&all]);
        assert_eq!(restore_bytes(&text, &tokens).unwrap(), all);
    }

    #[test]
    fn restore_rejects_mismatched_tokens() {
        assert!(matches!(
            restore_bytes("a\u{FFFD}", ""),
            Err(RawBytesError::CountMismatch { .. })
        ));
        assert!(matches!(
            restore_bytes("a\u{FFFD}", "zz"),
            Err(RawBytesError::BadToken(_))
        ));
        assert!(matches!(
            restore_bytes("a\u{FFFD}", "ff0"),
            Err(RawBytesError::CountMismatch { .. })
        ));
        assert_eq!(restore_bytes("plain", "").unwrap(), b"plain");
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_in_any_chunks_round_trip(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..8),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for cut in cuts {
                chunks.push(&bytes[start..cut]);
                start = cut;
            }
            chunks.push(&bytes[start..]);
            let (text, tokens, invalid) = run(&chunks);
            proptest::prop_assert_eq!(restore_bytes(&text, &tokens).unwrap(), bytes.clone());
            if let Ok(valid) = std::str::from_utf8(&bytes) {
                proptest::prop_assert!(!invalid);
                proptest::prop_assert_eq!(text, valid);
            }
        }
    }
}
