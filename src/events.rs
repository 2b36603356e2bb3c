//! One place through which every decision and state change passes.
//!
//! Grant transitions, denials, logins and sessions are [`Event`]s handed to [`Events::emit`],
//! which logs them through `tracing`; the audit log and the alert sinks hook in here, and any
//! other listener (such as the metrics) subscribes as an [`EventSink`], so no caller needs to
//! know who listens.

use serde::Serialize;
use tracing::{error, info, warn};

use std::sync::{Arc, Mutex};

use crate::alerts::{Alert, Alerts, DeliveryObserver};
use crate::audit::{AuditLog, AuditWriter};
use crate::health::Change;
use crate::outcome::{DenialClass, Ending};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventKind {
    /// A user logged in.
    #[serde(rename = "login")]
    Login,
    /// A login was refused.
    #[serde(rename = "login.refused")]
    LoginRefused,
    /// The policy was reloaded (or a reload failed).
    #[serde(rename = "policy.reloaded")]
    PolicyReloaded,
    /// The bastion started.
    #[serde(rename = "bastion.started")]
    BastionStarted,
    /// The store or the audit log failed: new sessions are refused.
    #[serde(rename = "bastion.degraded")]
    BastionDegraded,
    /// The failed part works again: new sessions are allowed.
    #[serde(rename = "bastion.recovered")]
    BastionRecovered,
    /// The grants could not be confirmed for `[cluster] lost_grace`: running sessions were
    /// closed, since a revocation could no longer be seen.
    #[serde(rename = "bastion.sessions_closed")]
    SessionsClosed,
    /// Another node stopped heartbeating; its open sessions were closed in the index.
    #[serde(rename = "node.lost")]
    NodeLost,
    /// Emergency access was taken.
    #[serde(rename = "breakglass.activated")]
    BreakglassActivated,
    /// A break-glass session was reviewed.
    #[serde(rename = "review.acked")]
    ReviewAcked,
    /// A one-time sign-in link for the web console was handed out (`ssh bastion web`).
    #[serde(rename = "web.link_issued")]
    WebLinkIssued,
    /// A browser signed in to the web console.
    #[serde(rename = "web.signed_in")]
    WebSignedIn,
    /// A sign-in to the web console was refused (a used, expired or unknown link).
    #[serde(rename = "web.sign_in_refused")]
    WebSignInRefused,
    /// A browser signed out of the web console.
    #[serde(rename = "web.signed_out")]
    WebSignedOut,
    /// Someone watched or downloaded a session's recording.
    #[serde(rename = "session.viewed")]
    SessionViewed,
    /// Someone read the audit log through the web console or the API.
    #[serde(rename = "audit.viewed")]
    AuditViewed,
    /// A grant was requested.
    #[serde(rename = "grant.requested")]
    GrantRequested,
    /// A grant got an approval (it may now be active).
    #[serde(rename = "grant.approved")]
    GrantApproved,
    /// A grant became active.
    #[serde(rename = "grant.activated")]
    GrantActivated,
    /// A request was refused.
    #[serde(rename = "grant.denied")]
    GrantDenied,
    /// A grant was ended early.
    #[serde(rename = "grant.revoked")]
    GrantRevoked,
    /// A grant ran out.
    #[serde(rename = "grant.expired")]
    GrantExpired,
    /// A request was not decided in time.
    #[serde(rename = "grant.lapsed")]
    GrantLapsed,
    /// A decision on a grant was refused for separation of duties: the requester deciding
    /// their own request, or someone who may not decide for the role.
    #[serde(rename = "grant.refused")]
    GrantRefused,
    /// A critical alert (break-glass) was handed to every sink at once; the line names the
    /// alert and which sinks took it before the wait ended (`alert.delivered` lines follow).
    #[serde(rename = "alert.sent")]
    AlertSent,
    /// A session was refused.
    #[serde(rename = "session.denied")]
    SessionDenied,
    /// A session started on a target.
    #[serde(rename = "session.started")]
    SessionStarted,
    /// A session ended.
    #[serde(rename = "session.ended")]
    SessionEnded,
    /// One operation of a file session (SFTP): its path, bytes, result.
    #[serde(rename = "file.op")]
    FileOperation,
    /// A session was put on legal hold: retention keeps it until the hold is released.
    #[serde(rename = "session.held")]
    SessionHeld,
    /// A session's legal hold was released.
    #[serde(rename = "session.released")]
    SessionReleased,
    /// Retention deleted a session's recording and its index rows (`[recordings] keep`).
    #[serde(rename = "recording.deleted")]
    RecordingDeleted,
    /// An operator created an API token (the line names its id and scope, never its secret).
    #[serde(rename = "token.created")]
    TokenCreated,
    /// An operator revoked an API token.
    #[serde(rename = "token.revoked")]
    TokenRevoked,
    /// A person is no longer in the policy in force (gone from the directory, disabled there,
    /// or removed from the policy files); their grants and sessions ended with it.
    #[serde(rename = "user.removed")]
    UserRemoved,
    /// The directory was read and its state put in force.
    #[serde(rename = "directory.synced")]
    DirectorySynced,
    /// The directory could not be read; the last good state stays in force.
    #[serde(rename = "directory.sync_failed")]
    DirectorySyncFailed,
    /// A sync would remove more people than `max_removal`; it waits for an operator.
    #[serde(rename = "directory.sync_held")]
    DirectorySyncHeld,
}

