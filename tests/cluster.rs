//! Several nodes on one PostgreSQL, end to end: real `gatehouse serve` processes, a real
//! PostgreSQL server, real `ssh` and `sshd`. A grant decided on one node holds on every node,
//! a revocation anywhere closes sessions everywhere, limits and quorums hold across nodes,
//! alerts survive the node that queued them, and a node that loses the database fails closed
//! and recovers by itself.

mod common;

use std::process::Stdio;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, FAST_CLUSTER, node_name};
use common::receiver::Receiver;
use common::*;

struct Setup {
    cluster: Cluster,
    alice: Person,
    bob: Person,
    dave: Person,
    carol: Person,
}

/// alice (sre) may hold `web-ops` (one approval by sre-leads) and `pair-ops` (two approvals);
/// bob and dave are sre-leads; carol is on call with break-glass.
fn setup(extra: &str) -> Setup {
    let (mut cluster, mut people) =
        Cluster::new(&["alice", "bob", "dave", "carol"], 2, FAST_CLUSTER, extra);
    let carol = people.pop().unwrap();
    let dave = people.pop().unwrap();
    let bob = people.pop().unwrap();
    let alice = people.pop().unwrap();
    let login = login();
    let policy = format!(
        "{}{}{}{}{}\
         [[role]]\nname = \"web-ops\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"{login}\"\n\
         max_duration = \"4h\"\napprovals = 1\napprovers = [\"sre-leads\"]\nshell = \"full\"\n\n\
         [[role]]\nname = \"pair-ops\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"{login}\"\n\
         max_duration = \"4h\"\napprovals = 2\napprovers = [\"sre-leads\"]\nshell = \"full\"\n\n\
         [[role]]\nname = \"emergency\"\nmembers = [\"oncall\"]\ntargets = [\"*\"]\nlogin = \"{login}\"\n\
         max_duration = \"30m\"\nshell = \"full\"\nbreak_glass = true\n",
        user_toml(&alice, &["sre"]),
        user_toml(&bob, &["sre-leads"]),
        user_toml(&dave, &["sre-leads"]),
        user_toml(&carol, &["oncall"]),
        cluster.target_toml("web-01"),
    );
    cluster.write_policy("main.toml", &policy);
    cluster.start();
    Setup {
        cluster,
        alice,
        bob,
        dave,
        carol,
    }
}

/// Files a request through `node` and returns its grant id.
fn request(node: &Gatehouse, who: &Person, role: &str) -> i64 {
    let out = node.ssh(
        who,
        &[
            "request", "web-01", "--role", role, "--for", "1h", "--reason", "INC-9000",
        ],
    );
    assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
    out.out()
        .split_whitespace()
        .nth(1)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no grant id in {:?}", out.out()))
}

