//! Notifications beyond the dashboard, read-only: the configured channels (names, kinds,
//! levels; never an address or a secret) and the delivery log, newest attempt first. Admins
//! only: the log says who was told about whom, and when.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};
use vigil_notify::Status;
use vigil_notify::log::{Filter, PAGE_MAX};

use crate::shared::{ApiError, ApiResult, Caller, NOTIFICATION_READERS, Shared};

/// Attempts one answer carries unless `limit` says otherwise.
const PAGE_DEFAULT: u32 = 50;

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/api/notifications/deliveries", get(deliveries))
}

#[derive(Deserialize)]
struct DeliveriesQuery {
    channel: Option<String>,
    event: Option<String>,
    status: Option<String>,
    before: Option<u64>,
    limit: Option<u64>,
}

/// `GET /api/notifications/deliveries`: the channels and the attempts matching the query.
async fn deliveries(
    State(node): State<Shared>,
    caller: Caller,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<Json<JsonValue>> {
    caller.require(&node, NOTIFICATION_READERS)?;
    let status = q
        .status
        .as_deref()
        .map(|name| {
            Status::from_name(name).ok_or_else(|| {
                let names: Vec<_> = Status::ALL.iter().map(|s| s.name()).collect();
                ApiError::bad_request(format!("status: one of {}", names.join(", ")))
            })
        })
        .transpose()?;
    let Some(notifier) = node.notifications().cloned() else {
        return Ok(Json(json!({
            "configured": false, "channels": [], "deliveries": [], "next_before": null,
        })));
    };
    let limit = q.limit.map_or(PAGE_DEFAULT, |l| {
        u32::try_from(l.min(u64::from(PAGE_MAX))).unwrap_or(PAGE_MAX)
    });
    let filter = Filter {
        channel: q.channel,
        event_id: q.event,
        status,
        before: q.before,
        limit,
    };
    let log = notifier.log().clone();
    // SQLite blocks: off the async workers.
    let rows = tokio::task::spawn_blocking(move || log.read(&filter))
        .await
        .map_err(|_| ApiError::internal("delivery log task failed"))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    // A full page may have more behind it: the last one's `seq` asks for the next.
    let next_before = (rows.len() == limit as usize && limit > 0)
        .then(|| rows.last().map(|d| d.seq))
        .flatten();
    Ok(Json(json!({
        "configured": true,
        "channels": notifier.channels(),
        "deliveries": rows,
        "next_before": next_before,
    })))
}
