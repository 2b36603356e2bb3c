//! The [`Alerts`] service: queues alerts durably, builds the configured sinks and, for
//! break-glass, tries every sink at once within a bounded wait ([`Alerts::send_now`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::{error, warn};
use uuid::Uuid;

use super::outbox::{self, AlertOutbox};
use super::{
    Alert, AlertsConfig, AlertsConfigError, DeliveryObserver, Dispatcher, RetryPolicy,
    SYSLOG_TIMEOUT, command, dispatch, sink_label, syslog, webhook,
};
use crate::store::StoreError;

/// Errors from queuing alerts. A sink that is down is never one of them: that is retried.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    /// The configuration is unusable.
    #[error("alerts: {0}")]
    Config(#[from] AlertsConfigError),
    /// The outbox could not be written or read.
    #[error("alert outbox: {0}")]
    Store(#[from] StoreError),
    /// The HTTP client for webhooks could not be built (for example, no TLS roots).
    #[error("alerts: cannot build the HTTP client: {0}")]
    Http(String),
}

/// One configured sink, ready to deliver.
pub(super) struct SinkEntry {
    /// The stable name that keys outbox rows.
    pub(super) name: String,
    /// The name as shown in logs and reports.
    pub(super) label: String,
    /// An upper bound on one attempt, above the sink's own timeout.
    limit: Duration,
    kind: SinkKind,
}

enum SinkKind {
    Webhook(webhook::Webhook),
    Syslog(syslog::Syslog),
    Command(command::Command),
}

impl SinkEntry {
    /// One delivery attempt; `payload` is the stored JSON of `alert`.
    pub(super) async fn deliver(&self, alert: &Alert, payload: &str) -> Result<(), String> {
        let attempt = async {
            match &self.kind {
                SinkKind::Webhook(w) => w.deliver(alert, payload).await,
                SinkKind::Syslog(s) => s.deliver(alert, payload).await,
                SinkKind::Command(c) => c.deliver(alert, payload).await,
            }
        };
        // Each sink enforces its own timeout (and a command kills its process group); this
        // bound only guarantees that no attempt outlives its claim on the outbox row.
        tokio::time::timeout(self.limit, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "timed out after {}",
                    crate::duration::format(self.limit)
                ))
            })
    }
}

/// State shared by the facade, the delivery loop and `send_now`'s delivery tasks.
pub(super) struct Inner {
    pub(super) outbox: Arc<dyn AlertOutbox>,
    pub(super) sinks: Vec<SinkEntry>,
    /// The configured sinks' stable names, the set the outbox claims rows of.
    pub(super) known: Vec<String>,
    /// How long a claim on a row lasts: past it, a crashed attempt is tried again.
    pub(super) lease: Duration,
    pub(super) observer: Arc<dyn DeliveryObserver>,
    pub(super) retry: RetryPolicy,
    /// Wakes the delivery loop when rows are queued or rescheduled.
    pub(super) wake: Notify,
}

impl Inner {
    pub(super) fn sink(&self, name: &str) -> Option<&SinkEntry> {
        self.sinks.iter().find(|s| s.name == name)
    }

    fn names(&self) -> Vec<&str> {
        self.sinks.iter().map(|s| s.name.as_str()).collect()
    }
}

/// The alerting service: queue alerts durably and get them delivered.
///
/// Cheap to clone; all clones share one outbox and one set of sinks.
#[derive(Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

/// How one sink fared in [`Alerts::send_now`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkOutcome {
    /// The sink took the alert.
    Acknowledged,
    /// The first attempt failed; the outbox keeps retrying.
    Failed(String),
    /// No answer within the wait; the attempt goes on and the outbox keeps retrying.
    NoAnswerYet,
}

/// One sink's line in a [`SendReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkReport {
    /// The sink's label.
    pub sink: String,
    /// How it fared.
    pub outcome: SinkOutcome,
}

/// What [`Alerts::send_now`] achieved within its wait, for the break-glass banner and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReport {
    /// Whether the alert was in the outbox (and so will be retried until delivered) when the
    /// wait ended. False when the store failed, in which case the attempts below are the only
    /// ones, or was still writing when the wait ended.
    pub durable: bool,
    /// Every configured sink, in configuration order.
    pub sinks: Vec<SinkReport>,
}

impl SendReport {
    /// The labels of the sinks that took the alert.
    pub fn acknowledged(&self) -> Vec<&str> {
        self.sinks
            .iter()
            .filter(|s| s.outcome == SinkOutcome::Acknowledged)
            .map(|s| s.sink.as_str())
            .collect()
    }
}

