//! The OpenAPI 3.1 document served at `/api/openapi.json`, built from one table of operations
//! ([`operations`]): for each, its method and path, who may call it, its path and query
//! parameters, its request body, and the statuses its handler can answer, with a JSON schema
//! for every JSON body. The schemas ([`schemas`]) are read off the handlers' `Deserialize`
//! structs and `json!` answers; `deny_unknown_fields` bodies are closed
//! (`additionalProperties: false`), answers are open, so that adding a field to an answer
//! breaks no client. Machines check it: `openapi-spec-validator` and schemathesis against a
//! running demo (`scripts/api-contract.sh`); the tests below check it against the router.

use serde_json::{Map, Value, json};

/// A JSON schema reference to `components/schemas/{name}`.
fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// `schema` or `null`.
fn nullable(inner: Value) -> Value {
    json!({"oneOf": [inner, {"type": "null"}]})
}

fn int(minimum: i64) -> Value {
    json!({"type": "integer", "minimum": minimum})
}

/// A `u64` the handler parses: its whole range, so that generated values reach its ends.
fn uint64() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": u64::MAX})
}

/// An `i64` the handler parses.
fn int64() -> Value {
    json!({"type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX})
}

fn string() -> Value {
    json!({"type": "string"})
}

/// A closed object (a `deny_unknown_fields` body): exactly these properties, `required` among them.
fn closed(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties, "additionalProperties": false})
}

/// An open object (an answer): these properties at least.
fn open(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

/// One operation of the API as the document describes it.
struct Operation {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    /// Who may call it, in words; `None`: no token (the pack is authenticated by its signature).
    roles: Option<&'static str>,
    parameters: Vec<Value>,
    body: Option<Value>,
    /// Status and response object, in the order given.
    responses: Vec<(u16, Value)>,
}

impl Operation {
    fn new(method: &'static str, path: &'static str, summary: &'static str) -> Self {
        Self {
            method,
            path,
            summary,
            roles: None,
            parameters: Vec::new(),
            body: None,
            responses: Vec::new(),
        }
    }

    /// Needs a bearer token of a caller `roles` describes: 401 without one.
    fn roles(mut self, roles: &'static str) -> Self {
        self.roles = Some(roles);
        self
    }

    fn parameter(
        mut self,
        place: &str,
        name: &str,
        required: bool,
        schema: Value,
        description: &str,
    ) -> Self {
        self.parameters.push(json!({
            "name": name, "in": place, "required": required, "schema": schema, "description": description,
        }));
        self
    }

    fn path_param(self, name: &str, schema: Value, description: &str) -> Self {
        self.parameter("path", name, true, schema, description)
    }

    fn query(self, name: &str, schema: Value, description: &str) -> Self {
        self.parameter("query", name, false, schema, description)
    }

    /// A JSON request body; `required: false` for one that may be left empty.
    fn json_body(mut self, schema: Value, required: bool) -> Self {
        self.body = Some(json!({
            "required": required,
            "content": {"application/json": {"schema": schema}},
        }));
        self
    }

    /// A 2xx (or other) answer with a JSON body.
    fn answers(mut self, status: u16, description: &str, body: Value) -> Self {
        self.responses.push((
            status,
            json!({"description": description, "content": {"application/json": {"schema": body}}}),
        ));
        self
    }

    /// Refusals with the API's error body (`{"error", "message"}`).
    fn refuses(mut self, statuses: &[u16]) -> Self {
        for status in statuses {
            self.responses.push((*status, refusal(*status)));
        }
        self
    }

    fn to_json(&self) -> Value {
        let mut responses = Map::new();
        for (status, response) in &self.responses {
            responses.insert(status.to_string(), response.clone());
        }
        if self.roles.is_some() && !responses.contains_key("401") {
            responses.insert("401".to_owned(), refusal(401));
        }
        let description = match self.roles {
            Some(roles) => format!("Roles: {roles}."),
            None => "No token: open to anyone who reaches the node.".to_owned(),
        };
        let mut op = json!({
            "operationId": operation_id(self.method, self.path),
            "summary": self.summary,
            "description": description,
            "security": if self.roles.is_some() { json!([{"bearer": []}]) } else { json!([]) },
            "responses": responses,
        });
        if let Some(roles) = self.roles {
            op["x-roles"] = Value::from(roles);
        }
        if !self.parameters.is_empty() {
            op["parameters"] = Value::from(self.parameters.clone());
        }
        if let Some(body) = &self.body {
            op["requestBody"] = body.clone();
        }
        op
    }
}

/// `get /api/people/{person}/readings` → `get-api-people-person-readings`.
fn operation_id(method: &str, path: &str) -> String {
    let words: Vec<&str> = path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    format!("{method}-{}", words.join("-"))
}

/// What a refusal with this status means, here.
fn refusal_reason(status: u16) -> &'static str {
    match status {
        400 => "A malformed path, query or body value, named in the message",
        401 => "No valid bearer token (`Authorization: Bearer <token>`)",
        403 => "The caller's roles do not admit this, or the ledger's permission table refuses it",
        404 => "No such resource",
        409 => "Refused by the ledger's state machine (for example an unknown alert or instance)",
        410 => "The person's health record was erased",
        413 => "The request body is over 256 KiB",
        415 => "The request body is not `application/json`",
        422 => "The JSON body does not fit this operation's schema",
        429 => "Too many requests from this caller; retry later",
        503 => {
            "The node cannot do it now (the ledger did not take the transaction, or the service is not running)"
        }
        _ => "Refused",
    }
}

