//! People: who the caller is (`/api/me`), the pseudonymous listing, registration (identity
//! into the encrypted record, pseudonym onto the ledger), and the health-record reads
//! (identity, readings), each released only once logged on the ledger. Every health-record
//! request runs on a blocking thread ([`crate::shared::Api::ehr_read`], [`crate::shared::Api::ehr_write`]).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};
use vigil_core::PersonId;
use vigil_ehr::{AccessEvent, AccessLog, Identity, ListingAccess};
use vigil_ledger::signer::Signer;
use vigil_ledger::state::AlertStatus;
use vigil_ledger::tx::{Role, TxBody};
use vigil_node::users::Principal;
use vigil_node::{Node, now_ms};

use crate::shared::{
    ApiError, ApiResult, Caller, OPERATORS, PEOPLE_READERS, RECORD_READERS, Shared, ehr_error,
};

/// People one listing returns at most.
const PEOPLE_LISTED_MAX: usize = 10_000;
/// Records one readings request returns when it names no `limit`.
const READINGS_LIMIT_DEFAULT: usize = 500;
/// The largest `limit` of one readings request; above it the request is refused (400). A
/// bound on what one request decrypts and encodes, so that one caller cannot hold the
/// record's read slot for long (issue 13: reads at `limit=10000` slowed every route).
pub(crate) const READINGS_LIMIT_MAX: usize = 1_000;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/me", get(me))
        .route("/api/people", get(list_people).post(register_person))
        .route("/api/people/{person}/identity", get(read_identity))
        .route("/api/people/{person}/readings", get(read_readings))
}

async fn me(State(node): State<Shared>, caller: Caller) -> Json<JsonValue> {
    match &caller.0 {
        Principal::Staff { name, signer } => {
            let snapshot = node.ledger().snapshot();
            let roles: Vec<&str> = Role::ALL
                .into_iter()
                .filter(|r| snapshot.view().has_role(signer.public(), *r))
                .map(Role::name)
                .collect();
            Json(
                json!({"name": name, "kind": "staff", "roles": roles, "identity": signer.public().to_string()}),
            )
        }
        Principal::Patient { name, person } => {
            Json(json!({"name": name, "kind": "patient", "person": person}))
        }
    }
}

async fn list_people(State(node): State<Shared>, caller: Caller) -> ApiResult<Json<JsonValue>> {
    caller.require(&node, PEOPLE_READERS)?;
    let state = node.ledger().snapshot();
    let people: Vec<JsonValue> = state
        .persons()
        .take(PEOPLE_LISTED_MAX)
        .map(|(person, _)| {
            let devices: Vec<JsonValue> = state
                .devices_of(person)
                .map(|(id, d)| json!({"device": id, "active": d.active}))
                .collect();
            let open_alerts = state
                .alerts_of(person)
                .filter(|(_, a)| a.status != AlertStatus::Resolved)
                .map(|(_, a)| a.level.code())
                .max();
            json!({"person": person, "devices": devices, "open_alert_level": open_alerts})
        })
        .collect();
    Ok(Json(json!({"people": people})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPerson {
    name: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    phone: String,
}

async fn register_person(
    State(node): State<Shared>,
    caller: Caller,
    Json(new): Json<NewPerson>,
) -> ApiResult<(StatusCode, Json<JsonValue>)> {
    // Every check before the first write. `OPERATORS` is the ledger's own permission table for
    // the transaction that follows: a route-level set that admitted more (it once admitted
    // admins) let the identity be written and the transaction then refused.
    caller.require(&node, OPERATORS)?;
    let signer = caller.signer()?.clone();
    if new.name.trim().is_empty()
        || new.name.len() > 200
        || new.address.len() > 500
        || new.phone.len() > 50
    {
        return Err(ApiError::bad_request(
            "name is required; name, address and phone must be short",
        ));
    }
    let person = PersonId::random();
    let identity = Identity {
        name: new.name,
        address: new.address,
        phone: new.phone,
    };
    node.ehr_write(move |ehr| ehr.register_person(person, &identity))
        .await?
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ehr", e.to_string()))?;
    let submitted = signer.submit_checked(node.ledger(), TxBody::RegisterPerson { person });
    let tx = match submitted {
        Ok(tx) => tx,
        Err(error) => {
            // The ledger refused (or never got) the registration: take the identity back out,
            // so that a refused request leaves nothing behind.
            let undone = node
                .ehr_write(move |ehr| ehr.unregister_person(person))
                .await;
            if !matches!(undone, Ok(Ok(()))) {
                tracing::warn!(%person, "a refused registration left its identity behind");
            }
            return Err(error.into());
        }
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"person": person, "tx": hex::encode(tx.0)})),
    ))
}

