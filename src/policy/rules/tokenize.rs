//! Splitting a command line into words with POSIX quoting, and nothing else.
//!
//! The bastion never hands a user's command line to a shell it controls, so anything a shell
//! would *interpret* (operators, expansions, comments) has no meaning here. Instead of guessing
//! what the user meant, every such construct is refused with a reason. What survives is a list of
//! plain words, which the matcher compares byte for byte and [`quote`](fn@super::quote) re-quotes
//! for the target.

use std::fmt;

use super::{MAX_COMMAND_BYTES, MAX_WORD_BYTES, MAX_WORDS};

/// Why a command line (or a rule's text) was refused before any matching took place.
///
/// Every variant is a refusal, never a request to "clean up" the input: a command that contains
/// something a shell would interpret is most likely an attempt to smuggle that interpretation
/// past the allow-list, and the safest answer is to explain and stop. Offsets are byte offsets
/// into the raw command so that the reason can point at the exact spot even in non-ASCII input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizeError {
    /// The command is not valid UTF-8; words are compared as text, so bytes that are not text
    /// cannot be matched or displayed safely.
    NotUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// The command is longer than [`MAX_COMMAND_BYTES`]; checked before anything else so that a
    /// huge request costs nothing.
    TooLong {
        /// Length of the command in bytes.
        len: usize,
    },
    /// The command has more than [`MAX_WORDS`] words.
    TooManyWords {
        /// Byte offset where the first word over the limit starts.
        offset: usize,
    },
    /// A single word is longer than [`MAX_WORD_BYTES`].
    WordTooLong {
        /// Byte offset where the oversized word starts.
        offset: usize,
    },
    /// A control character (C0, DEL or C1), anywhere, including inside quotes. Control characters
    /// can rewrite what an operator sees on a terminal and separate commands in a shell. A tab
    /// is allowed only as an unquoted separator between words.
    ControlChar {
        /// Byte offset of the character.
        offset: usize,
        /// The character.
        ch: char,
    },
    /// An invisible formatting character: Unicode general category Cf (bidi controls, zero-width
    /// characters, BOM, …) or a line or paragraph separator. These make a command look
    /// different from what it is ("trojan source").
    FormatChar {
        /// Byte offset of the character.
        offset: usize,
        /// The character.
        ch: char,
    },
    /// Whitespace other than an ASCII space or tab (no-break space, ideographic space, …), which
    /// looks like a word separator but is not one.
    UnicodeWhitespace {
        /// Byte offset of the character.
        offset: usize,
        /// The character.
        ch: char,
    },
    /// An unquoted shell operator or redirection: `;`, `&`, `|`, `<`, `>`, `(` or `)`.
    Operator {
        /// Byte offset of the character.
        offset: usize,
        /// The operator character.
        ch: char,
    },
    /// A `$` or a backtick outside single quotes, i.e. something a shell would expand. This
    /// includes escaped (`\$`) and double-quoted forms, to keep the rule simple to predict: a
    /// literal `$` goes in single quotes.
    Expansion {
        /// Byte offset of the character.
        offset: usize,
        /// `$` or `` ` ``.
        ch: char,
    },
    /// A quote that is never closed.
    UnterminatedQuote {
        /// Byte offset of the opening quote.
        offset: usize,
        /// `'` or `"`.
        quote: char,
    },
    /// A backslash at the very end of the command, with nothing to escape.
    TrailingBackslash {
        /// Byte offset of the backslash.
        offset: usize,
    },
    /// An unquoted `#` at the start of a word, which a shell would treat as the start of a
    /// comment. Refused rather than dropped, so the user sees that the rest was not ignored.
    Comment {
        /// Byte offset of the `#`.
        offset: usize,
    },
    /// The command has no words at all.
    Empty,
}

