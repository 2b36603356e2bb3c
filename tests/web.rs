//! The web console and HTTP API end to end, over HTTPS with the certificate the bastion
//! generated: sign-in through a link from a real `ssh … web`, cookies, CSRF and origin checks,
//! API tokens and their scopes, decisions that a real `ssh` session then depends on, the
//! review queue, the audit trail of every web action, and the operations endpoints.

mod common;

use std::time::Duration;

use common::web::{Auth, Console, console_config};
use common::*;

/// bob (dev) may request web-ops; alice (ops) approves it; carol (audit) reviews; dave (dev)
/// approves nothing.
struct Setup {
    world: World,
    console: Console,
    alice: Person,
    bob: Person,
    carol: Person,
    dave: Person,
}

fn setup() -> Setup {
    let (port, http) = console_config();
    let (mut world, mut people) = World::new(&["alice", "bob", "carol", "dave"], &http);
    let dave = people.pop().unwrap();
    let carol = people.pop().unwrap();
    let bob = people.pop().unwrap();
    let alice = people.pop().unwrap();
    let policy = format!(
        "{}{}{}{}{}\
         [[role]]\nname = \"web-ops\"\nmembers = [\"dev\"]\ntargets = [\"web-01\"]\nlogin = \"{login}\"\nmax_duration = \"4h\"\napprovals = 1\napprovers = [\"ops\"]\nshell = \"full\"\n\n\
         [[role]]\nname = \"emergency\"\nmembers = [\"dev\"]\ntargets = [\"web-01\"]\nlogin = \"{login}\"\nmax_duration = \"1h\"\nbreak_glass = true\nshell = \"full\"\n",
        user_toml(&alice, &["ops"]),
        user_toml(&bob, &["dev"]),
        user_toml(&carol, &["audit"]),
        user_toml(&dave, &["dev"]),
        world.target_toml("web-01"),
        login = login(),
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    let console = Console::new(&world.gatehouse, port);
    Setup {
        world,
        console,
        alice,
        bob,
        carol,
        dave,
    }
}

/// bob's request for web-ops on web-01; returns its id.
fn bob_requests(s: &Setup) -> i64 {
    let out = s.world.gatehouse.ssh(
        &s.bob,
        &[
            "request", "web-01", "--role", "web-ops", "--for", "1h", "--reason", "deploy", "fix",
        ],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    out.out()
        .split_whitespace()
        .nth(1)
        .and_then(|id| id.parse().ok())
        .unwrap()
}

fn audit_lines(s: &Setup) -> Vec<serde_json::Value> {
    std::fs::read_to_string(s.world.gatehouse.dir.join("data/audit.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits until an audit line of `event` with `field` = `value` is written.
fn wait_for_audit(s: &Setup, event: &str, field: &str, value: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = audit_lines(s)
            .into_iter()
            .find(|l| l["event"] == event && l[field] == value)
        {
            return line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {event} line with {field} = {value}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn token(s: &Setup, user: &str, scope: &str) -> String {
    let out = run(
        s.world
            .gatehouse
            .command(&["tokens", "create", "--user", user, "--scope", scope]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(out.code(), 0, "tokens create: {}", out.err());
    out.out()
        .lines()
        .map(str::trim)
        .find(|l| {
            l.len() >= 40
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .unwrap_or_else(|| panic!("no token in {:?}", out.out()))
        .to_owned()
}

#[test]
fn a_link_from_ssh_signs_in_once_with_a_locked_down_cookie() {
    let s = setup();
    let link = Console::link_for(&s.world.gatehouse, &s.bob);
    assert!(
        link.starts_with(&format!("{}/login?token=", s.console.url)),
        "{link}"
    );
    let token = link.split("token=").nth(1).unwrap();

    // Opening the link spends nothing: a chat program's preview cannot use it up.
    let page = s
        .console
        .get(&format!("/login?token={token}"), &Auth::default());
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Sign in"), "{}", page.body);

    let signed = s
        .console
        .post_form("/login", &Auth::default(), &[("token", token)]);
    assert_eq!(signed.status, 303, "{}", signed.body);
    let cookie = signed.header("set-cookie").unwrap();
    for part in [
        "__Host-gatehouse=",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=",
    ] {
        assert!(cookie.contains(part), "{cookie}");
    }
    wait_for_audit(&s, "web.signed_in", "user", "bob");

    // The same link again, and a made-up one, sign no one in.
    let again = s
        .console
        .post_form("/login", &Auth::default(), &[("token", token)]);
    assert_eq!(again.status, 401);
    assert!(again.body.contains("used already"), "{}", again.body);
    assert!(!again.headers.iter().any(|(k, _)| k == "set-cookie"));
    let made_up = s
        .console
        .post_form("/login", &Auth::default(), &[("token", "0123456789abcdef")]);
    assert_eq!(made_up.status, 401);
    assert!(
        made_up.body.contains("not a valid sign-in link"),
        "{}",
        made_up.body
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while audit_lines(&s)
        .into_iter()
        .filter(|l| l["event"] == "web.sign_in_refused")
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "two refused sign-ins are audited"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Signed in: bob's pages work; signed out: the cookie no longer does.
    let auth = s.console.sign_in(&s.world.gatehouse, &s.bob);
    assert_eq!(s.console.get("/api/v1/grants", &auth).status, 200);
    let out = s
        .console
        .post_form("/logout", &auth, &[("csrf", auth.csrf.as_deref().unwrap())]);
    assert_eq!(out.status, 200, "{}", out.body);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(s.console.get("/api/v1/grants", &auth).status, 401);
    wait_for_audit(&s, "web.signed_out", "user", "bob");
}

#[test]
fn an_expired_link_is_refused() {
    let s = setup();
    let link = Console::link_for(&s.world.gatehouse, &s.bob);
    let token = link.split("token=").nth(1).unwrap();
    std::thread::sleep(Duration::from_secs(61));
    let late = s
        .console
        .post_form("/login", &Auth::default(), &[("token", token)]);
    assert_eq!(late.status, 401);
    assert!(late.body.contains("expired"), "{}", late.body);
}

#[test]
fn an_approval_through_the_api_opens_the_requesters_ssh_session() {
    let s = setup();
    let gh = &s.world.gatehouse;
    let id = bob_requests(&s);
    let denied = gh.ssh(&s.bob, &["web-01:web-ops", "echo", "hi"]);
    assert_eq!(denied.code(), 126);

    let alice = s.console.sign_in(gh, &s.alice);
    let list = s.console.get("/api/v1/requests", &alice).json();
    let ids: Vec<i64> = list["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [id]);
    assert_eq!(list["grants"][0]["user"], "bob");
    assert_eq!(list["grants"][0]["reason"], "deploy fix");

    let approved = s.console.post_json(
        &format!("/api/v1/requests/{id}/approve"),
        &alice,
        serde_json::json!({ "comment": "go ahead" }),
    );
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.json()["state"], "active");
    let line = wait_for_audit(&s, "grant.approved", "actor", "alice");
    assert_eq!(line["detail"]["via"], "web", "{line}");

    let out = gh.ssh(&s.bob, &["web-01:web-ops", "echo", "hi"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(out.out(), "hi\n");

    // bob cannot approve his own request, and nobody approves twice.
    let bob = s.console.sign_in(gh, &s.bob);
    let own = s.console.post_json(
        &format!("/api/v1/requests/{id}/approve"),
        &bob,
        serde_json::json!({}),
    );
    assert!(
        own.status == 403 || own.status == 409,
        "{} {}",
        own.status,
        own.body
    );
}

#[test]
fn changes_need_the_sessions_csrf_value_and_this_origin() {
    let s = setup();
    let gh = &s.world.gatehouse;
    let id = bob_requests(&s);
    let alice = s.console.sign_in(gh, &s.alice);
    let path = format!("/api/v1/requests/{id}/approve");

    let no_csrf = Auth {
        csrf: None,
        ..alice.clone()
    };
    let answer = s.console.post_json(&path, &no_csrf, serde_json::json!({}));
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(answer.json()["error"]["code"], "forbidden");

    let wrong = Auth {
        csrf: Some("not-the-value".into()),
        ..alice.clone()
    };
    assert_eq!(
        s.console
            .post_json(&path, &wrong, serde_json::json!({}))
            .status,
        403
    );

    let elsewhere = Auth {
        origin: Some("https://evil.example".into()),
        ..alice.clone()
    };
    assert_eq!(
        s.console
            .post_json(&path, &elsewhere, serde_json::json!({}))
            .status,
        403
    );

    let form = s.console.post_form(
        &format!("/requests/{id}/approve"),
        &alice,
        &[("comment", "x")],
    );
    assert_eq!(
        form.status, 403,
        "a form without its csrf field: {}",
        form.body
    );

    // Nothing was approved by any of those.
    let pending = s.console.get("/api/v1/requests", &alice).json();
    assert_eq!(
        pending["grants"][0]["approvals"].as_array().unwrap().len(),
        0
    );

    // With everything right, the form works.
    let ok = s.console.post_form(
        &format!("/requests/{id}/approve"),
        &alice,
        &[
            ("csrf", alice.csrf.as_deref().unwrap()),
            ("comment", "fine"),
        ],
    );
    assert_eq!(ok.status, 303, "{}", ok.body);
}

#[test]
fn token_scopes_and_the_persons_rights_both_bound_an_api_call() {
    let s = setup();
    let read = token(&s, "alice", "read");
    let approve = token(&s, "alice", "approve");
    let dave_approve = token(&s, "dave", "approve");
    let id = bob_requests(&s);
    let path = format!("/api/v1/requests/{id}/approve");
    let with = |t: &str| Auth {
        token: Some(t.to_owned()),
        ..Auth::default()
    };

    let listed = s.console.get("/api/v1/requests", &with(&read));
    assert_eq!(listed.status, 200, "{}", listed.body);
    let refused = s
        .console
        .post_json(&path, &with(&read), serde_json::json!({}));
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scope read")
    );

    // dave's token may approve, but dave is no approver of web-ops.
    assert!(
        s.console
            .get("/api/v1/requests", &with(&dave_approve))
            .json()["grants"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let not_approver = s
        .console
        .post_json(&path, &with(&dave_approve), serde_json::json!({}));
    assert_eq!(not_approver.status, 403, "{}", not_approver.body);

    let ok = s
        .console
        .post_json(&path, &with(&approve), serde_json::json!({}));
    assert_eq!(ok.status, 200, "{}", ok.body);
    let line = wait_for_audit(&s, "grant.approved", "actor", "alice");
    assert_eq!(line["detail"]["via"], "api", "{line}");
    assert!(
        line["detail"]["token"]
            .as_str()
            .unwrap()
            .starts_with("tok_"),
        "{line}"
    );

    // No token, a made-up one: 401 with a JSON error.
    let none = s.console.get("/api/v1/requests", &Auth::default());
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"]["code"], "unauthenticated");
    let bogus = s.console.get("/api/v1/requests", &with("nope"));
    assert_eq!(bogus.status, 401);

    // A revoked token stops at once.
    let listed = run(
        s.world.gatehouse.command(&["tokens", "list", "--json"]),
        b"",
        Duration::from_secs(30),
    );
    let tokens: serde_json::Value = serde_json::from_str(&listed.out()).unwrap();
    let read_id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["user"] == "alice" && t["scope"] == "read")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = run(
        s.world.gatehouse.command(&["tokens", "revoke", &read_id]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(revoked.code(), 0, "{}", revoked.err());
    assert_eq!(s.console.get("/api/v1/requests", &with(&read)).status, 401);
}

#[test]
fn people_see_their_own_sessions_and_reviewers_see_all_and_review_break_glass() {
    let s = setup();
    let gh = &s.world.gatehouse;
    let out = gh.ssh(
        &s.bob,
        &[
            "breakglass",
            "web-01",
            "--reason",
            "database",
            "is",
            "down",
            "--",
            "echo",
            "$((6*7))",
        ],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(out.out(), "42\n");

    let bob = s.console.sign_in(gh, &s.bob);
    let dave = s.console.sign_in(gh, &s.dave);
    let carol = s.console.sign_in(gh, &s.carol);
    let bobs = s.console.get("/api/v1/sessions", &bob).json();
    assert_eq!(bobs["sessions"].as_array().unwrap().len(), 1, "{bobs}");
    let id = bobs["sessions"][0]["id"].as_str().unwrap().to_owned();
    assert!(
        s.console.get("/api/v1/sessions", &dave).json()["sessions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.console
            .get(&format!("/api/v1/sessions/{id}"), &dave)
            .status,
        404
    );
    assert_eq!(
        s.console.get("/api/v1/sessions?user=bob", &dave).status,
        403
    );
    assert_eq!(s.console.get("/api/v1/reviews", &bob).status, 403);

    // The reviewer finds it by its output (the command holds no "42"), downloads it (an audit line), and acknowledges it.
    // The text index commits within a second of the output.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let found = loop {
        let found = s.console.get("/api/v1/sessions?q=42", &carol).json();
        if found["sessions"][0]["id"] == id.as_str() || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(found["sessions"][0]["id"], id.as_str(), "{found}");
    assert_eq!(found["sessions"][0]["hit"]["source"], "output");
    let cast = s
        .console
        .get(&format!("/api/v1/sessions/{id}/cast"), &carol);
    assert_eq!(cast.status, 200);
    assert!(
        cast.body.starts_with("{\"version\":2"),
        "{}",
        &cast.body[..cast.body.len().min(80)]
    );
    let viewed = wait_for_audit(&s, "session.viewed", "session_id", &id);
    assert_eq!(viewed["actor"], "carol");
    let verify = s
        .console
        .get(&format!("/api/v1/sessions/{id}/verify"), &carol)
        .json();
    assert_eq!(verify["result"], "ok", "{verify}");

    let queue = s.console.get("/api/v1/reviews", &carol).json();
    assert_eq!(queue["reviews"][0]["session"]["id"], id.as_str());
    let acked = s.console.post_json(
        &format!("/api/v1/reviews/{id}/ack"),
        &carol,
        serde_json::json!({ "note": "looked fine" }),
    );
    assert_eq!(acked.status, 200, "{}", acked.body);
    let twice = s.console.post_json(
        &format!("/api/v1/reviews/{id}/ack"),
        &carol,
        serde_json::json!({ "note": "again" }),
    );
    assert_eq!(twice.status, 409, "{}", twice.body);
    let line = wait_for_audit(&s, "review.acked", "session_id", &id);
    assert_eq!(line["actor"], "carol");
}

#[test]
fn the_person_who_broke_the_glass_cannot_review_it() {
    let (port, http) = console_config();
    let (mut world, mut people) = World::new(&["erin", "frank"], &http);
    let frank = people.pop().unwrap();
    let erin = people.pop().unwrap();
    // erin may break the glass and is also a reviewer.
    let policy = format!(
        "{}{}{}[[role]]\nname = \"emergency\"\nmembers = [\"dev\"]\ntargets = [\"web-01\"]\nlogin = \"{login}\"\nmax_duration = \"1h\"\nbreak_glass = true\nshell = \"full\"\n",
        user_toml(&erin, &["dev", "audit"]),
        user_toml(&frank, &["audit"]),
        world.target_toml("web-01"),
        login = login(),
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    let console = Console::new(&world.gatehouse, port);
    let out = world.gatehouse.ssh(
        &erin,
        &[
            "breakglass",
            "web-01",
            "--reason",
            "the building is on fire",
            "--",
            "true",
        ],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let auth = console.sign_in(&world.gatehouse, &erin);
    let queue = console.get("/api/v1/reviews", &auth).json();
    let id = queue["reviews"][0]["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let own = console.post_json(
        &format!("/api/v1/reviews/{id}/ack"),
        &auth,
        serde_json::json!({ "note": "mine" }),
    );
    assert_eq!(own.status, 403, "{}", own.body);
    assert!(
        own.body.contains("someone else must review it"),
        "{}",
        own.body
    );
    let other = console.sign_in(&world.gatehouse, &frank);
    let ok = console.post_json(
        &format!("/api/v1/reviews/{id}/ack"),
        &other,
        serde_json::json!({ "note": "checked" }),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[test]
fn every_response_carries_the_security_headers_and_bad_input_gets_a_json_error() {
    let s = setup();
    let health = s.console.get("/healthz", &Auth::default());
    assert_eq!(health.status, 200);
    for (name, needle) in [
        ("content-security-policy", "script-src 'self'"),
        ("content-security-policy", "frame-ancestors 'none'"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
        ("strict-transport-security", "max-age="),
        ("cache-control", "no-store"),
    ] {
        let value = health.header(name).unwrap_or_else(|| panic!("no {name}"));
        assert!(value.contains(needle), "{name}: {value}");
    }
    assert!(
        !health
            .header("content-security-policy")
            .unwrap()
            .contains("unsafe-inline")
    );
    let ready = s.console.get("/readyz", &Auth::default());
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["ready"], true);

    let alice = s.console.sign_in(&s.world.gatehouse, &s.alice);
    let id = bob_requests(&s);
    let path = format!("/api/v1/requests/{id}/approve");
    let garbage = s.console.call(
        "POST",
        &path,
        &alice,
        Some(("application/json", "{not json".into())),
    );
    assert_eq!(garbage.status, 400, "{}", garbage.body);
    assert_eq!(garbage.json()["error"]["code"], "bad_request");
    let unknown_field = s.console.post_json(
        &path,
        &alice,
        serde_json::json!({ "comment": "x", "approve_all": true }),
    );
    // axum answers a body of the wrong shape with 422, still as the JSON error.
    assert_eq!(unknown_field.status, 422, "{}", unknown_field.body);
    assert_eq!(unknown_field.json()["error"]["code"], "bad_request");
    let huge = s.console.post_json(
        &path,
        &alice,
        serde_json::json!({ "comment": "x".repeat(70_000) }),
    );
    assert_eq!(
        huge.status,
        413,
        "{}",
        &huge.body[..huge.body.len().min(200)]
    );
    let bad_id = s.console.post_json(
        "/api/v1/requests/abc/approve",
        &alice,
        serde_json::json!({}),
    );
    assert_eq!(bad_id.status, 400, "{}", bad_id.body);
    assert_eq!(bad_id.json()["error"]["code"], "bad_request");
    let no_such = s.console.post_json(
        "/api/v1/requests/99999/approve",
        &alice,
        serde_json::json!({}),
    );
    assert_eq!(no_such.status, 404, "{}", no_such.body);
    let nowhere = s.console.get("/api/v1/nothing", &alice);
    assert_eq!(nowhere.status, 404);
    assert_eq!(nowhere.json()["error"]["code"], "not_found");
    // The request is still pending: nothing above decided anything.
    assert_eq!(
        s.console.get("/api/v1/requests", &alice).json()["grants"][0]["state"],
        "pending"
    );
}

#[test]
fn the_openapi_document_names_every_api_route() {
    let s = setup();
    let doc = s.console.get("/api/openapi.json", &Auth::default());
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/requests",
        "/api/v1/requests/{id}/approve",
        "/api/v1/requests/{id}/deny",
        "/api/v1/grants",
        "/api/v1/grants/{id}/revoke",
        "/api/v1/sessions",
        "/api/v1/sessions/{id}",
        "/api/v1/sessions/{id}/cast",
        "/api/v1/sessions/{id}/frame",
        "/api/v1/sessions/{id}/timeline",
        "/api/v1/reviews",
        "/api/v1/reviews/{id}/ack",
        "/api/v1/audit",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys()
        );
    }
    assert!(doc["components"]["securitySchemes"]["token"].is_object());
}

/// The value of one series (name with its labels, exactly as rendered) in a scrape.
fn series(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {name} in:\n{scrape}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn metrics_move_by_the_right_amounts_after_real_sessions() {
    let s = setup();
    let gh = &s.world.gatehouse;
    let scrape = || {
        let answer = s.console.get("/metrics", &Auth::default());
        assert_eq!(answer.status, 200);
        assert!(
            answer
                .header("content-type")
                .unwrap()
                .starts_with("text/plain")
        );
        answer.body
    };
    let before = scrape();
    for line in before
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("gatehouse_"), "{line}");
    }
    assert_eq!(series(&before, "gatehouse_sessions_active"), 0.0);
    assert_eq!(series(&before, "gatehouse_store_up"), 1.0);
    let started = "gatehouse_sessions_total{outcome=\"started\"}";
    let ended = "gatehouse_sessions_total{outcome=\"ended\"}";
    let no_grant = "gatehouse_denials_total{reason=\"no_grant\"}";
    let decisions = "gatehouse_decision_seconds_count";

    // One refused for want of a grant, then two that run.
    assert_eq!(gh.ssh(&s.bob, &["web-01:web-ops", "true"]).code(), 126);
    let id = bob_requests(&s);
    let alice = s.console.sign_in(gh, &s.alice);
    let approved = s.console.post_json(
        &format!("/api/v1/requests/{id}/approve"),
        &alice,
        serde_json::json!({}),
    );
    assert_eq!(approved.status, 200, "{}", approved.body);
    for _ in 0..2 {
        let out = gh.ssh(&s.bob, &["web-01:web-ops", "echo", "counted"]);
        assert_eq!(out.code(), 0, "{}", out.err());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let after = loop {
        let now = scrape();
        if series(&now, ended) - series(&before, ended) >= 2.0 {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session ends were not counted:\n{now}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(series(&after, started) - series(&before, started), 2.0);
    assert_eq!(series(&after, ended) - series(&before, ended), 2.0);
    assert_eq!(series(&after, no_grant) - series(&before, no_grant), 1.0);
    assert_eq!(series(&after, "gatehouse_sessions_active"), 0.0);
    assert_eq!(series(&after, decisions) - series(&before, decisions), 3.0);
    assert!(
        series(&after, "gatehouse_recording_bytes_total")
            > series(&before, "gatehouse_recording_bytes_total")
    );
    assert_eq!(
        series(&after, "gatehouse_upstream_connect_seconds_count")
            - series(&before, "gatehouse_upstream_connect_seconds_count"),
        2.0
    );
}
