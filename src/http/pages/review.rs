//! *Review queue* (break-glass sessions to acknowledge) and the audit log, for reviewers.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{csrf_field, page, when};
use super::{PageError, Submitted, Viewer, back_to};
use crate::http::Web;
use crate::http::api::audit::{AuditQuery, last_lines};
use crate::http::api::reviews::{acknowledge, queue};
use crate::http::error::ApiQuery;

/// `GET /review`.
pub async fn queue_page(
    State(web): State<Web>,
    Viewer(caller): Viewer,
) -> Result<Markup, PageError> {
    let items = queue(&web, &caller, false)
        .await
        .map_err(|e| PageError(e, Some(caller.clone())))?;
    let body = html! {
        @if items.is_empty() { p.empty { "No break-glass session is waiting for review." } }
        @for item in &items {
            @let s = &item.session;
            article.card.review id={"review-" (s.id)} {
                h2 { a href={"/sessions/" (s.id)} { (s.user) " on " (s.target) } }
                dl {
                    dt { "Started" } dd { (when(s.started_at)) }
                    dt { "Role" } dd { (s.role) }
                    dt { "Grant" } dd { "#" (s.grant_id) }
                }
                @if s.user == caller.user.name {
                    p.note { "You broke the glass in this session; someone else must review it." }
                } @else {
                    form.decide method="post" action={"/review/" (s.id) "/ack"} {
                        (csrf_field(&caller))
                        label { "Note " input type="text" name="note" required maxlength="2000"; }
                        button.ack type="submit" { "Acknowledge" }
                    }
                }
            }
        }
    };
    Ok(page("Review queue", Some(&caller), body))
}

/// An acknowledgement's form.
#[derive(Deserialize)]
pub struct AckForm {
    /// What the reviewer found.
    #[serde(default)]
    pub note: String,
}

/// `POST /review/{id}/ack`.
pub async fn ack(
    State(web): State<Web>,
    Path(id): Path<String>,
    Submitted(caller, form): Submitted<AckForm>,
) -> Response {
    match acknowledge(&web, &caller, &id, &form.note).await {
        Ok(_) => back_to("/review"),
        Err(e) => PageError(e, Some(caller)).into_response(),
    }
}

/// `GET /audit`: the last lines of the audit log.
pub async fn audit_page(
    State(web): State<Web>,
    Viewer(caller): Viewer,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Markup, PageError> {
    let lines = last_lines(&web, &caller, &q)
        .await
        .map_err(|e| PageError(e, Some(caller.clone())))?;
    let field = |v: &serde_json::Value, k: &str| {
        v.get(k)
            .map(|x| match x {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    let body = html! {
        form.filters method="get" action="/audit" {
            label { "Event " input type="text" name="event" value=[q.event.as_deref()]; }
            label { "User " input type="text" name="user" value=[q.user.as_deref()]; }
            button type="submit" { "Filter" }
        }
        div.scroll { table.audit {
            thead { tr { th { "Time" } th { "Event" } th { "User" } th { "Actor" } th { "Details" } } }
            tbody {
                @for v in lines.iter().rev() {
                    tr {
                        td { (field(v, "time")) }
                        td { (field(v, "event")) }
                        td { (field(v, "user")) }
                        td { (field(v, "actor")) }
                        td.detail { (field(v, "reason")) " " (field(v, "session_id")) }
                    }
                }
            }
        } }
    };
    Ok(page("Audit log", Some(&caller), body))
}
