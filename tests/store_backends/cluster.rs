//! Two stores on one PostgreSQL database, used at the same moment as two nodes would.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse::grants::desk::BreakGlass;
use gatehouse::grants::{Decision, GrantError, GrantState, now};
use gatehouse::store::nodes::Heartbeat;
use gatehouse::store::sessions::{AckError, Review, ReviewSeal};
use gatehouse::store::{self, Store};
use uuid::Uuid;

use crate::contract::{fixed, pending};
use crate::desk::{TTL, policy, request, two_nodes, user};
use crate::records::session;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_on_a_fresh_database_migrate_it_once() {
    for _ in 0..5 {
        let url = crate::fresh_database();
        let opening: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { store::open(&url).await })
            })
            .collect();
        let mut stores: Vec<Store> = Vec::new();
        for task in opening {
            stores.push(task.await.unwrap().unwrap());
        }
        for store in &stores {
            assert_eq!(store.revision().await.unwrap(), 0);
        }
        // One of them writes, every one reads it.
        stores[0]
            .transact(&fixed(
                vec![gatehouse::grants::store::Write::Insert(pending("alice"))],
                true,
            ))
            .await
            .unwrap();
        for store in &stores {
            assert_eq!(store.revision().await.unwrap(), 1);
        }
        // Opening again finds the schema current and changes nothing.
        let again = store::open(&url).await.unwrap();
        assert_eq!(again.revision().await.unwrap(), 1);
    }
}

