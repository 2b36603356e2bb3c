//! Whether the bastion can keep its promises right now, and if not, why.
//!
//! A bastion that cannot write its store or its audit log must not open new sessions: it could
//! not account for them. The parts that notice such a fault (the store's monitor, the audit
//! writer) report it here; session start-up reads it and refuses while a fault lasts; and the
//! same state is what a readiness probe reports. A fault clears when the part that reported it
//! sees a write succeed again, so the bastion recovers without a restart.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};

use tracing::{error, info, warn};

/// A part of the bastion whose failure stops new sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    /// The database (grants, session index, alert outbox).
    Store,
    /// The hash-chained audit log.
    AuditLog,
}

impl Component {
    /// The words a denied user and an operator read.
    pub fn unavailable(self) -> &'static str {
        match self {
            Component::Store => "store unavailable",
            Component::AuditLog => "audit log unavailable",
        }
    }
}

/// One part that is faulty, and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fault {
    /// The part.
    pub component: Component,
    /// What went wrong, as logged.
    pub reason: String,
}

/// Why the bastion is not ready: every current fault, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
pub struct NotReady {
    /// The faulty parts, each with what went wrong.
    pub faults: Vec<Fault>,
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, fault) in self.faults.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", fault.component.unavailable(), fault.reason)?;
        }
        Ok(())
    }
}

/// What a readiness probe reports: ready, or not and why (serialises as
/// `{"ready":false,"faults":[{"component":"store","reason":"…"}]}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Readiness {
    /// Whether new sessions are allowed.
    pub ready: bool,
    /// Every current fault; empty when ready.
    pub faults: Vec<Fault>,
}

/// A change of one part's health, for whoever raises alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The part.
    pub component: Component,
    /// The fault, or `None` when the part recovered.
    pub fault: Option<String>,
}

type Listener = Box<dyn Fn(&Change) + Send + Sync>;

/// The shared health state; cheap to clone, every clone sees the same state.
#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    faults: Mutex<BTreeMap<Component, String>>,
    listeners: RwLock<Vec<Listener>>,
}

impl Health {
    /// Records that `component` is faulty and why. A part that was healthy is logged as an
    /// error and passed to the listener (one alert per fault, not per failed try); a new
    /// reason for a part already faulty is logged as a warning; a repeat is not logged.
    pub fn fault(&self, component: Component, reason: impl Into<String>) {
        let reason = reason.into();
        let before = self.lock().insert(component, reason.clone());
        match before {
            None => {
                error!(component = ?component, reason = %reason, "{}: new sessions are refused", component.unavailable());
                self.notify(Change {
                    component,
                    fault: Some(reason),
                });
            }
            Some(old) if old != reason => {
                warn!(component = ?component, reason = %reason, "{}: still failing", component.unavailable());
            }
            Some(_) => {}
        }
    }

    /// Records that `component` works again; logged when it was faulty.
    pub fn clear(&self, component: Component) {
        let was = self.lock().remove(&component);
        if let Some(reason) = was {
            info!(component = ?component, was = %reason, "{} again: new sessions are allowed", match component {
                Component::Store => "store available",
                Component::AuditLog => "audit log writable",
            });
            self.notify(Change {
                component,
                fault: None,
            });
        }
    }

    /// `Ok` when every part works; otherwise every current fault.
    pub fn check(&self) -> Result<(), NotReady> {
        let faults = self.lock();
        if faults.is_empty() {
            Ok(())
        } else {
            Err(NotReady {
                faults: faults
                    .iter()
                    .map(|(c, r)| Fault {
                        component: *c,
                        reason: r.clone(),
                    })
                    .collect(),
            })
        }
    }

    /// The state for a readiness probe.
    pub fn readiness(&self) -> Readiness {
        match self.check() {
            Ok(()) => Readiness {
                ready: true,
                faults: Vec::new(),
            },
            Err(not) => Readiness {
                ready: false,
                faults: not.faults,
            },
        }
    }

    /// Whether `component` is faulty now.
    pub fn is_faulty(&self, component: Component) -> bool {
        self.lock().contains_key(&component)
    }

    /// Adds a function told of every change from now on (the bastion raises its alerts there,
    /// the metrics follow it). A listener must be quick and must not add listeners itself.
    pub fn on_change(&self, listener: impl Fn(&Change) + Send + Sync + 'static) {
        self.inner
            .listeners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(listener));
    }

    fn notify(&self, change: Change) {
        let listeners = self
            .inner
            .listeners
            .read()
            .unwrap_or_else(|p| p.into_inner());
        for listener in listeners.iter() {
            listener(&change);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Component, String>> {
        self.inner.faults.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("faults", &*self.lock())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_reported_once_and_clear() {
        let health = Health::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        health.on_change(move |c| log.lock().unwrap().push(c.clone()));
        let also = Arc::new(Mutex::new(0));
        let count = also.clone();
        health.on_change(move |_| *count.lock().unwrap() += 1);
        assert!(health.check().is_ok());
        health.fault(Component::Store, "disk full");
        health.fault(Component::Store, "disk full");
        health.fault(Component::AuditLog, "read-only");
        let why = health.check().unwrap_err().to_string();
        assert_eq!(
            why,
            "store unavailable: disk full; audit log unavailable: read-only"
        );
        let report = serde_json::to_string(&health.readiness()).unwrap();
        assert_eq!(
            report,
            r#"{"ready":false,"faults":[{"component":"store","reason":"disk full"},{"component":"audit_log","reason":"read-only"}]}"#
        );
        health.clear(Component::Store);
        health.clear(Component::Store);
        assert!(!health.is_faulty(Component::Store));
        assert!(health.is_faulty(Component::AuditLog));
        health.fault(Component::AuditLog, "still read-only");
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.len(),
            3,
            "one change per fault and per recovery: {seen:?}"
        );
        assert_eq!(seen[2].fault, None);
        assert_eq!(*also.lock().unwrap(), 3, "every listener is told");
        assert_eq!(
            health.check().unwrap_err().to_string(),
            "audit log unavailable: still read-only",
            "the reason is the latest"
        );
    }
}
