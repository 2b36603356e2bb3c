//! The desk: the one path by which any grant changes, for the SSH verbs, the operator CLI,
//! break-glass, the expiry sweep and policy-driven revocation alike.
//!
//! Each change is one [`GrantStore::transact`]: the store re-reads what the decision depends on
//! (the grant and its approvals, the user's break-glass uses in the window, the grants due for
//! the sweep) under the write lock, the pure rules of [`super::lifecycle`] decide from that,
//! the change is applied, its audit lines are written and synced, and only then is it
//! committed. So two approvals at once both count and the second activates the grant; `N`
//! break-glass logins at once with `max_uses = 3` get exactly three grants; and a change whose
//! audit line cannot be written is rolled back and reported as an error, never as done.
//! After the commit the desk queues the alerts and ends the live sessions of a grant that
//! ended.

use std::time::Duration;

use async_trait::async_trait;

use super::store::{Applied, GrantStore, Reads, Snapshot, Transition, Write};
use super::watch::{GrantEnd, GrantWatch};
use super::{
    Actor, Change, ChangeKind, Decision, Grant, GrantError, GrantState, NewGrant, RequestInput,
    Timestamp, decide_on, new_request,
};
use crate::events::{Event, EventKind, Events};
use crate::policy::Policy;

/// What deciding on a grant needs.
pub struct GrantDesk<'a> {
    /// The store.
    pub store: &'a dyn GrantStore,
    /// Where the transitions are reported.
    pub events: &'a Events,
    /// Live sessions in this process, ended at once when their grant ends.
    pub watch: Option<&'a GrantWatch>,
    /// How long requests stay pending.
    pub request_ttl: Duration,
}

/// A break-glass use to be granted if the user is under the rate limit.
#[derive(Debug, Clone)]
pub struct BreakGlass<'a> {
    /// The person.
    pub user: &'a str,
    /// The emergency role (already checked to cover the target and have them as a member).
    pub role: &'a str,
    /// The target.
    pub target: &'a str,
    /// Why (already checked).
    pub reason: &'a str,
    /// How long: the role's `max_duration`.
    pub duration: Duration,
    /// At most this many uses…
    pub max_uses: u32,
    /// …in this window.
    pub window: Duration,
    /// Now.
    pub now: Timestamp,
}

