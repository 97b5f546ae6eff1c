//! The HTTP API (axum). Every route names the roles it admits; staff roles are read from the
//! ledger's finalized state on each request, so a revoked role takes effect at the next block.
//! Writes become ledger transactions signed by the caller's identity, and the ledger's
//! permission table has the last word (its refusals come back as 403 / 409 with the reason).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::BroadcastStream;
use vigil_core::{DeviceId, PersonId};
use vigil_ehr::{AccessEvent, AccessLog, Identity};
use vigil_ledger::node::SubmitError;
use vigil_ledger::read::{self, Answer, Query as LedgerQuery};
use vigil_ledger::state::{AlertRecord, AlertStatus, Rejection as LedgerRejection};
use vigil_ledger::tx::{AlertId, Deployment, InstanceId, OrderKind, Role, TxBody, TxId};

use crate::users::Principal;
use crate::{LiveEvent, Node, now_ms, status_name};

/// Request bodies larger than this are refused with 413 before they are read whole.
pub const REQUEST_BYTES_MAX: usize = 256 * 1024;
/// People one listing returns at most.
const PEOPLE_LISTED_MAX: usize = 10_000;
/// Records one readings request returns at most.
const READINGS_LIMIT_DEFAULT: usize = 500;

pub(crate) type Shared = Arc<Node>;

/// An API error: a status and a JSON body `{"error": code, "message": ...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a valid bearer token is required",
        )
    }
    pub(crate) fn forbidden(needed: &[Role]) -> Self {
        let names: Vec<_> = needed.iter().map(|r| r.name()).collect();
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs one of the roles: {}", names.join(", ")),
        )
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response()
    }
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> Self {
        match &error {
            SubmitError::Rejected(LedgerRejection::Unauthorized { .. }) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", error.to_string())
            }
            SubmitError::Rejected(_) => {
                Self::new(StatusCode::CONFLICT, "rejected", error.to_string())
            }
            _ => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_submitted",
                error.to_string(),
            ),
        }
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The authenticated caller: `Authorization: Bearer <token>`, or `?token=` for the event
/// stream (browsers' EventSource cannot set headers).
pub struct Caller(pub Principal);

impl FromRequestParts<Shared> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, node: &Shared) -> Result<Self, ApiError> {
        let header_token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let query_token = parts.uri.query().and_then(|q| {
            q.split('&')
                .find_map(|pair| pair.strip_prefix("token=").map(str::to_owned))
        });
        let token = header_token
            .or(query_token)
            .ok_or_else(ApiError::unauthorized)?;
        node.users
            .read()
            .authenticate(&token)
            .map(Caller)
            .ok_or_else(ApiError::unauthorized)
    }
}

impl Caller {
    fn has_role(&self, node: &Node, role: Role) -> bool {
        match &self.0 {
            Principal::Staff { signer, .. } => node
                .ledger
                .snapshot()
                .view()
                .has_role(signer.public(), role),
            Principal::Patient { .. } => false,
        }
    }

    /// Staff holding one of `roles`.
    pub(crate) fn require(&self, node: &Node, roles: &'static [Role]) -> ApiResult<()> {
        if roles.iter().any(|r| self.has_role(node, *r)) {
            Ok(())
        } else {
            Err(ApiError::forbidden(roles))
        }
    }

    /// Staff holding one of `roles`, or the patient `person` themself.
    fn require_or_self(
        &self,
        node: &Node,
        roles: &'static [Role],
        person: PersonId,
    ) -> ApiResult<()> {
        match &self.0 {
            Principal::Patient { person: own, .. } if *own == person => Ok(()),
            _ => self.require(node, roles),
        }
    }

    fn signer(&self) -> ApiResult<&crate::signer::Signer> {
        match &self.0 {
            Principal::Staff { signer, .. } => Ok(signer),
            Principal::Patient { .. } => Err(ApiError::forbidden(&[])),
        }
    }

