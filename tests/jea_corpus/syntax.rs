//! Corpus cases on how a command line is read: shell syntax, quoting, arity, the command word,
//! Unicode, control characters, invalid UTF-8 and the size limits.

use super::{Case, allow, allow_owned, deny, deny_bytes};

/// Cases on reading the command line.
pub(super) fn cases() -> Vec<Case> {
    let mut c = vec![
        // ---- Shell injection: operators, expansions and line breaks are refused outright.
        deny("inject: semicolon", "systemctl status nginx; id"),
        deny("inject: semicolon, no space", "systemctl status nginx;id"),
        deny("inject: &&", "systemctl status nginx && id"),
        deny("inject: ||", "systemctl status nginx || id"),
        deny("inject: pipe", "systemctl status nginx | sh"),
        deny("inject: |&", "ls |& id"),
        deny("inject: background &", "systemctl status nginx & id"),
        deny("inject: trailing &", "systemctl status nginx &"),
        deny("inject: $(…)", "systemctl status $(id)"),
        deny(
            "inject: $(…) in double quotes",
            r#"systemctl status "$(id)""#,
        ),
        deny("inject: backticks", "systemctl status `id`"),
        deny(
            "inject: backticks in double quotes",
            r#"systemctl status "`id`""#,
        ),
        deny("inject: redirect >", "systemctl status nginx > /tmp/x"),
        deny("inject: redirect >>", "ls >>/tmp/x"),
        deny("inject: redirect <", "cat /var/log/app/a.log < /etc/shadow"),
        deny("inject: 2>&1", "ls 2>&1"),
        deny("inject: here-doc", "ls <<EOF"),
        deny("inject: process substitution", "ls <(id)"),
        deny("inject: subshell", "(id)"),
        deny("inject: newline", "systemctl status nginx\nid"),
        deny("inject: carriage return", "systemctl status nginx\rid"),
        deny("inject: $IFS", "systemctl${IFS}status nginx"),
        deny("inject: bare $IFS", "ls$IFS-la"),
        deny("inject: escaped $", r"echo-args \$HOME"),
        deny("inject: $ in double quotes", r#"echo-args "$HOME""#),
        deny("inject: arithmetic", "echo-args $((1+1))"),
        deny("inject: comment", "systemctl status nginx #x"),
        deny("inject: escaped newline", "echo-args a\\\nb"),
        allow(
            "literal: # inside a word",
            "echo-args a#b",
            &["echo-args", "a#b"],
        ),
        allow(
            "literal: quoted operators and expansions",
            r#"echo-args 'a;b' "c|d" e\&f '>x' '$(id)' '`id`'"#,
            &["echo-args", "a;b", "c|d", "e&f", ">x", "$(id)", "`id`"],
        ),
        allow(
            "literal: single-quoted $(…) reaches the target unexpanded",
            "systemctl status '$(touch /tmp/gatehouse-pwned)'",
            &["systemctl", "status", "$(touch /tmp/gatehouse-pwned)"],
        ),
        allow(
            "literal: globs, tilde, braces and history are not expanded",
            "ls * ~root {a,b} !! ?",
            &["ls", "*", "~root", "{a,b}", "!!", "?"],
        ),
        allow(
            "literal: escaped ; is part of the word",
            r"systemctl status nginx\;id",
            &["systemctl", "status", "nginx;id"],
        ),
        deny(
            "literal: escaped ; does not match a literal rule word",
            r"systemctl restart nginx\;id",
        ),
        // ---- Quoting: quote removal happens before matching, and the argv is exact.
        allow(
            "quote: 'sys''temctl'",
            "'sys''temctl' status nginx",
            &["systemctl", "status", "nginx"],
        ),
        allow(
            "quote: mixed quotes and a backslash",
            r#"sys"tem"ctl "status" ngi\nx"#,
            &["systemctl", "status", "nginx"],
        ),
        allow(
            "quote: quoted fixed rule",
            r#""systemctl" restart 'ngin'x"#,
            &["systemctl", "restart", "nginx"],
        ),
        deny(
            "quote: escaped space joins words",
            r"systemctl\ status nginx",
        ),
        deny(
            "quote: quoted space joins words",
            "'systemctl status' nginx",
        ),
        allow(
            "quote: single quotes inside words",
            r#"echo-args "it's" 'say "hi"' 'a'\''b'"#,
            &["echo-args", "it's", "say \"hi\"", "a'b"],
        ),
        allow(
            "quote: empty words are words",
            r#"echo-args '' """#,
            &["echo-args", "", ""],
        ),
        allow(
            "quote: backslashes",
            r#"echo-args a\\b "c\\d" 'e\f' "g\h""#,
            &["echo-args", r"a\b", r"c\d", r"e\f", r"g\h"],
        ),
        allow(
            "quote: tabs separate words",
            "echo-args\ta\t\tb",
            &["echo-args", "a", "b"],
        ),
        allow(
            "quote: extra spaces around words",
            "   systemctl   status   nginx   ",
            &["systemctl", "status", "nginx"],
        ),
        deny("quote: tab inside quotes", "echo-args 'a\tb'"),
        deny("quote: unterminated '", "echo-args 'abc"),
        deny("quote: unterminated \"", r#"echo-args "abc"#),
        deny("quote: escaped closing \"", r#"echo-args "abc\""#),
        deny("quote: trailing backslash", r"echo-args abc\"),
        deny("quote: lone trailing backslash", r"echo-args \"),
        deny("empty: no command", ""),
        deny("empty: whitespace only", "  \t "),
        deny("empty: '' as the command", "''"),
        deny("empty: quoted space as the command", "' '"),
        // ---- Fixed arity and trailing stars.
        allow(
            "arity: fixed rule",
            "systemctl restart nginx",
            &["systemctl", "restart", "nginx"],
        ),
        deny("arity: one word too many", "systemctl restart nginx extra"),
        deny("arity: an empty extra word", "systemctl restart nginx ''"),
        deny("arity: one word missing", "systemctl restart"),
        deny("arity: different unit", "systemctl restart nginx2"),
        deny("arity: different verb", "systemctl stop nginx"),
        allow(
            "arity: trailing * takes zero words",
            "journalctl -u nginx",
            &["journalctl", "-u", "nginx"],
        ),
        allow(
            "arity: trailing * takes several words",
            "journalctl -u nginx --since today -n 50 --no-pager",
            &[
                "journalctl",
                "-u",
                "nginx",
                "--since",
                "today",
                "-n",
                "50",
                "--no-pager",
            ],
        ),
        allow(
            "arity: systemctl status alone",
            "systemctl status",
            &["systemctl", "status"],
        ),
        allow(
            "arity: fixed rule with a wrapper",
            "sudo -n systemctl restart nginx",
            &["sudo", "-n", "systemctl", "restart", "nginx"],
        ),
        deny(
            "arity: wrapper rule plus a word",
            "sudo -n systemctl restart nginx --now",
        ),
        allow(
            "arity: fixed tar",
            "tar -czf /tmp/backup.tgz /srv/app",
            &["tar", "-czf", "/tmp/backup.tgz", "/srv/app"],
        ),
        deny(
            "arity: fixed tar plus a path",
            "tar -czf /tmp/backup.tgz /srv/app /etc/shadow",
        ),
        allow(
            "arity: fixed curl",
            "curl https://status.internal/health",
            &["curl", "https://status.internal/health"],
        ),
        deny(
            "arity: fixed curl, another URL",
            "curl https://status.internal/health?x=1",
        ),
        allow(
            "arity: fixed less",
            "less /var/log/syslog",
            &["less", "/var/log/syslog"],
        ),
        deny("arity: fixed less plus +!sh", "less /var/log/syslog +!sh"),
        deny("arity: +!sh before the file", "less +!sh /var/log/syslog"),
        // ---- The command word is compared exactly.
        deny("path: absolute", "/usr/bin/systemctl status nginx"),
        deny("path: ./", "./systemctl status nginx"),
        deny("path: ../", "../bin/systemctl status nginx"),
        deny("path: /bin/ls", "/bin/ls"),
        deny("path: upper case", "SYSTEMCTL status nginx"),
        // ---- Wrappers and assignments are ordinary words.
        deny("wrapper: env", "env systemctl status nginx"),
        deny("wrapper: sudo", "sudo systemctl status nginx"),
        deny(
            "wrapper: sudo -n with another verb",
            "sudo -n systemctl status nginx",
        ),
        deny("wrapper: X=1", "X=1 systemctl status nginx"),
        deny("wrapper: PATH=", "PATH=/tmp systemctl status nginx"),
        deny("wrapper: nice", "nice systemctl status nginx"),
        deny("wrapper: xargs", "xargs systemctl status"),
        deny("wrapper: command", "command systemctl status nginx"),
        deny("wrapper: exec", "exec systemctl status nginx"),
        deny("wrapper: nohup", "nohup systemctl status nginx"),
        deny("wrapper: sh -c", "sh -c 'systemctl status nginx'"),
        deny("wrapper: busybox", "busybox sh"),
        // ---- Unicode look-alikes never match.
        deny("lookalike: Cyrillic s", "\u{455}ystemctl status nginx"),
        deny(
            "lookalike: fullwidth",
            "\u{ff53}\u{ff59}\u{ff53}\u{ff54}\u{ff45}\u{ff4d}\u{ff43}\u{ff54}\u{ff4c} status nginx",
        ),
        deny(
            "lookalike: Cyrillic s in the verb",
            "systemctl \u{455}tatus nginx",
        ),
        deny(
            "lookalike: Cyrillic x in a literal",
            "systemctl restart ngin\u{445}",
        ),
        deny("lookalike: capital I for l", "systemctI status nginx"),
        deny(
            "lookalike: combining accent",
            "systemctl restart nginx\u{301}",
        ),
        allow(
            "lookalike: non-ASCII in a placeholder passes byte for byte",
            "systemctl status ngin\u{445}",
            &["systemctl", "status", "ngin\u{445}"],
        ),
        // ---- Unicode separators, invisible and bidi characters are refused, even quoted.
        deny(
            "unicode: U+00A0 between words",
            "systemctl\u{a0}status nginx",
        ),
        deny("unicode: U+00A0 quoted", "echo-args 'a\u{a0}b'"),
        deny("unicode: U+2028", "systemctl status nginx\u{2028}id"),
        deny("unicode: U+2029", "systemctl status nginx\u{2029}id"),
        deny("unicode: U+200B", "systemctl status ngi\u{200b}nx"),
        deny("unicode: U+200D", "systemctl status ngi\u{200d}nx"),
        deny("unicode: U+202E", "echo-args '\u{202e}gol.x'"),
        deny("unicode: U+2066", "echo-args \u{2066}x\u{2069}"),
        deny("unicode: U+FEFF", "\u{feff}systemctl status nginx"),
        deny("unicode: U+3000", "systemctl\u{3000}status nginx"),
        deny("unicode: U+2009", "systemctl status\u{2009}nginx"),
        deny("unicode: U+1680", "systemctl status\u{1680}nginx"),
        deny("unicode: U+0085", "systemctl status nginx\u{85}id"),
        deny("unicode: U+00AD", "systemctl status ngi\u{ad}nx"),
        deny("unicode: U+E0041 tag", "systemctl status nginx\u{e0041}"),
        deny("unicode: U+180E", "systemctl status ngi\u{180e}nx"),
        // U+3164 (Hangul filler) is a letter that prints as nothing: two different words would
        // look the same, so it is refused like invisible whitespace.
        deny("unicode: U+3164 blank letter", "systemctl status \u{3164}"),
        deny("unicode: U+2800 blank Braille", "systemctl status \u{2800}"),
        // ---- Control characters are refused anywhere.
        deny("control: BEL", "echo-args a\u{7}b"),
        deny("control: ESC quoted", "echo-args '\u{1b}[2Jx'"),
        deny(
            "control: ESC in the command word",
            "\u{1b}[1msystemctl status nginx",
        ),
        deny("control: DEL", "echo-args a\u{7f}b"),
        deny(
            "control: backspaces",
            "systemctl status nginx\u{8}\u{8}\u{8}\u{8}\u{8}sshd",
        ),
        deny("control: VT", "echo-args a\u{b}b"),
        deny("control: FF", "echo-args a\u{c}b"),
        deny("control: C1 CSI", "echo-args \u{9b}2J"),
        deny_bytes("control: NUL", b"echo-args a\0b").raw(),
        deny_bytes("control: NUL then more", b"systemctl status nginx\0; id").raw(),
        allow(
            "control: the raw client reaches the target",
            "echo-args sent raw",
            &["echo-args", "sent", "raw"],
        )
        .raw(),
        // ---- Invalid UTF-8.
        deny_bytes("utf8: 0xFF", b"echo-args \xff"),
        deny_bytes("utf8: overlong /", b"echo-args \xc0\xaf"),
        deny_bytes("utf8: surrogate", b"echo-args \xed\xa0\x80"),
        deny_bytes("utf8: truncated", b"echo-args \xe2\x80"),
        deny_bytes("utf8: Latin-1", b"echo-args caf\xe9"),
        deny_bytes("utf8: in the command word", b"systemctl\xff status"),
    ];
    c.extend(limits());
    c
}

/// Cases at and over the limits (8 KiB command, 256 words, 4 KiB word).
fn limits() -> Vec<Case> {
    let mut c = Vec::new();
    // 10 + 2730 + 1 + 2730 + 1 + 2720 = 8192 bytes.
    let words = ["a".repeat(2730), "b".repeat(2730), "c".repeat(2720)];
    let command = format!("echo-args {}", words.join(" "));
    assert_eq!(command.len(), 8192);
    let mut argv = vec!["echo-args".to_owned()];
    argv.extend(words.iter().cloned());
    c.push(allow_owned(
        "limit: command of 8192 bytes",
        command.clone(),
        argv,
    ));
    c.push(deny("limit: command of 8193 bytes", &format!("{command}c")));
    c.push(deny(
        "limit: command of 9 KiB",
        &format!("echo-args {}", "x ".repeat(4603)),
    ));
    let mut argv = vec!["echo-args".to_owned()];
    argv.extend((1..256).map(|i| format!("w{i}")));
    c.push(allow_owned(
        "limit: 256 words",
        argv.join(" "),
        argv.clone(),
    ));
    c.push(deny(
        "limit: 257 words",
        &format!("{} w256", argv.join(" ")),
    ));
    c.push(deny(
        "limit: 300 words",
        &format!("echo-args{}", " w".repeat(299)),
    ));
    c.push(deny(
        "limit: 257 empty words",
        &format!("echo-args{}", " ''".repeat(256)),
    ));
    let word = "y".repeat(4096);
    c.push(allow_owned(
        "limit: word of 4096 bytes",
        format!("echo-args {word}"),
        vec!["echo-args".to_owned(), word.clone()],
    ));
    c.push(deny(
        "limit: word of 4097 bytes",
        &format!("echo-args {word}y"),
    ));
    c.push(deny(
        "limit: word of 5 KiB",
        &format!("echo-args '{}'", "z".repeat(5120)),
    ));
    c
}
