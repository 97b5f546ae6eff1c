//! `vigil node --config FILE`: one ledger validator over authenticated p2p on real sockets, with
//! its storage in the configured data directory. Stops on SIGINT/SIGTERM (storage is
//! crash-safe: a restarted validator resumes from its last finalized block).
//!
//! With a `[service]` table, the same process also runs the Vigil node on that validator's
//! finalized state: ingestion (MQTT, embedded broker or an external one such as mosquitto, and
//! HTTP), the encrypted health record, the monitor contracts and the HTTP API:
//!
//! ```toml
//! [service]
//! http_listen = "127.0.0.1:8080"
//! gateway_key_file = "gateway.key"   # an identity with role `gateway` in the genesis
//! ehr_key_file = "ehr.key"           # 64 hex digits; created with the health record
//! users_file = "users.toml"          # optional: API users (`[[user]]` name, token_sha256, …)
//! [service.mqtt]
//! mode = "embedded"                  # or "external" (host, port) or "disabled"
//! listen = "127.0.0.1:1883"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use commonware_runtime::{Clock as _, Runner as _, Supervisor as _, tokio};
use serde::Deserialize;
use vigil_ledger::{
    config::{
        ConfigError, DATA_DIR_GENESIS, GenesisFile, NODE_PARTITION_PREFIX, NodeConfig, NodeFile,
    },
    keys,
    net::{self, NetConfig},
    node::{Timing, ValidatorConfig},
};
use vigil_node::signer::Signer;
use vigil_node::users::Users;
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
        // Kept alive for the life of the process: it owns the API and ingestion tasks.
        let _service = match service {
            Some((service, http_listen)) => {
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
                match mqtt {
                    MqttMode::Embedded(addr) => println!("MQTT: embedded broker on {addr}"),
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

/// The optional `[service]` table of a node configuration.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    http_listen: SocketAddr,
    gateway_key_file: PathBuf,
    ehr_key_file: PathBuf,
    #[serde(default)]
    users_file: Option<PathBuf>,
    #[serde(default)]
    mqtt: MqttFile,
}

/// Where the node's MQTT side lives, as written in `[service.mqtt]`.
#[derive(Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
enum MqttFile {
    /// The broker embedded in the node (rumqttd): nothing to install.
    Embedded {
        listen: SocketAddr,
    },
    /// An external broker (e.g. mosquitto), the node being one of its clients.
    External {
        host: String,
        port: u16,
    },
    Disabled,
}

impl Default for MqttFile {
    fn default() -> Self {
        MqttFile::Embedded {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
        }
    }
}

/// Reads the validator's configuration as [`NodeConfig::load`] does, plus the optional
/// `[service]` table. The ledger's file format refuses unknown keys, so the table is taken out
/// before the rest is handed to the ledger's types.
fn load(path: &Path) -> anyhow::Result<(NodeConfig, Option<(ServiceFile, PathBuf)>)> {
    let text = std::fs::read_to_string(path)?;
    let mut table: toml::Table = toml::from_str(&text)?;
    let base = path.parent().unwrap_or(Path::new(".")).to_owned();
    let Some(service) = table.remove("service") else {
        // No service: exactly the ledger's own loader.
        return Ok((NodeConfig::load(path)?, None));
    };
    let service = ServiceFile::deserialize(service).context("[service]")?;
    let file = NodeFile::deserialize(toml::Value::Table(table))?;
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_owned()
        } else {
            base.join(p)
        }
    };
    let key_path = resolve(&file.key_file);
    let key = keys::read_key_file(&key_path)
        .with_context(|| format!("key file {}", key_path.display()))?;
    let genesis_path = resolve(&file.genesis);
    let genesis_text = std::fs::read_to_string(&genesis_path)
        .with_context(|| format!("reading {}", genesis_path.display()))?;
    let genesis = GenesisFile::parse(&genesis_text, &genesis_path)?.build()?;
    let me = commonware_cryptography::Signer::public_key(&key);
    let mine = genesis
        .peers
        .iter()
        .find(|p| p.key == me)
        .ok_or_else(|| ConfigError::NotAValidator(keys::public_hex(&me)))?;
    let listen = file.listen.unwrap_or(mine.address);
    let config = NodeConfig {
        key,
        genesis,
        genesis_text,
        data_dir: resolve(&file.data_dir),
        listen,
    };
    Ok((config, Some((service, base))))
}

/// The node service's configuration from `[service]` and the command line.
fn service_config(
    (service, base): (ServiceFile, PathBuf),
    args: &NodeArgs,
    data_dir: PathBuf,
) -> anyhow::Result<(ServiceConfig, SocketAddr)> {
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_owned()
        } else {
            base.join(p)
        }
    };
    let gateway_path = resolve(&service.gateway_key_file);
    let gateway = keys::read_key_file(&gateway_path)
        .with_context(|| format!("gateway key file {}", gateway_path.display()))?;
    let ehr_master_key = ehr_master_key(&resolve(&service.ehr_key_file), &data_dir)?;
    let users = match &service.users_file {
        Some(path) => Users::load(&resolve(path))?,
        None => Users::default(),
    };
    let mqtt = if args.no_mqtt {
        MqttMode::Disabled
    } else if let Some(broker) = &args.mqtt_broker {
        let (host, port) = broker
            .rsplit_once(':')
            .with_context(|| format!("--mqtt-broker {broker}: expected HOST:PORT"))?;
        let port = port
            .parse()
            .with_context(|| format!("--mqtt-broker {broker}: bad port"))?;
        MqttMode::External {
            host: host.trim_matches(['[', ']']).to_owned(),
            port,
        }
    } else if let Some(listen) = args.mqtt_listen {
        MqttMode::Embedded(listen)
    } else {
        match service.mqtt {
            MqttFile::Embedded { listen } => MqttMode::Embedded(listen),
            MqttFile::External { host, port } => MqttMode::External { host, port },
            MqttFile::Disabled => MqttMode::Disabled,
        }
    };
    let config = ServiceConfig {
        data_dir,
        mqtt,
        ehr_master_key,
        gateway: Signer::new(gateway),
        users,
    };
    Ok((config, service.http_listen))
}

/// The health record's master key (64 hex digits). Created, readable by its owner only, with a
/// new health record; refused to be created for an existing one, whose data keys it wraps.
fn ehr_master_key(path: &Path, data_dir: &Path) -> anyhow::Result<vigil_ehr::SecretKey> {
    if !path.exists() {
        let record = vigil_node::ehr_path(data_dir);
        anyhow::ensure!(
            !record.exists(),
            "{} is missing but the health record {} exists: its data keys need that key",
            path.display(),
            record.display()
        );
        let key = vigil_ehr::SecretKey::random();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        std::io::Write::write_all(&mut file, hex::encode(key.to_bytes()).as_bytes())?;
        return Ok(key);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes)
        .with_context(|| format!("{}: expected 64 hex digits", path.display()))?;
    Ok(vigil_ehr::SecretKey::from_bytes(bytes))
}

fn hex_id(id: &[u8; 32]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}
