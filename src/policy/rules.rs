//! Command allow-lists: how an exec request is judged against a role's `commands`.
//!
//! An exec request is **tokenised, never interpreted**. [`tokenize()`] splits the command line
//! into words with POSIX quoting only and refuses anything a shell would interpret (operators,
//! `$`, backticks, comments) and any character that can hide what a command really is (control,
//! invisible formatting and non-ASCII whitespace characters). The words are matched against the
//! role's rules ([`CommandRule`], gathered in an [`AllowList`]); words that a rule placeholder
//! matched must also pass the [`OptionGuard`]. An approved argv is sent to the target as
//! [`quote()`] renders it, every word single-quoted, so the target's shell cannot reinterpret it
//! either.
//!
//! Typical use by the SSH layer:
//!
//! ```text
//! let argv = tokenize(request.as_bytes())?;    // TokenizeError's Display is the user-facing reason
//! allow_list.check(&argv)?;                     // CommandDenial's reason (and hint) go to the user
//! let line = quote(&argv);                      // the only text ever sent to the target
//! ```
//!
//! Rules are plain strings such as `"systemctl status *"`:
//!
//! - words are compared after quote removal, byte for byte; the first word must equal the user's
//!   `argv[0]` exactly (`/usr/bin/systemctl` does not match `systemctl`, and vice versa);
//! - a word with an unquoted `*` or `?` is a glob over one word: `*` and `?` never match `/`, and
//!   a word with a `.` or `..` segment never matches a pattern that contains `/`;
//! - a standalone `*` in the middle is exactly one word; a trailing standalone `*` is zero or
//!   more further words; without it the rule has a fixed number of words;
//! - environment assignments (`X=1 cmd`) and wrappers (`sudo`, `env`, `timeout`, …) are ordinary
//!   words that match only rules naming them.
//!
//! Three checks keep a rule from being read more widely than it is written:
//!
//! - **Pinned options stay pinned.** When a rule's literal words fix a scoping option (a
//!   namespace, a unit, a repository, a journal, a daemon), the words of its wildcards may not
//!   give that option again, widen it, or step outside it (see `pinning`).
//! - **Wildcard subcommands stay harmless.** A `*` that supplies the subcommand of systemctl,
//!   git, kubectl, docker, helm, apt or service supplies only subcommands known to be harmless
//!   (see `subcommand`).
//! - **Rules that hand over a program are refused unless acknowledged.** [`hands_over`] says
//!   why a rule gives the user an editor, a pager on a terminal, a SQL client or program text;
//!   the policy loader refuses such a rule unless it is written with an `unsafe` reason.
//!
//! [`lint()`] points out rules that are wider than they look.

mod handover;
mod lint;
mod matcher;
mod option_guard;
mod pinning;
mod quote;
mod shapes;
mod subcommand;
mod tokenize;

use std::fmt;

pub use handover::hands_over;
pub use lint::{lint, notes};
pub use matcher::CommandRule;
pub use option_guard::OptionGuard;
pub use quote::quote;
pub use tokenize::{TokenizeError, check_char, tokenize};

use matcher::Outcome;
use option_guard::basename;

/// Longest command line accepted, in bytes. Checked before anything else, so an oversized request
/// costs nothing; 8 KiB is far more than any command typed by a person.
pub const MAX_COMMAND_BYTES: usize = 8192;

/// Most words a command may have. Bounds the work of matching (rules × words) per request.
pub const MAX_WORDS: usize = 256;

/// Longest single word, in bytes. Bounds the cost of glob matching, which is quadratic in the
/// worst case.
pub const MAX_WORD_BYTES: usize = 4096;

/// Why a rule or a `deny_options` entry in a policy was refused.
///
/// The policy loader reports these with the file and line of the offending entry; a policy with
/// such an error does not load, because a rule that cannot be read exactly as written must not
/// be read some other way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// The rule's text is refused by the tokeniser (an operator, `$`, a control character, an
    /// unterminated quote, …). Rules use the same syntax as commands, so the same checks apply.
    Syntax(TokenizeError),
    /// The rule has no words.
    Empty,
    /// The command word is a wildcard (`*`, `sys*`), which would let users choose the program.
    WildcardCommand {
        /// The command word as written, after quote removal.
        word: String,
    },
    /// A `deny_options` key is not a usable program name.
    BadProgram {
        /// The key as written.
        program: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `deny_options` entry is not a spelling the guard can recognise.
    BadOption {
        /// The program it was listed under.
        program: String,
        /// The entry as written.
        option: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::Syntax(e) => write!(f, "the rule cannot be read: {e}"),
            RuleError::Empty => f.write_str("the rule is empty"),
            RuleError::WildcardCommand { word } => write!(
                f,
                "the command word may not be a wildcard ({}): it would let users choose the \
                 program; name the program exactly",
                shown(word)
            ),
            RuleError::BadProgram { program, reason } => {
                write!(f, "deny_options: program name {} {reason}", shown(program))
            }
            RuleError::BadOption {
                program,
                option,
                reason,
            } => write!(
                f,
                "deny_options for {}: {} {reason}",
                shown(program),
                shown(option)
            ),
        }
    }
}

