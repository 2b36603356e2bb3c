//! Small, fixed sets of classes for why a session was refused and how it ended.
//!
//! The words a user reads ([`crate::access::Denial::reason`], a session's end reason) are free
//! text, written for people; anything that counts or filters outcomes (the metrics, an audit
//! query) needs a value that does not change when a sentence is reworded. Each refusal and each
//! end is classified where it happens, by the code that knows why, and carried beside the text.
//! The sets are small and closed on purpose: each class is one metric label value.

use serde::Serialize;

/// Why a session (or a restricted-shell line, or a channel request) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DenialClass {
    /// The user may use the target but holds no live grant for it (or it ended during setup).
    NoGrant,
    /// The role's command rules refuse the command, or it cannot be read as one.
    CommandNotAllowed,
    /// The store could not answer, so nothing could be checked or recorded (fail closed).
    StoreUnavailable,
    /// The audit log cannot be written, so the session could not be accounted for.
    AuditUnavailable,
    /// The session's recording could not be started.
    RecordingUnavailable,
    /// The policy gives no such access: no role on the target, a role without a shell, an
    /// account no longer in the policy, or a kind of channel the bastion never opens.
    Policy,
    /// Break-glass was refused because the user reached its rate limit.
    BreakglassLimit,
    /// Anything else (an ambiguous request, a missing terminal).
    Other,
}

impl DenialClass {
    /// Every class, in label order.
    pub const ALL: [DenialClass; 8] = [
        DenialClass::NoGrant,
        DenialClass::CommandNotAllowed,
        DenialClass::StoreUnavailable,
        DenialClass::AuditUnavailable,
        DenialClass::RecordingUnavailable,
        DenialClass::Policy,
        DenialClass::BreakglassLimit,
        DenialClass::Other,
    ];

    /// The label value, as in the audit line's `denial_class`.
    pub fn as_str(self) -> &'static str {
        match self {
            DenialClass::NoGrant => "no_grant",
            DenialClass::CommandNotAllowed => "command_not_allowed",
            DenialClass::StoreUnavailable => "store_unavailable",
            DenialClass::AuditUnavailable => "audit_unavailable",
            DenialClass::RecordingUnavailable => "recording_unavailable",
            DenialClass::Policy => "policy",
            DenialClass::BreakglassLimit => "breakglass_limit",
            DenialClass::Other => "other",
        }
    }

    /// Its place in [`DenialClass::ALL`], for a table indexed by class.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How an indexed session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndClass {
    /// The command or shell finished, or the user left.
    Normal,
    /// The grant was revoked (by a person, or by a policy change that ended the grant).
    Revoked,
    /// The grant ran out.
    Expired,
    /// The policy in force no longer gives the session.
    Policy,
    /// The recording failed, so the session was stopped.
    RecordingFailed,
    /// The bastion closed it for its own reasons (the grants could no longer be confirmed).
    ClosedByBastion,
    /// The bastion shut down.
    Shutdown,
    /// The target could not be reached or refused the session; nothing ran.
    TargetUnavailable,
    /// The grant or the policy changed while the session was being set up; nothing ran.
    Refused,
    /// Anything else.
    Other,
}

impl EndClass {
    /// Every class, in label order.
    pub const ALL: [EndClass; 10] = [
        EndClass::Normal,
        EndClass::Revoked,
        EndClass::Expired,
        EndClass::Policy,
        EndClass::RecordingFailed,
        EndClass::ClosedByBastion,
        EndClass::Shutdown,
        EndClass::TargetUnavailable,
        EndClass::Refused,
        EndClass::Other,
    ];

    /// The label value, as in the audit line's `end_class`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndClass::Normal => "normal",
            EndClass::Revoked => "revoked",
            EndClass::Expired => "expired",
            EndClass::Policy => "policy",
            EndClass::RecordingFailed => "recording_failed",
            EndClass::ClosedByBastion => "closed_by_bastion",
            EndClass::Shutdown => "shutdown",
            EndClass::TargetUnavailable => "target_unavailable",
            EndClass::Refused => "refused",
            EndClass::Other => "other",
        }
    }

    /// Its place in [`EndClass::ALL`], for a table indexed by class.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How a session ended, for its `session.ended` event: why, and whether it had started on the
/// target. A session refused or unreachable during setup has an end (it was indexed) but never
/// started, so it must not count as one that stopped running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ending {
    /// Why it ended.
    #[serde(rename = "end_class")]
    pub class: EndClass,
    /// Whether `session.started` was emitted for it.
    #[serde(skip)]
    pub started: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_is_listed_once_at_its_index_with_a_distinct_label() {
        for (i, class) in DenialClass::ALL.iter().enumerate() {
            assert_eq!(class.index(), i, "{class:?}");
            let json = serde_json::to_value(class).unwrap();
            assert_eq!(json, class.as_str(), "{class:?}");
        }
        for (i, class) in EndClass::ALL.iter().enumerate() {
            assert_eq!(class.index(), i, "{class:?}");
            let json = serde_json::to_value(class).unwrap();
            assert_eq!(json, class.as_str(), "{class:?}");
        }
        let mut labels: Vec<&str> = DenialClass::ALL.iter().map(|c| c.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), DenialClass::ALL.len());
        let mut labels: Vec<&str> = EndClass::ALL.iter().map(|c| c.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), EndClass::ALL.len());
    }
}