    fn reader_key(&self, node: &Node) -> commonware_cryptography::ed25519::PublicKey {
        match &self.0 {
            Principal::Staff { signer, .. } => signer.public().clone(),
            Principal::Patient { .. } => node.gateway.public().clone(),
        }
    }
}

const OPERATORS: &[Role] = &[Role::CdcpOperator, Role::Admin];
const ALERT_READERS: &[Role] = &[Role::CdcpOperator, Role::Auditor, Role::Admin];
const PEOPLE_READERS: &[Role] = &[Role::CdcpOperator, Role::Doctor, Role::Auditor, Role::Admin];
const RECORD_READERS: &[Role] = &[Role::CdcpOperator, Role::Doctor];
const LEDGER_READERS: &[Role] = &[Role::CdcpOperator, Role::Auditor, Role::Admin, Role::Doctor];

pub fn router(node: Shared) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route(
            "/api/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .route("/metrics", get(metrics))
        .route("/api/packs/{person}", post(ingest_pack))
        .route("/api/me", get(me))
        .route("/api/people", get(list_people).post(register_person))
        .route("/api/people/{person}/identity", get(read_identity))
        .route("/api/people/{person}/readings", get(read_readings))
        .route("/api/devices", post(enroll_device))
        .route(
            "/api/devices/{device}",
            axum::routing::delete(revoke_device),
        )
        .route("/api/instances", get(list_instances).post(deploy_instance))
        .route(
            "/api/instances/{instance}",
            axum::routing::put(replace_instance).delete(terminate_instance),
        )
        .route("/api/alerts", get(list_alerts))
        .route("/api/alerts/stream", get(alert_stream))
        .route("/api/alerts/{alert}/acknowledge", post(acknowledge))
        .route("/api/alerts/{alert}/order", post(order))
        .route("/api/alerts/{alert}/resolve", post(resolve))
        .route("/api/ledger/blocks", get(list_blocks))
        .route("/api/ledger/blocks/{height}", get(get_block))
        .merge(crate::dashboard::routes())
        .route("/", get(|| web_asset(Path("index.html".to_owned()))))
        .route("/web/{*path}", get(web_asset))
        .merge(crate::stats::routes())
        .layer(axum::extract::DefaultBodyLimit::max(REQUEST_BYTES_MAX))
        .with_state(node)
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
    let (height, _) = node.ledger.finalized();
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

async fn me(State(node): State<Shared>, caller: Caller) -> Json<JsonValue> {
    match &caller.0 {
        Principal::Staff { name, signer } => {
            let snapshot = node.ledger.snapshot();
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
    let state = node.ledger.snapshot();
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
    caller.require(&node, OPERATORS)?;
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
    node.ehr
        .lock()
        .register_person(person, &identity)
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ehr", e.to_string()))?;
    let tx = caller
        .signer()?
        .submit_checked(&node.ledger, TxBody::RegisterPerson { person })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"person": person, "tx": hex::encode(tx.0)})),
    ))
}

/// Logs EHR reads on the ledger, signed by the reader (or by the node for a patient reading
/// their own data).
struct LedgerAccessLog<'a> {
    node: &'a Node,
    signer: &'a crate::signer::Signer,
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
                &self.node.ledger,
                TxBody::EhrAccess {
                    person: event.person,
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
    let signer = caller.signer()?;
    let mut log = LedgerAccessLog {
        node: &node,
        signer,
    };
    let identity = node
        .ehr
        .lock()
        .read_identity(caller.0.name(), person, now_ms(), &mut log)
        .map_err(ehr_error)?;
    Ok(Json(identity))
}

pub(crate) fn ehr_error(error: vigil_ehr::EhrError) -> ApiError {
    use vigil_ehr::EhrError::*;
    match error {
        UnknownPerson(_) => ApiError::not_found(error.to_string()),
        Erased(_) => ApiError::new(StatusCode::GONE, "erased", error.to_string()),
        LimitTooLarge(_) => ApiError::bad_request(error.to_string()),
        AccessNotLogged(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_logged",
            error.to_string(),
        ),
        _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "ehr", error.to_string()),
    }
}

