//! The delivery loop: claims due outbox rows, delivers them concurrently, and sleeps until the
//! next row is due or new alerts are queued.
//!
//! It never gives up on a row and never stops on an error: a store that is briefly locked or a
//! sink that is down only delays delivery. Rows of sinks that are no longer configured are left
//! alone and reported every hour.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};
use uuid::Uuid;

use super::outbox::{self, Claimed};
use super::{Alert, Inner, SinkEntry, sink_label};

/// Attempts under way at once; more due rows wait for the next round.
const MAX_IN_FLIGHT: usize = 32;

/// How often rows of unconfigured sinks are reported and old delivered rows pruned.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);

/// How long delivered rows stay in the outbox (the audit log has the lasting record).
const KEEP_DELIVERED: Duration = Duration::from_secs(7 * 24 * 3600);

/// The running delivery loop.
///
/// Dropping it aborts the loop and its attempts at once, which loses nothing (rows stay queued
/// and claimed rows become due again when their lease ends); [`Dispatcher::shutdown`] lets the
/// attempts under way finish first.
pub struct Dispatcher {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Dispatcher {
    pub(super) fn spawn(inner: Arc<Inner>) -> Dispatcher {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(inner, stopped));
        Dispatcher {
            stop,
            task: Some(task),
        }
    }

    /// Stops claiming rows and waits for the attempts under way (each bounded by its sink's
    /// timeout), so that a clean shutdown records their outcome.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run(inner: Arc<Inner>, mut stopped: watch::Receiver<bool>) {
    info!(sinks = ?inner.sinks.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(), "alert delivery started");
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let mut next_housekeeping = Instant::now();
    // After a store error, wait before trying the store again (doubling like a delivery).
    let mut store_failures = 0u32;
    loop {
        if *stopped.borrow() {
            break;
        }
        if Instant::now() >= next_housekeeping {
            housekeeping(&inner).await;
            next_housekeeping = Instant::now() + HOUSEKEEPING_EVERY;
        }
        let mut wait = inner.retry.poll;
        if !inner.sinks.is_empty() {
            match claim_and_start(&inner, &mut in_flight).await {
                Ok(next) => {
                    store_failures = 0;
                    if let Some(next) = next {
                        wait = wait.min(next);
                    }
                }
                Err(e) => {
                    store_failures = store_failures.saturating_add(1);
                    wait = inner.retry.delay(store_failures);
                    error!(error = %e, retry_in = ?wait, "alert outbox unavailable");
                }
            }
        }
        let full = in_flight.len() >= MAX_IN_FLIGHT;
        tokio::select! {
            _ = stopped.changed() => {}
            // A finished attempt may have freed a slot or rescheduled its row.
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            _ = inner.wake.notified(), if !full => {}
            _ = tokio::time::sleep(wait), if !full => {}
        }
    }
    while in_flight.join_next().await.is_some() {}
    info!("alert delivery stopped");
}

/// Claims what is due and starts attempts; returns how long until the next row is due.
async fn claim_and_start(
    inner: &Arc<Inner>,
    in_flight: &mut JoinSet<()>,
) -> Result<Option<Duration>, crate::store::StoreError> {
    let room = MAX_IN_FLIGHT.saturating_sub(in_flight.len());
    if room > 0 {
        let now = outbox::now_ms();
        let lease_end = now.saturating_add(inner.lease.as_millis() as i64);
        let claimed = inner
            .outbox
            .claim_due(&inner.known, now, lease_end, room)
            .await?;
        for row in claimed {
            let inner = inner.clone();
            in_flight.spawn(async move {
                let Claimed {
                    id,
                    alert_id,
                    sink,
                    payload,
                    attempt: number,
                } = row;
                // Claims only return rows of configured sinks.
                if let Some(entry) = inner.sink(&sink) {
                    let _ = attempt(&inner, Some(id), alert_id, entry, &payload, number).await;
                }
            });
        }
    }
    let next = inner.outbox.next_due(&inner.known).await?;
    Ok(next.map(|at| Duration::from_millis(at.saturating_sub(outbox::now_ms()).max(0) as u64)))
}

