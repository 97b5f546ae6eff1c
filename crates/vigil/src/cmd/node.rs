//! `vigil node --config FILE`: one ledger validator over authenticated p2p on real sockets, with
//! its storage in the configured data directory. Stops on SIGINT/SIGTERM (storage is
//! crash-safe: a restarted validator resumes from its last finalized block).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use commonware_runtime::{Clock as _, Runner as _, Supervisor as _, tokio};
use vigil_ledger::{
    config::{DATA_DIR_GENESIS, NODE_PARTITION_PREFIX, NodeConfig},
    net::{self, NetConfig},
    node::{Timing, ValidatorConfig},
};

#[derive(Args)]
pub struct NodeArgs {
    /// Node configuration (TOML: key_file, genesis, data_dir, optional listen).
    #[arg(long)]
    config: PathBuf,
    /// Seconds between status lines (height, mempool).
    #[arg(long, default_value_t = 5)]
    status_every_s: u64,
}

pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    let config = NodeConfig::load(&args.config)
        .with_context(|| format!("loading {}", args.config.display()))?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    // Keep the genesis next to the chain, so `vigil ledger verify DIR` needs nothing else; a
    // data directory started with another genesis is refused.
    let copy = config.data_dir.join(DATA_DIR_GENESIS);
    match std::fs::read_to_string(&copy) {
        Ok(existing) => anyhow::ensure!(
            existing == config.genesis_text,
            "{} holds a different genesis than the configuration",
            copy.display()
        ),
        Err(_) => std::fs::write(&copy, &config.genesis_text)
            .with_context(|| format!("writing {}", copy.display()))?,
    }
    let status_every = Duration::from_secs(args.status_every_s.max(1));
    let runtime = tokio::Config::new().with_storage_directory(config.data_dir.join("store"));
    tokio::Runner::new(runtime).start(|context| async move {
        let me = vigil_ledger::keys::public_hex(&commonware_cryptography::Signer::public_key(
            &config.key,
        ));
        let validator = ValidatorConfig {
            key: config.key,
            genesis: config.genesis.genesis.clone(),
            partition_prefix: NODE_PARTITION_PREFIX.into(),
            timing: Timing::default(),
            limits: Default::default(),
            fault: None,
        };
        let net = NetConfig {
            listen: config.listen,
            peers: config.genesis.peers.clone(),
        };
        let running = net::start(context.child("node"), validator, net).await;
        println!(
            "validator {me} listening on {} ({} validators), chain {}",
            config.listen,
            config.genesis.peers.len(),
            hex_id(&running.ledger.chain_id())
        );
        loop {
            context.sleep(status_every).await;
            let (height, digest) = running.ledger.finalized();
            println!(
                "finalized height={height} digest={digest} mempool={}",
                running.ledger.mempool_len()
            );
            if let Some(reason) = running.ledger.diverged() {
                eprintln!("error: state diverged: {reason}");
                std::process::exit(2);
            }
        }
    })
}

fn hex_id(id: &[u8; 32]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}
