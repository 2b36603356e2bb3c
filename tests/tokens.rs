//! `gatehouse tokens` end to end, as an operator runs it next to a running bastion: a token is
//! printed once and stored only as its hash, listed without its secret, revoked once, and every
//! creation and revocation is a line in the same verifiable audit log as the bastion's.

mod common;

use std::time::Duration;

use common::*;

/// The audit log's lines.
fn audit_lines(gh: &Gatehouse) -> Vec<serde_json::Value> {
    std::fs::read_to_string(gh.dir.join("data/audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The lines of event `name`.
fn events(gh: &Gatehouse, name: &str) -> Vec<serde_json::Value> {
    audit_lines(gh)
        .into_iter()
        .filter(|l| l["event"] == name)
        .collect()
}

/// Runs `gatehouse ARGS…` on the deployment.
fn gatehouse(gh: &Gatehouse, args: &[&str]) -> Output {
    run(gh.command(args), b"", Duration::from_secs(30))
}

/// `tokens list --json`.
fn listed(gh: &Gatehouse) -> Vec<serde_json::Value> {
    let out = gatehouse(gh, &["tokens", "list", "--json"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    serde_json::from_str::<serde_json::Value>(&out.out())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Creates a token and returns `(secret, id)`, checking what is printed where.
fn create(gh: &Gatehouse, args: &[&str]) -> (String, String) {
    let mut all = vec!["tokens", "create"];
    all.extend_from_slice(args);
    let out = gatehouse(gh, &all);
    assert_eq!(out.code(), 0, "{}", out.err());
    let stdout = out.out();
    let secret = stdout.trim_end_matches('\n');
    assert_eq!(
        stdout.lines().count(),
        1,
        "the secret alone on stdout: {stdout:?}"
    );
    assert!(
        secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()),
        "{secret:?}"
    );
    let err = out.err();
    let id = err
        .split_whitespace()
        .find(|w| w.starts_with("tok_"))
        .unwrap_or_else(|| panic!("the id is named: {err}"))
        .to_owned();
    assert!(err.contains("shown only this once"), "{err}");
    (secret.to_owned(), id)
}

#[test]
fn tokens_are_created_listed_and_revoked_with_audit_lines() {
    let (mut world, mut people) = World::new(&["alice", "bob"], "");
    let bob = people.pop().unwrap();
    let alice = people.pop().unwrap();
    let account = gatehouse::grants::operator::current_account().unwrap();
    let policy = format!(
        "{}{}{}[[role]]\nname = \"ops\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"{}\"\napprovals = 1\napprovers = [\"leads\"]\nshell = \"full\"\n",
        user_toml(&alice, &["sre"]),
        user_toml(&bob, &["leads"]),
        world.target_toml("web-01"),
        login(),
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    let gh = &world.gatehouse;

    // Created by an operator not mapped to a policy user.
    let (secret, id) = create(
        gh,
        &["--user", "alice", "--scope", "approve", "--for", "30d"],
    );
    let tokens = listed(gh);
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let token = &tokens[0];
    assert_eq!(token["id"], id.as_str());
    assert_eq!(token["user"], "alice");
    assert_eq!(token["scope"], "approve");
    assert_eq!(token["created_by"], format!("operator:{account}"));
    let created = token["created_at"].as_i64().unwrap();
    assert_eq!(token["expires_at"].as_i64(), Some(created + 30 * 86_400));
    assert!(token["revoked_at"].is_null() && token["last_used_at"].is_null());
    assert!(token.get("hash").is_none(), "{token}");

    // Refused: a user the policy does not know, a scope that does not exist.
    let out = gatehouse(
        gh,
        &["tokens", "create", "--user", "carol", "--scope", "read"],
    );
    assert_eq!(out.code(), 2, "{}", out.err());
    assert!(
        out.err().contains("no user \"carol\" in the policy"),
        "{}",
        out.err()
    );
    assert!(out.out().is_empty(), "{}", out.out());
    let out = gatehouse(
        gh,
        &["tokens", "create", "--user", "alice", "--scope", "admin"],
    );
    assert_eq!(out.code(), 2, "{}", out.err());
    assert!(
        out.err().contains("read, review or approve"),
        "{}",
        out.err()
    );
    let out = gatehouse(
        gh,
        &[
            "tokens", "create", "--user", "alice", "--scope", "read", "--for", "2y",
        ],
    );
    assert_eq!(out.code(), 2, "{}", out.err());
    assert_eq!(listed(gh).len(), 1, "nothing refused was stored");

    // The table names it, live; neither listing shows the secret.
    let out = gatehouse(gh, &["tokens", "list"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    let line = out
        .out()
        .lines()
        .find(|l| l.contains(&id))
        .unwrap()
        .to_owned();
    assert!(line.contains("alice") && line.contains("approve") && line.contains("live"));
    assert!(!out.out().contains(&secret));

    // Revoked once; a second time and an unknown id are errors.
    let out = gatehouse(gh, &["tokens", "revoke", &id]);
    assert_eq!(out.code(), 0, "{}", out.err());
    assert!(
        out.out().contains(&format!("token {id} revoked")),
        "{}",
        out.out()
    );
    let out = gatehouse(gh, &["tokens", "revoke", &id]);
    assert_eq!(out.code(), 1, "{}", out.err());
    assert!(out.err().contains("revoked already"), "{}", out.err());
    let out = gatehouse(gh, &["tokens", "revoke", "tok_00000000"]);
    assert_eq!(out.code(), 1, "{}", out.err());
    assert!(
        out.err().contains("no token \"tok_00000000\""),
        "{}",
        out.err()
    );
    let tokens = listed(gh);
    assert!(tokens[0]["revoked_at"].as_i64().unwrap() >= created);
    let out = gatehouse(gh, &["tokens", "list"]);
    assert!(out.out().contains("revoked"), "{}", out.out());

    // One line each, naming the operator and the token, never the secret.
    let made = events(gh, "token.created");
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["user"], "alice");
    assert_eq!(made[0]["actor"], format!("operator:{account}"));
    assert_eq!(made[0]["detail"]["token_id"], id.as_str());
    assert_eq!(made[0]["detail"]["scope"], "approve");
    assert_eq!(made[0]["detail"]["unix_account"], account.as_str());
    assert_eq!(made[0]["detail"]["expires_at"], tokens[0]["expires_at"]);
    let gone = events(gh, "token.revoked");
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0]["user"], "alice");
    assert_eq!(gone[0]["actor"], format!("operator:{account}"));
    assert_eq!(gone[0]["detail"]["token_id"], id.as_str());

    // An operator mapped to a policy user acts as that user; without --for a token lasts 90d.
    world.gatehouse.write_policy(
        "operators.toml",
        &format!("[[operator]]\nunix = \"{account}\"\nuser = \"bob\"\n"),
    );
    let gh = &world.gatehouse;
    let (second, id2) = create(gh, &["--user", "bob", "--scope", "read"]);
    let tokens = listed(gh);
    let token = tokens.iter().find(|t| t["id"] == id2.as_str()).unwrap();
    assert_eq!(token["created_by"], "bob");
    assert_eq!(
        token["expires_at"].as_i64().unwrap() - token["created_at"].as_i64().unwrap(),
        90 * 86_400
    );
    let made = events(gh, "token.created");
    assert_eq!(made.len(), 2);
    assert_eq!(made[1]["actor"], "bob");
    assert_eq!(made[1]["detail"]["token_id"], id2.as_str());

    // Neither secret is anywhere on disk: not in the audit log, not in the database.
    let data = gh.dir.join("data");
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            for s in [&secret, &second] {
                assert!(
                    !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                    "a secret is in {}",
                    path.display()
                );
            }
        }
    }
    // The operator's lines are part of the bastion's one unbroken chain.
    let out = gatehouse(gh, &["audit", "verify"]);
    assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
}