impl EventKind {
    /// The dotted name used in logs, audit lines and alerts.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Login => "login",
            EventKind::LoginRefused => "login.refused",
            EventKind::PolicyReloaded => "policy.reloaded",
            EventKind::BastionStarted => "bastion.started",
            EventKind::BastionDegraded => "bastion.degraded",
            EventKind::BastionRecovered => "bastion.recovered",
            EventKind::SessionsClosed => "bastion.sessions_closed",
            EventKind::NodeLost => "node.lost",
            EventKind::BreakglassActivated => "breakglass.activated",
            EventKind::ReviewAcked => "review.acked",
            EventKind::GrantRequested => "grant.requested",
            EventKind::GrantApproved => "grant.approved",
            EventKind::GrantActivated => "grant.activated",
            EventKind::GrantDenied => "grant.denied",
            EventKind::WebLinkIssued => "web.link_issued",
            EventKind::WebSignedIn => "web.signed_in",
            EventKind::WebSignInRefused => "web.sign_in_refused",
            EventKind::WebSignedOut => "web.signed_out",
            EventKind::SessionViewed => "session.viewed",
            EventKind::AuditViewed => "audit.viewed",
            EventKind::GrantRevoked => "grant.revoked",
            EventKind::GrantExpired => "grant.expired",
            EventKind::GrantLapsed => "grant.lapsed",
            EventKind::GrantRefused => "grant.refused",
            EventKind::AlertSent => "alert.sent",
            EventKind::SessionDenied => "session.denied",
            EventKind::SessionStarted => "session.started",
            EventKind::SessionEnded => "session.ended",
            EventKind::FileOperation => "file.op",
            EventKind::SessionHeld => "session.held",
            EventKind::SessionReleased => "session.released",
            EventKind::RecordingDeleted => "recording.deleted",
            EventKind::TokenCreated => "token.created",
            EventKind::TokenRevoked => "token.revoked",
            EventKind::UserRemoved => "user.removed",
            EventKind::DirectorySynced => "directory.synced",
            EventKind::DirectorySyncFailed => "directory.sync_failed",
            EventKind::DirectorySyncHeld => "directory.sync_held",
        }
    }
}

/// One event with the fields every consumer needs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Event {
    /// What happened (`None` only in `Default`).
    pub kind: Option<EventKind>,
    /// The person the event is about.
    pub user: Option<String>,
    /// Who acted, when not the user.
    pub actor: Option<String>,
    /// The target.
    pub target: Option<String>,
    /// The role.
    pub role: Option<String>,
    /// The grant.
    pub grant_id: Option<i64>,
    /// The session.
    pub session_id: Option<String>,
    /// Why (request reason, denial reason, revocation reason).
    pub reason: Option<String>,
    /// Anything else.
    pub detail: Option<serde_json::Value>,
    /// Why a session was refused, as a class (`session.denied`).
    #[serde(rename = "denial_class", skip_serializing_if = "Option::is_none")]
    pub denial: Option<DenialClass>,
    /// How a session ended (`session.ended`): its class, and whether it had started.
    #[serde(flatten)]
    pub ending: Option<Ending>,
}

impl Event {
    /// A new event of `kind`.
    pub fn new(kind: EventKind) -> Event {
        Event {
            kind: Some(kind),
            ..Event::default()
        }
    }
}

