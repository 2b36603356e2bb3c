//! Sessions: the list with its filters and text search, one session with its review, the
//! recording's hash check and its download. A user sees their own sessions; reviewers see
//! every one. Every look at a recording is an audit line.

use std::path::PathBuf;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::events::{Event, EventKind};
use crate::http::Web;
use crate::http::caller::{Caller, Need};
use crate::http::error::{ApiError, ApiPath, ApiQuery};
use crate::recording;
use crate::store::sessions::{SessionFilter, SessionRecord};

/// Most sessions a list returns.
pub const PAGE_MAX: u32 = 500;

/// Most sessions one text search looks at (the newest matching the filters).
pub const SEARCH_MAX: u32 = 200;

/// The filters of the sessions list.
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    /// Only this user's (reviewers only, for anyone but themselves).
    pub user: Option<String>,
    /// Only on this target.
    pub target: Option<String>,
    /// Only under this role.
    pub role: Option<String>,
    /// Only those started at or after (Unix seconds).
    pub since: Option<i64>,
    /// Only those started before (Unix seconds).
    pub until: Option<i64>,
    /// Only break-glass sessions (or only the others).
    pub break_glass: Option<bool>,
    /// Only running sessions (or only ended ones).
    pub running: Option<bool>,
    /// Text to find in the command, output or typed input.
    pub q: Option<String>,
    /// At most this many (default 100, at most 500).
    pub limit: Option<u32>,
    /// Skip this many first.
    pub offset: Option<u32>,
}

/// A session in a list, with where a search found its text.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionItem {
    /// The session.
    #[serde(flatten)]
    pub session: SessionRecord,
    /// Where the search text occurs first, for a search.
    pub hit: Option<Hit>,
}

/// Where a search found its text.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Hit {
    /// `command`, `output`, `input`, `marker` or `file` (a path in a file session's transcript).
    pub source: String,
    /// Seconds into the recording.
    pub time: f64,
}

/// A list of sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Newest first.
    pub sessions: Vec<SessionItem>,
}

/// The sessions `caller` may see that match `q`.
pub async fn find(
    web: &Web,
    caller: &Caller,
    q: &SessionQuery,
) -> Result<Vec<SessionItem>, ApiError> {
    caller.require(Need::Read)?;
    let user = match &q.user {
        Some(u) if !caller.may_see(u) => {
            return Err(ApiError::forbidden(
                "only reviewers may list other people's sessions",
            ));
        }
        Some(u) => Some(u.clone()),
        None if caller.reviewer => None,
        None => Some(caller.user.name.clone()),
    };
    let needle = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty());
    if needle.is_some_and(|t| t.len() > 200) {
        return Err(ApiError::bad_request(
            "the search text is longer than 200 bytes",
        ));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, PAGE_MAX);
    let filter = SessionFilter {
        user,
        target: q.target.clone(),
        role: q.role.clone(),
        since: q.since,
        until: q.until,
        break_glass: q.break_glass,
        running: q.running,
        limit: Some(if needle.is_some() { SEARCH_MAX } else { limit }),
        offset: q.offset,
    };
    let found = web
        .bastion
        .sessions
        .sessions(&filter)
        .await
        .map_err(ApiError::store)?;
    let Some(needle) = needle else {
        return Ok(found
            .into_iter()
            .map(|session| SessionItem { session, hit: None })
            .collect());
    };
    let hits = crate::search::search(&web.bastion.store, needle, &found)
        .await
        .map_err(|e| match e {
            crate::search::SearchError::Store(e) => ApiError::store(e),
            other => ApiError::bad_request(other.to_string()),
        })?;
    Ok(found
        .into_iter()
        .filter_map(|session| {
            let hit = Hit::from(*hits.get(&session.id)?);
            Some(SessionItem {
                session,
                hit: Some(hit),
            })
        })
        .take(limit as usize)
        .collect())
}

impl From<recording::TextMatch> for Hit {
    fn from(found: recording::TextMatch) -> Hit {
        Hit {
            source: match found.source {
                recording::MatchSource::Command => "command",
                recording::MatchSource::Output => "output",
                recording::MatchSource::Input => "input",
                recording::MatchSource::Marker => "marker",
                recording::MatchSource::File => "file",
            }
            .into(),
            time: found.time,
        }
    }
}

/// `GET /api/v1/sessions`: the sessions the caller may see, filtered, optionally searched.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", params(SessionQuery),
    responses((status = 200, body = SessionList), (status = 400, body = crate::http::error::ErrorBody),
        (status = 401, body = crate::http::error::ErrorBody), (status = 403, body = crate::http::error::ErrorBody)),
    security(("token" = []), ("session" = [])))]
pub async fn list(
    State(web): State<Web>,
    caller: Caller,
    ApiQuery(q): ApiQuery<SessionQuery>,
) -> Result<Json<SessionList>, ApiError> {
    Ok(Json(SessionList {
        sessions: find(&web, &caller, &q).await?,
    }))
}

/// One session the caller may see (404 for one they may not, so ids are not probed).
pub async fn visible(web: &Web, caller: &Caller, id: &str) -> Result<SessionRecord, ApiError> {
    caller.require(Need::Read)?;
    let session = web
        .bastion
        .sessions
        .session(id)
        .await
        .map_err(ApiError::store)?;
    match session {
        Some(s) if caller.may_see(&s.user) => Ok(s),
        _ => Err(ApiError::not_found(format!(
            "there is no session {id:?} you may see"
        ))),
    }
}

