//! The alert side of the store's durable outbox ([`crate::store::outbox`]): the clock it keeps
//! and how a queued row is shown to operators.

use chrono::{DateTime, Utc};

use super::{PendingDelivery, sink_label};
use crate::store::outbox::Queued;
pub(super) use crate::store::outbox::{AlertOutbox, Claimed};

/// The current time as the outbox stores it (Unix milliseconds).
pub(super) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A queued row as operators see it (`configured` is left false for the caller to fill).
pub(super) fn pending_delivery(row: Queued) -> PendingDelivery {
    PendingDelivery {
        alert_id: row.alert_id,
        label: sink_label(&row.sink),
        sink: row.sink,
        configured: false,
        attempts: row.attempts,
        next_attempt: from_ms(row.next_attempt_ms),
        last_error: row.last_error,
        queued: from_ms(row.created_ms),
    }
}
