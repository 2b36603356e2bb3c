//! Alerts: telling people that something happened, even when the way to tell them is broken.
//!
//! Break-glass access and grant transitions must reach the humans who watch them, and an alert
//! sink that is down must neither block an emergency nor lose the alert. So every alert goes
//! through a durable outbox in the store ([`outbox`]): one row per alert and configured sink,
//! written in one transaction before any delivery is tried. A delivery loop ([`Dispatcher`])
//! picks due rows, delivers them with the sink's timeout and either marks them delivered or
//! schedules the next try with exponential backoff, forever, across restarts.
//!
//! Delivery is at least once: a process that dies between a sink's answer and the row update
//! delivers again later, so receivers that care should deduplicate on the alert `id`.
//!
//! Sinks ([`AlertsConfig`]): a `webhook` (HTTP POST of the JSON alert, or a Slack-style message),
//! `syslog` (RFC 5424 to a local datagram socket or a UDP address) and `command` (a program that
//! reads the JSON alert on stdin). Each sink has a stable name (`webhook:<url>`,
//! `syslog:<socket or address>`, `command:<program>`) that keys its outbox rows. Rows whose sink
//! is no longer configured stay in the outbox untouched: the loop warns about them at start and
//! every hour, they are delivered if the sink comes back, and [`Alerts::forget_sink`] drops them
//! when an operator decides the sink is gone for good.
//!
//! Every delivery and every failed attempt is reported to a [`DeliveryObserver`], which the
//! audit log implements.

mod command;
mod dispatch;
mod outbox;
mod syslog;
mod webhook;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::{error, warn};
use uuid::Uuid;

use crate::events::Event;
use crate::store::StoreError;

pub use dispatch::Dispatcher;
use outbox::AlertOutbox;

/// The longest timeout a sink may have: a sink slower than this is broken, and a claim on an
/// outbox row lasts about this long, so a crashed attempt is retried within minutes.
pub const MAX_SINK_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a webhook may take when its config names no `timeout`.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a command may run when its config names no `timeout`.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a syslog datagram may wait for room in the socket; a datagram socket has no reply
/// to wait for, so this only guards against a receiver that stopped reading.
pub const SYSLOG_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// The `[alerts]` section of `gatehouse.toml`: the sinks every alert goes to.
///
/// An empty section (the default) means alerts are only logged; that is allowed so that a fresh
/// install runs, and `gatehouse check` can warn about it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// `[[alerts.webhook]]` entries.
    #[serde(default)]
    pub webhook: Vec<WebhookSink>,
    /// `[[alerts.syslog]]` entries.
    #[serde(default)]
    pub syslog: Vec<SyslogSink>,
    /// `[[alerts.command]]` entries.
    #[serde(default)]
    pub command: Vec<CommandSink>,
}

/// A webhook (`[[alerts.webhook]]`): the most common way to reach a chat channel or a pager.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSink {
    /// Where to POST; `http://` or `https://`.
    pub url: String,
    /// What to POST.
    #[serde(default)]
    pub format: WebhookFormat,
    /// How long one attempt may take, as `"5s"` or `"1m"`.
    #[serde(
        default = "default_webhook_timeout",
        deserialize_with = "crate::duration::serde_text::deserialize"
    )]
    pub timeout: Duration,
}

/// The body a webhook receives, so that chat tools can be fed without a translating proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The alert as JSON (the same document a command reads).
    #[default]
    Json,
    /// `{"text": "..."}`, which Slack and its look-alikes display as a message.
    Slack,
}

/// A syslog receiver (`[[alerts.syslog]]`): where security teams already collect auth events.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSink {
    /// A local datagram socket such as `/dev/log`.
    pub socket: Option<PathBuf>,
    /// A UDP `host:port` such as `127.0.0.1:514`.
    pub address: Option<String>,
    /// `auth` (4) or `authpriv` (10, the default: alerts carry reasons that may be private).
    #[serde(default)]
    pub facility: SyslogFacility,
}

/// The syslog facility, which decides the log file a receiver files the message in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFacility {
    /// `auth` (4).
    Auth,
    /// `authpriv` (10).
    #[default]
    Authpriv,
}

