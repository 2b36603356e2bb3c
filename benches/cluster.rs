//! Several nodes on one PostgreSQL, measured end to end with real `gatehouse serve` processes,
//! a real PostgreSQL server, real `ssh` clients and a real `sshd` target:
//!
//! 1. **Revocation latency across nodes.** A grant is requested on node A and approved on node
//!    B; a session (`echo running; sleep 60`) runs through node B; then the grant is revoked
//!    over SSH on node A. The latency is the time from the moment the `revoke` command returned
//!    (the revocation is committed before it replies) to the moment the session's `ssh` client
//!    exited. The same with the revocation given on node B itself, for comparison; the two
//!    kinds alternate.
//! 2. **Concurrent sessions over two nodes.** Idle exec sessions (`echo running; sleep 180`),
//!    half through each node, started with a bounded number still starting at once: how long
//!    the ramp took, how many ran, and each node's resident memory before, with every session
//!    up, and after they closed.
//!
//! It prints one markdown table. `cargo bench --bench cluster`; `REVOKES` (default 50 per kind)
//! and `SESSIONS` (default 1000) change the sizes.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::*;

/// Sessions still starting (launched, `running` not yet seen) at most, over both nodes.
const RAMP_WINDOW: usize = 64;

/// How long the whole ramp may take before the bench gives up waiting.
const RAMP_LIMIT: Duration = Duration::from_secs(150);

/// What the idle sessions run; longer than the ramp can take, so none ends on its own.
const IDLE_COMMAND: [&str; 4] = ["echo", "running;", "sleep", "180"];

fn main() {
    raise_open_files();
    let revokes = env_usize("REVOKES", 50);
    let sessions = env_usize("SESSIONS", 1000);
    let started = Instant::now();
    let revocation = revocation_bench(revokes);
    eprintln!(
        "revocation, ms (other node / same node): median {:.0} / {:.0}, p90 {:.0} / {:.0}, worst {:.0} / {:.0}",
        percentile(&revocation.other_node, 50.0),
        percentile(&revocation.same_node, 50.0),
        percentile(&revocation.other_node, 90.0),
        percentile(&revocation.same_node, 90.0),
        percentile(&revocation.other_node, 100.0),
        percentile(&revocation.same_node, 100.0),
    );
    let concurrency = concurrency_bench(sessions);
    println!();
    println!("{}", table(&revocation, &concurrency));
    eprintln!(
        "cluster bench: {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every session holds a few descriptors in the bench and in each node: lift the soft limit
/// to the hard one (inherited by the nodes, the target and the clients).
fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// An `ssh` client for `person` through `node`, like [`Gatehouse::ssh_command`] but with a
/// connect timeout that a loaded ramp cannot hit.
fn session_command(node: &Gatehouse, person: &Person, args: &[&str]) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(["-F", "/dev/null", "-p", &node.port.to_string(), "-i"])
        .arg(&person.key)
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", node.known_hosts.display()))
        .args(["-o", "ConnectTimeout=120", "-o", "LogLevel=ERROR"])
        .arg(format!("{}@127.0.0.1", person.name))
        .args(args);
    cmd
}

/// Runs an SSH verb and fails the bench unless it exits 0; returns stdout and the instant the
/// client exited.
fn verb(node: &Gatehouse, person: &Person, args: &[&str]) -> (String, Instant) {
    let child = node
        .ssh_command(person, &[], args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ssh");
    let out = child.wait_with_output().expect("wait for ssh");
    let exited = Instant::now();
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), exited)
}

/// Revocation latencies in ms: revoked on the other node, revoked on the session's node.
struct Revocation {
    other_node: Vec<f64>,
    same_node: Vec<f64>,
}

fn revocation_bench(runs: usize) -> Revocation {
    let (mut cluster, mut people) = Cluster::new(&["alice", "bob"], 2, "", "");
    let bob = people.pop().unwrap();
    let alice = people.pop().unwrap();
    let policy = format!(
        "{}{}{}\
         [[role]]\nname = \"web-ops\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"{}\"\n\
         max_duration = \"4h\"\napprovals = 1\napprovers = [\"sre-leads\"]\nshell = \"full\"\n",
        user_toml(&alice, &["sre"]),
        user_toml(&bob, &["sre-leads"]),
        cluster.target_toml("web-01"),
        login(),
    );
    cluster.write_policy("main.toml", &policy);
    cluster.start();
    let mut result = Revocation {
        other_node: Vec::new(),
        same_node: Vec::new(),
    };
    for i in 0..2 * runs {
        let same = i % 2 == 1;
        let ms = one_revocation(&cluster, &alice, &bob, if same { 1 } else { 0 });
        if same {
            result.same_node.push(ms);
        } else {
            result.other_node.push(ms);
        }
        if (i + 1) % 20 == 0 {
            eprintln!("revocation: {} of {} done", i + 1, 2 * runs);
        }
    }
    result
}

