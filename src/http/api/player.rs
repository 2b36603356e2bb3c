//! What the player draws: a recording's timeline (commands and denials as marks), the screen
//! at any moment, the newest screen of a running session, and the moments a text appears.
//! Screens are rendered here by a terminal emulator; the browser only places text.

use std::path::PathBuf;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::Web;
use crate::http::api::sessions::{Hit, record_view, recording_of};
use crate::http::caller::Caller;
use crate::http::error::{ApiError, ApiPath, ApiQuery};
use crate::recording::screen::{Frame, ScreenError, Timeline};

/// Most search hits returned for one recording.
pub const HITS_MAX: usize = 500;

/// Runs `work` on the blocking pool (screens read files and replay bytes).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ScreenError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError::unavailable("the recording could not be read"))?
        .map_err(|e| match e {
            ScreenError::Io { .. } => {
                ApiError::not_found(format!("{e} (it may be on another node)"))
            }
            ScreenError::Cast { .. } => ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "unreadable",
                e.to_string(),
            ),
        })
}

async fn path_of(
    web: &Web,
    caller: &Caller,
    id: &str,
    how: Option<&str>,
) -> Result<PathBuf, ApiError> {
    let (session, path) = recording_of(web, caller, id).await?;
    if let Some(how) = how {
        record_view(web, caller, &session, how);
    }
    Ok(path)
}

/// `GET /api/v1/sessions/{id}/timeline`: duration, size and marks; opening the player (an
/// audit line: who watched which session, when).
#[utoipa::path(get, path = "/api/v1/sessions/{id}/timeline", tag = "player",
    params(("id" = String, Path, description = "The session id")),
    responses((status = 200, body = Timeline, description = "The timeline: duration, cols, rows, marks, resizes"),
        (status = 401, body = crate::http::error::ErrorBody), (status = 404, body = crate::http::error::ErrorBody)),
    security(("token" = []), ("session" = [])))]
pub async fn timeline(
    State(web): State<Web>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Timeline>, ApiError> {
    let path = path_of(&web, &caller, &id, Some("player")).await?;
    let screens = web.screens.clone();
    Ok(Json(blocking(move || screens.timeline(&path)).await?))
}

/// The moment to show.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FrameQuery {
    /// Seconds into the recording.
    #[param(minimum = 0.0)]
    pub t: f64,
}

/// `GET /api/v1/sessions/{id}/frame?t=SECONDS`: the screen at that moment.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/frame", tag = "player",
    params(("id" = String, Path, description = "The session id"), FrameQuery),
    responses((status = 200, body = Frame, description = "The screen: time, cols, rows, lines of styled text spans, cursor"),
        (status = 400, body = crate::http::error::ErrorBody),
        (status = 401, body = crate::http::error::ErrorBody), (status = 404, body = crate::http::error::ErrorBody)),
    security(("token" = []), ("session" = [])))]
pub async fn frame(
    State(web): State<Web>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<FrameQuery>,
) -> Result<Json<Frame>, ApiError> {
    if !q.t.is_finite() || q.t < 0.0 {
        return Err(ApiError::bad_request(
            "t must be a number of seconds, 0 or more",
        ));
    }
    let path = path_of(&web, &caller, &id, None).await?;
    let screens = web.screens.clone();
    Ok(Json(blocking(move || screens.frame_at(&path, q.t)).await?))
}

/// `GET /api/v1/sessions/{id}/live`: the newest screen (of a running session, as it grows).
#[utoipa::path(get, path = "/api/v1/sessions/{id}/live", tag = "player",
    params(("id" = String, Path, description = "The session id")),
    responses((status = 200, body = Frame, description = "The newest screen"),
        (status = 401, body = crate::http::error::ErrorBody), (status = 404, body = crate::http::error::ErrorBody)),
    security(("token" = []), ("session" = [])))]
pub async fn live(
    State(web): State<Web>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Frame>, ApiError> {
    let path = path_of(&web, &caller, &id, None).await?;
    let screens = web.screens.clone();
    Ok(Json(blocking(move || screens.latest(&path)).await?))
}

/// The text to find.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HitsQuery {
    /// The text (case-sensitive, at most 200 bytes).
    pub q: String,
}

/// Where a text appears in one recording.
#[derive(Debug, Serialize, ToSchema)]
pub struct HitList {
    /// In order of time.
    pub hits: Vec<Hit>,
}

/// `GET /api/v1/sessions/{id}/hits?q=TEXT`: every moment the text appears.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/hits", tag = "player",
    params(("id" = String, Path, description = "The session id"), HitsQuery),
    responses((status = 200, body = HitList), (status = 400, body = crate::http::error::ErrorBody),
        (status = 401, body = crate::http::error::ErrorBody), (status = 404, body = crate::http::error::ErrorBody)),
    security(("token" = []), ("session" = [])))]
pub async fn hits(
    State(web): State<Web>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HitsQuery>,
) -> Result<Json<HitList>, ApiError> {
    if q.q.len() > 200 {
        return Err(ApiError::bad_request(
            "the search text is longer than 200 bytes",
        ));
    }
    let path = path_of(&web, &caller, &id, None).await?;
    let needle = q.q;
    let found =
        blocking(move || crate::recording::screen::search_times(&path, &needle, HITS_MAX)).await?;
    Ok(Json(HitList {
        hits: found.into_iter().map(Hit::from).collect(),
    }))
}
