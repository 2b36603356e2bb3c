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
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn allow_list(rules: &[&str]) -> AllowList {
        let rules = rules
            .iter()
            .map(|r| CommandRule::parse(r).unwrap_or_else(|e| panic!("{r:?}: {e}")))
            .collect();
        AllowList::new(rules, OptionGuard::builtin())
    }

    fn check(list: &AllowList, command: &str) -> Result<(), CommandDenial> {
        let argv = tokenize(command.as_bytes()).unwrap_or_else(|e| panic!("{command:?}: {e}"));
        list.check(&argv)
    }

    fn denial(list: &AllowList, command: &str) -> CommandDenial {
        match check(list, command) {
            Ok(()) => panic!("{command:?} was allowed"),
            Err(d) => d,
        }
    }

    fn owned(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn allows_what_some_rule_allows() {
        let list = allow_list(&[
            "systemctl status *",
            "tail -n * /var/log/nginx/*.log",
            "journalctl -u nginx *",
            "grep -r 'a b' *",
        ]);
        for command in [
            "systemctl status",
            "systemctl status nginx --no-pager",
            "tail -n 100 /var/log/nginx/error.log",
            "journalctl -u nginx --since today",
            "grep -r 'a b' /etc/nginx",
            "grep -r \"a b\" /etc/nginx",
        ] {
            assert_eq!(check(&list, command), Ok(()), "{command}");
        }
        assert_eq!(list.rules().len(), 4);
    }

    #[test]
    fn denial_names_the_closest_rule() {
        let list = allow_list(&["journalctl -u nginx *", "systemctl status *"]);
        let d = denial(&list, "systemctl stop nginx");
        assert_eq!(
            d.reason,
            "no rule allows \"systemctl stop nginx\"; closest: \"systemctl status *\" (word 2 \
             \"stop\" does not match \"status\")"
        );
        assert_eq!(d.hint, None);
        assert_eq!(d.to_string(), d.reason);
    }

    #[test]
    fn denial_for_a_path_typed_command_word() {
        let list = allow_list(&["systemctl status *"]);
        let d = denial(&list, "/usr/bin/systemctl status");
        assert!(
            d.reason.contains("closest: \"systemctl status *\""),
            "{}",
            d.reason
        );
        assert!(d.reason.contains("typed exactly"), "{}", d.reason);
        assert_eq!(d.hint.as_deref(), Some("type the command as \"systemctl\""));
    }

    #[test]
    fn denial_for_an_unknown_program_lists_what_is_allowed() {
        let list = allow_list(&["systemctl status *", "systemctl restart nginx", "uptime"]);
        let d = denial(&list, "rm -rf /");
        assert_eq!(d.reason, "no rule allows \"rm -rf /\"");
        assert_eq!(
            d.hint.as_deref(),
            Some("allowed commands: \"systemctl\", \"uptime\"")
        );
        let empty = allow_list(&[]);
        let d = denial(&empty, "ls");
        assert_eq!(d.hint.as_deref(), Some("this access allows no commands"));
    }

    #[test]
    fn guard_denials_win_over_mismatches() {
        let list = allow_list(&["curl https://example.com/", "curl *"]);
        let d = denial(&list, "curl --output /etc/passwd https://evil/");
        assert_eq!(
            d.reason,
            "option \"--output\" of curl is not allowed (writes files)"
        );
        assert!(d.hint.unwrap_or_default().contains("\"curl *\""));
        assert_eq!(check(&list, "curl -s https://example.com/"), Ok(()));
    }

    #[test]
    fn a_later_rule_can_still_allow() {
        let list = allow_list(&["curl *", "curl -o /tmp/report https://example.com/"]);
        assert_eq!(
            check(&list, "curl -o /tmp/report https://example.com/"),
            Ok(())
        );
    }

    #[test]
    fn empty_argv_is_denied() {
        let list = allow_list(&["ls *"]);
        assert_eq!(
            list.check(&[]),
            Err(CommandDenial {
                reason: "the command is empty".to_owned(),
                hint: None
            })
        );
    }

    #[test]
    fn argv_with_forbidden_characters_is_denied_even_if_a_rule_matches() {
        let list = allow_list(&["echo *"]);
        for (word, kind) in [
            ("a\u{1b}[2J", "control character U+001B"),
            ("a\tb", "control character U+0009"),
            ("a\u{202E}b", "invisible formatting character U+202E"),
            ("a\u{A0}b", "whitespace character U+00A0"),
        ] {
            let d = list
                .check(&owned(&["echo", word]))
                .err()
                .unwrap_or_else(|| panic!("{word:?}"));
            assert_eq!(
                d.reason,
                format!("word 2 contains {kind}, which is not allowed")
            );
        }
        let too_many = vec!["echo".to_owned(); MAX_WORDS + 1];
        assert!(list.check(&too_many).is_err());
        let too_long = owned(&["echo", &"x".repeat(MAX_WORD_BYTES + 1)]);
        assert!(list.check(&too_long).is_err());
    }

    #[test]
    fn denials_escape_what_the_user_typed() {
        let list = allow_list(&["ls *"]);
        let d = list
            .check(&owned(&["cat", "\"quoted\"", "back\\slash"]))
            .err()
            .unwrap_or_else(|| panic!("allowed"));
        assert_eq!(d.reason, r#"no rule allows "cat \"quoted\" back\\slash""#);
        let long = "x".repeat(500);
        let d = list
            .check(&owned(&["cat", &long]))
            .err()
            .unwrap_or_else(|| panic!("allowed"));
        assert!(d.reason.len() < 200, "{}", d.reason);
        assert!(d.reason.ends_with('…'), "{}", d.reason);
    }

    #[test]
    fn extended_guard_is_used() {
        let mut extra = BTreeMap::new();
        extra.insert("myctl".to_owned(), vec!["--dangerous".to_owned()]);
        let guard = OptionGuard::builtin()
            .with_extra(&extra)
            .unwrap_or_else(|e| panic!("{e}"));
        let list = AllowList::new(
            vec![CommandRule::parse("myctl *").unwrap_or_else(|e| panic!("{e}"))],
            guard,
        );
        assert!(check(&list, "myctl --safe").is_ok());
        assert!(check(&list, "myctl --dang").is_err());
        assert!(list.guard().guards("myctl"));
    }

    #[test]
    fn end_to_end_requoting() {
        let list = allow_list(&["grep -r * /var/log/app"]);
        let argv = tokenize(br#"grep -r "it's; $(not run)" /var/log/app"#);
        // `$` inside double quotes is refused before matching.
        assert!(argv.is_err());
        let argv = tokenize(br"grep -r 'it'\''s; $(not run)' /var/log/app")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(list.check(&argv), Ok(()));
        assert_eq!(
            quote(&argv),
            r"'grep' '-r' 'it'\''s; $(not run)' '/var/log/app'"
        );
    }

    #[test]
    fn rule_error_messages() {
        assert_eq!(
            RuleError::WildcardCommand {
                word: "*".to_owned()
            }
            .to_string(),
            "the command word may not be a wildcard (\"*\"): it would let users choose the \
             program; name the program exactly"
        );
        let syntax = CommandRule::parse("ls; id")
            .err()
            .unwrap_or(RuleError::Empty);
        assert_eq!(
            syntax.to_string(),
            "the rule cannot be read: shell operator ';' at byte 2 is not allowed: commands are \
             not run by a shell; quote it if it is meant literally"
        );
        assert!(std::error::Error::source(&syntax).is_some());
        let mut extra = BTreeMap::new();
        extra.insert("curl".to_owned(), vec!["output".to_owned()]);
        let bad = OptionGuard::builtin()
            .with_extra(&extra)
            .err()
            .unwrap_or(RuleError::Empty);
        assert_eq!(
            bad.to_string(),
            "deny_options for \"curl\": \"output\" must look like -x, --name, -name, + or name="
        );
    }

    #[test]
    fn every_tokenize_error_has_a_plain_message() {
        for error in [
            TokenizeError::NotUtf8 { offset: 1 },
            TokenizeError::TooLong { len: 9000 },
            TokenizeError::TooManyWords { offset: 600 },
            TokenizeError::WordTooLong { offset: 3 },
            TokenizeError::ControlChar {
                offset: 1,
                ch: '\u{1b}',
            },
            TokenizeError::FormatChar {
                offset: 1,
                ch: '\u{202e}',
            },
            TokenizeError::UnicodeWhitespace {
                offset: 1,
                ch: '\u{a0}',
            },
            TokenizeError::Operator { offset: 1, ch: ';' },
            TokenizeError::Expansion { offset: 1, ch: '$' },
            TokenizeError::UnterminatedQuote {
                offset: 1,
                quote: '"',
            },
            TokenizeError::TrailingBackslash { offset: 1 },
            TokenizeError::Comment { offset: 1 },
            TokenizeError::Empty,
        ] {
            let message = error.to_string();
            assert!(!message.is_empty());
            assert!(
                invalid_argv(std::slice::from_ref(&message)).is_none(),
                "{message:?} carries a forbidden character"
            );
        }
    }

    proptest::proptest! {
        /// Whatever the tokeniser accepts passes the argv re-check and survives re-quoting.
        #[test]
        fn accepted_words_are_clean(
            input in proptest::collection::vec(
                proptest::sample::select(vec![
                    b'a', b'-', b' ', b'\t', b'\'', b'"', b'\\', b'$', b'`', b';', b'#', b'*',
                    b'/', b'.', b'\n', 0xc2, 0xa0, 0xe2, 0x80, 0xae, 0xff,
                ]),
                0..40,
            )
        ) {
            if let Ok(words) = tokenize(&input) {
                proptest::prop_assert_eq!(invalid_argv(&words), None);
                proptest::prop_assert_eq!(tokenize(quote(&words).as_bytes()), Ok(words));
            }
        }

        /// A glob without `/` never matches a word containing one.
        #[test]
        fn word_globs_never_cross_slashes(word in "[a-z/.]{0,12}") {
            let list = allow_list(&["cat *a*", "cat ?*?"]);
            if word.contains('/') {
                proptest::prop_assert!(list.check(&owned(&["cat", &word])).is_err());
            }
        }
    }

    #[test]
    fn shown_escapes_invisible_characters() {
        assert_eq!(shown("a\u{7}b"), r#""a\u{7}b""#);
        assert_eq!(shown("a\u{202E}b"), r#""a\u{202e}b""#);
        assert_eq!(shown("a\nb"), r#""a\nb""#);
    }
}
