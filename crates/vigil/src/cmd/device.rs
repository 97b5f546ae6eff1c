//! `vigil device`: the master device's side (a phone or a Raspberry Pi gateway) for one
//! simulated wearable. It takes the wearable's readings from `vigil-sim`, signs each pack with
//! the wearable's key, keeps it in a durable SQLite outbox, and sends the outbox to the node
//! over MQTT (or HTTP) until the node answers each pack. Readings survive a restart of this
//! program (the outbox is on disk and sequence numbers never repeat) and a loss of network or
//! of the node (packs wait and are sent again); the node stores each exactly once.

use std::net::ToSocketAddrs as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use commonware_cryptography::Signer as _;
use vigil_core::{DeviceId, DeviceKey, PersonId, TimestampMs};
use vigil_gateway::http_upload::HttpUploader;
use vigil_gateway::outbox::{DeviceCredential, FlushReport, Outbox, Uploader};
use vigil_gateway::signed::NodePublicKey;
use vigil_ledger::keys;
use vigil_sim::{DeviceKind, Fleet, FleetConfig};

/// Packs one run generates, at most.
const COUNT_MAX: u64 = 10_000_000;
/// Simulation steps tried for one pack (a phone that is "off" emits nothing for a while).
const SIM_STEPS_MAX: usize = 1_000;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Kind {
    Thermometer,
    Oximeter,
    Phone,
}

impl From<Kind> for DeviceKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Thermometer => DeviceKind::Thermometer,
            Kind::Oximeter => DeviceKind::Oximeter,
            Kind::Phone => DeviceKind::Phone,
        }
    }
}

#[derive(Args)]
pub struct DeviceArgs {
    /// The node's MQTT broker (embedded or external), `HOST:PORT`.
    #[arg(long, conflicts_with = "node")]
    pub mqtt: Option<String>,
    /// With `--mqtt`: MQTT over TLS, trusting only the CA certificates in this PEM file (`vigil
    /// demo` writes its CA to `tls/ca.pem` in its data directory); the broker's certificate
    /// must name HOST.
    #[arg(long, value_name = "PEM", requires = "mqtt")]
    pub ca: Option<PathBuf>,
    /// The node's public key (64 hex digits; `vigil demo` prints it and writes it to
    /// `node-key.pub` in its data directory). With `--mqtt`, replies and alerts count only
    /// when this key signed them: anyone on the broker can publish on a device's topics.
    #[arg(long, value_name = "HEX")]
    pub node_key: Option<NodePublicKey>,
    /// The node's HTTP address, `HOST:PORT`: packs are POSTed to `/api/packs/{person}`.
    #[arg(long)]
    pub node: Option<String>,
    /// The person's pseudonym (32 hex digits) the wearable is enrolled for.
    #[arg(long)]
    pub person: PersonId,
    /// The wearable's key file (`vigil keygen` format). Created when missing; its public key is
    /// printed, for an operator to enroll.
    #[arg(long)]
    pub device_key: PathBuf,
    /// The wearable's identifier, as enrolled.
    #[arg(long)]
    pub device: DeviceId,
    /// What the wearable measures.
    #[arg(long, value_enum, default_value = "thermometer")]
    pub kind: Kind,
    /// The durable outbox (SQLite); keep it across runs.
    #[arg(long, default_value = "device-outbox.sqlite")]
    pub outbox: PathBuf,
    /// Packs per second.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Packs to generate in this run (0: only send what the outbox holds).
    #[arg(long, default_value_t = 10)]
    pub count: u64,
    /// Seed of the simulated person's vitals.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seconds to keep sending after the last pack is generated, until the outbox is empty.
    #[arg(long, default_value_t = 60)]
    pub drain_s: u64,
    /// Seconds without an answer before a pack is sent again.
    #[arg(long, default_value_t = 2.0)]
    pub resend_s: f64,
}

/// Where packs go.
enum Link {
    Mqtt(Box<Uploader>),
    Http(HttpUploader),
}

impl Link {
    /// Prints the alerts the node signed (forged ones were counted and dropped).
    fn print_alerts(&mut self) {
        if let Link::Mqtt(uploader) = self {
            for alert in uploader.take_alerts() {
                println!("alert: {alert}");
            }
        }
    }

    /// Sends what the outbox holds and applies the answers until it is empty or `deadline`.
    fn flush(
        &mut self,
        outbox: &mut Outbox,
        deadline: Instant,
        resend_after: Duration,
    ) -> anyhow::Result<FlushReport> {
        match self {
            Link::Mqtt(uploader) => Ok(uploader.flush(outbox, deadline, resend_after)?),
            Link::Http(uploader) => {
                let report = uploader.flush(outbox, deadline)?;
                if report.unreachable {
                    eprintln!("node unreachable; packs wait in the outbox");
                }
                Ok(report)
            }
        }
    }
}

