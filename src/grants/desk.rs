//! Acting on grants: the one path from a decision to the store, the sessions and the events,
//! shared by the SSH verbs and the operator CLI.

use std::time::Duration;

use super::store::GrantStore;
use super::watch::{GrantEnd, GrantWatch, end_message};
use super::{Actor, ChangeKind, Decision, Grant, GrantError, GrantState, decide_on, now};
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

impl GrantDesk<'_> {
    /// Decides on grant `id` as `actor`, stores the change, ends live sessions when the grant
    /// ends, and reports the events.
    pub async fn decide(
        &self,
        policy: &Policy,
        actor: &Actor,
        id: i64,
        decision: &Decision,
    ) -> Result<Grant, GrantError> {
        let grant = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| GrantError::Usage(format!("there is no grant {id}")))?;
        let change = decide_on(policy, &grant, actor, decision, now(), self.request_ttl)?;
        let updated = self.store.apply(&change).await?;
        self.report(&updated, actor, &change.kind);
        if let (
            ChangeKind::End {
                state, by, reason, ..
            },
            Some(watch),
        ) = (&change.kind, self.watch)
        {
            watch.end(
                id,
                GrantEnd {
                    message: end_message(id, *state, Some(by), reason.as_deref()),
                },
            );
        }
        Ok(updated)
    }

    fn report(&self, grant: &Grant, actor: &Actor, kind: &ChangeKind) {
        let base = |k| Event {
            user: Some(grant.user.clone()),
            actor: Some(actor.name()),
            target: Some(grant.target.clone()),
            role: Some(grant.role.clone()),
            grant_id: Some(grant.id),
            ..Event::new(k)
        };
        match kind {
            ChangeKind::Approve {
                comment, activates, ..
            } => {
                self.events.emit(Event {
                    reason: comment.clone(),
                    ..base(EventKind::GrantApproved)
                });
                if activates.is_some() {
                    self.events.emit(base(EventKind::GrantActivated));
                }
            }
            ChangeKind::End { state, reason, .. } => {
                let k = if *state == GrantState::Denied {
                    EventKind::GrantDenied
                } else {
                    EventKind::GrantRevoked
                };
                self.events.emit(Event {
                    reason: reason.clone(),
                    ..base(k)
                });
            }
        }
    }
}
