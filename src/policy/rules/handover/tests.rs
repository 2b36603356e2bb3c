//! Rules that hand the user a program.

use super::super::CommandRule;
use super::hands_over;

fn reason(text: &str, pty: bool) -> Option<String> {
    hands_over(
        &CommandRule::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}")),
        pty,
    )
}

#[test]
fn editors_always() {
    for rule in [
        "vim /etc/motd",
        "vi",
        "/usr/bin/nano /etc/hosts",
        "ed /etc/hosts",
        "sudoedit /etc/hosts",
        "sudo vim /etc/hosts",
        "emacs -nw x",
        "vim.basic /etc/motd",
        "systemctl edit nginx",
        "kubectl edit deploy web",
        "crontab -e",
        "sudo -e /etc/hosts",
        "apt edit-sources",
    ] {
        let why = reason(rule, false).unwrap_or_else(|| panic!("{rule}"));
        assert!(why.contains("editor"), "{rule}: {why}");
    }
}

#[test]
fn pagers_on_a_terminal_only() {
    for rule in [
        "less /var/log/syslog",
        "man ls",
        "more /etc/motd",
        "sudo less /x",
    ] {
        assert!(reason(rule, false).is_none(), "{rule}");
        let why = reason(rule, true).unwrap_or_else(|| panic!("{rule}"));
        assert!(why.contains("shell escape"), "{rule}: {why}");
    }
    for rule in [
        "journalctl -u nginx *",
        "systemctl status nginx",
        "git log *",
        "git -p status",
    ] {
        assert!(reason(rule, false).is_none(), "{rule}");
        assert!(reason(rule, true).is_some(), "{rule}");
    }
    for rule in [
        "journalctl -u nginx --no-pager *",
        "systemctl --no-pager status nginx",
        "git --no-pager log *",
        "systemctl restart nginx",
        "git status",
    ] {
        assert!(reason(rule, true).is_none(), "{rule}");
    }
}

#[test]
fn sql_clients_given_statements_or_none() {
    for rule in [
        "psql -c *",
        "psql",
        "mysql -e *",
        "mysql app",
        "sqlite3 /var/lib/app.db",
        "sqlite3 /var/lib/app.db *",
        "psql -d app -f *",
        "mongosh --eval *",
    ] {
        let why = reason(rule, false).unwrap_or_else(|| panic!("{rule}"));
        assert!(why.contains("SQL client"), "{rule}: {why}");
    }
    for rule in [
        "psql -d app -c 'select count(*) from jobs'",
        "mysql -e 'show processlist'",
        "sqlite3 /var/lib/app.db 'select 1'",
    ] {
        assert!(reason(rule, false).is_none(), "{rule}");
    }
}

#[test]
fn program_text_and_interpreters() {
    for rule in [
        "awk *",
        "awk '{print $1}' *",
        "sed -n * /etc/hosts",
        "perl -ne *",
        "python3 *",
        "bash /opt/run.sh *",
        "gawk -f /opt/x.awk /var/log/*.log",
    ] {
        let why = reason(rule, false).unwrap_or_else(|| panic!("{rule}"));
        assert!(why.contains("program text"), "{rule}: {why}");
    }
    assert!(reason("awk * /etc/passwd", false).is_some_and(|w| w.contains("word 2")));
    for rule in ["bash", "python3", "bash -l", "perl -", "node"] {
        let why = reason(rule, false).unwrap_or_else(|| panic!("{rule}"));
        assert!(why.contains("standard input"), "{rule}: {why}");
    }
    for rule in [
        "bash /opt/run.sh",
        "python3 /opt/tools/report.py",
        "awk '{print $1}' /etc/passwd",
    ] {
        assert!(reason(rule, false).is_none(), "{rule}");
    }
}

#[test]
fn command_readers_and_subcommands() {
    for rule in ["gdb -p 1", "ftp host", "sftp host"] {
        let why = reason(rule, false).unwrap_or_else(|| panic!("{rule}"));
        assert!(why.contains("standard input"), "{rule}: {why}");
    }
    assert!(reason("git help *", false).is_some_and(|w| w.contains("manual")));
    assert!(reason("git -C /srv help log", false).is_some());
    assert!(reason("git commit", false).is_some());
    assert!(reason("git commit -m x", false).is_none());
}

#[test]
fn ordinary_rules_hand_over_nothing() {
    for rule in [
        "ls *",
        "systemctl status *",
        "systemctl * nginx",
        "kubectl describe pod -n web *",
        "tail -n * /var/log/nginx/*.log",
        "git -C /srv/app *",
        "curl *",
        "find /srv -name *",
    ] {
        assert_eq!(reason(rule, false), None, "{rule}");
    }
}

/// Quotes `word` in one of the ways the tokeniser reads back as the same word.
fn requote(word: &str, style: u8) -> String {
    match style % 4 {
        0 => word.to_owned(),
        1 => format!("'{word}'"),
        2 => format!("\"{word}\""),
        _ => {
            let mut chars = word.chars();
            let first: String = chars.next().map(String::from).unwrap_or_default();
            format!("{first}''{}", chars.as_str())
        }
    }
}

proptest::proptest! {
    /// However a rule's words are quoted, the verdict is the same: the classification reads the
    /// words after quote removal, as the matcher does.
    #[test]
    fn the_verdict_does_not_depend_on_quoting(
        index in 0usize..8,
        styles in proptest::collection::vec(0u8..4, 4),
        pty in proptest::bool::ANY,
    ) {
        let rules = [
            "vim /etc/motd",
            "less /var/log/syslog",
            "psql -c *",
            "awk -F: /etc/passwd",
            "git help log",
            "systemctl edit nginx",
            "systemctl status nginx",
            "sqlite3 /var/lib/app.db",
        ];
        let rule = rules[index];
        let quoted: Vec<String> = rule
            .split(' ')
            .zip(&styles)
            .map(|(word, style)| if word == "*" { word.to_owned() } else { requote(word, *style) })
            .collect();
        let quoted = quoted.join(" ");
        proptest::prop_assert_eq!(reason(rule, pty), reason(&quoted, pty), "{}", quoted);
    }
}
