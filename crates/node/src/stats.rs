//! Private statistics for doctors: the HTTP side of `vigil_stats_service::ledger`.
//!
//! A doctor posts a query; the node signs it as a `StatsQuery` transaction with the doctor's
//! identity (so every query is on the ledger, attributed), keeps the querier's ElGamal secret
//! for it, and reports the status: pending until the query and then the verifying nodes'
//! verdicts are finalized, then the verified result, or the rejection naming the failed proofs.
//! Only the doctor who asked reads the result.
//!
//! Routes (Doctor role only):
//! - `POST /api/queries` `{"stat", "metric", "from"?, "to"?, "dps"?, "bins"?, "cohort"?}` →
//!   202 with the query's status object (its `id` is the ledger transaction id, hex);
//! - `GET /api/queries` → `{"dps": [available DP ids], "queries": [status objects, newest first]}`
//!   (the caller's own queries);
//! - `GET /api/queries/{id}` → one status object:
//!   `{"id", "stat", "metric", "from", "to", "dps", "bins", "status": "pending"|"accepted"|"rejected",
//!   "stage"?: "submitted"|"verifying", "verdicts"?, "valid_verdicts"?, "result"?, "reason"?, "failed"?}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use commonware_cryptography::ed25519::PublicKey;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};
use vigil_ledger::signer::Signer;
use vigil_ledger::tx::{QueryId, Role, TxId};
use vigil_privstats::querier::StatResult;
use vigil_privstats::query::{Metric, Query, Statistic};
use vigil_stats_service::ledger::{
    Databases, QueryRequest, QueryStatus, StatsConfig, StatsService,
};
use vigil_stats_service::runner::{DATA_SPAN_S, DATA_START_S};
use vigil_stats_service::store::QueryStore;

use crate::Node;
use crate::api::{ApiError, Caller};
use crate::users::Principal;

/// Queries one doctor's listing returns at most.
const LISTED_MAX: usize = 100;
/// Query owners remembered before forgotten queries are pruned.
const OWNERS_MAX: usize = 2 * vigil_stats_service::ledger::TRACKED_QUERIES_MAX;

/// The node's statistics deployment and who asked which query.
pub struct Stats {
    service: Arc<StatsService>,
    owners: Mutex<HashMap<QueryId, PublicKey>>,
}

impl Node {
    /// Attaches a statistics deployment to this node (once) and advances its queries in the
    /// background. Returns false if one was attached already.
    pub fn enable_stats(self: &Arc<Self>, service: Arc<StatsService>) -> bool {
        let stats = Arc::new(Stats {
            service: service.clone(),
            owners: Mutex::new(HashMap::new()),
        });
        if self.stats.set(stats).is_err() {
            return false;
        }
        // Queries advance only when the finalized state does: step after each finalized
        // block (a step that runs long sees the latest block next, not every one missed).
        let mut snapshots = self.ledger.snapshots();
        tokio::spawn(async move {
            while snapshots.changed().await.is_ok() {
                let service = service.clone();
                // Encryption and proofs are CPU-bound: keep them off the async workers.
                let _ = tokio::task::spawn_blocking(move || service.step()).await;
            }
        });
        true
    }
}

/// Why the demo's statistics deployment did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    #[error("private statistics: {0}")]
    Privstats(#[from] vigil_stats_service::Error),
    #[error("private statistics: setup task failed")]
    Task,
    #[error("private statistics are already enabled on this node")]
    AlreadyEnabled,
}

/// The demo's deployment: 3 servers (t = 2), `dps` data providers with `rows` synthetic rows
/// each (in memory, the week from [`DATA_START_S`]), 2 verifying nodes (keys from fixed
/// seeds), the collective key published by `admin`. Returns once the key and the verifying
/// nodes' roles are finalized; then doctors can query through the API. Queries live in memory
/// only: [`start_demo_stats_stored`] keeps them across restarts.
pub async fn start_demo_stats(
    node: &Arc<Node>,
    admin: Arc<Signer>,
    dps: u32,
    rows: usize,
) -> Result<(), StatsError> {
    start_demo_stats_stored(node, admin, dps, rows, None).await
}

