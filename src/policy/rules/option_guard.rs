//! The option guard: dangerous options refused even where a rule has a placeholder.
//!
//! A rule such as `"journalctl -u nginx *"` is meant to let users add harmless flags, not to hand
//! them every option the program has. Many common programs have options that escape to a shell,
//! write arbitrary files, load configuration that runs commands or reach another host (`GTFOBins`
//! catalogues them). The guard keeps a table of such options per program and refuses any word
//! matched by a placeholder that spells one of them, in every form a typical parser accepts.
//! Words written literally in a rule are never checked: the policy author chose them.
//!
//! The guard is a second line of defence, not a parser of each program's command line. When in
//! doubt it refuses: an attached value that happens to contain a denied letter (`ssh -lroot`
//! contains `o`) is refused, because telling a bundle from an attached value needs per-program
//! knowledge that, if wrong, would let a real option through. Such words can always be written
//! as separate words or named literally in a rule.
//!
//! Only options are guarded here. Subcommands (`systemctl edit`, `kubectl exec`, `git config`)
//! are judged by the wildcard-subcommand check (`subcommand`), options that scope a command by
//! the pinned-scope check (`pinning`), and rules that let users supply program text
//! (`awk 'BEGIN{system("sh")}'`, sed's `e` command) are refused at load by
//! [`hands_over`](fn@super::hands_over).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{RuleError, shown};

mod table;

pub(super) use table::WRAPPERS;
use table::builtin_rows;

/// Why a table entry is dangerous, shown to the user in the denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// Pager or editor commands, which can reach a shell.
    Escape,
    /// Runs a command line.
    Shell,
    /// Runs code in an interpreter.
    Code,
    /// Loads settings that can run commands.
    Config,
    /// Writes or deletes files.
    Writes,
    /// Reads files the rule did not name, or sends them away.
    Reads,
    /// Reaches another host or forwards connections.
    Remote,
    /// Changes the user, group or credentials.
    Identity,
    /// Widens what a container or debugger can reach on the host.
    Host,
    /// Changes the state of the system.
    State,
    /// Added by a policy's `deny_options`.
    Policy,
}

impl Why {
    fn text(self) -> &'static str {
        match self {
            Why::Escape => "pager or editor escape",
            Why::Shell => "runs commands",
            Why::Code => "runs code",
            Why::Config => "loads settings that can run commands",
            Why::Writes => "writes files",
            Why::Reads => "reads or sends arbitrary files",
            Why::Remote => "reaches other hosts",
            Why::Identity => "changes identity or credentials",
            Why::Host => "widens access to the host",
            Why::State => "changes system state",
            Why::Policy => "denied by policy",
        }
    }
}

/// How a denied spelling is recognised in a word.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Form {
    /// `-x`: found alone, with an attached value (`-xvalue`, `-x=value`) or inside a bundle of
    /// short flags (`-vxf`).
    Short(char),
    /// `--name` (stored without the dashes): found as `--name`, `--name=value`, and as any
    /// non-empty prefix `--na`, because GNU `getopt_long` accepts unique abbreviations and it is
    /// safer to refuse an ambiguous one than to work out which are unique.
    Long(String),
    /// `-name` with one dash (find's `-exec`, gdb's `-ex`; stored without the dash): found as
    /// `-name`, `-name=value`, and as a prefix of two characters or more (`getopt_long_only`
    /// abbreviations). One-letter words are left to [`Form::Short`], so that find's `-o` stays
    /// usable next to a denied `-ok`.
    DashLong(String),
    /// `+`: any word starting with `+`, which pagers and editors run as a command on start-up.
    Plus,
    /// `name=` (stored with the `=`): any word starting with it. For programs whose dangerous
    /// arguments are operands rather than options, such as dd's `of=`. Applies even after `--`.
    Operand(String),
}

