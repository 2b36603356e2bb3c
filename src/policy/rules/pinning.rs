//! Pinned scopes: what a rule's literal words fix, the words of its wildcards may not change.
//!
//! `kubectl describe pod -n web *` is meant for the `web` namespace. The guard alone would let
//! the trailing `*` add `--namespace=kube-system`, `-A` or `--kubeconfig /tmp/k`, each of which
//! reads the rule more widely than it is written. When a rule's literal words give an option
//! that scopes the command (with a literal value), or a literal operand of a program whose
//! operands are its scope (systemctl's units, journalctl's matches), the scope is *pinned*: a
//! word that a wildcard supplied may then not
//!
//! - give an option that sets the same scope, in any spelling the guard recognises;
//! - give an option that widens it (`-A`), or, for operand scopes, add an operand (another
//!   unit, a match such as `_PID=1`, a `+` between alternatives);
//! - give an option that steps outside every scope of the program (another kubeconfig, context
//!   or server, another git directory, another journal or machine).
//!
//! What scopes each program is data, in [`shapes`](super::shapes).

use super::matcher::RuleWord;
use super::option_guard::{WRAPPERS, candidates, looks_like_option, value_attached};
use super::shapes::{Known, lookup, numeric};
use super::shown;

/// The scopes one rule pins, found when the rule is parsed.
#[derive(Clone)]
pub(super) struct Pins {
    /// Position of the program in the argv (after a wrapper such as `sudo`, later than 0).
    program: usize,
    known: &'static Known,
    /// Indexes into the program's scopes, with the rule word that pins each, for messages.
    pinned: Vec<(usize, String)>,
}

impl std::fmt::Debug for Pins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pins")
            .field("program", &self.program)
            .field("names", &self.known.shape.names)
            .field("pinned", &self.pinned)
            .finish()
    }
}

impl PartialEq for Pins {
    fn eq(&self, other: &Pins) -> bool {
        self.program == other.program
            && std::ptr::eq(self.known, other.known)
            && self.pinned == other.pinned
    }
}

impl Eq for Pins {}

/// Where the program of a rule is: the command word, or for a wrapper (`sudo`, `timeout`) the
/// first later literal word that names a program the shapes table knows.
pub(super) fn program_of(words: &[RuleWord]) -> Option<(usize, &'static Known)> {
    let RuleWord::Literal(first) = words.first()? else {
        return None;
    };
    if let Some(known) = lookup(first) {
        return Some((0, known));
    }
    if !candidates(first).any(|name| WRAPPERS.contains(&name)) {
        return None;
    }
    words
        .iter()
        .enumerate()
        .skip(1)
        .find_map(|(i, word)| match word {
            RuleWord::Literal(text) => lookup(text).map(|known| (i, known)),
            _ => None,
        })
}

impl Pins {
    /// The scopes the literal words of `words` pin; `None` when they pin none.
    pub(super) fn of(words: &[RuleWord]) -> Option<Pins> {
        let (program, known) = program_of(words)?;
        let shape = known.shape;
        let mut pinned: Vec<(usize, String)> = Vec::new();
        let mut pin = |scope: usize, by: String| {
            if !pinned.iter().any(|(s, _)| *s == scope) {
                pinned.push((scope, by));
            }
        };
        let mut walk = Walk::new(known);
        for i in program + 1..words.len() {
            let literal = match &words[i] {
                RuleWord::Literal(text) => Some(text.as_str()),
                RuleWord::Rest => break,
                _ => None,
            };
            match walk.step(literal.unwrap_or("*"), literal.is_none()) {
                Step::Option if literal.is_some() => {
                    let word = literal.unwrap_or_default();
                    for (scope, (set_by, _)) in known.scopes.iter().enumerate() {
                        let Some(spelling) = set_by.find(word, false) else {
                            continue;
                        };
                        if value_attached(word, spelling) {
                            pin(scope, shown(word));
                        } else if let Some(RuleWord::Literal(value)) = words.get(i + 1) {
                            pin(scope, shown(&format!("{word} {value}")));
                            walk.value_next = true;
                        }
                    }
                }
                Step::Operand if literal.is_some() => {
                    for (scope, data) in shape.scopes.iter().enumerate() {
                        if data.operands {
                            pin(scope, shown(literal.unwrap_or_default()));
                        }
                    }
                }
                _ => {}
            }
        }
        (!pinned.is_empty()).then_some(Pins {
            program,
            known,
            pinned,
        })
    }

    /// What the rule pins, as phrases such as `namespace ("-n web")`, for `gatehouse check`.
    pub(super) fn describe(&self) -> Vec<String> {
        self.pinned
            .iter()
            .map(|(scope, by)| format!("{} ({by})", self.known.shape.scopes[*scope].what))
            .collect()
    }

