//! The protocol alone in one process, without a ledger, for `vigil bench privstats` (and the DP
//! databases `vigil query` and the tests open): DP databases on disk (generated when missing), a
//! [`Network`] of servers and verifying nodes, a querier, and timings of every step. `vigil
//! query` itself goes through a ledger: the `local` module.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::db::{DpDatabase, GeneratorConfig, generate};
use crate::error::Result;
use vigil_privstats::dp::{DpResponse, PlainAnswer};
use vigil_privstats::elgamal::KeyPair;
use vigil_privstats::encoding::Canonical;
use vigil_privstats::network::Network;
use vigil_privstats::querier::{
    Aggregates, BABY_BITS, DecryptionTable, GIANT_BITS, Querier, StatResult,
};
use vigil_privstats::query::{DpId, Metric, Query, Statistic};
use vigil_privstats::verify::Verdict;

/// Start of the generated data (a Monday, 00:00 UTC) and its length (7 days).
pub const DATA_START_S: i64 = 1_700_006_400;
pub const DATA_SPAN_S: i64 = 7 * 86_400;
/// DP threads used to encrypt in the one-process simulation (a limit on everything).
pub const DP_THREADS_MAX: usize = 16;

/// Path of DP `db`'s database in `dir`.
pub fn db_path(dir: &Path, db: u32, rows: usize) -> PathBuf {
    dir.join(format!("dp-{db}-{rows}.sqlite"))
}

/// Opens DP database `db`, generating `rows` synthetic rows (seeded by `db`) if it is missing.
/// Returns the database and whether it was generated now.
pub fn open_or_generate(dir: &Path, db: u32, rows: usize) -> Result<(DpDatabase, bool)> {
    std::fs::create_dir_all(dir)
        .map_err(|e| crate::Error::Param(format!("{}: {e}", dir.display())))?;
    let path = db_path(dir, db, rows);
    let fresh = !path.exists();
    let tmp = path.with_extension("tmp");
    if fresh {
        let _ = std::fs::remove_file(&tmp);
        let mut d = DpDatabase::open(&tmp)?;
        let cfg = GeneratorConfig {
            rows,
            seed: u64::from(db),
            prefix: format!("dp{db}-p"),
            start_s: DATA_START_S,
            ..Default::default()
        };
        d.insert(generate(&cfg))?;
        drop(d);
        std::fs::rename(&tmp, &path)
            .map_err(|e| crate::Error::Param(format!("{}: {e}", path.display())))?;
    }
    Ok((DpDatabase::open(&path)?, fresh))
}

/// Timings and sizes of one run.
#[derive(Clone, Debug, Default)]
pub struct Timings {
    pub dps: usize,
    /// Per-DP local query time: mean and max.
    pub dp_query_mean: Duration,
    pub dp_query_max: Duration,
    /// Per-DP encryption + proofs: mean and max.
    pub dp_encrypt_mean: Duration,
    pub dp_encrypt_median: Duration,
    pub dp_encrypt_max: Duration,
    /// Bytes of one DP response (canonical encoding).
    pub response_bytes: usize,
    /// All servers' aggregation, longest server.
    pub aggregate_max: Duration,
    /// Key switching, longest server.
    pub keyswitch_max: Duration,
    /// One verifying node over all evidence.
    pub verify_total: Duration,
    /// Querier: share combination + BSGS decryption + statistic.
    pub decrypt: Duration,
    /// Critical path with DPs and servers working in parallel: max DP (query + encrypt) + max
    /// aggregation + max key switch + one verifying node + decryption.
    pub end_to_end: Duration,
    /// Wall time of the whole simulation in this process.
    pub wall: Duration,
}

/// Everything a run produced.
pub struct Outcome {
    pub query: Query,
    pub aggregates: Aggregates,
    pub statistic: StatResult,
    pub verdicts: Vec<Verdict>,
    pub timings: Timings,
}

