//! Tests of rule parsing and word-by-word matching.

use super::*;

fn rule(text: &str) -> CommandRule {
    match CommandRule::parse(text) {
        Ok(rule) => rule,
        Err(e) => panic!("{text:?}: {e}"),
    }
}

fn argv(command: &str) -> Vec<String> {
    command.split(' ').map(str::to_owned).collect()
}

fn outcome(rule_text: &str, command: &str) -> Outcome {
    rule(rule_text).evaluate(&argv(command), &OptionGuard::builtin(), false)
}

fn allows(rule_text: &str, command: &str) -> bool {
    outcome(rule_text, command) == Outcome::Allowed
}

#[test]
fn parses_word_kinds() {
    let r = rule(r#"tail -n * /var/log/nginx/*.log 'a*' a\? *"#);
    let kinds: Vec<&str> = r
        .words()
        .iter()
        .map(|w| match w {
            RuleWord::Literal(_) => "literal",
            RuleWord::Glob(_) => "glob",
            RuleWord::Any => "any",
            RuleWord::Rest => "rest",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "literal", "literal", "any", "glob", "literal", "literal", "rest"
        ]
    );
    assert_eq!(r.source(), r#"tail -n * /var/log/nginx/*.log 'a*' a\? *"#);
    assert_eq!(r.program(), "tail");
    assert_eq!(r.to_string(), r.source());
}

#[test]
fn refuses_bad_rules() {
    assert_eq!(CommandRule::parse(""), Err(RuleError::Empty));
    assert_eq!(CommandRule::parse("   "), Err(RuleError::Empty));
    assert_eq!(
        CommandRule::parse("* status"),
        Err(RuleError::WildcardCommand {
            word: "*".to_owned()
        })
    );
    assert_eq!(
        CommandRule::parse("*"),
        Err(RuleError::WildcardCommand {
            word: "*".to_owned()
        })
    );
    assert!(matches!(
        CommandRule::parse("/usr/bin/*ctl status"),
        Err(RuleError::WildcardCommand { .. })
    ));
    assert!(matches!(
        CommandRule::parse("ls; id"),
        Err(RuleError::Syntax(TokenizeError::Operator { .. }))
    ));
    assert!(matches!(
        CommandRule::parse("echo $HOME"),
        Err(RuleError::Syntax(TokenizeError::Expansion { .. }))
    ));
    assert!(matches!(
        CommandRule::parse("ls\u{202E}"),
        Err(RuleError::Syntax(TokenizeError::FormatChar { .. }))
    ));
    assert!("ls 'x".parse::<CommandRule>().is_err());
}

#[test]
fn quoted_star_in_command_word_is_literal() {
    assert!(allows("'*' x", "* x"));
}

#[test]
fn exact_words_match_byte_for_byte() {
    assert!(allows("systemctl status nginx", "systemctl status nginx"));
    assert!(!allows("systemctl status nginx", "systemctl status nginx2"));
    assert!(!allows("systemctl status nginx", "systemctl Status nginx"));
    assert!(!allows("grep -r 'a b' /etc", "grep -r a b /etc"));
    let r = rule("grep -r 'a b' /etc");
    let a: Vec<String> = ["grep", "-r", "a b", "/etc"].map(str::to_owned).to_vec();
    assert_eq!(
        r.evaluate(&a, &OptionGuard::builtin(), false),
        Outcome::Allowed
    );
}

#[test]
fn command_word_must_be_spelled_as_in_the_rule() {
    assert!(!allows("systemctl status", "/usr/bin/systemctl status"));
    assert!(!allows("systemctl status", "./systemctl status"));
    assert!(!allows("/usr/bin/systemctl status", "systemctl status"));
    assert!(allows(
        "/usr/bin/systemctl status",
        "/usr/bin/systemctl status"
    ));
    match outcome("systemctl status", "/usr/bin/systemctl status") {
        Outcome::Mismatch { matched: 0, detail } => {
            assert!(detail.contains("typed exactly"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fixed_arity_without_trailing_star() {
    assert!(!allows("uptime", "uptime -p"));
    assert!(!allows("systemctl status nginx", "systemctl status"));
    assert_eq!(
        outcome("uptime", "uptime -p"),
        Outcome::Mismatch {
            matched: 1,
            detail: "word 2 \"-p\" is one too many: the rule allows exactly 1 word".into()
        }
    );
    assert_eq!(
        outcome("systemctl status nginx", "systemctl status"),
        Outcome::Mismatch {
            matched: 2,
            detail: "word 3 is missing: the rule expects \"nginx\"".into()
        }
    );
}

#[test]
fn standalone_star_in_the_middle_is_exactly_one_word() {
    let r = "tail -n * /var/log/syslog";
    assert!(allows(r, "tail -n 50 /var/log/syslog"));
    assert!(!allows(r, "tail -n /var/log/syslog"));
    assert!(!allows(r, "tail -n 5 0 /var/log/syslog"));
    let a: Vec<String> = ["tail", "-n", "", "/var/log/syslog"]
        .map(str::to_owned)
        .to_vec();
    assert_eq!(
        rule(r).evaluate(&a, &OptionGuard::builtin(), false),
        Outcome::Allowed
    );
}

#[test]
fn trailing_star_is_zero_or_more_words() {
    let r = "journalctl -u nginx *";
    assert!(allows(r, "journalctl -u nginx"));
    assert!(allows(r, "journalctl -u nginx --since today"));
    assert!(allows(r, "journalctl -u nginx -n 100 --no-pager"));
    assert!(!allows(r, "journalctl -u sshd"));
    assert!(!allows(r, "journalctl -u"));
    assert!(allows("ls * *", "ls a"));
    assert!(!allows("ls * *", "ls"));
}

#[test]
fn globs_match_one_word() {
    let r = "tail -n * /var/log/nginx/*.log";
    assert!(allows(r, "tail -n 5 /var/log/nginx/access.log"));
    assert!(allows(r, "tail -n 5 /var/log/nginx/.log"));
    assert!(!allows(r, "tail -n 5 /var/log/nginx/access.log.1"));
    assert!(!allows(r, "tail -n 5 /var/log/nginx/sub/access.log"));
    assert!(!allows(
        r,
        "tail -n 5 /var/log/nginx/../../../etc/shadow.log"
    ));
    assert!(!allows(
        r,
        "tail -n 5 /var/log/nginx/access.log /etc/shadow"
    ));
    assert!(allows("ls /srv/*/logs", "ls /srv/app/logs"));
    assert!(!allows("ls /srv/*/logs", "ls /srv/a/b/logs"));
    assert!(allows("cat *.txt", "cat notes.txt"));
    assert!(!allows("cat *.txt", "cat dir/notes.txt"));
}

#[test]
fn question_mark_is_one_character_but_not_a_slash() {
    assert!(allows("cat log.?", "cat log.1"));
    assert!(allows("cat log.?", "cat log.é"));
    assert!(!allows("cat log.?", "cat log."));
    assert!(!allows("cat log.?", "cat log.12"));
    assert!(!allows("cat a?b", "cat a/b"));
}

#[test]
fn path_globs_refuse_dot_segments() {
    let r = "cat /var/log/*/current";
    assert!(allows(r, "cat /var/log/app/current"));
    assert!(!allows(r, "cat /var/log/../current"));
    assert!(!allows(r, "cat /var/log/./current"));
    assert!(!allows("ls /srv/*", "ls /srv/.."));
    assert!(allows("ls /srv/*", "ls /srv/...")); // a name, not a dot segment
    assert!(allows("ls /srv/*", "ls /srv/.hidden"));
    match outcome(r, "cat /var/log/../current") {
        Outcome::Mismatch { matched: 1, detail } => {
            assert!(detail.contains("path segment"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    // Not a path glob: `..` is just text to it.
    assert!(allows("echo ?*", "echo .."));
}

#[test]
fn quoted_wildcards_in_rules_are_literal() {
    assert!(allows("echo 'a*'", "echo a*"));
    assert!(!allows("echo 'a*'", "echo ab"));
    assert!(allows("echo a\\?", "echo a?"));
    assert!(!allows("echo a\\?", "echo ab"));
    assert!(allows("echo 'a*'*", "echo a*xyz"));
    assert!(!allows("echo 'a*'*", "echo axyz"));
}

#[test]
fn wrappers_and_assignments_are_ordinary_words() {
    assert!(!allows("systemctl status *", "sudo systemctl status"));
    assert!(!allows("systemctl status *", "env systemctl status"));
    assert!(!allows("systemctl status *", "X=1 systemctl status"));
    assert!(allows("nice -n 10 make", "nice -n 10 make"));
}

#[test]
fn placeholders_pass_through_the_guard() {
    match outcome("curl *", "curl -o /etc/passwd http://x") {
        Outcome::Guarded(reason) => assert!(reason.contains("\"-o\""), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        outcome("less /var/log/*", "less /var/log/+!sh"),
        Outcome::Allowed
    ));
    assert!(matches!(
        outcome("less *", "less +!sh"),
        Outcome::Guarded(_)
    ));
    assert!(matches!(
        outcome("ls --color=* *", "ls --color=auto /tmp"),
        Outcome::Allowed
    ));
    assert!(matches!(
        outcome("find . -name *", "find . -name -exec"),
        Outcome::Guarded(_)
    ));
}

#[test]
fn literal_words_are_trusted() {
    assert!(allows(
        "curl -o /tmp/out https://example.com",
        "curl -o /tmp/out https://example.com"
    ));
    assert!(allows("git log -p *", "git log -p --stat"));
    assert!(!allows("git log *", "git log -p"));
}

#[test]
fn hostile_words_stay_fast() {
    let r = rule("cat *a*a*a*a*a*a*a*a*b");
    let a = vec!["cat".to_owned(), "a".repeat(4000)];
    let started = std::time::Instant::now();
    assert!(matches!(
        r.evaluate(&a, &OptionGuard::builtin(), false),
        Outcome::Mismatch { .. }
    ));
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}