    /// Why `argv` widens a pinned scope, if it does; `placeholder(i)` says whether word `i` was
    /// supplied by a wildcard (only those are checked: the rule's own words are trusted).
    pub(super) fn check(
        &self,
        argv: &[String],
        placeholder: impl Fn(usize) -> bool,
    ) -> Option<String> {
        let known = self.known;
        let program = argv.get(self.program).map_or("", String::as_str);
        let name = candidates(program).next().unwrap_or(program);
        let operands_pinned = self
            .pinned
            .iter()
            .find(|(scope, _)| known.shape.scopes[*scope].operands);
        let mut walk = Walk::new(known);
        for (i, word) in argv.iter().enumerate().skip(self.program + 1) {
            let from_wildcard = placeholder(i);
            let ended = walk.ended;
            match walk.step(word, false) {
                Step::Option if from_wildcard => {
                    for (scope, by) in &self.pinned {
                        let (set_by, widened_by) = &known.scopes[*scope];
                        let what = known.shape.scopes[*scope].what;
                        if let Some(spelling) = set_by.find(word, ended) {
                            return Some(format!(
                                "option \"{spelling}\" of {name} would give the {what} again, \
                                 which the rule pins with {by}; word {} is {}",
                                i + 1,
                                shown(word)
                            ));
                        }
                        if let Some(spelling) = widened_by.find(word, ended) {
                            return Some(format!(
                                "option \"{spelling}\" of {name} would widen the {what}, which \
                                 the rule pins with {by}; word {} is {}",
                                i + 1,
                                shown(word)
                            ));
                        }
                    }
                    if let Some(spelling) = known.escapes.find(word, ended) {
                        let (scope, by) = &self.pinned[0];
                        return Some(format!(
                            "option \"{spelling}\" of {name} would step outside the {}, which \
                             the rule pins with {by}; word {} is {}",
                            known.shape.scopes[*scope].what,
                            i + 1,
                            shown(word)
                        ));
                    }
                }
                Step::Operand if from_wildcard => {
                    if let Some((scope, by)) = operands_pinned {
                        return Some(format!(
                            "word {} {} would add another {} to the one the rule pins with {by}",
                            i + 1,
                            shown(word),
                            known.shape.scopes[*scope].what
                        ));
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// What one word of a command line is to the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// An option (or a bundle of them).
    Option,
    /// The value of the option before it.
    Value,
    /// The `--` that ends the options.
    EndOfOptions,
    /// An operand that comes before the subcommand (`service NAME …`).
    LeadingOperand,
    /// The subcommand.
    Subcommand,
    /// Any other operand.
    Operand,
}

/// Reads a command line word by word, as the program would, with what the shapes table knows of
/// its options. An option the table does not know is taken to have its value attached, so the
/// next word is read as an operand: that is the reading under which a wildcard word is checked
/// most strictly.
pub(super) struct Walk<'a> {
    known: &'a Known,
    /// The next word is the value of the option before it.
    pub(super) value_next: bool,
    /// The next word is the value of the option before it if it is numeric.
    numeric_next: bool,
    /// A `--` ended the options.
    pub(super) ended: bool,
    /// Operands still to come before the subcommand.
    leading: usize,
    /// Whether the subcommand has been read (or the program has none).
    pub(super) subcommand_read: bool,
}

impl<'a> Walk<'a> {
    /// A reader at the first word after the program.
    pub(super) fn new(known: &'a Known) -> Walk<'a> {
        let subcommands = known.shape.subcommands.as_ref();
        Walk {
            known,
            value_next: false,
            numeric_next: false,
            ended: false,
            leading: subcommands.map_or(0, |s| s.leading_operands),
            subcommand_read: subcommands.is_none(),
        }
    }

    /// Reads the next word. A `wildcard` word (a rule placeholder, when reading a rule) is read
    /// as an operand unless it is an option's value.
    pub(super) fn step(&mut self, word: &str, wildcard: bool) -> Step {
        if std::mem::take(&mut self.value_next) {
            self.numeric_next = false;
            return Step::Value;
        }
        if std::mem::take(&mut self.numeric_next) && !wildcard && numeric(word) {
            return Step::Value;
        }
        if !self.ended && !wildcard && looks_like_option(word) {
            if word == "--" {
                self.ended = true;
                return Step::EndOfOptions;
            }
            self.value_next = self.known.takes_value(word);
            self.numeric_next = self.known.takes_numeric(word);
            return Step::Option;
        }
        if self.leading > 0 {
            self.leading -= 1;
            return Step::LeadingOperand;
        }
        if !self.subcommand_read {
            self.subcommand_read = true;
            return Step::Subcommand;
        }
        Step::Operand
    }
}

#[cfg(test)]
mod tests;
