//! `vigil query ...` and `vigil bench privstats`: private statistics over data providers.
//! `vigil query` runs servers, DPs and verifying nodes against a local ledger in this process
//! (`vigil_stats_service::local`): the query and the verdicts are transactions, and the result
//! is accepted only on finalized verdicts. The benchmark times the protocol without the ledger
//! (`vigil_stats_service::runner`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;
use vigil_privstats::network::Network;
use vigil_privstats::query::{DpId, Metric, Statistic};
use vigil_stats_service::ledger::{Databases, QueryRequest, QueryStatus, StatsConfig};
use vigil_stats_service::local;
use vigil_stats_service::runner::{self, Timings};

#[derive(Args)]
pub struct QueryArgs {
    /// count|sum|mean|variance|std|histogram|min|max|median|pNN.
    #[arg(long, default_value = "mean")]
    pub stat: String,
    /// hr|rr.
    #[arg(long, default_value = "rr")]
    pub metric: String,
    /// Window start, Unix seconds (default: start of the generated week).
    #[arg(long)]
    pub from: Option<i64>,
    /// Window end, Unix seconds, exclusive (default: end of the generated week).
    #[arg(long)]
    pub to: Option<i64>,
    /// DP ids, comma separated (default 1..=10).
    #[arg(long, value_delimiter = ',')]
    pub dps: Vec<DpId>,
    /// Patient pseudonyms to restrict to, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub cohort: Vec<String>,
    /// Histogram bin edges, comma separated (default per metric).
    #[arg(long, value_delimiter = ',')]
    pub edges: Vec<u32>,
    #[arg(long, default_value_t = 3)]
    pub servers: usize,
    #[arg(long, default_value_t = 2)]
    pub threshold: usize,
    /// Servers to simulate as down, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub offline: Vec<u32>,
    #[arg(long, default_value_t = 3)]
    pub verifiers: u32,
    /// Rows per generated DP database.
    #[arg(long, default_value_t = 302_400)]
    pub rows: usize,
    /// Directory of DP databases (generated when missing).
    #[arg(long, default_value = "target/privstats-data")]
    pub data: PathBuf,
    /// Storage of the local ledger (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub ledger_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Numbers of DPs to run, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    pub dps: Vec<usize>,
    /// Statistic measured.
    #[arg(long, default_value = "mean")]
    pub stat: String,
    #[arg(long, default_value_t = 302_400)]
    pub rows: usize,
    /// Distinct DP databases generated (DP i queries database i mod this).
    #[arg(long, default_value_t = 10)]
    pub databases: u32,
    #[arg(long, default_value = "target/privstats-data")]
    pub data: PathBuf,
    /// Threads for the simulated DPs and the verifying node.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `vigil query`: the query goes through a ledger like one from the node's API. A local
/// consortium (4 validators on loopback, storage in `--ledger-dir` or a temporary directory
/// removed afterwards) records the doctor's `StatsQuery` and the verifying nodes' verdicts, and
/// the result is shown only once the finalized verdicts accept it (`vigil_stats_service::local`).
pub fn query(args: QueryArgs) -> anyhow::Result<()> {
    let out = run_query(&args)?;
    println!(
        "query {} signed by doctor {} (ledger: asked by {}, {} verdicts, {} valid, decided at height {})",
        out.id,
        hex::encode(&out.doctor.as_ref()[..8]),
        hex::encode(&out.record_querier.as_ref()[..8]),
        out.record_verdicts,
        out.record_valid_verdicts,
        out.height
    );
    println!(
        "setup (consortium, DKG, key on the ledger) {:.1} s; query to decision {:.1} s",
        out.setup.as_secs_f64(),
        out.query_time.as_secs_f64()
    );
    match out.status {
        QueryStatus::Accepted {
            statistic,
            aggregates,
            verdicts,
        } => {
            println!("accepted on {verdicts} finalized all-valid verdicts");
            println!(
                "count={} sum={} sumsq={}",
                aggregates.count, aggregates.sum, aggregates.sumsq
            );
            println!("{statistic:?}");
            Ok(())
        }
        QueryStatus::Rejected { reason, failed } => {
            anyhow::bail!("rejected: {reason} (failed checks: {failed:?})")
        }
        QueryStatus::Pending { stage, .. } => {
            anyhow::bail!("undecided (stage {})", stage.name())
        }
    }
}

/// Runs `vigil query` and returns what the ledger decided (the command prints it).
pub fn run_query(args: &QueryArgs) -> anyhow::Result<local::LocalOutcome> {
    let statistic: Statistic = args.stat.parse()?;
    let metric: Metric = args.metric.parse()?;
    let mut dps = if args.dps.is_empty() {
        (1..=10).collect()
    } else {
        args.dps.clone()
    };
    dps.sort_unstable();
    dps.dedup();
    let mut dbs = BTreeMap::new();
    for &dp in &dps {
        let (db, fresh) = runner::open_or_generate(&args.data, dp, args.rows)?;
        if fresh {
            eprintln!(
                "generated {}",
                runner::db_path(&args.data, dp, args.rows).display()
            );
        }
        dbs.insert(dp, Mutex::new(db));
    }
    let request = QueryRequest {
        statistic,
        metric,
        from_s: args.from.unwrap_or(runner::DATA_START_S),
        to_s: args
            .to
            .unwrap_or(runner::DATA_START_S + runner::DATA_SPAN_S),
        dps,
        edges: args.edges.clone(),
        cohort: args.cohort.clone(),
    };
    let mut config = StatsConfig::demo(args.verifiers as usize);
    config.servers = args.servers;
    config.threshold = args.threshold;
    config.offline = args.offline.clone();
    let (storage, temporary) = match &args.ledger_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("vigil-query-{}", std::process::id())),
            true,
        ),
    };
    let result = local::run(local::LocalRun {
        request,
        config,
        data: Box::new(Databases(dbs)),
        storage: storage.clone(),
        workers: 2,
    });
    if temporary {
        let _ = std::fs::remove_dir_all(&storage);
    }
    Ok(result?)
}

pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let statistic: Statistic = args.stat.parse()?;
    let metric = Metric::Rr;
    let start = Instant::now();
    let mut dbs = Vec::new();
    for db in 1..=args.databases.max(1) {
        dbs.push(runner::open_or_generate(&args.data, db, args.rows)?.0);
    }
    println!(
        "{} DP databases x {} rows ready in {:.1} s ({})",
        dbs.len(),
        args.rows,
        start.elapsed().as_secs_f64(),
        args.data.display()
    );
    let mut rng = rand::thread_rng();
    let mut net = Network::new(2, 3, 1, &mut rng)?;
    net.verify_threads = args.threads;
    let (querier, table_time) = runner::default_querier();
    println!(
        "querier table: 2^17 entries, {:.1} MiB, built in {:.0} ms (once)",
        querier.table.memory_bytes() as f64 / 1048576.0,
        ms(table_time)
    );
    println!(
        "statistic {:?} of rr, 3 servers (t=2), 1 verifying node; DP i queries database i mod {}",
        statistic,
        dbs.len()
    );
    println!(
        "{:>6} {:>9} {:>10} {:>10} {:>7} {:>9} {:>9} {:>10} {:>9} {:>9} {:>11} {:>9}",
        "dps",
        "dp_q_ms",
        "dp_enc_ms",
        "enc_med_ms",
        "bytes",
        "agg_ms",
        "ks_ms",
        "verify_ms",
        "ver/dp",
        "dec_ms",
        "e2e_ms",
        "prio_ms"
    );
    let mut last: Option<Timings> = None;
    let mut prio_last = (0.0, 0.0);
    for &n in &args.dps {
        let q = runner::make_query(&net, &querier, statistic, metric, (1..=n as DpId).collect());
        let (m, from, to, edges) = (q.metric, q.from_s, q.to_s, q.edges.clone());
        let k = dbs.len() as u32;
        let out = runner::run(
            &net,
            &querier,
            &q,
            &mut |dp| dbs[((dp - 1) % k) as usize].answer(m, from, to, &[], &edges),
            args.threads,
        )?;
        let t = out.timings;
        let (prio_client, prio_total) = prio_reference(
            n,
            out.aggregates.count as usize / n,
            out.aggregates.sum as usize / n,
        )?;
        println!(
            "{:>6} {:>9.2} {:>10.2} {:>10.2} {:>7} {:>9.2} {:>9.2} {:>10.1} {:>9.3} {:>9.2} {:>11.1} {:>9.1}",
            n,
            ms(t.dp_query_mean),
            ms(t.dp_encrypt_mean),
            ms(t.dp_encrypt_median),
            t.response_bytes,
            ms(t.aggregate_max),
            ms(t.keyswitch_max),
            ms(t.verify_total),
            ms(t.verify_total) / n as f64,
            ms(t.decrypt),
            ms(t.end_to_end),
            prio_total
        );
        println!(
            "       result: {:?}; prio3 sum-vec client {:.3} ms/DP",
            out.statistic, prio_client
        );
        prio_last = (prio_client, prio_total);
        last = Some(t);
    }
    let Some(t) = last else { return Ok(()) };
    println!(
        "dps={} dp_query_ms={:.3} dp_encrypt_ms={:.3} dp_encrypt_median_ms={:.3} dp_encrypt_max_ms={:.3} response_bytes={} aggregate_ms={:.3} keyswitch_ms={:.3} verify_total_ms={:.3} verify_per_dp_ms={:.4} decrypt_ms={:.3} end_to_end_ms={:.1} wall_ms={:.1} prio3_client_ms={:.4} prio3_total_ms={:.2}",
        t.dps,
        ms(t.dp_query_mean),
        ms(t.dp_encrypt_mean),
        ms(t.dp_encrypt_median),
        ms(t.dp_encrypt_max),
        t.response_bytes,
        ms(t.aggregate_max),
        ms(t.keyswitch_max),
        ms(t.verify_total),
        ms(t.verify_total) / t.dps as f64,
        ms(t.decrypt),
        ms(t.end_to_end),
        ms(t.wall),
        prio_last.0,
        prio_last.1
    );
    Ok(())
}

