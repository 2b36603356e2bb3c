//! The metrics as Prometheus reads them: each test builds its own registry, tells it things,
//! and reads the rendered text back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::alerts::DeliveryObserver;
use crate::events::{Event, EventKind, EventSink, Events};
use crate::grants::NewGrant;
use crate::grants::store::{Applied, Reads, Snapshot, Transition, Write};
use crate::health::{Component, Health};
use crate::outcome::Ending;

/// The value of the series `series` (name and labels, exactly as rendered) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The value of `series` in `metrics`, which must have it.
fn read(metrics: &Metrics, series: &str) -> f64 {
    let text = metrics.render();
    value(&text, series).unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

fn denied(class: DenialClass) -> Event {
    Event {
        denial: Some(class),
        ..Event::new(EventKind::SessionDenied)
    }
}

fn ended(class: EndClass, started: bool) -> Event {
    Event {
        ending: Some(Ending { class, started }),
        ..Event::new(EventKind::SessionEnded)
    }
}

#[test]
fn every_metric_is_named_described_and_present_from_the_start() {
    let metrics = Metrics::standalone();
    metrics.alert_sinks(&["syslog:audit"]);
    // Histograms show once they have been drained, even when empty.
    metrics.run_upkeep();
    let text = metrics.render();
    for name in [
        SESSIONS,
        SESSION_ENDS,
        SESSIONS_ACTIVE,
        LOGINS,
        LOGINS_REFUSED,
        DENIALS,
        GRANT_TRANSITIONS,
        BREAKGLASS,
        DECISION_SECONDS,
        UPSTREAM_CONNECT_SECONDS,
        RECORDING_BYTES,
        RECORDING_FAILURES,
        AUDIT_WRITE_FAILURES,
        ALERTS_DELIVERED,
        ALERT_DELIVERY_FAILURES,
        ALERT_OUTBOX_BACKLOG,
        GRANTS,
        STORE_UP,
        AUDIT_UP,
    ] {
        assert!(name.starts_with("gatehouse_"), "{name}");
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} is not described:\n{text}"
        );
    }
    // Every label value of the fixed sets is there at zero before anything happened.
    for outcome in SESSION_OUTCOMES {
        assert_eq!(
            value(&text, &format!("{SESSIONS}{{outcome=\"{outcome}\"}}")),
            Some(0.0)
        );
    }
    for class in DenialClass::ALL {
        let series = format!("{DENIALS}{{reason=\"{}\"}}", class.as_str());
        assert_eq!(value(&text, &series), Some(0.0), "{series}");
    }
    for class in EndClass::ALL {
        let series = format!("{SESSION_ENDS}{{reason=\"{}\"}}", class.as_str());
        assert_eq!(value(&text, &series), Some(0.0), "{series}");
    }
    for to in TRANSITIONS {
        let series = format!("{GRANT_TRANSITIONS}{{to=\"{to}\"}}");
        assert_eq!(value(&text, &series), Some(0.0), "{series}");
    }
    for state in GRANT_STATES {
        let series = format!("{GRANTS}{{state=\"{}\"}}", state.as_str());
        assert_eq!(value(&text, &series), Some(0.0), "{series}");
    }
    let sink = "{sink=\"syslog:audit\"}";
    assert_eq!(
        value(&text, &format!("{ALERTS_DELIVERED}{sink}")),
        Some(0.0)
    );
    assert_eq!(
        value(&text, &format!("{ALERT_DELIVERY_FAILURES}{sink}")),
        Some(0.0)
    );
    assert_eq!(value(&text, STORE_UP), Some(1.0));
    assert_eq!(value(&text, AUDIT_UP), Some(1.0));
    assert_eq!(value(&text, SESSIONS_ACTIVE), Some(0.0));
    assert!(text.contains(&format!("# TYPE {DECISION_SECONDS} histogram")));
}