/// `gatehouse grants list --all --json` on `node`.
fn grants(node: &Gatehouse) -> Vec<serde_json::Value> {
    let out = run(
        node.command(&["grants", "list", "--all", "--json"]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    serde_json::from_str::<serde_json::Value>(&out.out())
        .unwrap()
        .as_array()
        .cloned()
        .unwrap()
}

/// `gatehouse sessions list --json` on `node`.
fn sessions(node: &Gatehouse) -> Vec<serde_json::Value> {
    let out = run(
        node.command(&["sessions", "list", "--json"]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    serde_json::from_str::<serde_json::Value>(&out.out())
        .unwrap()
        .as_array()
        .cloned()
        .unwrap()
}

/// An active web-ops grant for alice: requested on node A, approved by bob on node B.
fn active_grant(s: &Setup) -> i64 {
    let id = request(&s.cluster.nodes[0], &s.alice, "web-ops");
    let out = s.cluster.nodes[1].ssh(&s.bob, &["approve", &id.to_string()]);
    assert_eq!(out.code(), 0, "{}", out.err());
    assert!(out.out().contains("active"), "{}", out.out());
    id
}

/// Starts `sleep 60` as alice through `node` and waits until it runs on the target (it says
/// so on its first line).
fn long_session(s: &Setup, node: usize) -> std::process::Child {
    let mut child = s.cluster.nodes[node]
        .ssh_command(
            &s.alice,
            &[],
            &["web-01:web-ops", "echo", "running;", "sleep", "60"],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the session never started");
    assert_eq!(line, "running\n", "the session started");
    child
}

/// Waits at most `limit` for `child` to exit; returns how long it took and its stderr.
fn wait_exit(mut child: std::process::Child, limit: Duration) -> (Duration, String) {
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return (
                started.elapsed(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the session still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_grant_requested_on_one_node_is_approved_on_another_and_used_on_both() {
    let mut s = setup("");
    let id = active_grant(&s);
    for (i, node) in s.cluster.nodes.iter().enumerate() {
        let out = node.ssh(&s.alice, &["web-01:web-ops", "echo", &format!("via-{i}")]);
        assert_eq!(out.code(), 0, "{}", out.err());
        assert_eq!(out.out(), format!("via-{i}\n"));
    }
    // Every node sees the same grant and both sessions, each naming the node that ran it.
    for node in &s.cluster.nodes {
        let g = grants(node);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0]["id"], id);
        assert_eq!(g[0]["state"], "active");
        let mut ran_on: Vec<String> = sessions(node)
            .iter()
            .map(|r| r["node"].as_str().unwrap().to_owned())
            .collect();
        ran_on.sort();
        assert_eq!(ran_on, vec![node_name(0), node_name(1)]);
    }
    // Each node's audit log names that node on every line.
    for i in 0..2 {
        let lines = s.cluster.audit(i);
        assert!(!lines.is_empty());
        assert!(
            lines.iter().all(|l| l["node"] == node_name(i)),
            "every line of node {i} names it"
        );
    }
    let list = s.cluster.wait_for_nodes(0, Duration::from_secs(10), |l| {
        l.as_array().is_some_and(|a| a.len() == 2)
    });
    for (i, n) in list.as_array().unwrap().iter().enumerate() {
        assert_eq!(n["name"], node_name(i));
        assert_eq!(n["state"], "up");
        assert_eq!(n["version"], env!("CARGO_PKG_VERSION"));
    }
    // A node stopped by its operator is listed as stopped, never as lost.
    s.cluster.nodes[1].stop(false);
    s.cluster.wait_for_nodes(0, Duration::from_secs(10), |l| {
        l[1]["state"] == "stopped" && l[1]["live_sessions"] == 0
    });
}

#[test]
fn a_revocation_on_one_node_closes_the_session_on_another_within_about_a_second() {
    let s = setup("");
    let id = active_grant(&s);
    let child = long_session(&s, 1);
    let revoked_at = Instant::now();
    let out = s.cluster.nodes[0].ssh(
        &s.bob,
        &["revoke", &id.to_string(), "--reason", "done here"],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let (_, err) = wait_exit(child, Duration::from_secs(10));
    let since_revoke = revoked_at.elapsed();
    assert!(
        since_revoke < Duration::from_secs(3),
        "the session on node B closed {since_revoke:?} after the revoke on node A"
    );
    assert!(err.contains("revoked"), "the user is told why: {err}");
    let row = sessions(&s.cluster.nodes[0])
        .into_iter()
        .find(|r| r["node"] == node_name(1))
        .unwrap();
    assert!(row["ended_at"].is_i64(), "{row}");
}

#[test]
fn two_approvals_at_once_on_two_nodes_each_count_once() {
    let s = setup("");
    for _ in 0..3 {
        let id = request(&s.cluster.nodes[0], &s.alice, "pair-ops");
        let start = Barrier::new(2);
        let outs: Vec<Output> = std::thread::scope(|scope| {
            let handles: Vec<_> = [(0, &s.bob), (1, &s.dave)]
                .into_iter()
                .map(|(i, who)| {
                    let start = &start;
                    let node = &s.cluster.nodes[i];
                    scope.spawn(move || {
                        start.wait();
                        node.ssh(who, &["approve", &id.to_string()])
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for out in &outs {
            assert_eq!(out.code(), 0, "{}", out.err());
        }
        let g = grants(&s.cluster.nodes[1])
            .into_iter()
            .find(|g| g["id"] == id)
            .unwrap();
        assert_eq!(g["state"], "active", "{g}");
        let mut approvers: Vec<&str> = g["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        approvers.sort_unstable();
        assert_eq!(approvers, ["bob", "dave"]);
        let activations = (0..2)
            .flat_map(|i| s.cluster.audit(i))
            .filter(|l| l["event"] == "grant.activated" && l["grant_id"] == id)
            .count();
        assert_eq!(activations, 1, "one activation for grant {id}");
    }
}

#[test]
fn the_break_glass_limit_holds_across_nodes() {
    let s = setup("[breakglass]\nmax_uses = 1\n");
    let n = 6;
    let start = Barrier::new(n);
    let outs: Vec<Output> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let start = &start;
                let node = &s.cluster.nodes[i % 2];
                let carol = &s.carol;
                scope.spawn(move || {
                    start.wait();
                    node.ssh(
                        carol,
                        &[
                            "breakglass",
                            "web-01",
                            "--reason",
                            "primary",
                            "down",
                            "INC-1",
                            "--",
                            "echo",
                            "in",
                        ],
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ran = outs.iter().filter(|o| o.code() == 0).count();
    for out in outs.iter().filter(|o| o.code() != 0) {
        assert_eq!(out.code(), 126, "{}", out.err());
        assert!(
            out.err().contains("break-glass limit reached"),
            "{}",
            out.err()
        );
    }
    assert_eq!(ran, 1, "exactly one break-glass login in all");
    assert_eq!(grants(&s.cluster.nodes[0]).len(), 1);
    assert_eq!(s.cluster.target.accepted_logins(), 1);
}

#[test]
fn an_alert_queued_by_a_node_that_died_is_delivered_by_another() {
    let port = free_port();
    let mut s = setup(&format!(
        "[[alerts.webhook]]\nurl = \"http://127.0.0.1:{port}/hook\"\n"
    ));
    // The sink is down: node A queues grant.requested and fails its first attempt.
    let id = request(&s.cluster.nodes[0], &s.alice, "web-ops");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s
        .cluster
        .audit(0)
        .iter()
        .any(|l| l["event"] == "alert.failed")
    {
        assert!(Instant::now() < deadline, "node A never tried the sink");
        std::thread::sleep(Duration::from_millis(50));
    }
    s.cluster.nodes[0].stop(true);
    let receiver = Receiver::start(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
    let (_, body) = receiver.wait_for("grant.requested", Duration::from_secs(40));
    let alert: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(alert["grant_id"], id);
    assert_eq!(
        alert["node"],
        node_name(0),
        "the alert names where it happened"
    );
    // Node B writes its audit line after the receiver has answered: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s
        .cluster
        .audit(1)
        .iter()
        .any(|l| l["event"] == "alert.delivered")
    {
        assert!(Instant::now() < deadline, "node B delivered it");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn without_postgres_a_node_refuses_new_sessions_closes_running_ones_and_recovers() {
    let mut s = setup("");
    let id = active_grant(&s);
    let child = long_session(&s, 0);
    s.cluster.pg.stop();
    let refused_at = Instant::now();
    let out = s.cluster.nodes[0].ssh(&s.alice, &["web-01:web-ops", "echo", "no"]);
    assert_eq!(out.code(), 126, "{}{}", out.out(), out.err());
    assert!(
        out.err().starts_with("gatehouse: denied:") && out.err().contains("store unavailable"),
        "{}",
        out.err()
    );
    assert!(
        refused_at.elapsed() < Duration::from_secs(10),
        "refused without hanging: {:?}",
        refused_at.elapsed()
    );
    // lost_grace is 3 s: the running session is closed, with a message.
    let (_, err) = wait_exit(child, Duration::from_secs(20));
    assert!(err.contains("store unavailable"), "{err}");

    s.cluster.pg.start_again();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = s.cluster.nodes[0].ssh(&s.alice, &["web-01:web-ops", "echo", "back"]);
        if out.code() == 0 {
            assert_eq!(out.out(), "back\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the node never recovered: {}",
            out.err()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Nothing was lost: the grant, and both sessions with the first one's end.
    let g = grants(&s.cluster.nodes[1]);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0]["id"], id);
    let rows = sessions(&s.cluster.nodes[1]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["ended_at"].is_i64()), "{rows:?}");
    let closed = s.cluster.audit(0);
    assert!(
        closed
            .iter()
            .any(|l| l["event"] == "bastion.sessions_closed"),
        "the closing is in the audit log: {:?}\n{err}",
        closed
            .iter()
            .map(|l| l["event"].clone())
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_node_that_stops_heartbeating_is_declared_gone_and_its_sessions_closed_as_node_lost() {
    let mut s = setup("");
    active_grant(&s);
    let child = long_session(&s, 1);
    s.cluster.nodes[1].stop(true);
    let _ = wait_exit(child, Duration::from_secs(10));
    s.cluster.wait_for_nodes(0, Duration::from_secs(20), |l| {
        l.as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == node_name(1) && n["state"] == "gone")
    });
    let row = sessions(&s.cluster.nodes[0])
        .into_iter()
        .find(|r| r["node"] == node_name(1))
        .unwrap();
    assert_eq!(row["end_reason"], "node lost", "{row}");
    // The audit line follows the index change through the node's audit writer.
    let lost = || {
        s.cluster
            .audit(0)
            .into_iter()
            .filter(|l| l["event"] == "node.lost")
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while lost() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(lost(), 1, "one node.lost, from the node that noticed");
}
