//! `gatehouse sessions hold|release ID --reason TEXT`: legal holds, which keep a session (its
//! recording, index rows and transcript) whatever `[recordings] keep` says.
//!
//! Who places or releases a hold is the operator account (see [`super::operator_account`]),
//! named as its policy user when `[[operator]]` maps it. The reason is required, like a
//! break-glass reason, and each change is written durably to the audit log (`session.held`,
//! `session.released`) before it commits.

use std::process::ExitCode;

use async_trait::async_trait;

use crate::config::Config;
use crate::events::{Event, EventKind, Events};
use crate::grants::Actor;
use crate::server::breakglass::MIN_REASON_CHARS;
use crate::store::Store;
use crate::store::retention::{Hold, HoldError, Seal, SealError};
use crate::store::sessions::SessionRecord;

/// Places (`place`) or releases a hold on session `id`.
pub(super) async fn change(
    config: &Config,
    store: &Store,
    id: &str,
    reason: &str,
    place: bool,
) -> anyhow::Result<ExitCode> {
    let account = match super::operator_account() {
        Ok(account) => account,
        Err(code) => return Ok(code),
    };
    let reason = match crate::grants::check_text("reason", reason, MIN_REASON_CHARS) {
        Ok(reason) => reason,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let Some(session) = super::sessions::resolve(store, id).await? else {
        return Ok(super::sessions::no_such(id));
    };
    let policy = crate::directory::policy_in_force(config, store).await?;
    let actor = crate::grants::operator::actor_for(&policy, &account);
    let events = super::operator_events(config, store).await?;
    let seal = HoldLine {
        events: &events,
        kind: if place {
            EventKind::SessionHeld
        } else {
            EventKind::SessionReleased
        },
        actor: &actor,
        reason: &reason,
    };
    let done = if place {
        let hold = Hold {
            session_id: session.id.clone(),
            held_by: actor.name(),
            reason: reason.clone(),
            held_at: crate::grants::now(),
        };
        store.hold(&hold, &seal).await.map(|_| ())
    } else {
        store.release(&session.id, &seal).await.map(|_| ())
    };
    events.settle().await;
    match done {
        Ok(()) => {
            let what = if place {
                "is on hold"
            } else {
                "is no longer on hold"
            };
            println!("session {} {what} (by {})", session.id, actor.name());
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (HoldError::AlreadyHeld(..) | HoldError::NotHeld(_))) => {
            eprintln!("gatehouse: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e @ HoldError::NoSession(_)) => {
            eprintln!("gatehouse: {e}");
            Ok(ExitCode::from(2))
        }
        Err(HoldError::Unsealed(e)) => {
            eprintln!("gatehouse: nothing changed: the audit log cannot be written ({e})");
            Ok(ExitCode::FAILURE)
        }
        Err(HoldError::Store(e)) => Err(e.into()),
    }
}

/// Seals a hold's change with its audit line.
struct HoldLine<'a> {
    events: &'a Events,
    kind: EventKind,
    actor: &'a Actor,
    reason: &'a str,
}

#[async_trait]
impl Seal for HoldLine<'_> {
    async fn seal(&self, session: &SessionRecord) -> Result<(), SealError> {
        let line = Event {
            user: Some(session.user.clone()),
            actor: Some(self.actor.name()),
            target: Some(session.target.clone()),
            role: Some(session.role.clone()),
            grant_id: Some(session.grant_id),
            session_id: Some(session.id.clone()),
            reason: Some(self.reason.to_owned()),
            detail: self.actor.detail(),
            ..Event::new(self.kind)
        };
        self.events
            .record_durable(std::slice::from_ref(&line))
            .await
            .map_err(|e| SealError(e.to_string()))
    }
}
