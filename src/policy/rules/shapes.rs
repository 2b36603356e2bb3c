//! What the rules know about the command lines of well-known programs, beyond dangerous options:
//! which options scope a command (and so stay pinned once a rule fixes them), which subcommands
//! a wildcard may supply, and enough of each program's option syntax to find its subcommand and
//! its operands.
//!
//! The knowledge is data, in [`table`]: one [`Shape`] per program. The checks that use it live in
//! [`pinning`](super::pinning) (pinned scopes) and [`subcommand`](super::subcommand) (wildcard
//! subcommands). Spellings follow the option guard's syntax (`-x`, `--name`, `-name`) and are
//! recognised in every form the guard recognises (attached values, bundles, abbreviations).

use std::sync::LazyLock;

use super::option_guard::{Spellings, candidates};

mod table;

/// One program's command-line shape.
pub(super) struct Shape {
    /// The program names it covers (basenames; versioned names fall back to their stem).
    pub(super) names: &'static [&'static str],
    /// Options known to take no value: the only options a wildcard may put before a subcommand
    /// it supplies. Matched exactly.
    pub(super) flags: &'static [&'static str],
    /// Options that always take a value, in the next word unless attached (`-n web`,
    /// `--namespace=web`). Matched exactly; list only options whose value is required, since a
    /// word taken for a value is not checked as an operand.
    pub(super) with_value: &'static [&'static str],
    /// Options whose value is optional and, when given as the next word, is taken only if it
    /// looks like a number or an id (journalctl's `-n 50`, `-b -1`).
    pub(super) numeric_value: &'static [&'static str],
    /// The subcommands, for programs driven by one.
    pub(super) subcommands: Option<Subcommands>,
    /// The options that scope the command, grouped by what they scope.
    pub(super) scopes: &'static [Scope],
    /// Options that step outside every scope (another configuration, server, directory or
    /// machine): refused in wildcard words whenever the rule pins any scope.
    pub(super) escapes: &'static [&'static str],
}

/// How a subcommand-driven program's subcommand is found, and which ones a wildcard may supply.
pub(super) struct Subcommands {
    /// Operands that come before the subcommand (`service NAME COMMAND` has one).
    pub(super) leading_operands: usize,
    /// Subcommands known to be harmless: they read state or run the service lifecycle, and
    /// start no editor, shell, hook or configuration change.
    pub(super) harmless: &'static [&'static str],
    /// The harmless subcommands that show their output in a pager when the session has a
    /// terminal; a wildcard supplies them only without one, or with the pager turned off.
    pub(super) paging: &'static [&'static str],
    /// Options that turn the pager off (`--no-pager`).
    pub(super) no_pager: &'static [&'static str],
}

/// One thing a command can be scoped to (a namespace, a unit, a repository, a daemon).
pub(super) struct Scope {
    /// What is scoped, for messages ("namespace").
    pub(super) what: &'static str,
    /// Options that set it. A rule whose literal words give one (with a literal value) pins the
    /// scope; wildcard words may then not give any of them again.
    pub(super) set_by: &'static [&'static str],
    /// Whether the scope is given by operands (systemctl's units, journalctl's matches): a
    /// literal operand pins it, and wildcard words may then add no operand at all.
    pub(super) operands: bool,
    /// Options that widen a pinned scope without setting it (`-A` for all namespaces).
    pub(super) widened_by: &'static [&'static str],
}

/// A [`Shape`] with its spellings ready for matching.
pub(super) struct Known {
    /// The table's data.
    pub(super) shape: &'static Shape,
    /// Per scope: the spellings that set it, and those that widen it.
    pub(super) scopes: Vec<(Spellings, Spellings)>,
    /// The escaping options.
    pub(super) escapes: Spellings,
}

impl Known {
    /// Whether `word` is exactly an option that takes the next word as its value.
    pub(super) fn takes_value(&self, word: &str) -> bool {
        self.shape.with_value.contains(&word)
    }

    /// Whether `word` is exactly an option whose value, if numeric, may be the next word.
    pub(super) fn takes_numeric(&self, word: &str) -> bool {
        self.shape.numeric_value.contains(&word)
    }

    /// Whether `word` gives an option that takes a value in the same word (`--git-dir=x`,
    /// `-C/repo`), so the next word is not its value.
    pub(super) fn attached_value(&self, word: &str) -> bool {
        self.shape.with_value.iter().any(|spelling| {
            if spelling.starts_with("--") {
                word.strip_prefix(spelling)
                    .is_some_and(|rest| rest.starts_with('='))
            } else {
                word.len() > spelling.len() && word.starts_with(spelling)
            }
        })
    }
}

/// Whether `word` may be the value of an option with a numeric value (`50`, `-1`, `+3`, a boot
/// id): digits and hex letters, optionally signed, nothing else.
pub(super) fn numeric(word: &str) -> bool {
    let digits = word.strip_prefix(['+', '-']).unwrap_or(word);
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_hexdigit())
}

static KNOWN: LazyLock<Vec<Known>> = LazyLock::new(|| {
    table::SHAPES
        .iter()
        .map(|shape| Known {
            shape,
            scopes: shape
                .scopes
                .iter()
                .map(|s| (Spellings::new(s.set_by), Spellings::new(s.widened_by)))
                .collect(),
            escapes: Spellings::new(shape.escapes),
        })
        .collect()
});

/// What the table knows about the command word `word` (a name or a path), if anything.
pub(super) fn lookup(word: &str) -> Option<&'static Known> {
    let known: &'static [Known] = &KNOWN;
    candidates(word).find_map(|name| known.iter().find(|k| k.shape.names.contains(&name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_well_formed() {
        for known in KNOWN.iter() {
            let shape = known.shape;
            if let Some(sub) = &shape.subcommands {
                for paging in sub.paging {
                    assert!(sub.harmless.contains(paging), "{paging}");
                }
            }
            for flag in shape.flags {
                assert!(!shape.with_value.contains(flag), "{flag}");
                assert!(
                    known.escapes.find(flag, false).is_none(),
                    "{:?}: flag {flag} escapes",
                    shape.names
                );
            }
            for spelling in shape
                .flags
                .iter()
                .chain(shape.with_value)
                .chain(shape.numeric_value)
            {
                assert!(spelling.starts_with('-'), "{spelling}");
            }
        }
        assert!(lookup("/usr/bin/kubectl").is_some());
        assert!(lookup("systemctl").is_some());
        assert!(lookup("ls").is_none());
    }

    #[test]
    fn numeric_values() {
        for word in ["50", "-1", "+3", "0", "b7ce0d5e6b9e4d0a8f1f3c2d4e5f6a7b"] {
            assert!(numeric(word), "{word}");
        }
        for word in ["", "+", "-", "_PID=1", "today", "1.5", "all"] {
            assert!(!numeric(word), "{word}");
        }
    }
}