/// How long a durable audit write may wait for the server's writer thread before the change
/// it records is refused.
pub const DURABLE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens the audit log for an operator command's direct appends, waiting at most
/// [`DURABLE_WAIT`]: opening a file for writing blocks while its filesystem is frozen, and a
/// command that cannot have its decision recorded should say so rather than hang.
pub async fn open_direct(
    path: &std::path::Path,
    node: &str,
) -> Result<Arc<AuditLog>, AuditUnwritable> {
    let (done, answer) = tokio::sync::oneshot::channel();
    let path = path.to_owned();
    let node = node.to_owned();
    std::thread::Builder::new()
        .name("audit-open".into())
        .spawn(move || {
            let _ = done.send(AuditLog::open(&path).map(|log| Arc::new(log.stamped_with(&node))));
        })
        .map_err(|e| AuditUnwritable(format!("no thread to open it: {e}")))?;
    match tokio::time::timeout(DURABLE_WAIT, answer).await {
        Ok(Ok(opened)) => opened.map_err(|e| AuditUnwritable(e.to_string())),
        Ok(Err(_)) => Err(AuditUnwritable("opening it was abandoned".to_owned())),
        Err(_) => Err(AuditUnwritable(format!(
            "it could not be opened within {DURABLE_WAIT:?}"
        ))),
    }
}

/// Appends `records` to `log` on a thread of its own and waits at most [`DURABLE_WAIT`] for
/// the synced write, so an operator command holding the store's write lock never waits on a
/// slow or frozen audit disk for longer than the server would. On a timeout the change is
/// refused; the thread may still finish the append later, leaving a line for a change that did
/// not happen (never the reverse).
async fn append_bounded(
    log: &Arc<AuditLog>,
    records: Vec<(String, serde_json::Map<String, serde_json::Value>)>,
) -> Result<(), AuditUnwritable> {
    let (done, answer) = tokio::sync::oneshot::channel();
    let log = log.clone();
    std::thread::Builder::new()
        .name("audit-append".into())
        .spawn(move || {
            let _ = done.send(log.append_batch(&records).map(|_| ()));
        })
        .map_err(|e| AuditUnwritable(format!("no thread to write it: {e}")))?;
    match tokio::time::timeout(DURABLE_WAIT, answer).await {
        Ok(Ok(outcome)) => outcome.map_err(|e| AuditUnwritable(e.to_string())),
        Ok(Err(_)) => Err(AuditUnwritable("the write was abandoned".to_owned())),
        Err(_) => Err(AuditUnwritable(format!(
            "the write did not finish within {DURABLE_WAIT:?}"
        ))),
    }
}

/// The audit log could not take a record, so the change it describes was not made.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit log cannot be written ({0})")]
pub struct AuditUnwritable(pub String);

/// Told of every event once it is recorded (for a durable record, once it is in the audit log),
/// so that listeners such as the metrics subscribe without the event code knowing them.
///
/// Called on the task that emits the event, often one serving a connection: implementations
/// must be quick, must not block and should not allocate.
pub trait EventSink: Send + Sync {
    /// One event, just recorded.
    fn observe(&self, event: &Event);
}

/// Where events go besides the log: the audit log, the alert sinks for the events that alert,
/// and every subscribed [`EventSink`].
#[derive(Default)]
pub struct Events {
    audit: Option<AuditRecorder>,
    alerts: Option<Alerts>,
    sinks: Vec<Arc<dyn EventSink>>,
    /// Alerts being written to the outbox, so a short-lived command can wait for them.
    queued: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The node these events happen on, named in every alert.
    node: Option<String>,
    /// The web console's address, for the links in alerts that call for action.
    console: Option<String>,
}

/// How events reach the audit log: queued to the server's writer thread, or appended at once
/// by a short-lived operator command.
pub enum AuditRecorder {
    /// The bastion's batching writer.
    Queued(AuditWriter),
    /// Direct appends (the operator CLI); shared so a durable append can run on a thread of
    /// its own and be given up on (see [`append_bounded`]).
    Direct(Arc<AuditLog>),
}

impl Events {
    /// Events that go to the log, the audit log and the alert sinks.
    pub fn new(audit: Option<AuditRecorder>, alerts: Option<Alerts>) -> Events {
        Events {
            audit,
            alerts,
            sinks: Vec::new(),
            queued: Mutex::new(Vec::new()),
            node: None,
            console: None,
        }
    }

    /// Also tells `sink` of every event recorded from now on.
    pub fn with_sink(mut self, sink: Arc<dyn EventSink>) -> Events {
        self.sinks.push(sink);
        self
    }

    /// Names `node` in every alert (the audit log stamps its own lines, see
    /// [`AuditLog::stamped_with`]).
    pub fn on_node(mut self, node: &str) -> Events {
        self.node = Some(node.to_owned());
        self
    }

