//! The OpenAPI 3.1 document served at `/api/openapi.json`. Written out by hand so that it
//! says what each route admits and refuses; a test checks it names every route the router has.

use serde_json::{Value, json};

fn op(summary: &str, roles: &str) -> Value {
    json!({
        "summary": summary,
        "description": format!("Roles: {roles}."),
        "security": [{"bearer": []}],
        "responses": {
            "200": {"description": "OK"},
            "202": {"description": "Submitted to the ledger; finalization follows on the alert stream"},
            "400": {"$ref": "#/components/responses/Error"},
            "401": {"$ref": "#/components/responses/Error"},
            "403": {"$ref": "#/components/responses/Error"},
            "409": {"$ref": "#/components/responses/Error"}
        }
    })
}

pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Vigil node API", "version": env!("CARGO_PKG_VERSION")},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {
                "description": "A refusal that names its reason",
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                    "required": ["error", "message"]
                }}}
            }}
        },
        "paths": {
            "/api/health": {"get": {"summary": "Liveness and ledger height", "responses": {"200": {"description": "OK"}}}},
            "/api/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OK"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "OK"}}}},
            "/api/packs/{person}": {"post": {
                "summary": "Ingest a device's signed SenML pack (application/senml+json or application/senml+cbor)",
                "description": "Authenticated by the pack's Ed25519 signature; 413 too large, 422 invalid (also a sequence number above 2^63-1, or a reading stamped beyond the node's clock plus its skew), 401 bad signature, 403 unknown or revoked device, 409 replay, 503 the node failed (send again).",
                "responses": {"200": {"description": "Accepted"}, "4XX": {"description": "Refused with its reason"}}
            }},
            "/api/me": {"get": op("Who the token belongs to and its roles", "any authenticated user")},
            "/api/people": {
                "get": op("Pseudonymous people with devices and alert state", "cdcp-operator, doctor, auditor, admin"),
                "post": op("Register a person: identity into the encrypted record, pseudonym onto the ledger", "cdcp-operator")
            },
            "/api/people/{person}/identity": {"get": op("A person's identity (logged on the ledger)", "cdcp-operator, doctor")},
            "/api/people/{person}/readings": {"get": op("A person's FHIR Observations (logged on the ledger); ?from_ms=, ?to_ms=, ?limit= (default 500, at most 1000: 400 above)", "cdcp-operator, doctor, the person themself")},
            "/api/devices": {"post": op("Enroll a device's public key for a person", "per the ledger's permission table")},
            "/api/devices/{device}": {"delete": op("Revoke a device", "per the ledger's permission table")},
            "/api/instances": {
                "get": op("A person's contract instances (?person=)", "cdcp-operator, gateway, auditor, admin"),
                "post": op("Deploy a contract instance", "per the ledger's permission table")
            },
            "/api/instances/{instance}": {
                "put": op("Replace an instance (terminate + deploy, atomically)", "per the ledger's permission table"),
                "delete": op("Terminate an instance", "per the ledger's permission table")
            },
            "/api/alerts": {"get": op("Alerts by status (?status=open|acknowledged|resolved); a patient gets their own", "cdcp-operator, auditor, admin, the person")},
            "/api/alerts/stream": {"get": op("Server-sent events: finalized alerts and status changes (token in header, or ?token=: the only route that reads it)", "cdcp-operator, auditor, admin, the person")},
            "/api/alerts/{alert}/acknowledge": {"post": op("Acknowledge an alert", "per the ledger's permission table")},
            "/api/alerts/{alert}/order": {"post": op("Order an action: hospital-transfer, return-to-quarantine-area or call", "per the ledger's permission table")},
            "/api/alerts/{alert}/resolve": {"post": op("Resolve an alert", "per the ledger's permission table")},
            "/api/ledger/blocks": {"get": op("Latest finalized blocks", "cdcp-operator, auditor, admin, doctor")},
            "/api/ledger/blocks/{height}": {"get": op("A finalized block with its transactions and certificate", "cdcp-operator, auditor, admin, doctor")},
            "/api/queries": {
                "get": op("The caller's private-statistics queries, newest first, and the data providers available: {dps, queries: [status]}", "doctor"),
                "post": op("Submit a private-statistics query as a ledger transaction: {stat: count|sum|mean|variance|std|histogram|min|max|median|pNN, metric: hr|rr, from?, to? (Unix s), dps?: [id], bins?: [edge], cohort?: [pseudonym]}; 202 with its status", "doctor")
            },
            "/api/queries/{id}": {"get": op("A query's status: pending (stage submitted|verifying, verdicts so far), accepted (result, once a quorum of verifying nodes' all-valid verdicts is finalized) or rejected (reason and the failed proofs); only the doctor who asked", "doctor")},
            "/api/ledger/blocks/{height}/verify": {"get": op("Re-check a block: hash link, transactions root, signatures, finalization certificate against the validator set", "cdcp-operator, auditor, admin, doctor")},
            "/api/ehr/records/{seq}/verify": {"get": op("Check one health record against its ledger anchor (Merkle inclusion proof); no value is revealed", "cdcp-operator, auditor, admin, doctor, the person")},
            "/api/map": {"get": op("Every person's pseudonym, open-alert level and last position fix", "cdcp-operator, admin")},
            "/api/map/zones": {"get": op("The zones of every active geofence instance", "cdcp-operator, admin")}
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The source of every module that declares routes.
    const ROUTE_SOURCES: &[&str] = &[
        include_str!("alerts.rs"),
        include_str!("devices.rs"),
        include_str!("instances.rs"),
        include_str!("ledger.rs"),
        include_str!("map.rs"),
        include_str!("packs.rs"),
        include_str!("people.rs"),
        include_str!("queries.rs"),
        include_str!("service.rs"),
    ];
    /// The dashboard's files, which are not API.
    const NOT_API: &[&str] = &["/", "/web/{*path}"];

    /// The path of every `.route("...")` in the sources.
    fn routed_paths() -> BTreeSet<String> {
        let mut paths = BTreeSet::new();
        for source in ROUTE_SOURCES {
            for piece in source.split(".route(").skip(1) {
                let Some(rest) = piece.trim_start().strip_prefix('"') else {
                    continue;
                };
                if let Some((path, _)) = rest.split_once('"') {
                    paths.insert(path.to_owned());
                }
            }
        }
        paths
    }

    #[test]
    fn the_document_names_every_route_and_no_other() {
        let routed: BTreeSet<String> = routed_paths()
            .into_iter()
            .filter(|p| !NOT_API.contains(&p.as_str()))
            .collect();
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
}