/// [`start_demo_stats`] with the deployment's keys and every query (the querier's secret, the
/// evidence received, the result) in the SQLite file `store`: after a node restart on the same
/// ledger, a doctor's pending query goes on and a decided one still shows its result
/// (`vigil_stats_service::store`).
pub async fn start_demo_stats_stored(
    node: &Arc<Node>,
    admin: Arc<Signer>,
    dps: u32,
    rows: usize,
    store: Option<std::path::PathBuf>,
) -> Result<(), StatsError> {
    let ledger = node.ledger().clone();
    let setup_admin = admin.clone();
    let service = tokio::task::spawn_blocking(move || {
        let data = Databases::synthetic(dps, rows)?;
        let store = store.as_deref().map(QueryStore::open).transpose()?;
        StatsService::setup_with_store(
            ledger,
            setup_admin.as_ref(),
            StatsConfig::demo(2),
            Box::new(data),
            store,
        )
    })
    .await
    .map_err(|_| StatsError::Task)??;
    service.wait_ready(admin.as_ref(), 600).await?;
    if node.enable_stats(Arc::new(service)) {
        Ok(())
    } else {
        Err(StatsError::AlreadyEnabled)
    }
}

pub(crate) fn routes() -> axum::Router<Arc<Node>> {
    axum::Router::new()
        .route("/api/queries", get(list_queries).post(submit_query))
        .route("/api/queries/{id}", get(query_status))
}

fn doctor(node: &Node, caller: &Caller) -> Result<Arc<Signer>, ApiError> {
    let forbidden = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this needs one of the roles: doctor",
        )
    };
    match &caller.0 {
        Principal::Staff { signer, .. }
            if node
                .ledger
                .snapshot()
                .view()
                .has_role(signer.public(), Role::Doctor) =>
        {
            Ok(signer.clone())
        }
        _ => Err(forbidden()),
    }
}

fn enabled(node: &Node) -> Result<&Arc<Stats>, ApiError> {
    node.stats.get().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stats_disabled",
            "no private statistics deployment runs on this node",
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    /// count|sum|mean|variance|std|histogram|min|max|median|pNN.
    stat: String,
    /// hr|rr.
    metric: String,
    /// Unix seconds; default: the synthetic data's week.
    from: Option<i64>,
    to: Option<i64>,
    /// DP ids; default: every DP.
    dps: Option<Vec<u32>>,
    /// Histogram bin edges; default per metric.
    bins: Option<Vec<u32>>,
    cohort: Option<Vec<String>>,
}

async fn submit_query(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Json(body): Json<QueryBody>,
) -> Result<impl IntoResponse, ApiError> {
    let signer = doctor(&node, &caller)?;
    let stats = enabled(&node)?.clone();
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m);
    let statistic: Statistic = body.stat.parse().map_err(|e| bad(format!("stat: {e}")))?;
    let metric: Metric = body
        .metric
        .parse()
        .map_err(|e| bad(format!("metric: {e}")))?;
    let request = QueryRequest {
        statistic,
        metric,
        from_s: body.from.unwrap_or(DATA_START_S),
        to_s: body.to.unwrap_or(DATA_START_S + DATA_SPAN_S),
        dps: body.dps.unwrap_or_default(),
        edges: body.bins.unwrap_or_default(),
        cohort: body.cohort.unwrap_or_default(),
    };
    if let Some(unknown) = request
        .dps
        .iter()
        .find(|d| !stats.service.dps().contains(d))
    {
        return Err(bad(format!("no data provider {unknown}")));
    }
    let service = stats.service.clone();
    let submitter = signer.clone();
    let id =
        tokio::task::spawn_blocking(move || service.submit_query(submitter.as_ref(), &request))
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "query task failed",
                )
            })?
            .map_err(|e| match e {
                vigil_stats_service::Error::Ledger(m) => {
                    ApiError::new(StatusCode::CONFLICT, "rejected", m)
                }
                e => bad(e.to_string()),
            })?;
    {
        let mut owners = stats.owners.lock();
        if owners.len() >= OWNERS_MAX {
            // The service forgets its oldest queries; so do we.
            owners.retain(|id, _| stats.service.query(id).is_some());
        }
        owners.insert(id, signer.public().clone());
    }
    Ok((StatusCode::ACCEPTED, Json(status_json(&stats, &id))))
}

async fn query_status(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JsonValue>, ApiError> {
    let signer = doctor(&node, &caller)?;
    let stats = enabled(&node)?;
    let mut raw = [0u8; 32];
    hex::decode_to_slice(&id, &mut raw).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "a query id is 64 hex digits",
        )
    })?;
    let id = TxId(raw);
    match owner(&node, stats, &id) {
        Some(owner) if &owner == signer.public() => {}
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "only the doctor who asked reads a query's result",
            ));
        }
        None => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such query on this node",
            ));
        }
    }
    Ok(Json(status_json(stats, &id)))
}

