//! The metrics as a listener on the event bus: each event moves the counters it stands for.

use super::{DENIED, ENDED, Metrics, STARTED};
use crate::events::{Event, EventKind, EventSink};
use crate::outcome::{DenialClass, EndClass};

/// The index in `TRANSITIONS` of the grant transition an event records, if it records one.
fn transition(kind: EventKind) -> Option<usize> {
    Some(match kind {
        EventKind::GrantRequested => 0,
        EventKind::GrantApproved => 1,
        // A break-glass grant is created active.
        EventKind::GrantActivated | EventKind::BreakglassActivated => 2,
        EventKind::GrantDenied => 3,
        EventKind::GrantRevoked => 4,
        EventKind::GrantExpired => 5,
        EventKind::GrantLapsed => 6,
        _ => return None,
    })
}

impl EventSink for Metrics {
    /// Counts the event: each update is one atomic operation on a handle registered in
    /// advance, with labels chosen from fixed tables by typed class.
    fn observe(&self, event: &Event) {
        let i = &self.inner.i;
        let Some(kind) = event.kind else {
            return;
        };
        if let Some(to) = transition(kind) {
            i.transitions[to].increment(1);
        }
        match kind {
            EventKind::Login => i.logins.increment(1),
            EventKind::LoginRefused => i.logins_refused.increment(1),
            EventKind::BreakglassActivated => i.breakglass.increment(1),
            EventKind::SessionStarted => {
                i.sessions[STARTED].increment(1);
                i.sessions_active.increment(1.0);
            }
            EventKind::SessionDenied => {
                i.sessions[DENIED].increment(1);
                let class = event.denial.unwrap_or(DenialClass::Other);
                i.denials[class.index()].increment(1);
            }
            EventKind::SessionEnded => {
                i.sessions[ENDED].increment(1);
                let class = event.ending.map_or(EndClass::Other, |e| e.class);
                i.session_ends[class.index()].increment(1);
                // Only a session that started stops running: one refused or unreachable
                // during its setup was never counted as active.
                if event.ending.is_some_and(|e| e.started) {
                    i.sessions_active.decrement(1.0);
                }
            }
            _ => {}
        }
    }
}
