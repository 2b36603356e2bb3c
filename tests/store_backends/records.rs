//! What every store backend must do with the session index, reviews, the alert outbox and
//! the node registry, each scenario a function of an open [`Store`].

use async_trait::async_trait;
use gatehouse::events::AuditUnwritable;
use gatehouse::grants::store::Write;
use gatehouse::grants::{Change, ChangeKind, GrantState, NewGrant};
use gatehouse::store::Store;
use gatehouse::store::nodes::{Heartbeat, NodeState};
use gatehouse::store::outbox::MAX_ERROR_LEN;
use gatehouse::store::sessions::{
    AckError, Review, ReviewSeal, SessionEnd, SessionFilter, SessionRecord,
};
use uuid::Uuid;

use crate::contract::{fixed, pending};

/// A session of `user` on `node`, just started.
pub fn session(
    id: &str,
    node: &str,
    user: &str,
    break_glass: bool,
    started_at: i64,
) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        node: node.into(),
        user: user.into(),
        target: "web-01".into(),
        role: "web-ops".into(),
        grant_id: 7,
        kind: "exec".into(),
        command: Some("'uptime'".into()),
        break_glass,
        started_at,
        ended_at: None,
        bytes_in: None,
        bytes_out: None,
        exit_status: None,
        end_reason: None,
        recording: Some("recordings/x.cast".into()),
        sha256: None,
    }
}

pub async fn sessions_are_indexed_and_completed(store: &Store) {
    let record = session("0190-a", "n1", "alice", false, 100);
    store.started(&record).await.unwrap();
    assert_eq!(
        store.session("0190-a").await.unwrap().as_ref(),
        Some(&record)
    );
    assert!(store.started(&record).await.is_err(), "one row per session");
    let end = SessionEnd {
        ended_at: 105,
        bytes_in: 7,
        bytes_out: 42,
        exit_status: Some(0),
        end_reason: Some("revoked".into()),
        sha256: Some("ab".into()),
    };
    store.ended("0190-a", &end).await.unwrap();
    let got = store.session("0190-a").await.unwrap().unwrap();
    assert_eq!(got.ended_at, Some(105));
    assert_eq!(
        (got.bytes_in, got.bytes_out, got.exit_status),
        (Some(7), Some(42), Some(0))
    );
    assert_eq!(got.end_reason.as_deref(), Some("revoked"));
    assert_eq!(got.sha256.as_deref(), Some("ab"));
    // An end written again without a hash (a retry that lands after the late hash) keeps
    // the hash already there.
    let again = SessionEnd {
        sha256: None,
        ..end.clone()
    };
    store.ended("0190-a", &again).await.unwrap();
    let got = store.session("0190-a").await.unwrap().unwrap();
    assert_eq!(got.sha256.as_deref(), Some("ab"));
    assert!(store.session("nope").await.unwrap().is_none());

    let mut other = session("0190-b", "n1", "bob", true, 110);
    other.target = "db-01".into();
    other.role = "db-ops".into();
    store.started(&other).await.unwrap();
    store
        .started(&session("0190-c", "n2", "alice", false, 120))
        .await
        .unwrap();
    let ids = |v: Vec<SessionRecord>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let all = store.sessions(&SessionFilter::default()).await.unwrap();
    assert_eq!(ids(all), ["0190-c", "0190-b", "0190-a"], "newest first");
    let by_user = SessionFilter {
        user: Some("alice".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(store.sessions(&by_user).await.unwrap()),
        ["0190-c", "0190-a"]
    );
    let by_target = SessionFilter {
        target: Some("db-01".into()),
        ..Default::default()
    };
    assert_eq!(ids(store.sessions(&by_target).await.unwrap()), ["0190-b"]);
    let later = SessionFilter {
        since: Some(110),
        limit: Some(1),
        ..Default::default()
    };
    assert_eq!(ids(store.sessions(&later).await.unwrap()), ["0190-c"]);
    let none = SessionFilter {
        user: Some("alice".into()),
        target: Some("db-01".into()),
        ..Default::default()
    };
    assert!(store.sessions(&none).await.unwrap().is_empty());
    let cases = [
        (
            SessionFilter {
                role: Some("db-ops".into()),
                ..Default::default()
            },
            vec!["0190-b"],
        ),
        (
            SessionFilter {
                until: Some(120),
                ..Default::default()
            },
            vec!["0190-b", "0190-a"],
        ),
        (
            SessionFilter {
                break_glass: Some(true),
                ..Default::default()
            },
            vec!["0190-b"],
        ),
        (
            SessionFilter {
                break_glass: Some(false),
                ..Default::default()
            },
            vec!["0190-c", "0190-a"],
        ),
        (
            SessionFilter {
                running: Some(true),
                ..Default::default()
            },
            vec!["0190-c", "0190-b"],
        ),
        (
            SessionFilter {
                running: Some(false),
                ..Default::default()
            },
            vec!["0190-a"],
        ),
        (
            SessionFilter {
                limit: Some(1),
                offset: Some(1),
                ..Default::default()
            },
            vec!["0190-b"],
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(
            ids(store.sessions(&filter).await.unwrap()),
            want,
            "{filter:?}"
        );
    }
}

/// A review seal that succeeds or not.
struct Seal(bool);

#[async_trait]
impl ReviewSeal for Seal {
    async fn seal(&self) -> Result<(), AuditUnwritable> {
        if self.0 {
            Ok(())
        } else {
            Err(AuditUnwritable("the audit log is full".into()))
        }
    }
}

pub async fn break_glass_sessions_wait_for_one_review(store: &Store) {
    for (id, bg, at) in [("a", true, 1), ("b", false, 2), ("c", true, 3)] {
        store
            .started(&session(id, "n1", "carol", bg, at))
            .await
            .unwrap();
    }
    let queue = store.review_queue(true).await.unwrap();
    let ids: Vec<_> = queue.iter().map(|(s, _)| s.id.as_str()).collect();
    assert_eq!(ids, ["a", "c"], "only break-glass sessions, oldest first");
    assert!(queue.iter().all(|(_, r)| r.is_none()));
    let review = Review {
        reviewer: "bob".into(),
        note: "restart was needed".into(),
        at: 5,
    };
    let refused = store.acknowledge("a", &review, &Seal(false)).await;
    assert!(
        matches!(refused, Err(AckError::Unwritable(_))),
        "{refused:?}"
    );
    assert_eq!(
        store.review_queue(true).await.unwrap().len(),
        2,
        "rolled back"
    );
    store.acknowledge("a", &review, &Seal(true)).await.unwrap();
    let queue = store.review_queue(true).await.unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].0.id, "c");
    let all = store.review_queue(false).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].1.as_ref(), Some(&review));
    assert!(all[0].0.break_glass);
    let twice = store.acknowledge("a", &review, &Seal(true)).await;
    assert!(
        matches!(&twice, Err(AckError::Taken(id)) if id == "a"),
        "{twice:?}"
    );
}