/// Prio3SumVec over (count, sum) per DP with 3 aggregators: the same mean statistic. Returns
/// (client sharding ms per DP, total ms for sharding + verification + aggregation + unsharding).
fn prio_reference(dps: usize, count: usize, sum: usize) -> anyhow::Result<(f64, f64)> {
    use prio::vdaf::prio3::Prio3;
    use prio::vdaf::{Aggregator, Client, Collector, VerifyTransition};
    let vdaf = Prio3::new_sum_vec(3, (1u128 << 31) - 1, 2, 1)?;
    let verify_key: [u8; 32] = rand::random();
    let ctx = b"vigil bench";
    let start = Instant::now();
    let mut client = Duration::ZERO;
    let mut agg: Vec<_> = (0..3).map(|_| vdaf.aggregate_init(&())).collect();
    for _ in 0..dps {
        let nonce: [u8; 16] = rand::random();
        let c = Instant::now();
        let (public, inputs) = vdaf.shard(ctx, &vec![count as u128, sum as u128], &nonce)?;
        client += c.elapsed();
        let mut states = Vec::new();
        let mut shares = Vec::new();
        for (i, input) in inputs.iter().enumerate() {
            let (s, sh) = vdaf.verify_init(&verify_key, ctx, i, &(), &nonce, &public, input)?;
            states.push(s);
            shares.push(sh);
        }
        let msg = vdaf.verifier_shares_to_message(ctx, &(), shares)?;
        for (i, s) in states.into_iter().enumerate() {
            match vdaf.verify_next(ctx, s, msg.clone())? {
                VerifyTransition::Finish(out) => {
                    use prio::vdaf::Aggregatable;
                    agg[i].accumulate(&out)?;
                }
                VerifyTransition::Continue(..) => anyhow::bail!("prio3 needs one round"),
            }
        }
    }
    let result = vdaf.unshard(&(), agg, dps)?;
    anyhow::ensure!(
        result == vec![(count * dps) as u128, (sum * dps) as u128],
        "prio3 result mismatch"
    );
    Ok((ms(client) / dps as f64, ms(start.elapsed())))
}
