//! Rules that hand the user a program: shells in disguise, refused unless acknowledged.
//!
//! Some rules, however literal, give the user a program rather than a command: an editor (which
//! writes any file and runs shell commands), a pager or `man` on a terminal (`!sh`), a SQL
//! client given a statement or a script by the user, or reading them from standard input (they
//! have client-side shell escapes: `\!`, `system`, `.shell`), `awk`, `sed` or an interpreter
//! given program text, `git help` (a manual in a pager). [`hands_over`] names the reason; the
//! policy loader refuses such a rule unless the policy writes it in the explicit form
//! `{ rule = "…", unsafe = "why this is acceptable" }`, and the acknowledged reason then goes
//! into `gatehouse check`'s output and into the audit line of every session that uses it.
//!
//! The tables below are the knowledge; to extend, add a program or a subcommand to them.

use super::matcher::{CommandRule, RuleWord};
use super::option_guard::{WRAPPERS, candidates, looks_like_option};
use super::shapes::lookup;

/// Editors: they write any file and run shell commands, with or without a terminal (they read
/// commands from standard input without one).
const EDITORS: &[&str] = &[
    "vi", "vim", "view", "vimdiff", "rvim", "rview", "gvim", "gview", "evim", "ex", "nvim", "vimx",
    "nano", "pico", "emacs", "ed", "red", "joe", "mg", "jed", "micro", "sudoedit", "visudo",
    "vipw", "vigr",
];

/// Pagers and manual viewers: a shell escape (`!sh`) once they have a terminal.
const PAGERS: &[&str] = &["less", "more", "most", "pg", "man"];

/// Programs that read commands from standard input, which the user controls in an exec
/// session, and can run shell commands from there.
const COMMAND_READERS: &[&str] = &["gdb", "ftp", "lftp", "telnet", "sftp"];

/// SQL clients, with the options that give them a statement or a script on the command line.
/// Without one they read statements from standard input; with a wildcard the user writes
/// them. Either way their client commands (`\!`, `system`, `.shell`) run shell commands.
const SQL: &[(&[&str], &[&str])] = &[
    (&["psql"], &["-c", "--command", "-f", "--file"]),
    (&["mysql", "mariadb"], &["-e", "--execute"]),
    (&["sqlite3", "sqlite", "duckdb"], &["-cmd", "-init"]),
    (&["cqlsh"], &["-e", "--execute", "-f", "--file"]),
    (&["clickhouse-client"], &["-q", "--query"]),
    (&["mongo", "mongosh"], &["--eval"]),
];

/// Programs whose arguments are program text: a wildcard there lets the user write code.
const CODE: &[&str] = &[
    "awk", "gawk", "mawk", "nawk", "sed", "perl", "python", "pypy", "ruby", "irb", "node",
    "nodejs", "php", "lua", "luajit", "tclsh", "wish", "expect", "sh", "bash", "dash", "zsh",
    "ksh", "mksh", "ash", "csh", "tcsh", "fish",
];

/// Interpreters that run whatever program arrives on standard input when they are given none.
const READS_PROGRAM_FROM_STDIN: &[&str] = &[
    "perl", "python", "pypy", "ruby", "irb", "node", "nodejs", "php", "lua", "luajit", "tclsh",
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "csh", "tcsh", "fish",
];

/// Subcommands that hand over a program even when named literally: (programs, subcommand,
/// options that avoid it, what it does).
const SUBCOMMANDS: &[(&[&str], &str, &[&str], &str)] = &[
    (
        &["git"],
        "help",
        &[],
        "shows a manual in a pager, which has a shell escape",
    ),
    (
        &["git"],
        "instaweb",
        &[],
        "starts a web server and a browser",
    ),
    (&["git"], "difftool", &[], "runs a configured diff program"),
    (
        &["git"],
        "mergetool",
        &[],
        "runs a configured merge program",
    ),
    (&["git"], "web--browse", &[], "starts a browser"),
    (
        &["git"],
        "commit",
        &[
            "-m",
            "--message",
            "-F",
            "--file",
            "--no-edit",
            "-C",
            "--reuse-message",
        ],
        "opens an editor for the message",
    ),
    (&["systemctl"], "edit", &[], "opens an editor"),
    (&["kubectl", "oc"], "edit", &[], "opens an editor"),
    (&["apt"], "edit-sources", &[], "opens an editor"),
    (&["crontab"], "-e", &[], "opens an editor"),
    (&["sudo"], "-e", &[], "opens an editor"),
    (&["sudo"], "--edit", &[], "opens an editor"),
];

/// Programs that page their output on a terminal whatever they are asked, unless told not to.
const PAGE_ON_TERMINAL: &[&str] = &["journalctl"];

