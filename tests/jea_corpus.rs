//! A corpus of attempts to get around a role's command rules, each with its expected verdict, run
//! end to end: real `ssh` → `gatehouse` → real `sshd`.
//!
//! The target's account runs small recorders instead of the real programs: one shell script per
//! program named in the rules, each writing the argv it received (its own name, then its
//! arguments, NUL-separated) to a new file. A case that should be allowed must exit 0 and leave
//! exactly one record equal to the expected argv; a case that should be denied must exit 126 with
//! `gatehouse: denied:` on stderr, leave no record, and cause no login on the target.
//!
//! How the recorders come first in `PATH`: the target's `sshd_config` gets
//! `SetEnv PATH=<dir>/bin:/usr/bin:/bin HOME=<dir>/home`. OpenSSH (7.8 and later, checked with
//! 9.2) applies `SetEnv` after it has built the session's default environment, so these replace
//! the defaults, for forced commands too (the certificate's `force-command` is what runs here).
//! `HOME` matters as much as `PATH`: the command still goes through the account's login shell,
//! and Debian's bash reads `~/.bashrc` for commands run by sshd. The account running the tests
//! may have start-up files that call programs by bare name (pyenv's init calls `cat`, and would
//! rewrite its shims with a recorder's empty output); an empty `HOME` keeps them out of the
//! sessions. The test does not take any of this on trust: before the corpus it runs `command -v`
//! for every program through a `shell = "full"` role, requires each to resolve to its recorder,
//! and requires that this session ran no recorder on its own. Rules keep bare program names, as
//! real policies do; `ForceCommand` in `sshd_config` would not help, since the command to run is
//! exactly what is under test.
//!
//! Some bytes cannot be passed by the OpenSSH client: a command-line argument cannot hold NUL.
//! Those cases go through a small SSH client built on russh (`Via::Raw`), which sends the exec
//! request's bytes as given; one allowed case goes the same way to show that this path reaches
//! the target at all.
//!
//! Markers in the table: `// CONSERVATIVE:` the guard refuses something harmless, by design;
//! `// POLICY:` allowed as the rules say, although the rule is wider than it looks. Cases that
//! once got through are kept with a note on how the program reads them. A case found to get
//! through is added with the safe verdict, so that the test fails until the engine is fixed.

#[path = "jea_corpus/classes.rs"]
mod classes;
mod common;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// Programs named by the rules; each gets a recorder on the target.
const PROGRAMS: &[&str] = &[
    "systemctl",
    "journalctl",
    "tail",
    "cat",
    "grep",
    "git",
    "find",
    "ls",
    "less",
    "curl",
    "tar",
    "timeout",
    "sudo",
    "echo-args",
    "kubectl",
    "vim",
];

/// The role's command rules (TOML literal strings: none contains a `'`).
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
    "systemctl * app.service *",
    "git -C /srv/app *",
    "kubectl describe pod -n web *",
    "kubectl get pods -n web *",
    "kubectl -n web *",
];

/// Rules acknowledged as unsafe: (rule, reason), written in the table form.
const ACKNOWLEDGED: &[(&str, &str)] = &[(
    "vim /etc/motd",
    "the message of the day is edited by hand; sessions are recorded",
)];

/// The role's `deny_options`: journalctl may not be pointed at other units or identifiers, and
/// grep may not read its patterns from arbitrary files. (The rule's pinned unit already refuses
/// every further match, `_SYSTEMD_UNIT=` included; these entries stay as a second line.)
const DENY_OPTIONS: &str = r#"{ journalctl = ["-u", "--unit", "--user-unit", "-t", "--identifier", "+", "SYSLOG_IDENTIFIER="], grep = ["-f", "--file"] }"#;

/// What a case should come to.
#[derive(Debug, Clone)]
enum Expect {
    /// Runs on the target with exactly this argv.
    Allow(Vec<String>),
    /// Refused by the bastion; nothing reaches the target.
    Deny,
}

/// Which client sends the command.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// The OpenSSH client, the command as one argument (any byte but NUL).
    OpenSsh,
    /// A russh client sending the exec request's bytes unchanged.
    Raw,
}

#[derive(Debug, Clone)]
struct Case {
    name: String,
    /// The command after the target name, as the client sends it.
    command: Vec<u8>,
    expect: Expect,
    via: Via,
}

impl Case {
    /// The same case, sent by the raw client.
    fn raw(mut self) -> Case {
        self.via = Via::Raw;
        self
    }

