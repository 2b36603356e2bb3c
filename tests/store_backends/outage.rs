//! PostgreSQL going away under two running stores and coming back: the stores fail fast while
//! it is away, report it to the bastion's health, and recover by themselves, push of grant
//! changes included, once it is back.

use std::time::{Duration, Instant};

use gatehouse::grants::store::Write;
use gatehouse::health::{Component, Health};
use gatehouse::store::{self, Store};
use tokio::sync::Notify;

use crate::common::postgres::Postgres;
use crate::contract::{fixed, pending};
use crate::records::session;

/// Waits up to `limit` for `cond`, checking every 50 ms; how long it took.
async fn within(limit: Duration, what: &str, cond: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

/// Commits a grant change on `writer` and checks that `pushed` is woken within a second.
async fn pushed_within_a_second(writer: &Store, pushed: &Notify) {
    let started = Instant::now();
    writer
        .transact(&fixed(vec![Write::Insert(pending("alice"))], true))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(1), pushed.notified())
        .await
        .expect("the other node is woken within a second of the commit");
    eprintln!("pushed {:?} after the change began", started.elapsed());
}

/// Stops (`crash` false) or kills the server, checks that both stores fail fast and report the
/// fault, starts it again and checks that they recover, push included.
async fn outage(
    pg: &mut Postgres,
    crash: bool,
    a: &Store,
    b: &Store,
    health: &Health,
    pushed: &Notify,
) {
    tokio::task::block_in_place(|| if crash { pg.kill() } else { pg.stop() });
    let started = Instant::now();
    let refused = a.live_for_user("alice", 0).await;
    let waited = started.elapsed();
    assert!(refused.is_err(), "a read with the server away: {refused:?}");
    assert!(
        waited < Duration::from_secs(4),
        "refused only after {waited:?}"
    );
    eprintln!("a read refused after {waited:?} with the server away");
    let started = Instant::now();
    assert!(
        b.started(&session("x", "n2", "alice", false, 1))
            .await
            .is_err()
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let noticed = within(Duration::from_secs(8), "the fault", || {
        health.is_faulty(Component::Store)
    })
    .await;
    eprintln!("the store fault was reported {noticed:?} after the first refusal");
    let why = health.check().unwrap_err().to_string();
    assert!(why.contains("cannot reach PostgreSQL"), "{why}");

    tokio::task::block_in_place(|| pg.start_again());
    let back = Instant::now();
    // Reconnected: the listener wakes the watch once to catch up through the revision.
    tokio::time::timeout(Duration::from_secs(15), pushed.notified())
        .await
        .expect("the listener reconnects and wakes the watch");
    eprintln!(
        "listening again {:?} after the server came back",
        back.elapsed()
    );
    let cleared = within(Duration::from_secs(8), "the recovery", || {
        !health.is_faulty(Component::Store)
    })
    .await;
    eprintln!("the store fault cleared {cleared:?} after the reconnect");
    pushed_within_a_second(b, pushed).await;
    assert!(a.live_for_user("alice", 0).await.unwrap().is_empty());
    b.started(&session(
        if crash { "s-crash" } else { "s-stop" },
        "n2",
        "alice",
        false,
        1,
    ))
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_fail_fast_while_postgres_is_away_and_recover_when_it_returns() {
    let mut pg = tokio::task::block_in_place(Postgres::start);
    let url = pg.create_database("outage");
    let a = store::open(&url).await.unwrap();
    let b = store::open(&url).await.unwrap();
    let health = Health::default();
    a.monitor(&health);
    let pushed = a.grant_changes().expect("PostgreSQL pushes grant changes");
    tokio::time::timeout(Duration::from_secs(10), pushed.notified())
        .await
        .expect("the listener connects");
    pushed_within_a_second(&b, &pushed).await;
    assert!(!health.is_faulty(Component::Store));

    outage(&mut pg, false, &a, &b, &health, &pushed).await;
    outage(&mut pg, true, &a, &b, &health, &pushed).await;
    assert_eq!(a.revision().await.unwrap(), 3, "every change is there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_cannot_be_opened_while_postgres_is_away() {
    let mut pg = tokio::task::block_in_place(Postgres::start);
    let url = pg.create_database("away");
    tokio::task::block_in_place(|| pg.stop());
    let started = Instant::now();
    let refused = store::open(&url).await;
    assert!(refused.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