impl fmt::Display for SendReport {
    /// One line a person can read: who was told, who will be told.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sinks.is_empty() {
            return f.write_str("no alert sinks are configured");
        }
        let acked = self.acknowledged();
        write!(
            f,
            "alert acknowledged by {} of {} sinks",
            acked.len(),
            self.sinks.len()
        )?;
        if !acked.is_empty() {
            write!(f, " ({})", acked.join(", "))?;
        }
        let rest: Vec<&str> = self
            .sinks
            .iter()
            .filter(|s| s.outcome != SinkOutcome::Acknowledged)
            .map(|s| s.sink.as_str())
            .collect();
        if !rest.is_empty() {
            if self.durable {
                write!(f, "; still trying {}", rest.join(", "))?;
            } else {
                write!(f, "; not queued for retry: {}", rest.join(", "))?;
            }
        }
        Ok(())
    }
}

/// An alert that some configured or formerly configured sink has not acknowledged yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDelivery {
    /// The alert.
    pub alert_id: Uuid,
    /// The sink's stable name (what [`Alerts::forget_sink`] takes).
    pub sink: String,
    /// The sink as shown to people ([`sink_label`]).
    pub label: String,
    /// Whether the sink is in the current configuration; rows of removed sinks wait for it to
    /// come back or for [`Alerts::forget_sink`].
    pub configured: bool,
    /// Attempts so far.
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_attempt: DateTime<Utc>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued.
    pub queued: DateTime<Utc>,
}

/// A progress message from `send_now`'s background task.
enum Progress {
    /// Whether the rows were written.
    Queued(bool),
    /// Sink `index` finished its attempt.
    Attempted(usize, Result<(), String>),
}

impl Alerts {
    /// Alerts delivered to the sinks of `config`, queued in `store`, reported to `observer`,
    /// with the standard retry schedule. Start delivery with [`Alerts::spawn_dispatcher`].
    pub fn new(
        store: Arc<dyn AlertOutbox>,
        config: &AlertsConfig,
        observer: Arc<dyn DeliveryObserver>,
    ) -> Result<Alerts, AlertsError> {
        Alerts::with_retry(store, config, observer, RetryPolicy::default())
    }

    /// [`Alerts::new`] with another retry schedule (tests use milliseconds).
    pub fn with_retry(
        store: Arc<dyn AlertOutbox>,
        config: &AlertsConfig,
        observer: Arc<dyn DeliveryObserver>,
        retry: RetryPolicy,
    ) -> Result<Alerts, AlertsError> {
        config.validate()?;
        let mut sinks = Vec::new();
        if !config.webhook.is_empty() {
            let client = webhook::client().map_err(AlertsError::Http)?;
            for w in &config.webhook {
                sinks.push(entry(
                    w.name(),
                    w.timeout,
                    SinkKind::Webhook(webhook::Webhook::new(w, client.clone())),
                ));
            }
        }
        if !config.syslog.is_empty() {
            let hostname = syslog::hostname();
            for s in &config.syslog {
                sinks.push(entry(
                    s.name(),
                    SYSLOG_TIMEOUT,
                    SinkKind::Syslog(syslog::Syslog::new(s, hostname.clone())),
                ));
            }
        }
        for c in &config.command {
            sinks.push(entry(
                c.name(),
                c.timeout,
                SinkKind::Command(command::Command::new(c)),
            ));
        }
        let known: Vec<String> = sinks.iter().map(|s| s.name.clone()).collect();
        let lease = sinks
            .iter()
            .map(|s| s.limit)
            .max()
            .unwrap_or(Duration::ZERO)
            + Duration::from_secs(10);
        Ok(Alerts {
            inner: Arc::new(Inner {
                outbox: store,
                sinks,
                known,
                lease,
                observer,
                retry,
                wake: Notify::new(),
            }),
        })
    }

    /// The labels of the configured sinks, in configuration order, for startup logs and checks.
    pub fn sink_labels(&self) -> Vec<String> {
        self.inner.sinks.iter().map(|s| s.label.clone()).collect()
    }

    /// Queues `alert` for every configured sink, in one transaction, and wakes the delivery
    /// loop. Returns once the rows are stored; delivery happens in the loop. Queuing the same
    /// alert id twice adds nothing.
    pub async fn enqueue(&self, alert: &Alert) -> Result<(), AlertsError> {
        let inner = &self.inner;
        if inner.sinks.is_empty() {
            return Ok(());
        }
        inner
            .outbox
            .enqueue(
                alert.id,
                &alert.to_json(),
                &inner.names(),
                outbox::now_ms(),
                0,
            )
            .await?;
        inner.wake.notify_one();
        Ok(())
    }