impl SyslogFacility {
    /// The facility number that goes into the message's PRI.
    pub fn code(self) -> u8 {
        match self {
            SyslogFacility::Auth => 4,
            SyslogFacility::Authpriv => 10,
        }
    }
}

/// A program to run for every alert (`[[alerts.command]]`): the escape hatch for anything the
/// other sinks cannot reach (a pager CLI, a mail command, a ticket script).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSink {
    /// The program, as an absolute path (no `PATH` lookup, so what runs is what was configured).
    pub program: PathBuf,
    /// Its arguments; no shell is involved.
    #[serde(default)]
    pub args: Vec<String>,
    /// How long it may run before it is killed, as `"10s"` or `"1m"`.
    #[serde(
        default = "default_command_timeout",
        deserialize_with = "crate::duration::serde_text::deserialize"
    )]
    pub timeout: Duration,
}

fn default_webhook_timeout() -> Duration {
    DEFAULT_WEBHOOK_TIMEOUT
}

fn default_command_timeout() -> Duration {
    DEFAULT_COMMAND_TIMEOUT
}

/// A sink entry that parses but cannot work; the message names the entry so the operator can
/// find it in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry}: {message}")]
pub struct AlertsConfigError {
    /// Which entry, as `[[alerts.webhook]] #1`.
    pub entry: String,
    /// What is wrong.
    pub message: String,
}

impl AlertsConfig {
    /// Checks what serde cannot: URL schemes, one syslog destination per entry, absolute
    /// program paths, sane timeouts and no sink configured twice (two entries with one name
    /// would share outbox rows).
    pub fn validate(&self) -> Result<(), AlertsConfigError> {
        let mut seen = std::collections::HashSet::new();
        let entries = self
            .webhook
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("[[alerts.webhook]] #{}", i + 1), w.check()))
            .chain(
                self.syslog
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (format!("[[alerts.syslog]] #{}", i + 1), s.check())),
            )
            .chain(
                self.command
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (format!("[[alerts.command]] #{}", i + 1), c.check())),
            );
        for (entry, checked) in entries {
            let name = checked.map_err(|message| AlertsConfigError {
                entry: entry.clone(),
                message,
            })?;
            if !seen.insert(name.clone()) {
                return Err(AlertsConfigError {
                    entry,
                    message: format!("the sink {} is configured twice", sink_label(&name)),
                });
            }
        }
        Ok(())
    }

    /// True when no sink is configured, so that callers can say "alerts are only logged".
    pub fn is_empty(&self) -> bool {
        self.webhook.is_empty() && self.syslog.is_empty() && self.command.is_empty()
    }
}

fn check_timeout(timeout: Duration) -> Result<(), String> {
    if timeout.is_zero() || timeout > MAX_SINK_TIMEOUT {
        return Err(format!(
            "timeout must be between 1s and {}",
            crate::duration::format(MAX_SINK_TIMEOUT)
        ));
    }
    Ok(())
}

impl WebhookSink {
    /// Validates the entry and returns its stable sink name.
    fn check(&self) -> Result<String, String> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("url {:?} is not a URL: {e}", self.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "url must start with http:// or https://, not {}://",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("url has no host".to_owned());
        }
        check_timeout(self.timeout)?;
        Ok(self.name())
    }

    /// The stable name that keys this sink's outbox rows.
    pub fn name(&self) -> String {
        format!("webhook:{}", self.url)
    }
}