pub async fn orphans_of_a_node_are_closed_once(store: &Store) {
    store
        .started(&session("s1", "n1", "alice", false, 100))
        .await
        .unwrap();
    store
        .started(&session("s2", "n1", "alice", false, 200))
        .await
        .unwrap();
    store
        .started(&session("s3", "n2", "alice", false, 100))
        .await
        .unwrap();
    store
        .started(&session("s4", "n1", "alice", false, 50))
        .await
        .unwrap();
    store
        .ended(
            "s4",
            &SessionEnd {
                ended_at: 60,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let closed = store
        .close_orphans("n1", 150, 300, "node lost")
        .await
        .unwrap();
    assert_eq!(closed, ["s1"]);
    let s1 = store.session("s1").await.unwrap().unwrap();
    assert_eq!(s1.ended_at, Some(300));
    assert_eq!(s1.end_reason.as_deref(), Some("node lost"));
    assert!(
        store
            .session("s2")
            .await
            .unwrap()
            .unwrap()
            .ended_at
            .is_none(),
        "started later"
    );
    assert!(
        store
            .session("s3")
            .await
            .unwrap()
            .unwrap()
            .ended_at
            .is_none(),
        "another node"
    );
    assert_eq!(
        store.session("s4").await.unwrap().unwrap().ended_at,
        Some(60),
        "had an end"
    );
    assert!(
        store
            .close_orphans("n1", 150, 301, "node lost")
            .await
            .unwrap()
            .is_empty()
    );
    let mut both = store
        .close_orphans("n1", 1000, 302, "crashed")
        .await
        .unwrap();
    both.sort();
    assert_eq!(both, ["s2"]);
}

pub async fn outbox_claims_lease_and_retries(store: &Store) {
    let alert = Uuid::now_v7();
    let sinks = ["webhook:a", "syslog:b", "command:c"];
    let rows = store
        .enqueue(alert, "{\"x\":1}", &sinks, 1000, 0)
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
        sinks
    );
    let again = store
        .enqueue(alert, "{}", &["webhook:a", "webhook:d"], 1000, 1)
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "webhook:a already had its row: {again:?}");
    assert_eq!(again[0].1, "webhook:d");
    let known: Vec<String> = ["webhook:a", "syslog:b", "webhook:d"]
        .map(String::from)
        .to_vec();
    assert_eq!(store.next_due(&known).await.unwrap(), Some(1000));
    assert!(
        store
            .claim_due(&known, 999, 5000, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let claimed = store.claim_due(&known, 1000, 5000, 2).await.unwrap();
    assert_eq!(claimed.len(), 2, "the limit");
    assert_eq!(claimed[0].id, rows[0].0);
    assert_eq!(claimed[0].alert_id, alert);
    assert_eq!(claimed[0].payload, "{\"x\":1}");
    assert_eq!(claimed[0].attempt, 1);
    let rest = store.claim_due(&known, 1000, 5000, 10).await.unwrap();
    assert_eq!(rest.len(), 1, "webhook:d; command:c is not known: {rest:?}");
    assert_eq!((rest[0].sink.as_str(), rest[0].attempt), ("webhook:d", 2));
    assert!(
        store
            .claim_due(&known, 4999, 6000, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    store.mark_delivered(claimed[0].id, 1100).await.unwrap();
    let long = "é".repeat(MAX_ERROR_LEN);
    store
        .schedule_retry(claimed[1].id, 2000, &long)
        .await
        .unwrap();
    // A retry scheduled for a delivered row changes nothing.
    store
        .schedule_retry(claimed[0].id, 2000, "late")
        .await
        .unwrap();
    assert_eq!(store.next_due(&known).await.unwrap(), Some(2000));
    let retried = store.claim_due(&known, 2000, 7000, 10).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!((retried[0].id, retried[0].attempt), (claimed[1].id, 2));
    let queued = store.pending().await.unwrap();
    let sinks_left: Vec<_> = queued.iter().map(|q| q.sink.as_str()).collect();
    assert_eq!(
        sinks_left,
        ["syslog:b", "command:c", "webhook:d"],
        "oldest first"
    );
    let b = &queued[0];
    assert_eq!(b.attempts, 2);
    assert_eq!(b.next_attempt_ms, 7000);
    let error = b.last_error.as_deref().unwrap();
    assert!(
        error.len() <= MAX_ERROR_LEN && error.len() >= MAX_ERROR_LEN - 1,
        "{}",
        error.len()
    );
    assert!(b.created_ms > 0);
    assert_eq!(queued[1].attempts, 0);
    assert_eq!(store.next_due(&[]).await.unwrap(), None);
}

pub async fn outbox_prunes_forgets_and_knows_unknown_sinks(store: &Store) {
    let (a1, a2) = (Uuid::now_v7(), Uuid::now_v7());
    let first = store
        .enqueue(a1, "{}", &["webhook:old", "syslog:b"], 0, 0)
        .await
        .unwrap();
    store
        .enqueue(a2, "{}", &["webhook:old", "command:gone"], 0, 0)
        .await
        .unwrap();
    let known = vec!["syslog:b".to_owned()];
    assert_eq!(
        store.unknown_sinks(&known).await.unwrap(),
        [
            ("webhook:old".to_owned(), 2),
            ("command:gone".to_owned(), 1)
        ]
    );
    assert_eq!(
        store.unknown_sinks(&[]).await.unwrap().len(),
        3,
        "none known"
    );
    store.mark_delivered(first[1].0, 500).await.unwrap();
    store.mark_delivered(first[0].0, 1500).await.unwrap();
    assert_eq!(store.prune_delivered(1000).await.unwrap(), 1);
    assert_eq!(store.prune_delivered(1000).await.unwrap(), 0);
    assert_eq!(
        store.unknown_sinks(&known).await.unwrap(),
        [
            ("webhook:old".to_owned(), 1),
            ("command:gone".to_owned(), 1)
        ]
    );
    assert_eq!(
        store.forget_sink("webhook:old").await.unwrap(),
        1,
        "the delivered row stays"
    );
    assert_eq!(store.forget_sink("webhook:old").await.unwrap(), 0);
    assert_eq!(store.prune_delivered(2000).await.unwrap(), 1);
    let left = store.pending().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].alert_id, left[0].sink.as_str()),
        (a2, "command:gone")
    );
}

/// Grants by state and the outbox backlog, as the metrics sample them: counts that follow
/// every insert, change and delivery, with nothing for a state that has no grant.
pub async fn grants_and_the_outbox_backlog_are_counted(store: &Store) {
    assert!(store.count_by_state().await.unwrap().is_empty());
    assert_eq!(store.backlog().await.unwrap(), 0);
    let active = NewGrant {
        state: GrantState::Active,
        activated_at: Some(100),
        expires_at: Some(200),
        ..pending("bob")
    };
    let inserted = store
        .transact(&fixed(
            vec![
                Write::Insert(pending("alice")),
                Write::Insert(pending("carol")),
                Write::Insert(active),
            ],
            true,
        ))
        .await
        .unwrap();
    let counts = |mut c: Vec<(GrantState, u64)>| {
        c.sort_by_key(|(s, _)| s.as_str());
        c
    };
    assert_eq!(
        counts(store.count_by_state().await.unwrap()),
        [(GrantState::Active, 1), (GrantState::Pending, 2)]
    );
    let deny = Write::Change(Change {
        grant_id: inserted[0].grant.id,
        expected: GrantState::Pending,
        kind: ChangeKind::End {
            state: GrantState::Denied,
            by: "bob".into(),
            reason: None,
            at: 110,
        },
    });
    store.transact(&fixed(vec![deny], true)).await.unwrap();
    // A transaction rolled back counts nothing.
    let rolled_back = fixed(vec![Write::Insert(pending("dave"))], false);
    assert!(store.transact(&rolled_back).await.is_err());
    assert_eq!(
        counts(store.count_by_state().await.unwrap()),
        [
            (GrantState::Active, 1),
            (GrantState::Denied, 1),
            (GrantState::Pending, 1)
        ]
    );

    let rows = store
        .enqueue(Uuid::now_v7(), "{}", &["syslog:a", "webhook:b"], 0, 0)
        .await
        .unwrap();
    store
        .enqueue(Uuid::now_v7(), "{}", &["command:gone"], 0, 0)
        .await
        .unwrap();
    assert_eq!(
        store.backlog().await.unwrap(),
        3,
        "every sink, known or not"
    );
    store.mark_delivered(rows[0].0, 500).await.unwrap();
    assert_eq!(store.backlog().await.unwrap(), 2);
    store.forget_sink("command:gone").await.unwrap();
    assert_eq!(store.backlog().await.unwrap(), 1);
}

pub async fn nodes_heartbeat_stop_and_are_marked_gone_once(store: &Store) {
    let beat = |name: &str| Heartbeat {
        name: name.into(),
        version: "0.1.0".into(),
        listen: "127.0.0.1:2222".into(),
        started_at: 10,
    };
    store.heartbeat(&beat("n2"), 100).await.unwrap();
    store.heartbeat(&beat("n1"), 100).await.unwrap();
    store.heartbeat(&beat("n3"), 100).await.unwrap();
    store
        .started(&session("s1", "n1", "alice", false, 100))
        .await
        .unwrap();
    store
        .heartbeat(
            &Heartbeat {
                version: "0.2.0".into(),
                started_at: 20,
                ..beat("n1")
            },
            130,
        )
        .await
        .unwrap();
    store.node_stopped("n3", 105).await.unwrap();
    let nodes = store.nodes().await.unwrap();
    let names: Vec<_> = nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["n1", "n2", "n3"]);
    assert_eq!(
        (
            nodes[0].version.as_str(),
            nodes[0].started_at,
            nodes[0].last_seen
        ),
        ("0.2.0", 20, 130)
    );
    assert_eq!(nodes[0].live_sessions, 1);
    assert_eq!(nodes[1].live_sessions, 0);
    assert_eq!(nodes[2].state, NodeState::Stopped);
    assert_eq!(nodes[2].last_seen, 105);
    assert_eq!(
        store.mark_gone(120).await.unwrap(),
        ["n2"],
        "silent since 100; n3 stopped"
    );
    assert!(
        store.mark_gone(120).await.unwrap().is_empty(),
        "declared gone once"
    );
    let nodes = store.nodes().await.unwrap();
    assert_eq!(nodes[1].state, NodeState::Gone);
    assert_eq!(nodes[0].state, NodeState::Up);
    // A gone node that heartbeats again is up.
    store.heartbeat(&beat("n2"), 140).await.unwrap();
    assert_eq!(store.nodes().await.unwrap()[1].state, NodeState::Up);
}