#[test]
fn latency_histograms_have_the_explicit_buckets_in_seconds() {
    let metrics = Metrics::standalone();
    metrics.inner.i.decision.record(0.003);
    metrics.inner.i.decision.record(12.0);
    metrics.inner.i.upstream_connect.record(0.2);
    let text = metrics.render();
    let bucket = |name: &str, le: &str| {
        value(&text, &format!("{name}_bucket{{le=\"{le}\"}}"))
            .unwrap_or_else(|| panic!("no bucket {le} of {name} in:\n{text}"))
    };
    assert_eq!(bucket(DECISION_SECONDS, "0.0005"), 0.0);
    assert_eq!(bucket(DECISION_SECONDS, "0.0025"), 0.0);
    assert_eq!(bucket(DECISION_SECONDS, "0.005"), 1.0);
    assert_eq!(bucket(DECISION_SECONDS, "10"), 1.0);
    assert_eq!(bucket(DECISION_SECONDS, "+Inf"), 2.0);
    assert_eq!(
        value(&text, &format!("{DECISION_SECONDS}_count")),
        Some(2.0)
    );
    assert_eq!(bucket(UPSTREAM_CONNECT_SECONDS, "0.1"), 0.0);
    assert_eq!(bucket(UPSTREAM_CONNECT_SECONDS, "0.25"), 1.0);
    let bounds = text
        .lines()
        .filter(|l| l.starts_with(&format!("{DECISION_SECONDS}_bucket")))
        .count();
    assert_eq!(bounds, LATENCY_BUCKETS.len() + 1, "{text}");
}

#[test]
fn session_events_move_the_session_counters_by_one_each() {
    let metrics = Metrics::standalone();
    metrics.observe(&Event::new(EventKind::SessionStarted));
    metrics.observe(&Event::new(EventKind::SessionStarted));
    metrics.observe(&denied(DenialClass::NoGrant));
    metrics.observe(&ended(EndClass::Normal, true));
    let sessions = |outcome: &str| read(&metrics, &format!("{SESSIONS}{{outcome=\"{outcome}\"}}"));
    assert_eq!(sessions("started"), 2.0);
    assert_eq!(sessions("denied"), 1.0);
    assert_eq!(sessions("ended"), 1.0);
    assert_eq!(read(&metrics, SESSIONS_ACTIVE), 1.0);
    assert_eq!(
        read(&metrics, &format!("{SESSION_ENDS}{{reason=\"normal\"}}")),
        1.0
    );
    metrics.observe(&ended(EndClass::Revoked, true));
    assert_eq!(read(&metrics, SESSIONS_ACTIVE), 0.0);
    assert_eq!(
        read(&metrics, &format!("{SESSION_ENDS}{{reason=\"revoked\"}}")),
        1.0
    );
}

#[test]
fn a_session_that_never_started_never_counts_as_active() {
    let metrics = Metrics::standalone();
    metrics.observe(&Event::new(EventKind::SessionStarted));
    // Refused during setup: a denial, then an end for the indexed session that never ran.
    metrics.observe(&denied(DenialClass::NoGrant));
    metrics.observe(&ended(EndClass::Refused, false));
    // The target could not be reached.
    metrics.observe(&ended(EndClass::TargetUnavailable, false));
    // Stopped by the shutdown before it started.
    metrics.observe(&ended(EndClass::Shutdown, false));
    // An end nobody classified is counted, but cannot take a running session away.
    metrics.observe(&Event::new(EventKind::SessionEnded));
    assert_eq!(read(&metrics, SESSIONS_ACTIVE), 1.0);
    let ends = |class: &str| read(&metrics, &format!("{SESSION_ENDS}{{reason=\"{class}\"}}"));
    assert_eq!(ends("refused"), 1.0);
    assert_eq!(ends("target_unavailable"), 1.0);
    assert_eq!(ends("shutdown"), 1.0);
    assert_eq!(ends("other"), 1.0);
    assert_eq!(
        read(&metrics, &format!("{SESSIONS}{{outcome=\"ended\"}}")),
        4.0
    );
}

#[test]
fn denials_are_counted_by_their_class_and_an_unclassified_one_as_other() {
    let metrics = Metrics::standalone();
    for class in DenialClass::ALL {
        for _ in 0..=class.index() {
            metrics.observe(&denied(class));
        }
    }
    metrics.observe(&Event::new(EventKind::SessionDenied));
    for class in DenialClass::ALL {
        let expected = class.index() + 1 + usize::from(class == DenialClass::Other);
        let series = format!("{DENIALS}{{reason=\"{}\"}}", class.as_str());
        assert_eq!(read(&metrics, &series), expected as f64, "{series}");
    }
    assert_eq!(read(&metrics, SESSIONS_ACTIVE), 0.0);
}

