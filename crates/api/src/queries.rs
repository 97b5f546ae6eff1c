//! Private statistics for doctors: the HTTP side of the node's `vigil_stats_service::ledger`
//! deployment ([`vigil_node::stats`]).
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

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};
use vigil_ledger::signer::Signer;
use vigil_ledger::tx::{QueryId, TxId};
use vigil_node::Node;
use vigil_node::stats::Stats;
use vigil_node::users::Principal;
use vigil_privstats::querier::StatResult;
use vigil_privstats::query::{Metric, Query, Statistic};
use vigil_stats_service::ledger::{QueryRequest, QueryStatus};
use vigil_stats_service::runner::{DATA_SPAN_S, DATA_START_S};

use crate::shared::{ApiError, Caller, QUERIERS, Shared};

/// Queries one doctor's listing returns at most.
const LISTED_MAX: usize = 100;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/queries", get(list_queries).post(submit_query))
        .route("/api/queries/{id}", get(query_status))
}

/// The calling doctor's identity, which signs their queries.
fn doctor(node: &Node, caller: &Caller) -> Result<Arc<Signer>, ApiError> {
    caller.require(node, QUERIERS)?;
    match &caller.0 {
        Principal::Staff { signer, .. } => Ok(signer.clone()),
        Principal::Patient { .. } => Err(ApiError::forbidden(QUERIERS)),
    }
}

fn enabled(node: &Node) -> Result<&Arc<Stats>, ApiError> {
    node.stats().ok_or_else(|| {
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
    State(node): State<Shared>,
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
        .find(|d| !stats.service().dps().contains(d))
    {
        return Err(bad(format!("no data provider {unknown}")));
    }
    let service = stats.service().clone();
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
    stats.remember_owner(id, signer.public().clone());
    Ok((StatusCode::ACCEPTED, Json(status_json(&stats, &id))))
}

async fn query_status(
    State(node): State<Shared>,
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
    match stats.owner(node.ledger(), &id) {
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
    State(node): State<Shared>,
    caller: Caller,
) -> Result<Json<JsonValue>, ApiError> {
    let signer = doctor(&node, &caller)?;
    let stats = enabled(&node)?;
    let mut mine: Vec<QueryId> = stats
        .service()
        .tracked()
        .into_iter()
        .filter(|id| stats.owner(node.ledger(), id).as_ref() == Some(signer.public()))
        .collect();
    // Newest first: by the height the ledger recorded them at.
    let snapshot = node.ledger().snapshot();
    let heights: HashMap<QueryId, u64> = mine
        .iter()
        .map(|id| (*id, snapshot.query(id).map_or(u64::MAX, |r| r.height)))
        .collect();
    mine.sort_by_key(|id| std::cmp::Reverse(heights.get(id).copied().unwrap_or(u64::MAX)));
    mine.truncate(LISTED_MAX);
    let queries: Vec<JsonValue> = mine.iter().map(|id| status_json(stats, id)).collect();
    Ok(Json(
        json!({"dps": stats.service().dps(), "queries": queries}),
    ))
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
    let Some(query) = stats.service().query(id) else {
        return json!({"id": id.to_string(), "status": "unknown"});
    };
    let mut out = json!({
        "id": id.to_string(),
        "stat": query.statistic.to_string(),
        "metric": query.metric.to_string(),
        "from": query.from_s,
        "to": query.to_s,
        "dps": query.dps,
        "bins": query.edges,
    });
    let extra = match stats.service().status(id) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A query's status shows the statistic and metric under the names a doctor posts.
    #[test]
    fn statistics_and_metrics_parse_back_from_their_names() {
        let statistics = [
            Statistic::Count,
            Statistic::Sum,
            Statistic::Mean,
            Statistic::Variance,
            Statistic::StdDev,
            Statistic::Histogram,
            Statistic::Min,
            Statistic::Max,
            Statistic::Quantile(500),
            Statistic::Quantile(900),
            Statistic::Quantile(0),
            Statistic::Quantile(1000),
        ];
        for statistic in statistics {
            let name = statistic.to_string();
            assert_eq!(name.parse::<Statistic>().ok(), Some(statistic), "{name}");
        }
        for metric in [Metric::Hr, Metric::Rr] {
            assert_eq!(metric.to_string().parse::<Metric>().ok(), Some(metric));
        }
    }
}
