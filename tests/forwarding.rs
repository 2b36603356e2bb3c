//! Port forwarding end to end: the real `ssh -L` and `ssh -W` through the bastion to a TCP echo
//! server on loopback, under a grant whose role lists that destination.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A TCP echo server on a loopback port, echoing each connection until it ends.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    port
}

struct Setup {
    world: World,
    alice: Person,
    bob: Person,
    echo: u16,
}

/// alice (sre) may hold `db` on web-01, which lists the echo server and, to show that it is
/// never reachable, the bastion's own SSH port; bob (leads) approves.
fn setup() -> Setup {
    let (mut world, mut people) = World::new(&["alice", "bob"], "");
    let bob = people.pop().unwrap();
    let alice = people.pop().unwrap();
    let echo = echo_server();
    let policy = format!(
        "{}{}{}[[role]]\nname = \"db\"\nmembers = [\"sre\"]\ntargets = [\"web-*\"]\nlogin = \"{}\"\n\
         approvals = 1\napprovers = [\"leads\"]\n\
         forward = [\"127.0.0.1:{echo}\", \"127.0.0.1:{own}\"]\n",
        user_toml(&alice, &["sre"]),
        user_toml(&bob, &["leads"]),
        world.target_toml("web-01"),
        login(),
        own = world.gatehouse.port,
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    Setup {
        world,
        alice,
        bob,
        echo,
    }
}

impl Setup {
    fn gh(&self) -> &Gatehouse {
        &self.world.gatehouse
    }

    fn grant(&self) -> i64 {
        let out = self.gh().ssh(
            &self.alice,
            &[
                "request", "web-01", "--role", "db", "--for", "1h", "--reason", "replica",
            ],
        );
        assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
        let id: i64 = out
            .out()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            self.gh()
                .ssh(&self.bob, &["approve", &id.to_string()])
                .code(),
            0
        );
        id
    }

    /// `ssh -W DEST` as alice with `input` on stdin.
    fn stdio_forward(&self, dest: &str, input: &[u8]) -> Output {
        let cmd = self.gh().ssh_command(&self.alice, &["-W", dest], &[]);
        run(cmd, input, Duration::from_secs(60))
    }

    /// `ssh -N -L PORT:DEST` as alice, running, and the first connection to its local port
    /// (each connection is a forward of its own, so the port is not probed separately).
    fn local_forward(&self, dest: &str) -> (Child, TcpStream) {
        let port = free_port();
        let spec = format!("127.0.0.1:{port}:{dest}");
        let child = self
            .gh()
            .ssh_command(
                &self.alice,
                &["-N", "-o", "ExitOnForwardFailure=yes", "-L", &spec],
                &[],
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
                break stream;
            }
            assert!(Instant::now() < deadline, "ssh -L did not listen");
            std::thread::sleep(Duration::from_millis(20));
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (child, stream)
    }

    /// Alice's forwards in the index, newest first, waiting until `count` have ended.
    fn forwards(&self, count: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = run(
                self.gh()
                    .command(&["sessions", "list", "--user", "alice", "--json"]),
                b"",
                Duration::from_secs(30),
            );
            assert_eq!(out.code(), 0, "{}", out.err());
            let all: Vec<serde_json::Value> = serde_json::from_str(&out.out()).unwrap();
            let forwards: Vec<_> = all.into_iter().filter(|s| s["kind"] == "forward").collect();
            let ended = forwards.iter().filter(|s| !s["ended_at"].is_null()).count();
            if ended >= count || Instant::now() > deadline {
                return forwards;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.gh().dir.join("data/audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Whether `ssh -W` failed because its channel was refused.
fn refused_channel(out: &Output) -> bool {
    out.code() != 0
        && (out.err().contains("administratively prohibited")
            || out.err().contains("stdio forwarding failed"))
}

/// Sends `data` on `stream` and reads the same number of bytes back.
fn echo_through(stream: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    stream.write_all(data).unwrap();
    let mut back = vec![0u8; data.len()];
    stream.read_exact(&mut back).unwrap();
    back
}

#[test]
fn a_listed_destination_carries_bytes_both_ways_and_is_indexed() {
    let s = setup();
    let id = s.grant();
    let dest = format!("127.0.0.1:{}", s.echo);

    // ssh -W: stdin to the destination, the destination to stdout.
    let input = b"SELECT 1; -- through the bastion\n".repeat(100);
    let out = s.stdio_forward(&dest, &input);
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(out.stdout, input);

    // ssh -L: a local port that leads to the destination.
    let (mut ssh, mut stream) = s.local_forward(&dest);
    let block: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    assert_eq!(echo_through(&mut stream, &block), block);
    drop(stream);
    let forwards = s.forwards(2);
    let _ = ssh.kill();
    let _ = ssh.wait();

    assert_eq!(forwards.len(), 2, "{forwards:?}");
    for (f, len) in forwards.iter().zip([block.len(), input.len()]) {
        assert_eq!(f["grant_id"], id);
        assert_eq!(f["target"], "web-01");
        assert!(f["command"].as_str().unwrap().starts_with(&dest), "{f}");
        assert_eq!(f["bytes_in"], len as u64, "{f}");
        assert_eq!(f["bytes_out"], len as u64, "{f}");
    }
    let ended: Vec<_> = s
        .audit()
        .into_iter()
        .filter(|l| l["event"] == "session.ended" && l["detail"]["kind"] == "forward")
        .collect();
    assert_eq!(ended.len(), 2);
    assert!(ended.iter().all(|l| l["detail"]["duration_ms"].is_u64()));
}

#[test]
fn unlisted_destinations_the_bastion_itself_and_remote_forwarding_are_refused() {
    let s = setup();
    let dest = format!("127.0.0.1:{}", s.echo);
    // Without a grant, even a listed destination.
    let out = s.stdio_forward(&dest, b"x");
    assert!(refused_channel(&out), "{}", out.err());
    s.grant();
    let closed = free_port();
    for refused in [
        format!("127.0.0.1:{closed}"),
        format!("localhost:{}", s.echo),
        format!("127.0.0.2:{}", s.echo),
        format!("127.0.0.1:{}", s.gh().port),
    ] {
        let out = s.stdio_forward(&refused, b"x");
        assert_ne!(out.code(), 0, "{refused}");
        assert!(out.stdout.is_empty(), "{refused}");
        assert!(refused_channel(&out), "{refused}: {}", out.err());
    }
    // The audit log is written in the background: wait for the last refusal's line.
    let deadline = Instant::now() + Duration::from_secs(10);
    let reasons = loop {
        let reasons: Vec<String> = s
            .audit()
            .into_iter()
            .filter(|l| l["event"] == "session.denied" && l["detail"]["kind"] == "forward")
            .map(|l| l["reason"].as_str().unwrap_or_default().to_owned())
            .collect();
        if reasons.len() >= 5 || Instant::now() > deadline {
            break reasons;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    assert!(
        reasons[0].contains("you hold no active grant"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("no role of yours allows forwarding"),
        "{reasons:?}"
    );
    assert!(reasons[4].contains("is the bastion itself"), "{reasons:?}");

    // Remote forwarding stays refused, whatever the role allows.
    let remote = format!("127.0.0.1:{}:{dest}", free_port());
    let cmd = s.gh().ssh_command(
        &s.alice,
        &["-N", "-o", "ExitOnForwardFailure=yes", "-R", &remote],
        &[],
    );
    let out = run(cmd, b"", Duration::from_secs(30));
    assert_ne!(out.code(), 0);
    assert!(
        out.err().contains("remote port forwarding failed"),
        "{}",
        out.err()
    );
    // Still fine afterwards.
    assert_eq!(s.stdio_forward(&dest, b"ok\n").stdout, b"ok\n");
}

#[test]
fn a_revoke_closes_an_open_forward_within_a_second() {
    let s = setup();
    let id = s.grant();
    let (mut ssh, mut stream) = s.local_forward(&format!("127.0.0.1:{}", s.echo));
    assert_eq!(echo_through(&mut stream, b"before"), b"before");
    let out = s.gh().ssh(&s.bob, &["revoke", &id.to_string()]);
    assert_eq!(out.code(), 0, "{}", out.err());
    let revoked = Instant::now();
    let mut buf = [0u8; 16];
    let n = stream.read(&mut buf).unwrap_or(0);
    let took = revoked.elapsed();
    assert_eq!(n, 0, "the forward still carried data");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    // No new forward either.
    let out = s.stdio_forward(&format!("127.0.0.1:{}", s.echo), b"x");
    assert_ne!(out.code(), 0);
    let _ = ssh.kill();
    let _ = ssh.wait();
    let forwards = s.forwards(1);
    let closed = &forwards[0];
    assert!(
        closed["end_reason"]
            .as_str()
            .is_some_and(|r| r.contains(&format!("grant {id} was revoked by bob"))),
        "{closed}"
    );
    assert_eq!(closed["bytes_in"], 6);
    eprintln!("the forward closed {took:?} after the revoke");
}
