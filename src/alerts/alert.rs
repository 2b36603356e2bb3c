//! The alert itself: which events raise one, how urgent each is and the JSON every sink
//! receives.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::Event;

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
    /// A person lost access: gone from the directory, disabled, or removed from the policy.
    #[serde(rename = "user.removed")]
    UserRemoved,
    /// The directory could not be read; the last good state stays in force.
    #[serde(rename = "directory.sync_failed")]
    DirectorySyncFailed,
    /// A directory sync would remove too many people and waits for an operator.
    #[serde(rename = "directory.sync_held")]
    DirectorySyncHeld,
}

impl AlertEvent {
    /// Every alerting event, for documentation and tests.
    pub const ALL: [AlertEvent; 13] = [
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
        AlertEvent::UserRemoved,
        AlertEvent::DirectorySyncFailed,
        AlertEvent::DirectorySyncHeld,
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
            AlertEvent::UserRemoved => "user.removed",
            AlertEvent::DirectorySyncFailed => "directory.sync_failed",
            AlertEvent::DirectorySyncHeld => "directory.sync_held",
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
            AlertEvent::BreakglassActivated
            | AlertEvent::BastionDegraded
            | AlertEvent::DirectorySyncHeld => Severity::Critical,
            AlertEvent::GrantDenied
            | AlertEvent::GrantRevoked
            | AlertEvent::SessionDenied
            | AlertEvent::NodeLost
            | AlertEvent::UserRemoved
            | AlertEvent::DirectorySyncFailed => Severity::Warning,
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
    /// Where to act on it in the web console (a request to decide, the review queue), when
    /// the console is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
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
            link: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

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
}
