//! Warnings for rules that are wider than they look.

use super::matcher::{CommandRule, RuleWord};
use super::option_guard::{WRAPPERS, basename, candidates, in_builtin_table};

/// Programs whose arguments are program text: a placeholder there lets the user write code,
/// which no option table can inspect.
const CODE: &[&str] = &[
    "awk", "gawk", "mawk", "nawk", "sed", "perl", "python", "pypy", "ruby", "irb", "node",
    "nodejs", "php", "lua", "luajit", "tclsh", "wish", "expect", "sh", "bash", "dash", "zsh",
    "ksh", "mksh", "ash", "csh", "tcsh", "fish",
];

/// Interpreters that read a program from standard input when given no arguments.
const READS_PROGRAM_FROM_STDIN: &[&str] = &[
    "perl", "python", "pypy", "ruby", "irb", "node", "nodejs", "php", "lua", "luajit", "tclsh",
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "csh", "tcsh", "fish",
];

/// Programs that read commands, including shell escapes, from standard input, which the user
/// controls in an exec session: whatever their arguments, they are a way to a shell.
const READS_COMMANDS_FROM_STDIN: &[&str] = &[
    "ed", "ex", "vi", "vim", "view", "vimdiff", "rvim", "rview", "nvim", "gdb", "sqlite3", "mysql",
    "mariadb", "psql", "ftp", "lftp", "sftp",
];

/// What a trailing `*` exposes, per program, completing "…to PROGRAM, which …".
const NOTES: &[(&[&str], &str)] = &[
    (
        &["less", "more", "most", "pg", "man"],
        "is a pager with a shell escape",
    ),
    (
        &[
            "vi", "vim", "view", "vimdiff", "rvim", "rview", "gvim", "gview", "evim", "ex", "nvim",
            "vimx", "nano", "pico", "emacs", "ed", "sudoedit", "joe", "mg",
        ],
        "is an editor that can write any file and run shell commands",
    ),
    (&["find"], "can run commands and delete files"),
    (&["tee"], "writes to every file named in its arguments"),
    (&["dd"], "writes to any file named with of="),
    (
        &["cp", "mv", "ln", "install", "rsync", "scp", "sftp"],
        "can write files anywhere the target account can",
    ),
    (&["curl", "wget"], "can download, upload and write files"),
    (
        &["crontab", "at", "batch"],
        "can install commands that run later",
    ),
];

/// Programs driven by a subcommand (`systemctl status`, `git log`). Their danger lies in which
/// subcommand runs, and the guard checks only options, so a trailing `*` is worth a warning only
/// when it can supply the subcommand; after a literal subcommand the guard covers the rest.
const SUBCOMMANDS: &[&str] = &["git", "systemctl", "kubectl", "docker", "podman", "nerdctl"];

/// Programs in the guard table whose table covers what a trailing `*` can add, so warning about
/// rules such as `"journalctl -u nginx *"` would be noise.
const COVERED: &[&str] = &["journalctl"];

/// Warnings about `rule`, each a complete sentence for the policy author. Empty when there is
/// nothing to say.
///
/// Rules load even when they draw warnings: a warning marks a rule that is wider than it looks
/// (a placeholder that lets the user write code, a trailing `*` on a program with a shell
/// escape), which may still be what the author meant. Messages do not repeat the rule, so the
/// loader should prefix them with the file, line and rule text. Knowledge of programs comes
/// from the built-in tables only; a policy's `deny_options` does not change the warnings.
///
/// A trailing `*` on an ordinary program (`"ls *"`) draws no warning.
#[must_use]
pub fn lint(rule: &CommandRule) -> Vec<String> {
    let mut warnings = Vec::new();
    let words = rule.words();
    let program = rule.program();
    let name = basename(program);
    let known = |list: &[&str]| candidates(program).any(|candidate| list.contains(&candidate));
    let first_placeholder = words.iter().position(RuleWord::is_placeholder);
    let trailing_star = matches!(words.last(), Some(RuleWord::Rest));

    if let Some(index) = first_placeholder.filter(|_| known(CODE)) {
        warnings.push(format!(
            "{name} runs program text given in its arguments, and the wildcard in word {} lets \
             the user supply some (awk's system(), sed's e command, …); the option guard cannot \
             inspect program text",
            index + 1
        ));
    } else if known(SUBCOMMANDS) {
        if first_placeholder == Some(1) {
            warnings.push(format!(
                "the wildcard in word 2 lets the user choose any {name} subcommand; the option \
                 guard checks only options, so name the subcommand in the rule"
            ));
        }
    } else if trailing_star && !known(COVERED) {
        let note = NOTES
            .iter()
            .find(|(programs, _)| known(programs))
            .map(|(_, note)| *note)
            .or_else(|| known(WRAPPERS).then_some("runs any command given in its arguments"))
            .or_else(|| {
                in_builtin_table(program)
                    .then_some("has options that the guard refuses and operands it cannot judge")
            });
        if let Some(note) = note {
            warnings.push(format!(
                "the trailing \"*\" lets the user pass any further words to {name}, which \
                 {note}; the option guard refuses only the options it knows"
            ));
        }
    }

    if known(READS_COMMANDS_FROM_STDIN) {
        warnings.push(format!(
            "{name} reads commands from standard input, which the user controls in an exec \
             session, and can run shell commands from there"
        ));
    } else if words.len() == 1 && known(READS_PROGRAM_FROM_STDIN) {
        warnings.push(format!(
            "{name} with no arguments runs whatever program the user sends on standard input"
        ));
    }

    if looks_like_assignment(program) {
        warnings.push(format!(
            "the command word {program:?} looks like an environment assignment, but it is \
             matched as a program name: nothing sets variables"
        ));
    }
    warnings
}

