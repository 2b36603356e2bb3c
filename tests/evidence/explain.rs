//! `explain` says what the real denial says: each case is first refused (or allowed) through
//! `ssh`, then explained by `gatehouse explain` and by the SSH verb, and the words compared.

use crate::common::*;
use crate::{denial, gatehouse, json};

struct Setup {
    world: World,
    alice: Person,
    eve: Person,
    policy: String,
}

/// alice (sre) may read web-01 (restricted, self-service) and may request db-ops on db-01
/// (approved by bob, a lead); eve is in no group that any role names.
fn setup() -> Setup {
    let (mut world, mut people) = World::new(&["alice", "bob", "eve"], "");
    let eve = people.pop().unwrap();
    let bob = people.pop().unwrap();
    let alice = people.pop().unwrap();
    let policy = format!(
        "{}{}{}{}{}\
         [[role]]\nname = \"web-read\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"{login}\"\n\
         approvals = 0\nshell = \"restricted\"\ncommands = [\"echo *\", \"uptime\", \"curl *\"]\n\n\
         [[role]]\nname = \"db-ops\"\nmembers = [\"sre\"]\ntargets = [\"db-01\"]\nlogin = \"{login}\"\n\
         approvals = 1\napprovers = [\"leads\"]\nshell = \"full\"\n",
        user_toml(&alice, &["sre"]),
        user_toml(&bob, &["leads"]),
        user_toml(&eve, &["qa"]),
        world.target_toml("web-01"),
        world.target_toml("db-01"),
        login = login(),
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    let out = world.gatehouse.ssh(
        &alice,
        &[
            "request", "web-01", "--for", "1h", "--reason", "explain", "tests",
        ],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    Setup {
        world,
        alice,
        eve,
        policy,
    }
}

/// `gatehouse explain USER TARGET --json -- COMMAND…`, as JSON.
fn explained(s: &Setup, user: &str, target: &str, command: &[&str]) -> serde_json::Value {
    let out = gatehouse(
        &s.world.gatehouse,
        &["explain", user, target, "--json"],
        command,
    );
    assert!(matches!(out.code(), 0 | 1), "{}{}", out.out(), out.err());
    json(&out)
}

fn role<'a>(e: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    e["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == name)
        .unwrap_or_else(|| panic!("no role {name} in {e}"))
}

/// Checks that explain's verdict is exactly the denial `out` shows.
fn same_words(e: &serde_json::Value, out: &Output) {
    let (reason, hint) = denial(out);
    assert_eq!(e["verdict"]["allowed"], false, "{e}");
    assert_eq!(e["verdict"]["reason"], reason.as_str(), "{e}");
    assert_eq!(
        e["verdict"]["hint"].as_str(),
        hint.as_deref(),
        "{e}\nreal hint: {hint:?}"
    );
}

#[test]
fn explain_answers_in_the_words_of_the_real_decision() {
    let s = setup();
    let gh = &s.world.gatehouse;

    // Allowed: the session runs, and explain names the rule and what is sent.
    let out = gh.ssh(&s.alice, &["web-01", "echo", "hi"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(out.out(), "hi\n");
    let e = explained(&s, "alice", "web-01", &["echo", "hi"]);
    assert_eq!(e["verdict"]["allowed"], true, "{e}");
    assert_eq!(e["verdict"]["runs"], "'echo' 'hi'");
    let read = role(&e, "web-read");
    assert_eq!(read["with_grant"]["rule"], "echo *");
    assert!(read["live_grant"]["id"].is_i64(), "{e}");

    // Denied by the rules: the closest rule and its reason.
    let out = gh.ssh(&s.alice, &["web-01", "ls", "/"]);
    let e = explained(&s, "alice", "web-01", &["ls", "/"]);
    same_words(&e, &out);
    let read = role(&e, "web-read");
    assert_eq!(read["with_grant"]["reason"], e["verdict"]["reason"]);
    assert_eq!(read["with_grant"]["rules"].as_array().unwrap().len(), 3);

    // Denied by the option guard: the words fit "curl *", the guard names the option.
    let out = gh.ssh(
        &s.alice,
        &["web-01", "curl", "--output", "/tmp/x", "http://127.0.0.1/"],
    );
    let e = explained(
        &s,
        "alice",
        "web-01",
        &["curl", "--output", "/tmp/x", "http://127.0.0.1/"],
    );
    same_words(&e, &out);
    let guard = &role(&e, "web-read")["with_grant"]["guard"];
    assert_eq!(guard[0]["rule"], "curl *", "{e}");
    assert_eq!(guard[0]["detail"], e["verdict"]["reason"]);
    assert!(
        e["verdict"]["reason"]
            .as_str()
            .unwrap()
            .contains("--output"),
        "{e}"
    );

    // No grant: a member without a live grant, told how to ask and who approves.
    let out = gh.ssh(&s.alice, &["db-01", "uptime"]);
    let e = explained(&s, "alice", "db-01", &["uptime"]);
    same_words(&e, &out);
    let db = role(&e, "db-ops");
    assert_eq!(db["member"], true);
    assert_eq!(db["approvers"], serde_json::json!(["bob"]));
    assert_eq!(
        db["with_grant"]["allowed"], true,
        "a full role runs anything"
    );

    // Not a member: the same answer as an unknown target, and every role says why not.
    let out = gh.ssh(&s.eve, &["web-01", "uptime"]);
    let e = explained(&s, "eve", "web-01", &["uptime"]);
    same_words(&e, &out);
    let read = role(&e, "web-read");
    assert_eq!(read["member"], false);
    let out = gh.ssh(&s.eve, &["web-01:web-read", "uptime"]);
    let (reason, _) = denial(&out);
    assert_eq!(read["now"]["reason"], reason.as_str());

    // The text form says the same, and the exit status tells allowed from denied.
    let out = gatehouse(gh, &["explain", "alice", "web-01"], &["ls", "/"]);
    assert_eq!(out.code(), 1);
    let (reason, _) = denial(&gh.ssh(&s.alice, &["web-01", "ls", "/"]));
    assert!(
        out.out().contains(&format!("now: DENIED: {reason}")),
        "{}",
        out.out()
    );
    assert_eq!(
        gatehouse(gh, &["explain", "alice", "web-01"], &["uptime"]).code(),
        0
    );
    let out = gatehouse(gh, &["explain", "nobody", "web-01"], &[]);
    assert_eq!(out.code(), 2, "{}", out.err());
}

#[test]
fn the_ssh_verb_explains_the_person_to_themselves() {
    let s = setup();
    let gh = &s.world.gatehouse;
    let (reason, _) = denial(&gh.ssh(&s.alice, &["web-01", "ls", "/"]));
    let out = gh.ssh(&s.alice, &["explain", "web-01", "--", "ls", "/"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    assert!(
        out.out().contains(&format!("now: DENIED: {reason}")),
        "{}",
        out.out()
    );
    let out = gh.ssh(&s.alice, &["explain", "web-01", "--json", "--", "ls", "/"]);
    let e = json(&out);
    assert_eq!(e["verdict"]["reason"], reason.as_str());
    assert!(e.get("target_known").is_none(), "{e}");
    // eve learns nothing about roles she cannot hold, or whether a target exists.
    let out = gh.ssh(&s.eve, &["explain", "web-01", "--json"]);
    let known = json(&out);
    let out = gh.ssh(&s.eve, &["explain", "nope-99", "--json"]);
    let unknown = json(&out);
    assert_eq!(known["roles"], serde_json::json!([]));
    assert_eq!(unknown["roles"], serde_json::json!([]));
    assert_eq!(
        known["verdict"]["reason"],
        "no role of yours covers target \"web-01\""
    );
    let usage = gh.ssh(&s.alice, &["explain"]);
    assert_eq!(usage.code(), 2, "{}", usage.err());
}

#[test]
fn a_policy_change_is_explained_before_it_ships() {
    let s = setup();
    let gh = &s.world.gatehouse;
    let proposed = s.world.tmp.path().join("proposed");
    std::fs::create_dir_all(&proposed).unwrap();
    std::fs::write(
        proposed.join("main.toml"),
        s.policy.replace("\"curl *\"]", "\"curl *\", \"ls *\"]"),
    )
    .unwrap();
    let dir = proposed.display().to_string();
    let e = json(&gatehouse(
        gh,
        &["explain", "alice", "web-01", "--json", "--policies", &dir],
        &["ls", "/"],
    ));
    assert_eq!(e["verdict"]["allowed"], true, "{e}");
    assert_eq!(role(&e, "web-read")["with_grant"]["rule"], "ls *");
    // The policy in force still refuses it.
    denial(&gh.ssh(&s.alice, &["web-01", "ls", "/"]));
    // A proposal that does not load is said so, not explained.
    std::fs::write(proposed.join("broken.toml"), "[[role]]\nname = 1\n").unwrap();
    let out = gatehouse(
        gh,
        &["explain", "alice", "web-01", "--policies", &dir],
        &["ls", "/"],
    );
    assert_eq!(out.code(), 2);
    assert!(out.err().contains("does not load"), "{}", out.err());
}
