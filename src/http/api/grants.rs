//! Requests and grants: the requests a person may decide, their own grants, and the decisions
//! (approve, deny, revoke), each through the grant desk under exactly the rules of the SSH
//! verbs.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::grants::store::GrantFilter;
use crate::grants::{self, Decision, Grant, GrantError, GrantState};
use crate::http::Web;
use crate::http::caller::{Caller, Need};
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiQuery};

/// A grant as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GrantView {
    /// Its id.
    pub id: i64,
    /// The person it is for.
    pub user: String,
    /// The role.
    pub role: String,
    /// The target (or a target pattern of the role).
    pub target: String,
    /// Why it was requested.
    pub reason: String,
    /// The state in effect now (`pending`, `active`, `expired`, `revoked`, `denied`, `lapsed`).
    pub state: String,
    /// How long it lasts once active, in seconds.
    pub duration_secs: u64,
    /// How long it lasts, as people write it (`1h30m`).
    pub duration: String,
    /// Whether it came from break-glass.
    pub break_glass: bool,
    /// When it was requested (Unix seconds).
    pub requested_at: i64,
    /// When it became active.
    pub activated_at: Option<i64>,
    /// When it ends or ended.
    pub expires_at: Option<i64>,
    /// Seconds left while active.
    pub seconds_left: Option<i64>,
    /// When it ended.
    pub ended_at: Option<i64>,
    /// Who ended it.
    pub ended_by: Option<String>,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// The approvals given so far.
    pub approvals: Vec<ApprovalView>,
    /// How many approvals the role needs.
    pub approvals_needed: u32,
}

/// One approval.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalView {
    /// Who approved.
    pub approver: String,
    /// What they said.
    pub comment: Option<String>,
    /// When (Unix seconds).
    pub at: i64,
}

impl GrantView {
    /// The view of `g` at `now`.
    pub fn of(g: &Grant, web: &Web, policy: &crate::policy::Policy, now: i64) -> GrantView {
        let state = g.state_at(now, web.bastion.config.request_ttl);
        GrantView {
            id: g.id,
            user: g.user.clone(),
            role: g.role.clone(),
            target: g.target.clone(),
            reason: g.reason.clone(),
            state: state.as_str().to_owned(),
            duration_secs: g.duration.as_secs(),
            duration: crate::duration::format(g.duration),
            break_glass: g.break_glass,
            requested_at: g.requested_at,
            activated_at: g.activated_at,
            expires_at: g.expires_at,
            seconds_left: match (state, g.expires_at) {
                (GrantState::Active, Some(end)) => Some((end - now).max(0)),
                _ => None,
            },
            ended_at: g.ended_at,
            ended_by: g.ended_by.clone(),
            end_reason: g.end_reason.clone(),
            approvals: g
                .approvals
                .iter()
                .map(|a| ApprovalView {
                    approver: a.approver.clone(),
                    comment: a.comment.clone(),
                    at: a.at,
                })
                .collect(),
            approvals_needed: policy.role(&g.role).map(|r| r.approvals).unwrap_or(1),
        }
    }
}

/// A list of grants.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantList {
    /// The grants, newest first.
    pub grants: Vec<GrantView>,
}

/// The API error of a desk refusal.
pub fn api_error(e: GrantError) -> ApiError {
    match e {
        GrantError::Usage(m) if m.starts_with("there is no grant") => ApiError::not_found(m),
        GrantError::Usage(m) => ApiError::bad_request(m),
        GrantError::Denied(m) => ApiError::forbidden(m),
        GrantError::Conflict(m) => ApiError::conflict(m),
        e @ (GrantError::Store(_) | GrantError::Audit(_)) => ApiError::unavailable(e.to_string()),
    }
}

/// The pending requests `caller` may decide now, oldest first.
pub async fn decidable(web: &Web, caller: &Caller) -> Result<Vec<GrantView>, ApiError> {
    let now = grants::now();
    let ttl = web.bastion.config.request_ttl;
    let pending = web
        .bastion
        .grants
        .list(&GrantFilter {
            user: None,
            states: vec![GrantState::Pending],
            limit: Some(500),
        })
        .await
        .map_err(api_error)?;
    let mut out: Vec<GrantView> = pending
        .iter()
        .filter(|g| grants::may_decide(g, &caller.user, &caller.policy, now, ttl))
        .map(|g| GrantView::of(g, web, &caller.policy, now))
        .collect();
    out.reverse();
    Ok(out)
}

/// `caller`'s own grants: the live ones, or all of them.
pub async fn own(web: &Web, caller: &Caller, all: bool) -> Result<Vec<GrantView>, ApiError> {
    let now = grants::now();
    let ttl = web.bastion.config.request_ttl;
    let mine = web
        .bastion
        .grants
        .list(&GrantFilter {
            user: Some(caller.user.name.clone()),
            states: if all {
                vec![]
            } else {
                vec![GrantState::Pending, GrantState::Active]
            },
            limit: Some(200),
        })
        .await
        .map_err(api_error)?;
    Ok(mine
        .iter()
        .filter(|g| all || !g.state_at(now, ttl).is_final())
        .map(|g| GrantView::of(g, web, &caller.policy, now))
        .collect())
}

