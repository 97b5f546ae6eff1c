//! `vigil ledger verify DIR` and `vigil bench ledger` (alert throughput and submit-to-finalized
//! latency of 4 validators).

use std::path::PathBuf;

use super::ledger_bench::{self as bench, BenchConfig};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use vigil_ledger::config::{DATA_DIR_GENESIS, GenesisFile, NODE_PARTITION_PREFIX};

#[derive(Args)]
pub struct BenchArgs {
    /// Alerts to submit.
    #[arg(long, default_value_t = 20_000)]
    alerts: usize,
    /// Submission rate, alerts per second.
    #[arg(long, default_value_t = 10_000)]
    rate: usize,
    /// Mean one-way link latency of the simulated network, in milliseconds (20-50 ms links:
    /// mean 35, jitter 8).
    #[arg(long, default_value_t = 35)]
    latency_ms: u64,
    #[arg(long, default_value_t = 8)]
    jitter_ms: u64,
    /// `simulated` (deterministic runtime, simulated links) or `loopback` (real time: 4
    /// validators in this process on tokio over authenticated p2p on 127.0.0.1 sockets).
    #[arg(long, default_value = "simulated")]
    mode: String,
    /// Wall-clock limit of a loopback run, seconds.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// Seed of the deterministic simulation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.alerts > 0 && args.rate > 0,
        "alerts and rate must be positive"
    );
    let config = BenchConfig {
        seed: args.seed,
        alerts: args.alerts,
        rate_per_s: args.rate,
        latency_ms: args.latency_ms,
        jitter_ms: args.jitter_ms,
        ..BenchConfig::default()
    };
    let wall = std::time::Instant::now();
    if args.mode == "loopback" {
        let dir = std::env::temp_dir().join(format!("vigil-bench-ledger-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let report = bench::loopback(config, &dir, std::time::Duration::from_secs(args.timeout_s));
        let _ = std::fs::remove_dir_all(&dir);
        println!("4 validators in one process, tokio, authenticated p2p over 127.0.0.1, real time");
        println!("  alerts finalized   {} of {}", report.alerts, args.alerts);
        println!("  blocks             {}", report.blocks);
        println!("  seconds            {:.2}", report.seconds);
        println!("  wall seconds       {:.2}", wall.elapsed().as_secs_f64());
        println!(
            "  evidence           {:.0} bytes per alert, gossiped; every validator re-derives it",
            report.evidence_bytes_per_alert
        );
        if let Some(share) = report.evidence_cpu_share {
            println!(
                "  evidence CPU       {:.1} % of the process's CPU time (4 validators)",
                share * 100.0
            );
        }
        println!(
            "mode=loopback validators=4 alerts={} tx_per_s={:.0} p50_ms={:.0} p99_ms={:.0} evidence_bytes_per_alert={:.0} evidence_cpu_share={:.3}",
            report.alerts,
            report.tx_per_s,
            report.p50_ms,
            report.p99_ms,
            report.evidence_bytes_per_alert,
            report.evidence_cpu_share.unwrap_or(0.0)
        );
        return Ok(());
    }
    anyhow::ensure!(args.mode == "simulated", "--mode is simulated or loopback");
    let report = bench::simulated(config);
    println!(
        "4 validators, simulated network: links {} ms +- {} ms, seed {}",
        args.latency_ms, args.jitter_ms, args.seed
    );
    println!("  alerts finalized   {}", report.alerts);
    println!("  blocks             {}", report.blocks);
    println!("  simulated seconds  {:.2}", report.seconds);
    println!("  wall seconds       {:.2}", wall.elapsed().as_secs_f64());
    println!(
        "  evidence           {:.0} bytes per alert, gossiped; every validator re-derives it",
        report.evidence_bytes_per_alert
    );
    println!("  (simulated time: CPU cost does not advance the clock)");
    println!(
        "mode=simulated validators=4 alerts={} tx_per_s={:.0} p50_ms={:.0} p99_ms={:.0} evidence_bytes_per_alert={:.0}",
        report.alerts,
        report.tx_per_s,
        report.p50_ms,
        report.p99_ms,
        report.evidence_bytes_per_alert
    );
    Ok(())
}

#[derive(Subcommand)]
pub enum Command {
    /// Re-check a validator's whole stored chain from genesis (hash links, certificates against
    /// the validator set, signatures, state replay). Exit code 1 on any problem.
    Verify(VerifyArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The validator's data directory (as in its node.toml: holds genesis.toml and store/).
    dir: PathBuf,
    /// Genesis file (default: DIR/genesis.toml).
    #[arg(long)]
    genesis: Option<PathBuf>,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Verify(args) => verify(args),
    }
}

fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let genesis_path = args
        .genesis
        .unwrap_or_else(|| args.dir.join(DATA_DIR_GENESIS));
    let genesis = GenesisFile::load(&genesis_path)?
        .build()
        .with_context(|| format!("genesis {}", genesis_path.display()))?
        .genesis;
    let store = args.dir.join("store");
    let report = vigil_ledger::verify::verify_dir(&store, &genesis, NODE_PARTITION_PREFIX)
        .with_context(|| format!("verifying {}", args.dir.display()))?;
    println!("chain        {}", hex::encode(report.chain_id));
    println!("validators   {}", report.validators);
    println!(
        "blocks       {} (all linked, replayed, state roots match)",
        report.blocks
    );
    println!("transactions {}", report.transactions);
    println!(
        "certificates {} (each 2f+1 valid signatures)",
        report.certificates
    );
    println!(
        "certified to {} (a certificate vouches for every block up to it)",
        report.certified_height
    );
    if let Some((first, last)) = report.uncertified_tail {
        println!(
            "uncertified  {first}..={last}: stored with no certificate yet (a crash came between \
             the block and its certificate); replayed like the others, vouched for by none until \
             the validator stores the next certified block"
        );
    }
    if let Some(tip) = report.tip_digest {
        println!("tip          {tip}");
    }
    println!("state root   {}", hex::encode(report.state_root));
    let uncertified = report
        .uncertified_tail
        .map_or(0, |(first, last)| last - first + 1);
    println!(
        "ok=true blocks={} transactions={} certificates={} certified_height={} uncertified={}",
        report.blocks,
        report.transactions,
        report.certificates,
        report.certified_height,
        uncertified
    );
    Ok(())
}
