//! The JSON API under `/api/v1`: everything the pages do, for automation, with API tokens
//! (`Authorization: Bearer …`) or a browser session (with `X-CSRF-Token` on changes). The
//! OpenAPI document at `/api/openapi.json` is generated from these handlers' declarations.

pub mod audit;
pub mod grants;
pub mod player;
pub mod reviews;
pub mod sessions;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use utoipa::OpenApi;

use super::Web;

/// The OpenAPI document of the API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Gatehouse API", description = "Requests, grants, sessions, recordings, reviews and the audit log of a Gatehouse SSH bastion."),
    paths(
        grants::list_requests, grants::approve, grants::deny, grants::list_grants, grants::revoke,
        sessions::list, sessions::show, sessions::verify, sessions::download,
        player::timeline, player::frame, player::live, player::hits,
        reviews::list, reviews::ack,
        audit::list,
    ),
    modifiers(&Security),
    tags((name = "grants"), (name = "sessions"), (name = "player"), (name = "reviews"), (name = "audit")),
)]
pub struct ApiDoc;

/// Declares the two ways to authenticate.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token from `gatehouse tokens create`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(super::auth::COOKIE))),
        );
        // Any call may meet a store or audit log that cannot answer: it is refused (fail
        // closed) with 503, whatever the operation.
        let unavailable = utoipa::openapi::ResponseBuilder::new()
            .description("The store or the audit log is unavailable; nothing was changed")
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                operation
                    .responses
                    .responses
                    .entry("503".into())
                    .or_insert_with(|| unavailable.clone().into());
            }
        }
    }
}

/// `GET /api/openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

/// The API's routes.
pub fn routes() -> Router<Web> {
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/v1/requests", get(grants::list_requests))
        .route("/api/v1/requests/{id}/approve", post(grants::approve))
        .route("/api/v1/requests/{id}/deny", post(grants::deny))
        .route("/api/v1/grants", get(grants::list_grants))
        .route("/api/v1/grants/{id}/revoke", post(grants::revoke))
        .route("/api/v1/sessions", get(sessions::list))
        .route("/api/v1/sessions/{id}", get(sessions::show))
        .route("/api/v1/sessions/{id}/verify", get(sessions::verify))
        .route("/api/v1/sessions/{id}/cast", get(sessions::download))
        .route("/api/v1/sessions/{id}/timeline", get(player::timeline))
        .route("/api/v1/sessions/{id}/frame", get(player::frame))
        .route("/api/v1/sessions/{id}/live", get(player::live))
        .route("/api/v1/sessions/{id}/hits", get(player::hits))
        .route("/api/v1/reviews", get(reviews::list))
        .route("/api/v1/reviews/{id}/ack", post(reviews::ack))
        .route("/api/v1/audit", get(audit::list))
}