/// One attempt on one row (or, when the store failed in `send_now`, on no row): deliver, then
/// record the outcome in the outbox and tell the observer.
pub(super) async fn attempt(
    inner: &Inner,
    row: Option<i64>,
    alert_id: Uuid,
    sink: &SinkEntry,
    payload: &str,
    number: u32,
) -> Result<(), String> {
    let result = match serde_json::from_str::<Alert>(payload) {
        Ok(alert) => sink.deliver(&alert, payload).await,
        Err(e) => Err(format!("the queued alert cannot be read: {e}")),
    };
    match &result {
        Ok(()) => {
            if let Some(id) = row
                && let Err(e) = inner.outbox.mark_delivered(id, outbox::now_ms()).await
            {
                // The row stays claimed and is delivered again when its lease ends.
                error!(alert = %alert_id, sink = %sink.label, error = %e,
                    "alert delivered but not marked so; it will be sent again");
            }
            debug!(alert = %alert_id, sink = %sink.label, attempt = number, "alert delivered");
            inner.observer.delivered(alert_id, &sink.label);
        }
        Err(why) => {
            let delay = inner.retry.delay(number);
            if let Some(id) = row {
                let at = outbox::now_ms().saturating_add(delay.as_millis() as i64);
                if let Err(e) = inner.outbox.schedule_retry(id, at, why).await {
                    error!(alert = %alert_id, sink = %sink.label, error = %e,
                        "cannot schedule the retry; it will come when the claim ends");
                }
            }
            warn!(alert = %alert_id, sink = %sink.label, attempt = number, error = %why,
                retry_in = ?delay, "alert delivery failed");
            inner.observer.failed(alert_id, &sink.label, number, why);
        }
    }
    inner.wake.notify_one();
    result
}

