//! `vigil node --config FILE`: one ledger validator over authenticated p2p on real sockets, with
//! its storage in the configured data directory. Stops on SIGINT/SIGTERM (storage is
//! crash-safe: a restarted validator resumes from its last finalized block).
//!
//! With a `[service]` table, the same process also runs the Vigil node on that validator's
//! finalized state: ingestion (MQTT, embedded broker or an external one such as mosquitto, and
//! HTTP), the encrypted health record, the monitor contracts and the HTTP API. The file is read
//! by the libraries that own it: the ledger's part by `vigil_ledger::config`, the `[service]`
//! table by `vigil_node::config`; this command only applies the MQTT options on top.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use commonware_runtime::{Clock as _, Runner as _, Supervisor as _, tokio};
use vigil_ledger::{
    config::{DATA_DIR_GENESIS, NODE_PARTITION_PREFIX, NodeConfig},
    net::{self, NetConfig},
    node::{Timing, ValidatorConfig},
};
use vigil_node::config::ServiceFile;
use vigil_node::{MqttMode, NodeConfig as ServiceConfig};

#[derive(Args)]
pub struct NodeArgs {
    /// Node configuration (TOML: key_file, genesis, data_dir, optional listen, optional
    /// `[service]`).
    #[arg(long)]
    config: PathBuf,
    /// Seconds between status lines (height, mempool).
    #[arg(long, default_value_t = 5)]
    status_every_s: u64,
    /// Use this external MQTT broker (`HOST:PORT`, e.g. mosquitto) instead of the configured
    /// one; needs `[service]`.
    #[arg(long, conflicts_with_all = ["mqtt_listen", "no_mqtt"])]
    mqtt_broker: Option<String>,
    /// Run the embedded MQTT broker on this address instead of the configured one.
    #[arg(long, conflicts_with = "no_mqtt")]
    mqtt_listen: Option<SocketAddr>,
    /// No MQTT at all (HTTP ingestion only).
    #[arg(long)]
    no_mqtt: bool,
}

pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    let (config, service) =
        load(&args.config).with_context(|| format!("loading {}", args.config.display()))?;
    let service = match service {
        Some(service) => Some(service_config(
            service,
            &args,
            config.data_dir.join(SERVICE_DIR),
        )?),
        None if args.mqtt_broker.is_some() || args.mqtt_listen.is_some() || args.no_mqtt => {
            anyhow::bail!("MQTT options need a [service] table in the configuration")
        }
        None => None,
    };
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
            hex::encode(running.ledger.chain_id())
        );
        // Kept alive for the life of the process: it owns the API and ingestion tasks.
        let _service = match service {
            Some((service, http_listen, https)) => {
                let mqtt = service.mqtt.clone();
                let started = vigil_api::start(running.ledger.clone(), service, http_listen).await;
                let (node, api) = match started {
                    Ok(started) => started,
                    Err(error) => {
                        eprintln!("error: starting the node service: {error}");
                        std::process::exit(1);
                    }
                };
                println!("node API on http://{api}");
                if let Some((listen, server)) = https {
                    match vigil_api::serve_tls(node.clone(), listen, server).await {
                        Ok(addr) => println!("node API on https://{addr}"),
                        Err(error) => {
                            eprintln!("error: starting HTTPS: {error}");
                            std::process::exit(1);
                        }
                    }
                }
                println!(
                    "node key for devices (vigil device --node-key): {}",
                    node.message_public_key()
                );
                match mqtt {
                    MqttMode::Embedded(addr) => println!("MQTT: embedded broker on {addr}"),
                    MqttMode::EmbeddedOn(_) => {
                        let plain = node.mqtt_addr().map(|a| a.to_string());
                        let tls = node.mqtt_tls_addr().map(|a| a.to_string());
                        println!(
                            "MQTT: embedded broker on {} (in clear), {} (TLS)",
                            plain.as_deref().unwrap_or("-"),
                            tls.as_deref().unwrap_or("-")
                        );
                    }
                    MqttMode::External { host, port } => {
                        println!("MQTT: external broker at {host}:{port}")
                    }
                    MqttMode::Disabled => println!("MQTT: disabled"),
                }
                Some(node)
            }
            None => None,
        };
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

/// The node service's directory inside the validator's data directory.
const SERVICE_DIR: &str = "node";

/// Reads the validator's configuration and its optional `[service]` table.
fn load(path: &Path) -> anyhow::Result<(NodeConfig, Option<ServiceFile>)> {
    let (config, service) = NodeConfig::load_with_section(path, "service")?;
    let service = service.map(ServiceFile::from_toml).transpose()?;
    Ok((config, service))
}

/// The node service, its HTTP listener (loopback) and its HTTPS listener with its certificate.
type ServiceParts = (
    ServiceConfig,
    SocketAddr,
    Option<vigil_node::config::HttpsListener>,
);

/// The node service's configuration from `[service]` and the command line.
fn service_config(
    service: ServiceFile,
    args: &NodeArgs,
    data_dir: PathBuf,
) -> anyhow::Result<ServiceParts> {
    let (http_listen, https) = service.api_listeners(&args.config)?;
    let mut config = service.into_config(&args.config, data_dir)?;
    if args.no_mqtt {
        config.mqtt = MqttMode::Disabled;
    } else if let Some(broker) = &args.mqtt_broker {
        let (host, port) = broker
            .rsplit_once(':')
            .with_context(|| format!("--mqtt-broker {broker}: expected HOST:PORT"))?;
        let port = port
            .parse()
            .with_context(|| format!("--mqtt-broker {broker}: bad port"))?;
        anyhow::ensure!(
            vigil_node::config::is_loopback_host(host),
            "--mqtt-broker {broker}: the link to an external broker is in clear and without \
             credentials, so only a broker on this host (127.0.0.1, ::1, localhost)"
        );
        config.mqtt = MqttMode::External {
            host: host.trim_matches(['[', ']']).to_owned(),
            port,
        };
    } else if let Some(listen) = args.mqtt_listen {
        anyhow::ensure!(
            listen.ip().is_loopback(),
            "--mqtt-listen {listen}: MQTT in clear only on a loopback address (use \
             [service.mqtt] tls_listen for others)"
        );
        config.mqtt = MqttMode::Embedded(listen);
    }
    Ok((config, http_listen, https))
}