impl fmt::Display for TokenizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TokenizeError::NotUtf8 { offset } => {
                write!(f, "the command is not valid UTF-8 (at byte {offset})")
            }
            TokenizeError::TooLong { len } => write!(
                f,
                "the command is {len} bytes long; at most {MAX_COMMAND_BYTES} are allowed"
            ),
            TokenizeError::TooManyWords { offset } => write!(
                f,
                "the command has more than {MAX_WORDS} words (the first extra word starts at byte \
                 {offset})"
            ),
            TokenizeError::WordTooLong { offset } => write!(
                f,
                "the word starting at byte {offset} is longer than {MAX_WORD_BYTES} bytes"
            ),
            TokenizeError::ControlChar { offset, ch } => write!(
                f,
                "control character U+{:04X} at byte {offset} is not allowed",
                u32::from(ch)
            ),
            TokenizeError::FormatChar { offset, ch } => write!(
                f,
                "invisible formatting character U+{:04X} at byte {offset} is not allowed",
                u32::from(ch)
            ),
            TokenizeError::UnicodeWhitespace { offset, ch } => write!(
                f,
                "whitespace character U+{:04X} at byte {offset} is not allowed; separate words \
                 with ASCII spaces",
                u32::from(ch)
            ),
            TokenizeError::Operator { offset, ch } => write!(
                f,
                "shell operator '{ch}' at byte {offset} is not allowed: commands are not run by \
                 a shell; quote it if it is meant literally"
            ),
            TokenizeError::Expansion { offset, ch } => write!(
                f,
                "'{ch}' at byte {offset} is not allowed outside single quotes: nothing is \
                 expanded; write it inside '…' if it is meant literally"
            ),
            TokenizeError::UnterminatedQuote { offset, quote } => {
                write!(f, "the quote {quote} at byte {offset} is never closed")
            }
            TokenizeError::TrailingBackslash { offset } => write!(
                f,
                "the backslash at byte {offset} ends the command and escapes nothing"
            ),
            TokenizeError::Comment { offset } => write!(
                f,
                "'#' at byte {offset} would start a comment in a shell; quote it if it is meant \
                 literally"
            ),
            TokenizeError::Empty => f.write_str("the command is empty"),
        }
    }
}

impl std::error::Error for TokenizeError {}

/// A word after quote removal, with the positions of the wildcard characters that were written
/// unquoted. Only rule parsing needs the positions: `'*'` in a rule is a literal star, `*` is a
/// wildcard, and the difference disappears once quotes are removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Word {
    /// The word's text.
    pub(super) text: String,
    /// Byte offsets into `text` of unquoted `*` and `?`.
    pub(super) wildcards: Vec<usize>,
}

/// Splits `command` into words using POSIX quoting only; see [`TokenizeError`] for everything
/// that is refused.
///
/// This is the only way a user's command line becomes an argv: nothing is expanded, so the words
/// returned are exactly the words that will be matched against rules and, re-quoted, run on the
/// target. Glob characters, `~`, braces and `!` are ordinary characters here: they are never
/// expanded by Gatehouse and reach the target single-quoted, so the target never expands them
/// either. Limits are enforced before work that grows with the input: the byte length first, then
/// the word count and word length while splitting, stopping at the first word over a limit.
///
/// Empty quoted words (`''`, `""`) are kept as empty words.
///
/// # Errors
///
/// The first reason the command is refused; its `Display` is meant for the user.
pub fn tokenize(command: &[u8]) -> Result<Vec<String>, TokenizeError> {
    Ok(split_words(command)?
        .into_iter()
        .map(|word| word.text)
        .collect())
}

/// Where the scanner is with respect to quoting.
#[derive(Clone, Copy)]
enum Quoting {
    /// Outside quotes.
    None,
    /// Inside `'…'` opened at this byte offset.
    Single(usize),
    /// Inside `"…"` opened at this byte offset.
    Double(usize),
}

/// Collects words while enforcing the word-count and word-length limits as early as possible.
struct Builder {
    words: Vec<Word>,
    current: Option<Word>,
    start: usize,
}

impl Builder {
    /// Makes sure a word is open, starting one at `offset` if needed.
    fn open(&mut self, offset: usize) -> Result<&mut Word, TokenizeError> {
        if self.current.is_none() {
            if self.words.len() >= MAX_WORDS {
                return Err(TokenizeError::TooManyWords { offset });
            }
            self.start = offset;
        }
        Ok(self.current.get_or_insert_with(|| Word {
            text: String::new(),
            wildcards: Vec::new(),
        }))
    }

    /// Appends `ch` to the open word (opening one at `offset` if needed).
    fn push(&mut self, offset: usize, ch: char, wildcard: bool) -> Result<(), TokenizeError> {
        let word = self.open(offset)?;
        if wildcard {
            word.wildcards.push(word.text.len());
        }
        word.text.push(ch);
        if word.text.len() > MAX_WORD_BYTES {
            return Err(TokenizeError::WordTooLong { offset: self.start });
        }
        Ok(())
    }

    /// Ends the open word, if any.
    fn close(&mut self) {
        if let Some(word) = self.current.take() {
            self.words.push(word);
        }
    }
}

