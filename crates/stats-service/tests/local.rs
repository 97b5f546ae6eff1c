//! `vigil query`'s runner end to end: a local consortium, the doctor's query on the ledger, the
//! verifying nodes' verdicts finalized, and a result equal to the plaintext over the same DP
//! databases (SQLite files, as the command uses them).

use std::collections::BTreeMap;
use std::sync::Mutex;

use vigil_privstats::query::{Metric, Statistic};
use vigil_stats_service::db::{GeneratorConfig, generate};
use vigil_stats_service::fault::Fault;
use vigil_stats_service::ledger::{Databases, QueryRequest, QueryStatus, StatsConfig};
use vigil_stats_service::local::{LocalRun, run};
use vigil_stats_service::runner::{DATA_SPAN_S, DATA_START_S, open_or_generate};

const ROWS: usize = 3_000;

fn databases(dir: &std::path::Path, dps: &[u32]) -> Databases {
    let mut out = BTreeMap::new();
    for &dp in dps {
        let (db, _) = open_or_generate(dir, dp, ROWS).expect("database");
        out.insert(dp, Mutex::new(db));
    }
    Databases(out)
}

#[test]
fn a_query_goes_through_the_ledger_and_equals_the_plaintext() {
    let dir = std::env::temp_dir().join(format!("vigil-privstats-local-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dps = vec![1, 2, 3];
    let request = QueryRequest {
        statistic: Statistic::Variance,
        metric: Metric::Hr,
        // The first 25 minutes of the generated rows (one every 10 s per patient).
        from_s: DATA_START_S,
        to_s: DATA_START_S + 1_500,
        dps: dps.clone(),
        edges: vec![],
        cohort: vec![],
    };
    let out = run(LocalRun {
        request: request.clone(),
        config: StatsConfig::demo(2),
        data: Box::new(databases(&dir.join("data"), &dps)),
        storage: dir.join("ledger"),
        workers: 2,
    })
    .expect("run");
    let QueryStatus::Accepted {
        aggregates,
        verdicts,
        ..
    } = &out.status
    else {
        panic!("rejected: {:?}", out.status);
    };
    // Decided on the ledger: the doctor's query, both verifying nodes' valid verdicts.
    assert_eq!(*verdicts, 2);
    assert_eq!(out.record_querier, out.doctor);
    assert_eq!((out.record_verdicts, out.record_valid_verdicts), (2, 2));
    assert_eq!(out.query.dps, dps);
    assert_eq!(
        (out.query.from_s, out.query.to_s),
        (request.from_s, request.to_s)
    );
    // Exactly the plaintext, computed without the DP code: the generator's rows (as
    // `open_or_generate` writes them) are regenerated and scanned here.
    let (mut count, mut sum, mut sumsq) = (0u128, 0u128, 0u128);
    for &dp in &dps {
        let config = GeneratorConfig {
            rows: ROWS,
            seed: u64::from(dp),
            prefix: format!("dp{dp}-p"),
            start_s: DATA_START_S,
            ..Default::default()
        };
        for row in generate(&config).filter(|r| r.t >= out.query.from_s && r.t < out.query.to_s) {
            let v = u128::from(match out.query.metric {
                Metric::Hr => row.hr,
                Metric::Rr => row.rr,
            });
            (count, sum, sumsq) = (count + 1, sum + v, sumsq + v * v);
        }
    }
    assert!(
        count > 0 && count < 3 * ROWS as u128,
        "a two-day window: {count}"
    );
    assert_eq!(
        (aggregates.count, aggregates.sum, aggregates.sumsq),
        (count, sum, sumsq)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same runner refuses what its verifying nodes refuse: a server altering a DP's
/// contribution is named in the finalized verdicts and the result is never shown.
#[test]
fn a_cheating_server_is_rejected_through_the_ledger() {
    let dir = std::env::temp_dir().join(format!(
        "vigil-privstats-local-cheat-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let dps = vec![1, 2];
    let request = QueryRequest {
        statistic: Statistic::Mean,
        metric: Metric::Rr,
        from_s: DATA_START_S,
        to_s: DATA_START_S + DATA_SPAN_S,
        dps: dps.clone(),
        edges: vec![],
        cohort: vec![],
    };
    let out = vigil_stats_service::local::run_with_fault(
        LocalRun {
            request,
            config: StatsConfig::demo(2),
            data: Box::new(databases(&dir.join("data"), &dps)),
            storage: dir.join("ledger"),
            workers: 2,
        },
        Fault::ServerAltersDp(1),
    )
    .expect("run");
    let QueryStatus::Rejected { failed, .. } = &out.status else {
        panic!("accepted despite a cheating server: {:?}", out.status);
    };
    // DP 1 sends to server 2.
    assert_eq!(failed, &vec!["aggregate of server 2".to_string()]);
    assert_eq!(out.record_valid_verdicts, 0);
    let _ = std::fs::remove_dir_all(&dir);
}