async fn list_queries(
    State(node): State<Arc<Node>>,
    caller: Caller,
) -> Result<Json<JsonValue>, ApiError> {
    let signer = doctor(&node, &caller)?;
    let stats = enabled(&node)?;
    let mut mine: Vec<QueryId> = stats
        .service
        .tracked()
        .into_iter()
        .filter(|id| owner(&node, stats, id).as_ref() == Some(signer.public()))
        .collect();
    // Newest first: by the height the ledger recorded them at.
    let snapshot = node.ledger.snapshot();
    let heights: HashMap<QueryId, u64> = mine
        .iter()
        .map(|id| (*id, snapshot.query(id).map_or(u64::MAX, |r| r.height)))
        .collect();
    mine.sort_by_key(|id| std::cmp::Reverse(heights.get(id).copied().unwrap_or(u64::MAX)));
    mine.truncate(LISTED_MAX);
    let queries: Vec<JsonValue> = mine.iter().map(|id| status_json(stats, id)).collect();
    Ok(Json(
        json!({"dps": stats.service.dps(), "queries": queries}),
    ))
}

/// Who asked a query this node tracks: remembered at submission, or, for a query the service
/// brought back from its store after a restart, the signer the ledger recorded.
fn owner(node: &Node, stats: &Stats, id: &QueryId) -> Option<PublicKey> {
    if let Some(o) = stats.owners.lock().get(id) {
        return Some(o.clone());
    }
    stats.service.query(id)?;
    node.ledger.snapshot().query(id).map(|r| r.querier.clone())
}

fn stat_name(s: Statistic) -> String {
    match s {
        Statistic::Count => "count".into(),
        Statistic::Sum => "sum".into(),
        Statistic::Mean => "mean".into(),
        Statistic::Variance => "variance".into(),
        Statistic::StdDev => "std".into(),
        Statistic::Histogram => "histogram".into(),
        Statistic::Min => "min".into(),
        Statistic::Max => "max".into(),
        Statistic::Quantile(500) => "median".into(),
        Statistic::Quantile(q) => format!("p{}", q / 10),
    }
}

fn u(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

fn result_json(
    stat: &StatResult,
    q: &Query,
    agg: &vigil_privstats::querier::Aggregates,
) -> JsonValue {
    let bin = |b: &Option<(u32, u32)>| b.map(|(lo, hi)| json!([lo, hi]));
    let value = match stat {
        StatResult::Count(c) => json!(u(*c)),
        StatResult::Sum(s) => json!(u(*s)),
        StatResult::Mean { value, .. } | StatResult::Variance { value, .. } => json!(value),
        StatResult::StdDev(v) => json!(v),
        StatResult::Histogram { bins, .. } => json!(bins.iter().map(|b| u(*b)).collect::<Vec<_>>()),
        StatResult::Quantile { bin: b, .. } | StatResult::Min(b) | StatResult::Max(b) => {
            json!(bin(b))
        }
    };
    let outside = match stat {
        StatResult::Histogram { outside, .. } => Some(u(*outside)),
        _ => None,
    };
    json!({
        "value": value,
        "count": u(agg.count),
        "sum": u(agg.sum),
        "sumsq": u(agg.sumsq),
        "bins": agg.bins.iter().map(|b| u(*b)).collect::<Vec<_>>(),
        "edges": q.edges,
        "outside": outside,
    })
}

fn status_json(stats: &Stats, id: &QueryId) -> JsonValue {
    let Some(query) = stats.service.query(id) else {
        return json!({"id": id.to_string(), "status": "unknown"});
    };
    let mut out = json!({
        "id": id.to_string(),
        "stat": stat_name(query.statistic),
        "metric": match query.metric { Metric::Hr => "hr", Metric::Rr => "rr" },
        "from": query.from_s,
        "to": query.to_s,
        "dps": query.dps,
        "bins": query.edges,
    });
    let extra = match stats.service.status(id) {
        None => json!({"status": "unknown"}),
        Some(QueryStatus::Pending {
            stage,
            verdicts,
            valid_verdicts,
        }) => json!({
            "status": "pending",
            "stage": stage.name(),
            "verdicts": verdicts,
            "valid_verdicts": valid_verdicts,
        }),
        Some(QueryStatus::Accepted {
            statistic,
            aggregates,
            verdicts,
        }) => json!({
            "status": "accepted",
            "verdicts": verdicts,
            "result": result_json(&statistic, &query, &aggregates),
        }),
        Some(QueryStatus::Rejected { reason, failed }) => json!({
            "status": "rejected",
            "reason": reason,
            "failed": failed,
        }),
    };
    if let (Some(o), Some(e)) = (out.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    out
}
