//! Alert sinks end to end: break-glass alerts reach a webhook before the session reaches the
//! target, survive a receiver that is down and a bastion restart, and other events reach a
//! syslog listener and a command.

mod common;

use std::net::{TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use common::receiver::Receiver;
use common::*;

fn setup(config_extra: &str) -> (World, Person) {
    let (mut world, mut people) = World::new(&["carol"], config_extra);
    let carol = people.pop().unwrap();
    let policy = format!(
        "{}{}[[role]]\nname = \"emergency\"\nmembers = [\"oncall\"]\ntargets = [\"*\"]\nlogin = \"{}\"\nmax_duration = \"30m\"\nshell = \"full\"\nbreak_glass = true\n\n\
         [[role]]\nname = \"ops\"\nmembers = [\"oncall\"]\ntargets = [\"db-01\"]\nlogin = \"{}\"\napprovals = 0\nshell = \"full\"\n",
        user_toml(&carol, &["oncall"]),
        world.target_toml("db-01"),
        login(),
        login(),
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    (world, carol)
}

#[test]
fn the_break_glass_alert_arrives_before_the_session_reaches_the_target() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = Receiver::start(listener);
    let (world, carol) = setup(&format!(
        "[[alerts.webhook]]\nurl = \"http://127.0.0.1:{port}/hook\"\n"
    ));
    let stamp = world.tmp.path().join("ran-at");
    let out = world.gatehouse.ssh(
        &carol,
        &[
            "breakglass",
            "db-01",
            "--reason",
            "primary",
            "down",
            "INC-4412",
            "--",
            &format!("date +%s.%N > {}", stamp.display()),
        ],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    assert!(
        out.err().contains("acknowledged by 1 of 1"),
        "the banner says who was told: {}",
        out.err()
    );
    let (alert_at, body) = receiver.wait_for("breakglass.activated", Duration::from_secs(5));
    let ran_at: f64 = std::fs::read_to_string(&stamp)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        alert_at < ran_at,
        "the alert ({alert_at}) came before the command ran ({ran_at})"
    );
    let alert: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["user"], "carol");
    assert_eq!(alert["target"], "db-01");
    assert_eq!(alert["reason"], "primary down INC-4412");
    assert!(alert["id"].as_str().is_some() && alert["time"].as_str().is_some());
}

#[test]
fn a_receiver_that_is_down_gets_the_alert_later_even_across_a_restart() {
    let port = free_port();
    let (mut world, carol) = setup(&format!(
        "[[alerts.webhook]]\nurl = \"http://127.0.0.1:{port}/hook\"\n"
    ));
    let started = Instant::now();
    let out = world.gatehouse.ssh(
        &carol,
        &[
            "breakglass",
            "db-01",
            "--reason",
            "receiver",
            "is",
            "down",
            "--",
            "echo",
            "in",
        ],
    );
    assert_eq!(
        out.code(),
        0,
        "break-glass works with the sink down: {}",
        out.err()
    );
    assert_eq!(out.out(), "in\n");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "never blocked for long: {:?}",
        started.elapsed()
    );
    world.gatehouse.stop(false);
    world.gatehouse.start();
    let receiver = Receiver::start(TcpListener::bind(("127.0.0.1", port)).unwrap());
    receiver.wait_for("receiver is down", Duration::from_secs(40));
    // The deliveries and failures are in the audit log.
    world.gatehouse.stop(false);
    let audit = std::fs::read_to_string(world.gatehouse.dir.join("data/audit.jsonl")).unwrap();
    assert!(audit.contains("\"event\":\"alert.failed\""), "{audit}");
    assert!(audit.contains("\"event\":\"alert.delivered\""), "{audit}");
}

#[test]
fn syslog_and_command_sinks_receive_events() {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("sink.sh");
    let captured = dir.path().join("captured.jsonl");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncat >> {}\necho >> {}\n",
            captured.display(),
            captured.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (world, carol) = setup(&format!(
        "[[alerts.syslog]]\naddress = \"127.0.0.1:{udp_port}\"\n\n[[alerts.command]]\nprogram = \"{}\"\n",
        script.display()
    ));
    let out = world.gatehouse.ssh(
        &carol,
        &[
            "request", "db-01", "--role", "ops", "--for", "1h", "--reason", "syslog", "check",
        ],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let mut buf = [0u8; 8192];
    let n = udp.recv(&mut buf).expect("a syslog datagram");
    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(line.starts_with('<'), "RFC 5424 priority: {line}");
    assert!(line.contains(" gatehouse "), "{line}");
    assert!(line.contains("grant.requested"), "{line}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&captured).unwrap_or_default();
        if text.contains("grant.requested") {
            let first: serde_json::Value =
                serde_json::from_str(text.lines().next().unwrap()).unwrap();
            assert_eq!(first["user"], "carol");
            break;
        }
        assert!(Instant::now() < deadline, "the command sink got nothing");
        std::thread::sleep(Duration::from_millis(100));
    }
}
