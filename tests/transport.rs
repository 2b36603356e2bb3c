//! The SSH transport end to end: `ssh-audit` against a live `gatehouse serve`, and penalties per
//! source address under a flood of key exchanges and failed logins while a burst of real logins
//! goes through, with the real `ssh` and `ssh-audit`.
//!
//! `ssh-audit` (PyPI, installed by `.ci/run`) is required: without it these tests fail.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The project's `ssh-audit` policy: what the bastion may offer.
const POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/ssh-audit-policy.txt"
);

/// `ssh-audit ARGS…`: the script on the PATH, or the module of the `python3` that `.ci/run`
/// installed it for. Panics when neither is there.
fn ssh_audit(args: &[&str]) -> Output {
    let works = |program: &str, pre: &[&str]| {
        Command::new(program)
            .args(pre)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut cmd = if works("ssh-audit", &[]) {
        Command::new("ssh-audit")
    } else if works("python3", &["-m", "ssh_audit"]) {
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "ssh_audit"]);
        cmd
    } else {
        panic!(
            "ssh-audit is not installed (python3 -m pip install ssh-audit==3.9.0; .ci/run does this)"
        );
    };
    cmd.args(args).env("NO_COLOR", "1");
    run(cmd, b"", Duration::from_secs(120))
}

/// A deployment with `names` as users in group `ops` and no target: logins and verbs only.
fn bastion(names: &[&str], config_extra: &str) -> (tempfile::TempDir, Gatehouse, Vec<Person>) {
    let tmp = tempfile::tempdir().unwrap();
    let people: Vec<Person> = names
        .iter()
        .map(|name| {
            let key = tmp.path().join(format!("{name}_ed25519"));
            let public = keygen(&key, name);
            Person {
                name: (*name).to_owned(),
                key,
                public,
            }
        })
        .collect();
    let (mut gh, _ca) = Gatehouse::prepare(&tmp.path().join("bastion"), config_extra);
    let policy: String = people.iter().map(|p| user_toml(p, &["ops"])).collect();
    gh.write_policy("users.toml", &policy);
    gh.start();
    (tmp, gh, people)
}
/// Whether the bastion logged a penalty for `source` (the log's colours stripped).
fn penalised(gh: &Gatehouse, source: &str) -> bool {
    gh.log().lines().any(|line| {
        let mut plain = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                chars.by_ref().find(|&c| c == 'm');
            } else {
                plain.push(c);
            }
        }
        plain.contains("source address penalised") && plain.contains(&format!("source={source} "))
    })
}
/// What one raw TCP connection from `source` got: the SSH banner and the start of a key
/// exchange, the penalty refusal line, or nothing.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    KeyExchange,
    Refused,
    Closed,
}

fn probe(source: &str, port: u16) -> Probe {
    connect(source, port, b"SSH-2.0-flood\r\n", Duration::from_secs(5)).0
}