/// Reports rows that wait for sinks no longer configured, and prunes old delivered rows.
async fn housekeeping(inner: &Inner) {
    match inner.outbox.unknown_sinks(&inner.known).await {
        Ok(orphans) => {
            for (sink, count) in orphans {
                warn!(sink = %sink_label(&sink), undelivered = count,
                    "alerts are queued for a sink that is no longer configured; they will be \
                     delivered if it comes back, or can be dropped with forget_sink");
            }
        }
        Err(e) => error!(error = %e, "cannot check the alert outbox for unconfigured sinks"),
    }
    let before = outbox::now_ms().saturating_sub(KEEP_DELIVERED.as_millis() as i64);
    match inner.outbox.prune_delivered(before).await {
        Ok(0) => {}
        Ok(n) => debug!(rows = n, "pruned delivered alerts from the outbox"),
        Err(e) => error!(error = %e, "cannot prune the alert outbox"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::testkit::{self, Harness, HttpServer, Reply};
    use crate::alerts::{
        AlertEvent, AlertsConfig, Observation, SinkOutcome, WebhookFormat, WebhookSink,
    };

    fn webhook(url: String, format: WebhookFormat, timeout: Duration) -> AlertsConfig {
        AlertsConfig {
            webhook: vec![WebhookSink {
                url,
                format,
                timeout,
            }],
            ..AlertsConfig::default()
        }
    }

    fn json_webhook(url: String) -> AlertsConfig {
        webhook(url, WebhookFormat::Json, Duration::from_secs(5))
    }

    #[tokio::test]
    async fn a_webhook_receives_the_alert_as_json() {
        let server = HttpServer::start(vec![]).await;
        let h = Harness::new(&json_webhook(server.url("/hooks/gatehouse?token=s3cret"))).await;
        let _loop = h.alerts.spawn_dispatcher();
        let a = Alert {
            session_id: Some("0192-abc".into()),
            ..testkit::alert(AlertEvent::BreakglassActivated)
        };
        h.alerts.enqueue(&a).await.unwrap();
        h.wait_delivered(a.id, 1).await;
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let r = &requests[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hooks/gatehouse?token=s3cret");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(
            r.header("user-agent"),
            Some(format!("gatehouse/{}", env!("CARGO_PKG_VERSION")))
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["id"], a.id.to_string());
        assert_eq!(body["event"], "breakglass.activated");
        assert_eq!(body["severity"], "critical");
        assert_eq!(body["user"], "alice");
        assert_eq!(body["target"], "web-01");
        assert_eq!(body["role"], "emergency");
        assert_eq!(body["grant_id"], 17);
        assert_eq!(body["reason"], "primary down");
        assert_eq!(body["session_id"], "0192-abc");
        assert_eq!(body["actor"], serde_json::Value::Null);
        let time = body["time"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        assert!(time.ends_with('Z'));
        // The label shown to the observer (and so the audit log) hides the secret URL.
        let observed = h.observer.observations();
        let [Observation::Delivered { sink, .. }] = observed.as_slice() else {
            panic!("{observed:?}")
        };
        assert!(sink.starts_with(&format!("webhook:http://127.0.0.1:{}/…#", server.port())));
        assert!(!sink.contains("s3cret"), "{sink}");
    }

    #[tokio::test]
    async fn a_slack_webhook_receives_a_message() {
        let server = HttpServer::start(vec![]).await;
        let h = Harness::new(&webhook(
            server.url("/"),
            WebhookFormat::Slack,
            Duration::from_secs(5),
        ))
        .await;
        let _loop = h.alerts.spawn_dispatcher();
        let a = Alert {
            reason: Some("db <down> & out".into()),
            ..testkit::alert(AlertEvent::BreakglassActivated)
        };
        h.alerts.enqueue(&a).await.unwrap();
        h.wait_delivered(a.id, 1).await;
        let body: serde_json::Value = serde_json::from_slice(&server.requests()[0].body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "text": "*breakglass.activated* alice on web-01 (role emergency, grant 17): \
                         db &lt;down&gt; &amp; out"
            })
        );
    }

    #[tokio::test]
    async fn a_refusal_is_retried_until_accepted() {
        let server = HttpServer::start(vec![Reply::Status(500), Reply::Status(503)]).await;
        let h = Harness::new(&json_webhook(server.url("/"))).await;
        let _loop = h.alerts.spawn_dispatcher();
        let a = testkit::alert(AlertEvent::GrantRequested);
        h.alerts.enqueue(&a).await.unwrap();
        h.wait_delivered(a.id, 1).await;
        assert_eq!(server.requests().len(), 3);
        let failures = h.failures();
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert_eq!(failures[0].0, 1);
        assert!(failures[0].1.starts_with("HTTP 500"), "{failures:?}");
        assert!(failures[0].1.contains("try later"), "{failures:?}");
        assert_eq!(failures[1].0, 2);
        assert!(failures[1].1.starts_with("HTTP 503"), "{failures:?}");
        // Every request carried the same alert.
        for r in server.requests() {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(body["id"], a.id.to_string());
        }
    }

    #[tokio::test]
    async fn an_alert_waits_in_the_outbox_until_the_receiver_is_up() {
        let port = testkit::free_port();
        let url = format!("http://127.0.0.1:{port}/hook");
        let h = Harness::new(&json_webhook(url)).await;
        let _loop = h.alerts.spawn_dispatcher();
        let a = testkit::alert(AlertEvent::SessionDenied);
        h.alerts.enqueue(&a).await.unwrap();
        h.wait_failures(2).await;
        let pending = h.alerts.pending().await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].alert_id, a.id);
        assert!(pending[0].configured);
        assert!(pending[0].attempts >= 2);
        assert!(pending[0].last_error.is_some());
        let server = HttpServer::start_on(port, vec![]).await;
        h.wait_delivered(a.id, 1).await;
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn queued_alerts_survive_a_restart() {
        let port = testkit::free_port();
        let config = json_webhook(format!("http://127.0.0.1:{port}/"));
        let mut h = Harness::new(&config).await;
        let first = testkit::alert(AlertEvent::GrantRevoked);
        let second = testkit::alert(AlertEvent::GrantExpired);
        {
            let dispatcher = h.alerts.spawn_dispatcher();
            h.alerts.enqueue(&first).await.unwrap();
            h.alerts.enqueue(&second).await.unwrap();
            h.wait_failures(2).await;
            drop(dispatcher);
        }
        // A new process: a new store handle on the same file, new sinks, a new loop.
        h.reopen(&config).await;
        assert_eq!(h.alerts.pending().await.unwrap().len(), 2);
        let server = HttpServer::start_on(port, vec![]).await;
        let _loop = h.alerts.spawn_dispatcher();
        h.wait_delivered(first.id, 1).await;
        h.wait_delivered(second.id, 1).await;
        let mut ids: Vec<String> = server
            .requests()
            .iter()
            .map(|r| {
                serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["id"].to_string()
            })
            .collect();
        ids.sort();
        let mut expected = vec![format!("\"{}\"", first.id), format!("\"{}\"", second.id)];
        expected.sort();
        assert_eq!(ids, expected);
    }

    #[tokio::test]
    async fn every_sink_gets_its_own_row_and_delivery() {
        let good = HttpServer::start(vec![]).await;
        let flaky = HttpServer::start(vec![Reply::Status(500)]).await;
        let mut config = json_webhook(good.url("/"));
        config.webhook.push(WebhookSink {
            url: flaky.url("/"),
            format: WebhookFormat::Slack,
            timeout: Duration::from_secs(5),
        });
        let h = Harness::new(&config).await;
        let a = testkit::alert(AlertEvent::GrantDenied);
        h.alerts.enqueue(&a).await.unwrap();
        // Queued before anything is attempted: one row per sink.
        let pending = h.alerts.pending().await.unwrap();
        assert_eq!(pending.len(), 2);
        assert!(
            pending
                .iter()
                .all(|p| p.attempts == 0 && p.alert_id == a.id)
        );
        // Queuing the same alert again adds nothing.
        h.alerts.enqueue(&a).await.unwrap();
        assert_eq!(h.alerts.pending().await.unwrap().len(), 2);
        let _loop = h.alerts.spawn_dispatcher();
        h.wait_delivered(a.id, 2).await;
        assert_eq!(good.requests().len(), 1);
        assert_eq!(flaky.requests().len(), 2);
    }

    #[tokio::test]
    async fn send_now_returns_within_its_wait_when_a_sink_hangs() {
        let hanging = HttpServer::start(vec![Reply::Hang; 10]).await;
        let good = HttpServer::start(vec![]).await;
        let mut config = webhook(
            hanging.url("/"),
            WebhookFormat::Json,
            Duration::from_secs(2),
        );
        config.webhook.push(WebhookSink {
            url: good.url("/"),
            format: WebhookFormat::Json,
            timeout: Duration::from_secs(5),
        });
        let h = Harness::new(&config).await;
        let _loop = h.alerts.spawn_dispatcher();
        let a = testkit::alert(AlertEvent::BreakglassActivated);
        let started = Instant::now();
        let report = h.alerts.send_now(&a, Duration::from_millis(500)).await;
        let took = started.elapsed();
        assert!(took < Duration::from_millis(1500), "{took:?}");
        assert!(report.durable);
        assert_eq!(report.sinks[0].outcome, SinkOutcome::NoAnswerYet);
        assert_eq!(report.sinks[1].outcome, SinkOutcome::Acknowledged);
        assert_eq!(
            report.acknowledged(),
            vec![format!("webhook:{}", good.url("/"))]
        );
        let text = report.to_string();
        assert!(
            text.starts_with("alert acknowledged by 1 of 2 sinks"),
            "{text}"
        );
        assert!(text.contains("still trying"), "{text}");
        // The hanging sink times out after 2 s, is retried by the loop, and its row stays
        // until it answers; the healthy one was delivered exactly once.
        h.wait_failures(1).await;
        assert_eq!(good.requests().len(), 1);
        let pending = h.alerts.pending().await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].sink, format!("webhook:{}", hanging.url("/")));
        assert!(
            pending[0]
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("no answer within 2s")),
            "{pending:?}"
        );
    }

    #[tokio::test]
    async fn send_now_reports_a_failed_sink_and_the_loop_retries_it() {
        let server = HttpServer::start(vec![Reply::Status(502)]).await;
        let h = Harness::new(&json_webhook(server.url("/"))).await;
        let a = testkit::alert(AlertEvent::BreakglassActivated);
        let report = h.alerts.send_now(&a, Duration::from_secs(3)).await;
        assert!(report.durable);
        assert!(
            matches!(&report.sinks[0].outcome, SinkOutcome::Failed(e) if e.starts_with("HTTP 502")),
            "{report:?}"
        );
        let _loop = h.alerts.spawn_dispatcher();
        h.wait_delivered(a.id, 1).await;
        assert_eq!(server.requests().len(), 2);
    }

    #[tokio::test]
    async fn send_now_still_tries_the_sinks_when_the_store_fails() {
        let server = HttpServer::start(vec![]).await;
        let h = Harness::new(&json_webhook(server.url("/"))).await;
        sqlx::query("DROP TABLE alert_outbox")
            .execute(h.store().await.writer())
            .await
            .unwrap();
        let a = testkit::alert(AlertEvent::BreakglassActivated);
        let report = h.alerts.send_now(&a, Duration::from_secs(3)).await;
        assert!(!report.durable);
        assert_eq!(report.sinks[0].outcome, SinkOutcome::Acknowledged);
        assert_eq!(server.requests().len(), 1);
        assert!(h.alerts.enqueue(&a).await.is_err());
    }

    #[tokio::test]
    async fn submit_queues_from_synchronous_code() {
        let server = HttpServer::start(vec![]).await;
        let h = Harness::new(&json_webhook(server.url("/"))).await;
        let _loop = h.alerts.spawn_dispatcher();
        let a = testkit::alert(AlertEvent::GrantApproved);
        h.alerts.submit(a.clone());
        h.wait_delivered(a.id, 1).await;
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn send_now_without_sinks_reports_so() {
        let h = Harness::new(&AlertsConfig::default()).await;
        let a = testkit::alert(AlertEvent::BreakglassActivated);
        let report = h.alerts.send_now(&a, Duration::from_secs(1)).await;
        assert!(report.sinks.is_empty());
        assert_eq!(report.to_string(), "no alert sinks are configured");
        h.alerts.enqueue(&a).await.unwrap();
        assert!(h.alerts.pending().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn rows_of_a_removed_sink_stay_until_it_returns_or_is_forgotten() {
        let old = HttpServer::start(vec![Reply::Status(500); 100]).await;
        let new = HttpServer::start(vec![]).await;
        let old_config = json_webhook(old.url("/"));
        let mut h = Harness::new(&old_config).await;
        let a = testkit::alert(AlertEvent::GrantRequested);
        h.alerts.enqueue(&a).await.unwrap();
        // Reconfigured: the old sink is gone, a new one takes new alerts.
        h.reopen(&json_webhook(new.url("/"))).await;
        let _loop = h.alerts.spawn_dispatcher();
        let b = testkit::alert(AlertEvent::GrantApproved);
        h.alerts.enqueue(&b).await.unwrap();
        h.wait_delivered(b.id, 1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(old.requests().is_empty(), "the removed sink was called");
        let pending = h.alerts.pending().await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].alert_id, a.id);
        assert_eq!(pending[0].sink, format!("webhook:{}", old.url("/")));
        assert!(!pending[0].configured);
        assert_eq!(pending[0].attempts, 0);
        assert_eq!(h.alerts.forget_sink(&pending[0].sink).await.unwrap(), 1);
        assert!(h.alerts.pending().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn shutdown_lets_attempts_under_way_finish() {
        let server = HttpServer::start(vec![Reply::Delay(Duration::from_millis(300))]).await;
        let h = Harness::new(&json_webhook(server.url("/"))).await;
        let dispatcher = h.alerts.spawn_dispatcher();
        let a = testkit::alert(AlertEvent::GrantRevoked);
        h.alerts.enqueue(&a).await.unwrap();
        while server.connections() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        dispatcher.shutdown().await;
        assert!(h.alerts.pending().await.unwrap().is_empty());
        assert_eq!(h.delivered(), 1);
    }

    #[tokio::test]
    async fn two_loops_on_one_database_deliver_each_alert_once() {
        let server = HttpServer::start(vec![]).await;
        let config = json_webhook(server.url("/"));
        let h = Harness::new(&config).await;
        let other = h.second_process(&config).await;
        let _one = h.alerts.spawn_dispatcher();
        let _two = other.spawn_dispatcher();
        let mut ids = Vec::new();
        for i in 0..20 {
            let a = testkit::alert(AlertEvent::GrantRequested);
            if i % 2 == 0 {
                h.alerts.enqueue(&a).await.unwrap();
            } else {
                other.enqueue(&a).await.unwrap();
            }
            ids.push(a.id);
        }
        for id in &ids {
            h.wait_delivered(*id, 1).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(server.requests().len(), 20);
    }
}