pub fn run(args: DeviceArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate.is_finite() && args.rate > 0.0 && args.rate <= 10_000.0,
        "--rate must be in (0, 10000] packs per second"
    );
    anyhow::ensure!(args.count <= COUNT_MAX, "--count is at most {COUNT_MAX}");
    anyhow::ensure!(
        args.resend_s.is_finite() && args.resend_s > 0.0 && args.resend_s <= 3_600.0,
        "--resend-s must be in (0, 3600]"
    );
    let key = device_key(&args.device_key)?;
    println!("device {} key {}", args.device, key.public());
    let mut outbox = Outbox::open(&args.outbox)
        .with_context(|| format!("opening the outbox {}", args.outbox.display()))?;
    let waiting = outbox.len()?;
    if waiting > 0 {
        println!("{waiting} packs waiting in the outbox from an earlier run");
    }
    let mut link = match (&args.mqtt, &args.node) {
        (Some(broker), None) => {
            let (host, port) = host_port(broker)?;
            let node_key = args
                .node_key
                .context("--mqtt needs --node-key: the key the node signs its replies with")?;
            // A client id per device and run: two runs never share a broker session. Not
            // `vigil-…`: those are the node's own, and the broker refuses them.
            let client_id = format!("device-{}-{}", args.device, std::process::id());
            let credential = DeviceCredential {
                person: args.person,
                device: args.device.clone(),
                key: DeviceKey::from_seed(key.seed()),
            };
            let tls = args
                .ca
                .as_deref()
                .map(vigil_tls::client_config)
                .transpose()
                .context("--ca")?;
            let mut uploader =
                Uploader::connect_with(&host, port, &client_id, credential, node_key, tls);
            uploader.watch_alerts(args.person);
            Link::Mqtt(Box::new(uploader))
        }
        (None, Some(node)) => Link::Http(HttpUploader::new(
            node.to_socket_addrs()
                .with_context(|| format!("resolving {node}"))?
                .next()
                .with_context(|| format!("{node} resolves to no address"))?,
        )?),
        _ => bail!("give the node's MQTT broker (--mqtt HOST:PORT) or its HTTP address (--node)"),
    };

    let kind = DeviceKind::from(args.kind);
    let mut fleet = Fleet::new(FleetConfig::new(args.seed, 1));
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let resend_after = Duration::from_secs_f64(args.resend_s);
    let mut total = FlushReport::default();
    let started = Instant::now();
    let mut last_ms = TimestampMs::MIN;
    for i in 0..args.count {
        let Some(readings) = next_readings(&mut fleet, kind) else {
            bail!("the simulated {kind:?} emitted nothing for {SIM_STEPS_MAX} steps");
        };
        // Strictly increasing per device, even for packs made within one millisecond when
        // catching up after a stall: a reading's time names it.
        let time_ms = now_ms().max(last_ms.saturating_add(1));
        last_ms = time_ms;
        let sequence = outbox.enqueue(
            args.person,
            &key,
            |draft| {
                for (metric, value) in readings {
                    draft.push(metric, time_ms, value);
                }
            },
            &args.device,
        )?;
        if i == 0 {
            println!("first pack of this run: sequence {sequence}");
        }
        // Send while waiting for the next pack's time.
        let due = started + interval.mul_f64((i + 1) as f64);
        let report = link.flush(&mut outbox, due, resend_after)?;
        add(&mut total, report);
        link.print_alerts();
        if let Some(rest) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(rest);
        }
    }
    let report = link.flush(
        &mut outbox,
        Instant::now() + Duration::from_secs(args.drain_s),
        resend_after,
    )?;
    add(&mut total, report);
    link.print_alerts();
    let remaining = outbox.len()?;
    println!(
        "delivered={} refused={} remaining={remaining} forged={}",
        total.delivered, total.refused, total.forged
    );
    for (device, sequence, reason) in outbox.refused()? {
        eprintln!("refused for good: {device} pack {sequence}: {reason}");
    }
    if remaining > 0 {
        bail!(
            "{remaining} packs not yet acknowledged; they stay in {} for the next run",
            args.outbox.display()
        );
    }
    Ok(())
}

/// The wearable's key from a `vigil keygen` key file (an Ed25519 seed and its public key, in
/// hex), created with mode 0600 when missing.
fn device_key(path: &Path) -> anyhow::Result<DeviceKey> {
    #[derive(serde::Deserialize)]
    struct KeyFile {
        private_key: String,
    }
    if !path.exists() {
        keys::write_key_file(path, &keys::os_random_key())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("created device key {}", path.display());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // The ledger's parser checks the file (hex, a valid key, the public key matching).
    let checked = keys::parse_key_file(&text).with_context(|| format!("{}", path.display()))?;
    let file: KeyFile = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(file.private_key.trim(), &mut seed)
        .with_context(|| format!("{}: private_key is not 32 bytes of hex", path.display()))?;
    let device = DeviceKey::from_seed(seed);
    // Both libraries derive the public key from the seed per RFC 8032; check, not assume.
    anyhow::ensure!(
        device.public().to_string() == keys::public_hex(&checked.public_key()),
        "{}: the public key does not match the seed",
        path.display()
    );
    Ok(device)
}

/// The simulated wearable's next readings: the fleet advanced by one device period.
fn next_readings(
    fleet: &mut Fleet,
    kind: DeviceKind,
) -> Option<Vec<(vigil_core::Metric, vigil_core::Value)>> {
    for _ in 0..SIM_STEPS_MAX {
        let emission = fleet
            .step(kind.period_ms())
            .into_iter()
            .find(|e| e.device == kind);
        if let Some(emission) = emission {
            return Some(emission.readings);
        }
    }
    None
}

fn now_ms() -> TimestampMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as TimestampMs)
}

fn host_port(address: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = address
        .rsplit_once(':')
        .with_context(|| format!("{address}: expected HOST:PORT"))?;
    let port = port
        .parse()
        .with_context(|| format!("{address}: bad port"))?;
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

fn add(total: &mut FlushReport, report: FlushReport) {
    total.delivered += report.delivered;
    total.refused += report.refused;
    total.forged += report.forged;
    total.remaining = report.remaining;
}
