//! Alerts: the listing by status (a patient gets their own), the live stream of finalized
//! alerts and status changes (SSE), and the staff's acknowledge / order / resolve.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::BroadcastStream;
use vigil_core::PersonId;
use vigil_ledger::node::SubmitError;
use vigil_ledger::read::{Answer, Query as LedgerQuery};
use vigil_ledger::state::Rejection;
use vigil_ledger::state::{AlertRecord, AlertStatus};
use vigil_ledger::tx::{AlertId, OrderKind, TxBody, TxId};
use vigil_node::LiveEvent;
use vigil_node::users::Principal;

use crate::shared::{ALERT_READERS, ApiError, ApiResult, Caller, Shared, ledger_read};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/alerts", get(list_alerts))
        .route("/api/alerts/stream", get(alert_stream))
        .route("/api/alerts/{alert}/acknowledge", post(acknowledge))
        .route("/api/alerts/{alert}/order", post(order))
        .route("/api/alerts/{alert}/resolve", post(resolve))
}

/// What an alert rests on (`vigil_ledger::evidence::alert_basis`): every validator re-derived
/// it from its device's signed readings, or (no-signal) it is the gateway's attestation.
fn alert_basis(state: &vigil_ledger::state::State, record: &AlertRecord) -> &'static str {
    vigil_ledger::evidence::alert_basis(state.instance(&record.instance))
}

