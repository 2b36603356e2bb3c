//! Prometheus metrics: what the bastion is doing, in numbers an operator can alert on.
//!
//! Most numbers come from the event bus: [`Metrics`] is an [`EventSink`](crate::events::EventSink)
//! and counts sessions, denials, logins and grant transitions from the events everything
//! already emits, so the event code knows nothing of metrics. What no event carries is
//! measured where it happens through the free functions of this module ([`decision_took`],
//! [`upstream_connected`], [`recording_written`], [`recording_failed`],
//! [`audit_write_failed`]), which do nothing until [`Metrics::install`] has run. Levels that
//! live in the store (grants by state, the alert backlog) are sampled every few seconds
//! ([`Metrics::spawn_sampler`]), and the health of the store and the audit log follows
//! [`Health`](crate::health::Health) ([`Metrics::watch_health`]).
//!
//! Every instrument, and every label value of the fixed label sets, is registered once when
//! the metrics are built: updating one is an atomic operation on a handle, with no lookup, no
//! lock and no allocation, so the hot paths (recording writes, session start) stay cheap, and
//! every series is in the output from the start, at zero. [`Metrics::render`] gives the
//! Prometheus text format for the `/metrics` endpoint.

mod deliveries;
mod sampler;
mod sink;
#[cfg(test)]
mod tests;

pub use sampler::SAMPLE_EVERY;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ::metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::grants::GrantState;
use crate::outcome::{DenialClass, EndClass};

/// Session events, by `outcome` (`started`, `denied`, `ended`): one per `session.started`,
/// `session.denied` and `session.ended` line of the audit log.
pub const SESSIONS: &str = "gatehouse_sessions_total";
/// Ended sessions, by `reason` (an [`EndClass`]).
pub const SESSION_ENDS: &str = "gatehouse_session_ends_total";
/// Sessions running on a target now: started, less those of them that ended.
pub const SESSIONS_ACTIVE: &str = "gatehouse_sessions_active";
/// Successful logins.
pub const LOGINS: &str = "gatehouse_logins_total";
/// Refused logins.
pub const LOGINS_REFUSED: &str = "gatehouse_logins_refused_total";
/// Refusals, by `reason` (a [`DenialClass`]).
pub const DENIALS: &str = "gatehouse_denials_total";
/// Grant transitions made by this process, by `to` (the state or step reached).
pub const GRANT_TRANSITIONS: &str = "gatehouse_grants_transitions_total";
/// Break-glass grants taken through this process.
pub const BREAKGLASS: &str = "gatehouse_breakglass_total";
/// How long an access decision took, from the request to the permit or the denial.
pub const DECISION_SECONDS: &str = "gatehouse_decision_seconds";
/// How long reaching a target took, from asking for a connection to being logged in.
pub const UPSTREAM_CONNECT_SECONDS: &str = "gatehouse_upstream_connect_seconds";
/// Bytes written to recording files.
pub const RECORDING_BYTES: &str = "gatehouse_recording_bytes_total";
/// Recordings that could not be created or written.
pub const RECORDING_FAILURES: &str = "gatehouse_recording_failures_total";
/// Failed attempts to write to the audit log.
pub const AUDIT_WRITE_FAILURES: &str = "gatehouse_audit_write_failures_total";
/// Alerts delivered, by `sink`.
pub const ALERTS_DELIVERED: &str = "gatehouse_alerts_delivered_total";
/// Failed alert delivery attempts, by `sink`.
pub const ALERT_DELIVERY_FAILURES: &str = "gatehouse_alert_delivery_failures_total";
/// Alert deliveries waiting in the outbox (every node's, in a cluster).
pub const ALERT_OUTBOX_BACKLOG: &str = "gatehouse_alert_outbox_backlog";
/// Grants in the store, by `state` (every node's, in a cluster).
pub const GRANTS: &str = "gatehouse_grants";
/// 1 while the store works, 0 while it is faulty.
pub const STORE_UP: &str = "gatehouse_store_up";
/// 1 while the audit log can be written, 0 while it cannot.
pub const AUDIT_UP: &str = "gatehouse_audit_up";