impl SyslogSink {
    /// Validates the entry and returns its stable sink name.
    fn check(&self) -> Result<String, String> {
        match (&self.socket, &self.address) {
            (Some(socket), None) => {
                if !socket.is_absolute() {
                    return Err(format!(
                        "socket {} must be an absolute path",
                        socket.display()
                    ));
                }
            }
            (None, Some(address)) => {
                let (host, port) = address
                    .rsplit_once(':')
                    .ok_or_else(|| format!("address {address:?} must be host:port"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() || host.contains(char::is_whitespace) {
                    return Err(format!("address {address:?} has no usable host"));
                }
                if !matches!(port.parse::<u16>(), Ok(p) if p != 0) {
                    return Err(format!("address {address:?} has no valid port"));
                }
            }
            _ => return Err("give exactly one of socket or address".to_owned()),
        }
        Ok(self.name())
    }

    /// The stable name that keys this sink's outbox rows.
    pub fn name(&self) -> String {
        match (&self.socket, &self.address) {
            (Some(socket), _) => format!("syslog:{}", socket.display()),
            (None, Some(address)) => format!("syslog:{address}"),
            (None, None) => "syslog:".to_owned(),
        }
    }
}

impl CommandSink {
    /// Validates the entry and returns its stable sink name.
    fn check(&self) -> Result<String, String> {
        if !self.program.is_absolute() {
            return Err(format!(
                "program {} must be an absolute path",
                self.program.display()
            ));
        }
        check_timeout(self.timeout)?;
        Ok(self.name())
    }

    /// The stable name that keys this sink's outbox rows.
    pub fn name(&self) -> String {
        format!("command:{}", self.program.display())
    }
}

/// How a sink is shown in logs, reports and the audit log.
///
/// Webhook URLs often are the credential (a Slack incoming-webhook URL is a bearer token), so
/// beyond `scheme://host:port/` they are replaced by a fingerprint of the whole name: distinct
/// webhooks stay distinguishable without the secret landing in every log line.
pub fn sink_label(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let Some(url) = name.strip_prefix("webhook:") else {
        return name.to_owned();
    };
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return "webhook:(invalid url)".to_owned();
    };
    let plain = parsed.username().is_empty()
        && parsed.password().is_none()
        && parsed.query().is_none()
        && parsed.fragment().is_none()
        && parsed.path() == "/";
    if plain {
        return name.to_owned();
    }
    let digest = Sha256::digest(name.as_bytes());
    let fingerprint: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "webhook:{}://{}{}/…#{}",
        parsed.scheme(),
        parsed.host_str().unwrap_or(""),
        port,
        fingerprint
    )
}

// ---------------------------------------------------------------------------------------------
// The alert
// ---------------------------------------------------------------------------------------------

/// Which events raise alerts: the ones a human may need to act on or later account for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertEvent {
    /// Emergency access was taken.
    #[serde(rename = "breakglass.activated")]
    BreakglassActivated,
    /// Someone asked for a grant; approvers need to know.
    #[serde(rename = "grant.requested")]
    GrantRequested,
    /// A grant was approved.
    #[serde(rename = "grant.approved")]
    GrantApproved,
    /// A grant request was refused.
    #[serde(rename = "grant.denied")]
    GrantDenied,
    /// A grant was ended early.
    #[serde(rename = "grant.revoked")]
    GrantRevoked,
    /// A grant ran out.
    #[serde(rename = "grant.expired")]
    GrantExpired,
    /// A session was refused.
    #[serde(rename = "session.denied")]
    SessionDenied,
    /// The store or the audit log failed; new sessions are refused until it recovers.
    #[serde(rename = "bastion.degraded")]
    BastionDegraded,
    /// The failed part recovered.
    #[serde(rename = "bastion.recovered")]
    BastionRecovered,
    /// Another node stopped heartbeating; its open sessions were closed in the index.
    #[serde(rename = "node.lost")]
    NodeLost,
}

impl AlertEvent {
    /// Every alerting event, for documentation and tests.
    pub const ALL: [AlertEvent; 10] = [
        AlertEvent::BreakglassActivated,
        AlertEvent::GrantRequested,
        AlertEvent::GrantApproved,
        AlertEvent::GrantDenied,
        AlertEvent::GrantRevoked,
        AlertEvent::GrantExpired,
        AlertEvent::SessionDenied,
        AlertEvent::BastionDegraded,
        AlertEvent::BastionRecovered,
        AlertEvent::NodeLost,
    ];

