//! What every store backend must do with grants, each scenario a function of an open
//! [`Store`].

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse::grants::store::{Applied, GrantFilter, Reads, Snapshot, Transition, Write};
use gatehouse::grants::{Change, ChangeKind, GrantError, GrantState, NewGrant};
use gatehouse::store::Store;

/// A transition with fixed writes and a seal that succeeds or not; it keeps what it saw.
pub struct Fixed {
    pub reads: Reads,
    pub writes: Vec<Write>,
    pub seal_ok: bool,
    pub seen: Mutex<Option<Snapshot>>,
}

#[async_trait]
impl Transition for Fixed {
    fn reads(&self) -> Reads {
        self.reads.clone()
    }
    fn decide(&self, seen: &Snapshot) -> Result<Vec<Write>, GrantError> {
        *self.seen.lock().unwrap() = Some(seen.clone());
        Ok(self.writes.clone())
    }
    async fn seal(&self, _: &[Applied]) -> Result<(), GrantError> {
        if self.seal_ok {
            Ok(())
        } else {
            Err(GrantError::Audit("the audit log is full".into()))
        }
    }
}

pub fn fixed(writes: Vec<Write>, seal_ok: bool) -> Fixed {
    Fixed {
        reads: Reads::default(),
        writes,
        seal_ok,
        seen: Mutex::new(None),
    }
}

pub fn pending(user: &str) -> NewGrant {
    NewGrant {
        user: user.into(),
        role: "web-ops".into(),
        target: "web-01".into(),
        reason: "INC-1".into(),
        duration: Duration::from_secs(60),
        state: GrantState::Pending,
        break_glass: false,
        requested_at: 100,
        activated_at: None,
        expires_at: None,
    }
}

fn approve(id: i64, who: &str, activates: bool) -> Write {
    Write::Change(Change {
        grant_id: id,
        expected: GrantState::Pending,
        kind: ChangeKind::Approve {
            approver: who.into(),
            comment: Some(format!("ok from {who}")),
            at: 110,
            activates: activates.then_some((110, 170)),
        },
    })
}

fn revoke(id: i64) -> Write {
    Write::Change(Change {
        grant_id: id,
        expected: GrantState::Active,
        kind: ChangeKind::End {
            state: GrantState::Revoked,
            by: "bob".into(),
            reason: Some("done".into()),
            at: 120,
        },
    })
}

/// Inserts `g` and returns its id.
async fn insert(store: &Store, g: NewGrant) -> i64 {
    store
        .transact(&fixed(vec![Write::Insert(g)], true))
        .await
        .unwrap()[0]
        .grant
        .id
}

pub async fn grants_are_compare_and_set_and_reads_see_the_transaction(store: &Store) {
    let id = insert(store, pending("alice")).await;
    let first = store
        .transact(&fixed(vec![approve(id, "bob", false)], true))
        .await
        .unwrap();
    assert_eq!(first[0].grant.state, GrantState::Pending);
    let twice = store
        .transact(&fixed(vec![approve(id, "bob", true)], true))
        .await;
    assert!(
        matches!(&twice, Err(GrantError::Conflict(m)) if m.contains("already approved")),
        "{twice:?}"
    );
    let done = store
        .transact(&fixed(vec![approve(id, "carol", true)], true))
        .await
        .unwrap();
    assert_eq!(done[0].grant.state, GrantState::Active);
    assert_eq!(done[0].grant.expires_at, Some(170));
    let who: Vec<_> = done[0]
        .grant
        .approvals
        .iter()
        .map(|a| &a.approver)
        .collect();
    assert_eq!(who, ["bob", "carol"]);
    let late = store
        .transact(&fixed(vec![approve(id, "dave", true)], true))
        .await;
    assert!(
        matches!(&late, Err(GrantError::Conflict(m)) if m.contains("not pending")),
        "{late:?}"
    );
    let missing = store
        .transact(&fixed(vec![approve(id + 100, "bob", true)], true))
        .await;
    assert!(matches!(missing, Err(GrantError::Usage(_))), "{missing:?}");

    let mut bg = pending("carol");
    bg.break_glass = true;
    bg.state = GrantState::Active;
    bg.expires_at = Some(200);
    let both = store
        .transact(&fixed(
            vec![Write::Insert(bg.clone()), Write::Insert(bg)],
            true,
        ))
        .await
        .unwrap();
    assert_eq!(both.len(), 2);
    assert!(both.iter().all(|a| a.grant.break_glass));
    let look = Fixed {
        reads: Reads {
            grant: Some(id),
            break_glass_uses: Some(("carol".into(), 100)),
            due: Some((1000, 3600)),
        },
        ..fixed(vec![], true)
    };
    let rev = store.revision().await.unwrap();
    assert!(store.transact(&look).await.unwrap().is_empty());
    assert_eq!(store.revision().await.unwrap(), rev, "nothing to write");
    let seen = look.seen.lock().unwrap().take().unwrap();
    assert_eq!(seen.grant.unwrap().approvals.len(), 2);
    assert_eq!(seen.break_glass_uses, 2);
    let due: Vec<i64> = seen.due.iter().map(|g| g.id).collect();
    assert_eq!(due.len(), 3, "all three ended by t=1000: {due:?}");
    assert!(due.windows(2).all(|w| w[0] < w[1]), "by id: {due:?}");
    assert_eq!(seen.due[0].approvals.len(), 2, "due grants carry approvals");
    assert!(store.any_due(1000, 3600).await.unwrap());
    assert!(!store.any_due(50, 3600).await.unwrap());
    // A pending grant lapses once it is older than the TTL.
    let lapsing = insert(store, pending("eve")).await;
    let look = Fixed {
        reads: Reads {
            due: Some((160, 60)),
            ..Reads::default()
        },
        ..fixed(vec![], true)
    };
    store.transact(&look).await.unwrap();
    let due: Vec<i64> = look
        .seen
        .lock()
        .unwrap()
        .take()
        .unwrap()
        .due
        .iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(due, [lapsing]);
}

