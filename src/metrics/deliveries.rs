//! The metrics as an alert delivery observer: deliveries and failed attempts, by sink.

use uuid::Uuid;

use super::{ALERT_DELIVERY_FAILURES, ALERTS_DELIVERED, METADATA, Metrics, SinkCounters};
use crate::alerts::DeliveryObserver;

use ::metrics::{Counter, Key, Label, Recorder};

impl Metrics {
    /// Runs `count` on the counters of `sink`, registering them the first time the sink is
    /// heard of (sinks come from the configuration, so the label set stays small).
    fn with_sink(&self, sink: &str, count: impl FnOnce(&SinkCounters)) {
        let mut sinks = self
            .inner
            .alert_sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(known) = sinks.iter().find(|s| s.sink == sink) {
            count(known);
            return;
        }
        let counter = |name: &'static str| -> Counter {
            let key = Key::from_parts(name, vec![Label::new("sink", sink.to_owned())]);
            self.inner.recorder.register_counter(&key, &METADATA)
        };
        let added = SinkCounters {
            sink: sink.to_owned(),
            delivered: counter(ALERTS_DELIVERED),
            failed: counter(ALERT_DELIVERY_FAILURES),
        };
        count(&added);
        sinks.push(added);
    }

    /// Registers the counters of the configured sinks at start, so that each is in the output
    /// (at zero) before its first delivery.
    pub fn alert_sinks<S: AsRef<str>>(&self, labels: &[S]) {
        for label in labels {
            self.with_sink(label.as_ref(), |_| {});
        }
    }
}

impl DeliveryObserver for Metrics {
    fn delivered(&self, _alert_id: Uuid, sink: &str) {
        self.with_sink(sink, |s| s.delivered.increment(1));
    }

    fn failed(&self, _alert_id: Uuid, sink: &str, _attempt: u32, _error: &str) {
        self.with_sink(sink, |s| s.failed.increment(1));
    }
}
