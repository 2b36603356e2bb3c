//! Session recordings end to end: what the user saw is what the recording holds, the file plays
//! in an independent asciicast parser, reviewers find and replay it, tampering is detected, a
//! recording that cannot be written refuses the session, and a killed bastion leaves a valid
//! recording that holds everything the client saw.

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use gatehouse::recording::{output_bytes, read_cast};

struct Setup {
    world: World,
    alice: Person,
}

fn setup(config_extra: &str) -> Setup {
    let (world, alice) = World::with_granted_role(config_extra, "ops", "shell = \"full\"\n");
    Setup { world, alice }
}

/// The newest session's id and recording path, from `gatehouse sessions list --json`.
fn latest_session(gh: &Gatehouse) -> (String, PathBuf) {
    let out = run(
        gh.command(&["sessions", "list", "--json"]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let list: serde_json::Value = serde_json::from_str(&out.out()).unwrap();
    let s = &list[0];
    (
        s["id"].as_str().unwrap().to_owned(),
        PathBuf::from(s["recording"].as_str().unwrap()),
    )
}

/// The independent parser is part of the test, not an extra: without it the test fails and says
/// how to install it (`.ci/run` does).
fn require_asciinema() {
    let found = std::process::Command::new("python3")
        .args(["-c", "import asciinema"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "python's asciinema 2.4 is needed to check recordings with an independent parser: \
         python3 -m pip install asciinema==2.4.0"
    );
}

#[test]
fn an_exec_session_is_recorded_exactly_and_reviewers_can_find_replay_and_verify_it() {
    let s = setup("");
    let gh = &s.world.gatehouse;
    let out = gh.ssh(
        &s.alice,
        &[
            "web-01",
            "printf 'first line\\ncaf\\303\\251 \\377 unique-word-4411\\n'",
        ],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let (id, path) = latest_session(gh);
    assert!(
        path.starts_with(gh.dir.join("recordings")),
        "{}",
        path.display()
    );
    let cast = read_cast(&path).unwrap();
    assert!(!cast.truncated);
    assert_eq!(
        output_bytes(&cast),
        out.stdout,
        "the recording holds exactly what the client received"
    );
    assert_eq!(
        cast.header.title.as_deref().unwrap_or(""),
        "alice@web-01 [ops] grant 1"
    );
    assert!(
        cast.header
            .command
            .as_deref()
            .unwrap_or("")
            .contains("unique-word-4411")
    );

    // An independent asciicast v2 parser accepts the file.
    require_asciinema();
    {
        let cat = run(
            {
                let mut c = std::process::Command::new("python3");
                c.args(["-m", "asciinema", "cat"]).arg(&path);
                c
            },
            b"",
            Duration::from_secs(30),
        );
        assert_eq!(cat.code(), 0, "asciinema cat: {}", cat.err());
        assert!(cat.out().contains("unique-word-4411"), "{}", cat.out());
    }

    // Replay prints the output; search finds the session; verify checks the hash.
    let replay = run(
        gh.command(&["replay", &id, "--speed", "1000"]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(replay.code(), 0, "{}", replay.err());
    assert!(replay.out().contains("first line"), "{}", replay.out());
    // The text index commits within a second of the output.
    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        let found = run(
            gh.command(&["sessions", "search", "unique-word-4411", "--json"]),
            b"",
            Duration::from_secs(30),
        );
        if found.out().contains(&id) || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(found.out().contains(&id), "{}", found.out());
    let missing = run(
        gh.command(&["sessions", "search", "never-printed-anywhere"]),
        b"",
        Duration::from_secs(30),
    );
    assert_ne!(missing.code(), 0);
    let verified = run(
        gh.command(&["sessions", "verify", &id]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(verified.code(), 0, "{}", verified.out());
    let show = run(
        gh.command(&["sessions", "show", &id[..13]]),
        b"",
        Duration::from_secs(30),
    );
    assert!(
        show.out().contains(&format!("session      {id}")),
        "{}",
        show.out()
    );

    // Tampering is detected.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text = text.replace("first line", "FIRST LINE");
    std::fs::write(&path, text).unwrap();
    let verified = run(
        gh.command(&["sessions", "verify", &id]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(verified.code(), 1);
    assert!(verified.out().starts_with("MODIFIED"), "{}", verified.out());
}

#[test]
fn an_interactive_session_is_recorded_as_the_terminal_showed_it() {
    let s = setup("");
    let gh = &s.world.gatehouse;
    let out = run(
        gh.ssh_command(&s.alice, &["-tt"], &["web-01"]),
        b"echo interactive-$((6*7))\nexit\n",
        Duration::from_secs(60),
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let (_, path) = latest_session(gh);
    let cast = read_cast(&path).unwrap();
    let recorded = output_bytes(&cast);
    assert_eq!(
        recorded,
        out.stdout,
        "recorded:\n{}",
        String::from_utf8_lossy(&recorded)
    );
    assert!(String::from_utf8_lossy(&recorded).contains("interactive-42"));
    assert!(cast.header.env.contains_key("TERM"));
}

#[test]
fn a_recording_that_cannot_be_created_refuses_the_session() {
    let tmp_probe = tempfile::tempdir().unwrap();
    let _ = tmp_probe;
    // The recordings "directory" is a plain file, which nobody (not even root) can create
    // directories in.
    let s = setup("[recordings]\ndir = \"not-a-directory\"\n");
    let gh = &s.world.gatehouse;
    std::fs::write(gh.dir.join("not-a-directory"), b"a file").unwrap();
    let before = s.world.target.accepted_logins();
    let out = gh.ssh(&s.alice, &["web-01", "echo", "should-not-run"]);
    assert_eq!(out.code(), 126, "{}", out.err());
    assert!(
        out.err()
            .starts_with("gatehouse: denied: the session cannot be recorded"),
        "{}",
        out.err()
    );
    assert!(!out.out().contains("should-not-run"));
    assert_eq!(
        s.world.target.accepted_logins(),
        before,
        "the target saw no connection"
    );
}

#[test]
fn a_killed_bastion_leaves_a_valid_recording_holding_everything_the_client_saw() {
    let mut s = setup("");
    let mut session = s
        .world
        .gatehouse
        .ssh_command(
            &s.alice,
            &[],
            &[
                "web-01",
                "i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo line-$i; sleep 0.02; done",
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = session.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let _ = stdout.read_to_end(&mut seen);
        seen
    });
    std::thread::sleep(Duration::from_millis(3000));
    let killed_at = Instant::now();
    s.world.gatehouse.stop(true);
    let _ = session.wait();
    let seen = String::from_utf8(reader.join().unwrap()).unwrap();
    let last_seen: u32 = seen
        .lines()
        .last()
        .unwrap()
        .trim_start_matches("line-")
        .parse()
        .unwrap();
    assert!(killed_at.elapsed() < Duration::from_secs(5));
    assert!(last_seen > 50, "the session was streaming: {last_seen}");

    let (_, path) = {
        // The index is readable without the server.
        latest_session(&s.world.gatehouse)
    };
    let cast = read_cast(&path).expect("the cut recording still parses");
    let text = String::from_utf8(output_bytes(&cast)).unwrap();
    // Output is in the file before it is sent, so the kill loses nothing the client saw.
    assert!(
        text.starts_with(&seen),
        "the client saw up to line {last_seen}, the recording holds:\n{text}"
    );
}
