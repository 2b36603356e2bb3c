//! Wildcard subcommands: a `*` that supplies the subcommand of a subcommand-driven program
//! supplies only subcommands known to be harmless for it.
//!
//! `systemctl * nginx` is meant for `status`, `restart` and their kind, not for `edit` (an
//! editor), `link` (a unit file from any path) or `set-environment`; `git -C /repo *` is meant
//! for reading the repository, not for `help` (a manual in a pager), an alias or `config`. The
//! option guard judges only options, so the subcommand is judged here, against the allow-list
//! of each program in [`shapes`](super::shapes): anything not on it, aliases and plugins
//! included, is refused with a message naming it.
//!
//! Finding the subcommand needs the program's option syntax: words before it that a wildcard
//! supplied must be options known to take no value (otherwise `kubectl -n exec get` would pass
//! `exec` off as a namespace). Subcommands that page their output by default (`git log`,
//! `systemctl status`) are supplied only when the session has no terminal or the pager is
//! turned off (`--no-pager`), because a pager on a terminal has a shell escape.

use super::matcher::RuleWord;
use super::pinning::{Step, Walk, program_of};
use super::shapes::Known;
use super::shown;

/// A rule whose subcommand a wildcard supplies, found when the rule is parsed.
#[derive(Clone)]
pub(super) struct WildSubcommand {
    /// Position of the program in the argv.
    program: usize,
    /// The rule word (0-based) whose wildcard supplies the subcommand.
    word: usize,
    known: &'static Known,
}

impl std::fmt::Debug for WildSubcommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WildSubcommand")
            .field("program", &self.program)
            .field("word", &self.word)
            .field("names", &self.known.shape.names)
            .finish()
    }
}

impl PartialEq for WildSubcommand {
    fn eq(&self, other: &WildSubcommand) -> bool {
        self.program == other.program
            && self.word == other.word
            && std::ptr::eq(self.known, other.known)
    }
}

impl Eq for WildSubcommand {}

impl WildSubcommand {
    /// `Some` when a wildcard in `words` may supply the subcommand of a program the shapes table
    /// knows to be subcommand-driven.
    pub(super) fn of(words: &[RuleWord]) -> Option<WildSubcommand> {
        let (program, known) = program_of(words)?;
        known.shape.subcommands.as_ref()?;
        let mut walk = Walk::new(known);
        for (i, word) in words.iter().enumerate().skip(program + 1) {
            let RuleWord::Literal(text) = word else {
                if walk.value_next {
                    walk.step("*", true);
                    continue;
                }
                // A wildcard before the subcommand has been read may supply it (or options
                // before it, which the check reads at run time).
                return (!walk.subcommand_read).then_some(WildSubcommand {
                    program,
                    word: i,
                    known,
                });
            };
            match walk.step(text, false) {
                Step::Subcommand => return None,
                // An option the table does not know may take the next literal word as its
                // value, so that word cannot be trusted to be the subcommand: the wildcard
                // after it may be. Checked strictly from here.
                Step::Option if !known.shape.flags.contains(&text.as_str()) && !walk.value_next => {
                    if !known.attached_value(text)
                        && let Some(next) = words.get(i + 1)
                        && matches!(next, RuleWord::Literal(n) if !n.starts_with('-'))
                    {
                        walk.value_next = true;
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// The subcommands the wildcard admits, for `gatehouse check`: paging ones only when `pty`
    /// is false or the rule turns the pager off.
    pub(super) fn admitted(&self, words: &[RuleWord], pty: bool) -> Vec<&'static str> {
        let Some(sub) = &self.known.shape.subcommands else {
            return Vec::new();
        };
        let no_pager = words
            .iter()
            .any(|w| matches!(w, RuleWord::Literal(t) if sub.no_pager.contains(&t.as_str())));
        sub.harmless
            .iter()
            .copied()
            .filter(|s| !pty || no_pager || !sub.paging.contains(s))
            .collect()
    }

    /// The rule word (1-based) whose wildcard supplies the subcommand, for messages.
    pub(super) fn word(&self) -> usize {
        self.word + 1
    }

    /// Why `argv` is refused, if it is: its subcommand came from a wildcard and is not harmless,
    /// or cannot be found for certain. `placeholder(i)` says whether word `i` came from a
    /// wildcard; `pty` whether the command runs on a terminal.
    pub(super) fn check(
        &self,
        argv: &[String],
        placeholder: impl Fn(usize) -> bool,
        pty: bool,
    ) -> Option<String> {
        let known = self.known;
        let sub = known.shape.subcommands.as_ref()?;
        let program = argv.get(self.program).map_or("", String::as_str);
        let name = super::option_guard::candidates(program)
            .next()
            .unwrap_or(program);
        let mut walk = Walk::new(known);
        // A `--no-pager` anywhere before a `--`: systemctl reads it anywhere, and git refuses
        // one after its subcommand rather than paging.
        let no_pager = argv
            .iter()
            .skip(self.program + 1)
            .take_while(|w| *w != "--")
            .any(|w| sub.no_pager.contains(&w.as_str()));
        let mut maybe_value = false;
        for (i, word) in argv.iter().enumerate().skip(self.program + 1) {
            let from_wildcard = placeholder(i);
            match walk.step(word, false) {
                Step::Option | Step::EndOfOptions => {
                    maybe_value = false;
                    if known.shape.flags.contains(&word.as_str()) {
                        continue;
                    }
                    if from_wildcard {
                        return Some(format!(
                            "option {} before the {name} subcommand is not accepted from a \
                             wildcard; put it after the subcommand",
                            shown(word)
                        ));
                    }
                    // A literal option the table does not know: its value may be the next
                    // literal word.
                    maybe_value = !walk.value_next && !known.attached_value(word);
                }
                Step::Value | Step::LeadingOperand => maybe_value = false,
                Step::Subcommand if !from_wildcard && maybe_value => {
                    // Perhaps the value of the unknown option before it: read on.
                    maybe_value = false;
                    walk.subcommand_read = false;
                }
                Step::Subcommand if !from_wildcard => return None,
                Step::Subcommand => {
                    if !sub.harmless.contains(&word.as_str()) {
                        return Some(format!(
                            "subcommand {} of {name} is not one a wildcard may supply (it \
                             supplies only {}); a rule must name it",
                            shown(word),
                            sub.harmless.join(", ")
                        ));
                    }
                    if pty && !no_pager && sub.paging.contains(&word.as_str()) {
                        return Some(format!(
                            "subcommand {} of {name} shows a pager on a terminal, and a pager \
                             has a shell escape; a wildcard supplies it only with {}",
                            shown(word),
                            sub.no_pager.join(" or ")
                        ));
                    }
                    return None;
                }
                Step::Operand => return None,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
