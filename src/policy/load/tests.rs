//! Tests of loading policy files: what loads and the errors, with lines, for what does not.

use std::time::Duration;

use super::*;

const ALICE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgdDjKMSrY8qUgnxyBR4qy1pPUWL3qHFqK7jGmAgydd alice@laptop";
const BOB_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDbTPZxQ9pvczXNJzmaMhjfhmQXmsCYU8+7fItj58GZn bob@laptop";
const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPfh9C9Q8BvQz2cXhJjrhhG3nsoTTsGNqwE4W8JLlpIV";

fn good() -> String {
    format!(
        r#"
[[user]]
name = "alice"
keys = ["{ALICE_KEY}"]
groups = ["sre"]

[[user]]
name = "bob"
keys = ["{BOB_KEY}"]
groups = ["sre-leads"]

[[target]]
name = "web-01"
address = "127.0.0.1"
port = 2201
host_keys = ["{HOST_KEY}"]
labels = {{ env = "prod", service = "web" }}

[[role]]
name = "web-ops"
members = ["sre"]
targets = ["web-*"]
login = "ops"
max_duration = "4h"
approvals = 1
approvers = ["sre-leads"]
shell = "restricted"
commands = ["systemctl status *"]
"#
    )
}

fn load(text: &str) -> Result<Policy, LoadError> {
    load_sources(&[(Path::new("policies/main.toml"), text)])
}

#[test]
fn a_good_policy_loads() {
    let p = load(&good()).unwrap();
    let alice = p.user("alice").unwrap();
    let web = p.target("web-01").unwrap();
    let role = p.role("web-ops").unwrap();
    assert!(role.covers(web));
    assert!(role.has_member(alice));
    assert_eq!(p.roles_for(alice, web).count(), 1);
    assert_eq!(p.user_by_key(&alice.keys[0]).unwrap().name, "alice");
    assert_eq!(role.max_duration, Duration::from_secs(4 * 3600));
}

fn expect_error(text: &str, line: usize, needle: &str) {
    let err = load(text).unwrap_err().to_string();
    let want = format!("policies/main.toml:{line}:");
    assert!(
        err.contains(&want) && err.contains(needle),
        "wanted {want} … {needle}, got:\n{err}"
    );
}

#[test]
fn unknown_keys_are_errors_with_lines() {
    expect_error(
        &good().replace("login = \"ops\"", "login = \"ops\"\nlogn = \"x\""),
        24,
        "logn",
    );
}

#[test]
fn bad_names_are_errors_with_lines() {
    expect_error(
        &good().replace("name = \"web-01\"", "name = \"Web_01\""),
        13,
        "target name",
    );
    expect_error(
        &good().replace("name = \"alice\"", "name = \"Alice\""),
        3,
        "user name",
    );
    expect_error(
        &good().replace("name = \"web-01\"", "name = \"grants\""),
        13,
        "verb",
    );
}

#[test]
fn duplicates_and_dangling_references_are_errors() {
    let dup = format!(
        "{}\n[[user]]\nname = \"alice\"\nkeys = [\"{}\"]\n",
        good(),
        HOST_KEY
    );
    expect_error(
        &dup,
        30,
        "duplicate user \"alice\" (first defined at policies/main.toml:2)",
    );
    expect_error(
        &good().replace("approvers = [\"sre-leads\"]", "approvers = [\"sre-leadz\"]"),
        26,
        "sre-leadz",
    );
    expect_error(
        &good().replace("targets = [\"web-*\"]", "targets = [\"web-02\"]"),
        22,
        "web-02",
    );
    let shared_key = good().replace(BOB_KEY, ALICE_KEY);
    expect_error(&shared_key, 7, "already listed");
}

#[test]
fn targets_need_pinned_trust() {
    expect_error(
        &good().replace(&format!("host_keys = [\"{HOST_KEY}\"]"), ""),
        13,
        "never trusts a host key on first use",
    );
    expect_error(
        &good().replace(HOST_KEY, "ssh-ed25519 AAAA"),
        16,
        "not an OpenSSH public key",
    );
}

