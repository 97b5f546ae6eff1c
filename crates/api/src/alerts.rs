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
use vigil_ledger::tx::{AlertId, EscalationPolicy, OrderKind, TxBody, TxId};
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
        .route("/api/actions", get(list_actions))
        .route(
            "/api/escalation-policy",
            get(escalation_policy).put(set_escalation_policy),
        )
}

/// `GET /api/escalation-policy`: the district's policy in force, or `null`.
async fn escalation_policy(
    State(node): State<Shared>,
    caller: Caller,
) -> ApiResult<Json<JsonValue>> {
    caller.require(&node, ALERT_READERS)?;
    let policy = node.ledger().snapshot().view().escalation_policy();
    Ok(Json(json!({"policy": policy})))
}

/// `PUT /api/escalation-policy`: replaces the district's policy through the ledger, which
/// checks its bounds again (400 here with the same reason).
async fn set_escalation_policy(
    State(node): State<Shared>,
    caller: Caller,
    Json(policy): Json<EscalationPolicy>,
) -> ApiResult<(StatusCode, Json<JsonValue>)> {
    caller.require(&node, crate::shared::OPERATORS)?;
    policy
        .validate()
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    let tx = caller
        .signer()?
        .submit_checked(node.ledger(), TxBody::SetEscalationPolicy { policy })?;
    Ok((StatusCode::ACCEPTED, Json(json!({"tx": hex::encode(tx.0)}))))
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
        "raised_ms": record.raised_ms,
        "escalations": record.escalations,
        "status": record.status.name(),
        "orders": record.orders.iter().map(|o| json!({"kind": o.kind.name(), "height": o.height})).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize)]
struct AlertsQuery {
    status: Option<String>,
    /// Whether staff get each alert's reason (default true): a reason is health data, and
    /// its read is logged on the ledger; a poll that needs only statuses skips it.
    reasons: Option<bool>,
}

async fn list_alerts(
    State(node): State<Shared>,
    caller: Caller,
    Query(q): Query<AlertsQuery>,
) -> ApiResult<Json<JsonValue>> {
    let snapshot = node.ledger().snapshot();
    let listed: Vec<(AlertId, AlertRecord)> = match &caller.0 {
        // A patient sees their own alerts only, read by the node on their behalf.
        Principal::Patient { person, .. } => snapshot
            .alerts_of(person)
            .map(|(id, a)| (*id, a.clone()))
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
                    out.extend(list);
                }
            }
            out
        }
    };
    let mut reasons = if q.reasons == Some(false) {
        Default::default()
    } else {
        listed_reasons(&node, &caller, &listed).await
    };
    let alerts: Vec<JsonValue> = listed
        .iter()
        .map(|(id, record)| {
            let mut alert = alert_json(id, record, alert_basis(&snapshot, record));
            if let Some(reason) = reasons.remove(&id.0) {
                alert["reason"] = reason;
            }
            alert
        })
        .collect();
    Ok(Json(json!({"alerts": alerts})))
}

/// The reasons of the listed alerts (staff only), from the health record, logged as one access
/// on the ledger for the whole listing. Without them (the ledger refused the access record,
/// say) the listing still answers, without reasons.
async fn listed_reasons(
    node: &Shared,
    caller: &Caller,
    listed: &[(AlertId, AlertRecord)],
) -> std::collections::HashMap<[u8; 32], JsonValue> {
    let Principal::Staff { signer, .. } = &caller.0 else {
        return Default::default();
    };
    if listed.is_empty() {
        return Default::default();
    }
    let listed: Vec<([u8; 32], PersonId)> = listed
        .iter()
        .take(vigil_ehr::REASONS_PER_LISTING_MAX)
        .map(|(id, record)| (id.0, record.person))
        .collect();
    let signer = signer.clone();
    let accessor = caller.0.name().to_owned();
    let read = node
        .ehr_read(move |node, ehr| {
            let mut log = crate::people::LedgerAccessLog {
                node,
                signer: &signer,
            };
            ehr.read_alert_reasons(&accessor, &listed, vigil_node::now_ms(), &mut log)
        })
        .await;
    match read {
        Ok(Ok(found)) => found,
        Ok(Err(error)) => {
            tracing::warn!(%error, "alert reasons not released");
            Default::default()
        }
        Err(_) => {
            tracing::warn!("alert reasons not read: the health record is closed");
            Default::default()
        }
    }
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
            LiveEvent::AlertReminder { .. } => "alert-reminder",
            LiveEvent::AlertEscalated { .. } => "alert-escalated",
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

/// Submits an operator's action on an alert, refused at once (409) where the finalized state
/// and the caller's pending actions rule it out, and followed until the ledger settles it:
/// the caller sees it pending, finalized or failed (with the reason) in `GET /api/actions`.
fn submit_action(
    node: &Shared,
    caller: &Caller,
    action: &'static str,
    alert: AlertId,
    body: TxBody,
) -> ApiResult<(StatusCode, Json<JsonValue>)> {
    let tx = caller
        .signer()?
        .submit_after_pending_tx(node.ledger(), body)
        .map_err(ruled_out)?;
    let id = hex::encode(tx.id().0);
    node.track_action(caller.0.name(), action, Some(hex::encode(alert.0)), tx);
    Ok((StatusCode::ACCEPTED, Json(json!({"tx": id}))))
}

/// `GET /api/actions`: the caller's recent actions on alerts, newest first: pending until the
/// ledger settles them, then finalized (at a height) or failed (with the ledger's reason).
async fn list_actions(State(node): State<Shared>, caller: Caller) -> ApiResult<Json<JsonValue>> {
    caller.require(&node, crate::shared::OPERATORS)?;
    Ok(Json(json!({"actions": node.actions_of(caller.0.name())})))
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
    submit_action(
        &node,
        &caller,
        "acknowledge",
        alert,
        TxBody::Acknowledge { alert },
    )
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
    let body = TxBody::Order {
        alert,
        kind,
        note: note_digest(body.note),
    };
    submit_action(&node, &caller, "order", alert, body)
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
    let body = TxBody::Resolve {
        alert,
        note: note_digest(note),
    };
    submit_action(&node, &caller, "resolve", alert, body)
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