/// Runs a query end to end. `answer_of(dp)` is the DP's local query (timed); each DP proves on
/// `threads` threads and is timed alone.
pub fn run(
    net: &Network,
    querier: &Querier,
    query: &Query,
    answer_of: &mut dyn FnMut(DpId) -> Result<PlainAnswer>,
    threads: usize,
) -> Result<Outcome> {
    let wall = Instant::now();
    let mut t = Timings {
        dps: query.dps.len(),
        ..Default::default()
    };
    let mut answers = Vec::with_capacity(query.dps.len());
    let mut query_times = Vec::new();
    for &dp in &query.dps {
        let s = Instant::now();
        answers.push((dp, answer_of(dp)?));
        query_times.push(s.elapsed());
    }
    // Each DP is one device proving on `threads` cores; DPs take turns, so that each one's time
    // is what it would be alone on its own hardware (the critical path below assumes DPs work
    // in parallel).
    let threads = threads.clamp(1, DP_THREADS_MAX);
    let mut rng = rand::thread_rng();
    let mut responses = Vec::with_capacity(answers.len());
    let mut enc_times = Vec::with_capacity(answers.len());
    for (dp, a) in &answers {
        let s = Instant::now();
        responses.push(DpResponse::create_with_threads(
            query,
            &net.key,
            *dp,
            net.route(*dp)?,
            a,
            threads,
            &mut rng,
        )?);
        enc_times.push(s.elapsed());
    }
    let stats = |v: &[Duration]| {
        (
            v.iter().sum::<Duration>() / v.len().max(1) as u32,
            v.iter().copied().max().unwrap_or_default(),
        )
    };
    (t.dp_query_mean, t.dp_query_max) = stats(&query_times);
    (t.dp_encrypt_mean, t.dp_encrypt_max) = stats(&enc_times);
    let mut sorted = enc_times.clone();
    sorted.sort_unstable();
    t.dp_encrypt_median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
    t.response_bytes = responses.first().map_or(0, |r| r.to_bytes().len());

    let mut aggregates = Vec::new();
    for s in net
        .servers
        .iter()
        .filter(|s| !net.offline.contains(&s.id()))
    {
        let start = Instant::now();
        let mine: Vec<&DpResponse> = responses.iter().filter(|r| r.server == s.id()).collect();
        aggregates.push(s.aggregate(query, &mine)?);
        t.aggregate_max = t.aggregate_max.max(start.elapsed());
    }
    let start = Instant::now();
    let tot = vigil_privstats::server::total(query.digits(), &aggregates);
    let cross = start.elapsed();
    let mut shares = Vec::new();
    for s in net
        .servers
        .iter()
        .filter(|s| !net.offline.contains(&s.id()))
    {
        let start = Instant::now();
        shares.push(s.key_switch(query, &tot, &mut rng));
        t.keyswitch_max = t.keyswitch_max.max(start.elapsed() + cross);
    }
    let start = Instant::now();
    let verdicts = net.verify(query, &responses, &aggregates, &shares);
    t.verify_total = start.elapsed() / net.verifiers.max(1);
    let start = Instant::now();
    let (aggregates, statistic) = querier.result(
        query,
        &net.key,
        &aggregates,
        &shares,
        &verdicts,
        net.verifiers as usize,
    )?;
    t.decrypt = start.elapsed();
    let dp_path = query_times
        .iter()
        .zip(&enc_times)
        .map(|(a, b)| *a + *b)
        .max()
        .unwrap_or_default();
    t.end_to_end = dp_path + t.aggregate_max + t.keyswitch_max + t.verify_total + t.decrypt;
    t.wall = wall.elapsed();
    Ok(Outcome {
        query: query.clone(),
        aggregates,
        statistic,
        verdicts,
        timings: t,
    })
}

/// A querier with the default table (2^17 baby steps): built in well under a second.
pub fn default_querier() -> (Querier, Duration) {
    let start = Instant::now();
    let table = DecryptionTable::new(BABY_BITS, GIANT_BITS);
    (
        Querier::new(KeyPair::generate(&mut rand::thread_rng()), table),
        start.elapsed(),
    )
}

/// Builds a query over the default data window.
pub fn make_query(
    net: &Network,
    querier: &Querier,
    statistic: Statistic,
    metric: Metric,
    dps: Vec<DpId>,
) -> Query {
    let edges = if statistic.needs_bins() {
        metric.default_edges()
    } else {
        vec![]
    };
    Query {
        nonce: rand::random(),
        querier: querier.keypair.public,
        key_id: net.key.id(),
        metric,
        statistic,
        from_s: DATA_START_S,
        to_s: DATA_START_S + DATA_SPAN_S,
        cohort: vec![],
        dps,
        edges,
    }
}
