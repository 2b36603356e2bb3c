//! The review queue: break-glass sessions waiting for someone other than the person who broke
//! the glass to look at them and acknowledge, with a note.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::events::{Event, EventKind};
use crate::http::Web;
use crate::http::caller::{Caller, Need};
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::store::sessions::{AckError, AckedLine, Review, SessionRecord};

/// A break-glass session with its review, if it has one.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewItem {
    /// The session.
    pub session: SessionRecord,
    /// Its review.
    pub review: Option<Review>,
}

/// The review queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewList {
    /// Oldest first.
    pub reviews: Vec<ReviewItem>,
}

/// Which part of the queue.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    /// Also the sessions already reviewed.
    #[serde(default)]
    pub all: bool,
}

/// The queue as a reviewer sees it.
pub async fn queue(web: &Web, caller: &Caller, all: bool) -> Result<Vec<ReviewItem>, ApiError> {
    caller.require_reviewer(Need::Read)?;
    let rows = web
        .bastion
        .sessions
        .review_queue(!all)
        .await
        .map_err(ApiError::store)?;
    Ok(rows
        .into_iter()
        .map(|(session, review)| ReviewItem { session, review })
        .collect())
}

/// Records `caller`'s review of break-glass session `id`, sealed by its audit line.
pub async fn acknowledge(
    web: &Web,
    caller: &Caller,
    id: &str,
    note: &str,
) -> Result<Review, ApiError> {
    caller.require_reviewer(Need::Review)?;
    let note = crate::grants::check_text("note", note, 1)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let bastion = &web.bastion;
    let session = bastion
        .sessions
        .session(id)
        .await
        .map_err(ApiError::store)?
        .filter(|s| s.break_glass)
        .ok_or_else(|| ApiError::not_found(format!("there is no break-glass session {id:?}")))?;
    if session.user == caller.user.name {
        return Err(ApiError::forbidden(format!(
            "{} broke the glass in this session; someone else must review it",
            caller.user.name
        )));
    }
    let review = Review {
        reviewer: caller.user.name.clone(),
        note: note.clone(),
        at: crate::grants::now(),
    };
    let acked = Event {
        user: Some(session.user.clone()),
        actor: Some(caller.user.name.clone()),
        target: Some(session.target.clone()),
        role: Some(session.role.clone()),
        grant_id: Some(session.grant_id),
        session_id: Some(session.id.clone()),
        reason: Some(note),
        detail: caller.door(),
        ..Event::new(EventKind::ReviewAcked)
    };
    let seal = AckedLine {
        events: &bastion.events,
        acked: &acked,
    };
    match bastion
        .sessions
        .acknowledge(&session.id, &review, &seal)
        .await
    {
        Ok(()) => {}
        Err(e @ AckError::Taken(_)) => return Err(ApiError::conflict(e.to_string())),
        Err(AckError::Unwritable(e)) => {
            return Err(ApiError::unavailable(format!(
                "the review was not stored: {e}"
            )));
        }
        Err(AckError::Store(e)) => {
            return Err(ApiError::store(e));
        }
    }
    bastion.events.alert(&acked);
    Ok(review)
}

/// `GET /api/v1/reviews`: break-glass sessions waiting for review (reviewers only).
#[utoipa::path(get, path = "/api/v1/reviews", tag = "reviews", params(ReviewQuery),
    responses((status = 200, body = ReviewList), (status = 400, body = crate::http::error::ErrorBody),
        (status = 401, body = crate::http::error::ErrorBody), (status = 403, body = crate::http::error::ErrorBody)),
    security(("token" = []), ("session" = [])))]
pub async fn list(
    State(web): State<Web>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ReviewQuery>,
) -> Result<Json<ReviewList>, ApiError> {
    Ok(Json(ReviewList {
        reviews: queue(&web, &caller, q.all).await?,
    }))
}

/// The body of an acknowledgement.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// What the reviewer found.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*\S[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub note: String,
}

/// `POST /api/v1/reviews/{id}/ack`: acknowledges a break-glass session, never by the person
/// who broke the glass.
#[utoipa::path(post, path = "/api/v1/reviews/{id}/ack", tag = "reviews",
    params(("id" = String, Path, description = "The session id")),
    request_body = AckBody,
    responses((status = 200, body = Review), (status = 400, body = crate::http::error::ErrorBody),
        (status = 401, body = crate::http::error::ErrorBody), (status = 403, body = crate::http::error::ErrorBody),
        (status = 404, body = crate::http::error::ErrorBody), (status = 409, body = crate::http::error::ErrorBody),
        (status = 415, body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody),
        (status = 503, body = crate::http::error::ErrorBody)),
    security(("token" = []), ("session" = [])))]
pub async fn ack(
    State(web): State<Web>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AckBody>,
) -> Result<Json<Review>, ApiError> {
    Ok(Json(acknowledge(&web, &caller, &id, &body.note).await?))
}
