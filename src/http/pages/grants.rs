//! *Requests* (what I may approve or deny) and *My grants* (state, time left, revoke).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{csrf_field, page, span, when};
use super::{PageError, Submitted, Viewer, back_to};
use crate::grants::Decision;
use crate::http::Web;
use crate::http::api::grants::{GrantView, decidable, decide, own};
use crate::http::caller::Caller;

/// `GET /requests`.
pub async fn requests(State(web): State<Web>, Viewer(caller): Viewer) -> Result<Markup, PageError> {
    let pending = decidable(&web, &caller)
        .await
        .map_err(|e| PageError(e, Some(caller.clone())))?;
    let body = html! {
        @if pending.is_empty() {
            p.empty { "No requests are waiting for you." }
        }
        @for g in &pending {
            article.card.request id={"grant-" (g.id)} {
                (summary(g))
                form.decide method="post" action={"/requests/" (g.id) "/approve"} {
                    (csrf_field(&caller))
                    label { "Comment " input type="text" name="comment" maxlength="500"; }
                    button.approve type="submit" { "Approve" }
                }
                form.decide method="post" action={"/requests/" (g.id) "/deny"} {
                    (csrf_field(&caller))
                    label { "Reason " input type="text" name="reason" required maxlength="500"; }
                    button.deny type="submit" { "Deny" }
                }
            }
        }
    };
    Ok(page("Requests", Some(&caller), body))
}

/// `GET /grants`.
pub async fn grants(State(web): State<Web>, Viewer(caller): Viewer) -> Result<Markup, PageError> {
    let mine = own(&web, &caller, true)
        .await
        .map_err(|e| PageError(e, Some(caller.clone())))?;
    let body = html! {
        @if mine.is_empty() {
            p.empty { "You hold no grants. Request one: " code { "ssh bastion request TARGET --role ROLE --for 1h --reason TEXT" } }
        }
        @for g in &mine {
            article.card.grant id={"grant-" (g.id)} data-state=(g.state) {
                (summary(g))
                @if g.state == "active" || g.state == "pending" {
                    form.decide method="post" action={"/grants/" (g.id) "/revoke"} {
                        (csrf_field(&caller))
                        label { "Reason " input type="text" name="reason" maxlength="500"; }
                        button.revoke type="submit" { "Revoke" }
                    }
                }
            }
        }
    };
    Ok(page("My grants", Some(&caller), body))
}

/// The facts of one grant.
fn summary(g: &GrantView) -> Markup {
    html! {
        h2 { "#" (g.id) " " (g.role) " on " (g.target) }
        dl {
            dt { "Requester" } dd.user { (g.user) }
            dt { "State" } dd.state { (g.state)
                @if let Some(left) = g.seconds_left { " · " (span(left)) " left" } }
            dt { "Duration" } dd { (g.duration) }
            dt { "Reason" } dd.reason { (g.reason) }
            dt { "Requested" } dd { (when(g.requested_at)) }
            dt { "Approvals" } dd { (g.approvals.len()) " of " (g.approvals_needed)
                @for a in &g.approvals { " · " (a.approver) } }
            @if g.break_glass { dt { "Break-glass" } dd { "yes" } }
            @if let Some(by) = &g.ended_by { dt { "Ended by" } dd { (by) @if let Some(r) = &g.end_reason { ": " (r) } } }
        }
    }
}

/// An approval's form.
#[derive(Deserialize)]
pub struct ApproveForm {
    /// A comment (empty: none).
    #[serde(default)]
    pub comment: String,
}

/// A denial's or revocation's form.
#[derive(Deserialize)]
pub struct ReasonForm {
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// Runs `decision` and goes back to `to`, or shows why it was refused.
async fn decided(web: &Web, caller: Caller, id: i64, decision: Decision, to: &str) -> Response {
    match decide(web, &caller, id, &decision).await {
        Ok(_) => back_to(to),
        Err(e) => PageError(e, Some(caller)).into_response(),
    }
}

fn text(value: String) -> Option<String> {
    Some(value.trim().to_owned()).filter(|v| !v.is_empty())
}

/// `POST /requests/{id}/approve`.
pub async fn approve(
    State(web): State<Web>,
    Path(id): Path<i64>,
    Submitted(caller, form): Submitted<ApproveForm>,
) -> Response {
    decided(
        &web,
        caller,
        id,
        Decision::Approve(text(form.comment)),
        "/requests",
    )
    .await
}

/// `POST /requests/{id}/deny`.
pub async fn deny(
    State(web): State<Web>,
    Path(id): Path<i64>,
    Submitted(caller, form): Submitted<ReasonForm>,
) -> Response {
    match text(form.reason) {
        Some(reason) => decided(&web, caller, id, Decision::Deny(reason), "/requests").await,
        None => PageError(
            crate::http::error::ApiError::bad_request("a denial needs a reason"),
            Some(caller),
        )
        .into_response(),
    }
}

/// `POST /grants/{id}/revoke`.
pub async fn revoke(
    State(web): State<Web>,
    Path(id): Path<i64>,
    Submitted(caller, form): Submitted<ReasonForm>,
) -> Response {
    decided(
        &web,
        caller,
        id,
        Decision::Revoke(text(form.reason)),
        "/grants",
    )
    .await
}
