//! `vigil bench ingest`: one node's ingestion throughput and its alert latency with four
//! validators, all in this process on 127.0.0.1. Throughput is measured at the node's
//! ingestion path (what the MQTT loop and the HTTP route both call), latency from a device's
//! MQTT publish to the alert on the operators' SSE stream.

use clap::Args;

use super::bench_node::on_bench_node;
use super::ingest_bench::{IngestBenchConfig, LatencyProbe, ingest};

#[derive(Args)]
pub struct BenchArgs {
    /// Simulated people, each with one thermometer and one threshold contract.
    #[arg(long, default_value_t = 200)]
    pub people: usize,
    /// Signed packs ingested per throughput round (each round's records take about 100 bytes
    /// of disk per reading under the system's temporary directory until the run ends).
    #[arg(long, default_value_t = 10_000)]
    pub packs: usize,
    /// Readings per pack.
    #[arg(long, default_value_t = 10)]
    pub readings_per_pack: usize,
    /// Alerts timed from MQTT publish to the SSE stream (at most one per person).
    #[arg(long, default_value_t = 50)]
    pub alerts: usize,
    /// Ingesting threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Packs handed to the node at once, as the MQTT loop hands it what is waiting (1 = one
    /// pack per call, one commit per pack).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Throughput rounds; the median round is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.people >= 1 && args.alerts <= args.people,
        "--alerts must not exceed --people"
    );
    let config = IngestBenchConfig {
        people: args.people,
        packs: args.packs,
        readings_per_pack: args.readings_per_pack,
        alerts: args.alerts,
        threads: args.threads,
        batch: args.batch,
        rounds: args.rounds,
    };
    let report = on_bench_node("ingest", move |bench| async move {
        let probe = LatencyProbe {
            mqtt: bench.mqtt,
            api: bench.api,
            token: bench.token,
        };
        ingest(bench.node, &bench.operator, &config, &probe)
            .await
            .map_err(anyhow::Error::msg)
    })?;
    println!(
        "ingest bench: 4 validators (authenticated p2p on 127.0.0.1), one node, {} threads, \
         batches of {} packs of {} readings, median of {} rounds",
        args.threads, args.batch, args.readings_per_pack, args.rounds
    );
    let rounds: Vec<String> = report
        .rounds_per_s
        .iter()
        .map(|r| format!("{r:.0}"))
        .collect();
    println!("{:<34} {:>12}", "readings/s per round", rounds.join(" "));
    println!("{:<34} {:>12}", "readings accepted", report.readings);
    println!(
        "{:<34} {:>12.2}",
        "median round wall time (s)", report.ingest_s
    );
    println!(
        "{:<34} {:>12.0}",
        "readings/s (one node, median)", report.readings_per_s
    );
    println!("{:<34} {:>12}", "alerts timed", report.alerts);
    println!(
        "{:<34} {:>12.1}",
        "MQTT publish -> SSE alert p50 (ms)", report.alert_p50_ms
    );
    println!(
        "{:<34} {:>12.1}",
        "MQTT publish -> SSE alert p99 (ms)", report.alert_p99_ms
    );
    println!(
        "readings_per_s={:.0} alert_p50_ms={:.1} alert_p99_ms={:.1} readings={} alerts={}",
        report.readings_per_s,
        report.alert_p50_ms,
        report.alert_p99_ms,
        report.readings,
        report.alerts
    );
    Ok(())
}