#[derive(Deserialize)]
struct ReadingsQuery {
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    limit: Option<usize>,
}

async fn read_readings(
    State(node): State<Shared>,
    caller: Caller,
    Path(person): Path<String>,
    Query(q): Query<ReadingsQuery>,
) -> ApiResult<Json<JsonValue>> {
    let person = parse_person(&person)?;
    caller.require_or_self(&node, RECORD_READERS, person)?;
    let signer = match &caller.0 {
        Principal::Staff { signer, .. } => signer.as_ref(),
        Principal::Patient { .. } => &node.gateway,
    };
    let mut log = LedgerAccessLog {
        node: &node,
        signer,
    };
    let range = (q.from_ms.unwrap_or(0), q.to_ms.unwrap_or(i64::MAX));
    let observations = node
        .ehr
        .lock()
        .read_observations(
            caller.0.name(),
            person,
            range,
            q.limit.unwrap_or(READINGS_LIMIT_DEFAULT),
            now_ms(),
            &mut log,
        )
        .map_err(ehr_error)?;
    Ok(Json(
        json!({"person": person, "observations": observations}),
    ))
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
    let key: vigil_core::DevicePublicKey = new
        .public_key
        .parse()
        .map_err(|e| ApiError::bad_request(format!("public_key: {e}")))?;
    let body = TxBody::EnrollDevice {
        person: new.person,
        device: new.device,
        public_key: key.to_bytes(),
    };
    let tx = caller.signer()?.submit_checked(&node.ledger, body)?;
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
        .submit_checked(&node.ledger, TxBody::RevokeDevice { device })?;
    Ok((StatusCode::ACCEPTED, Json(json!({"tx": hex::encode(tx.0)}))))
}

#[derive(Deserialize)]
struct InstancesQuery {
    person: Option<PersonId>,
}

fn ledger_read(node: &Node, caller: &Caller, query: LedgerQuery) -> ApiResult<Answer> {
    let reader = caller.reader_key(node);
    read::read(&node.ledger.snapshot(), &reader, &query).map_err(|error| match error {
        read::ReadError::Forbidden(roles) => ApiError::forbidden(roles),
        other => ApiError::new(StatusCode::BAD_REQUEST, "read", other.to_string()),
    })
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
        .submit_checked(&node.ledger, TxBody::DeployInstance { deployment })?;
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
        &node.ledger,
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
        .submit_checked(&node.ledger, TxBody::TerminateInstance { instance })?;
    Ok((StatusCode::ACCEPTED, Json(json!({"tx": hex::encode(tx.0)}))))
}

fn alert_json(id: &AlertId, record: &AlertRecord) -> JsonValue {
    json!({
        "id": hex::encode(id.0),
        "instance": record.instance.to_string(),
        "person": record.person,
        "level": record.level.code(),
        "reading_time_ms": record.reading_time_ms,
        "raised_height": record.raised_height,
        "status": status_name(record.status),
        "orders": record.orders.iter().map(|o| json!({"kind": order_name(o.kind), "height": o.height})).collect::<Vec<_>>(),
    })
}

