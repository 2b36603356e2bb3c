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
#[path = "jea_corpus/programs.rs"]
mod programs;
#[path = "jea_corpus/syntax.rs"]
mod syntax;

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
    let mut c = syntax::cases();
    c.extend(programs::cases());
    c.extend(classes::cases());
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
