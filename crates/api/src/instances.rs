//! Contract instances: a person's (read through the ledger's role-checked reads), deployment,
//! replacement and termination. The ledger's permission table decides who may write.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};
use vigil_core::{DeviceId, PersonId};
use vigil_ledger::read::{Answer, Query as LedgerQuery};
use vigil_ledger::tx::{Deployment, InstanceId, TxBody};
use vigil_node::users::Principal;

use crate::shared::{ApiError, ApiResult, Caller, Shared, ledger_read};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/instances", get(list_instances).post(deploy_instance))
        .route(
            "/api/instances/{instance}",
            put(replace_instance).delete(terminate_instance),
        )
}

#[derive(Deserialize)]
struct InstancesQuery {
    person: Option<PersonId>,
}

async fn list_instances(
    State(node): State<Shared>,
    caller: Caller,
    Query(q): Query<InstancesQuery>,
) -> ApiResult<Json<JsonValue>> {
    // A patient may see their own instances (their thresholds and zones), nobody else's; the
    // node reads them on the patient's behalf.
    if let (Principal::Patient { person: own, .. }, Some(person)) = (&caller.0, q.person)
        && *own != person
    {
        return Err(ApiError::forbidden(&[]));
    }
    let instances: Vec<JsonValue> = match q.person {
        Some(person) => {
            match ledger_read(&node, &caller, LedgerQuery::InstancesByPerson(person))? {
                Answer::Instances(list) => list
                    .into_iter()
                    .map(|(id, record)| {
                        let params: JsonValue = serde_json::from_slice(&record.deployment.params)
                            .unwrap_or(JsonValue::Null);
                        json!({
                            "instance": id.to_string(),
                            "person": record.deployment.person,
                            "device": record.deployment.device,
                            "kind": record.deployment.kind,
                            "params": params,
                            "active": record.active,
                            "deployed_height": record.deployed_height,
                            "replaced_by": record.replaced_by.map(|r| r.to_string()),
                        })
                    })
                    .collect(),
                _ => Vec::new(),
            }
        }
        None => return Err(ApiError::bad_request("give ?person=<pseudonym>")),
    };
    Ok(Json(json!({"instances": instances})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInstance {
    person: PersonId,
    device: DeviceId,
    /// The contract's parameters, as `vigil_contracts::Params` JSON.
    params: JsonValue,
}

fn ledger_deployment(new: NewInstance) -> ApiResult<Deployment> {
    let params: vigil_contracts::Params = serde_json::from_value(new.params)
        .map_err(|e| ApiError::bad_request(format!("params: {e}")))?;
    params
        .validate()
        .map_err(|e| ApiError::bad_request(format!("params: {e}")))?;
    Ok(Deployment::new(new.person, new.device, &params))
}

async fn deploy_instance(
    State(node): State<Shared>,
    caller: Caller,
    Json(new): Json<NewInstance>,
) -> ApiResult<(StatusCode, Json<JsonValue>)> {
    let deployment = ledger_deployment(new)?;
    let instance = deployment.instance_id();
    let tx = caller
        .signer()?
        .submit_checked(node.ledger(), TxBody::DeployInstance { deployment })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"tx": hex::encode(tx.0), "instance": instance.to_string()})),
    ))
}

fn parse_instance(text: &str) -> ApiResult<InstanceId> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes)
        .map_err(|_| ApiError::bad_request("an instance id is 64 hex digits"))?;
    Ok(InstanceId(bytes))
}

async fn replace_instance(
    State(node): State<Shared>,
    caller: Caller,
    Path(old): Path<String>,
    Json(new): Json<NewInstance>,
) -> ApiResult<(StatusCode, Json<JsonValue>)> {
    let old = parse_instance(&old)?;
    let deployment = ledger_deployment(new)?;
    let instance = deployment.instance_id();
    let tx = caller.signer()?.submit_checked(
        node.ledger(),
        TxBody::ReplaceInstance {
            old,
            new: deployment,
        },
    )?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"tx": hex::encode(tx.0), "instance": instance.to_string()})),
    ))
}

async fn terminate_instance(
    State(node): State<Shared>,
    caller: Caller,
    Path(instance): Path<String>,
) -> ApiResult<(StatusCode, Json<JsonValue>)> {
    let instance = parse_instance(&instance)?;
    let tx = caller
        .signer()?
        .submit_checked(node.ledger(), TxBody::TerminateInstance { instance })?;
    Ok((StatusCode::ACCEPTED, Json(json!({"tx": hex::encode(tx.0)}))))
}