impl Form {
    /// Parses a spelling from the table or from a policy's `deny_options`.
    fn parse(spelling: &str) -> Result<Form, &'static str> {
        if spelling == "+" {
            return Ok(Form::Plus);
        }
        if let Some(name) = spelling.strip_prefix("--") {
            return if valid_name(name) {
                Ok(Form::Long(name.to_owned()))
            } else {
                Err("must be --name with letters, digits, '-', '_' or '.'")
            };
        }
        if let Some(rest) = spelling.strip_prefix('-') {
            let mut chars = rest.chars();
            return match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_graphic() && c != '-' && c != '=' => {
                    Ok(Form::Short(c))
                }
                (Some(_), Some(_)) if valid_name(rest) => Ok(Form::DashLong(rest.to_owned())),
                _ => Err("must be -x (one character) or -name"),
            };
        }
        if let Some(name) = spelling.strip_suffix('=') {
            return if valid_name(name) {
                Ok(Form::Operand(spelling.to_owned()))
            } else {
                Err("an operand prefix must be name= with letters, digits, '-', '_' or '.'")
            };
        }
        Err("must look like -x, --name, -name, + or name=")
    }
}

/// Whether `name` is a plausible option or operand name.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// One denied spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Denied {
    spelling: String,
    form: Form,
    why: Why,
}

/// The guard's knowledge of one program.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Program {
    /// Whether a `--` word ends this program's options, making later words operands. True for
    /// getopt-style programs; false for find, whose expression follows its paths whatever comes
    /// before.
    double_dash_ends_options: bool,
    /// Whether the first argument is a bundle of short options even without a dash (`tar xvf`).
    bare_first_word_is_options: bool,
    denied: Vec<Denied>,
}

impl Program {
    fn new() -> Program {
        Program {
            double_dash_ends_options: true,
            bare_first_word_is_options: false,
            denied: Vec::new(),
        }
    }

    /// The entry `word` spells, if any.
    fn find(&self, word: &str, first_argument: bool, after_double_dash: bool) -> Option<&Denied> {
        let operand = self.denied.iter().find(
            |d| matches!(&d.form, Form::Operand(prefix) if word.starts_with(prefix.as_str())),
        );
        if operand.is_some() || after_double_dash {
            return operand;
        }
        if let Some(rest) = word.strip_prefix("--") {
            let name = rest.split('=').next().unwrap_or(rest);
            if name.is_empty() {
                return None;
            }
            return self
                .denied
                .iter()
                .find(|d| matches!(&d.form, Form::Long(long) if long.starts_with(name)));
        }
        if let Some(rest) = word.strip_prefix('-') {
            let name = rest.split('=').next().unwrap_or(rest);
            let long_enough = name.chars().nth(1).is_some();
            let dash_long = self.denied.iter().find(|d| {
                matches!(&d.form, Form::DashLong(long)
                    if long == name || (long_enough && long.starts_with(name)))
            });
            // Pagers read a `+command` even inside a bundle of short flags (`-N+!sh`).
            let bundled_plus = (!rest.starts_with('-') && rest.contains('+'))
                .then(|| self.denied.iter().find(|d| d.form == Form::Plus))
                .flatten();
            return dash_long.or_else(|| self.short_in(rest)).or(bundled_plus);
        }
        if word.starts_with('+')
            && let Some(plus) = self.denied.iter().find(|d| d.form == Form::Plus)
        {
            return Some(plus);
        }
        if first_argument && self.bare_first_word_is_options {
            return self.short_in(word);
        }
        None
    }

    /// The first denied short option among `letters`, read as a bundle.
    fn short_in(&self, letters: &str) -> Option<&Denied> {
        letters
            .chars()
            .find_map(|c| self.denied.iter().find(|d| d.form == Form::Short(c)))
    }
}

/// A list of option spellings, recognised in a word the way the guard recognises denied options:
/// every form a typical parser accepts (alone, with an attached value, in a bundle of short
/// flags, as a GNU-style abbreviation).
///
/// Used by the rule checks that need "does this word give option X" without the guard's notion
/// of danger: the options that scope a command, and those that may precede a subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Spellings(Program);

impl Spellings {
    /// The spellings of a built-in table (`-x`, `--name`, `-name`, `+` or `name=`).
    ///
    /// # Panics
    ///
    /// If a spelling is malformed, which the tables' unit tests rule out.
    pub(super) fn new(spellings: &[&str]) -> Spellings {
        let mut program = Program::new();
        for spelling in spellings {
            let form = Form::parse(spelling)
                .unwrap_or_else(|e| panic!("built-in spelling {spelling:?}: {e}"));
            program.denied.push(Denied {
                spelling: (*spelling).to_owned(),
                form,
                why: Why::Policy,
            });
        }
        Spellings(program)
    }

