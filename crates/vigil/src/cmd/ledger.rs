//! `vigil bench ledger`: alert throughput and submit-to-finalized latency of 4 validators.

use clap::Args;
use vigil_ledger::bench::{self, BenchConfig};

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
    let report = bench::simulated(config);
    println!(
        "4 validators, simulated network: links {} ms +- {} ms, seed {}",
        args.latency_ms, args.jitter_ms, args.seed
    );
    println!("  alerts finalized   {}", report.alerts);
    println!("  blocks             {}", report.blocks);
    println!("  simulated seconds  {:.2}", report.seconds);
    println!("  wall seconds       {:.2}", wall.elapsed().as_secs_f64());
    println!("  (simulated time: CPU cost does not advance the clock)");
    println!(
        "mode=simulated validators=4 alerts={} tx_per_s={:.0} p50_ms={:.0} p99_ms={:.0}",
        report.alerts, report.tx_per_s, report.p50_ms, report.p99_ms
    );
    Ok(())
}
