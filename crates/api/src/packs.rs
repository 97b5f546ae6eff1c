//! `POST /api/packs/{person}`: ingestion over HTTP, for devices that cannot speak MQTT. The
//! node's ingestion path answers; this only maps its reply to a status.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use vigil_core::PersonId;

use crate::shared::{ApiError, Shared};

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/api/packs/{person}", post(ingest_pack))
}

/// `POST /api/packs/{person}`: a device's signed SenML pack (JSON or CBOR). Authenticated by
/// the pack's own signature, not by a token.
async fn ingest_pack(
    State(node): State<Shared>,
    Path(person): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(person) = person.parse::<PersonId>() else {
        return ApiError::bad_request("the path names no valid pseudonym").into_response();
    };
    let reply = tokio::task::spawn_blocking(move || node.ingest(Some(person), &body, "http")).await;
    match reply {
        Ok(reply) => {
            let status = match &reply.error {
                None => StatusCode::OK,
                Some(error) => StatusCode::from_u16(error.reason.http_status())
                    .unwrap_or(StatusCode::BAD_REQUEST),
            };
            (status, Json(reply)).into_response()
        }
        Err(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "ingestion failed",
        )
        .into_response(),
    }
}
