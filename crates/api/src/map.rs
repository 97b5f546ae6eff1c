//! The operators' map: every registered person's pseudonym, open-alert level and latest
//! position fix, and the zones of every active geofence. Positions are what the node's
//! geofence contracts last saw (kept in memory by the monitor), shown only to the roles that
//! act on geofence alerts: operators and admins. And the map's own configuration: the tile
//! server, if any, for every signed-in user (the person page draws a track on the same map).

use std::collections::HashMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value as JsonValue, json};
use vigil_core::PersonId;
use vigil_node::now_ms;

use crate::shared::{ApiResult, Caller, MAP_READERS, Shared};

/// People one map answer carries at most (the demo's fleet is at most 100,000).
const MAP_PEOPLE_MAX: usize = 100_000;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/map", get(map))
        .route("/api/map/zones", get(map_zones))
        .route("/api/map/config", get(map_config))
}

/// `GET /api/map`: every registered person's pseudonym, open-alert level (0 when none) and
/// latest position fix, if any.
async fn map(State(node): State<Shared>, caller: Caller) -> ApiResult<Json<JsonValue>> {
    caller.require(&node, MAP_READERS)?;
    let (people, levels) = {
        let state = node.ledger().snapshot();
        let mut levels: HashMap<PersonId, u8> = HashMap::new();
        for (_, alert) in state.unresolved_alerts() {
            let level = levels.entry(alert.person).or_insert(0);
            *level = (*level).max(alert.level.code());
        }
        let people: Vec<PersonId> = state
            .persons()
            .take(MAP_PEOPLE_MAX)
            .map(|(p, _)| *p)
            .collect();
        (people, levels)
    };
    let people: Vec<JsonValue> = node.with_positions(|positions| {
        people
            .iter()
            .map(|person| {
                let level = levels.get(person).copied().unwrap_or(0);
                match positions.get(person) {
                    Some((time_ms, fix)) => json!({
                        "person": person, "level": level, "lat_udeg": fix.lat_udeg,
                        "lon_udeg": fix.lon_udeg, "accuracy_m": fix.accuracy_m, "time_ms": time_ms,
                    }),
                    None => json!({"person": person, "level": level}),
                }
            })
            .collect()
    });
    Ok(Json(json!({"time_ms": now_ms(), "people": people})))
}

/// `GET /api/map/config`: the tile server the dashboard's map draws under its layers
/// (`tiles: null` when none is configured: the map is then a local plane). No health data, but
/// still only for signed-in users: it says how the deployment is set up.
async fn map_config(State(node): State<Shared>, _caller: Caller) -> Json<JsonValue> {
    Json(json!({"tiles": node.map_tiles()}))
}

/// `GET /api/map/zones`: the zones of every active geofence instance, as deployed.
async fn map_zones(State(node): State<Shared>, caller: Caller) -> ApiResult<Json<JsonValue>> {
    caller.require(&node, MAP_READERS)?;
    let zones: Vec<JsonValue> = {
        let state = node.ledger().snapshot();
        let mut zones = Vec::new();
        for (id, record) in state.instances() {
            if !record.active || record.deployment.kind != "geofence" {
                continue;
            }
            let Ok(vigil_contracts::Params::Geofence(params)) = record.deployment.contract_params()
            else {
                continue;
            };
            for zone in params.zones {
                let mut value = serde_json::to_value(&zone).unwrap_or(JsonValue::Null);
                value["person"] = json!(record.deployment.person);
                value["instance"] = json!(id.to_string());
                zones.push(value);
            }
        }
        zones
    };
    Ok(Json(json!({"zones": zones})))
}
