//! The ledger as the block explorer shows it: the latest finalized blocks, one block with its
//! transactions and certificate, and the "verify" actions, which re-check one block (hash
//! link, transaction root, signatures, finalization certificate against the validator set)
//! and one health record (its inclusion proof against the anchor the ledger holds).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use commonware_parallel::Sequential;
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};
use vigil_core::merkle;
use vigil_ledger::block::Block;
use vigil_node::Node;
use vigil_node::users::Principal;

use crate::shared::{ApiError, ApiResult, Caller, LEDGER_READERS, Shared, ehr_error};

/// Heights searched above a block without its own certificate for the one that covers it.
const CERTIFICATE_SEARCH_MAX: u64 = 256;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/ledger/blocks", get(list_blocks))
        .route("/api/ledger/blocks/{height}", get(get_block))
        .route("/api/ledger/blocks/{height}/verify", get(verify_block))
        .route("/api/ehr/records/{seq}/verify", get(verify_record))
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
    let (tip, _) = node.ledger().finalized();
    let limit = q.limit.unwrap_or(20).min(100);
    let to = q.from.map_or(tip, |f| f.min(tip));
    let mut blocks = Vec::new();
    let mut height = to;
    while blocks.len() < limit as usize && height >= 1 {
        if let Some(block) = node.ledger().block(height).await {
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
    node.ledger()
        .block(height)
        .await
        .ok_or_else(|| ApiError::not_found(format!("no finalized block {height}")))
}

/// A number from the path, as a JSON error when it is none: 400 if it is not a number at
/// all, 404 if it is one beyond any stored (the ledger's heights and the health record's
/// numbers are SQLite / `i64`-bounded), never a server error.
pub(crate) fn path_number(what: &str, text: &str) -> ApiResult<u64> {
    let number: u64 = text
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{what} {text:?} is not a whole number")))?;
    if i64::try_from(number).is_err() {
        return Err(ApiError::not_found(format!("no {what} {number}")));
    }
    Ok(number)
}

async fn get_block(
    State(node): State<Shared>,
    caller: Caller,
    Path(height): Path<String>,
) -> ApiResult<Json<JsonValue>> {
    let height = path_number("block", &height)?;
    let block = finalized_block(&node, &caller, height).await?;
    let finalization = node.ledger().finalization(height).await;
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
    Path(height): Path<String>,
) -> ApiResult<Json<JsonValue>> {
    let height = path_number("block", &height)?;
    let block = finalized_block(&node, &caller, height).await?;
    let parent_digest = match height {
        0 => None,
        1 => node.genesis().map(|g| g.block.digest()),
        _ => node.ledger().block(height - 1).await.map(|b| b.digest()),
    };
    // The certificate covering this block: its own, or the first descendant's, with the
    // blocks in between to follow the hash links down.
    let (tip, _) = node.ledger().finalized();
    let mut chain: Vec<Arc<Block>> = vec![block.clone()];
    let mut certificate = None;
    let mut at = height;
    loop {
        if let Some(finalization) = node.ledger().finalization(at).await {
            certificate = Some((at, finalization));
            break;
        }
        if at >= tip || at >= height.saturating_add(CERTIFICATE_SEARCH_MAX) {
            break;
        }
        at += 1;
        match node.ledger().block(at).await {
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
    let bad = vigil_ledger::tx::verify_batch(&mut rand::rng(), &node.ledger().chain_id(), &refs);
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
    match (&certificate, node.genesis()) {
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
    Path(seq): Path<String>,
) -> ApiResult<Json<JsonValue>> {
    if let Principal::Staff { .. } = &caller.0 {
        caller.require(&node, LEDGER_READERS)?;
    }
    let seq = path_number("health record", &seq)?;
    node.charge_ehr_request(&caller)?;
    let proof = node
        .ehr_read(move |_, ehr| ehr.record_proof(seq))
        .await?
        .map_err(ehr_error)?;
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
        node.ledger()
            .snapshot()
            .anchor_by(node.gateway_identity().public(), first_seq)
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
