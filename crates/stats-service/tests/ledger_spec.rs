//! The ledger reads a query's cohort from the statistics protocol's canonical encoding without
//! knowing the protocol (`vigil_ledger::state::query_cohort`): this pins the layout it assumes
//! against the real encoder, so a change to `Query`'s encoding fails here, not in production.

use vigil_ledger::state::{COHORT_MIN, QuerySpecError, query_cohort};
use vigil_privstats::elgamal::KeyPair;
use vigil_privstats::encoding::Canonical as _;
use vigil_privstats::query::{Metric, Query, Statistic};

fn query(cohort: Vec<String>) -> Query {
    let mut rng = rand::thread_rng();
    Query {
        nonce: 0x0102_0304_0506_0708,
        querier: KeyPair::generate(&mut rng).public,
        key_id: [0xab; 32],
        metric: Metric::Hr,
        statistic: Statistic::Histogram,
        from_s: -5,
        to_s: 3600,
        cohort,
        dps: vec![1, 2, 3],
        edges: vec![40, 80, 120],
    }
}

#[test]
fn the_ledger_reads_the_cohort_the_protocol_encodes() {
    let names: Vec<String> = (0..COHORT_MIN + 2).map(|i| format!("dp2-p{i}")).collect();
    let spec = query(names.clone()).to_bytes();
    assert_eq!(
        query_cohort(&spec),
        Ok(names.iter().map(String::as_str).collect())
    );
    assert_eq!(query_cohort(&query(vec![]).to_bytes()), Ok(vec![]));
    assert_eq!(
        query_cohort(&query(vec!["dp2-p1".into()]).to_bytes()),
        Err(QuerySpecError::CohortTooSmall { size: 1 })
    );
}
