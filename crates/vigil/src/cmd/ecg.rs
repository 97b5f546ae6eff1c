//! `vigil ecg ...` and `vigil bench ecg`.

use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum Command {
    /// Print one detected R-peak sample index per line.
    Detect {
        /// WFDB record path without extension.
        record: std::path::PathBuf,
    },
}

#[derive(Args)]
pub struct BenchArgs {}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Detect { record } => anyhow::bail!("not yet built: {}", record.display()),
    }
}

pub fn bench(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet built")
}
