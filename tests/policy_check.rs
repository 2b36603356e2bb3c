//! `gatehouse check` and `serve` on good and bad policies.

mod common;

use std::time::Duration;

use common::*;

fn deployment(policy: &str) -> (tempfile::TempDir, Gatehouse) {
    let tmp = tempfile::tempdir().unwrap();
    let (gh, _ca) = Gatehouse::prepare(&tmp.path().join("bastion"), "");
    gh.write_policy("main.toml", policy);
    (tmp, gh)
}

#[test]
fn the_sample_policies_pass_check() {
    let out = run(
        {
            let mut c = std::process::Command::new(gatehouse_bin());
            c.args(["check"]).current_dir(env!("CARGO_MANIFEST_DIR"));
            c
        },
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    assert!(out.out().starts_with("ok: "), "{}", out.out());
}

#[test]
fn a_malformed_policy_fails_check_with_file_and_line_and_serve_refuses_it() {
    let bad = "[[user]]\nname = \"alice\"\nkeys = []\ngroups = [\"sre\"]\n\n[[role]]\nname = \"ops\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"ops\"\nshel = \"full\"\n";
    let (_tmp, gh) = deployment(bad);
    let out = run(gh.command(&["check"]), b"", Duration::from_secs(30));
    assert_eq!(out.code(), 1);
    assert!(
        out.err().contains("policies/main.toml:11:"),
        "{}",
        out.err()
    );
    assert!(out.err().contains("shel"), "{}", out.err());

    let out = run(gh.command(&["serve"]), b"", Duration::from_secs(30));
    assert_ne!(out.code(), 0, "serve must refuse a bad policy");
    assert!(
        out.err().contains("policies/main.toml:11:"),
        "{}",
        out.err()
    );
}

#[test]
fn dangling_references_and_bad_names_are_reported() {
    let (_tmp, gh) = deployment(
        "[[user]]\nname = \"Alice\"\nkeys = []\n\n[[role]]\nname = \"ops\"\nmembers = [\"nobody\"]\ntargets = [\"web-01\"]\nlogin = \"ops\"\napprovals = 0\n",
    );
    let out = run(gh.command(&["check"]), b"", Duration::from_secs(30));
    assert_eq!(out.code(), 1);
    let err = out.err();
    assert!(
        err.contains("main.toml:2: user name \"Alice\" is not valid"),
        "{err}"
    );
    assert!(
        err.contains("group \"nobody\", which no user is in"),
        "{err}"
    );
    assert!(
        err.contains("target \"web-01\", which is not defined"),
        "{err}"
    );
}

#[test]
fn rules_wider_than_they_look_are_warned_about_with_their_line() {
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPuoCV2J6s+cnPviceslUyzzzfAj20Qrr9Hcmx0qPxGE a";
    let (_tmp, gh) = deployment(&format!(
        "[[user]]\nname = \"alice\"\nkeys = [\"{key}\"]\ngroups = [\"sre\"]\n\n[[target]]\nname = \"web-01\"\naddress = \"127.0.0.1\"\nhost_keys = [\"{key}\"]\n\n\
         [[role]]\nname = \"ops\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"ops\"\napprovals = 0\nshell = \"none\"\ncommands = [\n  \"systemctl status *\",\n  \"less *\",\n  \"find /srv *\",\n]\n"
    ));
    let out = run(gh.command(&["check"]), b"", Duration::from_secs(30));
    assert_eq!(
        out.code(),
        0,
        "warnings do not fail the check: {}",
        out.err()
    );
    let err = out.err();
    assert!(
        err.contains("main.toml:20: role \"ops\", rule \"less *\""),
        "{err}"
    );
    assert!(
        err.contains("main.toml:21: role \"ops\", rule \"find /srv *\""),
        "{err}"
    );
    assert!(!err.contains("systemctl status"), "{err}");
    // A rule that cannot be parsed is an error with its line.
    std::fs::write(
        gh.dir.join("policies/main.toml"),
        std::fs::read_to_string(gh.dir.join("policies/main.toml"))
            .unwrap()
            .replace("\"find /srv *\"", "\"* anything\""),
    )
    .unwrap();
    let out = run(gh.command(&["check"]), b"", Duration::from_secs(30));
    assert_eq!(out.code(), 1);
    assert!(
        out.err()
            .contains("main.toml:21: command rule \"* anything\""),
        "{}",
        out.err()
    );
}

/// A policy with one rule of each class: a pinned scope and a wildcard subcommand load with
/// notes saying what they pin and admit; a rule that hands the user a program is an error with
/// its file and line, and `serve` refuses the policy, until the rule is acknowledged with a
/// reason, which `check` then shows.
#[test]
fn one_rule_of_each_class() {
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPuoCV2J6s+cnPviceslUyzzzfAj20Qrr9Hcmx0qPxGE a";
    let policy = |editor: &str, pager_role: &str| {
        format!(
            "[[user]]\nname = \"alice\"\nkeys = [\"{key}\"]\ngroups = [\"sre\"]\n\n\
             [[target]]\nname = \"web-01\"\naddress = \"127.0.0.1\"\nhost_keys = [\"{key}\"]\n\n\
             [[role]]\nname = \"ops\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"ops\"\n\
             approvals = 0\nshell = \"none\"\ncommands = [\n\
             \x20 \"kubectl describe pod -n web *\",\n\
             \x20 \"systemctl * nginx\",\n\
             \x20 {editor},\n\
             \x20 \"awk *\",\n\
             ]\n\n{pager_role}"
        )
    };
    let pager_role = "[[role]]\nname = \"tty\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\n\
                      login = \"ops\"\napprovals = 0\nexec_pty = true\n\
                      commands = [\"less /var/log/syslog\", \"git -C /srv *\"]\n";
    let (_tmp, gh) = deployment(&policy("\"vim /etc/motd\"", pager_role));
    let out = run(gh.command(&["check"]), b"", Duration::from_secs(30));
    assert_eq!(out.code(), 1, "{}", out.err());
    let err = out.err();
    assert!(
        err.contains(
            "main.toml:21: command rule \"vim /etc/motd\" hands the user a program: vim is an \
             editor"
        ),
        "{err}"
    );
    assert!(
        err.contains("if that is intended, write it as { rule = \"vim /etc/motd\", unsafe = "),
        "{err}"
    );
    assert!(
        err.contains(
            "main.toml:22: command rule \"awk *\" hands the user a program: awk runs program text"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "main.toml:32: command rule \"less /var/log/syslog\" hands the user a program: less \
             shows a pager with a shell escape (!sh), and this role gives exec sessions a terminal"
        ),
        "{err}"
    );
    assert!(err.contains("3 error(s)"), "{err}");
    let out = run(gh.command(&["serve"]), b"", Duration::from_secs(30));
    assert_ne!(out.code(), 0, "serve must refuse the policy");
    assert!(out.err().contains("main.toml:21:"), "{}", out.err());

    // Acknowledged, the rules load, and check shows the reasons and what the wildcards do.
    gh.write_policy(
        "main.toml",
        &policy(
            "{ rule = \"vim /etc/motd\", unsafe = \"the motd is edited by hand; sessions are recorded\" }",
            &pager_role.replace(
                "\"less /var/log/syslog\"",
                "{ rule = \"less /var/log/syslog\", unsafe = \"read-only box\" }",
            ),
        )
        .replace("\"awk *\"", "{ rule = \"awk *\", unsafe = \"\" }"),
    );
    let out = run(gh.command(&["check"]), b"", Duration::from_secs(30));
    assert_eq!(out.code(), 1, "an empty reason is no reason: {}", out.err());
    assert!(
        out.err()
            .contains("main.toml:22: command rule \"awk *\": unsafe must say why"),
        "{}",
        out.err()
    );
    let text = std::fs::read_to_string(gh.dir.join("policies/main.toml"))
        .unwrap()
        .replace(
            "{ rule = \"awk *\", unsafe = \"\" }",
            "\"awk '{print $1}' /etc/passwd\"",
        );
    gh.write_policy("main.toml", &text);
    let out = run(gh.command(&["check"]), b"", Duration::from_secs(30));
    assert_eq!(out.code(), 0, "{}", out.err());
    let err = out.err();
    for expected in [
        "policies/main.toml:19: role \"ops\", rule \"kubectl describe pod -n web *\": \
         wildcard words may not change, widen or step outside what the rule pins: namespace \
         (\"-n web\")",
        "policies/main.toml:20: role \"ops\", rule \"systemctl * nginx\": the wildcard in \
         word 2 supplies the systemctl subcommand; it admits only status, show, cat, is-active",
        "policies/main.toml:21: role \"ops\", rule \"vim /etc/motd\": acknowledged as \
         unsafe (vim is an editor",
        "\"the motd is edited by hand; sessions are recorded\"",
        "policies/main.toml:32: role \"tty\", rule \"less /var/log/syslog\": acknowledged \
         as unsafe (less shows a pager",
        "policies/main.toml:32: role \"tty\", rule \"git -C /srv *\": the wildcard in word \
         4 supplies the git subcommand; it admits only status, describe",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(!err.contains("edit,"), "{err}");
}
