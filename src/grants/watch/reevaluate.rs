//! Re-evaluating what runs against a policy: the one mechanism behind a policy reload, and
//! behind any other change of who may hold a role.
//!
//! Live sessions whose user, role or target the policy no longer has (or whose user is no
//! longer a member of the role, whose role no longer covers the target or no longer gives the
//! session's kind of shell) are closed at once, with the reason on the user's terminal. Then
//! every pending and active grant the policy would no longer give is ended through the grant
//! desk as the `policy` actor (active ones revoked, pending ones denied), each with its audit
//! line, and the sessions on it closed. A command rule that was removed closes nothing: an exec
//! session already running goes on, and the restricted shell checks each line against the
//! rules in force when the line is typed.

use serde::Serialize;

use super::{GrantEnd, GrantWatch};
use crate::access::grant_standing;
use crate::grants::desk::GrantDesk;
use crate::grants::store::{GrantFilter, GrantStore};
use crate::grants::{Actor, Decision, Grant, GrantError, GrantState, now};
use crate::policy::Policy;

/// What a re-evaluation did; goes into the audit line of whatever caused it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reevaluation {
    /// Sessions closed because the policy no longer gives them.
    pub sessions_closed: Vec<ClosedSession>,
    /// Grants ended because the policy no longer gives them.
    pub grants_ended: Vec<EndedGrant>,
    /// What could not be done (the store failed); the sessions were closed regardless.
    pub errors: Vec<String>,
}

/// A session closed by a re-evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct ClosedSession {
    /// The session.
    pub session_id: String,
    /// Its user.
    pub user: String,
    /// Its grant.
    pub grant_id: i64,
    /// Why, as the user read it.
    pub reason: String,
}

/// A grant ended by a re-evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EndedGrant {
    /// The grant.
    pub grant_id: i64,
    /// Its user.
    pub user: String,
    /// `revoked` (it was active) or `denied` (it was pending).
    pub state: String,
    /// Why.
    pub reason: String,
}

/// Closes the live sessions and ends the grants that `policy` no longer gives; the grants are
/// ended by `cause` (`policy` for a reload, `directory` for a directory sync).
pub async fn reevaluate(
    policy: &Policy,
    store: &dyn GrantStore,
    watch: &GrantWatch,
    desk: &GrantDesk<'_>,
    cause: &'static str,
) -> Reevaluation {
    let mut report = Reevaluation::default();
    for session in watch.live_sessions() {
        if let Err(lapse) = session.permit.renewed(policy) {
            let reason = lapse.to_string();
            watch.close_session(
                session.key,
                GrantEnd {
                    message: reason.clone(),
                    class: lapse.end_class(),
                },
            );
            report.sessions_closed.push(ClosedSession {
                session_id: session.session_id,
                user: session.permit.user().name.clone(),
                grant_id: session.permit.grant_id(),
                reason,
            });
        }
    }
    let filter = GrantFilter {
        user: None,
        states: vec![GrantState::Pending, GrantState::Active],
        limit: Some(u32::MAX),
    };
    let grants = match store.list(&filter).await {
        Ok(grants) => grants,
        Err(e) => {
            report
                .errors
                .push(format!("the grants could not be listed: {e}"));
            return report;
        }
    };
    for grant in grants {
        end_if_not_given(policy, store, desk, grant, cause, &mut report).await;
    }
    report
}