    /// Links the alerts that call for action to the web console at `public_url`: a new
    /// request to the requests page, a break-glass use to the review queue.
    pub fn with_console(mut self, public_url: &str) -> Events {
        self.console = Some(public_url.trim_end_matches('/').to_owned());
        self
    }

    /// The alert an event raises, if any, naming this node and linking to the console.
    fn alert_for(&self, event: &Event) -> Option<Alert> {
        let link = self.console.as_ref().and_then(|url| match event.kind? {
            EventKind::GrantRequested => Some(format!("{url}/requests#grant-{}", event.grant_id?)),
            EventKind::BreakglassActivated => Some(format!("{url}/review")),
            _ => None,
        });
        Alert::from_event(event).map(|alert| Alert {
            node: self.node.clone(),
            link,
            ..alert
        })
    }

    /// Waits until every alert emitted so far is in the durable outbox (for operator commands,
    /// which exit right after).
    pub async fn settle(&self) {
        let pending: Vec<_> =
            std::mem::take(&mut *self.queued.lock().unwrap_or_else(|p| p.into_inner()));
        for handle in pending {
            let _ = handle.await;
        }
    }

    /// Waits (briefly) until every event so far is in the audit log; used at shutdown.
    pub fn flush(&self) {
        if let Some(AuditRecorder::Queued(writer)) = &self.audit
            && !writer.flush(std::time::Duration::from_secs(5))
        {
            error!("the audit log could not be flushed at shutdown");
        }
    }

    /// Records a critical event and notifies every alert sink, waiting at most `wait` for them;
    /// returns a short account of who was told, for the user's banner.
    pub async fn emit_critical(&self, event: Event, wait: std::time::Duration) -> String {
        self.record(&event);
        self.alert_critical(&event, wait).await
    }

    /// Records a change of the bastion's health and sends its alert to every sink at once,
    /// without depending on the outbox (which lives in the store that may be the part that
    /// failed). Waits at most `wait` for the sinks.
    pub async fn health_changed(&self, change: &Change, wait: std::time::Duration) {
        let event = match &change.fault {
            Some(fault) => Event {
                reason: Some(format!("{}: {fault}", change.component.unavailable())),
                detail: Some(serde_json::json!({ "component": change.component })),
                ..Event::new(EventKind::BastionDegraded)
            },
            None => Event {
                detail: Some(serde_json::json!({ "component": change.component })),
                ..Event::new(EventKind::BastionRecovered)
            },
        };
        self.record(&event);
        if let (Some(alerts), Some(alert)) = (&self.alerts, self.alert_for(&event)) {
            let report = alerts.send_now(&alert, wait).await;
            info!(alert = %alert.id, report = %report, "health alert sent");
        }
    }

    /// Writes `events` to the audit log and returns only once they are synced to disk, or
    /// fails, in which case none of them is in the log and the caller must not report the
    /// change they describe as done. The way state changes are recorded: sealed before their
    /// transaction commits. Alerts are not sent here (see [`Events::alert`]).
    pub async fn record_durable(&self, events: &[Event]) -> Result<(), AuditUnwritable> {
        let records: Vec<(String, serde_json::Map<String, serde_json::Value>)> = events
            .iter()
            .map(|e| {
                let name = e.kind.map(EventKind::name).unwrap_or("event");
                (name.to_owned(), audit_fields(e))
            })
            .collect();
        match &self.audit {
            Some(AuditRecorder::Queued(writer)) => writer
                .record_durable(records, DURABLE_WAIT)
                .await
                .map_err(|e| AuditUnwritable(e.to_string()))?,
            Some(AuditRecorder::Direct(log)) => append_bounded(log, records).await?,
            None => {}
        }
        for event in events {
            self.log(event);
            self.tell_sinks(event);
        }
        Ok(())
    }

    /// Queues the alert of an event already recorded with [`Events::record_durable`].
    pub fn alert(&self, event: &Event) {
        if let (Some(alerts), Some(alert)) = (&self.alerts, self.alert_for(event)) {
            let alerts = alerts.clone();
            let handle = tokio::spawn(async move {
                if let Err(e) = alerts.enqueue(&alert).await {
                    error!(alert = %alert.id, error = %e, "ALERT NOT QUEUED");
                }
            });
            let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            queued.retain(|h| !h.is_finished());
            queued.push(handle);
        }
    }

