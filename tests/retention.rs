//! Retention and legal hold end to end, on SQLite and on a real PostgreSQL: real sessions
//! through real `ssh` and `sshd`, aged in the index, then a restarted `gatehouse serve` whose
//! start-up sweep deletes exactly the recordings past `[recordings] keep`: not the held ones,
//! not the recent ones, not another node's, each with one `recording.deleted` line. And
//! `gatehouse check` refuses a `keep` that makes no sense, at its line.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::*;
use serde_json::Value;

const DAY: i64 = 86_400;

/// The bastion's `gatehouse ARGS…`, within 60 s.
fn gatehouse(gh: &Gatehouse, args: &[&str]) -> Output {
    run(gh.command(args), b"", Duration::from_secs(60))
}

/// `sessions list --json`, newest first.
fn list(gh: &Gatehouse) -> Vec<Value> {
    let out = gatehouse(gh, &["sessions", "list", "--json"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    serde_json::from_str::<Value>(&out.out())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Every line of the bastion's audit log.
fn audit(gh: &Gatehouse) -> Vec<Value> {
    std::fs::read_to_string(gh.dir.join("data/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn deletions(gh: &Gatehouse) -> Vec<Value> {
    audit(gh)
        .into_iter()
        .filter(|l| l["event"] == "recording.deleted")
        .collect()
}

/// A world whose bastion keeps recordings for a day, on the store `store_line` names (empty:
/// the default SQLite file), with a standing grant for alice.
fn world(store_line: &str) -> (World, Person) {
    let config = format!("{store_line}\n[recordings]\nkeep = \"1d\"\n");
    World::with_granted_role(&config, "ops", "shell = \"full\"\n")
}

/// Runs SQL against the bastion's store, the way a test ages sessions: the store's own URL,
/// through sqlx.
fn sql(url: &str, statements: &[String]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if url.starts_with("sqlite://") {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            for s in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(s.clone()))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            for s in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(s.clone()))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
    });
}

/// Waits until the audit log holds `n` `recording.deleted` lines.
fn wait_for_deletions(gh: &Gatehouse, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while deletions(gh).len() < n {
        assert!(
            Instant::now() < deadline,
            "{} deletions after 30 s, {n} expected:\n{}",
            deletions(gh).len(),
            gh.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn scenario(store_line: &str, url: impl FnOnce(&Gatehouse) -> String) {
    let (mut world, alice) = world(store_line);
    for word in ["old-one", "old-two", "old-held", "recent"] {
        let out = world
            .gatehouse
            .ssh(&alice, &["web-01", &format!("echo {word}")]);
        assert_eq!(out.code(), 0, "{}", out.err());
    }
    let gh = &mut world.gatehouse;
    let url = url(gh);
    let sessions = list(gh);
    assert_eq!(sessions.len(), 4);
    // Newest first: recent, old-held, old-two, old-one.
    let id = |i: usize| sessions[i]["id"].as_str().unwrap().to_owned();
    let file = |i: usize| PathBuf::from(sessions[i]["recording"].as_str().unwrap());
    let (recent, held, two, one) = (id(0), id(1), id(2), id(3));
    gh.stop(false);

    // Three sessions ended three days ago; another node's session ended long ago, with a file
    // in the shared recordings directory that this node must leave alone.
    let elsewhere_file = gh.dir.join("recordings/elsewhere.cast");
    std::fs::write(&elsewhere_file, "{\"version\": 2}\n").unwrap();
    let mut statements: Vec<String> = [&one, &two, &held]
        .iter()
        .map(|id| {
            format!(
                "UPDATE sessions SET started_at = started_at - {d}, ended_at = ended_at - {d} WHERE id = '{id}'",
                d = 3 * DAY
            )
        })
        .collect();
    statements.push(format!(
        "INSERT INTO sessions (id, node, \"user\", target, role, grant_id, kind, break_glass, started_at, ended_at, recording) \
         VALUES ('elsewhere', 'another-node', 'alice', 'web-01', 'ops', 1, 'exec', {f}, 1000, 1010, '{}')",
        elsewhere_file.display(),
        f = if url.starts_with("sqlite") { "0" } else { "false" },
    ));
    sql(&url, &statements);

    // A hold needs a reason of some substance, and then holds.
    let short = gatehouse(gh, &["sessions", "hold", &held, "--reason", "because"]);
    assert_eq!(short.code(), 2, "{}", short.err());
    assert!(
        short.err().contains("at least 10 characters"),
        "{}",
        short.err()
    );
    let placed = gatehouse(
        gh,
        &[
            "sessions",
            "hold",
            &held,
            "--reason",
            "case 4711: litigation hold",
        ],
    );
    assert_eq!(placed.code(), 0, "{}", placed.err());
    let again = gatehouse(
        gh,
        &[
            "sessions",
            "hold",
            &held,
            "--reason",
            "case 4711: litigation hold",
        ],
    );
    assert_eq!(again.code(), 1, "one hold at a time: {}", again.err());
    let shown = gatehouse(gh, &["sessions", "show", &held]);
    assert!(
        shown.out().contains("hold") && shown.out().contains("case 4711: litigation hold"),
        "{}",
        shown.out()
    );

    gh.start();
    wait_for_deletions(gh, 2);
    // The sweep has finished once both lines are there; give a straggler a moment to show.
    std::thread::sleep(Duration::from_millis(500));
    let lines = deletions(gh);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let mut deleted: Vec<&str> = lines
        .iter()
        .map(|l| l["session_id"].as_str().unwrap())
        .collect();
    deleted.sort();
    let mut expected = vec![one.as_str(), two.as_str()];
    expected.sort();
    assert_eq!(deleted, expected);
    for line in &lines {
        let i = if line["session_id"] == one.as_str() {
            3
        } else {
            2
        };
        assert_eq!(line["reason"], "retention 1d");
        assert_eq!(line["user"], "alice");
        assert_eq!(line["target"], "web-01");
        assert_eq!(line["detail"]["file"], "deleted");
        assert_eq!(line["detail"]["recording_sha256"], sessions[i]["sha256"]);
        assert!(line["detail"]["ended"].as_str().is_some(), "{line}");
        assert!(!file(i).exists(), "{}", file(i).display());
    }
    let left = list(gh);
    let left_ids: Vec<&str> = left.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert!(left_ids.contains(&recent.as_str()) && left_ids.contains(&held.as_str()));
    assert!(
        left_ids.contains(&"elsewhere"),
        "another node's session stays"
    );
    assert_eq!(left.len(), 3);
    assert!(file(0).exists() && file(1).exists() && elsewhere_file.exists());
    let held_row = left.iter().find(|s| s["id"] == held.as_str()).unwrap();
    assert_eq!(held_row["hold"]["reason"], "case 4711: litigation hold");
    assert!(
        held_row["hold"]["held_by"]
            .as_str()
            .unwrap()
            .contains(&login())
    );
    let recent_row = left.iter().find(|s| s["id"] == recent.as_str()).unwrap();
    assert!(recent_row["hold"].is_null());
    let held_line = audit(gh)
        .into_iter()
        .find(|l| l["event"] == "session.held")
        .unwrap();
    assert_eq!(held_line["session_id"], held.as_str());
    assert_eq!(held_line["detail"]["unix_account"], login().as_str());

    // Released, the held session goes at the next sweep (here: the next start).
    let released = gatehouse(
        gh,
        &["sessions", "release", &held, "--reason", "case 4711 closed"],
    );
    assert_eq!(released.code(), 0, "{}", released.err());
    assert!(
        audit(gh)
            .iter()
            .any(|l| l["event"] == "session.released" && l["session_id"] == held.as_str())
    );
    gh.stop(false);
    gh.start();
    wait_for_deletions(gh, 3);
    assert!(!file(1).exists());
    assert_eq!(list(gh).len(), 2);
    gh.stop(false);
    let verify = gatehouse(gh, &["audit", "verify"]);
    assert_eq!(verify.code(), 0, "{}{}", verify.out(), verify.err());
}

#[test]
fn retention_on_sqlite_deletes_exactly_what_is_past_its_keep() {
    scenario("", |gh| {
        format!("sqlite://{}", gh.dir.join("data/gatehouse.db").display())
    });
}

#[test]
fn retention_on_postgres_deletes_exactly_what_is_past_its_keep() {
    let pg = Postgres::start();
    let url = pg.create_database("retention");
    scenario(&format!("store = \"{url}\""), |_| url.clone());
}

#[test]
fn check_refuses_a_keep_that_makes_no_sense_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    for (bad, why) in [
        ("0s", "longer than zero"),
        ("12h", "shorter than a day"),
        ("ever", "digits"),
    ] {
        std::fs::write(
            dir.path().join("gatehouse.toml"),
            format!("listen = \"127.0.0.1:2222\"\n\n[recordings]\nkeep = \"{bad}\"\n"),
        )
        .unwrap();
        let out = run(
            Gatehouse::command_in(dir.path(), &["check"]),
            b"",
            Duration::from_secs(30),
        );
        assert_ne!(out.code(), 0, "{bad}");
        let at = format!("{}:4:", dir.path().join("gatehouse.toml").display());
        assert!(out.err().contains(&at), "{bad}: {}", out.err());
        assert!(
            out.err().contains("recordings.keep") && out.err().contains(why),
            "{bad}: {}",
            out.err()
        );
    }
}