impl std::error::Error for RuleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RuleError::Syntax(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a command was refused, in words meant for the user who typed it.
///
/// `reason` says what was refused and why, naming the closest rule so that a typo is easy to
/// spot; `hint` is an optional next step. Every user-supplied word in them is escaped
/// (`{:?}`-style), so neither can carry control characters to a terminal. Both may quote rule
/// text from the role's policy, which the user holding the role may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandDenial {
    /// What was refused and why.
    pub reason: String,
    /// What the user could do instead, when there is something useful to say.
    pub hint: Option<String>,
}

impl fmt::Display for CommandDenial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for CommandDenial {}

/// What one rule says about one command, in the words a denial would use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleVerdict {
    /// The rule allows the command.
    Allows,
    /// Every word fits the rule, but the option guard (or the rule's pinned scope, or its
    /// wildcard subcommand check) refuses a word a wildcard supplied; the reason names it.
    Guarded(String),
    /// The words do not fit the rule; the detail names the first word that does not.
    Mismatch(String),
}

/// A role's command rules together with the option guard that applies to them.
///
/// Built once when the policy loads; checking a command only reads it, so it can be shared
/// between sessions.
#[derive(Debug, Clone)]
pub struct AllowList {
    rules: Vec<CommandRule>,
    guard: OptionGuard,
    pty: bool,
}

impl AllowList {
    /// An allow-list of `rules`, in policy order, for commands run without a terminal. With no
    /// rules, nothing is allowed.
    #[must_use]
    pub fn new(rules: Vec<CommandRule>, guard: OptionGuard) -> AllowList {
        AllowList {
            rules,
            guard,
            pty: false,
        }
    }

    /// The same allow-list for commands that run on a terminal (a role with `exec_pty`): a
    /// wildcard then supplies no subcommand that shows a pager, since a pager on a terminal has
    /// a shell escape.
    #[must_use]
    pub fn on_terminal(mut self, pty: bool) -> AllowList {
        self.pty = pty;
        self
    }

    /// The rules acknowledged as unsafe, in policy order: those a restricted shell may use.
    pub fn unsafe_rules(&self) -> impl Iterator<Item = &CommandRule> {
        self.rules.iter().filter(|r| r.unsafe_reason().is_some())
    }

    /// The acknowledged-unsafe rule that allows `command`, a line this allow-list approved and
    /// [`quote()`] rendered (as in an exec permit), if the rule that allows it is one. For the
    /// audit line of the session.
    #[must_use]
    pub fn unsafe_rule_for(&self, command: &str) -> Option<&CommandRule> {
        let argv = tokenize(command.as_bytes()).ok()?;
        self.admit(&argv)
            .ok()
            .filter(|rule| rule.unsafe_reason().is_some())
    }

    /// The rules, in policy order, e.g. to show a user what they may run.
    #[must_use]
    pub fn rules(&self) -> &[CommandRule] {
        &self.rules
    }

    /// The option guard, built-in table plus the policy's extensions.
    #[must_use]
    pub fn guard(&self) -> &OptionGuard {
        &self.guard
    }

    /// `Ok(())` when some rule matches `argv` and the guard accepts every word a placeholder
    /// matched; otherwise a denial that explains the closest rule.
    ///
    /// `argv` should come from [`tokenize()`]; it is checked again here (limits and forbidden
    /// characters) so that an argv built any other way cannot reach the target with characters
    /// the tokeniser would have refused. The closest rule is the one that matched the most
    /// leading words; a rule that matched every word but was stopped by the guard beats them all.
    ///
    /// # Errors
    ///
    /// A [`CommandDenial`] when no rule allows the command, for the SSH layer to show the user.
    pub fn check(&self, argv: &[String]) -> Result<(), CommandDenial> {
        self.admit(argv).map(|_| ())
    }

