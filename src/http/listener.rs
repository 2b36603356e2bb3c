//! Accepts HTTP connections, over TLS or (on loopback only) in the clear, and serves each with
//! hyper on its own task, so a slow handshake or a slow client never holds up another.
//!
//! Every connection is bounded: a TLS handshake must finish within [`HANDSHAKE_LIMIT`], request
//! headers must arrive within [`HEADER_LIMIT`], and at most [`MAX_CONNECTIONS`] are served at
//! once (more wait in the kernel's backlog).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

/// Longest a TLS handshake may take.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// Longest a client may take to send a request's headers.
const HEADER_LIMIT: Duration = Duration::from_secs(10);

/// Connections served at once.
const MAX_CONNECTIONS: usize = 4096;

/// Serves `router` on `listener` until the task is dropped; `tls` is `None` only for plain
/// HTTP on loopback (the config refuses anything else).
pub async fn serve(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>, router: Router) {
    let acceptor = tls.map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                warn!(error = %e, "http: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = TowerToHyperService::new(router.into_service());
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_LIMIT)
                .max_buf_size(64 * 1024);
            builder.http2().max_concurrent_streams(64);
            let served = match acceptor {
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => builder.serve_connection(TokioIo::new(tls), service).await,
                        Ok(Err(e)) => {
                            debug!(%peer, error = %e, "http: TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            debug!(%peer, "http: TLS handshake timed out");
                            return;
                        }
                    }
                }
                None => {
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
            };
            if let Err(e) = served {
                debug!(%peer, error = %e, "http: connection ended with an error");
            }
        });
    }
}
