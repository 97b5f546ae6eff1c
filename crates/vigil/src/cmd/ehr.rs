//! `vigil ehr verify`: checks a demo's (or a node's) health record against the EHR anchors
//! finalized on its ledger, and names every altered, missing or extra record.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use commonware_cryptography::Signer as _;
use commonware_runtime::{Runner as _, Supervisor as _, tokio as cw_tokio};
use vigil_ledger::local::{LocalConfig, start_local};
use vigil_ledger::sim::Keys;

#[derive(Subcommand)]
pub enum Command {
    /// Prove every stored record against its anchor on the ledger; non-zero exit on any
    /// altered, missing or extra record. Run it while the demo is stopped.
    Verify(VerifyArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The demo's data directory (ledger storage in `ledger/`, health record in `node/`).
    #[arg(long, default_value = "./vigil-demo-data")]
    pub data_dir: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    let Command::Verify(args) = command;
    let ehr_path = vigil_node::ehr_path(&args.data_dir.join("node"));
    if !ehr_path.exists() {
        bail!("no health record at {}", ehr_path.display());
    }
    let ledger_dir = args.data_dir.join("ledger");
    // The anchors come from the finalized state the validators rebuild from their storage.
    let runtime = cw_tokio::Config::new().with_storage_directory(&ledger_dir);
    let (anchors, height) = cw_tokio::Runner::new(runtime).start(|context| async move {
        let keys = Keys::new(4, 1);
        // The demo's node signs its anchors with the first gateway key.
        let gateway = keys.gateways[0].public_key();
        let cluster = start_local(context.child("ledger"), LocalConfig::new(keys)).await;
        let ledger = &cluster.ledgers[0];
        let result = (
            vigil_node::ledger_anchors(&ledger.snapshot(), &gateway),
            ledger.finalized().0,
        );
        cluster.shutdown();
        result
    });
    // Verification needs no data key: leaves hash ciphertexts.
    let ehr = vigil_ehr::Ehr::open(&ehr_path, vigil_ehr::SecretKey::random())
        .with_context(|| format!("opening {}", ehr_path.display()))?;
    let report = ehr.verify(&anchors)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("ledger height       {height}");
        println!("anchors             {}", anchors.len());
        println!("records anchored    {}", report.anchored);
        println!("records verified    {}", report.verified);
        println!("records pending     {}", report.pending);
        println!("altered             {:?}", report.altered);
        println!("missing             {:?}", report.missing);
        println!("extra               {:?}", report.extra);
    }
    if !report.is_intact() {
        bail!(
            "health record does not match its anchors: {} altered, {} missing, {} extra",
            report.altered.len(),
            report.missing.len(),
            report.extra.len()
        );
    }
    println!("intact");
    Ok(())
}
