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