    /// [`Alerts::enqueue`] for synchronous callers (such as the event hub): queues in a
    /// background task and logs a store failure, since there is no caller left to tell.
    pub fn submit(&self, alert: Alert) {
        let alerts = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = alerts.enqueue(&alert).await {
                        error!(alert = %alert.id, event = alert.event.name(), error = %e, "alert lost: cannot queue it");
                    }
                });
            }
            Err(_) => {
                error!(alert = %alert.id, event = alert.event.name(), "alert lost: no async runtime to queue it");
            }
        }
    }

    /// For break-glass: queues `alert` durably, tries every sink at once and waits at most
    /// `max_wait` for them, so an emergency is never held up by an alert sink. Never fails
    /// because a sink is down: the report says which sinks acknowledged, attempts still under
    /// way go on after this returns, and the outbox retries the rest until they succeed.
    pub async fn send_now(&self, alert: &Alert, max_wait: Duration) -> SendReport {
        let deadline = Instant::now() + max_wait;
        let mut report = SendReport {
            durable: false,
            sinks: self
                .inner
                .sinks
                .iter()
                .map(|s| SinkReport {
                    sink: s.label.clone(),
                    outcome: SinkOutcome::NoAnswerYet,
                })
                .collect(),
        };
        if self.inner.sinks.is_empty() {
            report.durable = true;
            return report;
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        // The work runs in its own task so that neither the outbox write nor an attempt is cut
        // short when the wait ends.
        tokio::spawn(send_task(self.inner.clone(), alert.clone(), tx));
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Progress::Queued(durable))) => report.durable = durable,
                Ok(Some(Progress::Attempted(i, result))) => {
                    report.sinks[i].outcome = match result {
                        Ok(()) => SinkOutcome::Acknowledged,
                        Err(e) => SinkOutcome::Failed(e),
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        report
    }

    /// Every queued delivery not acknowledged yet, oldest first, including those for sinks no
    /// longer configured, so operators can see what is stuck and why.
    pub async fn pending(&self) -> Result<Vec<PendingDelivery>, AlertsError> {
        let rows = self.inner.outbox.pending().await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut row = outbox::pending_delivery(row);
                row.configured = self.inner.sink(&row.sink).is_some();
                row
            })
            .collect())
    }

    /// Drops the undelivered rows of the sink named `name` (its stable name) and returns how
    /// many there were: the operator's way to say a removed sink is not coming back.
    pub async fn forget_sink(&self, name: &str) -> Result<u64, AlertsError> {
        Ok(self.inner.outbox.forget_sink(name).await?)
    }

    /// Starts the delivery loop on the current tokio runtime. Run one per process; stop it with
    /// [`Dispatcher::shutdown`] (dropping it aborts it, which is safe: rows stay queued).
    pub fn spawn_dispatcher(&self) -> Dispatcher {
        Dispatcher::spawn(self.inner.clone())
    }
}

fn entry(name: String, timeout: Duration, kind: SinkKind) -> SinkEntry {
    SinkEntry {
        label: sink_label(&name),
        name,
        limit: timeout + Duration::from_secs(2),
        kind,
    }
}

/// `send_now`'s background work: queue, then attempt every sink concurrently.
async fn send_task(inner: Arc<Inner>, alert: Alert, tx: mpsc::UnboundedSender<Progress>) {
    let payload = alert.to_json();
    let now = outbox::now_ms();
    // The rows are written already claimed (one attempt, leased), so that the loop leaves them
    // to the attempts below unless this process dies.
    let lease_end = now.saturating_add(inner.lease.as_millis() as i64);
    let rows = match inner
        .outbox
        .enqueue(alert.id, &payload, &inner.names(), lease_end, 1)
        .await
    {
        Ok(rows) => {
            let _ = tx.send(Progress::Queued(true));
            Some(rows)
        }
        Err(e) => {
            error!(alert = %alert.id, event = alert.event.name(), error = %e,
                "cannot queue the alert; trying the sinks once without retries");
            let _ = tx.send(Progress::Queued(false));
            None
        }
    };
    for (i, sink) in inner.sinks.iter().enumerate() {
        let row = match &rows {
            Some(rows) => match rows.iter().find(|(_, name)| *name == sink.name) {
                Some((id, _)) => Some(*id),
                // Already queued under this id by an earlier call: the loop owns that row.
                None => continue,
            },
            None => None,
        };
        let inner = inner.clone();
        let tx = tx.clone();
        let payload = payload.clone();
        tokio::spawn(async move {
            let sink = &inner.sinks[i];
            let result = dispatch::attempt(&inner, row, alert.id, sink, &payload, 1).await;
            let _ = tx.send(Progress::Attempted(i, result));
        });
    }
    if rows.is_none() {
        warn!(alert = %alert.id, "alert is not durable: failed sinks will not be retried");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_reads_as_one_line() {
        let report = SendReport {
            durable: true,
            sinks: vec![
                SinkReport {
                    sink: "syslog:/dev/log".into(),
                    outcome: SinkOutcome::Acknowledged,
                },
                SinkReport {
                    sink: "command:/bin/page".into(),
                    outcome: SinkOutcome::Failed("exit status: 1".into()),
                },
            ],
        };
        assert_eq!(
            report.to_string(),
            "alert acknowledged by 1 of 2 sinks (syslog:/dev/log); still trying command:/bin/page"
        );
        assert_eq!(report.acknowledged(), vec!["syslog:/dev/log"]);
    }
}