#[test]
fn malformed_toml_is_an_error_with_a_line() {
    expect_error("[[user]]\nname = \"alice\nkeys = []\n", 2, "");
    expect_error(
        &good().replace("max_duration = \"4h\"", "max_duration = \"4 hours\""),
        24,
        "invalid duration",
    );
}

#[test]
fn labels_narrow_a_role() {
    let text = good().replace(
        "targets = [\"web-*\"]",
        "targets = [\"web-*\"]\ntarget_labels = { env = \"staging\" }",
    );
    let p = load(&text).unwrap();
    assert!(
        !p.role("web-ops")
            .unwrap()
            .covers(p.target("web-01").unwrap())
    );
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_with(text: &str, needle: &str) -> usize {
    text[..text.find(needle).expect("needle in text")]
        .matches('\n')
        .count()
        + 1
}

/// The good policy with `extra` lines added to its role.
fn with_role_lines(extra: &str) -> String {
    good().replace(
        "commands = [\"systemctl status *\"]",
        &format!("commands = [\"systemctl status *\"]\n{extra}"),
    )
}

#[test]
fn files_and_forward_load_into_the_role() {
    let text = with_role_lines(
        "files = { read = [\"/var/log/nginx/**\"], write = [\"/srv/upload/*\"], hash = true }\n\
         forward = [\"web-01:5432\", \"127.0.0.1:9090\", \"[::1]:9100\", \"db.internal:5432\"]",
    );
    let p = load(&text).unwrap();
    let role = p.role("web-ops").unwrap();
    let files = role.files.as_ref().unwrap();
    assert!(files.hash);
    assert!(files.allows(crate::files::Access::Read, "/var/log/nginx/a.log"));
    assert!(files.allows(crate::files::Access::Write, "/srv/upload/x"));
    assert_eq!(role.forward.len(), 4);
    assert_eq!(role.forward[0].to_string(), "web-01:5432");
    // Without the keys, a role has neither.
    let plain = load(&good()).unwrap();
    assert!(plain.role("web-ops").unwrap().files.is_none());
    assert!(plain.role("web-ops").unwrap().forward.is_empty());
}

#[test]
fn bad_files_and_forward_entries_are_errors_with_their_lines() {
    let cases = [
        (
            "files = { read = [\"var/log\"] }",
            "var/log",
            "must start with /",
        ),
        (
            "files = { read = [\"/var/../etc\"] }",
            "/var/../etc",
            ". or .. segment",
        ),
        (
            "files = { write = [\"/srv/up**\"] }",
            "/srv/up**",
            "whole segment",
        ),
        (
            "files = { read = [\"/a\"], exec = [\"/b\"] }",
            "files",
            "exec",
        ),
        ("files = { hash = true }", "files", "files allows nothing"),
        (
            "forward = [\"db.internal\"]",
            "db.internal",
            "needs HOST:PORT",
        ),
        ("forward = [\"db-*:5432\"]", "db-*:5432", "wildcards"),
        (
            "forward = [\"db.internal:0\"]",
            "db.internal:0",
            "port must be",
        ),
        (
            "forward = [\"db.internal:1-1024\"]",
            "db.internal:1-1024",
            "wildcards",
        ),
        (
            "forward = [\"db-replica-01:5432\"]",
            "db-replica-01",
            "names no target",
        ),
        (
            "forward = [\"127.0.0.1:9\", \"127.0.0.1:9\"]",
            "127.0.0.1:9\"]",
            "listed twice",
        ),
    ];
    for (extra, at, needle) in cases {
        let text = with_role_lines(extra);
        let line = line_with(&text, at);
        expect_error(&text, line, needle);
    }
}

#[test]
fn a_files_or_forward_role_needs_no_commands_and_an_open_tree_is_worth_a_warning() {
    let text = good().replace("shell = \"restricted\"\n", "").replace(
        "commands = [\"systemctl status *\"]",
        "files = { read = [\"/**\"] }",
    );
    let p = load(&text).unwrap();
    let warnings = p.warnings().join("\n");
    assert!(!warnings.contains("allows no commands"), "{warnings}");
    assert!(
        warnings.contains("covers the whole file system"),
        "{warnings}"
    );
}