/// A refusal: the API's JSON error body, or plain text where the HTTP framework refuses the
/// request before a handler reads it (unparsable path, query or body, body too large).
fn refusal(status: u16) -> Value {
    let mut response = json!({
        "description": refusal_reason(status),
        "content": {
            "application/json": {"schema": schema("Error")},
            "text/plain": {"schema": string()},
        },
    });
    if status == 401 {
        response["headers"] = json!({"WWW-Authenticate": {
            "description": "The scheme to authenticate with: `Bearer`",
            "schema": string(),
        }});
    }
    response
}

const STAFF_WRITE: &str = "staff, as the ledger's permission table admits (patients: 403)";

/// Every operation of the API.
fn operations() -> Vec<Operation> {
    let person = || schema("Pseudonym");
    let hex = || schema("Hex32");
    let height = uint64;
    vec![
        Operation::new("get", "/api/health", "Liveness and the finalized ledger height")
            .answers(200, "The node is up", schema("Health")),
        Operation::new("get", "/api/openapi.json", "This document")
            .answers(200, "The OpenAPI document", json!({"type": "object"})),
        Operation::new("get", "/metrics", "Prometheus metrics (OpenMetrics text)").answer_text(
            200,
            "The metrics",
            "application/openmetrics-text",
        ),
        Operation::new(
            "post",
            "/api/packs/{person}",
            "Ingest a device's signed SenML pack (application/senml+json or application/senml+cbor)",
        )
        .path_param("person", person(), "The pseudonym the device is enrolled for")
        .pack_body()
        .answers(200, "Stored", schema("PackReply"))
        .refuses(&[400])
        .answers(401, "Unsigned, or the signature does not verify", schema("PackReply"))
        .answers(403, "Unknown or revoked device, or enrolled for another person", schema("PackReply"))
        .answers(409, "Replayed, or older than the node keeps", schema("PackReply"))
        .pack_too_large()
        .answers(422, "Malformed, or a reading that is not valid", schema("PackReply"))
        .refuses(&[429])
        .answers(503, "Not stored now; the device should retry", schema("PackReply")),
        Operation::new("get", "/api/me", "Who the token belongs to and its roles")
            .roles("any authenticated caller")
            .answers(200, "The caller", schema("Me")),
        Operation::new("get", "/api/people", "Pseudonymous people with their devices and alert state")
            .roles("cdcp-operator, doctor, auditor, admin")
            .answers(200, "At most 10,000 people", schema("People"))
            .refuses(&[403]),
        Operation::new(
            "post",
            "/api/people",
            "Register a person: identity into the encrypted record, pseudonym onto the ledger",
        )
        .roles("cdcp-operator (admin passes the role check, the ledger's permission table refuses)")
        .json_body(schema("NewPerson"), true)
        .answers(202, "Submitted to the ledger", schema("Registered"))
        .refuses(&[400, 403, 409, 413, 415, 422, 503]),
        Operation::new("get", "/api/people/{person}/identity", "A person's identity (the read is logged on the ledger)")
            .roles("cdcp-operator, doctor")
            .path_param("person", person(), "The person's pseudonym")
            .answers(200, "The identity", schema("Identity"))
            .refuses(&[400, 403, 404, 410, 429, 503]),
        Operation::new(
            "get",
            "/api/people/{person}/readings",
            "A person's readings as FHIR Observations, earliest first (the read is logged on the ledger)",
        )
        .roles("cdcp-operator, doctor, the person themself")
        .path_param("person", person(), "The person's pseudonym")
        .query("from_ms", int64(), "Earliest reading time, ms since the epoch (default 0)")
        .query("to_ms", int64(), "Readings before this time, ms since the epoch (default: no bound)")
        .query("limit", json!({"type": "integer", "minimum": 0, "maximum": 10_000}), "Observations at most (default 500; 0: no limit)")
        .answers(200, "The Observations", schema("Readings"))
        .refuses(&[400, 403, 404, 410, 429, 503]),
        Operation::new("post", "/api/devices", "Enroll a device's Ed25519 public key for a person")
            .roles(STAFF_WRITE)
            .json_body(schema("NewDevice"), true)
            .answers(202, "Submitted to the ledger", schema("Submitted"))
            .refuses(&[400, 403, 409, 413, 415, 422, 503]),
        Operation::new("delete", "/api/devices/{device}", "Revoke a device")
            .roles(STAFF_WRITE)
            .path_param("device", schema("DeviceId"), "The device's id")
            .answers(202, "Submitted to the ledger", schema("Submitted"))
            .refuses(&[400, 403, 409, 503]),
        Operation::new("get", "/api/instances", "A person's contract instances")
            .roles("cdcp-operator, gateway, auditor, admin (the ledger's read table), the person themself")
            .parameter("query", "person", true, person(), "The person's pseudonym")
            .answers(200, "The instances, active and ended", schema("Instances"))
            .refuses(&[400, 403]),
        Operation::new("post", "/api/instances", "Deploy a contract instance")
            .roles(STAFF_WRITE)
            .json_body(schema("NewInstance"), true)
            .answers(202, "Submitted to the ledger", schema("Deployed"))
            .refuses(&[400, 403, 409, 413, 415, 422, 503]),
        Operation::new("put", "/api/instances/{instance}", "Replace an instance (terminate and deploy, atomically)")
            .roles(STAFF_WRITE)
            .path_param("instance", hex(), "The instance to replace")
            .json_body(schema("NewInstance"), true)
            .answers(202, "Submitted to the ledger", schema("Deployed"))
            .refuses(&[400, 403, 409, 413, 415, 422, 503]),
        Operation::new("delete", "/api/instances/{instance}", "Terminate an instance")
            .roles(STAFF_WRITE)
            .path_param("instance", hex(), "The instance to terminate")
            .answers(202, "Submitted to the ledger", schema("Submitted"))
            .refuses(&[400, 403, 409, 503]),
        Operation::new("get", "/api/alerts", "Alerts by status; a patient gets their own, whatever the status")
            .roles("cdcp-operator, auditor, admin, the person")
            .query("status", schema("AlertStatus"), "Only alerts in this status (default: open and acknowledged)")
            .query("reasons", json!({"type": "boolean"}), "Staff: include each alert's reason from the health record, logged as one access (default true)")
            .answers(200, "The alerts", schema("Alerts"))
            .refuses(&[400, 403]),
        Operation::new(
            "get",
            "/api/alerts/stream",
            "Server-sent events: finalized alerts (`alert`), status changes (`alert-status`), reminders (`alert-reminder`), escalations (`alert-escalated`) and blocks (`block`); a patient gets only their own, without reasons",
        )
        .roles("cdcp-operator, auditor, admin, the person")
        .query("token", string(), "The bearer token, for browsers' EventSource, which cannot set headers (this route only)")
        .answer_text(200, "The event stream; each event's data is a LiveEvent", "text/event-stream")
        .refuses(&[403]),
        Operation::new("post", "/api/alerts/{alert}/acknowledge", "Acknowledge an alert")
            .roles(STAFF_WRITE)
            .path_param("alert", hex(), "The alert's id")
            .answers(202, "Submitted to the ledger", schema("Submitted"))
            .refuses(&[400, 403, 409, 503]),
        Operation::new("post", "/api/alerts/{alert}/order", "Order an action on an alert")
            .roles(STAFF_WRITE)
            .path_param("alert", hex(), "The alert's id")
            .json_body(schema("Order"), true)
            .answers(202, "Submitted to the ledger", schema("Submitted"))
            .refuses(&[400, 403, 409, 413, 415, 422, 503]),
        Operation::new("post", "/api/alerts/{alert}/resolve", "Resolve an alert; the body is optional")
            .roles(STAFF_WRITE)
            .path_param("alert", hex(), "The alert's id")
            .json_body(schema("Resolve"), false)
            .answers(202, "Submitted to the ledger", schema("Submitted"))
            .refuses(&[400, 403, 409, 413, 503]),
        Operation::new("get", "/api/actions", "The caller's recent actions on alerts, newest first: pending, finalized or failed (with the ledger's reason)")
            .roles("cdcp-operator")
            .answers(200, "The actions", open(&["actions"], json!({"actions": {"type": "array", "items": schema("Action")}})))
            .refuses(&[403]),
        Operation::new("get", "/api/escalation-policy", "The district's escalation policy for unacknowledged alerts, or null")
            .roles("cdcp-operator, auditor, admin")
            .answers(200, "The policy in force", open(&["policy"], json!({"policy": nullable(schema("EscalationPolicy"))})))
            .refuses(&[403]),
        Operation::new("put", "/api/escalation-policy", "Replace the district's escalation policy (through the ledger)")
            .roles(STAFF_WRITE)
            .json_body(schema("EscalationPolicy"), true)
            .answers(202, "Submitted to the ledger", schema("Submitted"))
            .refuses(&[400, 403, 409, 413, 415, 422, 503]),
        Operation::new("get", "/api/ledger/blocks", "The latest finalized blocks, newest first")
            .roles("cdcp-operator, auditor, admin, doctor")
            .query("from", height(), "The newest height to list (default: the tip)")
            .query("limit", uint64(), "Blocks at most (default 20, at most 100)")
            .answers(200, "The blocks", schema("Blocks"))
            .refuses(&[400, 403]),
        Operation::new("get", "/api/ledger/blocks/{height}", "A finalized block with its transactions and certificate")
            .roles("cdcp-operator, auditor, admin, doctor")
            .path_param("height", height(), "The block's height")
            .answers(200, "The block", schema("Block"))
            .refuses(&[400, 403, 404]),
        Operation::new(
            "get",
            "/api/ledger/blocks/{height}/verify",
            "Re-check a block: hash link, transactions root, signatures, finalization certificate against the validator set",
        )
        .roles("cdcp-operator, auditor, admin, doctor")
        .path_param("height", height(), "The block's height")
        .answers(200, "Each check with its outcome", schema("BlockVerification"))
        .refuses(&[400, 403, 404]),
        Operation::new(
            "get",
            "/api/ehr/records/{seq}/verify",
            "Check one health record against its ledger anchor (Merkle inclusion proof); no value is revealed",
        )
        .roles("cdcp-operator, auditor, admin, doctor, the person the record belongs to")
        .path_param("seq", uint64(), "The record's sequence number")
        .answers(200, "The proof and its outcome", schema("RecordVerification"))
        .refuses(&[400, 403, 404, 410, 429, 503]),
        Operation::new(
            "get",
            "/api/notifications/deliveries",
            "The notification channels (no address or secret) and their delivery log, one row per attempt, newest first",
        )
        .roles("admin")
        .query("channel", string(), "Only this channel's attempts")
        .query("event", string(), "Only attempts for this event (an alert's id, or `<alert>.escalation.<step>`)")
        .query(
            "status",
            json!({"type": "string", "enum": ["delivered", "retrying", "failed", "dropped"]}),
            "Only attempts with this outcome",
        )
        .query("before", uint64(), "Only attempts older than this `seq` (the previous page's `next_before`)")
        .query("limit", uint64(), "Attempts at most (default 50, at most 500)")
        .answers(200, "The channels and attempts", schema("Deliveries"))
        .refuses(&[400, 403]),
        Operation::new("get", "/api/map", "Every person's pseudonym, open-alert level and last position fix")
            .roles("cdcp-operator, admin")
            .answers(200, "The map", schema("Map"))
            .refuses(&[403]),
        Operation::new("get", "/api/map/zones", "The zones of every active geofence instance")
            .roles("cdcp-operator, admin")
            .answers(200, "The zones", schema("Zones"))
            .refuses(&[403]),
        Operation::new("get", "/api/map/config", "The map's tile server, or null: the map is then a local plane with no tiles")
            .roles("any authenticated caller")
            .answers(200, "The map's configuration", schema("MapConfig")),
        Operation::new(
            "get",
            "/api/queries",
            "The caller's private-statistics queries, newest first, and the data providers available",
        )
        .roles("doctor")
        .answers(200, "The queries", schema("QueryList"))
        .refuses(&[403, 503]),
        Operation::new("post", "/api/queries", "Submit a private-statistics query as a ledger transaction")
            .roles("doctor")
            .json_body(schema("NewQuery"), true)
            .answers(202, "Submitted; its status follows at /api/queries/{id}", schema("QueryStatus"))
            .refuses(&[400, 403, 409, 413, 415, 422, 429, 503]),
        Operation::new(
            "get",
            "/api/queries/{id}",
            "A query's status: pending (submitted or verifying, verdicts so far), accepted (with the result) or rejected (reason and failed proofs); only the doctor who asked",
        )
        .roles("doctor")
        .path_param("id", hex(), "The query's id (its ledger transaction)")
        .answers(200, "The query's status", schema("QueryStatus"))
        .refuses(&[400, 403, 404, 503]),
    ]
}

