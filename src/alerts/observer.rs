//! Observing deliveries: how the rest of the program learns that an alert went out or keeps
//! failing, without this module knowing who listens.

use std::sync::{Arc, Mutex};

use uuid::Uuid;

/// Told about every delivery and every failed attempt, so that the audit log can show that an
/// alert went out (or keeps failing) without this module knowing about the audit log.
///
/// Called from delivery tasks: implementations must be quick and must not block.
pub trait DeliveryObserver: Send + Sync + 'static {
    /// `sink` (its [`sink_label`](super::sink_label)) acknowledged the alert.
    fn delivered(&self, alert_id: Uuid, sink: &str);
    /// Attempt number `attempt` (from 1) to deliver to `sink` failed; another will follow.
    fn failed(&self, alert_id: Uuid, sink: &str, attempt: u32, error: &str);
}

/// An observer that ignores everything, for tools that run no audit log.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl DeliveryObserver for NoopObserver {
    fn delivered(&self, _alert_id: Uuid, _sink: &str) {}
    fn failed(&self, _alert_id: Uuid, _sink: &str, _attempt: u32, _error: &str) {}
}

/// Several observers, each told of everything in turn (the audit log and the metrics both
/// follow deliveries).
pub struct Observers(pub Vec<Arc<dyn DeliveryObserver>>);

impl DeliveryObserver for Observers {
    fn delivered(&self, alert_id: Uuid, sink: &str) {
        for observer in &self.0 {
            observer.delivered(alert_id, sink);
        }
    }

    fn failed(&self, alert_id: Uuid, sink: &str, attempt: u32, error: &str) {
        for observer in &self.0 {
            observer.failed(alert_id, sink, attempt, error);
        }
    }
}

/// What a [`RecordingObserver`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A delivery.
    Delivered {
        /// The alert.
        alert_id: Uuid,
        /// The sink's label.
        sink: String,
    },
    /// A failed attempt.
    Failed {
        /// The alert.
        alert_id: Uuid,
        /// The sink's label.
        sink: String,
        /// The attempt number, from 1.
        attempt: u32,
        /// Why it failed.
        error: String,
    },
}

/// An observer that keeps what it is told, so that tests can assert on deliveries.
#[derive(Debug, Default)]
pub struct RecordingObserver {
    seen: Mutex<Vec<Observation>>,
}

impl RecordingObserver {
    /// Everything observed so far, in order.
    pub fn observations(&self) -> Vec<Observation> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn push(&self, observation: Observation) {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(observation);
    }
}

impl DeliveryObserver for RecordingObserver {
    fn delivered(&self, alert_id: Uuid, sink: &str) {
        self.push(Observation::Delivered {
            alert_id,
            sink: sink.to_owned(),
        });
    }

    fn failed(&self, alert_id: Uuid, sink: &str, attempt: u32, error: &str) {
        self.push(Observation::Failed {
            alert_id,
            sink: sink.to_owned(),
            attempt,
            error: error.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_observer_hears_of_everything_in_order() {
        let first = Arc::new(RecordingObserver::default());
        let second = Arc::new(RecordingObserver::default());
        let both = Observers(vec![first.clone(), second.clone()]);
        let id = Uuid::nil();
        both.failed(id, "syslog:x", 1, "refused");
        both.delivered(id, "syslog:x");
        let expected = vec![
            Observation::Failed {
                alert_id: id,
                sink: "syslog:x".into(),
                attempt: 1,
                error: "refused".into(),
            },
            Observation::Delivered {
                alert_id: id,
                sink: "syslog:x".into(),
            },
        ];
        assert_eq!(first.observations(), expected);
        assert_eq!(second.observations(), expected);
    }
}