    /// The command for a failure message, escaped and cut short.
    fn command_shown(&self) -> String {
        let text = String::from_utf8_lossy(&self.command);
        let short: String = text.chars().take(60).collect();
        if short.len() < text.len() {
            format!("{short}… ({} bytes)", self.command.len())
        } else {
            short
        }
    }
}

fn allow(name: &str, command: &str, argv: &[&str]) -> Case {
    allow_owned(
        name,
        command.to_owned(),
        argv.iter().map(|w| (*w).to_owned()).collect(),
    )
}

fn allow_owned(name: &str, command: String, argv: Vec<String>) -> Case {
    Case {
        name: name.to_owned(),
        command: command.into_bytes(),
        expect: Expect::Allow(argv),
        via: Via::OpenSsh,
    }
}

fn deny(name: &str, command: &str) -> Case {
    deny_bytes(name, command.as_bytes())
}

fn deny_bytes(name: &str, command: &[u8]) -> Case {
    Case {
        name: name.to_owned(),
        command: command.to_vec(),
        expect: Expect::Deny,
        via: Via::OpenSsh,
    }
}

/// The corpus.
fn cases() -> Vec<Case> {
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
        // ---- systemctl: the guard on placeholder words.
        deny("systemctl: -H host", "systemctl status -H evil.example"),
        deny(
            "systemctl: attached -Hhost",
            "systemctl status -Hroot@evil.example",
        ),
        deny("systemctl: --host=", "systemctl status --host=evil.example"),
        deny(
            "systemctl: abbreviated --ho",
            "systemctl status --ho evil.example",
        ),
        deny(
            "systemctl: bundled -lH",
            "systemctl status -lH evil.example",
        ),
        deny("systemctl: --machine=", "systemctl status --machine=foo"),
        deny("systemctl: -M", "systemctl status -M foo"),
        deny("systemctl: --root=", "systemctl status --root=/tmp/x"),
        deny(
            "systemctl: option before the verb",
            "systemctl --host=evil status nginx",
        ),
        allow(
            "systemctl: --output=json is not in the table",
            "systemctl status --output=json nginx",
            &["systemctl", "status", "--output=json", "nginx"],
        ),
        allow(
            "systemctl: harmless flags",
            "systemctl status --no-pager -l nginx",
            &["systemctl", "status", "--no-pager", "-l", "nginx"],
        ),
        allow(
            "systemctl: -H after -- is a unit name",
            "systemctl status -- -H",
            &["systemctl", "status", "--", "-H"],
        ),
        // ---- A rule that names a wrapper: the wrapped program's table applies.
        allow(
            "wrapper rule: allowed",
            "timeout 10 systemctl status nginx",
            &["timeout", "10", "systemctl", "status", "nginx"],
        ),
        deny(
            "wrapper rule: wrapped -H",
            "timeout 10 systemctl status -H evil",
        ),
        deny(
            "wrapper rule: wrapped --host",
            "timeout 10 systemctl status --host=evil",
        ),
        deny(
            "wrapper rule: other duration",
            "timeout 5 systemctl status nginx",
        ),
        deny("wrapper rule: other program", "timeout 10 sh -c id"),
        // ---- journalctl: built-in table and the policy's deny_options.
        deny(
            "journalctl: --file=",
            "journalctl -u nginx --file=/etc/shadow",
        ),
        deny(
            "journalctl: --file value",
            "journalctl -u nginx --file /etc/shadow",
        ),
        deny(
            "journalctl: abbreviated --fi=",
            "journalctl -u nginx --fi=/etc/shadow",
        ),
        deny("journalctl: -D", "journalctl -u nginx -D /tmp/journal"),
        deny(
            "journalctl: attached -D",
            "journalctl -u nginx -D/tmp/journal",
        ),
        deny("journalctl: bundled -xeD", "journalctl -u nginx -xeD /tmp"),
        deny(
            "journalctl: -i (--file)",
            "journalctl -u nginx -i /etc/shadow",
        ),
        deny("journalctl: --root=", "journalctl -u nginx --root=/"),
        deny("journalctl: -M", "journalctl -u nginx -M other"),
        deny(
            "journalctl: --vacuum-size",
            "journalctl -u nginx --vacuum-size=1",
        ),
        deny("journalctl: --rotate", "journalctl -u nginx --rotate"),
        deny(
            "journalctl policy: second -u",
            "journalctl -u nginx -u sshd",
        ),
        deny(
            "journalctl policy: --unit=",
            "journalctl -u nginx --unit=sshd",
        ),
        deny(
            "journalctl policy: abbreviated --un=",
            "journalctl -u nginx --un=sshd",
        ),
        deny("journalctl policy: -t", "journalctl -u nginx -t sshd"),
        deny(
            "journalctl policy: SYSLOG_IDENTIFIER= match",
            "journalctl -u nginx SYSLOG_IDENTIFIER=sshd",
        ),
        deny(
            "journalctl policy: + disjunction",
            "journalctl -u nginx + _COMM=sshd",
        ),
        // CONSERVATIVE: `-ocat` is -o with the value "cat", but a bundle holding a denied letter
        // (`t`) is refused rather than parsed per program.
        deny(
            "journalctl policy: attached value holding a denied letter",
            "journalctl -u nginx -ocat",
        ),
        allow(
            "journalctl: attached value without denied letters",
            "journalctl -u nginx -ojson",
            &["journalctl", "-u", "nginx", "-ojson"],
        ),
        // After `--` an option is a match operand, and the rule's pinned unit admits no match.
        deny(
            "journalctl: after -- an option is a match operand",
            "journalctl -u nginx -- --file=/etc/shadow",
        ),
        // ---- tail: path globs.
        allow(
            "tail: allowed",
            "tail -n 100 /var/log/nginx/access.log",
            &["tail", "-n", "100", "/var/log/nginx/access.log"],
        ),
        deny(
            "tail: .. escapes the directory",
            "tail -n 5 /var/log/nginx/../../../etc/shadow",
        ),
        deny(
            "tail: .. then back with a .log name",
            "tail -n 5 /var/log/nginx/../nginx/access.log",
        ),
        deny("tail: . segment", "tail -n 5 /var/log/nginx/./access.log"),
        deny(
            "tail: empty segment",
            "tail -n 5 /var/log/nginx//access.log",
        ),
        deny(
            "tail: * does not cross /",
            "tail -n 5 /var/log/nginx/sub/access.log",
        ),
        deny(
            "tail: -f is an extra word",
            "tail -n 5 -f /var/log/nginx/access.log",
        ),
        deny(
            "tail: a second file",
            "tail -n 5 /var/log/nginx/access.log /etc/shadow",
        ),
        deny(
            "tail: rotated name",
            "tail -n 5 /var/log/nginx/access.log.1",
        ),
        deny("tail: relative path", "tail -n 5 var/log/nginx/access.log"),
        deny(
            "tail: other directory",
            "tail -n 5 /var/log/apache2/access.log",
        ),
        allow(
            "tail: a quoted * is a literal star",
            "tail -n 5 '/var/log/nginx/*.log'",
            &["tail", "-n", "5", "/var/log/nginx/*.log"],
        ),
        allow(
            "tail: ..log is a file name, not a dot segment",
            "tail -n 5 /var/log/nginx/..log",
            &["tail", "-n", "5", "/var/log/nginx/..log"],
        ),
        // ---- cat.
        allow(
            "cat: allowed",
            "cat /var/log/app/app.log",
            &["cat", "/var/log/app/app.log"],
        ),
        deny("cat: * does not cross /", "cat /var/log/app/2024/app.log"),
        deny(
            "cat: .. with a .log name",
            "cat /var/log/app/../../../etc/shadow.log",
        ),
        deny("cat: ./ and ..", "cat /var/log/app/.././app.log"),
        deny("cat: other file", "cat /etc/shadow"),
        deny("cat: an option", "cat -v /var/log/app/app.log"),
        // ---- grep.
        allow(
            "grep: allowed",
            "grep -r 'connection refused' /srv/app",
            &["grep", "-r", "connection refused", "/srv/app"],
        ),
        deny(
            "grep policy: --file=",
            "grep -r --file=/etc/shadow /srv/app",
        ),
        deny("grep policy: attached -f", "grep -r -f/etc/shadow /srv/app"),
        deny(
            "grep policy: abbreviated --fil=",
            "grep -r --fil=/etc/shadow /srv/app",
        ),
        deny("grep: other directory", "grep -r needle /etc"),
        deny("grep: extra path", "grep -r needle /srv/app /etc/shadow"),
        // POLICY: the placeholder may be `--`, which turns the literal /srv/app into the pattern;
        // grep -r then searches the working directory. Every rule word is still as written.
        allow(
            "grep: -- as the pattern word",
            "grep -r -- /srv/app",
            &["grep", "-r", "--", "/srv/app"],
        ),
        // ---- git.
        allow(
            "git: allowed",
            "git log --oneline -n 5",
            &["git", "log", "--oneline", "-n", "5"],
        ),
        deny("git: --output=", "git log --output=/tmp/x"),
        deny("git: abbreviated --outp=", "git log --outp=/tmp/x"),
        deny("git: -c config", "git log -c core.pager=sh"),
        deny("git: -c before the subcommand", "git -c core.pager=sh log"),
        deny("git: --exec-path", "git log --exec-path=/tmp"),
        deny("git: --paginate", "git log --paginate"),
        // CONSERVATIVE: after `log`, -p means "patch", but it is git's --paginate before it.
        deny("git: -p", "git log -p"),
        allow(
            "git: after -- an option is a path",
            "git log -- --output=/tmp/x",
            &["git", "log", "--", "--output=/tmp/x"],
        ),
        allow(
            "git: --format",
            "git log --format=%H",
            &["git", "log", "--format=%H"],
        ),
        // ---- find.
        allow(
            "find: allowed",
            "find /srv/app -name '*.conf'",
            &["find", "/srv/app", "-name", "*.conf"],
        ),
        deny("find: -exec", r"find /srv/app -name x -exec sh -c id \;"),
        deny(
            "find: -exec with a bare ;",
            "find /srv/app -name x -exec id ;",
        ),
        deny("find: -execdir", "find /srv/app -name x -execdir id +"),
        deny(
            "find: abbreviated -exe",
            r"find /srv/app -name x -exe id \;",
        ),
        deny("find: -ok", r"find /srv/app -name x -ok id \;"),
        deny("find: -delete", "find /srv/app -name x -delete"),
        deny("find: -fprint", "find /srv/app -name x -fprint /tmp/x"),
        deny(
            "find: -- does not end find's expression",
            r"find /srv/app -name x -- -exec id \;",
        ),
        deny("find: other root", "find / -name shadow"),
        deny("find: .. on the root", "find /srv/app/.. -name x"),
        allow(
            "find: -o is not -ok",
            "find /srv/app -name x -o -name y",
            &["find", "/srv/app", "-name", "x", "-o", "-name", "y"],
        ),
        // ---- ls.
        allow("ls: bare", "ls", &["ls"]),
        allow("ls: options", "ls -la /etc", &["ls", "-la", "/etc"]),
        allow("ls: -- then a dash word", "ls -- -la", &["ls", "--", "-la"]),
        // ---- less: flags before the file (`-*`), and a trailing star after it.
        allow(
            "less: a flag before the file",
            "less -S /var/log/syslog",
            &["less", "-S", "/var/log/syslog"],
        ),
        deny(
            "less: -o attached before the file",
            "less -ox.log /var/log/syslog",
        ),
        deny(
            "less: --log-file= before the file",
            "less --log-file=x.log /var/log/syslog",
        ),
        deny(
            "less: abbreviated --log= before the file",
            "less --log=x.log /var/log/syslog",
        ),
        deny("less: -k before the file", "less -kkeys /var/log/syslog"),
        deny(
            "less: --lesskey-src= before the file",
            "less --lesskey-src=keys /var/log/syslog",
        ),
        deny("less: -O bundled", "less -SOx.log /var/log/syslog"),
        // less reads a `+` inside a bundle of options as the start of a +command:
        // `less -N+!cmd FILE` runs cmd once the file is shown on a terminal (checked with less
        // 590; an exec session has a terminal when the role sets exec_pty), so a `+` anywhere in
        // a bundle counts, not only at the start of a word.
        deny(
            "less: +command inside a flag bundle",
            "less -N+!sh /var/log/syslog",
        ),
        allow(
            "less: after the file",
            "less -R /var/log/nginx/error.log",
            &["less", "-R", "/var/log/nginx/error.log"],
        ),
        // CONSERVATIVE: less stops reading options at its first file name (less 590), so the
        // words after it are file names; the guard refuses option-like ones anyway.
        deny(
            "less: +!sh after the file",
            "less -R /var/log/nginx/error.log +!sh",
        ),
        deny(
            "less: -o/tmp/x after the file",
            "less -R /var/log/nginx/error.log -o/tmp/x",
        ),
        deny(
            "less: --log-file= after the file",
            "less -R /var/log/nginx/error.log --log-file=/tmp/x",
        ),
        allow(
            "less: after -- +!sh is a file name",
            "less -R /var/log/nginx/error.log -- +!sh",
            &["less", "-R", "/var/log/nginx/error.log", "--", "+!sh"],
        ),
        // ---- curl with a trailing star.
        allow(
            "curl: allowed",
            "curl -sS https://status.internal/health -m 5",
            &["curl", "-sS", "https://status.internal/health", "-m", "5"],
        ),
        deny(
            "curl: -o",
            "curl -sS https://status.internal/health -o /tmp/x",
        ),
        deny(
            "curl: --output=",
            "curl -sS https://status.internal/health --output=/tmp/x",
        ),
        deny(
            "curl: abbreviated --outp",
            "curl -sS https://status.internal/health --outp /tmp/x",
        ),
        deny(
            "curl: bundled and attached -fso/tmp/x",
            "curl -sS https://status.internal/health -fso/tmp/x",
        ),
        deny("curl: -O", "curl -sS https://status.internal/health -O"),
        deny(
            "curl: -K config",
            "curl -sS https://status.internal/health -K /tmp/curlrc",
        ),
        deny(
            "curl: -T upload",
            "curl -sS https://status.internal/health -T /etc/shadow",
        ),
        allow(
            "curl: after -- -o is a URL",
            "curl -sS https://status.internal/health -- -o",
            &["curl", "-sS", "https://status.internal/health", "--", "-o"],
        ),
        // `-d @FILE`, `--data-binary @FILE` and `-F name=@FILE` send a local file (GTFOBins
        // "file upload" for curl), like -T/--upload-file.
        deny(
            "curl: -d @file sends a file",
            "curl -sS https://status.internal/health -d @/etc/shadow",
        ),
        deny(
            "curl: --data-binary @file sends a file",
            "curl -sS https://status.internal/health --data-binary @/etc/shadow",
        ),
        deny(
            "curl: -F name=@file sends a file",
            "curl -sS https://status.internal/health -F f=@/etc/shadow",
        ),
        // `-H @FILE` reads headers from a file (sent, and echoed by -v) and `-w @FILE`
        // reads the write-out format from a file and prints it: both show a local file's
        // contents to the user (checked with curl 7.88).
        deny(
            "curl: -v -H @file shows a file",
            "curl -sS https://status.internal/health -v -H @/etc/shadow",
        ),
        deny(
            "curl: -w @file prints a file",
            "curl -sS https://status.internal/health -w @/etc/shadow",
        ),
        // POLICY: a trailing * on curl admits further URLs, file:// included; only options are
        // guarded (lint warns about this rule).
        allow(
            "curl: a second URL",
            "curl -sS https://status.internal/health file:///etc/shadow",
            &[
                "curl",
                "-sS",
                "https://status.internal/health",
                "file:///etc/shadow",
            ],
        ),
        // ---- tar with a trailing star.
        allow(
            "tar: list",
            "tar -tzf /srv/backups/nightly.tgz",
            &["tar", "-tzf", "/srv/backups/nightly.tgz"],
        ),
        allow(
            "tar: list a member",
            "tar -tzf /srv/backups/nightly.tgz etc/app.conf",
            &["tar", "-tzf", "/srv/backups/nightly.tgz", "etc/app.conf"],
        ),
        deny(
            "tar: --to-command=",
            "tar -tzf /srv/backups/nightly.tgz --to-command=sh",
        ),
        deny(
            "tar: abbreviated --to-c=",
            "tar -tzf /srv/backups/nightly.tgz --to-c=sh",
        ),
        deny(
            "tar: --use-compress-program=",
            "tar -tzf /srv/backups/nightly.tgz --use-compress-program=sh",
        ),
        deny("tar: -I", "tar -tzf /srv/backups/nightly.tgz -I sh"),
        deny(
            "tar: --checkpoint-action=exec=",
            "tar -tzf /srv/backups/nightly.tgz --checkpoint-action=exec=sh",
        ),
        // CONSERVATIVE: --checkpoint is a prefix of --checkpoint-action.
        deny(
            "tar: --checkpoint",
            "tar -tzf /srv/backups/nightly.tgz --checkpoint=1",
        ),
        deny(
            "tar: --rsh-command=",
            "tar -tzf /srv/backups/nightly.tgz --rsh-command=/bin/sh",
        ),
        // `-T FILE` (--files-from) reads member names from any file, and tar reports each
        // one missing from the archive, line by line, on stderr (checked with GNU tar 1.34).
        deny(
            "tar: -T reads names from a file",
            "tar -tzf /srv/backups/nightly.tgz -T /etc/shadow",
        ),
        deny(
            "tar: --files-from= reads names from a file",
            "tar -tzf /srv/backups/nightly.tgz --files-from=/etc/shadow",
        ),
        allow(
            "tar: after -- an option is a member name",
            "tar -tzf /srv/backups/nightly.tgz -- --to-command=sh",
            &[
                "tar",
                "-tzf",
                "/srv/backups/nightly.tgz",
                "--",
                "--to-command=sh",
            ],
        ),
        deny(
            "tar: .. in the archive path",
            "tar -tzf /srv/backups/../../etc/x.tgz",
        ),
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
    c.extend(classes::cases());
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

/// The world the corpus runs in.
struct Corpus {
    world: World,
    alice: Person,
    bob: Person,
    bin: PathBuf,
    records: PathBuf,
    seen: BTreeSet<OsString>,
}

/// A recorder: writes `basename($0)` and its arguments, each followed by NUL, to a new file.
fn recorder(records: &Path) -> String {
    format!(
        "#!/bin/sh\n\
         # Records the argv it was run with, for the command-rule corpus.\n\
         f=$(/usr/bin/mktemp '{}/argv.XXXXXXXXXX') || exit 97\n\
         printf '%s\\0' \"${{0##*/}}\" \"$@\" > \"$f\" || exit 98\n\
         exit 0\n",
        records.display()
    )
}

fn setup() -> Corpus {
    let mut dirs = None;
    let (mut world, mut people) = World::with_target_config(&["alice", "bob"], "", |tmp| {
        let bin = tmp.join("bin");
        let records = tmp.join("argv");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&records).unwrap();
        let home = tmp.join("home");
        std::fs::create_dir_all(&home).unwrap();
        assert!(
            !tmp.display().to_string().contains(char::is_whitespace),
            "the temporary directory must not contain whitespace: {}",
            tmp.display()
        );
        dirs = Some((bin.clone(), records, home.clone()));
        format!(
            "SetEnv PATH={}:/usr/bin:/bin HOME={}",
            bin.display(),
            home.display()
        )
    });
    let (bin, records, home) = dirs.unwrap();
    let bob = people.pop().unwrap();
    let alice = people.pop().unwrap();
    let mut commands: Vec<String> = RULES.iter().map(|r| format!("  '{r}',\n")).collect();
    commands.extend(
        ACKNOWLEDGED
            .iter()
            .map(|(r, why)| format!("  {{ rule = '{r}', unsafe = '{why}' }},\n")),
    );
    let policy = format!(
        "{}{}{}\
         [[role]]\nname = \"jea\"\nmembers = [\"ops\"]\ntargets = [\"web-01\"]\nlogin = \"{login}\"\n\
         approvals = 0\nshell = \"none\"\ncommands = [\n{}]\ndeny_options = {DENY_OPTIONS}\n\n\
         [[role]]\nname = \"probe\"\nmembers = [\"admins\"]\ntargets = [\"web-01\"]\n\
         login = \"{login}\"\napprovals = 0\nshell = \"full\"\n",
        user_toml(&alice, &["ops"]),
        user_toml(&bob, &["admins"]),
        world.target_toml("web-01"),
        commands.concat(),
        login = login(),
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    for (who, role) in [(&alice, "jea"), (&bob, "probe")] {
        let out = world.gatehouse.ssh(
            who,
            &[
                "request", "web-01", "--role", role, "--for", "1h", "--reason", "corpus",
            ],
        );
        assert_eq!(out.code(), 0, "request {role}: {}{}", out.out(), out.err());
    }
    let mut c = Corpus {
        world,
        alice,
        bob,
        bin,
        records,
        seen: BTreeSet::new(),
    };
    check_environment(&c, &home);
    install_recorders(&c);
    probe_path(&c);
    let stray = new_records(&mut c);
    assert!(
        stray.is_empty(),
        "a session's start-up ran recorders on its own: {} records, e.g. {:?}",
        stray.len(),
        stray.first().map(|r| shown_words(r))
    );
    c
}

/// Before any recorder exists: a session on the target sees exactly the `PATH` and `HOME` that
/// `SetEnv` gave it, so no start-up file of the account running the tests is at work (which,
/// with recorders in `PATH`, could run them with side effects of its own).
fn check_environment(c: &Corpus, home: &Path) {
    let out = c
        .world
        .gatehouse
        .ssh(&c.bob, &["web-01", "printf '%s\\n' \"$PATH\" \"$HOME\""]);
    assert_eq!(out.code(), 0, "probe failed: {}{}", out.out(), out.err());
    let expected = format!("{}:/usr/bin:/bin\n{}\n", c.bin.display(), home.display());
    assert_eq!(
        out.out(),
        expected,
        "the target's sessions do not get the environment that SetEnv sets (start-up files at \
         work?); refusing to install the recorders"
    );
}

/// One recorder per program named in the rules.
fn install_recorders(c: &Corpus) {
    for program in PROGRAMS {
        let path = c.bin.join(program);
        std::fs::write(&path, recorder(&c.records)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Checks, through the full-shell role, that every program name resolves to its recorder in the
/// session the target gives a forced command.
fn probe_path(c: &Corpus) {
    let script = format!(
        "for p in {}; do command -v \"$p\" || echo \"missing: $p\"; done; echo \"PATH=$PATH\"",
        PROGRAMS.join(" ")
    );
    let out = c.world.gatehouse.ssh(&c.bob, &["web-01", &script]);
    assert_eq!(out.code(), 0, "probe failed: {}{}", out.out(), out.err());
    let text = out.out();
    let lines: Vec<&str> = text.lines().collect();
    for (i, program) in PROGRAMS.iter().enumerate() {
        let expected = c.bin.join(program).display().to_string();
        assert_eq!(
            lines.get(i).copied(),
            Some(expected.as_str()),
            "on the target, {program} does not resolve to its recorder; the session saw:\n{text}"
        );
    }
}

/// Records written since the last call (in file-name order; a case should leave at most one).
fn new_records(c: &mut Corpus) -> Vec<Vec<Vec<u8>>> {
    let mut fresh = Vec::new();
    for entry in std::fs::read_dir(&c.records).unwrap() {
        let entry = entry.unwrap();
        if c.seen.insert(entry.file_name()) {
            fresh.push(entry.path());
        }
    }
    fresh.sort();
    fresh
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).unwrap();
            let mut words: Vec<Vec<u8>> = bytes.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
            // Every word ends with a NUL, so the split leaves an empty tail.
            if words.last().is_some_and(Vec::is_empty) {
                words.pop();
            }
            words
        })
        .collect()
}

/// What one attempt left: exit code, stdout, stderr.
struct Attempt {
    code: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn attempt(c: &Corpus, case: &Case) -> Attempt {
    let mut line = b"web-01 ".to_vec();
    line.extend_from_slice(&case.command);
    match case.via {
        Via::OpenSsh => {
            let mut cmd = c.world.gatehouse.ssh_command(&c.alice, &[], &[]);
            cmd.arg(OsString::from_vec(line));
            let out = run(cmd, b"", Duration::from_secs(60));
            Attempt {
                code: out.code(),
                stdout: out.stdout,
                stderr: out.stderr,
            }
        }
        Via::Raw => raw::exec(&c.world.gatehouse, &c.alice, &line),
    }
}

/// Runs one case; `Err` says what went wrong.
fn check(c: &mut Corpus, case: &Case, show: bool) -> Result<(), String> {
    let logins_before = c.world.target.accepted_logins();
    let out = attempt(c, case);
    if show {
        eprintln!(
            "{}: exit {}: {:?}",
            case.name,
            out.code,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let records = new_records(c);
    let logins = c.world.target.accepted_logins() - logins_before;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let shown_records: Vec<Vec<String>> = records.iter().map(|r| shown_words(r)).collect();
    let mut problems = Vec::new();
    match &case.expect {
        Expect::Deny => {
            if out.code != 126 {
                problems.push(format!("exit {} instead of 126", out.code));
            }
            if !stderr.starts_with("gatehouse: denied:") {
                problems.push("stderr does not start with \"gatehouse: denied:\"".to_owned());
            }
            if let Some(bad) = stderr
                .chars()
                .find(|&ch| ch != '\n' && (ch.is_control() || is_bidi(ch)))
            {
                problems.push(format!(
                    "stderr carries the character U+{:04X} to the terminal",
                    u32::from(bad)
                ));
            }
            if logins != 0 {
                problems.push(format!("the target accepted {logins} login(s)"));
            }
            if !records.is_empty() {
                problems.push(format!("the target ran {shown_records:?}"));
            }
            if !out.stdout.is_empty() {
                problems.push(format!(
                    "stdout is not empty: {:?}",
                    String::from_utf8_lossy(&out.stdout)
                ));
            }
        }
        Expect::Allow(argv) => {
            if out.code != 0 {
                problems.push(format!("exit {} instead of 0", out.code));
            }
            let expected: Vec<Vec<u8>> = argv.iter().map(|w| w.as_bytes().to_vec()).collect();
            if records != [expected.clone()] {
                problems.push(format!(
                    "the target ran {shown_records:?} instead of [{:?}]",
                    shown_words(&expected)
                ));
            }
            if logins != 1 {
                problems.push(format!("the target accepted {logins} logins instead of 1"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        let mut stderr = stderr;
        if stderr.len() > 400 {
            let cut = (0..=400)
                .rev()
                .find(|&i| stderr.is_char_boundary(i))
                .unwrap_or(0);
            stderr.truncate(cut);
            stderr.push('…');
        }
        Err(format!("{}; stderr: {stderr:?}", problems.join("; ")))
    }
}

/// A record's words for a message, long words cut short.
fn shown_words(words: &[Vec<u8>]) -> Vec<String> {
    words
        .iter()
        .map(|w| {
            let text = String::from_utf8_lossy(w);
            if text.chars().count() > 40 {
                let short: String = text.chars().take(40).collect();
                format!("{short}… ({} bytes)", w.len())
            } else {
                text.into_owned()
            }
        })
        .collect()
}

/// Bidirectional formatting characters, which must not reach a terminal either.
fn is_bidi(ch: char) -> bool {
    matches!(ch, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[test]
fn the_corpus_gets_exactly_the_expected_verdicts() {
    let corpus = cases();
    assert!(corpus.len() >= 100, "only {} cases", corpus.len());
    let mut names = BTreeSet::new();
    for case in &corpus {
        assert!(
            names.insert(case.name.as_str()),
            "duplicate case {:?}",
            case.name
        );
    }
    // JEA_CORPUS_SHOW=1 prints every case's stderr, e.g. to see why each denial was given.
    let show = std::env::var_os("JEA_CORPUS_SHOW").is_some();
    let started = Instant::now();
    let mut c = setup();
    let mut failures = Vec::new();
    for case in &corpus {
        if let Err(why) = check(&mut c, case, show) {
            failures.push(format!(
                "  {} [{:?}]: {why}",
                case.name,
                case.command_shown()
            ));
        }
    }
    let allowed = corpus
        .iter()
        .filter(|case| matches!(case.expect, Expect::Allow(_)))
        .count();
    eprintln!(
        "{} cases ({allowed} allowed, {} denied) in {:.1?}",
        corpus.len(),
        corpus.len() - allowed,
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        corpus.len(),
        failures.join("\n")
    );
    // The one allowed case of the acknowledged rule left its reason in the audit line of its
    // session, and no other session claims an unsafe rule.
    let lines = classes::unsafe_session_lines(&c.world.gatehouse.dir.join("data/audit.jsonl"), 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (rule, why) = ACKNOWLEDGED[0];
    assert!(
        lines[0].contains(&format!(
            "\"detail\":{{\"unsafe_rules\":[{{\"rule\":\"{rule}\",\"unsafe\":\"{why}\"}}]}}"
        )),
        "{}",
        lines[0]
    );
}

/// A minimal SSH client that sends an exec request's bytes exactly as given, NUL included.
mod raw {
    use super::*;
    use russh::ChannelMsg;
    use russh::client;
    use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};

    /// Accepts only the bastion's pinned host key.
    struct Pinned(PublicKey);

    impl client::Handler for Pinned {
        type Error = russh::Error;

        async fn check_server_key(
            &mut self,
            offered: &PublicKeyOrCertificate,
        ) -> Result<bool, Self::Error> {
            Ok(matches!(
                offered,
                PublicKeyOrCertificate::PublicKey { key, .. } if key.key_data() == self.0.key_data()
            ))
        }
    }

    pub(super) fn exec(gh: &Gatehouse, person: &Person, command: &[u8]) -> Attempt {
        let host = public_line(&gh.dir.join("data/keys/host_ed25519"));
        let pinned = PublicKey::from_openssh(&host).expect("bastion host key");
        let key = russh::keys::load_secret_key(&person.key, None).expect("user key");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let session = async {
                let config = Arc::new(client::Config::default());
                let mut session =
                    client::connect(config, ("127.0.0.1", gh.port), Pinned(pinned)).await?;
                let auth = session
                    .authenticate_publickey(
                        person.name.clone(),
                        PrivateKeyWithHashAlg::new(Arc::new(key), None),
                    )
                    .await?;
                assert!(auth.success(), "the bastion refused {}'s key", person.name);
                let mut channel = session.channel_open_session().await?;
                channel.exec(true, command.to_vec()).await?;
                let mut attempt = Attempt {
                    code: -1,
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                };
                while let Some(msg) = channel.wait().await {
                    match msg {
                        ChannelMsg::Data { data } => attempt.stdout.extend_from_slice(&data),
                        ChannelMsg::ExtendedData { data, ext: 1 } => {
                            attempt.stderr.extend_from_slice(&data)
                        }
                        ChannelMsg::ExitStatus { exit_status } => {
                            attempt.code = i32::try_from(exit_status).unwrap_or(-1)
                        }
                        _ => {}
                    }
                }
                Ok::<_, russh::Error>(attempt)
            };
            tokio::time::timeout(Duration::from_secs(60), session)
                .await
                .expect("raw exec timed out")
                .expect("raw exec failed")
        })
    }
}