impl GrantDesk<'_> {
    /// Files a request (active at once for self-service roles) for `input.user`.
    pub async fn request(
        &self,
        policy: &Policy,
        input: &RequestInput<'_>,
        now: Timestamp,
    ) -> Result<Grant, GrantError> {
        // Everything a request depends on is in the policy, not the store.
        let new = new_request(policy, input, now)?;
        let step = Step {
            desk: self,
            reads: Reads::default(),
            actor: None,
            decide: move |_: &Snapshot| Ok(vec![Write::Insert(new.clone())]),
        };
        self.run(&step, true)
            .await?
            .pop()
            .map(|a| a.grant)
            .ok_or_else(nothing)
    }

    /// Decides on grant `id` as `actor`, from the grant as it stands inside the transaction.
    pub async fn decide(
        &self,
        policy: &Policy,
        actor: &Actor,
        id: i64,
        decision: &Decision,
    ) -> Result<Grant, GrantError> {
        let ttl = self.request_ttl;
        let step = Step {
            desk: self,
            reads: Reads {
                grant: Some(id),
                ..Reads::default()
            },
            actor: Some(actor),
            decide: move |seen: &Snapshot| {
                let grant = seen
                    .grant
                    .as_ref()
                    .ok_or_else(|| GrantError::Usage(format!("there is no grant {id}")))?;
                let change = decide_on(policy, grant, actor, decision, super::now(), ttl)?;
                Ok(vec![Write::Change(change)])
            },
        };
        let applied = match self.run(&step, true).await {
            Err(GrantError::Denied(why)) => {
                self.refused(actor, id, decision, &why).await;
                return Err(GrantError::Denied(why));
            }
            other => other?,
        };
        applied
            .into_iter()
            .last()
            .map(|a| a.grant)
            .ok_or_else(nothing)
    }

    /// Writes down a decision refused for separation of duties (`grant.refused`), so that a
    /// review can count self-approvals that were tried and approvals by people who may not
    /// give them. Nothing changed, so nothing waits for the line.
    async fn refused(&self, actor: &Actor, id: i64, decision: &Decision, why: &str) {
        // For the requester's name only: the refusal stands whatever this read finds.
        let grant = self.store.get(id).await.ok().flatten();
        let own = actor
            .person()
            .zip(grant.as_ref())
            .is_some_and(|(person, g)| person.name == g.user);
        let (word, refusal) = match decision {
            Decision::Approve(_) if own => ("approve", "self_approval"),
            Decision::Approve(_) => ("approve", "not_approver"),
            Decision::Deny(_) if own => ("deny", "self_decision"),
            Decision::Deny(_) => ("deny", "not_approver"),
            Decision::Revoke(_) => ("revoke", "not_approver"),
        };
        let refusal = match actor {
            Actor::Operator { user: None, .. } if refusal == "not_approver" => "unmapped_operator",
            _ => refusal,
        };
        let mut detail = match actor.detail() {
            Some(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        detail.insert("decision".into(), word.into());
        detail.insert("refusal".into(), refusal.into());
        self.events.record_only(&Event {
            user: grant.as_ref().map(|g| g.user.clone()),
            actor: Some(actor.name()),
            target: grant.as_ref().map(|g| g.target.clone()),
            role: grant.as_ref().map(|g| g.role.clone()),
            grant_id: Some(id),
            reason: Some(why.to_owned()),
            detail: Some(serde_json::Value::Object(detail)),
            ..Event::new(EventKind::GrantRefused)
        });
    }

    /// Ends grant `id` as `actor` (for Gatehouse itself, [`Actor::System`]`("policy")`) with
    /// `reason`: its sessions close. The way to take a grant away when the policy no longer
    /// allows it.
    pub async fn end(
        &self,
        policy: &Policy,
        actor: &Actor,
        id: i64,
        reason: &str,
    ) -> Result<Grant, GrantError> {
        self.decide(
            policy,
            actor,
            id,
            &Decision::Revoke(Some(reason.to_owned())),
        )
        .await
    }

    /// Grants break-glass access if `bg.user` has had fewer than `bg.max_uses` in the window,
    /// counted inside the transaction; returns the grant and the `breakglass.activated` event
    /// that was recorded, for the caller to send to the alert sinks at once.
    pub async fn break_glass(&self, bg: &BreakGlass<'_>) -> Result<(Grant, Event), GrantError> {
        let since = bg.now - bg.window.as_secs() as i64;
        let new = NewGrant {
            user: bg.user.to_owned(),
            role: bg.role.to_owned(),
            target: bg.target.to_owned(),
            reason: bg.reason.to_owned(),
            duration: bg.duration,
            state: GrantState::Active,
            break_glass: true,
            requested_at: bg.now,
            activated_at: Some(bg.now),
            expires_at: Some(bg.now + bg.duration.as_secs() as i64),
        };
        let (max, window) = (bg.max_uses, bg.window);
        let step = Step {
            desk: self,
            reads: Reads {
                break_glass_uses: Some((bg.user.to_owned(), since)),
                ..Reads::default()
            },
            actor: None,
            decide: move |seen: &Snapshot| {
                if seen.break_glass_uses >= u64::from(max) {
                    return Err(GrantError::Denied(format!(
                        "break-glass limit reached: {} use(s) in the last {}; ask another on-call engineer or an operator",
                        seen.break_glass_uses,
                        crate::duration::format(window)
                    )));
                }
                Ok(vec![Write::Insert(new.clone())])
            },
        };
        let applied = self.run(&step, false).await?;
        let [one] = applied.as_slice() else {
            return Err(nothing());
        };
        let event = events_for(one, None)
            .pop()
            .ok_or_else(|| GrantError::Store("no event for the emergency grant".into()))?;
        Ok((one.grant.clone(), event))
    }

    /// Writes down the grants that expired or lapsed by `now`; returns them.
    pub async fn sweep(&self, now: Timestamp) -> Result<Vec<Grant>, GrantError> {
        let ttl = self.request_ttl.as_secs() as i64;
        // Most sweeps find nothing: look first without queueing for the write lock.
        if !self.store.any_due(now, ttl).await? {
            return Ok(Vec::new());
        }
        let step = Step {
            desk: self,
            reads: Reads {
                due: Some((now, ttl)),
                ..Reads::default()
            },
            actor: None,
            decide: move |seen: &Snapshot| Ok(seen.due.iter().map(|g| lapse(g, now)).collect()),
        };
        Ok(self
            .run(&step, true)
            .await?
            .into_iter()
            .map(|a| a.grant)
            .collect())
    }

    /// Runs one transition; after the commit, queues its alerts (when `alert`) and ends the
    /// live sessions of grants that ended.
    async fn run<F>(&self, step: &Step<'_, F>, alert: bool) -> Result<Vec<Applied>, GrantError>
    where
        F: Fn(&Snapshot) -> Result<Vec<Write>, GrantError> + Send + Sync,
    {
        let applied = self.store.transact(step).await?;
        for a in &applied {
            if alert {
                for event in events_for(a, step.actor) {
                    self.events.alert(&event);
                }
            }
            if let (Write::Change(c), Some(watch)) = (&a.write, self.watch)
                && let ChangeKind::End {
                    state, by, reason, ..
                } = &c.kind
            {
                watch.end(
                    a.grant.id,
                    GrantEnd::grant(a.grant.id, *state, Some(by), reason.as_deref()),
                );
            }
        }
        Ok(applied)
    }
}

/// The change that ends a grant found due by the sweep.
fn lapse(g: &Grant, now: Timestamp) -> Write {
    let (expected, state, at, reason) = if g.state == GrantState::Active {
        let end = g.expires_at.unwrap_or(now);
        (GrantState::Active, GrantState::Expired, end, "time ran out")
    } else {
        (
            GrantState::Pending,
            GrantState::Lapsed,
            now,
            "nobody decided in time",
        )
    };
    Write::Change(Change {
        grant_id: g.id,
        expected,
        kind: ChangeKind::End {
            state,
            by: "gatehouse".into(),
            reason: Some(reason.into()),
            at,
        },
    })
}

fn nothing() -> GrantError {
    GrantError::Store("the store applied nothing".into())
}

/// One decision run by the store: what to read, how to decide, and the audit seal.
struct Step<'d, F> {
    desk: &'d GrantDesk<'d>,
    reads: Reads,
    actor: Option<&'d Actor>,
    decide: F,
}

#[async_trait]
impl<F> Transition for Step<'_, F>
where
    F: Fn(&Snapshot) -> Result<Vec<Write>, GrantError> + Send + Sync,
{
    fn reads(&self) -> Reads {
        self.reads.clone()
    }

    fn decide(&self, seen: &Snapshot) -> Result<Vec<Write>, GrantError> {
        (self.decide)(seen)
    }

    async fn seal(&self, applied: &[Applied]) -> Result<(), GrantError> {
        let events: Vec<Event> = applied
            .iter()
            .flat_map(|a| events_for(a, self.actor))
            .collect();
        self.desk
            .events
            .record_durable(&events)
            .await
            .map_err(|e| GrantError::Audit(e.to_string()))
    }
}

/// The audit events of one applied write.
pub fn events_for(applied: &Applied, actor: Option<&Actor>) -> Vec<Event> {
    let g = &applied.grant;
    let base = |kind| Event {
        user: Some(g.user.clone()),
        actor: actor.map(Actor::name),
        target: Some(g.target.clone()),
        role: Some(g.role.clone()),
        grant_id: Some(g.id),
        detail: actor.and_then(Actor::detail),
        ..Event::new(kind)
    };
    match &applied.write {
        Write::Insert(new) if new.break_glass => vec![Event {
            reason: Some(g.reason.clone()),
            ..base(EventKind::BreakglassActivated)
        }],
        Write::Insert(new) => {
            let mut out = vec![Event {
                reason: Some(g.reason.clone()),
                ..base(EventKind::GrantRequested)
            }];
            if new.state == GrantState::Active {
                out.push(Event {
                    reason: Some(g.reason.clone()),
                    ..base(EventKind::GrantActivated)
                });
            }
            out
        }
        Write::Change(c) => match &c.kind {
            ChangeKind::Approve {
                comment, activates, ..
            } => {
                let mut out = vec![Event {
                    reason: comment.clone(),
                    ..base(EventKind::GrantApproved)
                }];
                if activates.is_some() {
                    out.push(base(EventKind::GrantActivated));
                }
                out
            }
            ChangeKind::End { state, reason, .. } => {
                let kind = match state {
                    GrantState::Denied => EventKind::GrantDenied,
                    GrantState::Expired => EventKind::GrantExpired,
                    GrantState::Lapsed => EventKind::GrantLapsed,
                    _ => EventKind::GrantRevoked,
                };
                vec![Event {
                    reason: reason.clone(),
                    ..base(kind)
                }]
            }
        },
    }
}

#[cfg(test)]
#[path = "desk_tests.rs"]
mod tests;
