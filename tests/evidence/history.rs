//! A history made with real sessions, then the report over it, number by number.

use std::time::{Duration, Instant};

use crate::common::postgres::Postgres;
use crate::common::*;
use crate::expect::{self, Store};
use crate::{denial, gatehouse, json};

/// The people and the bastion the history happens on.
pub struct Setup {
    pub world: World,
    pub alice: Person,
    pub bob: Person,
    pub carol: Person,
    pub dave: Person,
    pub eve: Person,
    pub policy: String,
    pub captured: std::path::PathBuf,
    _sink: tempfile::TempDir,
}

/// alice and dave are engineers (sre), bob a lead who approves and reviews (also as the
/// operator at the command line), carol on call, eve in no group that any role names. Alerts
/// go to a command sink that keeps what it is given.
fn setup(store: Option<&str>) -> Setup {
    let tmp_for_sink = tempfile::tempdir().unwrap();
    let captured = tmp_for_sink.path().join("alerts.jsonl");
    let script = tmp_for_sink.path().join("sink.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ncat >> {0}\necho >> {0}\n", captured.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let store_line = store
        .map(|url| format!("store = \"{url}\"\n"))
        .unwrap_or_default();
    let (mut world, mut people) = World::new(
        &["alice", "bob", "carol", "dave", "eve"],
        &format!(
            "{store_line}[[alerts.command]]\nprogram = \"{}\"\n",
            script.display()
        ),
    );
    let eve = people.pop().unwrap();
    let dave = people.pop().unwrap();
    let carol = people.pop().unwrap();
    let bob = people.pop().unwrap();
    let alice = people.pop().unwrap();
    let account = gatehouse::grants::operator::current_account().unwrap();
    let policy = format!(
        "{}{}{}{}{}{}{}\
         [[role]]\nname = \"web-read\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"{login}\"\n\
         max_duration = \"4h\"\napprovals = 1\napprovers = [\"leads\"]\nshell = \"restricted\"\n\
         commands = [\"echo *\", \"uptime\", \"id -un\", \"curl *\"]\n\n\
         [[role]]\nname = \"quick\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"{login}\"\n\
         max_duration = \"1m\"\napprovals = 0\nshell = \"full\"\n\n\
         [[role]]\nname = \"emergency\"\nmembers = [\"oncall\"]\ntargets = [\"*\"]\nlogin = \"{login}\"\n\
         max_duration = \"30m\"\nshell = \"full\"\nbreak_glass = true\n\n\
         [[role]]\nname = \"db-admin\"\nmembers = [\"sre\"]\ntargets = [\"db-01\"]\nlogin = \"{login}\"\n\
         max_duration = \"12h\"\napprovals = 1\napprovers = [\"leads\"]\nshell = \"full\"\n\n\
         [[operator]]\nunix = \"{account}\"\nuser = \"bob\"\n",
        user_toml(&alice, &["sre"]),
        user_toml(&bob, &["leads"]),
        user_toml(&carol, &["oncall"]),
        user_toml(&dave, &["sre"]),
        user_toml(&eve, &["qa"]),
        world.target_toml("web-01"),
        world.target_toml("db-01"),
        login = login(),
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    Setup {
        world,
        alice,
        bob,
        carol,
        dave,
        eve,
        policy,
        captured,
        _sink: tmp_for_sink,
    }
}

/// What the history left that the report must show.
pub struct Made {
    /// The denials the users read, in order.
    pub denials: Vec<String>,
    /// The refusals of the two approvals, as the users read them.
    pub self_approval: String,
    pub not_approver: String,
    /// The session of grant 4, reviewed by bob.
    pub reviewed_session: String,
}

fn ok(out: Output) -> Output {
    assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
    out
}

fn ssh(s: &Setup, who: &Person, args: &[&str]) -> Output {
    s.world.gatehouse.ssh(who, args)
}

/// Makes the history (see the module documentation of the test for the story).
fn make(s: &Setup) -> Made {
    let gh = &s.world.gatehouse;
    let mut denials = Vec::new();
    // 1: a request, refused approvals by its requester and by a non-approver, then bob's.
    ok(ssh(
        s,
        &s.alice,
        &[
            "request", "web-01", "--role", "web-read", "--for", "1h", "--reason", "INC-1", "read",
            "logs",
        ],
    ));
    let (self_approval, _) = denial(&ssh(s, &s.alice, &["approve", "1"]));
    let (not_approver, _) = denial(&ssh(s, &s.dave, &["approve", "1"]));
    ok(ssh(s, &s.bob, &["approve", "1"]));
    // Sessions and denials under it.
    assert_eq!(
        ok(ssh(s, &s.alice, &["web-01", "echo", "hello"])).out(),
        "hello\n"
    );
    ok(ssh(s, &s.alice, &["web-01", "uptime"]));
    denials.push(denial(&ssh(s, &s.alice, &["web-01", "ls", "/"])).0);
    denials.push(
        denial(&ssh(
            s,
            &s.alice,
            &["web-01", "curl", "--output", "/tmp/x", "http://127.0.0.1/"],
        ))
        .0,
    );
    let shell = run(
        gh.ssh_command(&s.alice, &["-tt"], &["web-01"]),
        b"echo one\rid -un\rrm -rf /nothing\rexit\r",
        Duration::from_secs(60),
    );
    assert_eq!(shell.code(), 0, "{}", shell.out());
    let line = shell
        .out()
        .lines()
        .find_map(|l| {
            l.strip_prefix("gatehouse: denied: ")
                .map(|r| r.trim_end().to_owned())
        })
        .expect("the shell denied a line");
    denials.push(line);
    denials.push(denial(&ssh(s, &s.alice, &["db-01", "uptime"])).0);
    denials.push(denial(&ssh(s, &s.eve, &["web-01", "uptime"])).0);
    ok(ssh(s, &s.bob, &["revoke", "1", "--reason", "done"]));
    // 2: self-service for a few seconds, one session of two, then it expires.
    ok(ssh(
        s,
        &s.alice,
        &[
            "request", "web-01", "--role", "quick", "--for", "6s", "--reason", "quick", "look",
        ],
    ));
    ok(ssh(s, &s.alice, &["web-01:quick", "sleep", "2"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let grants = json(&gatehouse(gh, &["grants", "list", "--all", "--json"], &[]));
        let swept = grants
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == 2 && g["state"] == "expired");
        let line = std::fs::read_to_string(gh.dir.join("data/audit.jsonl")).unwrap_or_default();
        if swept && line.contains("\"event\":\"grant.expired\"") {
            break;
        }
        assert!(Instant::now() < deadline, "grant 2 did not expire");
        std::thread::sleep(Duration::from_millis(200));
    }
    // 3: a request bob denies.
    ok(ssh(
        s,
        &s.alice,
        &[
            "request", "web-01", "--role", "web-read", "--for", "2h", "--reason", "again",
        ],
    ));
    ok(ssh(s, &s.bob, &["deny", "3", "--reason", "not", "now"]));
    // 4 and 5: two emergencies; bob reviews the first.
    ok(ssh(
        s,
        &s.carol,
        &[
            "breakglass",
            "db-01",
            "--reason",
            "primary",
            "down",
            "INC-9",
            "--",
            "echo",
            "glass",
        ],
    ));
    ok(ssh(
        s,
        &s.carol,
        &[
            "breakglass",
            "web-01",
            "--reason",
            "replica",
            "lagging",
            "INC-10",
            "--",
            "echo",
            "glass2",
        ],
    ));
    let sessions = json(&gatehouse(gh, &["sessions", "list", "--json"], &[]));
    let reviewed_session = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["grant_id"] == 4)
        .and_then(|x| x["id"].as_str())
        .unwrap()
        .to_owned();
    ok(gatehouse(
        gh,
        &[
            "review",
            "ack",
            &reviewed_session,
            "--note",
            "restart was right",
        ],
        &[],
    ));
    // 6: a grant still active when the report is made.
    ok(ssh(
        s,
        &s.alice,
        &[
            "request", "web-01", "--role", "web-read", "--for", "2h", "--reason", "INC-11",
        ],
    ));
    ok(ssh(s, &s.bob, &["approve", "6"]));
    // Both alerts reached the sink, and its deliveries are in the audit log.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = std::fs::read_to_string(&s.captured).unwrap_or_default();
        let audit = std::fs::read_to_string(gh.dir.join("data/audit.jsonl")).unwrap_or_default();
        let delivered = audit.matches("\"event\":\"alert.delivered\"").count();
        if got.matches("breakglass.activated").count() == 2 && delivered >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the alerts did not arrive: {got}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Made {
        denials,
        self_approval,
        not_approver,
        reviewed_session,
    }
}

/// Writes the report over the last hour as JSON (and HTML and CSV beside it), timing it.
fn report(s: &Setup, name: &str) -> (serde_json::Value, Duration) {
    let dir = s.world.tmp.path();
    let json_path = dir.join(format!("{name}.json"));
    let html = dir.join(format!("{name}.html"));
    let csv = dir.join(format!("{name}-csv"));
    let started = Instant::now();
    let out = gatehouse(
        &s.world.gatehouse,
        &[
            "report",
            "--since",
            "1h",
            "--json",
            &json_path.display().to_string(),
            "--out",
            &html.display().to_string(),
            "--csv",
            &csv.display().to_string(),
        ],
        &[],
    );
    let took = started.elapsed();
    assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
    let text = std::fs::read_to_string(&json_path).unwrap();
    (serde_json::from_str(&text).unwrap(), took)
}

fn history(store: Option<&str>) {
    let mut s = setup(store);
    let made = make(&s);
    let (r, took) = report(&s, "report");
    eprintln!("the report over this history took {took:?}");
    let seen = Store::read(&s.world.gatehouse);
    expect::standing(&r, &seen);
    expect::time(&r, &seen);
    expect::approvals(&r, &seen, &made);
    expect::break_glass(&r, &seen, &made);
    expect::unused(&r, &seen);
    expect::denials(&r, &made);
    expect::integrity(&r, &seen);
    expect::files(&s);
    if store.is_none() {
        expect::in_browser(&s);
    }
    expect::drift(&s, &r);
    expect::tampering(&mut s, &seen);
}

#[test]
fn the_report_counts_a_real_history_exactly_on_sqlite() {
    history(None);
}

#[test]
fn the_report_counts_a_real_history_exactly_on_postgres() {
    let pg = Postgres::start();
    let url = pg.create_database("evidence");
    history(Some(&url));
}

/// Re-made by `expect::drift` and `expect::tampering`: a report after a change.
pub fn report_again(s: &Setup, name: &str) -> serde_json::Value {
    report(s, name).0
}
