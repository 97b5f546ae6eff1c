//! `vigil`: the command-line program. A thin layer of argument parsing and glue over the
//! library crates; every subcommand lives in its own module under `cmd/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Private real-time monitoring of people in home isolation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A whole Vigil network in one process: 4 validators, the node, a simulated fleet, the
    /// dashboard on 127.0.0.1.
    Demo(cmd::demo::DemoArgs),
    /// Evaluate monitor contracts against readings.
    #[command(subcommand)]
    Contracts(cmd::contracts::Command),
    /// ECG: QRS detection, scoring against reference annotations, AF screening.
    #[command(subcommand)]
    Ecg(cmd::ecg::Command),
    /// The master device's side for one simulated wearable: signed packs, a durable outbox,
    /// sent over MQTT (or HTTP) until the node answers each.
    Device(cmd::device::DeviceArgs),
    /// Health record tools (`verify`).
    #[command(subcommand)]
    Ehr(cmd::ehr::Command),
    /// Write a fresh Ed25519 identity (validator, admin, gateway, …) to a key file.
    Keygen(cmd::keygen::KeygenArgs),
    /// Consortium ledger tools (`verify DIR`).
    #[command(subcommand)]
    Ledger(cmd::ledger::Command),
    /// Run one ledger validator over authenticated p2p (`--config node.toml`).
    Node(cmd::node::NodeArgs),
    /// Private statistics query over data providers: a doctor's query on an in-process ledger,
    /// answered by in-process servers, DPs and verifying nodes, accepted on finalized verdicts.
    Query(cmd::privstats::QueryArgs),
    /// Benchmarks that print a table and a final machine-readable `key=value` line.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// MQTT-publish-to-SSE alert latency on a quiet node and during a read storm (concurrent
    /// readers of one patient's readings).
    Alerts(cmd::alerts::BenchArgs),
    /// Monitor-contract evaluations per second (threshold, NEWS2, polygon geofence).
    Contracts(cmd::contracts::BenchArgs),
    /// QRS detection speed and accuracy, side by side with a Python reference detector.
    Ecg(cmd::ecg::BenchArgs),
    /// Readings/s through one node and arrival-to-finalized-alert latency with 4 validators.
    Ingest(cmd::ingest::BenchArgs),
    /// Alert transactions/s and submit-to-finalized latency of 4 ledger validators.
    Ledger(cmd::ledger::BenchArgs),
    /// Private statistics: DP encryption + proofs, aggregation, key switching, verification,
    /// decryption; Prio3 beside it.
    Privstats(cmd::privstats::BenchArgs),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => cmd::demo::run(args),
        Command::Contracts(command) => cmd::contracts::run(command),
        Command::Ecg(command) => cmd::ecg::run(command),
        Command::Device(args) => cmd::device::run(args),
        Command::Ehr(command) => cmd::ehr::run(command),
        Command::Keygen(args) => cmd::keygen::run(args),
        Command::Node(args) => cmd::node::run(args),
        Command::Ledger(command) => cmd::ledger::run(command),
        Command::Query(args) => cmd::privstats::query(args),
        Command::Bench(BenchCommand::Alerts(args)) => cmd::alerts::bench(args),
        Command::Bench(BenchCommand::Contracts(args)) => cmd::contracts::bench(args),
        Command::Bench(BenchCommand::Ecg(args)) => cmd::ecg::bench(args),
        Command::Bench(BenchCommand::Ingest(args)) => cmd::ingest::bench(args),
        Command::Bench(BenchCommand::Ledger(args)) => cmd::ledger::bench(args),
        Command::Bench(BenchCommand::Privstats(args)) => cmd::privstats::bench(args),
    }
}

/// Warnings and errors of every crate go to stderr (an operator's log: a dropped transaction,
/// an alert no evidence supports, a refused pack), unless `RUST_LOG` says otherwise.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line per cause, outermost first, as ripgrep does.
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
