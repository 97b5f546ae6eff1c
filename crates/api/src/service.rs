//! The node as a service: liveness, this API's OpenAPI document, Prometheus metrics, and the
//! operators' dashboard (`web/`, embedded so that the binary is self-contained).

use axum::extract::{Path, State};
use axum::http::header;
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
        .route("/", get(|| web_asset(Path("index.html".to_owned()))))
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
];

/// `GET /` and `GET /web/{file}`: one of the embedded dashboard files, or 404.
async fn web_asset(Path(path): Path<String>) -> Response {
    match WEB_FILES.iter().find(|(name, _, _)| *name == path) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                ),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => ApiError::not_found(format!("no dashboard file {path:?}")).into_response(),
    }
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