fn order_name(kind: OrderKind) -> &'static str {
    match kind {
        OrderKind::HospitalTransfer => "hospital-transfer",
        OrderKind::ReturnToQuarantineArea => "return-to-quarantine-area",
        OrderKind::Call => "call",
    }
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
    let alerts: Vec<JsonValue> = match &caller.0 {
        // A patient sees their own alerts only, read by the node on their behalf.
        Principal::Patient { person, .. } => node
            .ledger
            .snapshot()
            .alerts_of(person)
            .map(|(id, a)| alert_json(id, a))
            .collect(),
        Principal::Staff { .. } => {
            caller.require(&node, ALERT_READERS)?;
            let statuses = match q.status.as_deref() {
                None => vec![AlertStatus::Open, AlertStatus::Acknowledged],
                Some("open") => vec![AlertStatus::Open],
                Some("acknowledged") => vec![AlertStatus::Acknowledged],
                Some("resolved") => vec![AlertStatus::Resolved],
                Some(other) => {
                    return Err(ApiError::bad_request(format!("unknown status {other:?}")));
                }
            };
            let mut out = Vec::new();
            for status in statuses {
                if let Answer::Alerts(list) =
                    ledger_read(&node, &caller, LedgerQuery::AlertsByStatus(status))?
                {
                    out.extend(list.iter().map(|(id, a)| alert_json(id, a)));
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
        .submit_checked(&node.ledger, TxBody::Acknowledge { alert })?;
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
    let kind = match body.kind.as_str() {
        "hospital-transfer" => OrderKind::HospitalTransfer,
        "return-to-quarantine-area" => OrderKind::ReturnToQuarantineArea,
        "call" => OrderKind::Call,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown order {other:?}: hospital-transfer, return-to-quarantine-area or call"
            )));
        }
    };
    let tx = caller.signer()?.submit_checked(
        &node.ledger,
        TxBody::Order {
            alert,
            kind,
            note: note_digest(body.note),
        },
    )?;
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
    let tx = caller.signer()?.submit_checked(
        &node.ledger,
        TxBody::Resolve {
            alert,
            note: note_digest(note),
        },
    )?;
    Ok((StatusCode::ACCEPTED, Json(json!({"tx": hex::encode(tx.0)}))))
}

#[derive(Deserialize)]
struct BlocksQuery {
    from: Option<u64>,
    limit: Option<u64>,
}

async fn list_blocks(
    State(node): State<Shared>,
    caller: Caller,
    Query(q): Query<BlocksQuery>,
) -> ApiResult<Json<JsonValue>> {
    caller.require(&node, LEDGER_READERS)?;
    let (tip, _) = node.ledger.finalized();
    let limit = q.limit.unwrap_or(20).min(100);
    let to = q.from.map_or(tip, |f| f.min(tip));
    let mut blocks = Vec::new();
    let mut height = to;
    while blocks.len() < limit as usize && height >= 1 {
        if let Some(block) = node.ledger.block(height).await {
            blocks.push(block_summary(&block));
        }
        height -= 1;
    }
    Ok(Json(json!({"tip": tip, "blocks": blocks})))
}

fn block_summary(block: &vigil_ledger::block::Block) -> JsonValue {
    let header = block.header();
    json!({
        "height": header.height,
        "digest": block.digest().to_string(),
        "parent": header.parent.to_string(),
        "timestamp_ms": header.timestamp_ms,
        "tx_count": header.tx_count,
        "tx_root": hex::encode(header.tx_root),
        "state_root": hex::encode(header.state_root),
    })
}

/// The finalized block at `height`, for a caller who may read the ledger.
pub(crate) async fn finalized_block(
    node: &Node,
    caller: &Caller,
    height: u64,
) -> ApiResult<Arc<vigil_ledger::block::Block>> {
    caller.require(node, LEDGER_READERS)?;
    node.ledger
        .block(height)
        .await
        .ok_or_else(|| ApiError::not_found(format!("no finalized block {height}")))
}

async fn get_block(
    State(node): State<Shared>,
    caller: Caller,
    Path(height): Path<u64>,
) -> ApiResult<Json<JsonValue>> {
    let block = finalized_block(&node, &caller, height).await?;
    let finalization = node.ledger.finalization(height).await;
    let txs: Vec<JsonValue> = block
        .txs()
        .iter()
        .map(|tx| {
            json!({
                "id": hex::encode(tx.id().0),
                "kind": format!("{:?}", tx.kind()),
                "signer": tx.signer().to_string(),
                "nonce": tx.nonce(),
            })
        })
        .collect();
    let mut summary = block_summary(&block);
    summary["txs"] = JsonValue::from(txs);
    summary["certificate"] = match finalization {
        Some(f) => json!({"present": true, "text": format!("{f:?}")}),
        None => json!({"present": false, "note": "finalized through a descendant's certificate"}),
    };
    Ok(Json(summary))
}
