//! Vigil node's HTTP layer: the API (axum, OpenAPI at `/api/openapi.json`), the live alert
//! stream (SSE, `/api/alerts/stream`), Prometheus metrics (`/metrics`) and the operators'
//! dashboard, served over a running [`vigil_node::Node`]. The node's core never imports this
//! crate; the binary wires the two ([`start`], or [`serve`] over a started node).
//!
//! One module per resource (packs, people, devices, instances, alerts, ledger, map, queries,
//! notifications, and the service routes), each depending only on [`shared`] (state, errors, the caller,
//! the role sets), never on another resource. Health-record work (SQLite, decryption) runs
//! on blocking threads, reads on a second handle of the record behind a small gate ([`shared::Api::ehr_read`]), so that a patient's read
//! storm neither blocks the async executor nor holds the record's lock for long.

mod alerts;
mod devices;
mod instances;
mod ledger;
mod map;
mod notifications;
mod openapi;
mod packs;
mod people;
mod queries;
mod service;
pub mod shared;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use vigil_ledger::node::Ledger;
use vigil_node::{Node, NodeConfig, NodeError};

pub use shared::{Api, ApiError, ApiResult, Caller};

/// Request bodies larger than this are refused with 413 before they are read whole.
pub const REQUEST_BYTES_MAX: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("HTTP listener on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Every route of the API over `node`.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .merge(service::routes())
        .merge(packs::routes())
        .merge(people::routes())
        .merge(devices::routes())
        .merge(instances::routes())
        .merge(alerts::routes())
        .merge(ledger::routes())
        .merge(map::routes())
        .merge(queries::routes())
        .merge(notifications::routes())
        .layer(axum::extract::DefaultBodyLimit::max(REQUEST_BYTES_MAX))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(Arc::new(Api::new(node)))
}

/// Headers on every response: `nosniff`, so that no browser runs a JSON answer as a script or
/// a page; and on the API's (identities, readings, alerts) `no-store`, so that no browser or
/// proxy keeps a copy of health data.
async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Binds `listen` and serves the API over `node` in the background, on the caller's tokio
/// runtime. Returns the bound address once the listener is bound.
pub async fn serve(node: Arc<Node>, listen: SocketAddr) -> Result<SocketAddr, ServeError> {
    let listener = bind(listen).await?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: listen,
        source,
    })?;
    spawn_serve(listener, router(node), "HTTP");
    Ok(addr)
}

/// Binds `listen` and serves the API over `node` with HTTPS (`server`'s certificate) in the
/// background. Returns the bound address once the listener is bound.
pub async fn serve_tls(
    node: Arc<Node>,
    listen: SocketAddr,
    server: Arc<vigil_tls::rustls::ServerConfig>,
) -> Result<SocketAddr, ServeError> {
    let listener = tls::TlsListener::start(bind(listen).await?, vigil_tls::for_http(&server))
        .map_err(|source| ServeError::Listen {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr;
    spawn_serve(listener, router(node), "HTTPS");
    Ok(addr)
}

async fn bind(listen: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: listen,
            source,
        })
}

fn spawn_serve<L>(listener: L, app: Router, what: &'static str)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "{what} server stopped");
        }
    });
}

/// [`Node::start`], then [`serve`] on `listen`: the node with its API.
pub async fn start(
    ledger: Ledger,
    config: NodeConfig,
    listen: SocketAddr,
) -> Result<(Arc<Node>, SocketAddr), ServeError> {
    let node = Node::start(ledger, config)?;
    let addr = serve(node.clone(), listen).await?;
    Ok((node, addr))
}