/// One raw TCP connection from `source` that sends `hello` and reads what the bastion answers
/// (waiting at most `wait`); the connection is returned open.
fn connect(source: &str, port: u16, hello: &[u8], wait: Duration) -> (Probe, std::net::TcpStream) {
    // A client bound to a chosen loopback address: std cannot bind before connecting.
    let from: SocketAddr = format!("{source}:0").parse().unwrap();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(from).unwrap();
        let stream = socket.connect(to).await.unwrap();
        stream.into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    let _ = stream.write_all(hello);
    let mut got = Vec::new();
    let mut chunk = [0u8; 2048];
    // The banner line, then at least the first bytes of the server's KEXINIT packet.
    while !(got.starts_with(b"SSH-2.0-Gatehouse")
        && got
            .windows(2)
            .position(|w| w == b"\r\n")
            .is_some_and(|end| got.len() > end + 8))
    {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    let probe = if got.starts_with(b"SSH-2.0-Gatehouse") {
        Probe::KeyExchange
    } else if got.starts_with(b"Not allowed at this time") {
        Probe::Refused
    } else {
        Probe::Closed
    };
    (probe, stream)
}

/// A client's version line and an unencrypted KEXINIT packet (RFC 4253 s7.1) offering the
/// finite-field exchange whose Diffie-Hellman costs the server the most.
fn version_and_kexinit() -> Vec<u8> {
    let mut payload = vec![20u8];
    payload.extend_from_slice(&[7u8; 16]);
    for list in [
        "diffie-hellman-group16-sha512",
        "ssh-ed25519",
        "aes256-ctr",
        "aes256-ctr",
        "hmac-sha2-256-etm@openssh.com",
        "hmac-sha2-256-etm@openssh.com",
        "none",
        "none",
        "",
        "",
    ] {
        payload.extend_from_slice(&(list.len() as u32).to_be_bytes());
        payload.extend_from_slice(list.as_bytes());
    }
    payload.extend_from_slice(&[0, 0, 0, 0, 0]);
    let mut padding = 8 - (5 + payload.len()) % 8;
    if padding < 4 {
        padding += 8;
    }
    let mut packet = b"SSH-2.0-stall\r\n".to_vec();
    packet.extend_from_slice(&((1 + payload.len() + padding) as u32).to_be_bytes());
    packet.push(padding as u8);
    packet.extend_from_slice(&payload);
    packet.extend(std::iter::repeat_n(0u8, padding));
    packet
}

/// Connections opened in parallel from one address count before they end: with
/// `[penalties] max_startups` (10 by default) of them stalled after their KEXINIT, the next
/// ones from that address get no banner (a few wait briefly for a place, then are refused, the
/// rest are refused at once) and the address is penalised while they are still open; another
/// address logs in meanwhile.
#[test]
fn parallel_stalled_key_exchanges_from_one_address_are_capped() {
    let (_tmp, gh, people) = bastion(&["alice"], "");
    let hello = version_and_kexinit();
    let results: Vec<(Probe, std::net::TcpStream)> = std::thread::scope(|scope| {
        let first: Vec<_> = (0..10)
            .map(|_| scope.spawn(|| connect("127.0.0.4", gh.port, &hello, Duration::from_secs(20))))
            .collect();
        let first: Vec<_> = first.into_iter().map(|t| t.join().unwrap()).collect();
        let more: Vec<_> = (0..50)
            .map(|_| scope.spawn(|| connect("127.0.0.4", gh.port, &hello, Duration::from_secs(20))))
            .collect();
        first
            .into_iter()
            .chain(more.into_iter().map(|t| t.join().unwrap()))
            .collect()
    });
    let probes: Vec<&Probe> = results.iter().map(|(p, _)| p).collect();
    let served = probes.iter().filter(|p| ***p == Probe::KeyExchange).count();
    let refused = probes.iter().filter(|p| ***p == Probe::Refused).count();
    eprintln!(
        "60 parallel stalled connections from one address: {served} got a key exchange, {refused} were refused"
    );
    assert_eq!(served, 10, "{probes:?}");
    assert_eq!(refused, 50, "{probes:?}");
    assert!(penalised(&gh, "127.0.0.4"), "{}", gh.log());
    // The first ten are still open and stalled: the address stays refused at once...
    assert_eq!(probe("127.0.0.4", gh.port), Probe::Refused);
    // ...while another address logs in as usual.
    let out = run(
        gh.ssh_command(&people[0], &["-b", "127.0.0.5"], &["whoami"]),
        b"",
        Duration::from_secs(60),
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    drop(results);
}
/// `ssh-audit` finds none of the transport weaknesses: the project's policy (no compression,
/// encrypt-then-MAC only, no DH group under 3072 bits, no SHA-1) passes, and the full audit,
/// whose connection-rate test floods the bastion like the DHEat attack, reports no failure, no
/// warning other than the lack of post-quantum protection in classic exchanges, and no
/// insufficient throttling.
#[test]
fn ssh_audit_finds_no_weak_algorithm_and_no_missing_throttling() {
    let (_tmp, gh, _people) = bastion(&["alice"], "");
    let port = gh.port.to_string();

    // The policy scan first, without the rate test, so that its few connections leave the
    // address well below a penalty.
    let out = ssh_audit(&[
        "-n",
        "--skip-rate-test",
        "-P",
        POLICY,
        "-p",
        &port,
        "127.0.0.1",
    ]);
    assert_eq!(
        out.code(),
        0,
        "policy scan failed:\n{}{}",
        out.out(),
        out.err()
    );
    assert!(out.out().contains("Passed"), "{}", out.out());

    let out = ssh_audit(&["-j", "-p", &port, "127.0.0.1"]);
    let report: serde_json::Value = serde_json::from_str(&out.out())
        .unwrap_or_else(|e| panic!("ssh-audit -j: {e}\n{}{}", out.out(), out.err()));
    assert_eq!(report["compression"], serde_json::json!(["none"]));
    let kex: Vec<&str> = report["kex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["algorithm"].as_str().unwrap())
        .collect();
    // A finite-field exchange is offered, so ssh-audit ran its DHEat rate test.
    assert!(
        kex.iter().any(|k| k.starts_with("diffie-hellman-group16")),
        "{kex:?}"
    );
    for section in ["kex", "key", "enc", "mac"] {
        for alg in report[section].as_array().unwrap() {
            let notes = &alg["notes"];
            assert!(notes.get("fail").is_none(), "{section}: {alg}");
            for warn in notes["warn"].as_array().into_iter().flatten() {
                assert_eq!(
                    warn.as_str().unwrap(),
                    "does not provide protection against post-quantum attacks",
                    "{section}: {alg}"
                );
            }
        }
    }
    for mac in report["mac"].as_array().unwrap() {
        let name = mac["algorithm"].as_str().unwrap();
        assert!(name.ends_with("-etm@openssh.com"), "{name}");
    }
    let notes = report["additional_notes"].to_string();
    assert!(
        !notes.contains("DHEat"),
        "throttling found insufficient: {notes}"
    );
    assert!(
        penalised(&gh, "127.0.0.1"),
        "the rate test's flood was not penalised:\n{}",
        gh.log()
    );
}
/// A burst of real logins from one address goes through (successful logins are never
/// penalised); a flood of unauthenticated connections from one address gets a handful of key
/// exchanges and is then refused; failed logins weigh more; other addresses are unaffected.
#[test]
fn a_key_exchange_flood_is_throttled_while_a_burst_of_logins_is_not() {
    let (_tmp, gh, people) = bastion(&["alice", "mallory"], "");
    let (alice, mallory) = (&people[0], &people[1]);
    let impostor = Person {
        name: "alice".into(),
        key: mallory.key.clone(),
        public: mallory.public.clone(),
    };

    // Three waves of 25 logins at once from 127.0.0.1, like a team behind one NAT address.
    for wave in 0..3 {
        let outs: Vec<Output> = std::thread::scope(|scope| {
            let logins: Vec<_> = (0..25)
                .map(|_| scope.spawn(|| gh.ssh(alice, &["whoami"])))
                .collect();
            logins.into_iter().map(|t| t.join().unwrap()).collect()
        });
        for (i, out) in outs.iter().enumerate() {
            assert_eq!(out.code(), 0, "wave {wave}, login {i}: {}", out.err());
        }
    }
    assert!(
        !gh.log().contains("source address penalised"),
        "{}",
        gh.log()
    );

    // A flood of key exchanges from 127.0.0.1: a handful get one, the rest are refused.
    let results: Vec<Probe> = (0..100).map(|_| probe("127.0.0.1", gh.port)).collect();
    let served = results.iter().filter(|p| **p == Probe::KeyExchange).count();
    let refused = results.iter().filter(|p| **p == Probe::Refused).count();
    eprintln!(
        "flood from one address: {served} of 100 connections got a key exchange, {refused} were refused"
    );
    // About fifteen (one second each, refused from fifteen); a few more may slip in while the
    // bastion is still noticing that the previous ones closed.
    assert!(
        (10..=30).contains(&served) && refused >= 60,
        "{served} of 100 got a key exchange, {refused} refused: {results:?}"
    );
    assert!(penalised(&gh, "127.0.0.1"), "{}", gh.log());
    // Even alice, from that address, now waits for the penalty to run out...
    let out = gh.ssh(alice, &["whoami"]);
    assert_eq!(out.code(), 255, "{}", out.err());
    // ...while another address logs in as usual.
    let from_elsewhere = |person: &Person| {
        run(
            gh.ssh_command(person, &["-b", "127.0.0.2"], &["whoami"]),
            b"",
            Duration::from_secs(60),
        )
    };
    let out = from_elsewhere(alice);
    assert_eq!(out.code(), 0, "{}", out.err());

    // Failed logins weigh more (5 s each against 1 s): a few in a row from 127.0.0.3 and it
    // is refused, while one or two mistakes are not.
    let from_third = |person: &Person| {
        run(
            gh.ssh_command(person, &["-b", "127.0.0.3"], &["whoami"]),
            b"",
            Duration::from_secs(60),
        )
    };
    let mut failures = 0;
    loop {
        let out = from_third(&impostor);
        assert_eq!(out.code(), 255, "attempt {failures}: {}", out.err());
        assert!(out.err().contains("Permission denied"), "{}", out.err());
        failures += 1;
        if probe("127.0.0.3", gh.port) == Probe::Refused {
            break;
        }
        assert!(
            failures < 6,
            "{failures} failed logins and still not refused"
        );
    }
    assert!(failures >= 3, "refused after only {failures} failed logins");
    let out = from_third(alice);
    assert_eq!(out.code(), 255, "{}", out.err());
    assert!(penalised(&gh, "127.0.0.3"), "{}", gh.log());
    assert!(!penalised(&gh, "127.0.0.2"), "{}", gh.log());
    // 127.0.0.2 logged in successfully and is still welcome.
    assert_eq!(probe("127.0.0.2", gh.port), Probe::KeyExchange);
}

/// `[ssh] ciphers` is exactly what the server offers: `ssh-audit` sees only the listed ciphers,
/// a stock `ssh` negotiates one of them and logs in, and a client that insists on a cipher left
/// out cannot connect.
#[test]
fn configured_ciphers_are_all_the_server_offers() {
    let (_tmp, gh, people) = bastion(
        &["alice"],
        "[ssh]\nciphers = [\"aes256-gcm@openssh.com\", \"aes128-gcm@openssh.com\"]\n",
    );
    let port = gh.port.to_string();
    let out = ssh_audit(&["-j", "--skip-rate-test", "-p", &port, "127.0.0.1"]);
    let report: serde_json::Value = serde_json::from_str(&out.out())
        .unwrap_or_else(|e| panic!("ssh-audit -j: {e}\n{}{}", out.out(), out.err()));
    let mut offered: Vec<&str> = report["enc"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["algorithm"].as_str().unwrap())
        .collect();
    offered.sort_unstable();
    assert_eq!(
        offered,
        ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]
    );

    let alice = &people[0];
    let out = run(
        gh.ssh_command(alice, &["-v"], &["whoami"]),
        b"",
        Duration::from_secs(60),
    );
    assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
    assert!(
        out.err()
            .contains("server->client cipher: aes128-gcm@openssh.com"),
        "{}",
        out.err()
    );

    let out = run(
        gh.ssh_command(
            alice,
            &["-v", "-c", "chacha20-poly1305@openssh.com"],
            &["whoami"],
        ),
        b"",
        Duration::from_secs(60),
    );
    assert_eq!(out.code(), 255, "{}{}", out.out(), out.err());
    assert!(
        out.err().contains("no matching cipher found"),
        "{}",
        out.err()
    );
}