/// Why `rule` hands the user a program, if it does, as a phrase for the policy author. `pty`
/// says whether the role gives exec sessions a terminal (pagers escape only on one).
#[must_use]
pub fn hands_over(rule: &CommandRule, pty: bool) -> Option<String> {
    let words = rule.words();
    let (at, program) = program_of(words)?;
    let name = candidates(program).next().unwrap_or(program);
    let known = |list: &[&str]| candidates(program).any(|c| list.contains(&c));
    let args = &words[at + 1..];
    let placeholder = args.iter().position(RuleWord::is_placeholder);
    let literal = |text: &str| {
        args.iter()
            .any(|w| matches!(w, RuleWord::Literal(t) if t == text))
    };

    if known(EDITORS) {
        return Some(format!(
            "{name} is an editor: it writes any file and runs shell commands, and reads its \
             commands from standard input when it has no terminal"
        ));
    }
    if pty && known(PAGERS) {
        return Some(format!(
            "{name} shows a pager with a shell escape (!sh), and this role gives exec sessions \
             a terminal"
        ));
    }
    if known(COMMAND_READERS) {
        return Some(format!(
            "{name} reads commands from standard input, which the user controls, and runs shell \
             commands from there"
        ));
    }
    if let Some((_, statement)) = SQL.iter().find(|(names, _)| known(names)) {
        if let Some(index) = placeholder {
            return Some(format!(
                "{name} is a SQL client and the wildcard in word {} lets the user write \
                 statements or name a script; its client commands run shell commands",
                at + index + 2
            ));
        }
        let given = args.iter().any(|w| {
            matches!(w, RuleWord::Literal(t)
                if statement.iter().any(|s| t == s || t.starts_with(&format!("{s}="))))
        });
        let sqlite_statement = known(&["sqlite3", "sqlite", "duckdb"])
            && args
                .iter()
                .filter(|w| matches!(w, RuleWord::Literal(t) if !looks_like_option(t)))
                .count()
                >= 2;
        if !given && !sqlite_statement {
            return Some(format!(
                "{name} is a SQL client given no statement: it reads statements from standard \
                 input, which the user controls, and its client commands run shell commands"
            ));
        }
    }
    if known(CODE)
        && let Some(index) = placeholder
    {
        return Some(format!(
            "{name} runs program text given in its arguments, and the wildcard in word {} lets \
             the user supply some (awk's system(), sed's e command, …)",
            at + index + 2
        ));
    }
    if known(READS_PROGRAM_FROM_STDIN)
        && !args
            .iter()
            .any(|w| matches!(w, RuleWord::Literal(t) if !looks_like_option(t) && t != "-"))
    {
        return Some(format!(
            "{name} is given no program, so it runs whatever program the user sends on standard \
             input"
        ));
    }
    for (names, subcommand, unless, what) in SUBCOMMANDS {
        if known(names) && literal(subcommand) && !unless.iter().any(|u| literal(u)) {
            return Some(format!("{name} {subcommand} {what}"));
        }
    }
    if pty {
        return pages(words, at, name, &known);
    }
    None
}

/// On a terminal: whether the rule runs a program or a literal subcommand that pages its output
/// by default, without turning the pager off.
fn pages(
    words: &[RuleWord],
    at: usize,
    name: &str,
    known: &dyn Fn(&[&str]) -> bool,
) -> Option<String> {
    let args = &words[at + 1..];
    let literal = |text: &str| {
        args.iter()
            .any(|w| matches!(w, RuleWord::Literal(t) if t == text))
    };
    if literal("-p") && known(&["git"]) || literal("--paginate") && known(&["git"]) {
        return Some(format!(
            "{name} -p shows a pager with a shell escape, and this role gives exec sessions a \
             terminal"
        ));
    }
    if literal("--no-pager") {
        return None;
    }
    if known(PAGE_ON_TERMINAL) {
        return Some(format!(
            "{name} shows a pager with a shell escape on a terminal, which this role gives exec \
             sessions; add --no-pager"
        ));
    }
    let RuleWord::Literal(program) = &words[at] else {
        return None;
    };
    let sub = lookup(program)?.shape.subcommands.as_ref()?;
    let paging = sub.paging.iter().find(|s| literal(s))?;
    Some(format!(
        "{name} {paging} shows a pager with a shell escape on a terminal, which this role gives \
         exec sessions; add --no-pager"
    ))
}

/// The rule's program and its position: the command word, or for a wrapper (`sudo`,
/// `timeout`) the first later literal word that one of the tables here names.
fn program_of(words: &[RuleWord]) -> Option<(usize, &str)> {
    let RuleWord::Literal(first) = words.first()? else {
        return None;
    };
    if !candidates(first).any(|name| WRAPPERS.contains(&name)) {
        return Some((0, first));
    }
    let listed = |word: &str| {
        candidates(word).any(|c| {
            EDITORS.contains(&c)
                || PAGERS.contains(&c)
                || COMMAND_READERS.contains(&c)
                || CODE.contains(&c)
                || SQL.iter().any(|(names, _)| names.contains(&c))
                || SUBCOMMANDS.iter().any(|(names, ..)| names.contains(&c))
                || PAGE_ON_TERMINAL.contains(&c)
        }) || lookup(word).is_some()
    };
    let found = words.iter().enumerate().skip(1).find_map(|(i, w)| match w {
        RuleWord::Literal(text) if listed(text) => Some((i, text.as_str())),
        _ => None,
    });
    Some(found.unwrap_or((0, first)))
}

#[cfg(test)]
mod tests;