impl Operation {
    /// A 200 (or other) answer with a non-JSON body.
    fn answer_text(mut self, status: u16, description: &str, media_type: &str) -> Self {
        self.responses.push((
            status,
            json!({"description": description, "content": {media_type: {"schema": string()}}}),
        ));
        self
    }

    /// A SenML pack in either encoding.
    fn pack_body(mut self) -> Self {
        self.body = Some(json!({
            "required": true,
            "content": {
                "application/senml+json": {"schema": schema("SenmlPack")},
                "application/senml+cbor": {"schema": {"type": "string", "format": "binary"}},
            },
        }));
        self
    }

    /// 413: the node's reply when the pack is over its size, plain text when the body is
    /// over the API's limit.
    fn pack_too_large(mut self) -> Self {
        self.responses.push((
            413,
            json!({"description": "The pack is too large", "content": {
                "application/json": {"schema": schema("PackReply")},
                "text/plain": {"schema": string()},
            }}),
        ));
        self
    }
}

/// The named schemas the operations refer to.
fn schemas() -> Value {
    let person = || schema("Pseudonym");
    let hex = || schema("Hex32");
    let count = || int(0);
    let level = || schema("AlertLevel");
    let text = string;
    let named: Vec<(&str, Value)> = vec![
        (
            "Error",
            open(
                &["error", "message"],
                json!({"error": text(), "message": text()}),
            ),
        ),
        (
            "Pseudonym",
            json!({"type": "string", "pattern": "^[0-9a-fA-F]{32}$", "description": "A person's pseudonym: 128 random bits, hex"}),
        ),
        (
            "Hex32",
            json!({"type": "string", "pattern": "^[0-9a-fA-F]{64}$", "description": "32 bytes, hex: a transaction, alert, instance or query id"}),
        ),
        (
            "DeviceId",
            json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}),
        ),
        (
            "AlertLevel",
            json!({"type": "integer", "enum": [0, 1, 2], "description": "0 normal, 1 warning, 2 critical"}),
        ),
        (
            "AlertStatus",
            json!({"type": "string", "enum": ["open", "acknowledged", "resolved"]}),
        ),
        (
            "Health",
            open(
                &["status", "height"],
                json!({"status": {"const": "ok"}, "height": count()}),
            ),
        ),
        (
            "Me",
            json!({"oneOf": [
                open(&["kind", "name", "roles", "identity"], json!({
                    "kind": {"const": "staff"}, "name": text(),
                    "roles": {"type": "array", "items": text()}, "identity": text(),
                })),
                open(&["kind", "name", "person"], json!({"kind": {"const": "patient"}, "name": text(), "person": person()})),
            ]}),
        ),
        (
            "People",
            open(
                &["people"],
                json!({"people": {"type": "array", "items": open(
                    &["person", "devices", "open_alert_level"],
                    json!({
                        "person": person(),
                        "devices": {"type": "array", "items": open(&["device", "active"], json!({"device": schema("DeviceId"), "active": {"type": "boolean"}}))},
                        "open_alert_level": nullable(level()),
                    }),
                )}}),
            ),
        ),
        (
            "NewPerson",
            closed(
                &["name"],
                json!({
                    "name": {"type": "string", "minLength": 1, "maxLength": 200},
                    "address": {"type": "string", "maxLength": 500},
                    "phone": {"type": "string", "maxLength": 50},
                }),
            ),
        ),
        (
            "Registered",
            open(&["person", "tx"], json!({"person": person(), "tx": hex()})),
        ),
        ("Submitted", open(&["tx"], json!({"tx": hex()}))),
        (
            "Deployed",
            open(&["tx", "instance"], json!({"tx": hex(), "instance": hex()})),
        ),
        (
            "Identity",
            open(
                &["name", "address", "phone"],
                json!({"name": text(), "address": text(), "phone": text()}),
            ),
        ),
        (
            "Readings",
            open(
                &["person", "observations"],
                json!({
                    "person": person(),
                    "observations": {"type": "array", "items": open(&["resourceType", "id"], json!({
                        "resourceType": {"const": "Observation"}, "id": text(), "status": text(), "effectiveDateTime": text(),
                    }))},
                }),
            ),
        ),
        (
            "NewDevice",
            closed(
                &["person", "device", "public_key"],
                json!({
                    "person": person(), "device": schema("DeviceId"),
                    "public_key": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$", "description": "The device's Ed25519 public key, hex"},
                }),
            ),
        ),
        (
            "Instances",
            open(
                &["instances"],
                json!({"instances": {"type": "array", "items": open(
                    &["instance", "person", "device", "kind", "params", "active", "deployed_height", "replaced_by"],
                    json!({
                        "instance": hex(), "person": person(), "device": schema("DeviceId"), "kind": schema("ContractKind"),
                        "params": nullable(schema("Params")), "active": {"type": "boolean"},
                        "deployed_height": count(), "replaced_by": nullable(hex()),
                    }),
                )}}),
            ),
        ),
        (
            "NewInstance",
            closed(
                &["person", "device", "params"],
                json!({
                    "person": person(), "device": schema("DeviceId"), "params": schema("Params"),
                }),
            ),
        ),
        (
            "ContractKind",
            json!({"type": "string", "enum": ["threshold", "news2", "geofence", "no-signal", "heart-rhythm"]}),
        ),
        (
            "Params",
            json!({
                "description": "A contract's parameters, tagged by `kind`; the node validates them further (400 with the reason)",
                "oneOf": [
                    schema("ThresholdParams"), schema("News2Params"), schema("GeofenceParams"),
                    schema("NoSignalParams"), schema("HeartRhythmParams"),
                ],
            }),
        ),
        (
            "ThresholdParams",
            closed(&["kind", "metric"], threshold_properties(Some("threshold"))),
        ),
        (
            "ThresholdBands",
            closed(&["metric"], threshold_properties(None)),
        ),
        (
            "News2Params",
            closed(
                &["kind", "freshness_ms"],
                json!({
                    "kind": {"const": "news2"}, "spo2_scale": {"type": "integer", "enum": [1, 2]},
                    "freshness_ms": count(), "low_score_level": level(),
                }),
            ),
        ),
        (
            "GeofenceParams",
            closed(
                &["kind", "zones"],
                json!({
                    "kind": {"const": "geofence"}, "zones": {"type": "array", "items": schema("Zone")},
                    "dwell_ms": count(), "margin_m": count(), "accuracy_max_m": count(),
                }),
            ),
        ),
        ("Zone", closed(&["name"], zone_properties())),
        (
            "NoSignalParams",
            closed(
                &["kind", "interval_ms", "grace_ms"],
                json!({
                    "kind": {"const": "no-signal"}, "interval_ms": count(), "grace_ms": count(),
                }),
            ),
        ),
        (
            "HeartRhythmParams",
            closed(
                &["kind"],
                json!({
                    "kind": {"const": "heart-rhythm"},
                    "rate": schema("ThresholdBands"),
                    "irregularity": closed(&["window", "delta_ms", "irregular_permille"], json!({
                        "window": count(), "delta_ms": count(), "irregular_permille": count(), "level": level(),
                        "max_gap_ms": count(), "method": {"type": "string", "enum": ["pnn", "af-screen"]},
                    })),
                }),
            ),
        ),
        (
            "Alert",
            open(
                &[
                    "id",
                    "instance",
                    "person",
                    "level",
                    "basis",
                    "reading_time_ms",
                    "raised_height",
                    "status",
                    "orders",
                ],
                json!({
                    "id": hex(), "instance": hex(), "person": person(), "level": level(),
                    "basis": {"type": "string", "enum": ["device-signed", "attested"], "description": "device-signed: every validator re-derived the alert from its device's signed readings; attested: a no-signal alert, the gateway's word (silence cannot be signed)"},
                    "reading_time_ms": {"type": "integer"}, "raised_height": count(), "status": schema("AlertStatus"),
                    "raised_ms": {"type": "integer", "description": "Time of the block that finalized the alert (ms since the epoch): escalation is timed from here"},
                    "escalations": {"type": "integer", "minimum": 0, "maximum": 255, "description": "Escalation steps taken (the district's policy, on the ledger)"},
                    "reason": {"type": "object", "required": ["kind", "text"], "properties": {"kind": text(), "text": text()}, "description": "What fired (staff only; health data from the health record): the contract's reason, tagged by kind, with a sentence an operator reads"},
                    "orders": {"type": "array", "items": open(&["kind", "height"], json!({"kind": schema("OrderKind"), "height": count()}))},
                }),
            ),
        ),
        (
            "Alerts",
            open(
                &["alerts"],
                json!({"alerts": {"type": "array", "items": schema("Alert")}}),
            ),
        ),
        (
            "OrderKind",
            json!({"type": "string", "enum": ["hospital-transfer", "return-to-quarantine-area", "call"]}),
        ),
        (
            "Order",
            closed(
                &["kind"],
                json!({"kind": schema("OrderKind"), "note": nullable(text())}),
            ),
        ),
        ("Resolve", closed(&[], json!({"note": nullable(text())}))),
        (
            "Action",
            open(
                &["tx", "action", "submitted_ms", "status"],
                json!({
                    "tx": hex(), "action": {"type": "string", "enum": ["acknowledge", "order", "resolve"]},
                    "alert": hex(), "submitted_ms": {"type": "integer"},
                    "status": {"type": "string", "enum": ["pending", "finalized", "failed"]},
                    "height": count(), "reason": text(),
                }),
            ),
        ),
        (
            "EscalationPolicy",
            closed(
                &[
                    "remind_after_s",
                    "escalate_after_s",
                    "repeat_s",
                    "steps_max",
                    "raise_level",
                ],
                json!({
                    "remind_after_s": {"type": "integer", "minimum": 0, "maximum": u32::MAX, "description": "Remind the person this long after the alert, then every repeat_s (0: never)"},
                    "escalate_after_s": {"type": "integer", "minimum": 0, "maximum": u32::MAX, "description": "First escalation this long after the alert (10 s to 7 days)"},
                    "repeat_s": {"type": "integer", "minimum": 0, "maximum": u32::MAX, "description": "Further reminders and escalations this far apart"},
                    "steps_max": {"type": "integer", "minimum": 0, "maximum": 255, "description": "Escalations at most (1 to 10)"},
                    "raise_level": {"type": "boolean", "description": "Each escalation makes the alert critical"},
                }),
            ),
        ),
        ("BlockSummary", open(&BLOCK_FIELDS, block_properties())),
        (
            "Blocks",
            open(
                &["tip", "blocks"],
                json!({"tip": count(), "blocks": {"type": "array", "items": schema("BlockSummary")}}),
            ),
        ),
        (
            "Deliveries",
            open(
                &["configured", "channels", "deliveries", "next_before"],
                json!({
                    "configured": {"type": "boolean", "description": "Whether this node has a [service.notify] table"},
                    "channels": {"type": "array", "items": open(&["name", "kind", "min_level", "allow_health_data"], json!({
                        "name": text(),
                        "kind": {"type": "string", "enum": ["webhook", "email"]},
                        "min_level": {"type": "string", "enum": ["warning", "critical"]},
                        "allow_health_data": {"type": "boolean"},
                    }))},
                    "deliveries": {"type": "array", "items": open(
                        &["seq", "time_ms", "channel", "event", "event_id", "attempt", "status", "detail"],
                        json!({
                            "seq": count(), "time_ms": int64(), "channel": text(),
                            "event": {"type": "string", "enum": ["alert", "escalation"]},
                            "event_id": text(), "attempt": count(),
                            "status": {"type": "string", "enum": ["delivered", "retrying", "failed", "dropped"]},
                            "detail": text(),
                        }),
                    )},
                    "next_before": nullable(count()),
                }),
            ),
        ),
        ("Block", block_schema()),
        (
            "BlockVerification",
            open(
                &["height", "digest", "certified_at", "verified", "checks"],
                json!({
                    "height": count(), "digest": text(), "certified_at": nullable(count()), "verified": {"type": "boolean"},
                    "checks": {"type": "array", "items": open(&["check", "ok", "detail"], json!({
                        "check": {"type": "string", "enum": ["hash-link", "transactions-root", "signatures", "certificate"]},
                        "ok": {"type": "boolean"}, "detail": text(),
                    }))},
                }),
            ),
        ),
        (
            "RecordVerification",
            open(
                &["seq", "person", "anchored", "verified", "leaf", "detail"],
                json!({
                    "seq": count(), "person": person(), "anchored": {"type": "boolean"}, "verified": {"type": "boolean"},
                    "leaf": hex(), "detail": text(), "path": {"type": "array", "items": hex()}, "index": count(),
                    "batch": open(&["first_seq", "count"], json!({"first_seq": count(), "count": count()})),
                    "computed_root": nullable(hex()), "anchor_height": nullable(count()),
                }),
            ),
        ),
        (
            "Map",
            open(
                &["time_ms", "people"],
                json!({"time_ms": {"type": "integer"}, "people": {"type": "array", "items": open(
                    &["person", "level"],
                    json!({
                        "person": person(), "level": level(), "lat_udeg": {"type": "integer"}, "lon_udeg": {"type": "integer"},
                        "accuracy_m": count(), "time_ms": {"type": "integer"},
                    }),
                )}}),
            ),
        ),
        (
            "MapConfig",
            open(
                &["tiles"],
                json!({"tiles": nullable(open(
                    &["url", "attribution", "max_zoom"],
                    json!({
                        "url": {"type": "string", "description": "An OpenStreetMap-style template with {z}, {x}, {y} (and optionally {r}); its origin is the only one the dashboard's img-src admits besides its own"},
                        "attribution": {"type": "string", "description": "Plain text the tile server's licence asks to show"},
                        "max_zoom": {"type": "integer", "minimum": 1, "maximum": vigil_node::map_tiles::MAP_TILES_ZOOM_MAX},
                    }),
                ))}),
            ),
        ),
        (
            "Zones",
            open(
                &["zones"],
                json!({"zones": {"type": "array", "items": placed_zone_schema()}}),
            ),
        ),
        (
            "NewQuery",
            closed(
                &["stat", "metric"],
                json!({
                    "stat": {"type": "string", "description": "count, sum, mean, variance, std, histogram, min, max, median or pNN (NN a percentile)"},
                    "metric": {"type": "string", "enum": ["hr", "rr"]},
                    "from": nullable(json!({"type": "integer", "format": "int64", "description": "Unix seconds"})),
                    "to": nullable(json!({"type": "integer", "format": "int64", "description": "Unix seconds"})),
                    "dps": nullable(json!({"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": u32::MAX}})),
                    "bins": nullable(json!({"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": u32::MAX}})),
                    "cohort": nullable(json!({"type": "array", "items": person()})),
                }),
            ),
        ),
        (
            "QueryStatus",
            open(
                &["id", "status"],
                json!({
                    "id": hex(), "status": {"type": "string", "enum": ["pending", "accepted", "rejected", "unknown"]},
                    "stat": text(), "metric": text(), "from": {"type": "integer"}, "to": {"type": "integer"},
                    "dps": {"type": "array", "items": count()}, "bins": {"type": "array", "items": count()},
                    "stage": {"type": "string", "enum": ["submitted", "verifying"]},
                    "verdicts": count(), "valid_verdicts": count(),
                    "result": open(&["value", "count", "sum", "sumsq", "bins", "edges", "outside"], json!({
                        "value": {"description": "A number, a list of bin counts, a [lo, hi) bin, or null"},
                        "count": count(), "sum": count(), "sumsq": count(),
                        "bins": {"type": "array", "items": count()}, "edges": {"type": "array", "items": count()},
                        "outside": nullable(count()),
                    })),
                    "reason": text(), "failed": {"type": "array", "items": text()},
                }),
            ),
        ),
        (
            "QueryList",
            open(
                &["dps", "queries"],
                json!({
                    "dps": {"type": "array", "items": count()},
                    "queries": {"type": "array", "items": schema("QueryStatus")},
                }),
            ),
        ),
        (
            "SenmlPack",
            json!({
                "description": "A signed SenML pack (RFC 8428 records); the node checks it and names what is wrong",
                "type": "array", "items": {"type": "object"},
            }),
        ),
        (
            "PackReply",
            open(
                &["sequence", "accepted", "stored"],
                json!({
                    "sequence": nullable(count()), "accepted": {"type": "boolean"}, "stored": count(),
                    "error": open(&["reason", "message"], json!({
                        "reason": {"type": "string", "enum": [
                            "too_large", "malformed", "invalid_reading", "unsigned", "unknown_device", "revoked_device",
                            "wrong_person", "bad_signature", "replayed", "too_old", "unavailable",
                        ]},
                        "message": text(),
                    })),
                }),
            ),
        ),
    ];
    Value::Object(
        named
            .into_iter()
            .map(|(name, schema)| (name.to_owned(), schema))
            .collect(),
    )
}

