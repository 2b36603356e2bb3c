//! Signing in with the SSH identity: `ssh bastion web` prints a one-time link; opening it shows
//! a button that spends the link and starts a browser session. The link is spent by the
//! button's POST, not by opening it, so a chat program that previews links cannot use it up.
//! Every sign-in, refusal and sign-out is an audit line.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::Web;
use super::auth::{CsrfProof, authenticate, cleared_cookie, same_origin, session_cookie};
use super::error::ApiError;
use super::pages::layout::page;
use super::pages::{PageError, Submitted};
use crate::credentials::{LinkOutcome, NewWebSession, Secret};
use crate::events::{Event, EventKind};
use crate::grants;

/// How a browser session started by a link is named.
pub const METHOD: &str = "ssh-link";

/// The link's query.
#[derive(Deserialize)]
pub struct LinkQuery {
    /// The link's secret.
    #[serde(default)]
    pub token: String,
}

/// `GET /login?token=…`: the page with the sign-in button (nothing is spent yet).
pub async fn show(Query(q): Query<LinkQuery>) -> Response {
    let body = if q.token.is_empty() {
        html! {
            p { "To sign in, run " code { "ssh bastion web" } " and open the link it prints within a minute." }
        }
    } else {
        html! {
            p { "This link signs you in as the SSH user who asked for it. It works once." }
            form method="post" action="/login" {
                input type="hidden" name="token" value=(q.token);
                button #sign-in type="submit" { "Sign in" }
            }
        }
    };
    page("Sign in", None, body).into_response()
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct SignInForm {
    /// The link's secret.
    #[serde(default)]
    pub token: String,
}

/// `POST /login`: spends the link and starts a session, or says why not.
pub async fn sign_in(
    State(web): State<Web>,
    headers: HeaderMap,
    form: axum::Form<SignInForm>,
) -> Response {
    let bastion = &web.bastion;
    if let Err(e) = same_origin(&headers, &bastion.config.http.public_url) {
        return PageError(e, None).into_response();
    }
    let now = grants::now();
    let outcome = if form.token.is_empty() || form.token.len() > 200 {
        Ok(LinkOutcome::Unknown)
    } else {
        bastion
            .store
            .consume_login_link(&Secret::hash(&form.token), now)
            .await
    };
    let refused = |why: &str, status: StatusCode, user: Option<String>| {
        bastion.events.emit(Event {
            user,
            reason: Some(why.to_owned()),
            detail: Some(serde_json::json!({ "method": METHOD })),
            ..Event::new(EventKind::WebSignInRefused)
        });
        PageError(ApiError::new(status, "unauthenticated", why), None).into_response()
    };
    let user = match outcome {
        Ok(LinkOutcome::SignedIn { user }) => user,
        Ok(LinkOutcome::AlreadyUsed) => {
            return refused(
                "this sign-in link was used already; each link works once",
                StatusCode::UNAUTHORIZED,
                None,
            );
        }
        Ok(LinkOutcome::Expired) => {
            return refused(
                "this sign-in link has expired; links work for 60 seconds",
                StatusCode::UNAUTHORIZED,
                None,
            );
        }
        Ok(LinkOutcome::Unknown) => {
            return refused(
                "this is not a valid sign-in link",
                StatusCode::UNAUTHORIZED,
                None,
            );
        }
        Err(e) => {
            return PageError(ApiError::store(e), None).into_response();
        }
    };
    if bastion.policy().user(&user).is_none() {
        return refused(
            "your account is no longer in the policy",
            StatusCode::FORBIDDEN,
            Some(user),
        );
    }
    let max = bastion.config.http.session_max;
    let (secret, session) = NewWebSession::generate(&user, METHOD, now, max);
    if let Err(e) = bastion.store.create_web_session(&session).await {
        return PageError(ApiError::store(e), None).into_response();
    }
    bastion.events.emit(Event {
        user: Some(user),
        detail: Some(serde_json::json!({ "method": METHOD })),
        ..Event::new(EventKind::WebSignedIn)
    });
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session_cookie(&secret, max)),
            (header::LOCATION, "/".to_owned()),
        ],
    )
        .into_response()
}

/// The sign-out form (only its anti-forgery value).
#[derive(Deserialize)]
pub struct SignOutForm {}

/// `POST /logout`: ends the session here and in the store.
pub async fn sign_out(
    State(web): State<Web>,
    Submitted(caller, _): Submitted<SignOutForm>,
) -> Response {
    if let super::caller::Via::Browser { session, .. } = &caller.via
        && let Err(e) = web
            .bastion
            .store
            .end_web_session(session, grants::now())
            .await
    {
        return PageError(ApiError::store(e), Some(caller)).into_response();
    }
    web.bastion.events.emit(Event {
        user: Some(caller.user.name.clone()),
        ..Event::new(EventKind::WebSignedOut)
    });
    let body = html! { p { "You are signed out." } };
    (
        [(header::SET_COOKIE, cleared_cookie())],
        page("Signed out", None, body),
    )
        .into_response()
}

/// `GET /`: the requests page for a signed-in person, the sign-in help otherwise.
pub async fn home(State(web): State<Web>, request: axum::extract::Request) -> Response {
    let (parts, _) = request.into_parts();
    match authenticate(&parts, &web, CsrfProof::NotNeeded).await {
        Ok(_) => axum::response::Redirect::to("/requests").into_response(),
        Err(e) => PageError(e, None).into_response(),
    }
}
