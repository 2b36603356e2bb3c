use super::*;

#[test]
fn blank_letters_are_refused() {
    for ch in ['\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}', '\u{2800}'] {
        let cmd = format!("ls{ch} /tmp");
        assert!(tokenize(cmd.as_bytes()).is_err(), "{:?}", ch);
    }
}

fn words(input: &str) -> Vec<String> {
    match tokenize(input.as_bytes()) {
        Ok(words) => words,
        Err(e) => panic!("{input:?} was refused: {e}"),
    }
}

fn err(input: &str) -> TokenizeError {
    match tokenize(input.as_bytes()) {
        Ok(words) => panic!("{input:?} was accepted as {words:?}"),
        Err(e) => e,
    }
}

#[test]
fn splits_on_spaces_and_tabs() {
    assert_eq!(
        words("systemctl  status\tnginx"),
        ["systemctl", "status", "nginx"]
    );
    assert_eq!(words("  ls  "), ["ls"]);
}

#[test]
fn single_quotes_keep_everything_literal() {
    assert_eq!(
        words(r#"echo 'a b' '$HOME' '`x`' ';|&<>()' '"' '\n' '#'"#),
        ["echo", "a b", "$HOME", "`x`", ";|&<>()", "\"", "\\n", "#"]
    );
}

#[test]
fn double_quotes_escape_only_quote_and_backslash() {
    assert_eq!(
        words(r#"echo "a b" "x\"y" "c\\d" "e\f" "'" "; |""#),
        ["echo", "a b", "x\"y", "c\\d", "e\\f", "'", "; |"]
    );
}

#[test]
fn backslash_escapes_one_character_outside_quotes() {
    assert_eq!(
        words(r#"find . -name x \; a\ b \' \" \\ \#"#),
        ["find", ".", "-name", "x", ";", "a b", "'", "\"", "\\", "#"]
    );
}

#[test]
fn quotes_join_into_one_word() {
    assert_eq!(words(r#"a'b'"c"d\ e"#), ["abcd e"]);
    assert_eq!(words(r#"x'y'"z""#), ["xyz"]);
}

#[test]
fn empty_quoted_words_are_words() {
    assert_eq!(words("printf '' \"\" x''"), ["printf", "", "", "x"]);
    assert_eq!(words("''"), [""]);
}

#[test]
fn globs_and_tildes_are_literal() {
    assert_eq!(
        words("ls * ?x [ab] ~ ~root {a,b} !! a=b"),
        ["ls", "*", "?x", "[ab]", "~", "~root", "{a,b}", "!!", "a=b"]
    );
}

#[test]
fn hash_inside_a_word_is_literal() {
    assert_eq!(words("echo a#b ''#"), ["echo", "a#b", "#"]);
}

#[test]
fn hash_at_word_start_is_a_comment() {
    assert_eq!(err("ls #x"), TokenizeError::Comment { offset: 3 });
    assert_eq!(err("#"), TokenizeError::Comment { offset: 0 });
}

#[test]
fn operators_are_refused() {
    for (input, offset, ch) in [
        ("ls; id", 2, ';'),
        ("ls & id", 3, '&'),
        ("ls | id", 3, '|'),
        ("ls >x", 3, '>'),
        ("ls <x", 3, '<'),
        ("(ls)", 0, '('),
        ("ls a)", 4, ')'),
        ("ls&&id", 2, '&'),
    ] {
        assert_eq!(
            err(input),
            TokenizeError::Operator { offset, ch },
            "{input}"
        );
    }
}

#[test]
fn expansions_are_refused_outside_single_quotes() {
    for (input, offset, ch) in [
        ("echo $HOME", 5, '$'),
        ("echo `id`", 5, '`'),
        ("echo \"$HOME\"", 6, '$'),
        ("echo \"`id`\"", 6, '`'),
        ("echo \\$HOME", 6, '$'),
        ("echo \"\\$x\"", 7, '$'),
        ("echo \"\\`x\"", 7, '`'),
        ("echo a$(id)", 6, '$'),
    ] {
        assert_eq!(
            err(input),
            TokenizeError::Expansion { offset, ch },
            "{input}"
        );
    }
}

#[test]
fn control_characters_are_refused_even_in_quotes() {
    for (input, offset, ch) in [
        ("echo \u{7}", 5, '\u{7}'),
        ("echo 'a\nb'", 7, '\n'),
        ("echo \"a\rb\"", 7, '\r'),
        ("ls\n", 2, '\n'),
        ("echo \u{7f}", 5, '\u{7f}'),
        ("echo '\u{85}'", 6, '\u{85}'),
        ("echo \u{9b}", 5, '\u{9b}'),
        ("echo '\0'", 6, '\0'),
        ("echo 'a\tb'", 7, '\t'),
        ("echo \"\t\"", 6, '\t'),
        ("echo \\\t", 6, '\t'),
        ("echo \\\n", 6, '\n'),
        ("echo \"\\\n\"", 7, '\n'),
    ] {
        assert_eq!(
            err(input),
            TokenizeError::ControlChar { offset, ch },
            "{input:?}"
        );
    }
}

#[test]
fn format_characters_are_refused_even_in_quotes() {
    for ch in [
        '\u{202E}',
        '\u{202A}',
        '\u{2066}',
        '\u{2069}',
        '\u{200E}',
        '\u{200F}',
        '\u{061C}',
        '\u{200B}',
        '\u{200C}',
        '\u{200D}',
        '\u{2060}',
        '\u{FEFF}',
        '\u{00AD}',
        '\u{2028}',
        '\u{2029}',
        '\u{180E}',
        '\u{E0041}',
    ] {
        let input = format!("echo 'a{ch}b'");
        assert_eq!(
            err(&input),
            TokenizeError::FormatChar { offset: 7, ch },
            "U+{:04X}",
            u32::from(ch)
        );
    }
}

#[test]
fn unicode_whitespace_is_refused() {
    for ch in [
        '\u{00A0}', '\u{2000}', '\u{2007}', '\u{200A}', '\u{3000}', '\u{1680}', '\u{205F}',
        '\u{202F}',
    ] {
        let input = format!("ls{ch}-la");
        assert_eq!(
            err(&input),
            TokenizeError::UnicodeWhitespace { offset: 2, ch },
            "U+{:04X}",
            u32::from(ch)
        );
        let quoted = format!("echo \"{ch}\"");
        assert!(matches!(
            err(&quoted),
            TokenizeError::UnicodeWhitespace { .. }
        ));
    }
}

#[test]
fn non_ascii_text_is_fine() {
    assert_eq!(
        words("grep 'héllo wörld' 日本"),
        ["grep", "héllo wörld", "日本"]
    );
}

#[test]
fn unterminated_quotes_are_refused() {
    assert_eq!(
        err("echo 'abc"),
        TokenizeError::UnterminatedQuote {
            offset: 5,
            quote: '\''
        }
    );
    assert_eq!(
        err("echo \"a\\\""),
        TokenizeError::UnterminatedQuote {
            offset: 5,
            quote: '"'
        }
    );
}

#[test]
fn trailing_backslash_is_refused() {
    assert_eq!(err("ls \\"), TokenizeError::TrailingBackslash { offset: 3 });
}

#[test]
fn empty_commands_are_refused() {
    assert_eq!(err(""), TokenizeError::Empty);
    assert_eq!(err("  \t "), TokenizeError::Empty);
}

#[test]
fn invalid_utf8_is_refused_with_its_offset() {
    assert_eq!(
        tokenize(b"ls \xff"),
        Err(TokenizeError::NotUtf8 { offset: 3 })
    );
    assert_eq!(
        tokenize(b"ls \xe2\x80"),
        Err(TokenizeError::NotUtf8 { offset: 3 })
    );
}

#[test]
fn command_length_limit() {
    let at_limit = format!("ls {}", "a".repeat(MAX_COMMAND_BYTES - 3));
    assert!(matches!(
        err(&at_limit),
        TokenizeError::WordTooLong { offset: 3 }
    ));
    let ok = format!("ls {} {}", "a".repeat(4000), "b".repeat(4000));
    assert_eq!(words(&ok).len(), 3);
    let over = "a ".repeat(MAX_COMMAND_BYTES / 2 + 1);
    assert_eq!(
        err(&over),
        TokenizeError::TooLong {
            len: MAX_COMMAND_BYTES + 2
        }
    );
}

#[test]
fn huge_input_fails_fast_on_length() {
    // Invalid UTF-8 and a control character right at the start: only the length check may
    // run, or the reported error would differ.
    let mut huge = vec![b'a'; 1 << 20];
    huge[0] = 0xff;
    huge[1] = b'\n';
    let started = std::time::Instant::now();
    assert_eq!(
        tokenize(&huge),
        Err(TokenizeError::TooLong { len: 1 << 20 })
    );
    assert!(started.elapsed() < std::time::Duration::from_millis(100));
}

#[test]
fn word_count_limit() {
    let ok = "a ".repeat(MAX_WORDS);
    assert_eq!(words(&ok).len(), MAX_WORDS);
    let over = "a ".repeat(MAX_WORDS + 1);
    assert_eq!(
        err(&over),
        TokenizeError::TooManyWords {
            offset: 2 * MAX_WORDS
        }
    );
    let over_empty = "'' ".repeat(MAX_WORDS + 1);
    assert!(matches!(
        err(&over_empty),
        TokenizeError::TooManyWords { .. }
    ));
}

#[test]
fn word_length_limit() {
    let ok = format!("echo {}", "x".repeat(MAX_WORD_BYTES));
    assert_eq!(words(&ok)[1].len(), MAX_WORD_BYTES);
    let over = format!("echo '{}'", "x".repeat(MAX_WORD_BYTES + 1));
    assert_eq!(err(&over), TokenizeError::WordTooLong { offset: 5 });
    // Multi-byte characters count in bytes.
    let wide = format!("echo {}", "é".repeat(MAX_WORD_BYTES / 2 + 1));
    assert_eq!(err(&wide), TokenizeError::WordTooLong { offset: 5 });
}

#[test]
fn wildcard_positions_follow_quoting() {
    let split = split_words(br#"ls *.log '*' a\*b "?" x?'*'*"#).unwrap_or_default();
    let positions: Vec<(&str, &[usize])> = split
        .iter()
        .map(|w| (w.text.as_str(), w.wildcards.as_slice()))
        .collect();
    assert_eq!(
        positions,
        [
            ("ls", &[][..]),
            ("*.log", &[0][..]),
            ("*", &[][..]),
            ("a*b", &[][..]),
            ("?", &[][..]),
            ("x?**", &[1, 3][..]),
        ]
    );
}

#[test]
fn messages_name_the_character_and_offset() {
    assert_eq!(
        err("echo '\u{7}' and more stuff").to_string(),
        "control character U+0007 at byte 6 is not allowed"
    );
    assert_eq!(
        err("ls\u{202E}x").to_string(),
        "invisible formatting character U+202E at byte 2 is not allowed"
    );
    assert!(err("ls;").to_string().contains("';' at byte 2"));
}
