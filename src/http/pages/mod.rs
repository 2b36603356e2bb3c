//! The web console's pages: server-rendered HTML (maud escapes every value), usable on a
//! phone, with one small script of this origin for the player and nothing inline.
//!
//! Pages read and change through the same functions as the JSON API, with the rights of the
//! person signed in. Every form carries the session's anti-forgery value and is checked by
//! [`Submitted`].

pub mod grants;
pub mod layout;
pub mod review;
pub mod sessions;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::Web;
use super::auth::{CsrfProof, authenticate};
use super::caller::Caller;
use super::error::ApiError;

/// A signed-in person viewing a page; without a session, a page telling them how to sign in.
pub struct Viewer(pub Caller);

/// A page's refusal, rendered as a page.
pub struct PageError(pub ApiError, pub Option<Caller>);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        layout::error_page(&self.0, self.1.as_ref())
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> PageError {
        PageError(e, None)
    }
}

impl FromRequestParts<Web> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Viewer, PageError> {
        // Pages are for browsers: a token is for the API.
        if parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            return Err(
                ApiError::bad_request("pages are for browsers; use /api/v1 with a token").into(),
            );
        }
        Ok(Viewer(
            authenticate(parts, web, CsrfProof::NotNeeded).await?,
        ))
    }
}

/// A submitted form: the person who sent it, checked against forgery with its `csrf` field,
/// and its other fields as `T`.
pub struct Submitted<T>(pub Caller, pub T);

impl<T: DeserializeOwned> FromRequest<Web> for Submitted<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, web: &Web) -> Result<Self, PageError> {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, super::MAX_BODY)
            .await
            .map_err(|_| ApiError::bad_request("the form is too large"))?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| ApiError::bad_request(format!("the form cannot be read: {e}")))?;
        let csrf = fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let caller = authenticate(&parts, web, CsrfProof::Form(csrf)).await?;
        let value = serde_urlencoded::from_bytes::<T>(&bytes).map_err(|e| {
            PageError(
                ApiError::bad_request(format!("the form is incomplete: {e}")),
                Some(caller.clone()),
            )
        })?;
        Ok(Submitted(caller, value))
    }
}

/// After a change, back to `to` (303, so a reload does not post again).
pub fn back_to(to: &str) -> Response {
    axum::response::Redirect::to(to).into_response()
}
