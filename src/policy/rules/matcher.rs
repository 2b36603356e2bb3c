//! Parsed command rules and word-by-word matching.

use std::fmt;
use std::str::FromStr;

use super::option_guard::{OptionGuard, basename};
use super::pinning::Pins;
use super::subcommand::WildSubcommand;
use super::tokenize::{TokenizeError, Word, split_words};
use super::{RuleError, shown};
use crate::policy::glob::Token;

/// One command rule from a policy, such as `"systemctl status *"`, parsed once when the policy
/// loads.
///
/// Rules are written with the same quoting as commands and parsed by the same tokeniser, so a
/// policy author can say `"grep -r 'a b' *"` and mean exactly the words a user would type. Each
/// word then becomes a literal (compared byte for byte), a glob over one word (an unquoted `*` or
/// `?` inside the word), a standalone `*` in the middle (exactly one word) or a trailing
/// standalone `*` (zero or more further words). A quoted `'*'` is a literal star. The source
/// text is kept so that denials and lint warnings can quote the rule as it was written.
///
/// Parsing also reads what the rule pins (scoping options and operands its literal words fix,
/// which wildcard words may not change) and whether a wildcard supplies the subcommand of a
/// subcommand-driven program (which then admits only harmless subcommands); both are checked
/// with every command the rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRule {
    source: String,
    words: Vec<RuleWord>,
    pins: Option<Pins>,
    wild_subcommand: Option<WildSubcommand>,
    unsafe_reason: Option<String>,
}

/// How one word of a rule matches one word of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RuleWord {
    /// Exactly this word.
    Literal(String),
    /// One word matching a pattern.
    Glob(Glob),
    /// A standalone `*` that is not last: exactly one word, whatever it is.
    Any,
    /// A standalone `*` that is last: zero or more further words.
    Rest,
}

impl RuleWord {
    /// Whether words matched by this rule word are untrusted and must pass the option guard.
    pub(super) fn is_placeholder(&self) -> bool {
        !matches!(self, RuleWord::Literal(_))
    }

    /// The word as the rule wrote it, after quote removal, for messages.
    fn shown(&self) -> String {
        match self {
            RuleWord::Literal(text) => shown(text),
            RuleWord::Glob(glob) => shown(&glob.text),
            RuleWord::Any | RuleWord::Rest => "*".to_owned(),
        }
    }

    /// Checks one command word; `Err` says why it does not match, as a phrase that follows the
    /// word in a message.
    fn check(&self, word: &str) -> Result<(), String> {
        match self {
            RuleWord::Literal(text) if text == word => Ok(()),
            RuleWord::Literal(_) => Err(format!("does not match {}", self.shown())),
            RuleWord::Glob(glob) => match glob.matches(word) {
                GlobMatch::Yes => Ok(()),
                GlobMatch::No => Err(format!("does not match {}", self.shown())),
                GlobMatch::DotSegment => Err(format!(
                    "has a \".\" or \"..\" path segment, which a path pattern such as {} never \
                     matches",
                    self.shown()
                )),
            },
            RuleWord::Any | RuleWord::Rest => Ok(()),
        }
    }
}

/// A glob over one word.
///
/// `*` and `?` never match `/`, so a pattern such as `/var/log/nginx/*.log` can only reach files
/// directly in that directory. A pattern that contains `/` is a path pattern, and a word with a
/// `.` or `..` segment never matches one: otherwise `/var/log/*/x` would accept
/// `/var/log/../../etc/x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Glob {
    text: String,
    segments: Vec<Vec<Token>>,
    path: bool,
}

/// The result of matching a word against a [`Glob`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GlobMatch {
    Yes,
    No,
    /// The word has a `.` or `..` segment and the pattern is a path pattern.
    DotSegment,
}

impl Glob {
    /// Builds the pattern from a tokenised word whose unquoted `*` and `?` are wildcards.
    fn new(word: &Word) -> Glob {
        let mut segments = vec![Vec::new()];
        let mut wildcards = word.wildcards.iter().peekable();
        for (offset, ch) in word.text.char_indices() {
            let token = if wildcards.next_if_eq(&&offset).is_some() {
                if ch == '*' { Token::Star } else { Token::One }
            } else {
                Token::Char(ch)
            };
            if token == Token::Char('/') {
                segments.push(Vec::new());
            } else if let Some(segment) = segments.last_mut() {
                segment.push(token);
            }
        }
        let path = segments.len() > 1;
        Glob {
            text: word.text.clone(),
            segments,
            path,
        }
    }

    fn matches(&self, word: &str) -> GlobMatch {
        let mut parts = word.split('/');
        for pattern in &self.segments {
            match parts.next() {
                Some(part) if segment_matches(pattern, part) => {}
                _ => return GlobMatch::No,
            }
        }
        if parts.next().is_some() {
            GlobMatch::No
        } else if self.path && word.split('/').any(|part| part == "." || part == "..") {
            // Checked last so that the message names the dot segment only when it is the one
            // reason the word is refused.
            GlobMatch::DotSegment
        } else {
            GlobMatch::Yes
        }
    }
}

/// Matches one path segment (no `/` on either side): `*` and `?` cannot cross a `/` because
/// the word was split on `/` before matching.
fn segment_matches(pattern: &[Token], text: &str) -> bool {
    crate::policy::glob::matches_tokens(pattern, text)
}

/// What one rule says about one argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The rule allows the command.
    Allowed,
    /// Every word matched, but the option guard refused a placeholder word.
    Guarded(String),
    /// The words do not fit the rule.
    Mismatch {
        /// How many leading words matched, to find the closest rule.
        matched: usize,
        /// Why not, naming the first word that failed.
        detail: String,
    },
}