#[test]
fn grant_transitions_logins_and_break_glass_are_counted() {
    let metrics = Metrics::standalone();
    let kinds = [
        (EventKind::GrantRequested, "requested"),
        (EventKind::GrantApproved, "approved"),
        (EventKind::GrantActivated, "active"),
        (EventKind::GrantDenied, "denied"),
        (EventKind::GrantRevoked, "revoked"),
        (EventKind::GrantExpired, "expired"),
        (EventKind::GrantLapsed, "lapsed"),
    ];
    for (kind, _) in kinds {
        metrics.observe(&Event::new(kind));
    }
    metrics.observe(&Event::new(EventKind::BreakglassActivated));
    metrics.observe(&Event::new(EventKind::Login));
    metrics.observe(&Event::new(EventKind::LoginRefused));
    metrics.observe(&Event::new(EventKind::LoginRefused));
    // Events that are not counted move nothing.
    metrics.observe(&Event::new(EventKind::PolicyReloaded));
    metrics.observe(&Event::default());
    for (_, to) in kinds {
        let expected = if to == "active" { 2.0 } else { 1.0 };
        let series = format!("{GRANT_TRANSITIONS}{{to=\"{to}\"}}");
        assert_eq!(read(&metrics, &series), expected, "{series}");
    }
    assert_eq!(read(&metrics, BREAKGLASS), 1.0);
    assert_eq!(read(&metrics, LOGINS), 1.0);
    assert_eq!(read(&metrics, LOGINS_REFUSED), 2.0);
    assert_eq!(
        read(&metrics, &format!("{SESSIONS}{{outcome=\"started\"}}")),
        0.0
    );
}

#[tokio::test]
async fn events_reach_the_metrics_through_the_bus_once_recorded() {
    let metrics = Metrics::standalone();
    let events = Events::default().with_sink(Arc::new(metrics.clone()));
    events.emit(Event::new(EventKind::SessionStarted));
    events.record_only(&denied(DenialClass::Policy));
    events
        .record_durable(&[Event::new(EventKind::GrantRequested)])
        .await
        .unwrap();
    assert_eq!(read(&metrics, SESSIONS_ACTIVE), 1.0);
    assert_eq!(
        read(&metrics, &format!("{DENIALS}{{reason=\"policy\"}}")),
        1.0
    );
    assert_eq!(
        read(
            &metrics,
            &format!("{GRANT_TRANSITIONS}{{to=\"requested\"}}")
        ),
        1.0
    );
}

#[test]
fn alert_deliveries_are_counted_by_sink() {
    let metrics = Metrics::standalone();
    let id = uuid::Uuid::nil();
    metrics.delivered(id, "webhook:https://hooks.example/");
    metrics.failed(id, "syslog:local", 1, "refused");
    metrics.failed(id, "syslog:local", 2, "refused");
    metrics.delivered(id, "syslog:local");
    let series = |name: &str, sink: &str| read(&metrics, &format!("{name}{{sink=\"{sink}\"}}"));
    assert_eq!(
        series(ALERTS_DELIVERED, "webhook:https://hooks.example/"),
        1.0
    );
    assert_eq!(
        series(ALERT_DELIVERY_FAILURES, "webhook:https://hooks.example/"),
        0.0
    );
    assert_eq!(series(ALERT_DELIVERY_FAILURES, "syslog:local"), 2.0);
    assert_eq!(series(ALERTS_DELIVERED, "syslog:local"), 1.0);
}

#[test]
fn store_and_audit_gauges_follow_the_health() {
    let metrics = Metrics::standalone();
    let health = Health::default();
    health.fault(Component::AuditLog, "read-only");
    metrics.watch_health(&health);
    assert_eq!(read(&metrics, STORE_UP), 1.0);
    assert_eq!(read(&metrics, AUDIT_UP), 0.0);
    health.fault(Component::Store, "database is locked");
    health.clear(Component::AuditLog);
    assert_eq!(read(&metrics, STORE_UP), 0.0);
    assert_eq!(read(&metrics, AUDIT_UP), 1.0);
    health.clear(Component::Store);
    assert_eq!(read(&metrics, STORE_UP), 1.0);
}

/// A transition that inserts fixed grants.
struct Insert(Vec<NewGrant>);

