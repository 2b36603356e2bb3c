//! Warnings for rules that are wider than they look, and notes on what their wildcards admit.
//!
//! Rules that hand the user a program are not warnings but errors: see
//! [`hands_over`](super::hands_over).

use super::matcher::{CommandRule, RuleWord};
use super::option_guard::{WRAPPERS, basename, candidates, in_builtin_table};
use super::shapes::lookup;

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

/// Warnings about `rule`, each a complete sentence for the policy author. Empty when there is
/// nothing to say.
///
/// Rules load even when they draw warnings: a warning marks a rule that is wider than it looks
/// (a trailing `*` on a program with a shell escape, a wildcard that supplies a subcommand),
/// which may still be what the author meant. For a wildcard subcommand the warning lists the
/// subcommands it actually admits. Messages do not repeat the rule, so the loader should prefix them with the file, line and rule text.
/// Knowledge of programs comes from the built-in tables only; a policy's `deny_options` does
/// not change the warnings.
///
/// A trailing `*` on an ordinary program (`"ls *"`) draws no warning.
#[must_use]
pub fn lint(rule: &CommandRule) -> Vec<String> {
    let mut warnings = Vec::new();
    let words = rule.words();
    let program = rule.program();
    let name = basename(program);
    let known = |list: &[&str]| candidates(program).any(|candidate| list.contains(&candidate));
    let trailing_star = matches!(words.last(), Some(RuleWord::Rest));

    if rule.wild_subcommand().is_some() {
        // Described by `notes`: the wildcard admits only harmless subcommands.
    } else if trailing_star && lookup(program).is_none() {
        // Programs in the shapes table (systemctl, journalctl, git, kubectl, …) have their
        // subcommands and scopes checked as well as their options: no note needed.
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

    if looks_like_assignment(program) {
        warnings.push(format!(
            "the command word {program:?} looks like an environment assignment, but it is \
             matched as a program name: nothing sets variables"
        ));
    }
    warnings
}

/// Notes on what `rule`'s checks do with its wildcards, each a complete sentence for
/// `gatehouse check`: which subcommands a wildcard subcommand admits, and what the rule pins.
/// `pty` says whether the role gives exec sessions a terminal (paging subcommands are then left
/// out unless the rule turns the pager off).
#[must_use]
pub fn notes(rule: &CommandRule, pty: bool) -> Vec<String> {
    let mut notes = Vec::new();
    let name = basename(rule.program());
    if let Some(wild) = rule.wild_subcommand() {
        let admitted = wild.admitted(rule.words(), pty);
        notes.push(format!(
            "the wildcard in word {} supplies the {name} subcommand; it admits only {}{}",
            wild.word(),
            admitted.join(", "),
            if pty {
                " (subcommands that page are left out: this role gives exec sessions a \
                 terminal; add --no-pager to the rule to admit them)"
            } else {
                ""
            }
        ));
    }
    let pinned = rule.pinned();
    if !pinned.is_empty() && rule.words().iter().any(RuleWord::is_placeholder) {
        notes.push(format!(
            "wildcard words may not change, widen or step outside what the rule pins: {}",
            pinned.join(", ")
        ));
    }
    notes
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

    fn notes_on(text: &str, pty: bool) -> Vec<String> {
        notes(
            &CommandRule::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}")),
            pty,
        )
    }

    #[test]
    fn ordinary_rules_are_quiet() {
        for rule in [
            "ls *",
            "ls -la /var/log",
            "systemctl status *",
            "git log *",
            "kubectl get pods *",
            "kubectl describe pod -n web *",
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
    fn wildcard_subcommands_say_what_they_admit() {
        let found = notes_on("systemctl * nginx", false);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[1].ends_with("pins: unit (\"nginx\")"), "{found:?}");
        assert!(
            found[0].starts_with(
                "the wildcard in word 2 supplies the systemctl subcommand; it admits only \
                 status, show, cat, is-active"
            ),
            "{found:?}"
        );
        assert!(!found[0].contains("edit"), "{found:?}");
        let found = notes_on("git -C /srv/app *", false);
        assert!(
            found[0].contains("word 4 supplies the git subcommand"),
            "{found:?}"
        );
        assert!(found[0].contains(" log, "), "{found:?}");
        // On a terminal, paging subcommands are left out unless the pager is off.
        let found = notes_on("git -C /srv/app *", true);
        assert!(!found[0].contains(" log, "), "{found:?}");
        assert!(found[0].contains("status"), "{found:?}");
        assert!(found[0].contains("left out"), "{found:?}");
        let found = notes_on("git --no-pager -C /srv/app *", true);
        assert!(found[0].contains(" log, "), "{found:?}");
        for rule in [
            "kubectl ?et *",
            "docker *",
            "helm *",
            "apt * nginx",
            "service nginx *",
        ] {
            let found = notes_on(rule, false);
            assert!(
                found
                    .iter()
                    .any(|w| w.contains("subcommand; it admits only")),
                "{rule}: {found:?}"
            );
        }
    }

    #[test]
    fn pinned_scopes_are_described() {
        let found = notes_on("kubectl describe pod -n web *", false);
        assert_eq!(
            found,
            [
                "wildcard words may not change, widen or step outside what the rule pins: \
              namespace (\"-n web\")"
            ]
        );
        assert!(notes_on("ls *", false).is_empty());
        assert!(warnings("systemctl * nginx").is_empty());
    }

    #[test]
    fn assignment_as_command_word() {
        let found = warnings("LANG=C ls");
        assert!(found[0].contains("environment assignment"), "{found:?}");
        assert!(warnings("./a=b").is_empty());
    }
}
