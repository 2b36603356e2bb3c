//! Session ends still to be written, so that shutting down never leaves a session without one.
//!
//! A session writes its own end (index row with the recording hash, `session.ended` audit line)
//! once its recording is finished. On SIGTERM the drain waits a bounded time for that; a session
//! still stuck then (its recording on a frozen disk, say) would otherwise have no end at all.
//! Each indexed session is registered here; whoever claims its end first writes it: the session
//! itself, or the drain, which writes it without the recording hash and says so.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::events::Event;
use crate::outcome::{EndClass, Ending};

/// The end reason written by the drain for a session whose recording did not finish in time.
pub const UNFINISHED_REASON: &str = "shutdown, recording not finished";

struct Pending {
    claimed: AtomicBool,
    /// Whether the session started on the target, so that an end written by the drain counts
    /// it as one that stopped running only if it ran.
    started: AtomicBool,
    ended: Event,
}

/// The indexed sessions whose end has not been claimed yet.
#[derive(Default)]
pub struct SessionEnds {
    open: Mutex<HashMap<String, Arc<Pending>>>,
}

/// One session's end, registered until dropped.
pub struct OpenEnd {
    ends: Arc<SessionEnds>,
    id: String,
    pending: Arc<Pending>,
}

impl SessionEnds {
    /// Nothing registered.
    pub fn new() -> Arc<SessionEnds> {
        Arc::new(SessionEnds::default())
    }

    /// Registers session `id`, whose `session.ended` event (without its outcome) is `ended`.
    pub fn open(self: &Arc<Self>, id: &str, ended: Event) -> OpenEnd {
        let pending = Arc::new(Pending {
            claimed: AtomicBool::new(false),
            started: AtomicBool::new(false),
            ended,
        });
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), pending.clone());
        OpenEnd {
            ends: self.clone(),
            id: id.to_owned(),
            pending,
        }
    }

    /// Claims every end not claimed yet, for the drain to write: the session id and its event,
    /// classed as ended by the shutdown.
    pub fn claim_unfinished(&self) -> Vec<(String, Event)> {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, p)| !p.claimed.swap(true, Ordering::SeqCst))
            .map(|(id, p)| {
                let ending = Ending {
                    class: EndClass::Shutdown,
                    started: p.started.load(Ordering::SeqCst),
                };
                let ended = Event {
                    ending: Some(ending),
                    ..p.ended.clone()
                };
                (id.clone(), ended)
            })
            .collect()
    }
}

impl OpenEnd {
    /// Records that the session started on the target (just before its `session.started`).
    pub fn started(&self) {
        self.pending.started.store(true, Ordering::SeqCst);
    }

    /// Whether the session may write its own end: false once the drain has written it.
    pub fn claim(&self) -> bool {
        !self.pending.claimed.swap(true, Ordering::SeqCst)
    }
}

impl Drop for OpenEnd {
    fn drop(&mut self) {
        self.ends
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    #[test]
    fn each_end_is_written_once_by_whoever_claims_it_first() {
        let ends = SessionEnds::new();
        let done = ends.open("a", Event::new(EventKind::SessionEnded));
        let stuck = ends.open("b", Event::new(EventKind::SessionEnded));
        let setting_up = ends.open("c", Event::new(EventKind::SessionEnded));
        assert!(done.claim());
        stuck.started();
        let mut unfinished = ends.claim_unfinished();
        unfinished.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(unfinished.len(), 2);
        assert_eq!(unfinished[0].0, "b");
        // Each is classed as ended by the shutdown, and counts as stopped running only if it
        // had started.
        let ending = |i: usize| unfinished[i].1.ending.unwrap();
        assert_eq!(ending(0).class, EndClass::Shutdown);
        assert!(ending(0).started);
        assert_eq!(unfinished[1].0, "c");
        assert!(!ending(1).started);
        // The stuck session, resuming, must not write a second end.
        assert!(!stuck.claim());
        assert!(ends.claim_unfinished().is_empty());
        drop((done, stuck, setting_up));
        assert!(ends.open.lock().unwrap().is_empty());
    }
}