/// One grant (requested on A, approved on B), one session through B, revoked on node
/// `revoke_on`: milliseconds from the revoke command's return to the session client's exit
/// (negative when the session ended first).
fn one_revocation(cluster: &Cluster, alice: &Person, bob: &Person, revoke_on: usize) -> f64 {
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let (out, _) = verb(
        a,
        alice,
        &[
            "request", "web-01", "--role", "web-ops", "--for", "1h", "--reason", "bench",
        ],
    );
    let id: i64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no grant id in {out:?}"));
    let id = id.to_string();
    let (out, _) = verb(b, bob, &["approve", &id]);
    assert!(out.contains("active"), "approve: {out}");

    let (running, ended) = watched_session(session_command(
        b,
        alice,
        &["web-01:web-ops", "echo", "running;", "sleep", "60"],
    ));
    let line = running
        .recv_timeout(Duration::from_secs(60))
        .expect("the session never started");
    assert_eq!(line, "running\n", "the session's first line");

    let (_, revoked) = verb(
        &cluster.nodes[revoke_on],
        bob,
        &["revoke", &id, "--reason", "bench"],
    );
    let (exited, stderr) = ended
        .recv_timeout(Duration::from_secs(30))
        .expect("the session still ran 30 s after the revocation");
    assert!(
        stderr.contains("revoked"),
        "the session ended for another reason: {stderr}"
    );
    if exited >= revoked {
        (exited - revoked).as_secs_f64() * 1000.0
    } else {
        -((revoked - exited).as_secs_f64() * 1000.0)
    }
}

/// Starts `cmd` and watches it from a thread: the first channel gets its first line of
/// output, the second the instant it exited and its stderr.
fn watched_session(
    mut cmd: Command,
) -> (mpsc::Receiver<String>, mpsc::Receiver<(Instant, String)>) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ssh");
    let (line_tx, line_rx) = mpsc::channel();
    let (end_tx, end_rx) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let _ = line_tx.send(line);
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        let out = child.wait_with_output().expect("wait for ssh");
        let exited = Instant::now();
        let _ = end_tx.send((exited, String::from_utf8_lossy(&out.stderr).into_owned()));
    });
    (line_rx, end_rx)
}

/// The concurrency run's figures.
struct Concurrency {
    wanted: usize,
    running: usize,
    ramp: Duration,
    failed: usize,
    /// Per node: VmRSS in kB before, with every session up, 5 s after they closed.
    rss: Vec<[u64; 3]>,
    per_node: Vec<usize>,
}

