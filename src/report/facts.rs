//! What a report is computed from, gathered in memory: the grants, the period's sessions and
//! their reviews, the commands the restricted shells ran (their recordings' `run:` markers),
//! and the few kinds of audit line a report counts.
//!
//! [`Facts::take`] turns audit records into facts; everything that reads files or the store is
//! in [`super::collect`], and everything that counts is a pure function of a `Facts`.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::audit::Entry;
use crate::grants::{Grant, Timestamp};
use crate::store::sessions::{Review, SessionRecord};

use super::model::Refusal;

/// The audit events a report reads.
pub const EVENTS: [&str; 5] = [
    "session.denied",
    "grant.refused",
    "alert.sent",
    "alert.delivered",
    "alert.failed",
];

/// Everything a report counts.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The start of the period (included).
    pub since: Timestamp,
    /// The end of the period (excluded).
    pub until: Timestamp,
    /// When the report is made.
    pub now: Timestamp,
    /// How long requests stay pending (a request older than this has lapsed).
    pub request_ttl: Duration,
    /// Every grant in the store.
    pub grants: Vec<Grant>,
    /// The sessions started in the period, in the order they started.
    pub sessions: Vec<SessionRecord>,
    /// Reviews of break-glass sessions, by session id.
    pub reviews: HashMap<String, Review>,
    /// The commands each restricted shell ran, by session id, as the recording marks them.
    pub shell_lines: HashMap<String, Vec<String>>,
    /// Refused sessions and lines in the period.
    pub denials: Vec<Denied>,
    /// Decisions refused for separation of duties in the period.
    pub refusals: Vec<Refusal>,
    /// The critical alert sent for each break-glass grant, by grant id.
    pub alerts: HashMap<i64, SentAlert>,
    /// What became of each alert, by alert id.
    pub deliveries: HashMap<String, Delivered>,
}

/// One `session.denied` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// Its `seq`.
    pub seq: u64,
    /// Who was refused.
    pub user: String,
    /// The role named or in use, if any.
    pub role: Option<String>,
    /// The reason, as the user read it.
    pub reason: String,
    /// Its class.
    pub class: String,
}

/// One `alert.sent` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentAlert {
    /// The alert's id.
    pub alert_id: Option<String>,
    /// The sinks configured.
    pub sinks: Vec<String>,
    /// The sinks that took it at once.
    pub acknowledged: Vec<String>,
}

/// The `alert.delivered` and `alert.failed` lines of one alert.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Sinks that took it.
    pub sinks: BTreeSet<String>,
    /// Failed attempts.
    pub failed: u64,
}

impl Facts {
    /// Takes one audit record (of one of [`EVENTS`]) into the facts: refusals and denials when
    /// they fall in the period, alerts whenever they were sent or delivered (a delivery can come
    /// after the period that holds its break-glass use).
    pub fn take(&mut self, entry: Entry) {
        let in_period = entry.time >= self.since && entry.time < self.until;
        let text = |key: &str| entry.str(key).map(str::to_owned);
        let list = |key: &str| -> Vec<String> {
            entry
                .fields
                .get("detail")
                .and_then(|d| d.get(key))
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let detail = |key: &str| {
            entry
                .fields
                .get("detail")
                .and_then(|d| d.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        match entry.event.as_str() {
            "session.denied" if in_period => self.denials.push(Denied {
                seq: entry.seq,
                user: text("user").unwrap_or_default(),
                role: text("role"),
                reason: text("reason").unwrap_or_default(),
                class: text("denial_class").unwrap_or_else(|| "other".to_owned()),
            }),
            "grant.refused" if in_period => self.refusals.push(Refusal {
                seq: entry.seq,
                time: entry.time,
                actor: text("actor").unwrap_or_default(),
                requester: text("user"),
                grant: entry.int("grant_id"),
                role: text("role"),
                decision: detail("decision").unwrap_or_default(),
                refusal: detail("refusal").unwrap_or_default(),
                reason: text("reason").unwrap_or_default(),
            }),
            "alert.sent" => {
                if let Some(grant) = entry.int("grant_id") {
                    self.alerts.insert(
                        grant,
                        SentAlert {
                            alert_id: detail("alert_id"),
                            sinks: list("sinks"),
                            acknowledged: list("acknowledged"),
                        },
                    );
                }
            }
            "alert.delivered" | "alert.failed" => {
                let (Some(id), Some(sink)) = (text("alert_id"), text("sink")) else {
                    return;
                };
                let delivered = self.deliveries.entry(id).or_default();
                if entry.event == "alert.delivered" {
                    delivered.sinks.insert(sink);
                } else {
                    delivered.failed += 1;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(seq: u64, time: i64, event: &str, fields: serde_json::Value) -> Entry {
        Entry {
            seq,
            time,
            event: event.into(),
            fields: match fields {
                serde_json::Value::Object(map) => map,
                _ => panic!("not an object"),
            },
        }
    }

    #[test]
    fn denials_and_refusals_count_in_the_period_and_alerts_always() {
        let mut facts = Facts {
            since: 100,
            until: 200,
            ..Facts::default()
        };
        let denied = json!({"user": "eve", "reason": "no", "denial_class": "policy"});
        facts.take(entry(1, 99, "session.denied", denied.clone()));
        facts.take(entry(2, 100, "session.denied", denied.clone()));
        facts.take(entry(3, 200, "session.denied", denied));
        facts.take(entry(
            4,
            150,
            "grant.refused",
            json!({"actor": "alice", "user": "alice", "grant_id": 7, "role": "web",
                   "reason": "grant 7 is your own request; someone else must approve it",
                   "detail": {"decision": "approve", "refusal": "self_approval"}}),
        ));
        facts.take(entry(
            5,
            50,
            "alert.sent",
            json!({"grant_id": 9, "detail": {"alert_id": "a-1", "sinks": ["hook", "log"],
                   "acknowledged": ["log"]}}),
        ));
        facts.take(entry(
            6,
            500,
            "alert.delivered",
            json!({"alert_id": "a-1", "sink": "hook"}),
        ));
        facts.take(entry(
            7,
            400,
            "alert.failed",
            json!({"alert_id": "a-1", "sink": "hook", "attempt": 1, "error": "down"}),
        ));
        assert_eq!(facts.denials.len(), 1);
        assert_eq!(facts.denials[0].seq, 2);
        assert_eq!(facts.denials[0].role, None);
        assert_eq!(facts.refusals.len(), 1);
        assert_eq!(facts.refusals[0].refusal, "self_approval");
        assert_eq!(facts.refusals[0].grant, Some(7));
        assert_eq!(facts.alerts[&9].acknowledged, vec!["log".to_owned()]);
        assert_eq!(facts.deliveries["a-1"].sinks.len(), 1);
        assert_eq!(facts.deliveries["a-1"].failed, 1);
    }
}