/// Whether `word` has the shape `NAME=value` of a shell variable assignment.
fn looks_like_assignment(word: &str) -> bool {
    let Some((name, _)) = word.split_once('=') else {
        return false;
    };
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(text: &str) -> Vec<String> {
        lint(&CommandRule::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}")))
    }

    #[test]
    fn ordinary_rules_are_quiet() {
        for rule in [
            "ls *",
            "ls -la /var/log",
            "systemctl status *",
            "git log *",
            "kubectl get pods *",
            "journalctl -u nginx *",
            "tail -n * /var/log/nginx/*.log",
            "journalctl -u nginx --no-pager",
            "cat /etc/hostname",
            "less /var/log/syslog",
            "python3 /opt/tools/report.py",
        ] {
            assert_eq!(warnings(rule), Vec::<String>::new(), "{rule}");
        }
    }

    #[test]
    fn trailing_star_on_dangerous_programs() {
        for (rule, needle) in [
            ("less *", "pager with a shell escape"),
            ("vim *", "editor"),
            ("find *", "run commands"),
            ("env *", "runs any command"),
            ("sudo *", "runs any command"),
            ("timeout 5 *", "runs any command"),
            ("tee *", "every file"),
            ("dd *", "of="),
            ("curl *", "download"),
            ("/usr/bin/find /srv *", "run commands"),
            ("zip -r out.zip *", "guard refuses"),
        ] {
            let found = warnings(rule);
            assert!(
                found
                    .iter()
                    .any(|w| w.contains("trailing \"*\"") && w.contains(needle)),
                "{rule}: {found:?}"
            );
        }
    }

    #[test]
    fn wildcard_subcommands() {
        for rule in ["git *", "systemctl * nginx", "kubectl ?et *", "docker *"] {
            let found = warnings(rule);
            assert!(
                found.iter().any(|w| w.contains("subcommand")),
                "{rule}: {found:?}"
            );
        }
    }

    #[test]
    fn placeholders_in_code_arguments() {
        for rule in [
            "awk *",
            "awk '{print $1}' *",
            "sed -n * /etc/hosts",
            "perl -ne *",
            "python3 *",
            "bash /opt/run.sh *",
            "gawk -f /opt/x.awk /var/log/*.log",
        ] {
            let found = warnings(rule);
            assert!(
                found.iter().any(|w| w.contains("program text")),
                "{rule}: {found:?}"
            );
            assert!(
                !found.iter().any(|w| w.contains("trailing")),
                "{rule}: one warning is enough: {found:?}"
            );
        }
        let found = warnings("awk * /etc/passwd");
        assert!(found[0].contains("word 2"), "{found:?}");
    }

    #[test]
    fn programs_reading_commands_from_stdin() {
        for rule in [
            "vim /etc/motd",
            "sqlite3 /var/lib/app.db",
            "ed /etc/hosts",
            "gdb -p 1",
        ] {
            let found = warnings(rule);
            assert!(
                found.iter().any(|w| w.contains("standard input")),
                "{rule}: {found:?}"
            );
        }
        assert!(warnings("bash")[0].contains("standard input"));
        assert!(warnings("python3")[0].contains("standard input"));
        assert!(warnings("bash /opt/run.sh").is_empty());
    }

    #[test]
    fn assignment_as_command_word() {
        let found = warnings("LANG=C ls");
        assert!(found[0].contains("environment assignment"), "{found:?}");
        assert!(warnings("./a=b").is_empty());
    }
}