    /// The spelling `word` gives, if any. After a `--` that ended the options only operand
    /// spellings (`name=`) are recognised.
    pub(super) fn find(&self, word: &str, after_double_dash: bool) -> Option<&str> {
        self.0
            .find(word, false, after_double_dash)
            .map(|d| d.spelling.as_str())
    }
}

/// Whether `word`, which gives the option `spelling`, carries its value in the same word
/// (`--namespace=web`, `-nweb`) rather than in the next one (`-n web`).
pub(super) fn value_attached(word: &str, spelling: &str) -> bool {
    if spelling.starts_with("--") || spelling.chars().count() > 2 {
        return word.contains('=');
    }
    let Some(letter) = spelling.chars().nth(1) else {
        return false;
    };
    // In a bundle, the letters after the option's own are its value.
    match word.get(1..).and_then(|rest| rest.find(letter)) {
        Some(at) => at + 1 + letter.len_utf8() < word.len(),
        None => false,
    }
}

/// Refuses dangerous options of well-known programs in words that a rule placeholder matched.
///
/// The table is keyed on the basename of the command word, so `/usr/bin/find` is guarded like
/// `find`; versioned and suffixed names fall back to their stem (`python3.12` → `python3`,
/// `python`; `vim.basic` → `vim`). When the command word is a wrapper that runs another program
/// (`sudo`, `env`, `timeout`, `ssh`, `docker`, …), the tables of programs named after it apply
/// too, so `sudo less +!sh` is refused like `less +!sh`.
///
/// A `--` ends a program's options only when it cannot be the value of the option before it
/// (`tar -C -- --to-command=sh` does not end tar's options), and never for programs that parse
/// past it: find, whose expression follows its paths, and those not known to honour it (zip,
/// more, emacs, gdb). Operand entries such as dd's `of=` apply after `--` too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionGuard {
    programs: BTreeMap<String, Program>,
}

impl OptionGuard {
    /// The built-in table (see the source for the full list). Every policy starts from it; there
    /// is no way to remove entries, only to add them with [`OptionGuard::with_extra`].
    ///
    /// # Panics
    ///
    /// If an entry of the built-in table is misspelt, which a unit test rules out.
    #[must_use]
    pub fn builtin() -> OptionGuard {
        let mut programs = BTreeMap::new();
        for row in builtin_rows() {
            for name in row.names {
                let program = programs
                    .entry((*name).to_owned())
                    .or_insert_with(Program::new);
                program.double_dash_ends_options = row.double_dash_ends_options;
                program.bare_first_word_is_options = row.bare_first_word_is_options;
                for (why, spellings) in row.denied {
                    for spelling in *spellings {
                        let form = Form::parse(spelling)
                            .unwrap_or_else(|e| panic!("built-in entry {spelling:?}: {e}"));
                        program.denied.push(Denied {
                            spelling: (*spelling).to_owned(),
                            form,
                            why: *why,
                        });
                    }
                }
            }
        }
        OptionGuard { programs }
    }

    /// Adds a policy's `deny_options` (program → options such as `["-o", "--output"]`).
    ///
    /// Spellings are validated rather than taken on trust, because a typo (`"-output"` for
    /// `"--output"`) would silently guard nothing: each must be `-x`, `--name`, `-name`, `+` or
    /// `name=` (see the module documentation for how each form matches). Program names are
    /// basenames such as `myctl`, since the table is keyed on the command word's basename.
    ///
    /// # Errors
    ///
    /// [`RuleError::BadProgram`] or [`RuleError::BadOption`] for the first entry that is not
    /// usable; the guard is then not built at all.
    pub fn with_extra(
        mut self,
        extra: &BTreeMap<String, Vec<String>>,
    ) -> Result<OptionGuard, RuleError> {
        for (name, spellings) in extra {
            if let Err(reason) = check_program_name(name) {
                return Err(RuleError::BadProgram {
                    program: name.clone(),
                    reason,
                });
            }
            let mut denied = Vec::with_capacity(spellings.len());
            for spelling in spellings {
                let form = Form::parse(spelling).map_err(|reason| RuleError::BadOption {
                    program: name.clone(),
                    option: spelling.clone(),
                    reason,
                })?;
                denied.push(Denied {
                    spelling: spelling.clone(),
                    form,
                    why: Why::Policy,
                });
            }
            self.programs
                .entry(name.clone())
                .or_insert_with(Program::new)
                .denied
                .extend(denied);
        }
        Ok(self)
    }