/// Bucket bounds of the latency histograms, in seconds: from half a millisecond to ten
/// seconds, about three to a decade.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `outcome` label values of [`SESSIONS`], in index order.
const SESSION_OUTCOMES: [&str; 3] = ["started", "denied", "ended"];
/// Index of `started` in [`SESSION_OUTCOMES`].
const STARTED: usize = 0;
/// Index of `denied` in [`SESSION_OUTCOMES`].
const DENIED: usize = 1;
/// Index of `ended` in [`SESSION_OUTCOMES`].
const ENDED: usize = 2;

/// The `to` label values of [`GRANT_TRANSITIONS`], in index order.
const TRANSITIONS: [&str; 7] = [
    "requested",
    "approved",
    "active",
    "denied",
    "revoked",
    "expired",
    "lapsed",
];

/// The grant states sampled for [`GRANTS`], in index order.
const GRANT_STATES: [GrantState; 6] = [
    GrantState::Pending,
    GrantState::Active,
    GrantState::Expired,
    GrantState::Revoked,
    GrantState::Denied,
    GrantState::Lapsed,
];

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The process's metrics, once installed.
static INSTALLED: OnceLock<Metrics> = OnceLock::new();

/// The bastion's metrics: a Prometheus registry with every instrument registered. Cheap to
/// clone; clones share the registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    i: Instruments,
    /// Alert counters by sink label, registered when a sink is first heard of (deliveries are
    /// rare, so a lock is fine here).
    alert_sinks: Mutex<Vec<SinkCounters>>,
}

/// The delivery counters of one alert sink.
struct SinkCounters {
    sink: String,
    delivered: Counter,
    failed: Counter,
}

/// Every fixed instrument, as handles.
struct Instruments {
    sessions: [Counter; SESSION_OUTCOMES.len()],
    session_ends: [Counter; EndClass::ALL.len()],
    sessions_active: Gauge,
    logins: Counter,
    logins_refused: Counter,
    denials: [Counter; DenialClass::ALL.len()],
    transitions: [Counter; TRANSITIONS.len()],
    breakglass: Counter,
    decision: Histogram,
    upstream_connect: Histogram,
    recording_bytes: Counter,
    recording_failures: Counter,
    audit_write_failures: Counter,
    outbox_backlog: Gauge,
    grants: [Gauge; GRANT_STATES.len()],
    store_up: Gauge,
    audit_up: Gauge,
}

impl Metrics {
    /// The process's metrics: built and set as the global `metrics` recorder the first time,
    /// the same handle on every later call (a second install never fails or panics). The free
    /// functions of this module report to these.
    pub fn install() -> Metrics {
        INSTALLED
            .get_or_init(|| {
                let metrics = Metrics::standalone();
                let global = Shared(metrics.inner.recorder.clone());
                if ::metrics::set_global_recorder(global).is_err() {
                    // Another recorder was installed first: the instruments here still work,
                    // since they hold handles on this registry; only `metrics::counter!` and
                    // friends used elsewhere go to the other one.
                    tracing::warn!("a metrics recorder was already installed; keeping it");
                }
                metrics
            })
            .clone()
    }