    /// The dotted name, the same one the event log uses.
    pub fn name(self) -> &'static str {
        match self {
            AlertEvent::BreakglassActivated => "breakglass.activated",
            AlertEvent::GrantRequested => "grant.requested",
            AlertEvent::GrantApproved => "grant.approved",
            AlertEvent::GrantDenied => "grant.denied",
            AlertEvent::GrantRevoked => "grant.revoked",
            AlertEvent::GrantExpired => "grant.expired",
            AlertEvent::SessionDenied => "session.denied",
            AlertEvent::BastionDegraded => "bastion.degraded",
            AlertEvent::BastionRecovered => "bastion.recovered",
            AlertEvent::NodeLost => "node.lost",
        }
    }

    /// The event named `name`, if it raises alerts; matching on names keeps this module
    /// independent of which other events the event hub knows.
    pub fn from_name(name: &str) -> Option<AlertEvent> {
        AlertEvent::ALL.into_iter().find(|e| e.name() == name)
    }

    /// How urgent the event is: break-glass pages someone, refusals and revocations deserve a
    /// look, the normal grant life cycle is information.
    pub fn severity(self) -> Severity {
        match self {
            AlertEvent::BreakglassActivated | AlertEvent::BastionDegraded => Severity::Critical,
            AlertEvent::GrantDenied
            | AlertEvent::GrantRevoked
            | AlertEvent::SessionDenied
            | AlertEvent::NodeLost => Severity::Warning,
            AlertEvent::GrantRequested
            | AlertEvent::GrantApproved
            | AlertEvent::GrantExpired
            | AlertEvent::BastionRecovered => Severity::Info,
        }
    }
}

impl fmt::Display for AlertEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How urgent an alert is; receivers route on it and syslog maps it to its own severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Someone should look now.
    Critical,
    /// Someone should look.
    Warning,
    /// For the record.
    Info,
}

impl Severity {
    /// The name used in the JSON alert.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    /// The RFC 5424 severity: crit (2), warning (4), informational (6).
    pub fn syslog_code(self) -> u8 {
        match self {
            Severity::Critical => 2,
            Severity::Warning => 4,
            Severity::Info => 6,
        }
    }
}

/// One alert, as every sink receives it (webhooks and commands get exactly this as JSON).
///
/// Every field is always present in the JSON (null when unknown) so that receivers can rely on
/// one shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Unique and time-ordered (UUID v7): receivers deduplicate on it.
    #[serde(with = "uuid_text")]
    pub id: Uuid,
    /// When the event happened (RFC 3339, UTC, milliseconds).
    #[serde(with = "time_text")]
    pub time: DateTime<Utc>,
    /// How urgent it is.
    pub severity: Severity,
    /// What happened.
    pub event: AlertEvent,
    /// The person the event is about.
    pub user: Option<String>,
    /// Who acted, when not the user (the approver, the revoker).
    pub actor: Option<String>,
    /// The target.
    pub target: Option<String>,
    /// The role.
    pub role: Option<String>,
    /// The grant.
    pub grant_id: Option<i64>,
    /// The session, when one is known.
    pub session_id: Option<String>,
    /// Why (request reason, denial reason, revocation reason).
    pub reason: Option<String>,
    /// The node where it happened (`[cluster] node_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl Alert {
    /// A new alert for `event`, now, with the event's usual severity and no details yet.
    pub fn new(event: AlertEvent) -> Alert {
        let now = Utc::now();
        Alert {
            id: Uuid::now_v7(),
            // Milliseconds, as written in the JSON, so that an alert read back from the outbox
            // equals the one that was queued.
            time: DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now),
            severity: event.severity(),
            event,
            user: None,
            actor: None,
            target: None,
            role: None,
            grant_id: None,
            session_id: None,
            reason: None,
            node: None,
        }
    }

    /// The alert for an event from the event hub, or `None` for events that do not alert
    /// (logins, session starts and ends, activations).
    pub fn from_event(event: &Event) -> Option<Alert> {
        let kind = AlertEvent::from_name(event.kind?.name())?;
        Some(Alert {
            user: event.user.clone(),
            actor: event.actor.clone(),
            target: event.target.clone(),
            role: event.role.clone(),
            grant_id: event.grant_id,
            session_id: event.session_id.clone(),
            reason: event.reason.clone(),
            ..Alert::new(kind)
        })
    }

    /// The JSON document sinks receive.
    pub fn to_json(&self) -> String {
        // Serializing plain strings, numbers and enums cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

mod uuid_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use uuid::Uuid;

    pub fn serialize<S: Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        let text = String::deserialize(d)?;
        Uuid::parse_str(&text).map_err(serde::de::Error::custom)
    }
}