    /// Like [`AllowList::check`], and on success the rule that allows `argv` (the first one, in
    /// policy order).
    ///
    /// # Errors
    ///
    /// A [`CommandDenial`] when no rule allows the command.
    pub fn admit(&self, argv: &[String]) -> Result<&CommandRule, CommandDenial> {
        if argv.is_empty() {
            return Err(CommandDenial {
                reason: "the command is empty".to_owned(),
                hint: None,
            });
        }
        if let Some(reason) = invalid_argv(argv) {
            return Err(CommandDenial { reason, hint: None });
        }
        let mut closest: Option<((usize, bool), &CommandRule, Outcome)> = None;
        for rule in &self.rules {
            let outcome = rule.evaluate(argv, &self.guard, self.pty);
            let score = match &outcome {
                Outcome::Allowed => return Ok(rule),
                Outcome::Guarded(_) => (usize::MAX, true),
                Outcome::Mismatch { matched, .. } => {
                    (*matched, basename(rule.program()) == basename(&argv[0]))
                }
            };
            if closest.as_ref().is_none_or(|(best, _, _)| score > *best) {
                closest = Some((score, rule, outcome));
            }
        }
        let command = shown(&argv.join(" "));
        Err(match closest {
            None => CommandDenial {
                reason: format!("no rule allows {command}"),
                hint: Some("this access allows no commands".to_owned()),
            },
            Some((_, rule, Outcome::Guarded(reason))) => CommandDenial {
                reason,
                hint: Some(format!(
                    "rule {} matches these words, but its wildcards never accept this; a rule \
                     that names it literally would",
                    shown(rule.source())
                )),
            },
            Some(((matched, same_program), rule, Outcome::Mismatch { detail, .. }))
                if matched > 0 || same_program =>
            {
                CommandDenial {
                    reason: format!(
                        "no rule allows {command}; closest: {} ({detail})",
                        shown(rule.source())
                    ),
                    hint: (matched == 0)
                        .then(|| format!("type the command as {}", shown(rule.program()))),
                }
            }
            Some(_) => CommandDenial {
                reason: format!("no rule allows {command}"),
                hint: Some(self.programs_hint()),
            },
        })
    }

    /// What each rule, in policy order, says about `argv`: the same evaluation
    /// [`AllowList::check`] makes, rule by rule, so that `gatehouse explain` can show which rule
    /// allows a command, which rule's wildcards the option guard stops, and why the others do
    /// not fit. The verdict of the whole list is still [`AllowList::check`]'s.
    #[must_use]
    pub fn verdicts(&self, argv: &[String]) -> Vec<(&CommandRule, RuleVerdict)> {
        self.rules
            .iter()
            .map(|rule| {
                let verdict = match rule.evaluate(argv, &self.guard, self.pty) {
                    Outcome::Allowed => RuleVerdict::Allows,
                    Outcome::Guarded(reason) => RuleVerdict::Guarded(reason),
                    Outcome::Mismatch { detail, .. } => RuleVerdict::Mismatch(detail),
                };
                (rule, verdict)
            })
            .collect()
    }

    /// Lists the commands that some rule allows, for a user whose program matched none.
    fn programs_hint(&self) -> String {
        const MAX_LISTED: usize = 8;
        let mut programs: Vec<&str> = Vec::new();
        for rule in &self.rules {
            if !programs.contains(&rule.program()) {
                programs.push(rule.program());
            }
        }
        let mut hint = String::from("allowed commands: ");
        for (i, program) in programs.iter().take(MAX_LISTED).enumerate() {
            if i > 0 {
                hint.push_str(", ");
            }
            hint.push_str(&shown(program));
        }
        if programs.len() > MAX_LISTED {
            hint.push_str(", …");
        }
        hint
    }
}

/// Why an argv could not have come from [`tokenize()`], if it could not.
fn invalid_argv(argv: &[String]) -> Option<String> {
    if argv.len() > MAX_WORDS {
        return Some(format!("the command has more than {MAX_WORDS} words"));
    }
    for (i, word) in argv.iter().enumerate() {
        if word.len() > MAX_WORD_BYTES {
            return Some(format!(
                "word {} is longer than {MAX_WORD_BYTES} bytes",
                i + 1
            ));
        }
        for (offset, ch) in word.char_indices() {
            let kind = match tokenize::check_char(offset, ch) {
                Ok(()) => continue,
                Err(TokenizeError::ControlChar { .. }) => "control character",
                Err(TokenizeError::FormatChar { .. }) => "invisible formatting character",
                Err(_) => "whitespace character",
            };
            return Some(format!(
                "word {} contains {kind} U+{:04X}, which is not allowed",
                i + 1,
                u32::from(ch)
            ));
        }
    }
    None
}

/// Renders untrusted text for a message: escaped like `{:?}` (quotes included) and cut to a
/// readable length, so a word can neither break a message apart nor flood a terminal.
fn shown(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests;
