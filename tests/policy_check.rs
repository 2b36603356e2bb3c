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
         [[role]]\nname = \"ops\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"ops\"\napprovals = 0\nshell = \"none\"\ncommands = [\n  \"systemctl status *\",\n  \"less *\",\n  \"awk *\",\n]\n"
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
        err.contains("main.toml:21: role \"ops\", rule \"awk *\""),
        "{err}"
    );
    assert!(!err.contains("systemctl status"), "{err}");
    // A rule that cannot be parsed is an error with its line.
    std::fs::write(
        gh.dir.join("policies/main.toml"),
        std::fs::read_to_string(gh.dir.join("policies/main.toml"))
            .unwrap()
            .replace("\"awk *\"", "\"* anything\""),
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