mod time_text {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Observing deliveries
// ---------------------------------------------------------------------------------------------

/// Told about every delivery and every failed attempt, so that the audit log can show that an
/// alert went out (or keeps failing) without this module knowing about the audit log.
///
/// Called from delivery tasks: implementations must be quick and must not block.
pub trait DeliveryObserver: Send + Sync + 'static {
    /// `sink` (its [`sink_label`]) acknowledged the alert.
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

// ---------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------

/// When failed deliveries are tried again.
///
/// The delay doubles from `base` up to `cap` and is never given up on: an alert that cannot be
/// delivered is still wanted when the sink comes back. Tests shorten it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay after the first failure (1 s).
    pub base: Duration,
    /// The longest delay (60 s).
    pub cap: Duration,
    /// How often the loop looks for rows that another process (an operator command) queued,
    /// when it has nothing due (5 s); its own process wakes it at once.
    pub poll: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            poll: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The delay after `attempt` (from 1) failed: `base × 2^(attempt−1)`, at most `cap`, less a
    /// random jitter of up to a quarter so that alerts queued together do not retry in lockstep.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doubling = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        let full = self.base.saturating_mul(doubling).min(self.cap);
        let jitter: f64 = rand::random_range(0.0..=0.25);
        full.mul_f64(1.0 - jitter)
    }
}