    /// Notifies every alert sink of an event already recorded, waiting at most `wait`; returns
    /// a short account of who was told. The alert and the sinks that took it are written down
    /// in an `alert.sent` audit line, so that a report can say of every break-glass use who was
    /// told.
    pub async fn alert_critical(&self, event: &Event, wait: std::time::Duration) -> String {
        let sent = |alert: Option<&Alert>, sinks: Vec<String>, acked: Vec<String>, durable| {
            self.record(&Event {
                user: event.user.clone(),
                target: event.target.clone(),
                role: event.role.clone(),
                grant_id: event.grant_id,
                session_id: event.session_id.clone(),
                detail: Some(serde_json::json!({
                    "alert_id": alert.map(|a| a.id.to_string()),
                    "alert_event": event.kind.map(EventKind::name),
                    "sinks": sinks,
                    "acknowledged": acked,
                    "durable": durable,
                })),
                ..Event::new(EventKind::AlertSent)
            });
        };
        let (Some(alerts), Some(alert)) = (&self.alerts, self.alert_for(event)) else {
            sent(None, Vec::new(), Vec::new(), false);
            return "no alert sinks are configured".to_owned();
        };
        if alerts.sink_labels().is_empty() {
            sent(Some(&alert), Vec::new(), Vec::new(), false);
            return "no alert sinks are configured".to_owned();
        }
        let report = alerts.send_now(&alert, wait).await;
        let sinks = report.sinks.iter().map(|s| s.sink.clone()).collect();
        let acked = report
            .acknowledged()
            .into_iter()
            .map(str::to_owned)
            .collect();
        sent(Some(&alert), sinks, acked, report.durable);
        report.to_string()
    }

    /// Records an event, and queues its alert if it is one that alerts.
    pub fn emit(&self, event: Event) {
        self.record(&event);
        self.alert(&event);
    }

    /// Records an event without raising its alert (for events written down late, where the
    /// alert would announce something that is no longer news).
    pub fn record_only(&self, event: &Event) {
        self.record(event);
    }

    /// Logs an event, writes it to the audit log and tells the sinks.
    fn record(&self, event: &Event) {
        self.log(event);
        let name = event.kind.map(EventKind::name).unwrap_or("event");
        let fields = audit_fields(event);
        match &self.audit {
            Some(AuditRecorder::Queued(writer)) => writer.record(name, fields),
            Some(AuditRecorder::Direct(log)) => {
                if let Err(e) = log.append(name, fields) {
                    error!(event = name, error = %e, "AUDIT LOG WRITE FAILED");
                }
            }
            None => {}
        }
        self.tell_sinks(event);
    }

    /// Tells every subscribed sink of an event.
    fn tell_sinks(&self, event: &Event) {
        for sink in &self.sinks {
            sink.observe(event);
        }
    }

    /// Logs an event through `tracing`.
    fn log(&self, event: &Event) {
        let name = event.kind.map(EventKind::name).unwrap_or("event");
        let denied = matches!(
            event.kind,
            Some(
                EventKind::SessionDenied
                    | EventKind::BastionDegraded
                    | EventKind::GrantDenied
                    | EventKind::LoginRefused
                    | EventKind::BreakglassActivated
                    | EventKind::DirectorySyncFailed
                    | EventKind::DirectorySyncHeld
            )
        );
        let text = serde_json::Value::Object(audit_fields(event));
        if denied {
            warn!(event = name, fields = %text);
        } else {
            info!(event = name, fields = %text);
        }
    }
}

/// The event's fields for an audit line: everything set, nothing null, no `kind` (the event
/// name is the line's `event`).
fn audit_fields(event: &Event) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(event) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.remove("kind");
            map.retain(|_, v| !v.is_null());
            map
        }
        _ => serde_json::Map::new(),
    }
}

/// Reports alert deliveries and failures to the audit log.
pub struct AuditedDeliveries(pub AuditWriter);

impl DeliveryObserver for AuditedDeliveries {
    fn delivered(&self, alert_id: uuid::Uuid, sink: &str) {
        let mut fields = serde_json::Map::new();
        fields.insert("alert_id".into(), alert_id.to_string().into());
        fields.insert("sink".into(), sink.into());
        self.0.record("alert.delivered", fields);
    }

    fn failed(&self, alert_id: uuid::Uuid, sink: &str, attempt: u32, error: &str) {
        let mut fields = serde_json::Map::new();
        fields.insert("alert_id".into(), alert_id.to_string().into());
        fields.insert("sink".into(), sink.into());
        fields.insert("attempt".into(), attempt.into());
        fields.insert("error".into(), error.into());
        self.0.record("alert.failed", fields);
    }
}
