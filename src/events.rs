//! One place through which every decision and state change passes.
//!
//! Grant transitions, denials, logins and sessions are [`Event`]s handed to [`Events::emit`],
//! which logs them through `tracing`; the audit log and the alert sinks hook in here, so no
//! caller needs to know who listens.

use serde::Serialize;
use tracing::{info, warn};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventKind {
    /// Emergency access was taken.
    #[serde(rename = "breakglass.activated")]
    BreakglassActivated,
    /// A break-glass session was reviewed.
    #[serde(rename = "review.acked")]
    ReviewAcked,
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
    /// A session was refused.
    #[serde(rename = "session.denied")]
    SessionDenied,
    /// A session started on a target.
    #[serde(rename = "session.started")]
    SessionStarted,
    /// A session ended.
    #[serde(rename = "session.ended")]
    SessionEnded,
}

impl EventKind {
    /// The dotted name used in logs, audit lines and alerts.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::BreakglassActivated => "breakglass.activated",
            EventKind::ReviewAcked => "review.acked",
            EventKind::GrantRequested => "grant.requested",
            EventKind::GrantApproved => "grant.approved",
            EventKind::GrantActivated => "grant.activated",
            EventKind::GrantDenied => "grant.denied",
            EventKind::GrantRevoked => "grant.revoked",
            EventKind::GrantExpired => "grant.expired",
            EventKind::GrantLapsed => "grant.lapsed",
            EventKind::SessionDenied => "session.denied",
            EventKind::SessionStarted => "session.started",
            EventKind::SessionEnded => "session.ended",
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

/// The event hub.
#[derive(Default)]
pub struct Events;

impl Events {
    /// Records a critical event and notifies every alert sink, waiting at most `wait` for them;
    /// returns a short account of who was told, for the user's banner.
    pub async fn emit_critical(&self, event: Event, wait: std::time::Duration) -> String {
        let _ = wait;
        self.emit(event);
        "no alert sinks are configured".to_owned()
    }

    /// Records an event.
    pub fn emit(&self, event: Event) {
        let name = event.kind.map(EventKind::name).unwrap_or("event");
        let denied = matches!(
            event.kind,
            Some(EventKind::SessionDenied | EventKind::GrantDenied)
        );
        let fields = serde_json::to_string(&event).unwrap_or_default();
        if denied {
            warn!(event = name, %fields);
        } else {
            info!(event = name, %fields);
        }
    }
}
