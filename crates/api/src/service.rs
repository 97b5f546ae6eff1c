//! The node as a service: liveness, this API's OpenAPI document, Prometheus metrics, and the
//! operators' dashboard (`web/`, embedded so that the binary is self-contained).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value as JsonValue, json};

use crate::shared::{ApiError, Shared};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/health", get(health))
        .route(
            "/api/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .route("/metrics", get(metrics))
        .route(
            "/",
            get(|state: State<Shared>| web_asset(state, Path("index.html".to_owned()))),
        )
        .route("/web/{*path}", get(web_asset))
}

/// The dashboard (`web/`), embedded so that the binary is self-contained: name, type, body.
const WEB_FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../../web/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../../web/style.css"),
    ),
    (
        "util.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/util.js"),
    ),
    (
        "map.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/map.js"),
    ),
    (
        "person.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/person.js"),
    ),
    (
        "query.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/query.js"),
    ),
    (
        "mapview.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/mapview.js"),
    ),
    // Leaflet 1.9.4, vendored from the npm registry (web/vendor/leaflet/README.md).
    (
        "vendor/leaflet/leaflet.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/vendor/leaflet/leaflet.js"),
    ),
    (
        "vendor/leaflet/leaflet.css",
        "text/css; charset=utf-8",
        include_str!("../../../web/vendor/leaflet/leaflet.css"),
    ),
    (
        "vendor/leaflet/LICENSE",
        "text/plain; charset=utf-8",
        include_str!("../../../web/vendor/leaflet/LICENSE"),
    ),
];

/// `GET /` and `GET /web/{file}`: one of the embedded dashboard files, or 404. Each carries
/// the dashboard's policy ([`crate::shared::dashboard_policy`]).
async fn web_asset(State(node): State<Shared>, Path(path): Path<String>) -> Response {
    let Some((_, content_type, body)) = WEB_FILES.iter().find(|(name, _, _)| *name == path) else {
        return ApiError::not_found(format!("no dashboard file {path:?}")).into_response();
    };
    let mut response = (*body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    match HeaderValue::from_str(node.dashboard_policy()) {
        Ok(policy) => {
            headers.insert(header::CONTENT_SECURITY_POLICY, policy);
        }
        // Not reachable with a checked tile origin; never serve the dashboard unprotected.
        Err(_) => {
            return ApiError::internal("the dashboard policy is not a header value")
                .into_response();
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn health(State(node): State<Shared>) -> Json<JsonValue> {
    let (height, _) = node.ledger().finalized();
    Json(json!({"status": "ok", "height": height}))
}

async fn metrics(State(node): State<Shared>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        node.metrics_text(),
    )
}