fn concurrency_bench(wanted: usize) -> Concurrency {
    let extra = "[limits]\nconnections_per_user = 100000\n\n[penalties]\nmax_startups = 2000\n";
    let (mut cluster, mut people) = Cluster::new(&["loader"], 2, "", extra);
    let loader = people.pop().unwrap();
    let policy = format!(
        "{}{}\
         [[role]]\nname = \"load\"\nmembers = [\"load\"]\ntargets = [\"web-01\"]\nlogin = \"{}\"\n\
         max_duration = \"1h\"\napprovals = 0\nshell = \"full\"\n",
        user_toml(&loader, &["load"]),
        cluster.target_toml("web-01"),
        login(),
    );
    cluster.write_policy("main.toml", &policy);
    cluster.start();
    let (out, _) = verb(
        &cluster.nodes[0],
        &loader,
        &[
            "request", "web-01", "--role", "load", "--for", "1h", "--reason", "bench",
        ],
    );
    assert!(out.contains("active"), "self-service grant: {out}");
    // One session through each node first, so "before" is a node that has served a session.
    for node in &cluster.nodes {
        let (out, _) = verb(node, &loader, &["web-01:load", "echo", "warm"]);
        assert_eq!(out, "warm\n");
    }
    std::thread::sleep(Duration::from_secs(2));
    let before: Vec<u64> = cluster.nodes.iter().map(|n| vm_rss(n.pid())).collect();

    let outputs = cluster.tmp.path().join("sessions");
    std::fs::create_dir_all(&outputs).unwrap();
    let mut clients: Vec<Child> = Vec::with_capacity(wanted);
    let mut pending: Vec<usize> = Vec::new();
    let mut up = vec![false; wanted];
    let mut running = 0;
    let mut failed = 0;
    let ramp_start = Instant::now();
    while running + failed < wanted && ramp_start.elapsed() < RAMP_LIMIT {
        while clients.len() < wanted && pending.len() < RAMP_WINDOW {
            let i = clients.len();
            let node = &cluster.nodes[i % cluster.nodes.len()];
            let mut cmd = session_command(node, &loader, &["web-01:load"]);
            cmd.args(IDLE_COMMAND)
                .stdin(Stdio::null())
                .stdout(File::create(outputs.join(format!("{i}.out"))).unwrap())
                .stderr(File::create(outputs.join(format!("{i}.err"))).unwrap());
            clients.push(cmd.spawn().expect("start ssh"));
            pending.push(i);
        }
        std::thread::sleep(Duration::from_millis(50));
        pending.retain(|&i| {
            if session_says_running(&outputs, i) {
                up[i] = true;
                running += 1;
                false
            } else if clients[i].try_wait().unwrap().is_some() {
                failed += 1;
                false
            } else {
                true
            }
        });
    }
    let ramp = ramp_start.elapsed();
    eprintln!(
        "concurrency: {running} of {wanted} running after {:.1} s ({failed} failed)",
        ramp.as_secs_f64()
    );
    if failed > 0 {
        let first = (0..clients.len()).find(|&i| !up[i]).unwrap_or(0);
        let err = std::fs::read_to_string(outputs.join(format!("{first}.err"))).unwrap_or_default();
        eprintln!("concurrency: first failure (session {first}): {err}");
    }
    std::thread::sleep(Duration::from_secs(2));
    let still = clients
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| up[*i])
        .filter_map(|(_, c)| c.try_wait().ok())
        .filter(Option::is_none)
        .count();
    assert_eq!(still, running, "every session that came up still runs");
    let during: Vec<u64> = cluster.nodes.iter().map(|n| vm_rss(n.pid())).collect();

    for client in &mut clients {
        let _ = client.kill();
    }
    for client in &mut clients {
        let _ = client.wait();
    }
    std::thread::sleep(Duration::from_secs(5));
    let after: Vec<u64> = cluster.nodes.iter().map(|n| vm_rss(n.pid())).collect();
    let per_node = (0..cluster.nodes.len())
        .map(|n| {
            (0..wanted)
                .filter(|&i| up[i] && i % cluster.nodes.len() == n)
                .count()
        })
        .collect();
    Concurrency {
        wanted,
        running,
        ramp,
        failed: wanted - running,
        rss: (0..cluster.nodes.len())
            .map(|n| [before[n], during[n], after[n]])
            .collect(),
        per_node,
    }
}

fn session_says_running(outputs: &Path, i: usize) -> bool {
    std::fs::read(outputs.join(format!("{i}.out"))).is_ok_and(|out| out.starts_with(b"running\n"))
}

/// A process's resident memory in kB (`VmRSS` in `/proc/PID/status`).
fn vm_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS line")
}

/// Nearest-rank percentile `p` (0–100) of `values`.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn table(r: &Revocation, c: &Concurrency) -> String {
    let mut t = String::from("| measure | value |\n|---|---:|\n");
    for (label, values) in [
        ("revoke on node A, session on node B", &r.other_node),
        ("revoke on node B, session on node B", &r.same_node),
    ] {
        t += &format!(
            "| {label}: ms from revoke's return to the session's exit, median / p90 / worst ({} runs) | {:.0} / {:.0} / {:.0} |\n",
            values.len(),
            percentile(values, 50.0),
            percentile(values, 90.0),
            percentile(values, 100.0),
        );
    }
    t += &format!(
        "| concurrent idle sessions over two nodes: running / wanted ({}) | {} / {} |\n",
        c.per_node
            .iter()
            .enumerate()
            .map(|(n, k)| format!("{k} on {}", common::cluster::node_name(n)))
            .collect::<Vec<_>>()
            .join(", "),
        c.running,
        c.wanted,
    );
    t += &format!(
        "| ramp: s from the first launch until all were running ({} failed) | {:.1} |\n",
        c.failed,
        c.ramp.as_secs_f64()
    );
    for (n, [before, during, after]) in c.rss.iter().enumerate() {
        let sessions = c.per_node[n].max(1) as f64;
        t += &format!(
            "| {}: VmRSS MiB before / with its {} sessions up / 5 s after they closed; KiB per session | {:.1} / {:.1} / {:.1}; {:.0} |\n",
            common::cluster::node_name(n),
            c.per_node[n],
            *before as f64 / 1024.0,
            *during as f64 / 1024.0,
            *after as f64 / 1024.0,
            (*during as f64 - *before as f64) / sessions,
        );
    }
    t
}