/// The tokeniser proper, keeping wildcard positions for rule parsing.
pub(super) fn split_words(command: &[u8]) -> Result<Vec<Word>, TokenizeError> {
    if command.len() > MAX_COMMAND_BYTES {
        return Err(TokenizeError::TooLong { len: command.len() });
    }
    let text = std::str::from_utf8(command).map_err(|e| TokenizeError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let mut out = Builder {
        words: Vec::new(),
        current: None,
        start: 0,
    };
    let mut quoting = Quoting::None;
    let mut chars = text.char_indices().peekable();
    while let Some((offset, ch)) = chars.next() {
        let separator_tab = ch == '\t' && matches!(quoting, Quoting::None);
        if !separator_tab {
            check_char(offset, ch)?;
        }
        match quoting {
            Quoting::None => match ch {
                ' ' | '\t' => out.close(),
                '\'' => {
                    out.open(offset)?;
                    quoting = Quoting::Single(offset);
                }
                '"' => {
                    out.open(offset)?;
                    quoting = Quoting::Double(offset);
                }
                '\\' => {
                    let Some((next_offset, next)) = chars.next() else {
                        return Err(TokenizeError::TrailingBackslash { offset });
                    };
                    check_char(next_offset, next)?;
                    if matches!(next, '$' | '`') {
                        return Err(TokenizeError::Expansion {
                            offset: next_offset,
                            ch: next,
                        });
                    }
                    out.push(offset, next, false)?;
                }
                ';' | '&' | '|' | '<' | '>' | '(' | ')' => {
                    return Err(TokenizeError::Operator { offset, ch });
                }
                '$' | '`' => return Err(TokenizeError::Expansion { offset, ch }),
                '#' if out.current.is_none() => return Err(TokenizeError::Comment { offset }),
                '*' | '?' => out.push(offset, ch, true)?,
                _ => out.push(offset, ch, false)?,
            },
            Quoting::Single(_) => match ch {
                '\'' => quoting = Quoting::None,
                _ => out.push(offset, ch, false)?,
            },
            Quoting::Double(_) => match ch {
                '"' => quoting = Quoting::None,
                '$' | '`' => return Err(TokenizeError::Expansion { offset, ch }),
                '\\' => match chars.peek().copied() {
                    Some((_, escaped @ ('"' | '\\'))) => {
                        chars.next();
                        out.push(offset, escaped, false)?;
                    }
                    Some((next_offset, next @ ('$' | '`'))) => {
                        return Err(TokenizeError::Expansion {
                            offset: next_offset,
                            ch: next,
                        });
                    }
                    // Any other character keeps its backslash (POSIX); the next character is
                    // checked on its own turn.
                    _ => out.push(offset, '\\', false)?,
                },
                _ => out.push(offset, ch, false)?,
            },
        }
    }
    match quoting {
        Quoting::None => {}
        Quoting::Single(offset) => {
            return Err(TokenizeError::UnterminatedQuote {
                offset,
                quote: '\'',
            });
        }
        Quoting::Double(offset) => {
            return Err(TokenizeError::UnterminatedQuote { offset, quote: '"' });
        }
    }
    out.close();
    if out.words.is_empty() {
        return Err(TokenizeError::Empty);
    }
    Ok(out.words)
}

/// Refuses characters that are never allowed in a command, whatever the quoting.
pub fn check_char(offset: usize, ch: char) -> Result<(), TokenizeError> {
    if ch.is_control() {
        Err(TokenizeError::ControlChar { offset, ch })
    } else if is_format(ch) {
        Err(TokenizeError::FormatChar { offset, ch })
    } else if (ch.is_whitespace() && ch != ' ') || is_blank_letter(ch) {
        Err(TokenizeError::UnicodeWhitespace { offset, ch })
    } else {
        Ok(())
    }
}

/// Characters that are letters to Unicode but print as nothing: the Hangul fillers and the
/// blank Braille pattern. They would let two different words look the same.
fn is_blank_letter(ch: char) -> bool {
    matches!(
        ch,
        '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' | '\u{2800}'
    )
}

/// Unicode general category Cf (as of Unicode 15), plus the line and paragraph separators. The
/// bidi controls (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C) and the zero-width
/// characters (U+200B–U+200D, U+2060, U+FEFF) are all Cf. std has no general-category lookup,
/// so the ranges are listed here; the list is short and changes rarely.
const FORMAT_RANGES: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x2029),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `ch` is an invisible formatting character (see [`FORMAT_RANGES`]).
fn is_format(ch: char) -> bool {
    let c = u32::from(ch);
    FORMAT_RANGES.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

#[cfg(test)]
mod tests;
