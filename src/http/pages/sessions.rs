//! *Sessions* (filtered list and text search) and *a session* (its facts, its review, the hash
//! check, the player and the download).

use axum::extract::{Path, State};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{page, when};
use super::{PageError, Viewer};
use crate::http::Web;
use crate::http::api::sessions::{SessionQuery, find, record_view, visible};
use crate::http::error::{ApiError, ApiQuery};

/// The sessions page's filter form, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct SessionForm {
    /// User (reviewers).
    #[serde(default)]
    pub user: String,
    /// Target.
    #[serde(default)]
    pub target: String,
    /// Role.
    #[serde(default)]
    pub role: String,
    /// From this day (`YYYY-MM-DD`).
    #[serde(default)]
    pub from: String,
    /// Up to and including this day.
    #[serde(default)]
    pub to: String,
    /// `yes`, `no` or empty.
    #[serde(default)]
    pub break_glass: String,
    /// `yes`, `no` or empty.
    #[serde(default)]
    pub running: String,
    /// Search text.
    #[serde(default)]
    pub q: String,
}

fn opt(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn yes_no(s: &str) -> Result<Option<bool>, ApiError> {
    match s {
        "" => Ok(None),
        "yes" => Ok(Some(true)),
        "no" => Ok(Some(false)),
        _ => Err(ApiError::bad_request("use yes, no or nothing")),
    }
}

/// The start of day `text` (`YYYY-MM-DD`, UTC) in Unix seconds.
fn day(text: &str) -> Result<Option<i64>, ApiError> {
    let Some(text) = opt(text) else {
        return Ok(None);
    };
    chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| Some(d.and_utc().timestamp()))
        .ok_or_else(|| ApiError::bad_request(format!("{text:?} is not a date like 2026-12-31")))
}

impl SessionForm {
    fn to_query(&self) -> Result<SessionQuery, ApiError> {
        Ok(SessionQuery {
            user: opt(&self.user),
            target: opt(&self.target),
            role: opt(&self.role),
            since: day(&self.from)?,
            until: day(&self.to)?.map(|d| d + 86_400),
            break_glass: yes_no(&self.break_glass)?,
            running: yes_no(&self.running)?,
            q: opt(&self.q),
            limit: Some(200),
            offset: None,
        })
    }
}

/// `GET /sessions`.
pub async fn list(
    State(web): State<Web>,
    Viewer(caller): Viewer,
    ApiQuery(form): ApiQuery<SessionForm>,
) -> Result<Markup, PageError> {
    let failed = |e| PageError(e, Some(caller.clone()));
    let query = form.to_query().map_err(failed)?;
    let found = find(&web, &caller, &query).await.map_err(failed)?;
    let choice = |name: &str, current: &str| {
        html! {
            select name=(name) {
                option value="" selected[current.is_empty()] { "any" }
                option value="yes" selected[current == "yes"] { "yes" }
                option value="no" selected[current == "no"] { "no" }
            }
        }
    };
    let body = html! {
        form.filters method="get" action="/sessions" {
            @if caller.reviewer { label { "User " input type="text" name="user" value=(form.user); } }
            label { "Target " input type="text" name="target" value=(form.target); }
            label { "Role " input type="text" name="role" value=(form.role); }
            label { "From " input type="date" name="from" value=(form.from); }
            label { "To " input type="date" name="to" value=(form.to); }
            label { "Break-glass " (choice("break_glass", &form.break_glass)) }
            label { "Running " (choice("running", &form.running)) }
            label.search { "Text " input type="search" name="q" value=(form.q) placeholder="command, output or input"; }
            button type="submit" { "Show" }
        }
        @if found.is_empty() { p.empty { "No session matches." } }
        div.scroll { table.sessions {
            thead { tr { th { "Started" } th { "User" } th { "Target" } th { "Role" } th { "Kind" } th { "State" } th { "Found" } } }
            tbody {
                @for item in &found {
                    @let s = &item.session;
                    // The hit's exact time: rounded down, it would fall just before the
                    // output that was found, and the player would not show it.
                    @let link = match &item.hit {
                        Some(hit) => format!("/sessions/{}?t={}&q={}", s.id, hit.time, urlencode(&form.q)),
                        None => format!("/sessions/{}", s.id),
                    };
                    tr.session data-id=(s.id) {
                        td { a href=(link) { (when(s.started_at)) } }
                        td { (s.user) }
                        td { (s.target) }
                        td { (s.role) @if s.break_glass { " " span.badge.glass { "break-glass" } } }
                        td { (s.kind) }
                        td { @if s.ended_at.is_none() { span.badge.live { "running" } } @else { "ended" } }
                        td { @if let Some(hit) = &item.hit { (hit.source) " at " (format!("{:.1}", hit.time)) "s" } }
                    }
                }
            }
        } }
    };
    Ok(page("Sessions", Some(&caller), body))
}

/// `value` for a URL query.
fn urlencode(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// `GET /sessions/{id}`.
pub async fn show(
    State(web): State<Web>,
    Viewer(caller): Viewer,
    Path(id): Path<String>,
) -> Result<Markup, PageError> {
    let s = visible(&web, &caller, &id)
        .await
        .map_err(|e| PageError(e, Some(caller.clone())))?;
    record_view(&web, &caller, &s, "page");
    let running = s.ended_at.is_none();
    let review = if s.break_glass {
        web.bastion
            .sessions
            .review_queue(false)
            .await
            .ok()
            .and_then(|q| q.into_iter().find(|(r, _)| r.id == s.id))
            .and_then(|(_, review)| review)
    } else {
        None
    };
    let body = html! {
        dl.facts {
            dt { "User" } dd { (s.user) }
            dt { "Target" } dd { (s.target) }
            dt { "Role" } dd { (s.role) " (grant #" (s.grant_id) ")" }
            dt { "Kind" } dd { (s.kind) @if let Some(c) = &s.command { " " code { (c) } } }
            dt { "Node" } dd { (s.node) }
            dt { "Started" } dd { (when(s.started_at)) }
            dt { "Ended" } dd { @if let Some(e) = s.ended_at { (when(e)) @if let Some(r) = &s.end_reason { " (" (r) ")" } } @else { span.badge.live { "running" } } }
            @if s.break_glass {
                dt { "Break-glass" } dd { @if let Some(r) = &review { "reviewed by " (r.reviewer) ": " (r.note) } @else { span.badge.glass { "waiting for review" } } }
            }
            dt { "Recording" } dd #verify data-session=(s.id) { "checking the hash…" }
        }
        @if s.recording.is_some() {
            section #player data-session=(s.id) data-running=(running) {
                div.screen-wrap { pre #screen.screen aria-live="polite" {} }
                div.controls {
                    button #play type="button" { "Play" }
                    label { "Speed " select #speed { option value="0.5" { "0.5×" } option value="1" selected { "1×" } option value="2" { "2×" } option value="4" { "4×" } option value="8" { "8×" } } }
                    span #clock { "0.0s" }
                    @if running { button #live type="button" { "Live" } }
                    a #download href={"/api/v1/sessions/" (s.id) "/cast"} download { "Download .cast" }
                }
                div #timeline.timeline { div #progress.progress {} }
                ol #marks.marks {}
                form #find.find {
                    label { "Find in recording " input #needle type="search" name="q"; }
                    button type="submit" { "Find" }
                }
                ol #hits.hits {}
            }
        } @else {
            p.empty { "This session was not recorded." }
        }
    };
    Ok(page(
        &format!("Session {}", short(&s.id)),
        Some(&caller),
        body,
    ))
}

/// The first block of a session id, for titles.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
