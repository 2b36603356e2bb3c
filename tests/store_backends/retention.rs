//! What every store backend must do with legal holds and with forgetting sessions past their
//! keep: only ended, unheld sessions of the node, each once, with everything derived from
//! them; a failed seal changes nothing; a hold and a deletion racing for one session never
//! both win.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use gatehouse::store::Store;
use gatehouse::store::retention::{Expiry, ForgetError, Hold, HoldError, Seal, SealError};
use gatehouse::store::sessions::{Review, ReviewSeal, SessionEnd, SessionRecord};
use gatehouse::store::transfers::FileOp;

use crate::records::session;

/// Counts the seals it was asked for, and fails them when told to.
#[derive(Default)]
struct Counting {
    fail: bool,
    sealed: AtomicUsize,
}

#[async_trait]
impl Seal for Counting {
    async fn seal(&self, _session: &SessionRecord) -> Result<(), SealError> {
        if self.fail {
            return Err(SealError("the audit log is full".into()));
        }
        self.sealed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct Accept;

#[async_trait]
impl ReviewSeal for Accept {
    async fn seal(&self) -> Result<(), gatehouse::events::AuditUnwritable> {
        Ok(())
    }
}

/// A session of `node` that started at `started` and ended at `ended` (if it did).
async fn indexed(store: &Store, id: &str, node: &str, started: i64, ended: Option<i64>) {
    let mut s = session(id, node, "alice", true, started);
    s.recording = Some(format!("/srv/recordings/{id}.cast"));
    store.started(&s).await.unwrap();
    if let Some(at) = ended {
        let end = SessionEnd {
            ended_at: at,
            sha256: Some("ab".into()),
            ..SessionEnd::default()
        };
        store.ended(id, &end).await.unwrap();
    }
}

fn hold(id: &str) -> Hold {
    Hold {
        session_id: id.into(),
        held_by: "carol".into(),
        reason: "case 4711, litigation".into(),
        held_at: 50,
    }
}

pub async fn only_ended_unheld_sessions_of_the_node_are_forgotten_once(store: &Store) {
    indexed(store, "old", "n1", 100, Some(110)).await;
    indexed(store, "held", "n1", 100, Some(110)).await;
    indexed(store, "running", "n1", 100, None).await;
    indexed(store, "recent", "n1", 100, Some(1_000)).await;
    indexed(store, "elsewhere", "n2", 100, Some(110)).await;
    indexed(store, "unnamed", "", 100, Some(120)).await;
    store
        .file_op(&FileOp {
            session_id: "old".into(),
            seq: 1,
            at_ms: 105_000,
            op: "read".into(),
            path: "/var/log/x".into(),
            to_path: None,
            bytes: Some(3),
            result: "ok".into(),
            sha256: None,
        })
        .await
        .unwrap();
    let review = Review {
        reviewer: "bob".into(),
        note: "fine".into(),
        at: 200,
    };
    store.acknowledge("old", &review, &Accept).await.unwrap();
    let seal = Counting::default();
    store.hold(&hold("held"), &seal).await.unwrap();
    assert_eq!(store.hold_of("held").await.unwrap(), Some(hold("held")));

    let expiry = Expiry {
        node: "n1".into(),
        ended_before: 500,
    };
    let due: Vec<String> = store
        .expired(&expiry, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        due,
        ["old", "unnamed"],
        "oldest end first; not held, running, recent or n2's"
    );

    // A failed seal leaves everything in place.
    let failing = Counting {
        fail: true,
        ..Counting::default()
    };
    let refused = store.forget_session("old", &expiry, &failing).await;
    assert!(
        matches!(refused, Err(ForgetError::Unsealed(_))),
        "{refused:?}"
    );
    assert!(store.session("old").await.unwrap().is_some());
    assert_eq!(store.file_ops("old").await.unwrap().len(), 1);

    let forgotten = store.forget_session("old", &expiry, &seal).await.unwrap();
    assert_eq!(forgotten.map(|s| s.id).as_deref(), Some("old"));
    assert!(store.session("old").await.unwrap().is_none());
    assert!(
        store.file_ops("old").await.unwrap().is_empty(),
        "its transcript goes too"
    );
    assert!(
        store
            .review_queue(false)
            .await
            .unwrap()
            .iter()
            .all(|(s, _)| s.id != "old"),
        "and its review"
    );
    assert!(
        store
            .forget_session("old", &expiry, &seal)
            .await
            .unwrap()
            .is_none(),
        "once"
    );
    for kept in ["held", "running", "recent", "elsewhere"] {
        assert!(
            store
                .forget_session(kept, &expiry, &seal)
                .await
                .unwrap()
                .is_none(),
            "{kept}"
        );
        assert!(store.session(kept).await.unwrap().is_some(), "{kept}");
    }
    // hold + one deletion
    assert_eq!(seal.sealed.load(Ordering::SeqCst), 2);

    // Holds: one at a time, released once, only on sessions that exist.
    let twice = store.hold(&hold("held"), &seal).await;
    assert!(
        matches!(twice, Err(HoldError::AlreadyHeld(_, ref by)) if by == "carol"),
        "{twice:?}"
    );
    let missing = store.hold(&hold("old"), &seal).await;
    assert!(
        matches!(missing, Err(HoldError::NoSession(_))),
        "{missing:?}"
    );
    let unsealed = store.release("held", &failing).await;
    assert!(
        matches!(unsealed, Err(HoldError::Unsealed(_))),
        "{unsealed:?}"
    );
    assert!(
        store.hold_of("held").await.unwrap().is_some(),
        "rolled back"
    );
    assert_eq!(store.release("held", &seal).await.unwrap(), hold("held"));
    let again = store.release("held", &seal).await;
    assert!(matches!(again, Err(HoldError::NotHeld(_))), "{again:?}");
    assert!(store.holds().await.unwrap().is_empty());
    // Released, it is due.
    assert!(
        store
            .forget_session("held", &expiry, &seal)
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn a_hold_and_a_deletion_racing_never_both_win(store: &Store) {
    let expiry = Expiry {
        node: "n1".into(),
        ended_before: 500,
    };
    for round in 0..12 {
        let id = format!("race-{round}");
        indexed(store, &id, "n1", 100, Some(110)).await;
        let seal = Arc::new(Counting::default());
        let (a, b) = (store.clone(), store.clone());
        let (held, forgotten) = tokio::join!(
            {
                let (id, seal) = (id.clone(), seal.clone());
                async move { a.hold(&hold(&id), seal.as_ref()).await }
            },
            {
                let (id, seal, expiry) = (id.clone(), seal.clone(), expiry.clone());
                async move { b.forget_session(&id, &expiry, seal.as_ref()).await }
            }
        );
        let forgotten = forgotten.unwrap();
        match (&held, &forgotten) {
            (Ok(_), None) => assert!(store.session(&id).await.unwrap().is_some()),
            (Err(HoldError::NoSession(_)), Some(_)) => {
                assert!(store.session(&id).await.unwrap().is_none())
            }
            other => panic!("round {round}: {other:?}"),
        }
        assert_eq!(seal.sealed.load(Ordering::SeqCst), 1, "round {round}");
    }
}
