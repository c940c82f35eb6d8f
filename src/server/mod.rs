//! `faultline serve`: the store over HTTP, so a team shares one store and existing
//! Reliably clients (the guide's `requests.put`, `chaostoolkit-reliably`'s
//! `slo_is_met`) work against it unchanged.
//!
//! [`router`] builds the whole service in one function, so tests drive it with
//! `tower::ServiceExt::oneshot` and no socket; [`serve`] puts it on a listener (plain
//! or TLS) with a graceful shutdown that closes the store last. Routes:
//! - the Reliably-compatible entities ([`reliably`]), with and without `/api`;
//! - the native JSON API of `docs/store.md` ([`native`]), which
//!   [`crate::store::remote`] speaks;
//! - the kill switch, `/v1/kill` ([`kill`]): engaged, it stops every run attached to
//!   this server (and to every other server over the same store) and refuses new ones;
//! - `/healthz` (liveness: the process answers; never the store, so a database
//!   outage does not get every replica restarted), `/readyz` (readiness: the store
//!   answers a trivial read within [`READY_LIMIT`], else 503) and `/metrics`
//!   ([`metrics`]).
//!
//! Bad input is refused before the store is touched: every body and query is parsed
//! and checked by [`crate::slo`] first, every problem named by its field.

pub mod auth;
pub mod error;
pub mod input;
pub mod kill;
pub mod metrics;
pub mod native;
pub mod reliably;
pub mod runs;
pub mod tls;

pub use error::ApiError;

use crate::store::Store;
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::sync::Arc;

/// The largest body accepted (1 MiB): larger ones get 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// How long `/readyz` waits for the store.
pub const READY_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `/readyz`: 200 `ok` when the store answers a trivial read within [`READY_LIMIT`],
/// else 503 saying why (a load balancer then sends the requests elsewhere, and the
/// server keeps running: it reconnects by itself when the database is back).
async fn ready(
    axum::extract::State(state): axum::extract::State<ServerState>,
) -> Result<&'static str, ApiError> {
    match tokio::time::timeout(READY_LIMIT, state.store.ready()).await {
        Ok(Ok(())) => Ok("ok\n"),
        Ok(Err(e)) => Err(ApiError::Unavailable(format!(
            "the store is not ready: {e}"
        ))),
        Err(_) => Err(ApiError::Unavailable(format!(
            "the store is not ready: no answer within {}s",
            READY_LIMIT.as_secs()
        ))),
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct ServerState {
    /// The store served.
    pub store: Store,
    /// Who may call: bearer tokens checked against the store, or nobody checked.
    pub auth: auth::Auth,
    /// The server's own request metrics.
    pub metrics: Arc<metrics::ServerMetrics>,
    /// The kill switch (`/v1/kill`).
    pub kill: Arc<kill::KillState>,
}

impl ServerState {
    /// A state serving `store`, with tokens checked (`auth = true`) or not.
    pub fn new(store: Store, auth: bool) -> ServerState {
        ServerState {
            auth: if auth {
                auth::Auth::tokens()
            } else {
                auth::Auth::Off
            },
            metrics: Arc::new(metrics::ServerMetrics::new()),
            kill: Arc::new(kill::KillState::new(store.clone(), None)),
            store,
        }
    }

    /// The same state, with a local kill switch file too (`--kill-switch`): while it
    /// exists, this server's switch reads as engaged (the store's switch stays the
    /// one `POST /v1/kill` engages).
    pub fn with_kill_switch_file(self, location: crate::killswitch::Location) -> ServerState {
        ServerState {
            kill: Arc::new(kill::KillState::new(self.store.clone(), Some(location))),
            ..self
        }
    }
}

/// The whole service: every route, the request metrics around them, and a JSON 404
/// for everything else.
pub fn router(state: ServerState) -> Router {
    let mut r = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics::scrape));
    r = reliably::routes(r);
    r = native::routes(r);
    r = kill::routes(r);
    r = runs::routes(r);
    r.fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        // Bodies are read by `input::body` with its own limit and 413; axum's default
        // limit would answer first, in its own words.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Why serving stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate or key could not be used.
    #[error("{0}")]
    Tls(String),
    /// The listener failed.
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Where to listen and how.
#[derive(Debug, Clone)]
pub struct Listen {
    /// The address (port 0: any free port, reported through `on_ready`).
    pub addr: std::net::SocketAddr,
    /// HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// Serve `state` on `listen` until `shutdown` completes: then stop accepting, let the
/// requests in flight finish, and close the store (which commits every write it
/// acknowledged). `on_ready` gets the bound address once the socket listens.
pub async fn serve(
    state: ServerState,
    listen: Listen,
    on_ready: impl FnOnce(std::net::SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let tls = match &listen.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key).map_err(ServeError::Tls)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(listen.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen.addr,
            source,
        })?;
    let bound = listener.local_addr()?;
    let store = state.store.clone();
    let app = router(state);
    on_ready(bound);
    let served = match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(acceptor) => {
            axum::serve(tls::TlsListener::new(listener, acceptor), app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    // Every answered write is already committed; this commits what is queued and
    // stops the writer.
    store.close().await;
    served.map_err(ServeError::Io)
}

#[cfg(test)]
mod tests;
