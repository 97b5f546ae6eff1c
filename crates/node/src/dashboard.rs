//! Routes behind the operators' dashboard beyond the core API: the map (positions, geofences,
//! alert state), and the explorer's "verify" actions, which re-check one block (hash link,
//! transaction root, signatures, finalization certificate against the validator set) and one
//! health record (its inclusion proof against the anchor the ledger holds).
//!
//! Every route names the roles it admits, like [`crate::api`]. Positions are what the node's
//! geofence contracts last saw (kept in memory by the monitor), shown only to the roles that
//! act on geofence alerts: operators and admins.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use commonware_parallel::Sequential;
use serde_json::{Value as JsonValue, json};
use vigil_core::{PersonId, merkle};
use vigil_ledger::block::Block;
use vigil_ledger::node::Genesis;
use vigil_ledger::tx::Role;

use crate::api::{ApiError, ApiResult, Caller, Shared};
use crate::users::Principal;
use crate::{Node, now_ms};

/// Who sees positions and zones: those who act on geofence alerts.
const MAP_READERS: &[Role] = &[Role::CdcpOperator, Role::Admin];
/// Who may re-check blocks and records (as for the block explorer).
const LEDGER_READERS: &[Role] = &[Role::CdcpOperator, Role::Auditor, Role::Admin, Role::Doctor];
/// People one map answer carries at most (the demo's fleet is at most 100,000).
const MAP_PEOPLE_MAX: usize = 100_000;
/// Heights searched above a block without its own certificate for the one that covers it.
const CERTIFICATE_SEARCH_MAX: u64 = 256;

impl Node {
    /// The genesis this node's ledger started from: its validator set is what block
    /// certificates are verified against. Without it the explorer says so instead of
    /// claiming a verified certificate. The first call wins.
    pub fn set_genesis(&self, genesis: Genesis) {
        let _ = self.genesis.set(genesis);
    }
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/map", get(map))
        .route("/api/map/zones", get(map_zones))
        .route("/api/ledger/blocks/{height}/verify", get(verify_block))
        .route("/api/ehr/records/{seq}/verify", get(verify_record))
}

/// `GET /api/map`: every registered person's pseudonym, open-alert level (0 when none) and
/// latest position fix, if any.
async fn map(State(node): State<Shared>, caller: Caller) -> ApiResult<Json<JsonValue>> {
    caller.require(&node, MAP_READERS)?;
    let state = node.ledger.snapshot();
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
    drop(state);
    let monitor = node.monitor.lock();
    let positions = monitor.positions();
    let people: Vec<JsonValue> = people
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
        .collect();
    drop(monitor);
    Ok(Json(json!({"time_ms": now_ms(), "people": people})))
}