/// Logs EHR reads on the ledger, signed by the reader (or by the node for a patient reading
/// their own data).
pub(crate) struct LedgerAccessLog<'a> {
    pub(crate) node: &'a Node,
    pub(crate) signer: &'a Signer,
}

impl AccessLog for LedgerAccessLog<'_> {
    fn record(&mut self, event: &AccessEvent) -> Result<(), String> {
        let digest = vigil_core::digest(
            "vigil/node/ehr-access/v1",
            &[
                event.accessor.as_bytes(),
                event.person.as_bytes(),
                &event.time_ms.to_be_bytes(),
            ],
        );
        self.signer
            .submit(
                self.node.ledger(),
                TxBody::EhrAccess {
                    person: event.person,
                    record: digest,
                },
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn record_listing(&mut self, listing: &ListingAccess) -> Result<(), String> {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(listing.alerts.len() + 2);
        let time = listing.time_ms.to_be_bytes();
        parts.push(listing.accessor.as_bytes());
        parts.push(&time);
        parts.extend(listing.alerts.iter().map(|alert| alert.as_slice()));
        let digest = vigil_core::digest("vigil/node/reasons-access/v1", &parts);
        self.signer
            .submit(
                self.node.ledger(),
                TxBody::ReasonsAccess {
                    alerts: u32::try_from(listing.alerts.len()).unwrap_or(u32::MAX),
                    record: digest,
                },
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn parse_person(text: &str) -> ApiResult<PersonId> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("{text:?} is not a pseudonym")))
}

async fn read_identity(
    State(node): State<Shared>,
    caller: Caller,
    Path(person): Path<String>,
) -> ApiResult<Json<Identity>> {
    let person = parse_person(&person)?;
    caller.require(&node, RECORD_READERS)?;
    node.charge_ehr_request(&caller)?;
    let signer = caller.signer()?.clone();
    let accessor = caller.0.name().to_owned();
    let identity = node
        .ehr_read(move |node, ehr| {
            let mut log = LedgerAccessLog {
                node,
                signer: &signer,
            };
            ehr.read_identity(&accessor, person, now_ms(), &mut log)
        })
        .await?
        .map_err(ehr_error)?;
    Ok(Json(identity))
}

#[derive(Deserialize)]
struct ReadingsQuery {
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    limit: Option<usize>,
}

/// `GET /api/people/{person}/readings`: up to `limit` Observations. Reading, decrypting and
/// encoding them (megabytes at the largest limit) all happen on a blocking thread.
async fn read_readings(
    State(node): State<Shared>,
    caller: Caller,
    Path(person): Path<String>,
    Query(q): Query<ReadingsQuery>,
) -> ApiResult<Response> {
    let person = parse_person(&person)?;
    caller.require_or_self(&node, RECORD_READERS, person)?;
    node.charge_ehr_request(&caller)?;
    // A patient reading their own data is logged by the node.
    let staff: Option<Arc<Signer>> = match &caller.0 {
        Principal::Staff { signer, .. } => Some(signer.clone()),
        Principal::Patient { .. } => None,
    };
    let accessor = caller.0.name().to_owned();
    let range = (q.from_ms.unwrap_or(0), q.to_ms.unwrap_or(i64::MAX));
    let limit = q.limit.unwrap_or(READINGS_LIMIT_DEFAULT);
    if limit > READINGS_LIMIT_MAX {
        return Err(ApiError::bad_request(format!(
            "limit {limit} is over the maximum of {READINGS_LIMIT_MAX}; page with from_ms"
        )));
    }
    let body = node
        .ehr_read(move |node, ehr| {
            let mut log = LedgerAccessLog {
                node,
                signer: staff.as_deref().unwrap_or(node.gateway_identity()),
            };
            let observations =
                ehr.read_observations(&accessor, person, range, limit, now_ms(), &mut log)?;
            Ok(serde_json::to_vec(
                &json!({"person": person, "observations": observations}),
            ))
        })
        .await?
        .map_err(ehr_error)?
        .map_err(|e| ApiError::internal(format!("encoding the readings: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