/// `GET /api/v1/sessions/{id}`.
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "The session id")),
    responses((status = 200, body = SessionRecord), (status = 401, body = crate::http::error::ErrorBody),
        (status = 404, body = crate::http::error::ErrorBody)),
    security(("token" = []), ("session" = [])))]
pub async fn show(
    State(web): State<Web>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionRecord>, ApiError> {
    Ok(Json(visible(&web, &caller, &id).await?))
}

/// The result of checking a recording against the hash taken when its session ended.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Verification {
    /// `ok`, `modified`, `missing`, `running` (no hash yet) or `unrecorded`.
    pub result: String,
    /// The hash taken when the session ended.
    pub recorded: Option<String>,
    /// The hash of the file now.
    pub actual: Option<String>,
    /// What it means, for people.
    pub message: String,
}

/// Checks `session`'s recording against its recorded hash.
pub async fn verify_recording(session: &SessionRecord) -> Verification {
    let (Some(path), want) = (session.recording.clone(), session.sha256.clone()) else {
        return Verification {
            result: "unrecorded".into(),
            recorded: None,
            actual: None,
            message: "this session was not recorded".into(),
        };
    };
    let Some(want) = want else {
        let running = session.ended_at.is_none();
        return Verification {
            result: if running { "running" } else { "unhashed" }.into(),
            recorded: None,
            actual: None,
            message: if running {
                "the session is still running; its hash is taken when it ends".into()
            } else {
                "no hash was taken (the session did not end cleanly)".into()
            },
        };
    };
    let have =
        tokio::task::spawn_blocking(move || recording::sha256_file(std::path::Path::new(&path)))
            .await;
    match have {
        Ok(Ok(have)) if have == want => Verification {
            result: "ok".into(),
            message: "the recording matches the hash taken when the session ended".into(),
            recorded: Some(want),
            actual: Some(have),
        },
        Ok(Ok(have)) => Verification {
            result: "modified".into(),
            message: "the recording was MODIFIED after the session ended".into(),
            recorded: Some(want),
            actual: Some(have),
        },
        Ok(Err(e)) => Verification {
            result: "missing".into(),
            message: format!("the recording cannot be read on this node: {e}"),
            recorded: Some(want),
            actual: None,
        },
        Err(_) => Verification {
            result: "missing".into(),
            message: "the check did not finish".into(),
            recorded: Some(want),
            actual: None,
        },
    }
}

/// `GET /api/v1/sessions/{id}/verify`: the recording's hash check.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/verify", tag = "sessions",
    params(("id" = String, Path, description = "The session id")),
    responses((status = 200, body = Verification), (status = 401, body = crate::http::error::ErrorBody),
        (status = 404, body = crate::http::error::ErrorBody)),
    security(("token" = []), ("session" = [])))]
pub async fn verify(
    State(web): State<Web>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Verification>, ApiError> {
    let session = visible(&web, &caller, &id).await?;
    Ok(Json(verify_recording(&session).await))
}

/// Writes the audit line of `caller` looking at `session`'s recording (`how`: `player`,
/// `download`, `live`).
pub fn record_view(web: &Web, caller: &Caller, session: &SessionRecord, how: &str) {
    let mut detail = caller.door().unwrap_or_else(|| serde_json::json!({}));
    detail["how"] = serde_json::Value::String(how.to_owned());
    web.bastion.events.emit(Event {
        user: Some(session.user.clone()),
        actor: Some(caller.user.name.clone()),
        target: Some(session.target.clone()),
        role: Some(session.role.clone()),
        grant_id: Some(session.grant_id),
        session_id: Some(session.id.clone()),
        detail: Some(detail),
        ..Event::new(EventKind::SessionViewed)
    });
}

/// The recording file of a session the caller may see.
pub async fn recording_of(
    web: &Web,
    caller: &Caller,
    id: &str,
) -> Result<(SessionRecord, PathBuf), ApiError> {
    let session = visible(web, caller, id).await?;
    let path = session
        .recording
        .clone()
        .ok_or_else(|| ApiError::not_found("this session was not recorded"))?;
    Ok((session, PathBuf::from(path)))
}

/// `GET /api/v1/sessions/{id}/cast`: the recording as an asciicast file.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/cast", tag = "sessions",
    params(("id" = String, Path, description = "The session id")),
    responses((status = 200, description = "The asciicast v2 file", content_type = "application/x-asciicast"),
        (status = 401, body = crate::http::error::ErrorBody), (status = 404, body = crate::http::error::ErrorBody)),
    security(("token" = []), ("session" = [])))]
pub async fn download(
    State(web): State<Web>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let (session, path) = recording_of(&web, &caller, &id).await?;
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        ApiError::not_found(format!("the recording cannot be read on this node: {e}"))
    })?;
    record_view(&web, &caller, &session, "download");
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-asciicast".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.cast\"", sanitize_id(&session.id)),
            ),
        ],
        body,
    )
        .into_response())
}

/// The id with anything but letters, digits and `-` removed (for a file name in a header).
fn sanitize_id(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}
