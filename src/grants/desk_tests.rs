//! The desk against a real SQLite store and audit log: decisions at the same moment, the
//! break-glass limit under a burst, and changes refused when their audit line cannot be written.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::audit::{AuditLog, AuditWriter};
use crate::events::AuditRecorder;
use crate::grants::store::GrantFilter;
use crate::store::SqliteStore;

const TTL: Duration = Duration::from_secs(3600);

struct Fixture {
    _dir: tempfile::TempDir,
    audit: std::path::PathBuf,
    store: Arc<SqliteStore>,
    events: Arc<Events>,
    policy: Arc<Policy>,
}

/// A store and an audit log written through the server's batching writer.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("g.db")).await.unwrap());
    let audit = dir.path().join("audit.jsonl");
    let (writer, _thread) = AuditWriter::start(AuditLog::open(&audit).unwrap());
    let events = Arc::new(Events::new(Some(AuditRecorder::Queued(writer)), None));
    Fixture {
        _dir: dir,
        audit,
        store,
        events,
        policy: Arc::new(crate::testing::sample_policy()),
    }
}

fn desk(f: &Fixture) -> GrantDesk<'_> {
    GrantDesk {
        store: f.store.as_ref(),
        events: &f.events,
        watch: None,
        request_ttl: TTL,
    }
}

fn user(p: &Policy, name: &str) -> Actor {
    Actor::User(p.user(name).unwrap().clone())
}

async fn request(f: &Fixture, role: &str, target: &str) -> Grant {
    let input = RequestInput {
        user: f.policy.user("alice").unwrap(),
        role,
        target,
        duration: Duration::from_secs(600),
        reason: "INC-1 disk full",
    };
    desk(f)
        .request(&f.policy, &input, crate::grants::now())
        .await
        .unwrap()
}

fn audit_lines(path: &Path, event: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .matches(&format!("\"event\":\"{event}\""))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_approvals_at_once_always_activate_a_two_approval_grant() {
    let f = Arc::new(fixture().await);
    let mut ids = Vec::new();
    for _ in 0..25 {
        ids.push(request(&f, "db-ops", "db-01").await.id);
    }
    let mut tasks = Vec::new();
    for &id in &ids {
        for who in ["bob", "carol"] {
            let f = f.clone();
            tasks.push(tokio::spawn(async move {
                let actor = user(&f.policy, who);
                desk(&f)
                    .decide(&f.policy, &actor, id, &Decision::Approve(None))
                    .await
            }));
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for id in ids {
        let g = f.store.get(id).await.unwrap().unwrap();
        assert_eq!(g.state, GrantState::Active, "grant {id}: {g:?}");
        let mut who: Vec<_> = g.approvals.iter().map(|a| a.approver.as_str()).collect();
        who.sort_unstable();
        assert_eq!(who, ["bob", "carol"]);
    }
    f.events.flush();
    assert_eq!(audit_lines(&f.audit, "grant.approved"), 50);
    assert_eq!(audit_lines(&f.audit, "grant.activated"), 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_break_glass_gets_exactly_the_limit() {
    let f = Arc::new(fixture().await);
    let now = crate::grants::now();
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let f = f.clone();
            tokio::spawn(async move {
                desk(&f)
                    .break_glass(&BreakGlass {
                        user: "carol",
                        role: "emergency",
                        target: "db-01",
                        reason: "primary is down, INC-9",
                        duration: Duration::from_secs(600),
                        max_uses: 3,
                        window: Duration::from_secs(3600),
                        now,
                    })
                    .await
            })
        })
        .collect();
    let mut granted = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok((grant, event)) => {
                assert_eq!(
                    event.grant_id,
                    Some(grant.id),
                    "the event names its own grant"
                );
                granted.push(grant.id);
            }
            Err(GrantError::Denied(m)) => assert!(m.contains("limit reached: 3 use(s)"), "{m}"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(granted.len(), 3, "{granted:?}");
    let all = f.store.list(&GrantFilter::default()).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(audit_lines(&f.audit, "breakglass.activated"), 3);
}

#[tokio::test]
async fn a_change_whose_audit_line_cannot_be_written_is_rolled_back() {
    let f = fixture().await;
    let g = request(&f, "web-ops", "web-01").await;
    let bob = user(&f.policy, "bob");
    desk(&f)
        .decide(&f.policy, &bob, g.id, &Decision::Approve(None))
        .await
        .unwrap();
    let revision = f.store.revision().await.unwrap();
    // A line appended outside Gatehouse: the log refuses to write after it.
    let mut text = std::fs::read(&f.audit).unwrap();
    text.extend_from_slice(b"{\"forged\":true}\n");
    std::fs::write(&f.audit, text).unwrap();
    let refused = desk(&f)
        .decide(
            &f.policy,
            &bob,
            g.id,
            &Decision::Revoke(Some("done".into())),
        )
        .await;
    assert!(
        matches!(&refused, Err(GrantError::Audit(m)) if m.contains("audit log")),
        "{refused:?}"
    );
    let after = f.store.get(g.id).await.unwrap().unwrap();
    assert_eq!(
        after.state,
        GrantState::Active,
        "the revoke was not applied"
    );
    assert_eq!(
        f.store.revision().await.unwrap(),
        revision,
        "nothing was written"
    );
    assert_eq!(audit_lines(&f.audit, "grant.revoked"), 0);
    // The store is usable at once for the next decision.
    assert!(f.store.get(g.id).await.unwrap().is_some());
}

#[tokio::test]
async fn the_sweep_ends_due_grants_once_and_audits_each() {
    let f = fixture().await;
    let g = request(&f, "self", "web-01").await;
    assert_eq!(g.state, GrantState::Active);
    let later = g.expires_at.unwrap() + 1;
    let ended = desk(&f).sweep(later).await.unwrap();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].state, GrantState::Expired);
    assert_eq!(ended[0].ended_by.as_deref(), Some("gatehouse"));
    assert!(desk(&f).sweep(later).await.unwrap().is_empty());
    let pending = request(&f, "web-ops", "web-01").await;
    let ended = desk(&f)
        .sweep(pending.requested_at + TTL.as_secs() as i64)
        .await
        .unwrap();
    assert_eq!(ended[0].state, GrantState::Lapsed);
    f.events.flush();
    assert_eq!(audit_lines(&f.audit, "grant.expired"), 1);
    assert_eq!(audit_lines(&f.audit, "grant.lapsed"), 1);
}

#[tokio::test]
async fn policy_revocation_is_recorded_as_policy() {
    let f = fixture().await;
    let g = request(&f, "self", "web-01").await;
    let ended = desk(&f)
        .end(
            &f.policy,
            &Actor::System("policy"),
            g.id,
            "role removed from the policy",
        )
        .await
        .unwrap();
    assert_eq!(ended.state, GrantState::Revoked);
    assert_eq!(ended.ended_by.as_deref(), Some("policy"));
}
