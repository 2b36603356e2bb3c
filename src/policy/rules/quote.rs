//! Re-quoting an approved argv for the target's shell.

/// Joins `argv` into a command line in which every word is single-quoted (`'` becomes `'\''`),
/// separated by single spaces.
///
/// The target's SSH server hands an exec request to the login shell, so the approved words must
/// reach it in a form that shell cannot reinterpret. Inside single quotes a POSIX shell expands
/// nothing, so each word arrives exactly as it was approved, including glob characters, `$` and
/// `~`. The line is built only from the approved words, never from the user's original text, so
/// whatever the user typed around them cannot reach the target.
///
/// `tokenize(quote(argv).as_bytes())` gives back `argv` for any argv whose words pass the
/// tokeniser's character checks and limits (see the tests).
#[must_use]
pub fn quote(argv: &[String]) -> String {
    let capacity = argv.iter().map(|word| word.len() + 3).sum();
    let mut line = String::with_capacity(capacity);
    for (i, word) in argv.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        line.push('\'');
        for ch in word.chars() {
            if ch == '\'' {
                line.push_str(r"'\''");
            } else {
                line.push(ch);
            }
        }
        line.push('\'');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::super::tokenize;
    use super::*;
    use proptest::prelude::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn quotes_every_word() {
        assert_eq!(
            quote(&argv(&["systemctl", "status", "nginx"])),
            "'systemctl' 'status' 'nginx'"
        );
        assert_eq!(quote(&argv(&["echo", "it's"])), r"'echo' 'it'\''s'");
        assert_eq!(quote(&argv(&["printf", ""])), "'printf' ''");
        assert_eq!(
            quote(&argv(&["echo", "$HOME", "*", "a b", "~"])),
            "'echo' '$HOME' '*' 'a b' '~'"
        );
        assert_eq!(quote(&[]), "");
    }

    /// Characters that exercise quoting; control, format and non-ASCII whitespace characters are
    /// left out because the tokeniser refuses them by design.
    fn word_char() -> impl Strategy<Value = char> {
        prop_oneof![
            4 => proptest::char::range(' ', '~'),
            2 => proptest::sample::select(vec![
                '\'', '"', '\\', '$', '`', ';', '&', '|', '<', '>', '(', ')', '#', '*', '?', '~',
                ' ', '!', '{', '}', '[', ']', '=', '%', '-',
            ]),
            1 => proptest::sample::select(vec!['é', 'ß', '日', '本', '🙂', 'Ω', '\u{300}']),
        ]
    }

    fn word() -> impl Strategy<Value = String> {
        proptest::collection::vec(word_char(), 0..12).prop_map(String::from_iter)
    }

    fn argvs() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(word(), 1..8)
    }

    proptest! {
        #[test]
        fn tokenize_inverts_quote(argv in argvs()) {
            let line = quote(&argv);
            prop_assert_eq!(tokenize(line.as_bytes()), Ok(argv));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// A real POSIX shell reads the quoted line back as the same words.
        #[test]
        fn sh_reads_the_same_words(argv in argvs()) {
            let script = format!("printf '%s\\0' {}", quote(&argv));
            let output = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&script)
                .output();
            let output = match output {
                Ok(output) => output,
                Err(e) => return Err(TestCaseError::fail(format!("cannot run /bin/sh: {e}"))),
            };
            prop_assert!(output.status.success(), "{:?}", output);
            let mut printed: Vec<String> = output
                .stdout
                .split(|&b| b == 0)
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            prop_assert_eq!(printed.pop(), Some(String::new()));
            prop_assert_eq!(printed, argv);
        }
    }
}
