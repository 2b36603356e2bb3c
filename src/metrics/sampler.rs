//! Levels that live elsewhere: sampled from the store every few seconds, and followed from the
//! bastion's health as it changes.

use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::debug;

use super::{GRANT_STATES, Metrics};
use crate::health::{Change, Component, Health};
use crate::store::Backend;

/// How often the store is sampled when serving.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

impl Metrics {
    /// Samples the store every `every` (grants by state, the alert backlog) and drains the
    /// histograms, until the task is aborted. A sample the store cannot give in time leaves
    /// the last values in place; whether the store works is [`super::STORE_UP`]'s to say.
    pub fn spawn_sampler(&self, store: crate::store::Store, every: Duration) -> JoinHandle<()> {
        let metrics = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if tokio::time::timeout(every, metrics.sample(store.as_ref()))
                    .await
                    .is_err()
                {
                    debug!("the store did not answer the metrics sample in time");
                }
                metrics.run_upkeep();
            }
        })
    }

    /// Reads the grant counts and the alert backlog from `store` once.
    pub async fn sample(&self, store: &dyn Backend) {
        let i = &self.inner.i;
        match store.count_by_state().await {
            Ok(counts) => {
                for (gauge, state) in i.grants.iter().zip(GRANT_STATES) {
                    let count = counts
                        .iter()
                        .find(|(s, _)| *s == state)
                        .map_or(0, |(_, n)| *n);
                    gauge.set(count as f64);
                }
            }
            Err(e) => debug!(error = %e, "cannot count grants for the metrics"),
        }
        match store.backlog().await {
            Ok(backlog) => i.outbox_backlog.set(backlog as f64),
            Err(e) => debug!(error = %e, "cannot count the alert backlog for the metrics"),
        }
    }

    /// Follows `health`: the store and audit gauges show its state now and every change.
    pub fn watch_health(&self, health: &Health) {
        // Listening first, then reading the state: a change in between is seen either way.
        let metrics = self.clone();
        health.on_change(move |change| metrics.health_changed(change));
        let i = &self.inner.i;
        i.store_up.set(up(!health.is_faulty(Component::Store)));
        i.audit_up.set(up(!health.is_faulty(Component::AuditLog)));
    }

    /// One change of health.
    fn health_changed(&self, change: &Change) {
        let i = &self.inner.i;
        let gauge = match change.component {
            Component::Store => &i.store_up,
            Component::AuditLog => &i.audit_up,
        };
        gauge.set(up(change.fault.is_none()));
    }
}

/// A gauge value for working (1) or not (0).
fn up(working: bool) -> f64 {
    if working { 1.0 } else { 0.0 }
}
