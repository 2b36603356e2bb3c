//! Fuzzes the command-rule engine: the tokeniser, the quoting that carries an approved argv to
//! the target, the allow-list with its option guard, the rule parser and `deny_options`.
//!
//! Properties checked on every input:
//! - `tokenize` never panics; what it accepts is non-empty, within the limits, and free of the
//!   characters it refuses;
//! - `quote` is inverted by `tokenize` (whenever the quoted line itself fits the length limit;
//!   quoting adds bytes, so a line near 8 KiB may not);
//! - a fixed allow-list never panics, and whatever it allows re-tokenises from its quoted form
//!   to the same argv, which the allow-list allows again;
//! - the input read as a rule (lossy UTF-8) either fails to parse or gives a rule that lint,
//!   `check` and `Display` handle, and whose text the tokeniser accepts too;
//! - the input read as a `deny_options` entry either fails validation or gives a guard that
//!   checks every word of the tokenised input without panicking.

#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use gatehouse::policy::rules::{
    AllowList, CommandRule, MAX_COMMAND_BYTES, MAX_WORD_BYTES, MAX_WORDS, OptionGuard,
    TokenizeError, check_char, lint, quote, tokenize,
};
use libfuzzer_sys::fuzz_target;

/// A realistic role: the same rules as the end-to-end corpus (tests/jea_corpus.rs).
const RULES: &[&str] = &[
    "systemctl status *",
    "systemctl restart nginx",
    "timeout 10 systemctl status *",
    "sudo -n systemctl restart nginx",
    "journalctl -u nginx *",
    "tail -n * /var/log/nginx/*.log",
    "cat /var/log/app/*.log",
    "grep -r * /srv/app",
    "git log *",
    "find /srv/app -name *",
    "ls *",
    "less /var/log/syslog",
    "less -* /var/log/syslog",
    "less -R /var/log/nginx/*.log *",
    "curl https://status.internal/health",
    "curl -sS https://status.internal/health *",
    "tar -czf /tmp/backup.tgz /srv/app",
    "tar -tzf /srv/backups/*.tgz *",
    "echo-args *",
    "grep -r 'a b' *",
    "lit 'a*' b?c a\\*b *",
];

/// The built-in guard, built once: building it per input would dominate the run time.
fn builtin() -> &'static OptionGuard {
    static GUARD: OnceLock<OptionGuard> = OnceLock::new();
    GUARD.get_or_init(OptionGuard::builtin)
}

fn allow_list() -> &'static AllowList {
    static LIST: OnceLock<AllowList> = OnceLock::new();
    LIST.get_or_init(|| {
        let rules = RULES
            .iter()
            .map(|r| CommandRule::parse(r).unwrap_or_else(|e| panic!("{r:?}: {e}")))
            .collect();
        let mut extra = BTreeMap::new();
        extra.insert(
            "journalctl".to_owned(),
            [
                "-u",
                "--unit",
                "--user-unit",
                "-t",
                "--identifier",
                "+",
                "SYSLOG_IDENTIFIER=",
            ]
            .map(str::to_owned)
            .to_vec(),
        );
        extra.insert(
            "grep".to_owned(),
            ["-f", "--file"].map(str::to_owned).to_vec(),
        );
        let guard = builtin()
            .clone()
            .with_extra(&extra)
            .unwrap_or_else(|e| panic!("{e}"));
        AllowList::new(rules, guard)
    })
}

/// `tokenize(quote(argv)) == argv`, allowing only for the quoted line being over the length
/// limit.
fn assert_round_trip(argv: &[String]) {
    let line = quote(argv);
    match tokenize(line.as_bytes()) {
        Ok(again) => assert_eq!(again, argv, "quote → tokenize changed the argv: {line:?}"),
        Err(TokenizeError::TooLong { len }) => {
            assert!(
                line.len() > MAX_COMMAND_BYTES && len == line.len(),
                "{line:?}"
            )
        }
        Err(e) => panic!("the quoted form of {argv:?} is refused: {e} ({line:?})"),
    }
}

fn check_tokenized(argv: &[String]) {
    assert!(!argv.is_empty(), "tokenize accepted an empty command");
    assert!(argv.len() <= MAX_WORDS, "{} words", argv.len());
    for word in argv {
        assert!(word.len() <= MAX_WORD_BYTES, "word of {} bytes", word.len());
        for (offset, ch) in word.char_indices() {
            assert!(
                check_char(offset, ch).is_ok(),
                "tokenize let U+{:04X} through in {word:?}",
                u32::from(ch)
            );
        }
    }
}

fn fuzz_rule(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(rule) = CommandRule::parse(&text) else {
        return;
    };
    assert_eq!(rule.source(), text);
    assert_eq!(rule.to_string(), text);
    // Rules and commands share the tokeniser.
    let words = tokenize(text.as_bytes())
        .unwrap_or_else(|e| panic!("rule {text:?} parsed but its text does not tokenise: {e}"));
    assert_eq!(rule.program(), words[0]);
    let _ = lint(&rule);
    let list = AllowList::new(vec![rule], builtin().clone());
    if let Err(denial) = list.check(&words) {
        assert!(!denial.reason.is_empty());
    }
}

fn fuzz_deny_options(data: &[u8], argv: Option<&[String]>) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\n');
    let Some(program) = parts.next() else {
        return;
    };
    let options: Vec<String> = parts.map(str::to_owned).collect();
    if options.is_empty() {
        return;
    }
    let mut extra = BTreeMap::new();
    extra.insert(program.to_owned(), options);
    let Ok(guard) = builtin().clone().with_extra(&extra) else {
        return;
    };
    if let Some(argv) = argv {
        for index in 0..=argv.len() {
            let _ = guard.check(argv, index);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let tokenized = tokenize(data);
    if let Ok(argv) = &tokenized {
        check_tokenized(argv);
        assert_round_trip(argv);
        if allow_list().check(argv).is_ok() {
            assert_round_trip(argv);
            let again = tokenize(quote(argv).as_bytes());
            if let Ok(again) = again {
                assert!(
                    allow_list().check(&again).is_ok(),
                    "allowed {argv:?}, but not its re-tokenised quoted form"
                );
            }
            assert!(
                allow_list()
                    .rules()
                    .iter()
                    .any(|rule| rule.program() == argv[0]),
                "allowed {argv:?}, whose command word no rule names"
            );
        }
    }
    fuzz_rule(data);
    fuzz_deny_options(data, tokenized.as_deref().ok());
});
