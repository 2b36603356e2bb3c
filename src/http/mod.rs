//! The HTTP side: the web console for approvers, reviewers and users, the JSON API for
//! automation, and the operations endpoints.
//!
//! It is another door to the same bastion, not another brain: every change goes through the
//! grant desk and every view through the same store queries the SSH verbs and the operator
//! commands use, with the rights of the person signed in. Nothing here holds policy of its own.

pub mod api;
pub mod assets;
pub mod auth;
pub mod caller;
pub mod error;
pub mod headers;
pub mod listener;
pub mod login;
pub mod ops;
pub mod pages;
pub mod tls;

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};
use tokio::task::JoinHandle;
use tracing::info;

use crate::bastion::Bastion;

/// Largest request body accepted (forms and JSON are small; nothing is uploaded).
pub const MAX_BODY: usize = 64 * 1024;

/// Recordings whose screen index is kept in memory at once (each index is bounded; see
/// [`crate::recording::screen`]).
const SCREEN_CACHE: usize = 16;

/// What every handler shares.
#[derive(Clone)]
pub struct Web {
    /// The bastion this console belongs to.
    pub bastion: Arc<Bastion>,
    /// The screen indexes of recently watched recordings.
    pub screens: Arc<crate::recording::screen::Screens>,
}

impl Web {
    /// The shared state of a console for `bastion`.
    pub fn new(bastion: Arc<Bastion>) -> Web {
        Web {
            bastion,
            screens: Arc::new(crate::recording::screen::Screens::new(SCREEN_CACHE)),
        }
    }
}

/// The routes, with the security headers and the body limit on every one.
pub fn router(web: Web) -> Router {
    let tls = headers::OverTls(web.bastion.config.http.tls.is_some());
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/", get(login::home))
        .route("/login", get(login::show).post(login::sign_in))
        .route("/logout", post(login::sign_out))
        .route("/requests", get(pages::grants::requests))
        .route("/requests/{id}/approve", post(pages::grants::approve))
        .route("/requests/{id}/deny", post(pages::grants::deny))
        .route("/grants", get(pages::grants::grants))
        .route("/grants/{id}/revoke", post(pages::grants::revoke))
        .route("/sessions", get(pages::sessions::list))
        .route("/sessions/{id}", get(pages::sessions::show))
        .route("/review", get(pages::review::queue_page))
        .route("/review/{id}/ack", post(pages::review::ack))
        .route("/audit", get(pages::review::audit_page))
        .route("/assets/{name}", get(assets::serve))
        .merge(api::routes())
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(tls, headers::secure))
        .with_state(web)
}

/// Starts the HTTP listener when `[http] listen` is set: binds it (an error if the address is
/// taken), loads or generates the certificate, and serves on a task of its own.
pub async fn start(bastion: Arc<Bastion>) -> anyhow::Result<Option<JoinHandle<()>>> {
    let config = &bastion.config.http;
    let Some(listen) = config.listen else {
        return Ok(None);
    };
    let tls = match &config.tls {
        Some(files) => {
            let (certificate, origin) = tls::load_or_create(files)?;
            let fingerprint = certificate.fingerprint();
            if origin == crate::keys::Origin::Created {
                info!(path = %files.cert.display(), "created a self-signed certificate for the web console");
            }
            info!(sha256 = %fingerprint, "the web console's certificate");
            Some(certificate.server_config()?)
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("http: listening on {listen}"))?;
    info!(listen = %listener.local_addr()?, url = %config.public_url, "the web console is ready");
    let router = router(Web::new(bastion));
    Ok(Some(tokio::spawn(listener::serve(listener, tls, router))))
}

/// Anything else: a JSON 404 under `/api`, a page elsewhere.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let e = error::ApiError::not_found(format!("there is nothing at {}", uri.path()));
    if uri.path().starts_with("/api/") {
        e.into_response()
    } else {
        pages::layout::error_page(&e, None)
    }
}
