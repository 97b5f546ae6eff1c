//! Devices: enrolment of a device's public key for a person, and revocation. The ledger's
//! permission table decides who may.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};
use vigil_core::{DeviceId, PersonId};
use vigil_ledger::tx::TxBody;

use crate::shared::{ApiError, ApiResult, Caller, Shared};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/devices", post(enroll_device))
        .route("/api/devices/{device}", delete(revoke_device))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDevice {
    person: PersonId,
    device: DeviceId,
    /// Hex of the device's Ed25519 public key.
    public_key: String,
}

async fn enroll_device(
    State(node): State<Shared>,
    caller: Caller,
    Json(new): Json<NewDevice>,
) -> ApiResult<(StatusCode, Json<JsonValue>)> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(&new.public_key, &mut key)
        .map_err(|_| ApiError::bad_request("public_key: 64 hexadecimal digits (32 bytes)"))?;
    // Refused here with the reason, and again by the ledger's state machine, which calls the
    // same check: no weak (small-order) or non-canonically encoded key is ever enrolled.
    vigil_core::DevicePublicKey::for_enrollment(&key)
        .map_err(|e| ApiError::bad_request(format!("public_key: {e}")))?;
    let body = TxBody::EnrollDevice {
        person: new.person,
        device: new.device,
        public_key: key,
    };
    let tx = caller.signer()?.submit_checked(node.ledger(), body)?;
    Ok((StatusCode::ACCEPTED, Json(json!({"tx": hex::encode(tx.0)}))))
}

async fn revoke_device(
    State(node): State<Shared>,
    caller: Caller,
    Path(device): Path<String>,
) -> ApiResult<(StatusCode, Json<JsonValue>)> {
    let device: DeviceId = device
        .parse()
        .map_err(|e| ApiError::bad_request(format!("{e}")))?;
    let tx = caller
        .signer()?
        .submit_checked(node.ledger(), TxBody::RevokeDevice { device })?;
    Ok((StatusCode::ACCEPTED, Json(json!({"tx": hex::encode(tx.0)}))))
}