    /// Whether any table applies to the command word `program` (a name or a path). Lets a policy
    /// loader tell authors which of their rules the guard knows about.
    #[must_use]
    pub fn guards(&self, program: &str) -> bool {
        !self.tables_for(program).is_empty()
    }

    /// Why the word at `argv[index]` is refused, if it is; `index` is of a word matched by a
    /// placeholder.
    ///
    /// `argv[0]` is never refused (rules name it literally), and an index past the end has no
    /// word to refuse. The reason names the option, the program and the kind of danger, with
    /// the word escaped so that it cannot carry control characters to a terminal.
    #[must_use]
    pub fn check(&self, argv: &[String], index: usize) -> Option<String> {
        if index == 0 {
            return None;
        }
        let word = argv.get(index)?;
        let wrapper = candidates(&argv[0]).any(|name| WRAPPERS.contains(&name));
        let positions = std::iter::once(0).chain((1..index).filter(|_| wrapper));
        for position in positions {
            for (name, program) in self.tables_for(&argv[position]) {
                let after_double_dash =
                    program.double_dash_ends_options && options_ended(argv, position, index);
                if let Some(hit) = program.find(word, index == position + 1, after_double_dash) {
                    return Some(describe(name, hit, word, index));
                }
            }
        }
        None
    }

    /// The tables that apply to a command word, under each name it may go by.
    fn tables_for<'a>(&'a self, word: &str) -> Vec<(&'a str, &'a Program)> {
        let mut found: Vec<(&str, &Program)> = Vec::new();
        for name in candidates(word) {
            if let Some((key, program)) = self.programs.get_key_value(name)
                && !found.iter().any(|(seen, _)| *seen == key.as_str())
            {
                found.push((key.as_str(), program));
            }
        }
        found
    }
}

/// The part of a command word after its last `/`.
pub(super) fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// Names a command word may be known by: its basename, the basename before its first `.`, and
/// each of those without trailing version digits (`python3.12` → `python3.12`, `python3`,
/// `python`).
pub(super) fn candidates(word: &str) -> impl Iterator<Item = &str> {
    let base = basename(word);
    let stem = base.split('.').next().unwrap_or(base);
    [base, stem, unversioned(base), unversioned(stem)]
        .into_iter()
        .filter(|name| !name.is_empty())
}

/// `name` without trailing version digits and dots.
fn unversioned(name: &str) -> &str {
    name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.')
}

/// Whether the built-in table has an entry for the command word `word`, without building it.
pub(super) fn in_builtin_table(word: &str) -> bool {
    candidates(word).any(|name| builtin_rows().any(|row| row.names.contains(&name)))
}

/// Whether a genuine `--` between the program at `position` and the word at `index` ended the
/// program's options. A `--` right after an option word may be that option's value
/// (`tar -C -- --to-command=sh`), so it only counts when the word before it is not an option.
fn options_ended(argv: &[String], position: usize, index: usize) -> bool {
    (position + 1..index)
        .any(|j| argv[j] == "--" && (j == position + 1 || !looks_like_option(&argv[j - 1])))
}

/// Whether `word` has the shape of an option: a dash and at least one more character.
pub(super) fn looks_like_option(word: &str) -> bool {
    word.len() > 1 && word.starts_with('-')
}

/// The denial message for one hit.
fn describe(program: &str, hit: &Denied, word: &str, index: usize) -> String {
    let what = match &hit.form {
        Form::Plus => "a \"+command\" argument".to_owned(),
        Form::Operand(prefix) => format!("operand \"{prefix}…\""),
        _ => format!("option \"{}\"", hit.spelling),
    };
    let mut message = format!("{what} of {program} is not allowed ({})", hit.why.text());
    if word != hit.spelling {
        let _ = write!(message, "; word {} is {}", index + 1, shown(word));
    }
    message
}

/// Refuses program names that could never match a command word's basename.
fn check_program_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 64 {
        Err("must be 1 to 64 characters long")
    } else if name.contains('/') {
        Err("must be a program name without a directory (the guard matches basenames)")
    } else if name == "." || name == ".." || name.starts_with('-') {
        Err("is not a program name")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
    {
        Err("may contain only letters, digits, '.', '_', '-' and '+'")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
