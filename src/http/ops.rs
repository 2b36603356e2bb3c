//! Operations endpoints for load balancers and monitoring: `/healthz` (the process answers),
//! `/readyz` (the store, the audit log and the recordings can take a new session) and
//! `/metrics` (Prometheus text).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::Web;
use crate::fscheck;
use crate::health::Readiness;

/// `GET /healthz`: 200 while the process serves requests.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// What `/readyz` reports.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReadyReport {
    /// Whether a new session would be allowed now.
    pub ready: bool,
    /// The store and audit log faults the bastion knows of.
    #[schema(value_type = Vec<Object>)]
    pub faults: Vec<crate::health::Fault>,
    /// Why recordings cannot be written, if they cannot.
    pub recordings: Option<String>,
}

/// `GET /readyz`: 200 when the store, the audit log and the recordings directory all work,
/// 503 with the reasons otherwise.
pub async fn readyz(State(web): State<Web>) -> Response {
    let Readiness { ready, faults } = web.bastion.health.readiness();
    let dir = web.bastion.config.recordings.dir.clone();
    let recordings = tokio::task::spawn_blocking(move || {
        // The recorder creates the directory with the first recording: until then, the
        // nearest directory that exists is where it will be made.
        let existing = dir.ancestors().find(|d| d.exists()).unwrap_or(&dir);
        fscheck::may_write(existing)
            .and_then(|()| fscheck::has_room(existing))
            .err()
            .map(|e| format!("{}: {e}", dir.display()))
    })
    .await
    .unwrap_or_else(|_| Some("the recordings check did not finish".into()));
    let ready = ready && recordings.is_none();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(ReadyReport {
            ready,
            faults,
            recordings,
        }),
    )
        .into_response()
}

/// `GET /metrics`: every counter, gauge and histogram in Prometheus text format. Like
/// `/healthz`, it needs no sign-in (scrapers have none); it names no person, only counts.
pub async fn metrics(State(web): State<Web>) -> Response {
    match &web.bastion.metrics {
        Some(metrics) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            metrics.render(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "metrics are not recorded in this process\n",
        )
            .into_response(),
    }
}
