//! Search from the text index end to end, with real `ssh`, `sshd` and (for the shared store)
//! PostgreSQL: text split across events and kept apart between output and input is found with
//! the time of the event where it starts; the index survives `kill -9` of the bastion up to the
//! last second; `gatehouse sessions reindex` rebuilds the same answers from the files.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::*;

struct Setup {
    world: World,
    alice: Person,
}

fn setup(config_extra: &str) -> Setup {
    let (world, alice) = World::with_granted_role(
        config_extra,
        "ops",
        "shell = \"full\"\nrecord_input = true\n",
    );
    Setup { world, alice }
}

/// `gatehouse sessions search TEXT --json`: session id → (source, time).
fn search(gh: &Gatehouse, text: &str) -> BTreeMap<String, (String, f64)> {
    let out = run(
        gh.command(&["sessions", "search", text, "--json"]),
        b"",
        Duration::from_secs(30),
    );
    if out.code() != 0 {
        assert!(
            out.out().trim() == "[]",
            "search {text:?} failed: {}",
            out.err()
        );
        return BTreeMap::new();
    }
    let hits: Vec<serde_json::Value> = serde_json::from_str(&out.out()).unwrap();
    hits.iter()
        .map(|h| {
            (
                h["id"].as_str().unwrap().to_owned(),
                (
                    h["hit"]["source"].as_str().unwrap().to_owned(),
                    h["hit"]["time"].as_f64().unwrap(),
                ),
            )
        })
        .collect()
}

/// Searches until `text` is found (the index commits within a second), at most 10 s.
fn search_until_found(gh: &Gatehouse, text: &str) -> BTreeMap<String, (String, f64)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let hits = search(gh, text);
        if !hits.is_empty() || Instant::now() > deadline {
            return hits;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

const NEEDLES: &[&str] = &[
    "alpha-beta-omega",
    "beta-omega",
    "typed-needle-77",
    "alpha-typed",
    "before-kill-77",
    "ta-om",
    "42",
];

/// A session whose output is split across events by a pause, with typed input; the command
/// spells the output with octal escapes, so it is found in the output, not the command.
fn split_session(s: &Setup) -> String {
    let gh = &s.world.gatehouse;
    let out = run(
        gh.ssh_command(
            &s.alice,
            &[],
            &[
                "web-01",
                "cat > /dev/null; printf '\\141lpha-'; sleep 1.5; printf 'bet\\141-\\157mega %s\\n' $((6*7))",
            ],
        ),
        b"typed-needle-77\n",
        Duration::from_secs(60),
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(out.out(), "alpha-beta-omega 42\n");
    let hits = search_until_found(gh, "alpha-beta-omega");
    assert_eq!(hits.len(), 1, "{hits:?}\n{}", gh.log());
    hits.into_keys().next().unwrap()
}

fn finds_split_text_with_times(s: &Setup) -> String {
    let gh = &s.world.gatehouse;
    let id = split_session(s);
    let (source, time) = &search(gh, "alpha-beta-omega")[&id];
    assert_eq!(source, "output");
    assert!(
        *time < 1.5,
        "the match starts in the first output event: {time}"
    );
    let (source, later) = &search(gh, "beta-omega")[&id];
    assert_eq!(source, "output");
    assert!(*later >= 1.5 && *later > *time, "{later}");
    let (source, typed) = &search(gh, "typed-needle-77")[&id];
    assert_eq!(source, "input");
    assert!(*typed < *time + 0.001, "typed before the output: {typed}");
    assert!(
        search(gh, "alpha-typed").is_empty(),
        "output and input are apart"
    );
    // A short needle cannot use trigrams and is still found.
    assert_eq!(search(gh, "42")[&id].0, "output");
    id
}

#[test]
fn search_answers_from_the_index_on_sqlite_survives_kill_9_and_reindex_rebuilds_it() {
    let mut s = setup("");
    let id = finds_split_text_with_times(&s);

    // A session the bastion is killed in the middle of.
    let mut running = s
        .world
        .gatehouse
        .ssh_command(
            &s.alice,
            &[],
            &["web-01", "printf 'before-kill-\\067\\067\\n'; sleep 60"],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = [0u8; 15];
    std::io::Read::read_exact(running.stdout.as_mut().unwrap(), &mut seen).unwrap();
    assert_eq!(&seen, b"before-kill-77\n");
    // More than a second: the index has committed what the client saw.
    std::thread::sleep(Duration::from_millis(2500));
    s.world.gatehouse.stop(true);
    let _ = running.kill();
    let _ = running.wait();
    let gh = &s.world.gatehouse;
    let killed = search(gh, "before-kill-77");
    assert_eq!(
        killed.len(),
        1,
        "found right after the kill, before any restart"
    );
    assert_eq!(killed.values().next().unwrap().0, "output");
    assert!(search(gh, "alpha-beta-omega").contains_key(&id));

    // After a restart (which closes the killed session), the answers stay; rebuilt from the
    // files after the index is dropped, they are the same.
    s.world.gatehouse.start();
    std::thread::sleep(Duration::from_secs(2));
    s.world.gatehouse.stop(false);
    let gh = &s.world.gatehouse;
    let before: Vec<_> = NEEDLES.iter().map(|n| search(gh, n)).collect();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(gh.dir.join(format!("data/gatehouse.search.db{suffix}")));
    }
    assert!(
        search(gh, "alpha-beta-omega").is_empty(),
        "the index is gone"
    );
    let reindex = run(
        gh.command(&["sessions", "reindex"]),
        b"",
        Duration::from_secs(60),
    );
    assert_eq!(reindex.code(), 0, "{}{}", reindex.out(), reindex.err());
    let after: Vec<_> = NEEDLES.iter().map(|n| search(gh, n)).collect();
    assert_eq!(after, before);
    assert_eq!(
        after[4].len(),
        1,
        "the killed session is in the rebuilt index"
    );
}

#[test]
fn search_answers_from_the_index_on_postgres_and_reindex_rebuilds_it() {
    let pg = Postgres::start();
    let url = pg.create_database("gatehouse");
    let mut s = setup(&format!("store = \"{url}\"\n"));
    finds_split_text_with_times(&s);
    s.world.gatehouse.stop(false);
    let gh = &s.world.gatehouse;
    let before: Vec<_> = NEEDLES.iter().map(|n| search(gh, n)).collect();
    let reindex = run(
        gh.command(&["sessions", "reindex"]),
        b"",
        Duration::from_secs(60),
    );
    assert_eq!(reindex.code(), 0, "{}{}", reindex.out(), reindex.err());
    assert!(
        reindex.out().contains("bytes of recording indexed"),
        "{}",
        reindex.out()
    );
    let after: Vec<_> = NEEDLES.iter().map(|n| search(gh, n)).collect();
    assert_eq!(after, before);
    drop(pg);
}
