//! The restricted shell end to end under `ssh -tt`: allowed lines run on the real target,
//! denied lines do not, and control bytes or pasted lines cannot smuggle a second command.

mod common;

use std::time::Duration;

use common::*;

struct Setup {
    world: World,
    alice: Person,
    marker: std::path::PathBuf,
}

fn setup() -> Setup {
    let (world, alice) = World::with_granted_role(
        "",
        "web-read",
        "shell = \"restricted\"\ncommands = [\"echo *\", \"id -un\"]\n",
    );
    let marker = world.tmp.path().join("smuggled");
    Setup {
        world,
        alice,
        marker,
    }
}

/// Types `input` into an interactive session and returns what the terminal showed.
fn shell(s: &Setup, input: &[u8]) -> Output {
    let cmd = s
        .world
        .gatehouse
        .ssh_command(&s.alice, &["-tt"], &["web-01"]);
    run(cmd, input, Duration::from_secs(60))
}

#[test]
fn allowed_lines_run_and_denied_lines_do_not() {
    let s = setup();
    let touch = format!("touch {}\r", s.marker.display());
    let mut input = b"echo hello from the shell\r".to_vec();
    input.extend_from_slice(touch.as_bytes());
    input.extend_from_slice(b"help\rid -un\rexit\r");
    let out = shell(&s, &input);
    let text = out.out();
    assert_eq!(out.code(), 0, "{text}");
    assert!(text.contains("alice@web-01 [web-read]$ "), "{text}");
    assert!(text.contains("hello from the shell\r\n"), "{text}");
    assert!(text.contains("gatehouse: denied: "), "{text}");
    assert!(
        text.contains("  echo *\r\n"),
        "help lists the rules: {text}"
    );
    assert!(
        text.contains(&format!("{}\r\n", login())),
        "id -un ran: {text}"
    );
    assert!(!s.marker.exists(), "the denied command did not run");
    // Two commands ran, each as its own certificate login on the target.
    assert_eq!(s.world.target.accepted_logins(), 2);
}

#[test]
fn control_bytes_and_pastes_cannot_smuggle_a_second_command() {
    let s = setup();
    let m = s.marker.display().to_string();
    let attempts: Vec<Vec<u8>> = vec![
        format!("echo a; touch {m}\r").into_bytes(),
        format!("echo a && touch {m}\r").into_bytes(),
        format!("echo $(touch {m})\r").into_bytes(),
        format!("echo `touch {m}`\r").into_bytes(),
        format!("echo a\x00; touch {m}\r").into_bytes(),
        // A bracketed-paste end marker is not a line end: the rest stays on the same line.
        format!("echo a\x1b[201~; touch {m}\r").into_bytes(),
        // Ctrl-U and Ctrl-C throw the line away; what follows is a line of its own, and denied.
        format!("echo a\x15touch {m}\r").into_bytes(),
        format!("echo a\x03touch {m}\r").into_bytes(),
        // A pasted block: the first line runs, the second is checked on its own.
        format!("echo pasted\ntouch {m}\n").into_bytes(),
        format!("echo a\x0btouch {m}\r").into_bytes(),
        format!("echo a\u{2028}touch {m}\r").into_bytes(),
    ];
    let mut input = Vec::new();
    for attempt in &attempts {
        input.extend_from_slice(attempt);
    }
    input.extend_from_slice(b"exit\r");
    let out = shell(&s, &input);
    let text = out.out();
    assert_eq!(out.code(), 0, "{text}");
    assert!(!s.marker.exists(), "a smuggled command ran:\n{text}");
    assert!(
        text.contains("pasted\r\n"),
        "the first pasted line ran: {text}"
    );
    assert!(
        text.matches("gatehouse: denied: ").count() >= attempts.len() - 1,
        "{text}"
    );
}

#[test]
fn exec_requests_on_a_restricted_role_follow_the_same_rules() {
    let s = setup();
    let gh = &s.world.gatehouse;
    let out = gh.ssh(&s.alice, &["web-01", "echo", "one", "two"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(out.out(), "one two\n");
    let out = gh.ssh(
        &s.alice,
        &["web-01", &format!("echo a; touch {}", s.marker.display())],
    );
    assert_eq!(out.code(), 126);
    assert!(
        out.err().starts_with("gatehouse: denied: "),
        "{}",
        out.err()
    );
    assert!(!s.marker.exists());
    // A quoted argument reaches the target as one word, exactly.
    let out = gh.ssh(&s.alice, &["web-01", "echo", "'a  b;c'"]);
    assert_eq!(out.out(), "a  b;c\n");
}