fn alert_json(id: &AlertId, record: &AlertRecord, basis: &str) -> JsonValue {
    json!({
        "id": hex::encode(id.0),
        "instance": record.instance.to_string(),
        "person": record.person,
        "level": record.level.code(),
        "basis": basis,
        "reading_time_ms": record.reading_time_ms,
        "raised_height": record.raised_height,
        "status": record.status.name(),
        "orders": record.orders.iter().map(|o| json!({"kind": o.kind.name(), "height": o.height})).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize)]
struct AlertsQuery {
    status: Option<String>,
}

async fn list_alerts(
    State(node): State<Shared>,
    caller: Caller,
    Query(q): Query<AlertsQuery>,
) -> ApiResult<Json<JsonValue>> {
    let snapshot = node.ledger().snapshot();
    let json_of = |id: &AlertId, a: &AlertRecord| alert_json(id, a, alert_basis(&snapshot, a));
    let alerts: Vec<JsonValue> = match &caller.0 {
        // A patient sees their own alerts only, read by the node on their behalf.
        Principal::Patient { person, .. } => snapshot
            .alerts_of(person)
            .map(|(id, a)| json_of(id, a))
            .collect(),
        Principal::Staff { .. } => {
            caller.require(&node, ALERT_READERS)?;
            let statuses = match q.status.as_deref() {
                None => vec![AlertStatus::Open, AlertStatus::Acknowledged],
                Some(text) => vec![
                    text.parse::<AlertStatus>()
                        .map_err(|_| ApiError::bad_request(format!("unknown status {text:?}")))?,
                ],
            };
            let mut out = Vec::new();
            for status in statuses {
                if let Answer::Alerts(list) =
                    ledger_read(&node, &caller, LedgerQuery::AlertsByStatus(status))?
                {
                    out.extend(list.iter().map(|(id, a)| json_of(id, a)));
                }
            }
            out
        }
    };
    Ok(Json(json!({"alerts": alerts})))
}

/// `GET /api/alerts/stream`: finalized alerts and status changes as server-sent events.
/// Staff see everyone's (with the evaluating node's reason); a patient sees only their own,
/// without reasons.
async fn alert_stream(
    State(node): State<Shared>,
    caller: Caller,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>> {
    let only: Option<PersonId> = match &caller.0 {
        Principal::Patient { person, .. } => Some(*person),
        Principal::Staff { .. } => {
            caller.require(&node, ALERT_READERS)?;
            None
        }
    };
    let stream = BroadcastStream::new(node.subscribe()).filter_map(move |event| {
        let mut event = event.ok()?;
        if let Some(person) = only {
            if event.person() != Some(person) {
                return None;
            }
            if let LiveEvent::Alert { reason, .. } = &mut event {
                *reason = None;
            }
        }
        let name = match &event {
            LiveEvent::Alert { .. } => "alert",
            LiveEvent::AlertStatus { .. } => "alert-status",
            LiveEvent::Block { .. } => "block",
        };
        Some(Ok(Event::default()
            .event(name)
            .data(serde_json::to_string(&event).unwrap_or_default())))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn parse_alert(text: &str) -> ApiResult<AlertId> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes)
        .map_err(|_| ApiError::bad_request("an alert id is 64 hex digits"))?;
    Ok(TxId(bytes))
}

/// An action the ledger will refuse, given its finalized state and the caller's actions still
/// pending, is answered 409 at once with the ledger's reason: a second acknowledgement of an
/// alert whose first is not final yet would otherwise be answered 202 and then dropped.
fn ruled_out(error: SubmitError) -> ApiError {
    match error {
        SubmitError::Rejected(
            rejection @ (Rejection::AlertNotOpen
            | Rejection::AlertResolved
            | Rejection::UnknownAlert
            | Rejection::TooManyOrders),
        ) => ApiError::new(
            StatusCode::CONFLICT,
            "rejected",
            format!("{rejection} (given the finalized alert and your actions still pending)"),
        ),
        other => other.into(),
    }
}

fn note_digest(note: Option<String>) -> Option<[u8; 32]> {
    // Free text never goes on the ledger: only its digest, the text itself stays off-chain.
    note.filter(|n| !n.is_empty())
        .map(|n| vigil_core::digest("vigil/node/note/v1", &[n.as_bytes()]))
}

async fn acknowledge(
    State(node): State<Shared>,
    caller: Caller,
    Path(alert): Path<String>,
) -> ApiResult<(StatusCode, Json<JsonValue>)> {
    let alert = parse_alert(&alert)?;
    let tx = caller
        .signer()?
        .submit_after_pending(node.ledger(), TxBody::Acknowledge { alert })
        .map_err(ruled_out)?;
    Ok((StatusCode::ACCEPTED, Json(json!({"tx": hex::encode(tx.0)}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderBody {
    kind: String,
    #[serde(default)]
    note: Option<String>,
}

async fn order(
    State(node): State<Shared>,
    caller: Caller,
    Path(alert): Path<String>,
    Json(body): Json<OrderBody>,
) -> ApiResult<(StatusCode, Json<JsonValue>)> {
    let alert = parse_alert(&alert)?;
    let kind: OrderKind = body.kind.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "unknown order {:?}: hospital-transfer, return-to-quarantine-area or call",
            body.kind
        ))
    })?;
    let tx = caller
        .signer()?
        .submit_after_pending(
            node.ledger(),
            TxBody::Order {
                alert,
                kind,
                note: note_digest(body.note),
            },
        )
        .map_err(ruled_out)?;
    Ok((StatusCode::ACCEPTED, Json(json!({"tx": hex::encode(tx.0)}))))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    #[serde(default)]
    note: Option<String>,
}

async fn resolve(
    State(node): State<Shared>,
    caller: Caller,
    Path(alert): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<JsonValue>)> {
    let alert = parse_alert(&alert)?;
    // The body is optional: empty, or `{"note": "..."}`.
    let note = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<ResolveBody>(&body)
            .map_err(|e| ApiError::bad_request(format!("body: {e}")))?
            .note
    };
    let tx = caller
        .signer()?
        .submit_after_pending(
            node.ledger(),
            TxBody::Resolve {
                alert,
                note: note_digest(note),
            },
        )
        .map_err(ruled_out)?;
    Ok((StatusCode::ACCEPTED, Json(json!({"tx": hex::encode(tx.0)}))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names the API shows are the names it reads back, and no two variants share one.
    #[test]
    fn statuses_and_orders_parse_back_from_their_names() {
        for status in AlertStatus::ALL {
            assert_eq!(status.name().parse::<AlertStatus>(), Ok(status));
        }
        for kind in OrderKind::ALL {
            assert_eq!(kind.name().parse::<OrderKind>(), Ok(kind));
        }
        assert!("closed".parse::<AlertStatus>().is_err());
        assert!("Call".parse::<OrderKind>().is_err());
    }
}