/// `GET /api/map/zones`: the zones of every active geofence instance, as deployed.
async fn map_zones(State(node): State<Shared>, caller: Caller) -> ApiResult<Json<JsonValue>> {
    caller.require(&node, MAP_READERS)?;
    let zones: Vec<JsonValue> = {
        let state = node.ledger.snapshot();
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

/// One check of a verification, named, with its outcome in plain words.
fn check(name: &str, ok: bool, detail: impl Into<String>) -> JsonValue {
    json!({"check": name, "ok": ok, "detail": detail.into()})
}

/// `GET /api/ledger/blocks/{height}/verify`: re-checks a finalized block: its link to its
/// parent's digest, its transactions against the header's root, every transaction
/// signature, and the finalization certificate that covers it (its own, or a descendant's
/// reached through hash links) against the genesis validator set.
async fn verify_block(
    State(node): State<Shared>,
    caller: Caller,
    Path(height): Path<u64>,
) -> ApiResult<Json<JsonValue>> {
    let block = crate::api::finalized_block(&node, &caller, height).await?;
    let parent_digest = match height {
        0 => None,
        1 => node.genesis.get().map(|g| g.block.digest()),
        _ => node.ledger.block(height - 1).await.map(|b| b.digest()),
    };
    // The certificate covering this block: its own, or the first descendant's, with the
    // blocks in between to follow the hash links down.
    let (tip, _) = node.ledger.finalized();
    let mut chain: Vec<Arc<Block>> = vec![block.clone()];
    let mut certificate = None;
    let mut at = height;
    loop {
        if let Some(finalization) = node.ledger.finalization(at).await {
            certificate = Some((at, finalization));
            break;
        }
        if at >= tip || at >= height.saturating_add(CERTIFICATE_SEARCH_MAX) {
            break;
        }
        at += 1;
        match node.ledger.block(at).await {
            Some(next) => chain.push(next),
            None => break,
        }
    }

    let mut checks = Vec::new();
    let header = block.header();
    match (height, parent_digest) {
        (0, _) => checks.push(check("hash-link", true, "the genesis block has no parent")),
        (_, Some(parent)) => {
            let ok = header.parent == parent;
            checks.push(check(
                "hash-link",
                ok,
                if ok {
                    format!(
                        "the header names block {}'s digest as its parent",
                        height - 1
                    )
                } else {
                    format!("the header's parent is not block {}'s digest", height - 1)
                },
            ));
        }
        (_, None) => checks.push(check(
            "hash-link",
            false,
            format!("block {} is not available to compare with", height - 1),
        )),
    }
    let body_ok = block.body_matches();
    checks.push(check(
        "transactions-root",
        body_ok,
        if body_ok {
            format!(
                "the {} transactions hash to the header's root",
                block.txs().len()
            )
        } else {
            "the transactions do not hash to the header's root".to_owned()
        },
    ));
    let refs: Vec<_> = block.txs().iter().collect();
    let bad = vigil_ledger::tx::verify_batch(&mut rand::rng(), &node.ledger.chain_id(), &refs);
    checks.push(check(
        "signatures",
        bad.is_empty(),
        if bad.is_empty() {
            format!("all {} transaction signatures verify", refs.len())
        } else {
            format!("transactions {bad:?} carry invalid signatures")
        },
    ));
    let links_ok = chain
        .windows(2)
        .all(|pair| pair[1].header().parent == pair[0].digest());
    match (&certificate, node.genesis.get()) {
        (None, _) => checks.push(check(
            "certificate",
            false,
            format!(
                "no finalization certificate found from height {height} to {at}; it may still be on its way"
            ),
        )),
        (Some(_), None) => checks.push(check(
            "certificate",
            false,
            "this node was not given the validator set, so the certificate cannot be checked",
        )),
        (Some((certified, finalization)), Some(genesis)) => {
            let certified_block = chain.last().map(|b| b.digest());
            let for_block = Some(finalization.proposal.payload) == certified_block;
            let verifier = genesis.certificate_verifier();
            let signed = for_block
                && finalization.verify(&mut rand::rng(), &verifier, &Sequential);
            let ok = signed && links_ok;
            let detail = match (for_block, signed, links_ok, *certified == height) {
                (false, _, _, _) => format!("the certificate at {certified} is for another block"),
                (_, false, _, _) => format!(
                    "the certificate at {certified} does not verify against the {} validators",
                    genesis.validators.len()
                ),
                (_, _, false, _) => format!(
                    "blocks {height}..={certified} do not link by hash to the certified block"
                ),
                (_, _, _, true) => format!(
                    "a quorum of the {} validators signed this block's finalization",
                    genesis.validators.len()
                ),
                (_, _, _, false) => format!(
                    "finalized through block {certified}, whose certificate a quorum of the {} validators signed and which links back to this block by hash",
                    genesis.validators.len()
                ),
            };
            checks.push(check("certificate", ok, detail));
        }
    }
    let verified = checks.iter().all(|c| c["ok"] == true);
    Ok(Json(json!({
        "height": height,
        "digest": block.digest().to_string(),
        "certified_at": certificate.as_ref().map(|(h, _)| *h),
        "verified": verified,
        "checks": checks,
    })))
}

/// `GET /api/ehr/records/{seq}/verify`: one health record's leaf and stored audit path,
/// checked against the root of the ledger anchor that covers it. Staff who read the ledger,
/// or the person the record belongs to. Reveals no value: the leaf hashes the ciphertext.
async fn verify_record(
    State(node): State<Shared>,
    caller: Caller,
    Path(seq): Path<u64>,
) -> ApiResult<Json<JsonValue>> {
    if let Principal::Staff { .. } = &caller.0 {
        caller.require(&node, LEDGER_READERS)?;
    }
    let proof = node
        .ehr
        .lock()
        .record_proof(seq)
        .map_err(crate::api::ehr_error)?;
    let proof = match (proof, &caller.0) {
        (Some(proof), Principal::Patient { person, .. }) if proof.person != *person => {
            return Err(ApiError::forbidden(&[]));
        }
        (Some(proof), _) => proof,
        (None, _) => return Err(ApiError::not_found(format!("no health record {seq}"))),
    };
    // The batch that sealed the record, its audit path to the batch's root, and this node's
    // finalized anchor of that batch (same first record, size and root).
    let Some((first_seq, count)) = proof.batch else {
        return Ok(Json(json!({
            "seq": seq,
            "person": proof.person,
            "anchored": false,
            "verified": false,
            "leaf": hex::encode(proof.leaf),
            "detail": "this record is not anchored yet: the next finalized block anchors it",
        })));
    };
    let index = usize::try_from(seq - first_seq).unwrap_or(usize::MAX);
    let size = usize::try_from(count).unwrap_or(usize::MAX);
    let computed = merkle::root_from_proof(&proof.leaf, index, size, &proof.path);
    let anchor_height = computed.and_then(|root| {
        node.ledger
            .snapshot()
            .anchor_by(node.gateway.public(), first_seq)
            .filter(|a| u64::from(a.count) == count && a.root == root)
            .map(|a| a.height)
    });
    let verified = anchor_height.is_some();
    Ok(Json(json!({
        "seq": seq,
        "person": proof.person,
        "anchored": true,
        "verified": verified,
        "leaf": hex::encode(proof.leaf),
        "path": proof.path.iter().map(hex::encode).collect::<Vec<_>>(),
        "index": index,
        "batch": {"first_seq": first_seq, "count": count},
        "computed_root": computed.map(hex::encode),
        "anchor_height": anchor_height,
        "detail": match anchor_height {
            Some(height) => format!(
                "the record's audit path ({} hashes) leads to the root anchored on the ledger at height {height}",
                proof.path.len()
            ),
            None => "no finalized anchor on the ledger has the root this record proves to: it was altered, or its anchor is not finalized yet".to_owned(),
        },
    })))
}