/// Applies `decision` on grant `id` as `caller`, through the desk.
pub async fn decide(
    web: &Web,
    caller: &Caller,
    id: i64,
    decision: &Decision,
) -> Result<GrantView, ApiError> {
    caller.require(Need::Approve)?;
    let grant = web
        .bastion
        .desk()
        .decide(&caller.policy, &caller.actor(), id, decision)
        .await
        .map_err(api_error)?;
    Ok(GrantView::of(&grant, web, &caller.policy, grants::now()))
}

/// `GET /api/v1/requests`: the pending requests the caller may approve or deny.
#[utoipa::path(get, path = "/api/v1/requests", tag = "grants",
    responses((status = 200, body = GrantList), (status = 401, body = crate::http::error::ErrorBody)),
    security(("token" = []), ("session" = [])))]
pub async fn list_requests(
    State(web): State<Web>,
    caller: Caller,
) -> Result<Json<GrantList>, ApiError> {
    caller.require(Need::Read)?;
    Ok(Json(GrantList {
        grants: decidable(&web, &caller).await?,
    }))
}

/// The body of an approval.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// A comment recorded with the approval (empty: none).
    #[serde(default)]
    #[schema(max_length = 500, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub comment: Option<String>,
}

/// The body of a revocation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why (empty: none).
    #[serde(default)]
    #[schema(max_length = 500, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub reason: Option<String>,
}

/// The body of a denial.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DenyBody {
    /// Why the request is refused.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*\S[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub reason: String,
}

/// Blank text is no text.
fn given(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.trim().is_empty())
}

/// `POST /api/v1/requests/{id}/approve`.
#[utoipa::path(post, path = "/api/v1/requests/{id}/approve", tag = "grants",
    params(("id" = i64, Path, description = "The grant id")),
    request_body = ApproveBody,
    responses((status = 200, body = GrantView), (status = 400, body = crate::http::error::ErrorBody),
        (status = 401, body = crate::http::error::ErrorBody), (status = 403, body = crate::http::error::ErrorBody),
        (status = 404, body = crate::http::error::ErrorBody), (status = 409, body = crate::http::error::ErrorBody),
        (status = 415, body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody),
        (status = 503, body = crate::http::error::ErrorBody)),
    security(("token" = []), ("session" = [])))]
pub async fn approve(
    State(web): State<Web>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ApproveBody>,
) -> Result<Json<GrantView>, ApiError> {
    Ok(Json(
        decide(&web, &caller, id, &Decision::Approve(given(body.comment))).await?,
    ))
}

/// `POST /api/v1/requests/{id}/deny`.
#[utoipa::path(post, path = "/api/v1/requests/{id}/deny", tag = "grants",
    params(("id" = i64, Path, description = "The grant id")),
    request_body = DenyBody,
    responses((status = 200, body = GrantView), (status = 400, body = crate::http::error::ErrorBody),
        (status = 401, body = crate::http::error::ErrorBody), (status = 403, body = crate::http::error::ErrorBody),
        (status = 404, body = crate::http::error::ErrorBody), (status = 409, body = crate::http::error::ErrorBody),
        (status = 415, body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody),
        (status = 503, body = crate::http::error::ErrorBody)),
    security(("token" = []), ("session" = [])))]
pub async fn deny(
    State(web): State<Web>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<DenyBody>,
) -> Result<Json<GrantView>, ApiError> {
    let reason =
        given(Some(body.reason)).ok_or_else(|| ApiError::bad_request("a denial needs a reason"))?;
    Ok(Json(
        decide(&web, &caller, id, &Decision::Deny(reason)).await?,
    ))
}

/// `POST /api/v1/grants/{id}/revoke`.
#[utoipa::path(post, path = "/api/v1/grants/{id}/revoke", tag = "grants",
    params(("id" = i64, Path, description = "The grant id")),
    request_body = ReasonBody,
    responses((status = 200, body = GrantView), (status = 400, body = crate::http::error::ErrorBody),
        (status = 401, body = crate::http::error::ErrorBody), (status = 403, body = crate::http::error::ErrorBody),
        (status = 404, body = crate::http::error::ErrorBody), (status = 409, body = crate::http::error::ErrorBody),
        (status = 415, body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody),
        (status = 503, body = crate::http::error::ErrorBody)),
    security(("token" = []), ("session" = [])))]
pub async fn revoke(
    State(web): State<Web>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<GrantView>, ApiError> {
    Ok(Json(
        decide(&web, &caller, id, &Decision::Revoke(given(body.reason))).await?,
    ))
}

/// Which of the caller's grants to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GrantsQuery {
    /// Also the ended ones.
    #[serde(default)]
    pub all: bool,
}

/// `GET /api/v1/grants`: the caller's own grants.
#[utoipa::path(get, path = "/api/v1/grants", tag = "grants", params(GrantsQuery),
    responses((status = 200, body = GrantList), (status = 400, body = crate::http::error::ErrorBody),
        (status = 401, body = crate::http::error::ErrorBody)),
    security(("token" = []), ("session" = [])))]
pub async fn list_grants(
    State(web): State<Web>,
    caller: Caller,
    ApiQuery(q): ApiQuery<GrantsQuery>,
) -> Result<Json<GrantList>, ApiError> {
    caller.require(Need::Read)?;
    Ok(Json(GrantList {
        grants: own(&web, &caller, q.all).await?,
    }))
}