    /// Metrics of their own, not the process's: they count what they are told as an event
    /// sink, by the sampler and by the health listener, but not what the free functions of
    /// this module report (those go to the installed ones). For tests and tools that need a
    /// registry without touching the global one.
    pub fn standalone() -> Metrics {
        let recorder = Arc::new(build_recorder());
        let handle = recorder.handle();
        let i = Instruments::register(&recorder);
        Metrics {
            inner: Arc::new(Inner {
                recorder,
                handle,
                i,
                alert_sinks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Every metric in the Prometheus text exposition format (version 0.0.4), for `/metrics`.
    pub fn render(&self) -> String {
        self.inner.handle.render()
    }

    /// Drains recorded histogram samples into their buckets, so that memory stays bounded
    /// between scrapes (the sampler does this every few seconds).
    pub fn run_upkeep(&self) {
        self.inner.handle.run_upkeep();
    }
}

/// The recorder with explicit buckets for the latency histograms.
fn build_recorder() -> PrometheusRecorder {
    let builder = PrometheusBuilder::new();
    let with_buckets = [DECISION_SECONDS, UPSTREAM_CONNECT_SECONDS]
        .into_iter()
        .try_fold(builder, |b, name| {
            b.set_buckets_for_metric(Matcher::Full(name.to_owned()), &LATENCY_BUCKETS)
        });
    // Only an empty bucket list is refused, and these are constant.
    with_buckets
        .unwrap_or_else(|_| PrometheusBuilder::new())
        .build_recorder()
}

impl Instruments {
    /// Registers (and describes) every fixed instrument on `recorder`.
    fn register(recorder: &PrometheusRecorder) -> Instruments {
        let r = Registrar(recorder);
        // Their series are registered per sink (see `deliveries`).
        r.describe_counter(ALERTS_DELIVERED, None);
        r.describe_counter(ALERT_DELIVERY_FAILURES, None);
        Instruments {
            sessions: std::array::from_fn(|i| {
                r.counter_with(SESSIONS, "outcome", SESSION_OUTCOMES[i])
            }),
            session_ends: std::array::from_fn(|i| {
                r.counter_with(SESSION_ENDS, "reason", EndClass::ALL[i].as_str())
            }),
            sessions_active: r.gauge(SESSIONS_ACTIVE),
            logins: r.counter(LOGINS),
            logins_refused: r.counter(LOGINS_REFUSED),
            denials: std::array::from_fn(|i| {
                r.counter_with(DENIALS, "reason", DenialClass::ALL[i].as_str())
            }),
            transitions: std::array::from_fn(|i| {
                r.counter_with(GRANT_TRANSITIONS, "to", TRANSITIONS[i])
            }),
            breakglass: r.counter(BREAKGLASS),
            decision: r.histogram(DECISION_SECONDS),
            upstream_connect: r.histogram(UPSTREAM_CONNECT_SECONDS),
            recording_bytes: r.counter_in(RECORDING_BYTES, Unit::Bytes),
            recording_failures: r.counter(RECORDING_FAILURES),
            audit_write_failures: r.counter(AUDIT_WRITE_FAILURES),
            outbox_backlog: r.gauge(ALERT_OUTBOX_BACKLOG),
            grants: std::array::from_fn(|i| {
                r.gauge_with(GRANTS, "state", GRANT_STATES[i].as_str())
            }),
            store_up: r.gauge(STORE_UP),
            audit_up: r.gauge(AUDIT_UP),
        }
        .up()
    }

    /// Until told otherwise, the store and the audit log are taken to work.
    fn up(self) -> Instruments {
        self.store_up.set(1.0);
        self.audit_up.set(1.0);
        self
    }
}

/// Registers instruments on a recorder, describing each with its documentation line.
struct Registrar<'r>(&'r PrometheusRecorder);

impl Registrar<'_> {
    fn counter(&self, name: &'static str) -> Counter {
        self.describe_counter(name, None);
        self.0
            .register_counter(&Key::from_static_name(name), &METADATA)
    }

    fn counter_in(&self, name: &'static str, unit: Unit) -> Counter {
        self.describe_counter(name, Some(unit));
        self.0
            .register_counter(&Key::from_static_name(name), &METADATA)
    }

    fn counter_with(
        &self,
        name: &'static str,
        label: &'static str,
        value: &'static str,
    ) -> Counter {
        self.describe_counter(name, None);
        self.0
            .register_counter(&labelled(name, label, value), &METADATA)
    }

    fn gauge(&self, name: &'static str) -> Gauge {
        self.0
            .describe_gauge(KeyName::from_const_str(name), None, help(name));
        self.0
            .register_gauge(&Key::from_static_name(name), &METADATA)
    }

    fn gauge_with(&self, name: &'static str, label: &'static str, value: &'static str) -> Gauge {
        self.0
            .describe_gauge(KeyName::from_const_str(name), None, help(name));
        self.0
            .register_gauge(&labelled(name, label, value), &METADATA)
    }

    fn histogram(&self, name: &'static str) -> Histogram {
        self.0.describe_histogram(
            KeyName::from_const_str(name),
            Some(Unit::Seconds),
            help(name),
        );
        self.0
            .register_histogram(&Key::from_static_name(name), &METADATA)
    }

    fn describe_counter(&self, name: &'static str, unit: Option<Unit>) {
        self.0
            .describe_counter(KeyName::from_const_str(name), unit, help(name));
    }
}

/// A key with one label, both static.
fn labelled(name: &'static str, label: &'static str, value: &'static str) -> Key {
    Key::from_parts(name, vec![Label::from_static_parts(label, value)])
}

/// The `# HELP` line of each metric.
fn help(name: &str) -> SharedString {
    SharedString::const_str(match name {
        SESSIONS => {
            "Session events by outcome: one per session.started, session.denied and session.ended audit line."
        }
        SESSION_ENDS => "Ended sessions by class of end.",
        SESSIONS_ACTIVE => "Sessions running on a target now.",
        LOGINS => "Successful logins.",
        LOGINS_REFUSED => "Refused logins.",
        DENIALS => "Refusals (sessions, restricted-shell lines, channel requests) by class.",
        GRANT_TRANSITIONS => "Grant transitions made by this process, by state or step reached.",
        BREAKGLASS => "Break-glass grants taken through this process.",
        DECISION_SECONDS => "Time from a session request to its permit or denial.",
        UPSTREAM_CONNECT_SECONDS => {
            "Time from asking for a target connection to being logged in on it."
        }
        RECORDING_BYTES => "Bytes written to recording files.",
        RECORDING_FAILURES => "Recordings that could not be created or written.",
        AUDIT_WRITE_FAILURES => "Failed attempts to write to the audit log.",
        ALERTS_DELIVERED => "Alerts delivered, by sink.",
        ALERT_DELIVERY_FAILURES => "Failed alert delivery attempts, by sink.",
        ALERT_OUTBOX_BACKLOG => "Alert deliveries waiting in the outbox.",
        GRANTS => "Grants in the store by state.",
        STORE_UP => "1 while the store works, 0 while it is faulty.",
        AUDIT_UP => "1 while the audit log can be written, 0 while it cannot.",
        _ => "",
    })
}

/// The installed metrics' instruments, if any.
fn installed() -> Option<&'static Instruments> {
    INSTALLED.get().map(|m| &m.inner.i)
}

/// Reports how long an access decision took (see [`DECISION_SECONDS`]).
pub fn decision_took(elapsed: Duration) {
    if let Some(i) = installed() {
        i.decision.record(elapsed.as_secs_f64());
    }
}

/// Reports how long reaching a target took (see [`UPSTREAM_CONNECT_SECONDS`]).
pub fn upstream_connected(elapsed: Duration) {
    if let Some(i) = installed() {
        i.upstream_connect.record(elapsed.as_secs_f64());
    }
}

/// Reports `bytes` written to a recording file in one write.
pub fn recording_written(bytes: u64) {
    if let Some(i) = installed() {
        i.recording_bytes.increment(bytes);
    }
}

/// Reports a recording that could not be created or written.
pub fn recording_failed() {
    if let Some(i) = installed() {
        i.recording_failures.increment(1);
    }
}

/// Reports a failed attempt to write to the audit log.
pub fn audit_write_failed() {
    if let Some(i) = installed() {
        i.audit_write_failures.increment(1);
    }
}

/// The registry as the global `metrics` recorder, shared with the [`Metrics`] that built it.
struct Shared(Arc<PrometheusRecorder>);

impl Recorder for Shared {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.0.register_counter(key, metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.0.register_gauge(key, metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.0.register_histogram(key, metadata)
    }
}
