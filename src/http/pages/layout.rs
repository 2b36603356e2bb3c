//! The frame every page shares: the document head (with this origin's stylesheet and script,
//! nothing inline), the navigation for what the person may use, and small helpers for forms
//! that carry the anti-forgery value.

use maud::{DOCTYPE, Markup, html};

use crate::http::caller::{Caller, Via};
use crate::http::error::ApiError;

/// A whole page: `title`, the navigation for `caller` (if signed in) and `body`.
pub fn page(title: &str, caller: Option<&Caller>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · Gatehouse" }
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Gatehouse" }
                    @if let Some(caller) = caller {
                        nav {
                            a href="/requests" { "Requests" }
                            a href="/grants" { "My grants" }
                            a href="/sessions" { "Sessions" }
                            @if caller.reviewer {
                                a href="/review" { "Review" }
                                a href="/audit" { "Audit log" }
                            }
                        }
                        form.signout method="post" action="/logout" {
                            (csrf_field(caller))
                            span.who { (caller.user.name) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The hidden field carrying the session's anti-forgery value (nothing for a token caller,
/// which never sees a page).
pub fn csrf_field(caller: &Caller) -> Markup {
    match &caller.via {
        Via::Browser { csrf, .. } => html! { input type="hidden" name="csrf" value=(csrf); },
        Via::Token { .. } => html! {},
    }
}

/// A page saying what went wrong, with the status of `error`.
pub fn error_page(error: &ApiError, caller: Option<&Caller>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = html! {
        p.error { (error.message) }
        @if error.status == axum::http::StatusCode::UNAUTHORIZED {
            p { "To sign in, run " code { "ssh bastion web" } " and open the link it prints within a minute." }
        } @else {
            p { a href="/" { "Back to the console" } }
        }
    };
    let title = error.status.canonical_reason().unwrap_or("Error");
    (error.status, page(title, caller, body)).into_response()
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn when(t: i64) -> String {
    crate::server::verbs::grants::when(t)
}

/// A span of seconds as people write it (`1h30m`).
pub fn span(secs: i64) -> String {
    crate::duration::format(std::time::Duration::from_secs(secs.max(0) as u64))
}