#[tokio::test]
async fn the_store_describes_itself_without_its_password() {
    let url = crate::fresh_database();
    let with_password = url.replacen("://gatehouse@", "://gatehouse:s3cret@", 1);
    let store = store::open(&with_password).await.unwrap();
    let shown = store.describe();
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(
        shown.starts_with("postgres://gatehouse@127.0.0.1:"),
        "{shown}"
    );
    let also = store::open(&url.replacen("postgres://", "postgresql://", 1))
        .await
        .unwrap();
    assert_eq!(also.describe(), shown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_from_two_nodes_never_hand_out_a_row_twice() {
    let url = crate::fresh_database();
    let a = store::open(&url).await.unwrap();
    let b = store::open(&url).await.unwrap();
    let sinks = ["webhook:a", "syslog:b", "command:c", "webhook:d"];
    for _ in 0..50 {
        a.enqueue(Uuid::now_v7(), "{}", &sinks, 0, 0).await.unwrap();
    }
    let known: Arc<Vec<String>> = Arc::new(sinks.map(String::from).to_vec());
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let known = known.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let claimed = store.claim_due(&known, 10, i64::MAX / 2, 3).await.unwrap();
                    if claimed.is_empty() {
                        return mine;
                    }
                    mine.extend(claimed.into_iter().map(|c| (c.id, c.attempt)));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let ids: BTreeSet<i64> = all.iter().map(|(id, _)| *id).collect();
    assert_eq!(all.len(), 200, "every row claimed");
    assert_eq!(ids.len(), 200, "no row claimed twice");
    assert!(all.iter().all(|(_, attempt)| *attempt == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approvals_on_two_nodes_at_once_both_count() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(dir.path()).await;
    let policy = Arc::new(policy());
    let mut ids = Vec::new();
    for _ in 0..25 {
        ids.push(request(&a, &policy, "db-ops", now()).await.id);
    }
    let mut tasks = Vec::new();
    for &id in &ids {
        for (node, who) in [(a.clone(), "bob"), (b.clone(), "carol")] {
            let policy = policy.clone();
            tasks.push(tokio::spawn(async move {
                let actor = user(&policy, who);
                node.desk()
                    .decide(&policy, &actor, id, &Decision::Approve(None))
                    .await
            }));
        }
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    for id in ids {
        let g = b.store.get(id).await.unwrap().unwrap();
        assert_eq!(g.state, GrantState::Active, "grant {id}: {g:?}");
        let mut who: Vec<_> = g.approvals.iter().map(|a| a.approver.as_str()).collect();
        who.sort_unstable();
        assert_eq!(who, ["bob", "carol"]);
    }
    assert_eq!(
        a.audit_lines("grant.approved") + b.audit_lines("grant.approved"),
        50
    );
    assert_eq!(
        a.audit_lines("grant.activated") + b.audit_lines("grant.activated"),
        25
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn break_glass_on_two_nodes_at_once_gets_exactly_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(dir.path()).await;
    let at = now();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let node = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                node.desk()
                    .break_glass(&BreakGlass {
                        user: "carol",
                        role: "emergency",
                        target: "db-01",
                        reason: "primary is down, INC-9",
                        duration: Duration::from_secs(600),
                        max_uses: 1,
                        window: Duration::from_secs(3600),
                        now: at,
                    })
                    .await
            })
        })
        .collect();
    let mut granted = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok((grant, _)) => granted.push(grant.id),
            Err(GrantError::Denied(m)) => assert!(m.contains("limit reached: 1 use(s)"), "{m}"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(granted.len(), 1, "{granted:?}");
    let all = a.store.list(&Default::default()).await.unwrap();
    assert_eq!(all.len(), 1);
    let lines = a.audit_lines("breakglass.activated") + b.audit_lines("breakglass.activated");
    assert_eq!(lines, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sweeps_on_two_nodes_at_once_end_each_grant_once() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(dir.path()).await;
    let policy = policy();
    let start = now();
    let mut ids = BTreeSet::new();
    for _ in 0..8 {
        ids.insert(request(&a, &policy, "self", start).await.id);
    }
    let later = start + 601;
    let (on_a, on_b) = tokio::join!(
        tokio::spawn({
            let a = a.clone();
            async move { a.desk().sweep(later).await }
        }),
        tokio::spawn({
            let b = b.clone();
            async move { b.desk().sweep(later).await }
        }),
    );
    let (on_a, on_b) = (on_a.unwrap().unwrap(), on_b.unwrap().unwrap());
    let ended: Vec<i64> = on_a.iter().chain(&on_b).map(|g| g.id).collect();
    assert_eq!(ended.len(), ids.len(), "each once: {on_a:?} {on_b:?}");
    assert_eq!(ended.iter().copied().collect::<BTreeSet<_>>(), ids);
    assert!(
        on_a.iter()
            .chain(&on_b)
            .all(|g| g.state == GrantState::Expired)
    );
    assert_eq!(
        a.audit_lines("grant.expired") + b.audit_lines("grant.expired"),
        8
    );
    assert!(a.desk().sweep(later).await.unwrap().is_empty());
    // The pending ones lapse once too, whichever node looks.
    let waiting = request(&b, &policy, "db-ops", start).await;
    let lapsed = a.desk().sweep(start + TTL.as_secs() as i64).await.unwrap();
    assert_eq!(
        lapsed.iter().map(|g| g.id).collect::<Vec<_>>(),
        [waiting.id]
    );
    assert_eq!(lapsed[0].state, GrantState::Lapsed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_node_wakes_the_other_at_once() {
    let url = crate::fresh_database();
    let a = store::open(&url).await.unwrap();
    let b = store::open(&url).await.unwrap();
    let pushed = a.grant_changes().expect("PostgreSQL pushes grant changes");
    // The first wake says the listener is connected (and asks for a catch-up).
    tokio::time::timeout(Duration::from_secs(10), pushed.notified())
        .await
        .expect("the listener connects");
    for _ in 0..3 {
        let started = Instant::now();
        b.transact(&fixed(
            vec![gatehouse::grants::store::Write::Insert(pending("alice"))],
            true,
        ))
        .await
        .unwrap();
        tokio::time::timeout(Duration::from_secs(1), pushed.notified())
            .await
            .expect("woken within a second of the commit");
        eprintln!("pushed after {:?}", started.elapsed());
    }
    // A transaction rolled back announces nothing.
    let refused = b
        .transact(&fixed(
            vec![gatehouse::grants::store::Write::Insert(pending("eve"))],
            false,
        ))
        .await;
    assert!(refused.is_err());
    assert!(
        tokio::time::timeout(Duration::from_millis(500), pushed.notified())
            .await
            .is_err(),
        "a rollback is not announced"
    );
}

/// A review seal that always succeeds.
struct Sealed;

#[async_trait::async_trait]
impl ReviewSeal for Sealed {
    async fn seal(&self) -> Result<(), gatehouse::events::AuditUnwritable> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_node_and_a_review_are_each_taken_by_one_node() {
    let url = crate::fresh_database();
    let a = store::open(&url).await.unwrap();
    let b = store::open(&url).await.unwrap();
    let mut silent = BTreeSet::new();
    for n in 0..10 {
        let beat = Heartbeat {
            name: format!("n{n}"),
            version: "0.1.0".into(),
            listen: "127.0.0.1:2222".into(),
            started_at: 10,
        };
        a.heartbeat(&beat, 100).await.unwrap();
        silent.insert(beat.name);
    }
    a.started(&session("bg", "n0", "carol", true, 100))
        .await
        .unwrap();
    let looks: Vec<_> = (0..20)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { store.mark_gone(200).await.unwrap() })
        })
        .collect();
    let mut gone = Vec::new();
    for look in looks {
        gone.extend(look.await.unwrap());
    }
    assert_eq!(gone.len(), 10, "each name once: {gone:?}");
    assert_eq!(gone.into_iter().collect::<BTreeSet<_>>(), silent);

    let reviews: Vec<_> = (0..10)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                let review = Review {
                    reviewer: format!("lead{i}"),
                    note: "checked".into(),
                    at: 300,
                };
                store.acknowledge("bg", &review, &Sealed).await
            })
        })
        .collect();
    let mut taken = 0;
    for review in reviews {
        match review.await.unwrap() {
            Ok(()) => taken += 1,
            Err(AckError::Taken(id)) => assert_eq!(id, "bg"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(taken, 1);
    assert!(b.review_queue(true).await.unwrap().is_empty());
}