fn threshold_properties(kind: Option<&str>) -> Value {
    let bound = || json!({"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX});
    let mut properties = json!({
        "metric": {"type": "string", "description": "The metric's name, e.g. heart-rate, spo2, body-temperature"},
        "critical_below": bound(), "warning_below": bound(), "warning_above": bound(), "critical_above": bound(),
        "for_ms": int(0), "repeat": int(0), "hysteresis": int(0),
    });
    if let Some(kind) = kind {
        properties["kind"] = json!({"const": kind});
    }
    properties
}

fn zone_properties() -> Value {
    let degrees = || json!({"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX});
    json!({
        "name": string(),
        "rule": {"type": "string", "enum": ["keep-inside", "keep-outside"]},
        "level": schema("AlertLevel"),
        "circle": closed(&["lat_udeg", "lon_udeg", "radius_m"], json!({
            "lat_udeg": degrees(), "lon_udeg": degrees(), "radius_m": int(0),
        })),
        "polygon": {"type": "array", "items": {"type": "array", "items": degrees(), "minItems": 2, "maxItems": 2}},
    })
}

/// A zone as the map shows it: the zone, its person and its instance.
fn placed_zone_schema() -> Value {
    let mut properties = zone_properties();
    properties["person"] = schema("Pseudonym");
    properties["instance"] = schema("Hex32");
    open(&["name", "rule", "level", "person", "instance"], properties)
}

const BLOCK_FIELDS: [&str; 7] = [
    "height",
    "digest",
    "parent",
    "timestamp_ms",
    "tx_count",
    "tx_root",
    "state_root",
];

fn block_properties() -> Value {
    json!({
        "height": int(0), "digest": string(), "parent": string(), "timestamp_ms": {"type": "integer"},
        "tx_count": int(0), "tx_root": schema("Hex32"), "state_root": schema("Hex32"),
    })
}

/// A block: its summary, its transactions and its certificate.
fn block_schema() -> Value {
    let mut properties = block_properties();
    properties["txs"] = json!({"type": "array", "items": open(&["id", "kind", "signer", "nonce"], json!({
        "id": schema("Hex32"), "kind": string(), "signer": string(), "nonce": int(0),
    }))});
    properties["certificate"] = open(
        &["present"],
        json!({"present": {"type": "boolean"}, "text": string(), "note": string()}),
    );
    let mut required = BLOCK_FIELDS.to_vec();
    required.extend(["txs", "certificate"]);
    open(&required, properties)
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for op in operations() {
        let item = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        item[op.method] = op.to_json();
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Vigil node API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Staff and patients authenticate with a bearer token; devices' packs are authenticated by their signature.",
        },
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    /// The source of every module that declares routes.
    const ROUTE_SOURCES: &[&str] = &[
        include_str!("alerts.rs"),
        include_str!("devices.rs"),
        include_str!("instances.rs"),
        include_str!("ledger.rs"),
        include_str!("map.rs"),
        include_str!("notifications.rs"),
        include_str!("packs.rs"),
        include_str!("people.rs"),
        include_str!("queries.rs"),
        include_str!("service.rs"),
    ];
    /// The dashboard's files, which are not API.
    const NOT_API: &[&str] = &["/", "/web/{*path}"];
    const METHODS: &[&str] = &["get", "post", "put", "delete", "patch"];

    /// Every `.route("path", method(..).method(..))` in the sources: the path and its methods.
    fn routes() -> Vec<(String, BTreeSet<String>)> {
        let mut routes = Vec::new();
        for source in ROUTE_SOURCES {
            for piece in source.split(".route(").skip(1) {
                let Some(rest) = piece.trim_start().strip_prefix('"') else {
                    continue;
                };
                if let Some((path, handlers)) = rest.split_once('"') {
                    routes.push((path.to_owned(), methods_of(handlers)));
                }
            }
        }
        routes
    }

    /// The methods named at the top level of a `.route(` call's handler argument, up to the
    /// parenthesis that closes the call: `get(a).post(b)` → {get, post}.
    fn methods_of(handlers: &str) -> BTreeSet<String> {
        let mut methods = BTreeSet::new();
        let mut depth = 1;
        let mut in_string = false;
        let mut word = String::new();
        for c in handlers.chars() {
            if in_string {
                in_string = c != '"';
                continue;
            }
            match c {
                '"' => in_string = true,
                '(' => {
                    if depth == 1 && METHODS.contains(&word.as_str()) {
                        methods.insert(word.clone());
                    }
                    depth += 1;
                }
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            if c.is_ascii_alphanumeric() || c == '_' {
                word.push(c);
            } else {
                word.clear();
            }
        }
        methods
    }

    fn api_routes() -> Vec<(String, BTreeSet<String>)> {
        routes()
            .into_iter()
            .filter(|(p, _)| !NOT_API.contains(&p.as_str()))
            .collect()
    }

    fn operations(document: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in document["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                out.push((path.clone(), method.clone(), op.clone()));
            }
        }
        out
    }

    #[test]
    fn the_document_names_every_route_and_no_other() {
        let routed: BTreeSet<String> = api_routes().into_iter().map(|(p, _)| p).collect();
        let document = super::document();
        let documented: BTreeSet<String> = document["paths"]
            .as_object()
            .map(|paths| paths.keys().cloned().collect())
            .unwrap_or_default();
        assert!(
            routed.len() > 20,
            "routes not found in the sources: {routed:?}"
        );
        assert_eq!(routed, documented);
    }

    #[test]
    fn each_path_documents_the_methods_its_route_serves() {
        let document = super::document();
        let routed: BTreeSet<(String, String)> = api_routes()
            .into_iter()
            .flat_map(|(path, methods)| methods.into_iter().map(move |m| (path.clone(), m)))
            .collect();
        let documented: BTreeSet<(String, String)> = operations(&document)
            .into_iter()
            .map(|(path, method, _)| (path, method))
            .collect();
        assert!(
            routed.len() > 25,
            "methods not found in the sources: {routed:?}"
        );
        assert_eq!(routed, documented);
    }

    #[test]
    fn every_path_template_declares_its_parameters() {
        for (path, method, op) in operations(&super::document()) {
            let templated: BTreeSet<&str> = path
                .split('{')
                .skip(1)
                .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
                .collect();
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .inspect(|p| assert_eq!(p["required"], true, "{method} {path}: {p}"))
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert_eq!(templated, declared, "{method} {path}");
        }
    }

    /// Every operation answers something in 2xx with a described body, and every protected
    /// one documents its 401.
    #[test]
    fn every_operation_has_a_success_and_its_refusals() {
        for (path, method, op) in operations(&super::document()) {
            let responses = op["responses"].as_object().expect("responses");
            let success: Vec<_> = responses.keys().filter(|s| s.starts_with('2')).collect();
            assert!(!success.is_empty(), "{method} {path}: no 2xx");
            for status in success {
                assert!(
                    responses[status]["content"].is_object(),
                    "{method} {path} {status}: no body"
                );
            }
            let protected = op["security"].as_array().is_some_and(|s| !s.is_empty());
            assert_eq!(
                protected,
                responses.contains_key("401") && op["x-roles"].is_string(),
                "{method} {path}"
            );
        }
    }

    /// Every `$ref` in `value`, with where it is.
    fn refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    if key == "$ref" {
                        out.push((at.to_owned(), inner.as_str().unwrap_or("").to_owned()));
                    } else {
                        refs(inner, &format!("{at}/{key}"), out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, inner) in items.iter().enumerate() {
                    refs(inner, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let document = super::document();
        let mut found = Vec::new();
        refs(&document, "", &mut found);
        assert!(found.len() > 50, "references not found: {}", found.len());
        for (at, target) in found {
            let pointer = target
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{at}: {target:?} is not a reference into the document"));
            assert!(
                document.pointer(pointer).is_some(),
                "{at}: {target:?} resolves to nothing"
            );
        }
    }
}