// ---------------------------------------------------------------------------------------------
// The facade
// ---------------------------------------------------------------------------------------------

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
struct SinkEntry {
    /// The stable name that keys outbox rows.
    name: String,
    /// The name as shown in logs and reports.
    label: String,
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
    async fn deliver(&self, alert: &Alert, payload: &str) -> Result<(), String> {
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
struct Inner {
    outbox: Arc<dyn AlertOutbox>,
    sinks: Vec<SinkEntry>,
    /// The configured sinks' stable names, the set the outbox claims rows of.
    known: Vec<String>,
    /// How long a claim on a row lasts: past it, a crashed attempt is tried again.
    lease: Duration,
    observer: Arc<dyn DeliveryObserver>,
    retry: RetryPolicy,
    /// Wakes the delivery loop when rows are queued or rescheduled.
    wake: Notify,
}

impl Inner {
    fn sink(&self, name: &str) -> Option<&SinkEntry> {
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

/// Shared pieces of the alert tests: an outbox in a temporary database and a tiny HTTP receiver.
#[cfg(test)]
pub(crate) mod testkit {
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinSet;
    use uuid::Uuid;

    use super::RetryPolicy;
    use super::{Alert, AlertEvent, Alerts, AlertsConfig, Observation, RecordingObserver};
    use crate::store::SqliteStore;

    /// A typical alert: alice on web-01 as emergency, grant 17.
    pub fn alert(event: AlertEvent) -> Alert {
        Alert {
            user: Some("alice".into()),
            target: Some("web-01".into()),
            role: Some("emergency".into()),
            grant_id: Some(17),
            reason: Some("primary down".into()),
            ..Alert::new(event)
        }
    }

    /// Retries within milliseconds, so that tests run on real time and stay fast.
    pub fn fast_retry() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(200),
            poll: Duration::from_secs(1),
        }
    }

    /// A loopback port that nothing listens on (for now).
    pub fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    /// Alerts on a database file in a temporary directory, with a recording observer.
    pub struct Harness {
        _dir: tempfile::TempDir,
        path: PathBuf,
        pub alerts: Alerts,
        pub observer: Arc<RecordingObserver>,
    }

    impl Harness {
        pub async fn new(config: &AlertsConfig) -> Harness {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("gatehouse.db");
            let observer = Arc::new(RecordingObserver::default());
            let alerts = open(&path, config, observer.clone()).await;
            Harness {
                _dir: dir,
                path,
                alerts,
                observer,
            }
        }

        /// Simulates a restart: a new store handle on the same file and new sinks.
        pub async fn reopen(&mut self, config: &AlertsConfig) {
            self.alerts = open(&self.path, config, self.observer.clone()).await;
        }

        /// A second handle on the database, as another process would open it.
        pub async fn store(&self) -> SqliteStore {
            SqliteStore::open(&self.path).await.unwrap()
        }

        /// Another process on the same database, reporting to the same observer.
        pub async fn second_process(&self, config: &AlertsConfig) -> Alerts {
            open(&self.path, config, self.observer.clone()).await
        }

        /// Waits until `alert` was delivered `n` times and has no row left to deliver.
        pub async fn wait_delivered(&self, alert: Uuid, n: usize) {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            loop {
                let delivered = self
                    .observer
                    .observations()
                    .iter()
                    .filter(|o| matches!(o, Observation::Delivered { alert_id, .. } if *alert_id == alert))
                    .count();
                let pending = self.alerts.pending().await.unwrap();
                if delivered >= n && pending.iter().all(|p| p.alert_id != alert) {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "alert {alert} not delivered {n} times: {:?}; pending {pending:?}",
                    self.observer.observations()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        /// Waits until at least `n` failed attempts were observed.
        pub async fn wait_failures(&self, n: usize) {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            while self.failures().len() < n {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "fewer than {n} failures: {:?}",
                    self.observer.observations()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        /// The failed attempts observed: (attempt number, error).
        pub fn failures(&self) -> Vec<(u32, String)> {
            self.observer
                .observations()
                .into_iter()
                .filter_map(|o| match o {
                    Observation::Failed { attempt, error, .. } => Some((attempt, error)),
                    Observation::Delivered { .. } => None,
                })
                .collect()
        }

        /// How many deliveries were observed.
        pub fn delivered(&self) -> usize {
            self.observer
                .observations()
                .iter()
                .filter(|o| matches!(o, Observation::Delivered { .. }))
                .count()
        }
    }

    async fn open(
        path: &std::path::Path,
        config: &AlertsConfig,
        observer: Arc<RecordingObserver>,
    ) -> Alerts {
        let store = std::sync::Arc::new(SqliteStore::open(path).await.unwrap());
        Alerts::with_retry(store, config, observer, fast_retry()).unwrap()
    }

    /// How the test receiver answers one request.
    #[derive(Debug, Clone, Copy)]
    pub enum Reply {
        /// This status, with the body `try later`.
        Status(u16),
        /// Reads the request and never answers.
        Hang,
        /// Answers 200 after this long.
        Delay(Duration),
    }

    /// One request the receiver got.
    #[derive(Debug, Clone)]
    pub struct Request {
        pub method: String,
        pub path: String,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Request {
        pub fn header(&self, name: &str) -> Option<String> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        }
    }

    #[derive(Default)]
    struct Seen {
        script: Vec<Reply>,
        requests: Vec<Request>,
        connections: usize,
    }

    /// A minimal HTTP/1.1 receiver on loopback: answers each request with the next scripted
    /// reply (200 once the script is used up) and closes the connection.
    pub struct HttpServer {
        port: u16,
        seen: Arc<Mutex<Seen>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for HttpServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl HttpServer {
        pub async fn start(script: Vec<Reply>) -> HttpServer {
            HttpServer::listen(TcpListener::bind("127.0.0.1:0").await.unwrap(), script)
        }

        pub async fn start_on(port: u16, script: Vec<Reply>) -> HttpServer {
            HttpServer::listen(
                TcpListener::bind(("127.0.0.1", port)).await.unwrap(),
                script,
            )
        }

        fn listen(listener: TcpListener, script: Vec<Reply>) -> HttpServer {
            let port = listener.local_addr().unwrap().port();
            let seen = Arc::new(Mutex::new(Seen {
                script,
                ..Seen::default()
            }));
            let shared = seen.clone();
            let task = tokio::spawn(async move {
                let mut connections = JoinSet::new();
                while let Ok((stream, _)) = listener.accept().await {
                    shared.lock().unwrap().connections += 1;
                    connections.spawn(serve(stream, shared.clone()));
                }
            });
            HttpServer { port, seen, task }
        }

        pub fn port(&self) -> u16 {
            self.port
        }

        pub fn url(&self, path: &str) -> String {
            format!("http://127.0.0.1:{}{path}", self.port)
        }

        pub fn requests(&self) -> Vec<Request> {
            self.seen.lock().unwrap().requests.clone()
        }

        pub fn connections(&self) -> usize {
            self.seen.lock().unwrap().connections
        }
    }

    async fn serve(mut stream: TcpStream, seen: Arc<Mutex<Seen>>) {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        };
        let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_owned();
        let path = first.next().unwrap_or("").to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while data.len() < head_end + length {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
        let body = data[head_end..head_end + length].to_vec();
        let reply = {
            let mut seen = seen.lock().unwrap();
            seen.requests.push(Request {
                method,
                path,
                headers,
                body,
            });
            if seen.script.is_empty() {
                None
            } else {
                Some(seen.script.remove(0))
            }
        };
        let status = match reply {
            None => 200,
            Some(Reply::Status(status)) => status,
            Some(Reply::Hang) => {
                std::future::pending::<()>().await;
                return;
            }
            Some(Reply::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                200
            }
        };
        let body = if status == 200 { "ok" } else { "try later" };
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    fn parse(text: &str) -> Result<AlertsConfig, String> {
        let config: AlertsConfig = toml::from_str::<toml::Table>(text)
            .map_err(|e| e.to_string())?
            .remove("alerts")
            .unwrap_or(toml::Value::Table(toml::Table::new()))
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn reads_the_documented_config() {
        let config = parse(
            r#"
            [[alerts.webhook]]
            url = "https://hooks.example.com/gatehouse"

            [[alerts.webhook]]
            url = "https://hooks.slack.com/services/T0/B0/xyz"
            format = "slack"
            timeout = "10s"

            [[alerts.syslog]]
            socket = "/dev/log"

            [[alerts.syslog]]
            address = "127.0.0.1:514"
            facility = "auth"

            [[alerts.command]]
            program = "/usr/local/bin/page-oncall"
            args = ["--team", "infra"]
            timeout = "1m"
            "#,
        )
        .unwrap();
        assert_eq!(config.webhook.len(), 2);
        assert_eq!(config.webhook[0].format, WebhookFormat::Json);
        assert_eq!(config.webhook[0].timeout, DEFAULT_WEBHOOK_TIMEOUT);
        assert_eq!(config.webhook[1].format, WebhookFormat::Slack);
        assert_eq!(config.webhook[1].timeout, Duration::from_secs(10));
        assert_eq!(config.syslog[0].facility, SyslogFacility::Authpriv);
        assert_eq!(config.syslog[1].facility, SyslogFacility::Auth);
        assert_eq!(config.command[0].args, vec!["--team", "infra"]);
        assert_eq!(config.command[0].timeout, Duration::from_secs(60));
        let names: Vec<String> = config
            .webhook
            .iter()
            .map(WebhookSink::name)
            .chain(config.syslog.iter().map(SyslogSink::name))
            .chain(config.command.iter().map(CommandSink::name))
            .collect();
        assert_eq!(
            names,
            vec![
                "webhook:https://hooks.example.com/gatehouse",
                "webhook:https://hooks.slack.com/services/T0/B0/xyz",
                "syslog:/dev/log",
                "syslog:127.0.0.1:514",
                "command:/usr/local/bin/page-oncall",
            ]
        );
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn refuses_sinks_that_cannot_work() {
        for (text, expected) in [
            (
                "[[alerts.webhook]]\nurl = \"ftp://x.example/\"",
                "[[alerts.webhook]] #1: url must start with http:// or https://",
            ),
            (
                "[[alerts.webhook]]\nurl = \"hooks.example.com\"",
                "is not a URL",
            ),
            (
                "[[alerts.webhook]]\nurl = \"https://x.example/\"\ntimeout = \"5\"",
                "invalid duration",
            ),
            (
                "[[alerts.webhook]]\nurl = \"https://x.example/\"\ntimeout = \"2h\"",
                "timeout must be between 1s and 10m",
            ),
            (
                "[[alerts.webhook]]\nurl = \"https://x.example/\"\nformat = \"teams\"",
                "unknown variant",
            ),
            (
                "[[alerts.webhook]]\nurl = \"https://x.example/\"\nsecret = \"x\"",
                "unknown field",
            ),
            ("[alerts]\npagerduty = []", "unknown field"),
            (
                "[[alerts.syslog]]\nsocket = \"/dev/log\"\naddress = \"127.0.0.1:514\"",
                "[[alerts.syslog]] #1: give exactly one of socket or address",
            ),
            ("[[alerts.syslog]]", "give exactly one of socket or address"),
            (
                "[[alerts.syslog]]\naddress = \"127.0.0.1\"",
                "must be host:port",
            ),
            (
                "[[alerts.syslog]]\naddress = \"127.0.0.1:0\"",
                "no valid port",
            ),
            (
                "[[alerts.syslog]]\nsocket = \"dev/log\"",
                "must be an absolute path",
            ),
            (
                "[[alerts.syslog]]\nsocket = \"/dev/log\"\nfacility = \"local0\"",
                "unknown variant",
            ),
            (
                "[[alerts.command]]\nprogram = \"page-oncall\"",
                "[[alerts.command]] #1: program page-oncall must be an absolute path",
            ),
            (
                "[[alerts.command]]\nprogram = \"/bin/a\"\n[[alerts.command]]\nprogram = \"/bin/a\"",
                "[[alerts.command]] #2: the sink command:/bin/a is configured twice",
            ),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn labels_hide_webhook_secrets_but_keep_sinks_apart() {
        let a = sink_label("webhook:https://hooks.slack.com/services/T0/B0/secret1");
        let b = sink_label("webhook:https://hooks.slack.com/services/T0/B0/secret2");
        assert!(a.starts_with("webhook:https://hooks.slack.com/…#"), "{a}");
        assert!(!a.contains("secret") && !a.contains("services"), "{a}");
        assert_ne!(a, b);
        assert!(!sink_label("webhook:https://u:pw@h.example/").contains("pw"));
        assert_eq!(
            sink_label("webhook:https://h.example:8443/"),
            "webhook:https://h.example:8443/"
        );
        assert_eq!(sink_label("syslog:/dev/log"), "syslog:/dev/log");
        assert_eq!(sink_label("command:/bin/page"), "command:/bin/page");
    }

    #[test]
    fn the_json_alert_has_every_field_and_reads_back() {
        let alert = Alert {
            user: Some("alice".into()),
            reason: Some("primary down".into()),
            grant_id: Some(17),
            ..Alert::new(AlertEvent::BreakglassActivated)
        };
        let json: serde_json::Value = serde_json::from_str(&alert.to_json()).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec![
            "id",
            "time",
            "severity",
            "event",
            "user",
            "actor",
            "target",
            "role",
            "grant_id",
            "session_id",
            "reason",
        ];
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(sorted, expected);
        assert_eq!(json["event"], "breakglass.activated");
        assert_eq!(json["severity"], "critical");
        assert_eq!(json["id"].as_str().unwrap().len(), 36);
        assert_eq!(alert.id.get_version_num(), 7);
        assert!(json["target"].is_null());
        let back: Alert = serde_json::from_value(json).unwrap();
        assert_eq!(back, alert);
    }

    #[test]
    fn events_map_to_alerts_with_a_severity() {
        let mut event = Event::new(EventKind::SessionDenied);
        event.user = Some("bob".into());
        event.target = Some("db-01".into());
        event.reason = Some("no grant".into());
        event.session_id = Some("s-1".into());
        let alert = Alert::from_event(&event).unwrap();
        assert_eq!(alert.event, AlertEvent::SessionDenied);
        assert_eq!(alert.severity, Severity::Warning);
        assert_eq!(alert.user.as_deref(), Some("bob"));
        assert_eq!(alert.target.as_deref(), Some("db-01"));
        assert_eq!(alert.reason.as_deref(), Some("no grant"));
        assert_eq!(alert.session_id.as_deref(), Some("s-1"));
        assert!(Alert::from_event(&Event::new(EventKind::SessionStarted)).is_none());
        assert!(Alert::from_event(&Event::default()).is_none());
        for event in AlertEvent::ALL {
            assert_eq!(AlertEvent::from_name(event.name()), Some(event));
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(json, format!("\"{}\"", event.name()));
        }
        assert_eq!(
            AlertEvent::BreakglassActivated.severity(),
            Severity::Critical
        );
        assert_eq!(AlertEvent::GrantRequested.severity(), Severity::Info);
    }

    #[test]
    fn retries_double_up_to_the_cap_with_jitter() {
        let policy = RetryPolicy::default();
        for (attempt, full) in [(1, 1), (2, 2), (3, 4), (4, 8), (6, 32), (7, 60), (100, 60)] {
            let full = Duration::from_secs(full);
            for _ in 0..50 {
                let d = policy.delay(attempt);
                assert!(d <= full && d >= full.mul_f64(0.75), "{attempt}: {d:?}");
            }
        }
        assert!(policy.delay(0) <= Duration::from_secs(1));
    }

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