#[async_trait]
impl Transition for Insert {
    fn reads(&self) -> Reads {
        Reads::default()
    }
    fn decide(&self, _: &Snapshot) -> Result<Vec<Write>, crate::grants::GrantError> {
        Ok(self.0.iter().cloned().map(Write::Insert).collect())
    }
    async fn seal(&self, _: &[Applied]) -> Result<(), crate::grants::GrantError> {
        Ok(())
    }
}

fn grant(state: GrantState) -> NewGrant {
    NewGrant {
        user: "alice".into(),
        role: "web-ops".into(),
        target: "web-01".into(),
        reason: "INC-1".into(),
        duration: Duration::from_secs(60),
        state,
        break_glass: false,
        requested_at: 100,
        activated_at: None,
        expires_at: None,
    }
}

#[tokio::test]
async fn the_sampler_reads_grant_counts_and_the_alert_backlog_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = crate::store::open(&url).await.unwrap();
    let metrics = Metrics::standalone();
    store
        .transact(&Insert(vec![
            grant(GrantState::Pending),
            grant(GrantState::Pending),
            grant(GrantState::Active),
        ]))
        .await
        .unwrap();
    store
        .enqueue(uuid::Uuid::now_v7(), "{}", &["a", "b"], 0, 0)
        .await
        .unwrap();
    let sampler = metrics.spawn_sampler(store.clone(), Duration::from_millis(20));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while read(&metrics, ALERT_OUTBOX_BACKLOG) != 2.0 {
        assert!(std::time::Instant::now() < deadline, "never sampled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sampler.abort();
    let grants = |state: &str| read(&metrics, &format!("{GRANTS}{{state=\"{state}\"}}"));
    assert_eq!(grants("pending"), 2.0);
    assert_eq!(grants("active"), 1.0);
    assert_eq!(grants("revoked"), 0.0);
    // A later sample replaces the earlier one, down to zero for a state with none left.
    store
        .transact(&Insert(vec![grant(GrantState::Denied)]))
        .await
        .unwrap();
    let claimed = store
        .claim_due(&["a".into(), "b".into()], 1, 2, 10)
        .await
        .unwrap();
    for row in claimed {
        store.mark_delivered(row.id, 1).await.unwrap();
    }
    metrics.sample(store.as_ref()).await;
    assert_eq!(grants("denied"), 1.0);
    assert_eq!(read(&metrics, ALERT_OUTBOX_BACKLOG), 0.0);
}

#[test]
fn the_installed_metrics_are_one_and_take_the_direct_measurements() {
    let first = Metrics::install();
    let again = Metrics::install();
    assert!(
        Arc::ptr_eq(&first.inner, &again.inner),
        "a second install is the same"
    );
    // Other tests in this process may measure too: only increases are asserted.
    let before = |m: &Metrics, series: &str| value(&m.render(), series).unwrap_or(0.0);
    let bytes = before(&first, RECORDING_BYTES);
    let failures = before(&first, RECORDING_FAILURES);
    let audit = before(&first, AUDIT_WRITE_FAILURES);
    let decisions = before(&first, &format!("{DECISION_SECONDS}_count"));
    let connects = before(&first, &format!("{UPSTREAM_CONNECT_SECONDS}_count"));
    recording_written(4096);
    recording_failed();
    audit_write_failed();
    decision_took(Duration::from_millis(3));
    upstream_connected(Duration::from_millis(40));
    let text = again.render();
    assert!(value(&text, RECORDING_BYTES).unwrap() >= bytes + 4096.0);
    assert!(value(&text, RECORDING_FAILURES).unwrap() > failures);
    assert!(value(&text, AUDIT_WRITE_FAILURES).unwrap() > audit);
    assert!(value(&text, &format!("{DECISION_SECONDS}_count")).unwrap() > decisions);
    assert!(value(&text, &format!("{UPSTREAM_CONNECT_SECONDS}_count")).unwrap() > connects);
    // The global `metrics` recorder is this registry.
    ::metrics::counter!("gatehouse_test_through_the_macro_total").increment(1);
    assert_eq!(
        value(&first.render(), "gatehouse_test_through_the_macro_total"),
        Some(1.0)
    );
}

#[test]
fn a_standalone_registry_takes_no_direct_measurements() {
    let metrics = Metrics::standalone();
    recording_written(100);
    assert_eq!(read(&metrics, RECORDING_BYTES), 0.0);
}
