//! The audit log for reviewers: its last lines, as the records they are, newest last.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::events::{Event, EventKind};
use crate::http::Web;
use crate::http::caller::{Caller, Need};
use crate::http::error::{ApiError, ApiQuery};

/// Most lines one request returns.
pub const AUDIT_MAX: usize = 1000;

/// Which lines.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// How many of the last lines to read (default 200, at most 1000).
    pub limit: Option<usize>,
    /// Only lines of this event (`session.started`, `grant.approved`, …).
    pub event: Option<String>,
    /// Only lines naming this user or actor.
    pub user: Option<String>,
}

/// The last lines of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLines {
    /// Each line as its JSON record, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub lines: Vec<serde_json::Value>,
}

/// The last lines matching `q` (reviewers only); the look itself is an audit line.
pub async fn last_lines(
    web: &Web,
    caller: &Caller,
    q: &AuditQuery,
) -> Result<Vec<serde_json::Value>, ApiError> {
    caller.require_reviewer(Need::Read)?;
    let limit = q.limit.unwrap_or(200).clamp(1, AUDIT_MAX);
    let path = web.bastion.config.audit_log.clone();
    let text = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        crate::audit::tail(&path, limit, true, &mut out).map(|_| out)
    })
    .await
    .map_err(|_| ApiError::unavailable("reading the audit log did not finish"))?
    .map_err(|e| ApiError::unavailable(format!("audit log unavailable: {e}")))?;
    let names = |v: &serde_json::Value, who: &str| {
        ["user", "actor"]
            .iter()
            .any(|k| v.get(*k).and_then(|x| x.as_str()) == Some(who))
    };
    let lines = String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            q.event
                .as_deref()
                .is_none_or(|e| v.get("event").and_then(|x| x.as_str()) == Some(e))
        })
        .filter(|v| q.user.as_deref().is_none_or(|u| names(v, u)))
        .collect();
    web.bastion.events.emit(Event {
        actor: Some(caller.user.name.clone()),
        detail: caller.door(),
        ..Event::new(EventKind::AuditViewed)
    });
    Ok(lines)
}

/// `GET /api/v1/audit`: the last lines of the audit log (reviewers only).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditLines), (status = 400, body = crate::http::error::ErrorBody),
        (status = 401, body = crate::http::error::ErrorBody), (status = 403, body = crate::http::error::ErrorBody)),
    security(("token" = []), ("session" = [])))]
pub async fn list(
    State(web): State<Web>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditLines>, ApiError> {
    Ok(Json(AuditLines {
        lines: last_lines(&web, &caller, &q).await?,
    }))
}