pub async fn a_failed_seal_rolls_back_and_the_store_stays_usable(store: &Store) {
    let id = insert(store, pending("alice")).await;
    let rev = store.revision().await.unwrap();
    let refused = store
        .transact(&fixed(vec![approve(id, "bob", true)], false))
        .await;
    assert!(matches!(refused, Err(GrantError::Audit(_))), "{refused:?}");
    let g = store.get(id).await.unwrap().unwrap();
    assert_eq!(g.state, GrantState::Pending);
    assert!(g.approvals.is_empty());
    assert_eq!(store.revision().await.unwrap(), rev);
    assert!(store.changed_since(rev).await.unwrap().is_empty());
    // An insert rolled back leaves nothing either.
    let refused = store
        .transact(&fixed(vec![Write::Insert(pending("mallory"))], false))
        .await;
    assert!(refused.is_err());
    let mallory = GrantFilter {
        user: Some("mallory".into()),
        ..Default::default()
    };
    assert!(store.list(&mallory).await.unwrap().is_empty());
    // The store takes the next transaction at once.
    let done = store
        .transact(&fixed(vec![approve(id, "bob", true)], true))
        .await
        .unwrap();
    assert_eq!(done[0].grant.state, GrantState::Active);
    assert_eq!(done[0].grant.approvals.len(), 1);
    let changed = store.changed_since(rev).await.unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].state, GrantState::Active);
}

pub async fn changed_since_finds_what_changed_after_a_revision(store: &Store) {
    assert_eq!(store.revision().await.unwrap(), 0, "a fresh store");
    let a = insert(store, pending("alice")).await;
    let b = insert(store, pending("bob")).await;
    assert_eq!(
        store.revision().await.unwrap(),
        2,
        "one bump per transaction"
    );
    store
        .transact(&fixed(vec![approve(a, "carol", true)], true))
        .await
        .unwrap();
    let r3 = store.revision().await.unwrap();
    assert_eq!(r3, 3);
    store.transact(&fixed(vec![revoke(a)], true)).await.unwrap();
    let all = store.changed_since(0).await.unwrap();
    let mut ids: Vec<i64> = all.iter().map(|s| s.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [a, b]);
    let since = store.changed_since(r3).await.unwrap();
    assert_eq!(since.len(), 1);
    assert_eq!(since[0].id, a);
    assert_eq!(since[0].state, GrantState::Revoked);
    assert_eq!(since[0].ended_by.as_deref(), Some("bob"));
    assert_eq!(since[0].end_reason.as_deref(), Some("done"));
    assert_eq!(since[0].expires_at, Some(170));
    assert!(store.changed_since(4).await.unwrap().is_empty());
}

pub async fn grants_are_listed_by_user_state_and_limit(store: &Store) {
    let a1 = insert(store, pending("alice")).await;
    let a2 = insert(store, pending("alice")).await;
    let b1 = insert(store, pending("bob")).await;
    store
        .transact(&fixed(vec![approve(a2, "carol", true)], true))
        .await
        .unwrap();
    let all = store.list(&GrantFilter::default()).await.unwrap();
    assert_eq!(all.iter().map(|g| g.id).collect::<Vec<_>>(), [b1, a2, a1]);
    assert_eq!(
        all[1].approvals[0].comment.as_deref(),
        Some("ok from carol")
    );
    let alice = store
        .list(&GrantFilter {
            user: Some("alice".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(alice.iter().map(|g| g.id).collect::<Vec<_>>(), [a2, a1]);
    let pending_only = store
        .list(&GrantFilter {
            states: vec![GrantState::Pending],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        pending_only.iter().map(|g| g.id).collect::<Vec<_>>(),
        [b1, a1]
    );
    let either = store
        .list(&GrantFilter {
            user: Some("alice".into()),
            states: vec![GrantState::Active, GrantState::Revoked],
            limit: Some(5),
        })
        .await
        .unwrap();
    assert_eq!(either.iter().map(|g| g.id).collect::<Vec<_>>(), [a2]);
    let one = store
        .list(&GrantFilter {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    let live = store.live_for_user("alice", 150).await.unwrap();
    assert_eq!(live.iter().map(|g| g.id).collect::<Vec<_>>(), [a2]);
    assert!(
        store.live_for_user("alice", 170).await.unwrap().is_empty(),
        "ended at 170"
    );
    assert!(store.live_for_user("bob", 150).await.unwrap().is_empty());
    let got = store.get(a2).await.unwrap().unwrap();
    assert_eq!(
        (got.user.as_str(), got.duration),
        ("alice", Duration::from_secs(60))
    );
    assert!(store.get(a2 + 100).await.unwrap().is_none());
}
