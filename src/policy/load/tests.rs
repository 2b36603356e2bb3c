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
