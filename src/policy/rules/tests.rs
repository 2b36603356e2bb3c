use std::collections::BTreeMap;

use super::*;

fn allow_list(rules: &[&str]) -> AllowList {
    let rules = rules
        .iter()
        .map(|r| CommandRule::parse(r).unwrap_or_else(|e| panic!("{r:?}: {e}")))
        .collect();
    AllowList::new(rules, OptionGuard::builtin())
}

fn check(list: &AllowList, command: &str) -> Result<(), CommandDenial> {
    let argv = tokenize(command.as_bytes()).unwrap_or_else(|e| panic!("{command:?}: {e}"));
    list.check(&argv)
}

fn denial(list: &AllowList, command: &str) -> CommandDenial {
    match check(list, command) {
        Ok(()) => panic!("{command:?} was allowed"),
        Err(d) => d,
    }
}

fn owned(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

#[test]
fn allows_what_some_rule_allows() {
    let list = allow_list(&[
        "systemctl status *",
        "tail -n * /var/log/nginx/*.log",
        "journalctl -u nginx *",
        "grep -r 'a b' *",
    ]);
    for command in [
        "systemctl status",
        "systemctl status nginx --no-pager",
        "tail -n 100 /var/log/nginx/error.log",
        "journalctl -u nginx --since today",
        "grep -r 'a b' /etc/nginx",
        "grep -r \"a b\" /etc/nginx",
    ] {
        assert_eq!(check(&list, command), Ok(()), "{command}");
    }
    assert_eq!(list.rules().len(), 4);
}

#[test]
fn denial_names_the_closest_rule() {
    let list = allow_list(&["journalctl -u nginx *", "systemctl status *"]);
    let d = denial(&list, "systemctl stop nginx");
    assert_eq!(
        d.reason,
        "no rule allows \"systemctl stop nginx\"; closest: \"systemctl status *\" (word 2 \
             \"stop\" does not match \"status\")"
    );
    assert_eq!(d.hint, None);
    assert_eq!(d.to_string(), d.reason);
}

#[test]
fn denial_for_a_path_typed_command_word() {
    let list = allow_list(&["systemctl status *"]);
    let d = denial(&list, "/usr/bin/systemctl status");
    assert!(
        d.reason.contains("closest: \"systemctl status *\""),
        "{}",
        d.reason
    );
    assert!(d.reason.contains("typed exactly"), "{}", d.reason);
    assert_eq!(d.hint.as_deref(), Some("type the command as \"systemctl\""));
}

#[test]
fn denial_for_an_unknown_program_lists_what_is_allowed() {
    let list = allow_list(&["systemctl status *", "systemctl restart nginx", "uptime"]);
    let d = denial(&list, "rm -rf /");
    assert_eq!(d.reason, "no rule allows \"rm -rf /\"");
    assert_eq!(
        d.hint.as_deref(),
        Some("allowed commands: \"systemctl\", \"uptime\"")
    );
    let empty = allow_list(&[]);
    let d = denial(&empty, "ls");
    assert_eq!(d.hint.as_deref(), Some("this access allows no commands"));
}

#[test]
fn guard_denials_win_over_mismatches() {
    let list = allow_list(&["curl https://example.com/", "curl *"]);
    let d = denial(&list, "curl --output /etc/passwd https://evil/");
    assert_eq!(
        d.reason,
        "option \"--output\" of curl is not allowed (writes files)"
    );
    assert!(d.hint.unwrap_or_default().contains("\"curl *\""));
    assert_eq!(check(&list, "curl -s https://example.com/"), Ok(()));
}

#[test]
fn a_later_rule_can_still_allow() {
    let list = allow_list(&["curl *", "curl -o /tmp/report https://example.com/"]);
    assert_eq!(
        check(&list, "curl -o /tmp/report https://example.com/"),
        Ok(())
    );
}

#[test]
fn empty_argv_is_denied() {
    let list = allow_list(&["ls *"]);
    assert_eq!(
        list.check(&[]),
        Err(CommandDenial {
            reason: "the command is empty".to_owned(),
            hint: None
        })
    );
}

#[test]
fn argv_with_forbidden_characters_is_denied_even_if_a_rule_matches() {
    let list = allow_list(&["echo *"]);
    for (word, kind) in [
        ("a\u{1b}[2J", "control character U+001B"),
        ("a\tb", "control character U+0009"),
        ("a\u{202E}b", "invisible formatting character U+202E"),
        ("a\u{A0}b", "whitespace character U+00A0"),
    ] {
        let d = list
            .check(&owned(&["echo", word]))
            .err()
            .unwrap_or_else(|| panic!("{word:?}"));
        assert_eq!(
            d.reason,
            format!("word 2 contains {kind}, which is not allowed")
        );
    }
    let too_many = vec!["echo".to_owned(); MAX_WORDS + 1];
    assert!(list.check(&too_many).is_err());
    let too_long = owned(&["echo", &"x".repeat(MAX_WORD_BYTES + 1)]);
    assert!(list.check(&too_long).is_err());
}

#[test]
fn denials_escape_what_the_user_typed() {
    let list = allow_list(&["ls *"]);
    let d = list
        .check(&owned(&["cat", "\"quoted\"", "back\\slash"]))
        .err()
        .unwrap_or_else(|| panic!("allowed"));
    assert_eq!(d.reason, r#"no rule allows "cat \"quoted\" back\\slash""#);
    let long = "x".repeat(500);
    let d = list
        .check(&owned(&["cat", &long]))
        .err()
        .unwrap_or_else(|| panic!("allowed"));
    assert!(d.reason.len() < 200, "{}", d.reason);
    assert!(d.reason.ends_with('…'), "{}", d.reason);
}

#[test]
fn extended_guard_is_used() {
    let mut extra = BTreeMap::new();
    extra.insert("myctl".to_owned(), vec!["--dangerous".to_owned()]);
    let guard = OptionGuard::builtin()
        .with_extra(&extra)
        .unwrap_or_else(|e| panic!("{e}"));
    let list = AllowList::new(
        vec![CommandRule::parse("myctl *").unwrap_or_else(|e| panic!("{e}"))],
        guard,
    );
    assert!(check(&list, "myctl --safe").is_ok());
    assert!(check(&list, "myctl --dang").is_err());
    assert!(list.guard().guards("myctl"));
}

#[test]
fn end_to_end_requoting() {
    let list = allow_list(&["grep -r * /var/log/app"]);
    let argv = tokenize(br#"grep -r "it's; $(not run)" /var/log/app"#);
    // `$` inside double quotes is refused before matching.
    assert!(argv.is_err());
    let argv =
        tokenize(br"grep -r 'it'\''s; $(not run)' /var/log/app").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(list.check(&argv), Ok(()));
    assert_eq!(
        quote(&argv),
        r"'grep' '-r' 'it'\''s; $(not run)' '/var/log/app'"
    );
}

#[test]
fn rule_error_messages() {
    assert_eq!(
        RuleError::WildcardCommand {
            word: "*".to_owned()
        }
        .to_string(),
        "the command word may not be a wildcard (\"*\"): it would let users choose the \
             program; name the program exactly"
    );
    let syntax = CommandRule::parse("ls; id")
        .err()
        .unwrap_or(RuleError::Empty);
    assert_eq!(
        syntax.to_string(),
        "the rule cannot be read: shell operator ';' at byte 2 is not allowed: commands are \
             not run by a shell; quote it if it is meant literally"
    );
    assert!(std::error::Error::source(&syntax).is_some());
    let mut extra = BTreeMap::new();
    extra.insert("curl".to_owned(), vec!["output".to_owned()]);
    let bad = OptionGuard::builtin()
        .with_extra(&extra)
        .err()
        .unwrap_or(RuleError::Empty);
    assert_eq!(
        bad.to_string(),
        "deny_options for \"curl\": \"output\" must look like -x, --name, -name, + or name="
    );
}

#[test]
fn every_tokenize_error_has_a_plain_message() {
    for error in [
        TokenizeError::NotUtf8 { offset: 1 },
        TokenizeError::TooLong { len: 9000 },
        TokenizeError::TooManyWords { offset: 600 },
        TokenizeError::WordTooLong { offset: 3 },
        TokenizeError::ControlChar {
            offset: 1,
            ch: '\u{1b}',
        },
        TokenizeError::FormatChar {
            offset: 1,
            ch: '\u{202e}',
        },
        TokenizeError::UnicodeWhitespace {
            offset: 1,
            ch: '\u{a0}',
        },
        TokenizeError::Operator { offset: 1, ch: ';' },
        TokenizeError::Expansion { offset: 1, ch: '$' },
        TokenizeError::UnterminatedQuote {
            offset: 1,
            quote: '"',
        },
        TokenizeError::TrailingBackslash { offset: 1 },
        TokenizeError::Comment { offset: 1 },
        TokenizeError::Empty,
    ] {
        let message = error.to_string();
        assert!(!message.is_empty());
        assert!(
            invalid_argv(std::slice::from_ref(&message)).is_none(),
            "{message:?} carries a forbidden character"
        );
    }
}

proptest::proptest! {
    /// Whatever the tokeniser accepts passes the argv re-check and survives re-quoting.
    #[test]
    fn accepted_words_are_clean(
        input in proptest::collection::vec(
            proptest::sample::select(vec![
                b'a', b'-', b' ', b'\t', b'\'', b'"', b'\\', b'$', b'`', b';', b'#', b'*',
                b'/', b'.', b'\n', 0xc2, 0xa0, 0xe2, 0x80, 0xae, 0xff,
            ]),
            0..40,
        )
    ) {
        if let Ok(words) = tokenize(&input) {
            proptest::prop_assert_eq!(invalid_argv(&words), None);
            proptest::prop_assert_eq!(tokenize(quote(&words).as_bytes()), Ok(words));
        }
    }

    /// A glob without `/` never matches a word containing one.
    #[test]
    fn word_globs_never_cross_slashes(word in "[a-z/.]{0,12}") {
        let list = allow_list(&["cat *a*", "cat ?*?"]);
        if word.contains('/') {
            proptest::prop_assert!(list.check(&owned(&["cat", &word])).is_err());
        }
    }
}

#[test]
fn shown_escapes_invisible_characters() {
    assert_eq!(shown("a\u{7}b"), r#""a\u{7}b""#);
    assert_eq!(shown("a\u{202E}b"), r#""a\u{202e}b""#);
    assert_eq!(shown("a\nb"), r#""a\nb""#);
}