/// Ends `grant` through the desk if `policy` would not give it. A grant that moved meanwhile
/// (a pending one approved, say) is read again and decided again, a few times at most.
async fn end_if_not_given(
    policy: &Policy,
    store: &dyn GrantStore,
    desk: &GrantDesk<'_>,
    mut grant: Grant,
    cause: &'static str,
    report: &mut Reevaluation,
) {
    for _ in 0..3 {
        let Err(lapse) = grant_standing(policy, &grant) else {
            return;
        };
        let reason = lapse.to_string();
        let decision = match grant.state {
            GrantState::Pending => Decision::Deny(reason.clone()),
            _ => Decision::Revoke(Some(reason.clone())),
        };
        match desk
            .decide(policy, &Actor::System(cause), grant.id, &decision)
            .await
        {
            Ok(ended) => {
                report.grants_ended.push(EndedGrant {
                    grant_id: ended.id,
                    user: ended.user,
                    state: ended.state.to_string(),
                    reason,
                });
                return;
            }
            Err(GrantError::Conflict(_)) => match store.get(grant.id).await {
                Ok(Some(moved)) if !moved.state_at(now(), desk.request_ttl).is_final() => {
                    grant = moved;
                }
                // It ended meanwhile (expired, or someone else ended it): nothing left to do.
                Ok(_) => return,
                Err(e) => {
                    report.errors.push(format!("grant {}: {e}", grant.id));
                    return;
                }
            },
            Err(e) => {
                report.errors.push(format!("grant {}: {e}", grant.id));
                return;
            }
        }
    }
    report.errors.push(format!(
        "grant {} kept changing; it was not ended",
        grant.id
    ));
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::access::{Action, SessionRequest, decide};
    use crate::events::Events;
    use crate::grants::RequestInput;
    use crate::grants::watch::{GrantLifetime, LifetimeEvent};
    use crate::policy::load_sources;
    use crate::store::SqliteStore;
    use crate::testing::test_key;

    fn policy(alice_in_policy: bool) -> Policy {
        let alice = if alice_in_policy {
            format!(
                "[[user]]\nname = \"alice\"\nkeys = [\"{}\"]\ngroups = [\"sre\"]\n",
                test_key(1)
            )
        } else {
            String::new()
        };
        let text = format!(
            "{alice}[[user]]\nname = \"bob\"\nkeys = [\"{}\"]\ngroups = [\"sre\"]\n\
             [[target]]\nname = \"web-01\"\naddress = \"127.0.0.1\"\nhost_keys = [\"{}\"]\n\
             [[role]]\nname = \"web-ops\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"ops\"\napprovals = 0\nshell = \"full\"\n\
             [[role]]\nname = \"web-review\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\nlogin = \"ops\"\napprovals = 1\napprovers = [\"sre\"]\nshell = \"full\"\n",
            test_key(2),
            test_key(3)
        );
        load_sources(&[(Path::new("p.toml"), &text)]).unwrap()
    }

    #[tokio::test]
    async fn a_user_removed_from_the_policy_loses_sessions_and_grants_others_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("g.db")).await.unwrap();
        let t = now();
        let before = policy(true);
        let watch = GrantWatch::default();
        let events = Events::default();
        let desk = GrantDesk {
            store: &store,
            events: &events,
            watch: Some(&watch),
            request_ttl: Duration::from_secs(86400),
        };
        let request = |user: &str, role: &'static str| {
            let user = before.user(user).unwrap().clone();
            let (desk, before) = (&desk, &before);
            async move {
                let input = RequestInput {
                    user: &user,
                    role,
                    target: "web-01",
                    duration: Duration::from_secs(3600),
                    reason: "INC-1",
                };
                desk.request(before, &input, t).await.unwrap().id
            }
        };
        let alice_active = request("alice", "web-ops").await;
        let alice_pending = request("alice", "web-review").await;
        let bob_active = request("bob", "web-ops").await;
        let mut lifetimes = Vec::new();
        for (user, id) in [("alice", alice_active), ("bob", bob_active)] {
            let grant = store.get(id).await.unwrap().unwrap();
            let request = SessionRequest {
                target: "web-01".into(),
                role: None,
                action: Action::Exec(b"uptime".to_vec()),
            };
            let permit =
                decide(&before, before.user(user).unwrap(), &[grant], &request, t).unwrap();
            lifetimes.push(GrantLifetime::new(
                &watch,
                &permit,
                &format!("s-{user}"),
                false,
                t,
            ));
        }
        let unchanged = reevaluate(&before, &store, &watch, &desk, "policy").await;
        assert!(unchanged.sessions_closed.is_empty() && unchanged.grants_ended.is_empty());

        let after = policy(false);
        let report = reevaluate(&after, &store, &watch, &desk, "policy").await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let closed: Vec<_> = report
            .sessions_closed
            .iter()
            .map(|s| s.session_id.as_str())
            .collect();
        assert_eq!(closed, ["s-alice"]);
        let mut ended: Vec<_> = report
            .grants_ended
            .iter()
            .map(|g| (g.grant_id, g.state.as_str()))
            .collect();
        ended.sort();
        assert_eq!(
            ended,
            [(alice_active, "revoked"), (alice_pending, "denied")]
        );
        let revoked = store.get(alice_active).await.unwrap().unwrap();
        assert_eq!(revoked.ended_by.as_deref(), Some("policy"));
        assert_eq!(
            revoked.end_reason.as_deref(),
            Some("user alice is no longer in the policy")
        );
        assert_eq!(
            store.get(bob_active).await.unwrap().unwrap().state,
            GrantState::Active
        );
        let mut bob = lifetimes.pop().unwrap();
        let mut alice = lifetimes.pop().unwrap();
        assert_eq!(
            alice.next().await,
            LifetimeEvent::End(GrantEnd {
                message: "user alice is no longer in the policy".into(),
                class: crate::outcome::EndClass::Policy,
            })
        );
        let quiet = tokio::time::timeout(Duration::from_millis(50), bob.next()).await;
        assert!(quiet.is_err(), "bob's session goes on");
        // Re-evaluating again finds nothing new, and a dropped session is forgotten.
        drop(alice);
        assert_eq!(watch.live_sessions().len(), 1);
        let again = reevaluate(&after, &store, &watch, &desk, "policy").await;
        assert!(again.sessions_closed.is_empty() && again.grants_ended.is_empty());
    }
}
