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
//! Only options are guarded. Subcommands (`systemctl edit`, `kubectl exec`, `git config`,
//! `docker run`) and program text (`awk 'BEGIN{system("sh")}'`, sed's `e` and `w` commands,
//! `python script.py`) are operands that no option table can judge; rules must name subcommands
//! literally, and [`lint`](fn@super::lint) warns about rules that let users supply program text.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{RuleError, shown};

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
        for row in BUILTIN {
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
    candidates(word).any(|name| BUILTIN.iter().any(|row| row.names.contains(&name)))
}

/// Whether a genuine `--` between the program at `position` and the word at `index` ended the
/// program's options. A `--` right after an option word may be that option's value
/// (`tar -C -- --to-command=sh`), so it only counts when the word before it is not an option.
fn options_ended(argv: &[String], position: usize, index: usize) -> bool {
    (position + 1..index)
        .any(|j| argv[j] == "--" && (j == position + 1 || !looks_like_option(&argv[j - 1])))
}

fn looks_like_option(word: &str) -> bool {
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

/// Programs that run another program named in their arguments. When one of them is the command
/// word, the guard also applies the tables of the programs named after it; lint warns about
/// placeholders that let users choose what they run.
pub(super) const WRAPPERS: &[&str] = &[
    "sudo",
    "doas",
    "su",
    "runuser",
    "setpriv",
    "env",
    "nice",
    "ionice",
    "nohup",
    "timeout",
    "stdbuf",
    "setsid",
    "taskset",
    "chrt",
    "chroot",
    "flock",
    "unshare",
    "nsenter",
    "xargs",
    "watch",
    "time",
    "strace",
    "ltrace",
    "busybox",
    "command",
    "exec",
    "script",
    "systemd-run",
    "firejail",
    "bwrap",
    "ssh",
    "docker",
    "podman",
    "nerdctl",
    "kubectl",
];

/// One row of the built-in table.
struct Row {
    names: &'static [&'static str],
    double_dash_ends_options: bool,
    bare_first_word_is_options: bool,
    denied: &'static [(Why, &'static [&'static str])],
}

impl Row {
    /// For programs that do not reliably treat `--` as the end of their options (or, like find,
    /// parse their expression after it): every later word is still checked.
    const fn options_after_double_dash(mut self) -> Row {
        self.double_dash_ends_options = false;
        self
    }

    /// For programs whose first argument is a bundle of short options even without a dash.
    const fn bare_first_word_is_options(mut self) -> Row {
        self.bare_first_word_is_options = true;
        self
    }
}

/// A row for a getopt-style program.
const fn row(
    names: &'static [&'static str],
    denied: &'static [(Why, &'static [&'static str])],
) -> Row {
    Row {
        names,
        double_dash_ends_options: true,
        bare_first_word_is_options: false,
        denied,
    }
}

const VI: &[(Why, &[&str])] = &[
    (
        Why::Escape,
        &[
            "+",
            "-c",
            "--cmd",
            "-S",
            "-s",
            "--remote",
            "--remote-silent",
            "--remote-wait",
            "--remote-wait-silent",
            "--remote-tab",
            "--remote-tab-silent",
            "--remote-tab-wait",
            "--remote-tab-wait-silent",
            "--remote-send",
            "--remote-expr",
            "--server",
            "--listen",
        ],
    ),
    (Why::Config, &["-u", "-U"]),
    (Why::Code, &["-l"]),
    (
        Why::Writes,
        &["-i", "-w", "-W", "-V", "--startuptime", "--log"],
    ),
];

const SHELLS: &[(Why, &[&str])] = &[
    (Why::Shell, &["-c", "-i", "-s"]),
    (Why::Config, &["--rcfile", "--init-file"]),
];

const AWK: &[(Why, &[&str])] = &[
    (
        Why::Code,
        &[
            "-f",
            "--file",
            "-E",
            "--exec",
            "-i",
            "--include",
            "-l",
            "--load",
            "-W",
        ],
    ),
    (
        Why::Writes,
        &[
            "-o",
            "--pretty-print",
            "-p",
            "--profile",
            "-d",
            "--dump-variables",
        ],
    ),
];

const CONTAINERS: &[(Why, &[&str])] = &[
    (
        Why::Remote,
        &["-H", "--host", "-c", "--context", "--url", "--connection"],
    ),
    (Why::Config, &["--config"]),
    (Why::Shell, &["--entrypoint"]),
    (
        Why::Host,
        &[
            "-v",
            "--volume",
            "--volumes-from",
            "--mount",
            "--privileged",
            "--pid",
            "--network",
            "--net",
            "--ipc",
            "--uts",
            "--userns",
            "--cgroupns",
            "--cgroup-parent",
            "--cap-add",
            "--device",
            "--device-cgroup-rule",
            "--security-opt",
            "--sysctl",
            "--runtime",
        ],
    ),
    (Why::Identity, &["-u", "--user", "--group-add"]),
    (Why::Writes, &["-o", "--output", "--cidfile", "--iidfile"]),
    (Why::Reads, &["--env-file", "--label-file", "--secret"]),
];

const COPY: &[(Why, &[&str])] = &[(
    Why::Writes,
    &[
        "-t",
        "--target-directory",
        "-S",
        "--suffix",
        "-b",
        "--backup",
    ],
)];

/// The built-in table. Each row names the programs it covers and, per kind of danger, the
/// spellings to refuse. `GTFOBins` is the reference; entries err on the side of refusing.
static BUILTIN: &[Row] = &[
    // Pagers. Exec sessions without a pty never show a pager, but a role may give exec
    // sessions a pty, and `+cmd` runs at start-up either way.
    row(
        &["less"],
        &[
            (Why::Escape, &["+"]),
            (Why::Writes, &["-o", "--log-file", "-O", "--LOG-FILE"]),
            (
                Why::Config,
                &["-k", "--lesskey-file", "--lesskey-src", "--lesskey-content"],
            ),
        ],
    ),
    row(&["more", "most", "pg"], &[(Why::Escape, &["+"])]).options_after_double_dash(),
    row(
        &["man"],
        &[
            (
                Why::Shell,
                &[
                    "-P",
                    "--pager",
                    "-H",
                    "--html",
                    "--browser",
                    "-X",
                    "--gxditview",
                ],
            ),
            (Why::Config, &["-C", "--config-file"]),
            (Why::Reads, &["-l", "--local-file"]),
        ],
    ),
    // Editors.
    row(
        &[
            "vi", "vim", "view", "vimdiff", "rvim", "rview", "gvim", "gview", "evim", "ex", "nvim",
            "vimx",
        ],
        VI,
    ),
    row(
        &["nano", "pico"],
        &[
            (Why::Shell, &["-s", "--speller"]),
            (Why::Config, &["-f", "--rcfile"]),
            (Why::Writes, &["-B", "--backup", "-C", "--backupdir"]),
        ],
    ),
    row(
        &["emacs"],
        &[
            (
                Why::Code,
                &[
                    "--eval",
                    "-eval",
                    "-l",
                    "--load",
                    "-load",
                    "-f",
                    "--funcall",
                    "-funcall",
                    "--script",
                    "-script",
                    "-x",
                    "-L",
                    "--directory",
                ],
            ),
            (Why::Config, &["-u", "--user", "--init-directory"]),
        ],
    )
    .options_after_double_dash(),
    // Finding and archiving.
    row(
        &["find"],
        &[
            (Why::Shell, &["-exec", "-execdir", "-ok", "-okdir"]),
            (
                Why::Writes,
                &["-delete", "-fprint", "-fprint0", "-fprintf", "-fls"],
            ),
        ],
    )
    .options_after_double_dash(),
    row(
        &["tar"],
        &[
            (
                Why::Shell,
                &[
                    "--to-command",
                    "--checkpoint-action",
                    "--use-compress-program",
                    "-I",
                    "-F",
                    "--info-script",
                    "--new-volume-script",
                    "--rsh-command",
                    "--rmt-command",
                ],
            ),
            (
                Why::Writes,
                &["-P", "--absolute-names", "--index-file", "--volno-file"],
            ),
            (Why::Reads, &["-T", "--files-from", "-X", "--exclude-from"]),
        ],
    )
    .bare_first_word_is_options(),
    row(
        &["zip"],
        &[(Why::Shell, &["-T", "--test", "-TT", "--unzip-command"])],
    )
    .options_after_double_dash(),
    // Version control.
    row(
        &["git"],
        &[
            (
                Why::Config,
                &["-c", "--config-env", "-C", "--git-dir", "--work-tree"],
            ),
            (
                Why::Shell,
                &[
                    "--exec-path",
                    "--upload-pack",
                    "-u",
                    "--receive-pack",
                    "--exec",
                    "--template",
                    "-O",
                    "--open-files-in-pager",
                    "--web",
                ],
            ),
            (Why::Escape, &["-p", "--paginate"]),
            (Why::Writes, &["--output", "-o", "--output-directory"]),
            (Why::Remote, &["--remote"]),
        ],
    ),
    // systemd. Pagers are not started without a terminal; `--no-pager` is harmless. Subcommands
    // such as `edit`, `kill` or `set-environment` are operands: name them literally in rules.
    row(
        &["journalctl"],
        &[
            (
                Why::Reads,
                &["-D", "--directory", "-i", "--file", "--root", "--image"],
            ),
            (
                Why::Writes,
                &[
                    "--cursor-file",
                    "--vacuum-size",
                    "--vacuum-time",
                    "--vacuum-files",
                    "--rotate",
                    "--flush",
                    "--sync",
                    "--relinquish-var",
                    "--smart-relinquish-var",
                    "--setup-keys",
                    "--update-catalog",
                ],
            ),
            (Why::Remote, &["-M", "--machine"]),
        ],
    ),
    row(
        &["systemctl"],
        &[
            (Why::Remote, &["-H", "--host", "-M", "--machine"]),
            (Why::Writes, &["--root", "--image"]),
        ],
    ),
    // Cluster and container clients. `exec`, `cp`, `run`, `debug` and plugins are subcommands.
    row(
        &["kubectl"],
        &[
            (Why::Config, &["--kubeconfig"]),
            (
                Why::Remote,
                &[
                    "-s",
                    "--server",
                    "--context",
                    "--cluster",
                    "--insecure-skip-tls-verify",
                ],
            ),
            (
                Why::Identity,
                &[
                    "--token",
                    "--as",
                    "--as-group",
                    "--as-uid",
                    "--user",
                    "--username",
                    "--password",
                    "--certificate-authority",
                    "--client-certificate",
                    "--client-key",
                ],
            ),
            (Why::Writes, &["--cache-dir"]),
        ],
    ),
    row(&["docker", "podman", "nerdctl"], CONTAINERS),
    // Interpreters. Their program text is an operand the guard cannot judge; lint warns.
    row(&["awk", "gawk", "mawk", "nawk"], AWK),
    row(
        &["sed"],
        &[
            (Why::Writes, &["-i", "--in-place"]),
            (Why::Code, &["-f", "--file"]),
        ],
    ),
    row(&["python", "pypy"], &[(Why::Code, &["-c", "-m", "-i"])]),
    row(
        &["perl"],
        &[
            (Why::Code, &["-e", "-E", "-M", "-m", "-x", "-d", "-I"]),
            (Why::Writes, &["-i"]),
        ],
    ),
    row(
        &["ruby"],
        &[
            (Why::Code, &["-e", "-r", "-I", "-x", "-S"]),
            (Why::Writes, &["-i"]),
        ],
    ),
    row(
        &["node", "nodejs"],
        &[(
            Why::Code,
            &[
                "-e",
                "--eval",
                "-p",
                "--print",
                "-r",
                "--require",
                "--import",
                "--loader",
                "--experimental-loader",
                "-i",
                "--interactive",
            ],
        )],
    ),
    row(&["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash"], SHELLS),
    row(
        &["gdb"],
        &[
            (
                Why::Code,
                &[
                    "-ex",
                    "--ex",
                    "-iex",
                    "--iex",
                    "-x",
                    "-ix",
                    "--eval-command",
                    "-eval-command",
                    "--init-eval-command",
                    "-init-eval-command",
                    "--command",
                    "-command",
                    "--init-command",
                    "-init-command",
                ],
            ),
            (Why::Host, &["-p", "--pid", "-pid"]),
        ],
    )
    .options_after_double_dash(),
    // Copying and transfer.
    row(
        &["rsync"],
        &[
            (
                Why::Shell,
                &["-e", "--rsh", "--rsync-path", "-M", "--remote-option"],
            ),
            (Why::Config, &["--config"]),
            (Why::Host, &["--daemon"]),
            (
                Why::Writes,
                &["--write-batch", "--only-write-batch", "--log-file"],
            ),
            (Why::Reads, &["--read-batch", "--password-file"]),
        ],
    ),
    row(
        &["ssh"],
        &[
            (Why::Config, &["-o", "-F"]),
            (
                Why::Remote,
                &[
                    "-J", "-L", "-R", "-D", "-W", "-w", "-X", "-Y", "-S", "-M", "-O",
                ],
            ),
            (Why::Writes, &["-E"]),
            (Why::Identity, &["-i", "-A"]),
            (Why::Code, &["-I"]),
        ],
    ),
    row(
        &["scp"],
        &[
            (Why::Config, &["-o", "-F"]),
            (Why::Shell, &["-S", "-D"]),
            (Why::Remote, &["-J"]),
            (Why::Identity, &["-i"]),
        ],
    ),
    row(
        &["sftp"],
        &[
            (Why::Config, &["-o", "-F"]),
            (Why::Shell, &["-S", "-D", "-b"]),
            (Why::Remote, &["-J"]),
            (Why::Identity, &["-i"]),
        ],
    ),
    row(
        &["curl"],
        &[
            (
                Why::Writes,
                &[
                    "-o",
                    "--output",
                    "-O",
                    "--remote-name",
                    "--remote-name-all",
                    "-J",
                    "--remote-header-name",
                    "--output-dir",
                    "--create-dirs",
                    "-D",
                    "--dump-header",
                    "--trace",
                    "--trace-ascii",
                    "-c",
                    "--cookie-jar",
                    "--libcurl",
                    "--etag-save",
                    "--hsts",
                    "--alt-svc",
                    "--stderr",
                ],
            ),
            (Why::Config, &["-K", "--config"]),
            // Each of these takes `@file` and sends, prints or expands that file's contents.
            (
                Why::Reads,
                &[
                    "-T",
                    "--upload-file",
                    "-d",
                    "--data",
                    "--data-ascii",
                    "--data-binary",
                    "--data-urlencode",
                    "--json",
                    "-F",
                    "--form",
                    "-H",
                    "--header",
                    "--proxy-header",
                    "-w",
                    "--write-out",
                    "--url-query",
                    "--variable",
                ],
            ),
        ],
    ),
    row(
        &["wget"],
        &[
            (
                Why::Writes,
                &[
                    "-O",
                    "--output-document",
                    "-o",
                    "--output-file",
                    "-a",
                    "--append-output",
                    "-P",
                    "--directory-prefix",
                    "--save-cookies",
                    "--warc-file",
                    "--rejected-log",
                    "--hsts-file",
                ],
            ),
            (
                Why::Reads,
                &["-i", "--input-file", "--post-file", "--body-file"],
            ),
            (Why::Config, &["-e", "--execute", "--config"]),
            (Why::Shell, &["--use-askpass"]),
        ],
    ),
    // Writers. tee writes every operand and cp/mv write their last one; lint warns about
    // placeholders there, the guard only refuses the options that redirect the writes.
    row(&["tee"], &[(Why::Writes, &["-a", "--append"])]),
    row(&["dd"], &[(Why::Writes, &["of="])]),
    row(&["cp", "mv", "ln", "install"], COPY),
    row(
        &["sort"],
        &[
            (
                Why::Writes,
                &["-o", "--output", "-T", "--temporary-directory"],
            ),
            (Why::Shell, &["--compress-program"]),
        ],
    ),
    row(
        &["tcpdump"],
        &[
            (Why::Shell, &["-z"]),
            (Why::Writes, &["-w"]),
            (Why::Reads, &["-F", "-V"]),
        ],
    ),
    row(
        &["dmesg"],
        &[
            (
                Why::State,
                &[
                    "-c",
                    "--read-clear",
                    "-C",
                    "--clear",
                    "-D",
                    "--console-off",
                    "-E",
                    "--console-on",
                    "-n",
                    "--console-level",
                ],
            ),
            (Why::Reads, &["-F", "--file"]),
        ],
    ),
    row(
        &["crontab"],
        &[
            (Why::Escape, &["-e"]),
            (Why::State, &["-r"]),
            (Why::Identity, &["-u"]),
        ],
    ),
    // Wrappers: the wrapped command is an operand (lint warns); these are the wrappers' own
    // options that widen what they do.
    row(
        &["env"],
        &[
            (Why::Shell, &["-S", "--split-string"]),
            (Why::Code, &["LD_PRELOAD=", "LD_LIBRARY_PATH=", "LD_AUDIT="]),
        ],
    ),
    row(
        &["sudo"],
        &[
            (Why::Escape, &["-e", "--edit"]),
            (
                Why::Shell,
                &["-s", "--shell", "-i", "--login", "-A", "--askpass"],
            ),
            (
                Why::Identity,
                &[
                    "-u", "--user", "-g", "--group", "-r", "--role", "-t", "--type",
                ],
            ),
            (Why::Config, &["-E", "--preserve-env", "-D", "--chdir"]),
            (Why::Host, &["-R", "--chroot"]),
        ],
    ),
    row(
        &["doas"],
        &[(Why::Shell, &["-s"]), (Why::Identity, &["-u"])],
    ),
    row(
        &["su", "runuser"],
        &[
            (
                Why::Shell,
                &[
                    "-c",
                    "--command",
                    "--session-command",
                    "-s",
                    "--shell",
                    "-l",
                    "--login",
                ],
            ),
            (
                Why::Identity,
                &["-g", "--group", "-G", "--supp-group", "-u", "--user"],
            ),
            (
                Why::Config,
                &[
                    "-m",
                    "-p",
                    "--preserve-environment",
                    "-w",
                    "--whitelist-environment",
                ],
            ),
        ],
    ),
    row(&["xargs"], &[(Why::Reads, &["-a", "--arg-file"])]),
    row(&["flock"], &[(Why::Shell, &["-c", "--command"])]),
    row(
        &["script"],
        &[
            (Why::Shell, &["-c", "--command"]),
            (
                Why::Writes,
                &[
                    "-O",
                    "--log-out",
                    "-I",
                    "--log-in",
                    "-B",
                    "--log-io",
                    "-T",
                    "--log-timing",
                ],
            ),
        ],
    ),
    row(
        &["strace", "ltrace"],
        &[
            (Why::Writes, &["-o", "--output"]),
            (Why::Host, &["-p", "--attach"]),
        ],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(command: &str) -> Vec<String> {
        command.split(' ').map(str::to_owned).collect()
    }

    /// The guard's verdict on the last word of `command`.
    fn last(guard: &OptionGuard, command: &str) -> Option<String> {
        let argv = argv(command);
        guard.check(&argv, argv.len() - 1)
    }

    fn refused(command: &str) -> bool {
        last(&OptionGuard::builtin(), command).is_some()
    }

    #[test]
    fn builtin_table_is_well_formed() {
        let guard = OptionGuard::builtin();
        for row in BUILTIN {
            for (_, spellings) in row.denied {
                for spelling in *spellings {
                    assert!(Form::parse(spelling).is_ok(), "{spelling}");
                }
            }
        }
        for program in [
            "less",
            "more",
            "man",
            "vi",
            "vim",
            "nano",
            "find",
            "tar",
            "zip",
            "git",
            "journalctl",
            "systemctl",
            "kubectl",
            "docker",
            "awk",
            "sed",
            "rsync",
            "ssh",
            "scp",
            "curl",
            "wget",
            "tee",
            "dd",
            "cp",
            "mv",
            "crontab",
            "python",
            "python3",
            "perl",
            "ruby",
            "env",
            "sudo",
        ] {
            assert!(guard.guards(program), "{program}");
        }
        assert!(!guard.guards("ls"));
    }

    #[test]
    fn plain_options_and_values() {
        assert_eq!(
            last(&OptionGuard::builtin(), "curl --output"),
            Some("option \"--output\" of curl is not allowed (writes files)".to_owned())
        );
        assert!(refused("curl -o"));
        assert!(refused("curl --output=/etc/passwd"));
        assert!(!refused("curl --silent"));
        assert!(!refused("curl https://example.com/"));
        assert!(!refused("curl -s"));
    }

    #[test]
    fn attached_short_values() {
        assert!(refused("docker -Hunix:///run/evil.sock"));
        assert!(refused("ssh -oProxyCommand=sh"));
        assert!(refused("ssh -o=ProxyCommand=sh"));
        let reason = last(&OptionGuard::builtin(), "docker -Htcp://x").unwrap_or_default();
        assert!(
            reason.starts_with("option \"-H\" of docker is not allowed"),
            "{reason}"
        );
        assert!(reason.contains("word 2 is \"-Htcp://x\""), "{reason}");
    }

    #[test]
    fn bundled_short_flags() {
        assert!(refused("tar -xvIf"));
        assert!(refused("perl -le"));
        assert!(refused("python3 -ic"));
        assert!(!refused("tar -xvf"));
        assert!(!refused("tar -tzvf"));
        // Err on the side of refusing: an attached value containing a denied letter.
        assert!(refused("ssh -lroot"));
    }

    #[test]
    fn old_style_tar_bundles() {
        assert!(refused("tar xIf"));
        assert!(!refused("tar xvf"));
        // Only the first argument is a bundle.
        assert!(!refused("tar xvf archive-I.tar"));
    }

    #[test]
    fn long_option_abbreviations() {
        assert!(refused("curl --outp"));
        assert!(refused("curl --out=x"));
        assert!(refused("curl --o"));
        assert!(refused("tar --to-c=sh"));
        assert!(refused("tar --use=sh"));
        assert!(!refused("tar --to-stdout"));
        assert!(!refused("curl --compressed"));
        assert!(refused("curl --co"));
        assert!(!refused("curl --"));
    }

    #[test]
    fn single_dash_long_options() {
        assert!(refused("find . -exec"));
        assert!(refused("find . -execdir"));
        assert!(refused("find . -delete"));
        assert!(refused("find . -fprint"));
        assert!(refused("find . -fprintf"));
        assert!(refused("find . -ok"));
        assert!(!refused("find . -o"));
        assert!(!refused("find . -executable"));
        assert!(!refused("find . -name"));
        assert!(!refused("find . -print"));
        assert!(refused("gdb -ex"));
        assert!(refused("gdb -eval"));
    }

    #[test]
    fn double_dash_ends_options() {
        assert!(!refused("curl -- -o"));
        assert!(!refused("less -- +!sh"));
        assert!(refused("less -N +!sh"));
        // `--` as the value of the option before it does not count.
        assert!(refused("tar -C -- --to-command=sh"));
        assert!(!refused("tar -C dir -- --to-command=sh"));
        // find's expression follows its paths whatever comes before.
        assert!(refused("find -- . -exec"));
        // dd's operands are operands after `--` too.
        assert!(refused("dd -- of=/etc/passwd"));
        // Programs not trusted to stop at `--` are checked throughout.
        assert!(refused("zip -- -TT"));
        assert!(refused("more -- +x"));
    }

    #[test]
    fn options_that_read_a_file_given_as_at_file_or_a_name_list() {
        for cmd in [
            "curl -d",
            "curl --data-binary=@/etc/shadow",
            "curl -Ff=@/etc/shadow",
            "curl -H",
            "curl -w@/etc/shadow",
            "tar -tzf x.tgz -T",
            "tar -tzf x.tgz --files-from=/etc/shadow",
        ] {
            assert!(refused(cmd), "{cmd}");
        }
        assert!(!refused("curl -sS https://example.invalid/health"));
    }

    #[test]
    fn plus_commands_for_pagers_and_editors() {
        assert!(refused("less +!sh"));
        assert!(refused("more +/x"));
        assert!(refused("vim +:!sh"));
        assert!(refused("vi +1"));
        assert!(!refused("nano +10"));
        assert!(!refused("cat +x"));
        assert!(refused("less -N+!sh"), "inside a bundle of short flags");
        assert!(!refused("less -N"));
        let reason = last(&OptionGuard::builtin(), "less +!sh").unwrap_or_default();
        assert_eq!(
            reason,
            "a \"+command\" argument of less is not allowed (pager or editor escape); word 2 is \
             \"+!sh\""
        );
    }

    #[test]
    fn operand_prefixes() {
        assert!(refused("dd of=/dev/sda"));
        assert!(!refused("dd if=/dev/zero"));
        assert!(refused("env LD_PRELOAD=/tmp/x.so"));
        let reason = last(&OptionGuard::builtin(), "dd of=/x").unwrap_or_default();
        assert!(reason.starts_with("operand \"of=…\" of dd"), "{reason}");
    }

    #[test]
    fn program_names_are_basenames_and_stems() {
        assert!(refused("/usr/bin/find . -exec"));
        assert!(refused("./find . -exec"));
        assert!(refused("python3.12 -c"));
        assert!(refused("/usr/bin/python3 -m"));
        assert!(refused("vim.basic -c"));
        assert!(refused("perl5.36.0 -e"));
        assert!(!refused("findx -exec"));
        assert_eq!(
            candidates("/usr/bin/python3.12").collect::<Vec<_>>(),
            ["python3.12", "python3", "python", "python"]
        );
    }

    #[test]
    fn wrappers_apply_the_wrapped_programs_table() {
        assert!(refused("sudo less +!sh"));
        assert!(refused("sudo -- less +!sh"));
        assert!(refused("timeout 5 vim -c"));
        assert!(refused("env -i find . -exec"));
        assert!(refused("sudo -u root env LD_PRELOAD=x"));
        // The wrapped program's own `--` counts only after it.
        assert!(!refused("sudo less -- +!sh"));
        // Not a wrapper: later words are not programs.
        assert!(!refused("grep less +x"));
    }

    #[test]
    fn index_zero_and_out_of_range_are_not_refused() {
        let guard = OptionGuard::builtin();
        let a = argv("curl -o x");
        assert_eq!(guard.check(&a, 0), None);
        assert_eq!(guard.check(&a, 3), None);
        assert!(guard.check(&a, 1).is_some());
    }

    #[test]
    fn covers_the_required_programs() {
        for command in [
            "less -o",
            "less --log-file=x",
            "less -O",
            "less --LOG-FILE",
            "less -k",
            "man -P",
            "man --pager=sh",
            "man -H",
            "man -C",
            "vim -c",
            "vim --cmd",
            "vim -S",
            "vim -u",
            "nano -s",
            "nano --speller=sh",
            "find . -okdir",
            "find . -fls",
            "find . -fprint0",
            "tar --checkpoint-action=exec=sh",
            "tar --use-compress-program=sh",
            "tar -F",
            "tar --info-script=x",
            "tar --rsh-command=x",
            "zip -TT",
            "zip --unzip-command=sh",
            "git -c",
            "git --exec-path=/tmp",
            "git --upload-pack=sh",
            "git --config-env=x=y",
            "git -p",
            "git --paginate",
            "journalctl --file=x",
            "journalctl -D",
            "journalctl --root=/",
            "systemctl -H",
            "systemctl --host=x",
            "kubectl --kubeconfig=x",
            "kubectl -s",
            "kubectl --server=x",
            "kubectl --token=x",
            "kubectl --as=admin",
            "kubectl --as-group=x",
            "docker -H",
            "docker --config",
            "docker -v",
            "docker --volume=/:/host",
            "docker --privileged",
            "docker --pid=host",
            "docker --network=host",
            "docker --entrypoint=sh",
            "docker --mount",
            "docker --cap-add=ALL",
            "docker --device=/dev/sda",
            "docker --security-opt",
            "awk -f",
            "awk --file=x",
            "sed -i",
            "sed --in-place",
            "sed -f",
            "rsync -e",
            "rsync --rsh=sh",
            "rsync --rsync-path=sh",
            "rsync --remote-option=x",
            "rsync -M",
            "ssh -o",
            "ssh -F",
            "ssh -J",
            "ssh -L",
            "ssh -R",
            "ssh -D",
            "ssh -W",
            "ssh -w",
            "ssh -E",
            "ssh -i",
            "ssh -S",
            "scp -o",
            "scp -F",
            "scp -S",
            "scp -J",
            "curl -O",
            "curl --remote-name",
            "curl -K",
            "curl --config",
            "curl -T",
            "curl --upload-file",
            "curl --output-dir",
            "curl -D",
            "curl --dump-header",
            "curl --trace",
            "curl --trace-ascii",
            "curl -c",
            "curl --cookie-jar",
            "curl --libcurl",
            "wget -O",
            "wget --output-document",
            "wget -o",
            "wget --output-file",
            "wget -a",
            "wget --append-output",
            "wget -P",
            "wget --directory-prefix",
            "wget -i",
            "wget --input-file",
            "wget --post-file",
            "wget -e",
            "wget --execute",
            "wget --use-askpass",
            "tee -a",
            "tee --append",
            "cp -t",
            "cp --target-directory=/etc",
            "mv -t",
            "crontab -e",
            "crontab -r",
            "crontab -u",
            "python -c",
            "python3 -m",
            "python -i",
            "perl -e",
            "perl -E",
            "perl -M",
            "perl -m",
            "perl -i",
            "perl -x",
            "perl -d",
            "ruby -e",
            "ruby -r",
            "ruby -I",
            "ruby -i",
            "ruby -x",
            "ruby -S",
            "env -S",
            "env --split-string",
            "sudo -e",
            "sudo --edit",
            "sudo -s",
            "sudo --shell",
            "sudo -i",
            "sudo --login",
            "sudo -u",
            "sudo --user",
            "sudo -E",
        ] {
            assert!(refused(command), "{command}");
        }
        for command in [
            "journalctl --no-pager",
            "journalctl -o",
            "journalctl --since=today",
            "systemctl --no-pager",
            "kubectl -n",
            "docker --rm",
            "ls -la",
            "grep -r",
        ] {
            assert!(!refused(command), "{command}");
        }
    }

    #[test]
    fn extra_entries_from_policy() {
        let mut extra = BTreeMap::new();
        extra.insert(
            "myctl".to_owned(),
            vec!["-o".to_owned(), "--output".to_owned(), "+".to_owned()],
        );
        extra.insert("curl".to_owned(), vec!["--proxy".to_owned()]);
        let guard = OptionGuard::builtin()
            .with_extra(&extra)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            last(&guard, "myctl --output=x"),
            Some(
                "option \"--output\" of myctl is not allowed (denied by policy); word 2 is \
                 \"--output=x\""
                    .to_owned()
            )
        );
        assert!(last(&guard, "myctl -vo").is_some());
        assert!(last(&guard, "/opt/bin/myctl --outp").is_some());
        assert!(last(&guard, "myctl +x").is_some());
        assert!(last(&guard, "myctl -- -o").is_none());
        assert!(last(&guard, "curl --proxy").is_some());
        // Built-in entries stay.
        assert!(last(&guard, "curl -o").is_some());
    }

    #[test]
    fn extra_entries_are_validated() {
        for (program, option) in [
            ("myctl", "output"),
            ("myctl", "-"),
            ("myctl", "--"),
            ("myctl", "---x"),
            ("myctl", "--a b"),
            ("myctl", "-o x"),
            ("myctl", "--"),
            ("myctl", "=x"),
            ("myctl", "-\u{7}"),
            ("myctl", ""),
        ] {
            let mut extra = BTreeMap::new();
            extra.insert(program.to_owned(), vec![option.to_owned()]);
            assert!(
                matches!(
                    OptionGuard::builtin().with_extra(&extra),
                    Err(RuleError::BadOption { .. })
                ),
                "{option:?}"
            );
        }
        for program in ["", "/usr/bin/myctl", "..", "-x", "my ctl", "my\u{202E}ctl"] {
            let mut extra = BTreeMap::new();
            extra.insert(program.to_owned(), vec!["-o".to_owned()]);
            assert!(
                matches!(
                    OptionGuard::builtin().with_extra(&extra),
                    Err(RuleError::BadProgram { .. })
                ),
                "{program:?}"
            );
        }
        let mut extra = BTreeMap::new();
        extra.insert(
            "myctl".to_owned(),
            vec!["-#".to_owned(), "-exec".to_owned(), "of=".to_owned()],
        );
        assert!(OptionGuard::builtin().with_extra(&extra).is_ok());
    }
}