impl CommandRule {
    /// Parses a rule as written in a policy.
    ///
    /// Refuses rules that would be unsafe or meaningless rather than guessing: an empty rule, a
    /// rule the tokeniser refuses (operators, `$`, control characters, …), and a rule whose
    /// command word is a wildcard, which would let users pick the program.
    ///
    /// # Errors
    ///
    /// [`RuleError::Empty`], [`RuleError::Syntax`] or [`RuleError::WildcardCommand`], for the
    /// policy loader to report with the rule's file and line.
    pub fn parse(text: &str) -> Result<CommandRule, RuleError> {
        let words = split_words(text.as_bytes()).map_err(|e| match e {
            TokenizeError::Empty => RuleError::Empty,
            other => RuleError::Syntax(other),
        })?;
        let last = words.len() - 1;
        let mut parsed = Vec::with_capacity(words.len());
        for (i, word) in words.iter().enumerate() {
            let rule_word = if word.wildcards.is_empty() {
                RuleWord::Literal(word.text.clone())
            } else if word.text == "*" {
                if i == last {
                    RuleWord::Rest
                } else {
                    RuleWord::Any
                }
            } else {
                RuleWord::Glob(Glob::new(word))
            };
            if i == 0 && rule_word.is_placeholder() {
                return Err(RuleError::WildcardCommand {
                    word: word.text.clone(),
                });
            }
            parsed.push(rule_word);
        }
        Ok(CommandRule {
            source: text.to_owned(),
            pins: Pins::of(&parsed),
            wild_subcommand: WildSubcommand::of(&parsed),
            words: parsed,
            unsafe_reason: None,
        })
    }

    /// The same rule, marked as acknowledged unsafe for `reason` (the policy's
    /// `{ rule = "…", unsafe = "…" }` form). The reason is shown by `gatehouse check` and kept in
    /// the audit line of every session the rule allows; matching is unchanged.
    #[must_use]
    pub fn acknowledged(mut self, reason: &str) -> CommandRule {
        self.unsafe_reason = Some(reason.to_owned());
        self
    }

    /// Why the policy accepted this rule although it hands the user a program, if it did.
    #[must_use]
    pub fn unsafe_reason(&self) -> Option<&str> {
        self.unsafe_reason.as_deref()
    }

    /// What the rule's literal words pin, as phrases such as `namespace ("-n web")`; empty when
    /// they pin nothing.
    #[must_use]
    pub fn pinned(&self) -> Vec<String> {
        self.pins.as_ref().map(Pins::describe).unwrap_or_default()
    }

    /// The wildcard that supplies a subcommand, for lint.
    pub(super) fn wild_subcommand(&self) -> Option<&WildSubcommand> {
        self.wild_subcommand.as_ref()
    }

    /// The rule exactly as the policy wrote it, for messages and audit logs.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The command word (`argv[0]`) the rule allows. Always a literal: [`CommandRule::parse`]
    /// refuses wildcard command words.
    #[must_use]
    pub fn program(&self) -> &str {
        match self.words.first() {
            Some(RuleWord::Literal(text)) => text,
            _ => "",
        }
    }

    /// The parsed words, for lint.
    pub(super) fn words(&self) -> &[RuleWord] {
        &self.words
    }

    /// Matches `argv` word by word and runs the option guard over every word that a placeholder
    /// matched, then the rule's pinned scopes and wildcard subcommand; `pty` says whether the
    /// command runs on a terminal (subcommands that page are then not supplied by a wildcard).
    pub(super) fn evaluate(&self, argv: &[String], guard: &OptionGuard, pty: bool) -> Outcome {
        let (fixed, rest) = match self.words.split_last() {
            Some((RuleWord::Rest, fixed)) => (fixed, true),
            _ => (self.words.as_slice(), false),
        };
        for (i, pattern) in fixed.iter().enumerate() {
            let Some(word) = argv.get(i) else {
                let expected = match pattern {
                    RuleWord::Any => "any word".to_owned(),
                    RuleWord::Glob(_) => format!("a word matching {}", pattern.shown()),
                    _ => pattern.shown(),
                };
                return Outcome::Mismatch {
                    matched: i,
                    detail: format!("word {} is missing: the rule expects {expected}", i + 1),
                };
            };
            if let Err(why) = pattern.check(word) {
                let mut detail = format!("word {} {} {why}", i + 1, shown(word));
                if i == 0 && basename(word) == basename(self.program()) {
                    detail.push_str("; the command must be typed exactly as the rule writes it");
                }
                return Outcome::Mismatch { matched: i, detail };
            }
        }
        if !rest && argv.len() > fixed.len() {
            let extra = fixed.len();
            return Outcome::Mismatch {
                matched: extra,
                detail: format!(
                    "word {} {} is one too many: the rule allows exactly {} word{}",
                    extra + 1,
                    shown(&argv[extra]),
                    fixed.len(),
                    if fixed.len() == 1 { "" } else { "s" }
                ),
            };
        }
        let placeholder = |index: usize| fixed.get(index).is_none_or(RuleWord::is_placeholder);
        for index in 1..argv.len() {
            if placeholder(index)
                && let Some(reason) = guard.check(argv, index)
            {
                return Outcome::Guarded(reason);
            }
        }
        if let Some(wild) = &self.wild_subcommand
            && let Some(reason) = wild.check(argv, placeholder, pty)
        {
            return Outcome::Guarded(reason);
        }
        if let Some(pins) = &self.pins
            && let Some(reason) = pins.check(argv, placeholder)
        {
            return Outcome::Guarded(reason);
        }
        Outcome::Allowed
    }
}

impl fmt::Display for CommandRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for CommandRule {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<CommandRule, RuleError> {
        CommandRule::parse(text)
    }
}

#[cfg(test)]
mod tests;
