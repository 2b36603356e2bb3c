//! The console's own stylesheet and script, compiled into the binary so a fresh install serves
//! a working console with nothing fetched from anywhere else.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The stylesheet.
const APP_CSS: &str = include_str!("../../assets/app.css");

/// The script: the player and the hash check.
const APP_JS: &str = include_str!("../../assets/app.js");

/// `GET /assets/{name}`.
pub async fn serve(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        _ => return ApiError::not_found("no such asset").into_response(),
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}
