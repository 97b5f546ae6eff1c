//! `vigil demo`: a whole Vigil network in one process — 4 validators, the node (HTTP API,
//! dashboard, embedded MQTT broker, health record) and a simulated fleet of people whose
//! devices sign and publish readings. Everything lives under the data directory, so a restart
//! resumes: the logins, the people and their devices are kept in `demo-state.json`.
//!
//! The consortium keys come from fixed seeds (`Keys::new`): fine for a demo, never for a
//! deployment.

mod ecg;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use commonware_runtime::{Runner as _, Supervisor as _, tokio as cw_tokio};
use serde::{Deserialize, Serialize};
use serde_json::{Value as JsonValue, json};
use vigil_core::senml::PackDraft;
use vigil_core::{DeviceId, DeviceKey, PersonId};
use vigil_ledger::local::{LocalConfig, start_local};
use vigil_ledger::node::Ledger;
use vigil_ledger::signer::Signer;
use vigil_ledger::sim::Keys;
use vigil_ledger::state::State as LedgerState;
use vigil_ledger::tx::{Role, TxBody};
use vigil_node::users::{Principal, Users, new_token};
use vigil_node::{MqttMode, Node, NodeConfig, now_ms};
use vigil_sim::{DeviceKind, EpisodeKind, Fleet, FleetConfig, HOME_RADIUS_M, PEOPLE_MAX, Person};

const STATE_FILE: &str = "demo-state.json";
/// The node's public key for devices, in hex: what `vigil device --node-key` takes.
const NODE_KEY_FILE: &str = "node-key.pub";
/// How long setup waits for the ledger to finalize one phase.
const PHASE_WAIT: Duration = Duration::from_secs(180);
/// Real time between two simulator steps.
const TICK: Duration = Duration::from_millis(250);
/// Requests in flight at once while registering people.
const SETUP_BATCH: usize = 50;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Simulated people (each with a thermometer, a pulse oximeter and a phone).
    #[arg(long, default_value_t = 200)]
    pub people: u32,
    /// Simulated seconds per real second (vital signs and episodes evolve this much faster).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// HTTP port of the dashboard and API on 127.0.0.1; MQTT takes the next one, HTTPS and
    /// MQTT over TLS the two after (with the demo's own certificate authority, `tls/ca.pem`).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Where the ledger, the health record and the demo's state are kept.
    #[arg(long, default_value = "./vigil-demo-data")]
    pub data_dir: PathBuf,
    /// Stop after this many seconds (0: run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub duration_s: u64,
    /// People (the first ones) who also wear an ECG patch sending RR intervals (0: none).
    #[arg(long, default_value_t = 4)]
    pub ecg: u32,
    /// MIT-BIH records the ECG patches replay (default: $VIGIL_MITDB or ../shared/data/mitdb);
    /// synthetic ECG when the folder holds none.
    #[arg(long)]
    pub mitdb: Option<PathBuf>,
    /// Escalate an alert nobody acknowledged this many seconds after it (the district's
    /// escalation policy, deployed through the ledger), then again every --repeat-s.
    #[arg(long, default_value_t = 600)]
    pub escalate_after_s: u32,
    /// Remind the person of an open alert this many seconds after it (0: never).
    #[arg(long, default_value_t = 300)]
    pub remind_after_s: u32,
    /// Seconds between further reminders and escalations.
    #[arg(long, default_value_t = 600)]
    pub repeat_s: u32,
    /// A tile server for the dashboard's map: an OpenStreetMap-style URL template such as
    /// `https://tile.openstreetmap.org/{z}/{x}/{y}.png` (only this origin is added to the
    /// dashboard's image policy). Without it the map is a local plane and the demo stays
    /// offline.
    #[arg(long, value_name = "URL")]
    pub map_tiles: Option<String>,
    /// The attribution the tile server's licence asks for, shown on the map.
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "© OpenStreetMap contributors"
    )]
    pub map_attribution: String,
    /// POST every finalized alert to this webhook (`https://…`, or `http://` on loopback),
    /// signed with the secret the demo keeps in `notify-webhook.secret` (off by default).
    #[arg(long)]
    pub notify_webhook: Option<String>,
    /// Send e-mail through this SMTP relay (`HOST:PORT`): plaintext to a loopback relay,
    /// STARTTLS to any other (off by default). Needs --notify-email.
    #[arg(long, requires = "notify_email")]
    pub notify_smtp: Option<String>,
    /// Who gets the alerts by e-mail (repeatable). Needs --notify-smtp.
    #[arg(long, requires = "notify_smtp")]
    pub notify_email: Vec<String>,
    /// Let the demo's notifications carry health values (the alerts' reasons); without it
    /// they carry the pseudonym, level, kind, time and a dashboard link only.
    #[arg(long)]
    pub notify_health_data: bool,
}

const WEBHOOK_SECRET_FILE: &str = "notify-webhook.secret";

/// The channels the demo's `--notify-*` flags ask for, or `None` (the offline demo).
fn notify_config(
    args: &DemoArgs,
    data_dir: &Path,
    dashboard: SocketAddr,
) -> anyhow::Result<Option<vigil_notify::NotifyConfig>> {
    use vigil_notify::config::{
        EmailChannel, SmtpServer, SmtpTls, WebhookChannel, is_loopback_host,
    };
    if args.notify_webhook.is_none() && args.notify_smtp.is_none() {
        return Ok(None);
    }
    let route = vigil_notify::route::Route::at_least(vigil_core::AlertLevel::Warning);
    let mut config = vigil_notify::NotifyConfig::empty();
    config.dashboard_url = Some(format!("http://{dashboard}/"));
    if let Some(url) = &args.notify_webhook {
        let path = data_dir.join(WEBHOOK_SECRET_FILE);
        let secret = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim_end().to_owned(),
            Err(_) => {
                let secret = new_token();
                write_private(&path, secret.as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?;
                secret
            }
        };
        config.webhooks.push(WebhookChannel {
            name: "webhook".into(),
            url: url
                .parse()
                .with_context(|| format!("--notify-webhook {url}"))?,
            secret: vigil_notify::signature::Secret::new(secret.into_bytes())
                .with_context(|| format!("the secret in {}", path.display()))?,
            route: route.clone(),
            allow_health_data: args.notify_health_data,
        });
        step(&format!(
            "alerts go to the webhook {url}, signed with the secret in {}",
            path.display()
        ));
    }
    if let Some(relay) = &args.notify_smtp {
        let (host, port) = relay
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)))
            .with_context(|| format!("--notify-smtp {relay}: HOST:PORT"))?;
        let tls = if is_loopback_host(&host) {
            SmtpTls::None
        } else {
            SmtpTls::Starttls
        };
        config.smtp = Some(SmtpServer {
            host,
            port,
            tls,
            from: "Vigil demo <vigil@localhost>".into(),
            credentials: None,
            hello_name: "localhost".into(),
            timeout: vigil_notify::config::SMTP_TIMEOUT_DEFAULT,
        });
        for to in &args.notify_email {
            config.emails.push(EmailChannel {
                name: format!("email:{to}"),
                to: to.clone(),
                route: route.clone(),
                allow_health_data: args.notify_health_data,
            });
        }
        step(&format!(
            "alerts go by e-mail to {} through {relay}",
            args.notify_email.join(", ")
        ));
    }
    config.check().context("the --notify-* options")?;
    Ok(Some(config))
}

/// What a restart reuses.
#[derive(Serialize, Deserialize)]
struct DemoState {
    seed: u64,
    ehr_master_key: String,
    operator_token: String,
    admin_token: String,
    doctor_token: String,
    doctor_key: String,
    patient_token: String,
    /// Added after the first demos: empty in older state files, then filled in.
    #[serde(default)]
    auditor_token: String,
    #[serde(default)]
    auditor_key: String,
    /// Pseudonyms of the simulated people, by fleet index.
    people: Vec<PersonId>,
}

impl DemoState {
    fn fresh() -> anyhow::Result<Self> {
        let mut seed = [0u8; 8];
        getrandom::getrandom(&mut seed).context("random source")?;
        Ok(Self {
            seed: u64::from_le_bytes(seed),
            ehr_master_key: hex::encode(vigil_ehr::SecretKey::random().to_bytes()),
            operator_token: new_token(),
            admin_token: new_token(),
            doctor_token: new_token(),
            doctor_key: hex::encode(Signer::generate().to_bytes()),
            patient_token: new_token(),
            auditor_token: new_token(),
            auditor_key: hex::encode(Signer::generate().to_bytes()),
            people: Vec::new(),
        })
    }

    fn load_or_create(dir: &Path) -> anyhow::Result<(Self, bool)> {
        let path = dir.join(STATE_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((
                serde_json::from_str(&text)
                    .with_context(|| format!("reading {}", path.display()))?,
                true,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Self::fresh()?, false)),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        write_private(&tmp, &serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }
}

/// Writes `bytes` to `path`, readable by its owner only before the first byte is written (the
/// state holds login tokens and keys): created with mode 0600, and an existing file is
/// restricted to 0600 before it is overwritten.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

fn step(text: &str) {
    println!("[demo] {text}");
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if !(args.speed > 0.0 && args.speed <= 10_000.0) {
        bail!("--speed must be above 0 and at most 10000");
    }
    if args.people == 0 || args.people > PEOPLE_MAX {
        bail!("--people must be between 1 and {PEOPLE_MAX}");
    }
    let Some(mqtt_port) = args
        .port
        .checked_add(1)
        .filter(|p| p.checked_add(2).is_some())
    else {
        bail!("--port must leave room for the MQTT, HTTPS and MQTT-over-TLS ports after it");
    };
    // Checked before anything starts: the origin goes into the dashboard's policy header.
    let map_tiles = args
        .map_tiles
        .as_deref()
        .map(|url| vigil_node::MapTiles::new(url, &args.map_attribution))
        .transpose()
        .context("--map-tiles")?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let (mut state, resumed) = DemoState::load_or_create(&data_dir)?;
    if state.auditor_token.is_empty() || state.auditor_key.is_empty() {
        state.auditor_token = new_token();
        state.auditor_key = hex::encode(Signer::generate().to_bytes());
    }
    state.save(&data_dir)?;
    step(&format!(
        "{} in {}",
        if resumed {
            "resuming the demo kept"
        } else {
            "starting a new demo"
        },
        data_dir.display()
    ));
    let runtime = cw_tokio::Config::new().with_storage_directory(data_dir.join("ledger"));
    cw_tokio::Runner::new(runtime).start(|context| async move {
        run_in_runtime(context, args, data_dir, state, mqtt_port, map_tiles).await
    })
}

async fn run_in_runtime(
    context: cw_tokio::Context,
    args: DemoArgs,
    data_dir: PathBuf,
    mut state: DemoState,
    mqtt_port: u16,
    map_tiles: Option<vigil_node::MapTiles>,
) -> anyhow::Result<()> {
    step(
        "starting 4 validators on 127.0.0.1 (demo keys from fixed seeds: never use them for real)",
    );
    let cluster = start_local(context.child("ledger"), LocalConfig::new(Keys::new(4, 1))).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let duration_s = args.duration_s;
    tokio::spawn(async move {
        stop_signal(duration_s).await;
        let _ = stop.send(true);
    });
    let doctor = Arc::new(
        hex::decode(&state.doctor_key)
            .ok()
            .and_then(|b| Signer::from_bytes(&b))
            .context("the doctor key in the state file is damaged")?,
    );
    let auditor = Arc::new(
        hex::decode(&state.auditor_key)
            .ok()
            .and_then(|b| Signer::from_bytes(&b))
            .context("the auditor key in the state file is damaged")?,
    );
    let mut users = Users::default();
    let staff = |name: &str, signer: Arc<Signer>| Principal::Staff {
        name: name.into(),
        signer,
    };
    users.insert(
        &state.operator_token,
        staff(
            "operator",
            Signer::new(cluster.keys.operator.clone()).into(),
        ),
    );
    users.insert(
        &state.admin_token,
        staff("admin", Signer::new(cluster.keys.admin.clone()).into()),
    );
    users.insert(&state.doctor_token, staff("doctor", doctor.clone()));
    users.insert(&state.auditor_token, staff("auditor", auditor.clone()));
    let mut ehr_key = [0u8; 32];
    hex::decode_to_slice(&state.ehr_master_key, &mut ehr_key)
        .context("the health record key in the state file is damaged")?;
    let http_listen: SocketAddr = ([127, 0, 0, 1], args.port).into();
    // A fresh certificate authority per run, as mkcert would make one: devices and browsers
    // given `tls/ca.pem` reach the node over TLS by `localhost` or `127.0.0.1`.
    let authority =
        vigil_tls::LocalAuthority::create(&data_dir.join("tls"), &["localhost", "127.0.0.1"])
            .context("creating the demo's certificate authority")?;
    let tls_server = authority.server_config()?;
    let (https_port, mqtts_port) = (mqtt_port + 1, mqtt_port + 2);
    let config = NodeConfig {
        map_tiles,
        data_dir: data_dir.join("node"),
        mqtt: MqttMode::EmbeddedOn(vigil_gateway::mqtt::FrontListeners {
            plain: Some(([127, 0, 0, 1], mqtt_port).into()),
            tls: Some((([127, 0, 0, 1], mqtts_port).into(), tls_server.clone())),
        }),
        ehr_master_key: vigil_ehr::SecretKey::from_bytes(ehr_key),
        gateway: Signer::new(cluster.keys.gateways[0].clone()),
        users,
        future_skew: vigil_node::FUTURE_SKEW_DEFAULT,
        notify: notify_config(&args, &data_dir, http_listen)?,
    };
    step(&format!(
        "starting the node: HTTP on {http_listen}, MQTT on 127.0.0.1:{mqtt_port}, HTTPS on \
         127.0.0.1:{https_port}, MQTT over TLS on 127.0.0.1:{mqtts_port}"
    ));
    let (node, api) = vigil_api::start(cluster.ledgers[0].clone(), config, http_listen)
        .await
        .context("starting the node (is the port free? try --port)")?;
    let https = vigil_api::serve_tls(
        node.clone(),
        ([127, 0, 0, 1], https_port).into(),
        tls_server,
    )
    .await
    .context("starting HTTPS (is the port free? try --port)")?;
    node.set_genesis(cluster.genesis.clone());
    // What `vigil device --node-key` needs to accept the node's replies and alerts.
    let node_key = node.message_public_key().to_string();
    std::fs::write(data_dir.join(NODE_KEY_FILE), format!("{node_key}\n"))
        .context("writing the node's public key")?;

    // The doctor's and the auditor's roles, granted once by the admin.
    let ledger = node.ledger().clone();
    let admin = Signer::new(cluster.keys.admin.clone());
    for (who, role) in [(&doctor, Role::Doctor), (&auditor, Role::Auditor)] {
        if !ledger.snapshot().view().has_role(who.public(), role) {
            admin
                .submit(
                    &ledger,
                    TxBody::GrantRole {
                        identity: who.public().clone(),
                        role,
                    },
                )
                .map_err(|e| anyhow::anyhow!("granting the {} role: {e}", role.name()))?;
        }
    }

    // The district's escalation policy, as an operator deploys it: through the ledger.
    let policy = vigil_ledger::tx::EscalationPolicy {
        remind_after_s: args.remind_after_s,
        escalate_after_s: args.escalate_after_s,
        repeat_s: args.repeat_s,
        steps_max: 3,
        raise_level: true,
    };
    if ledger.snapshot().view().escalation_policy() != Some(policy) {
        let body = serde_json::to_value(policy)?;
        let (status, reply) = http(
            api,
            "PUT",
            "/api/escalation-policy",
            &state.operator_token,
            &body,
        )
        .await?;
        anyhow::ensure!(
            status == 202,
            "escalation policy refused ({status}): {reply}"
        );
    }

    let fleet_config = FleetConfig::new(state.seed, args.people);
    let mut fleet = Fleet::new(fleet_config);
    let setup = setup_people(api, &node, &fleet, &mut state, &data_dir, args.people);
    if unless_stopped(setup, &stopped).await?.is_none() {
        return stop_cleanly(&cluster, &state, &data_dir);
    }
    // Private statistics (added by the privstats work): 3 servers, 4 data providers with
    // synthetic heart data and 2 verifying nodes, so the doctor can query /api/queries. Keys and
    // queries are kept in stats.sqlite, so a restarted demo keeps pending queries and results.
    {
        let node = node.clone();
        let admin = Arc::new(Signer::new(cluster.keys.admin.clone()));
        let store = data_dir.join("stats.sqlite");
        tokio::spawn(async move {
            if let Err(error) =
                vigil_node::stats::start_demo_stats_stored(&node, admin, 4, 20_160, Some(store))
                    .await
            {
                eprintln!("private statistics not started: {error}");
            }
        });
    }
    let people: Vec<PersonId> = state.people[..args.people as usize].to_vec();
    let ecg_count = args.ecg.min(args.people) as usize;
    let ecg_sources = if ecg_count > 0 {
        let dir = args.mitdb.clone().unwrap_or_else(ecg::default_dir);
        step(&format!(
            "ECG patches for {ecg_count} people: detecting beats in the MIT-BIH records of {} (synthetic ECG if none)",
            dir.display()
        ));
        let seed = state.seed;
        let (sources, notes) =
            tokio::task::spawn_blocking(move || ecg::sources(&dir, ecg_count, seed))
                .await
                .context("loading ECG records")?;
        for note in notes {
            step(&note);
        }
        let setup = setup_ecg(api, &node, &fleet, &state, ecg_count);
        if unless_stopped(setup, &stopped).await?.is_none() {
            return stop_cleanly(&cluster, &state, &data_dir);
        }
        step(&format!(
            "ECG patches replay: {}",
            sources
                .iter()
                .map(|s| s.label.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        sources
    } else {
        Vec::new()
    };
    node.add_user(
        &state.patient_token,
        Principal::Patient {
            name: fleet.person(0).map_or("patient".into(), |p| p.name.clone()),
            person: people[0],
        },
    );

    println!();
    println!("  Vigil demo is running. Dashboard: http://{api}/");
    println!(
        "  Over TLS: https://localhost:{}/ and MQTT on 127.0.0.1:{mqtts_port}, with the CA in {}",
        https.port(),
        authority.ca_cert.display()
    );
    match node.map_tiles() {
        Some(tiles) => println!("  Map tiles from {}", tiles.origin()),
        None => println!("  Map: a local plane, no tiles (--map-tiles URL to add a tile server)"),
    }
    println!(
        "  Logins (bearer tokens; kept in {}):",
        data_dir.join(STATE_FILE).display()
    );
    println!("    operator  {}", state.operator_token);
    println!("    admin     {}", state.admin_token);
    println!("    doctor    {}", state.doctor_token);
    println!("    auditor   {}", state.auditor_token);
    println!(
        "  MQTT devices log in with tokens signed by their key; the node's key (vigil device \
         --node-key) is {node_key}, also in {}",
        data_dir.join(NODE_KEY_FILE).display()
    );
    println!(
        "    patient   {}  (person {})",
        state.patient_token, people[0]
    );
    println!(
        "  {} people, speed x{}; Ctrl-C stops (a restart with the same --data-dir resumes).",
        people.len(),
        args.speed
    );
    println!();

    // A few scripted episodes so that alerts flow at once; random ones follow.
    let scripted = [
        (0, EpisodeKind::Fever, 5),
        (1 % args.people, EpisodeKind::LeftHome, 10),
        (2 % args.people, EpisodeKind::Desaturation, 6),
        // Long enough in real time (at up to ×10) for the phone's no-signal watch to fire.
        (3 % args.people, EpisodeKind::PhoneOff, 60),
    ];
    for (index, kind, minutes) in scripted {
        fleet.start_episode_for(index, kind, minutes * 60_000);
    }

    if unless_stopped(
        simulate(node.clone(), fleet, people, ecg_sources, args.speed),
        &stopped,
    )
    .await?
    .is_none()
    {
        step("stopping");
    }
    stop_cleanly(&cluster, &state, &data_dir)
}

/// Resolves on Ctrl-C or SIGTERM (from a supervisor), or after `duration_s` if it is not 0.
async fn stop_signal(duration_s: u64) {
    if duration_s > 0 {
        tokio::time::sleep(Duration::from_secs(duration_s)).await;
        return;
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs `work` unless a stop is requested first (then `None`), so that Ctrl-C works during
/// the setup phases too.
async fn unless_stopped<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<T>> {
    let mut stopped = stopped.clone();
    tokio::select! {
        result = work => result.map(Some),
        _ = stopped.wait_for(|stop| *stop) => Ok(None),
    }
}

/// Stops the validators and keeps the state file: a restart resumes.
fn stop_cleanly(
    cluster: &vigil_ledger::local::LocalCluster,
    state: &DemoState,
    data_dir: &Path,
) -> anyhow::Result<()> {
    cluster.shutdown();
    state.save(data_dir)?;
    step("stopped; the data directory is kept");
    Ok(())
}

/// The demo's HTTP client: one connection pool for every request to the node.
static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(reqwest::Client::new);

/// One request to the node: the status and the JSON body (`null` if the body is not JSON).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: &JsonValue,
) -> anyhow::Result<(u16, JsonValue)> {
    let method = reqwest::Method::from_bytes(method.as_bytes())?;
    let response = CLIENT
        .request(method, format!("http://{addr}{path}"))
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let status = response.status().as_u16();
    let json = serde_json::from_slice(&response.bytes().await?).unwrap_or(JsonValue::Null);
    Ok((status, json))
}

/// Waits until `done` counts everything wanted in the finalized state, checking again after
/// each finalized block.
async fn wait_for(
    what: &str,
    ledger: &Ledger,
    mut done: impl FnMut(&LedgerState) -> (usize, usize),
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + PHASE_WAIT;
    let mut snapshots = ledger.snapshots();
    let mut last_print = Instant::now();
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        let (have, want) = done(&snapshot);
        if have >= want {
            step(&format!("{what}: {have}/{want} finalized"));
            return Ok(());
        }
        if last_print.elapsed() > Duration::from_secs(3) {
            step(&format!("{what}: {have}/{want} finalized…"));
            last_print = Instant::now();
        }
        match tokio::time::timeout_at(deadline, snapshots.changed()).await {
            Err(_) => bail!("timed out waiting for {what} ({have}/{want} finalized)"),
            Ok(Err(_)) => bail!("the validator stopped while waiting for {what}"),
            Ok(Ok(())) => {}
        }
    }
}

async fn post_all(
    api: SocketAddr,
    token: &str,
    path: &str,
    bodies: Vec<JsonValue>,
) -> anyhow::Result<Vec<JsonValue>> {
    let mut out = Vec::with_capacity(bodies.len());
    for chunk in bodies.chunks(SETUP_BATCH) {
        let requests = chunk.iter().map(|b| http(api, "POST", path, token, b));
        for (result, body) in futures::future::join_all(requests)
            .await
            .into_iter()
            .zip(chunk)
        {
            let (status, reply) = result?;
            if status != 202 {
                bail!("POST {path} {body} refused ({status}): {reply}");
            }
            out.push(reply);
        }
    }
    Ok(out)
}

/// Registers whatever is missing: people (through the API, like an operator would), their
/// devices and their contract instances. Idempotent: a restart only fills the gaps.
async fn setup_people(
    api: SocketAddr,
    node: &Node,
    fleet: &Fleet,
    state: &mut DemoState,
    data_dir: &Path,
    count: u32,
) -> anyhow::Result<()> {
    let token = state.operator_token.clone();
    let ledger = node.ledger().clone();
    // A stop loses the mempool: people in the state file whose registration never reached the
    // ledger are registered again, under new pseudonyms at the same fleet index (no device
    // could have been enrolled for a person the ledger never knew).
    let lost: Vec<usize> = state
        .people
        .iter()
        .enumerate()
        .filter(|(_, p)| ledger.snapshot().person(p).is_none())
        .map(|(i, _)| i)
        .collect();
    if !lost.is_empty() {
        step(&format!(
            "{} people of the last run never reached the ledger: registering them again",
            lost.len()
        ));
        let bodies = lost
            .iter()
            .map(|&i| {
                let p = fleet.person(i as u32).context("person")?;
                Ok(json!({"name": p.name, "address": format!("simulated home #{i}")}))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let replies = post_all(api, &token, "/api/people", bodies).await?;
        for (&i, reply) in lost.iter().zip(replies) {
            state.people[i] = reply["person"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .context("the node answered without a pseudonym")?;
        }
        state.save(data_dir)?;
    }
    let missing = (count as usize).saturating_sub(state.people.len());
    if missing > 0 {
        step(&format!("registering {missing} people"));
    }
    while state.people.len() < count as usize {
        let from = state.people.len() as u32;
        let to = (from + SETUP_BATCH as u32).min(count);
        let bodies = (from..to)
            .map(|i| {
                let p = fleet.person(i).context("person")?;
                Ok(json!({"name": p.name, "address": format!("simulated home #{i}")}))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for reply in post_all(api, &token, "/api/people", bodies).await? {
            let person: PersonId = reply["person"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .context("the node answered without a pseudonym")?;
            state.people.push(person);
        }
        state.save(data_dir)?;
    }
    let people: Vec<PersonId> = state.people[..count as usize].to_vec();
    let want: HashSet<PersonId> = people.iter().copied().collect();
    wait_for("people registered", &ledger, |s| {
        let have = want.iter().filter(|p| s.person(p).is_some()).count();
        (have, want.len())
    })
    .await?;

    // Devices.
    let enrolled: HashSet<String> = ledger
        .snapshot()
        .devices()
        .map(|(id, _)| id.to_string())
        .collect();
    let mut bodies = Vec::new();
    for (i, person) in people.iter().enumerate() {
        let p = fleet.person(i as u32).context("person")?;
        for kind in DeviceKind::ALL {
            let id = p.device_id(kind);
            if !enrolled.contains(&id) {
                let key = DeviceKey::from_seed(p.device_seed(kind));
                bodies.push(
                    json!({"person": person, "device": id, "public_key": key.public().to_string()}),
                );
            }
        }
    }
    if !bodies.is_empty() {
        step(&format!("enrolling {} devices", bodies.len()));
        post_all(api, &token, "/api/devices", bodies).await?;
    }
    let devices_wanted = people.len() * DeviceKind::ALL.len();
    let device_ids: HashSet<DeviceId> = (0..count)
        .filter_map(|i| fleet.person(i))
        .flat_map(|p| DeviceKind::ALL.map(|k| p.device_id(k)))
        .filter_map(|id| id.parse().ok())
        .collect();
    wait_for("devices enrolled", &ledger, |s| {
        let have = device_ids.iter().filter(|d| s.device(d).is_some()).count();
        (have, devices_wanted)
    })
    .await?;

    // Contract instances: people with none get the standard set.
    let covered: HashSet<PersonId> = {
        let s = ledger.snapshot();
        people
            .iter()
            .filter(|p| s.instances_of(p).any(|(_, r)| r.active))
            .copied()
            .collect()
    };
    let mut bodies = Vec::new();
    for (i, person) in people.iter().enumerate() {
        if covered.contains(person) {
            continue;
        }
        let p = fleet.person(i as u32).context("person")?;
        for (kind, params) in instances_for(p) {
            bodies.push(json!({"person": person, "device": p.device_id(kind), "params": params}));
        }
    }
    let per_person = instances_for(fleet.person(0).context("person")?).len();
    if !bodies.is_empty() {
        step(&format!("deploying {} contract instances", bodies.len()));
        post_all(api, &token, "/api/instances", bodies).await?;
    }
    wait_for("contract instances deployed", &ledger, |s| {
        let have: usize = want
            .iter()
            .map(|p| s.instances_of(p).filter(|(_, r)| r.active).count())
            .sum();
        (have / per_person.max(1), people.len())
    })
    .await?;
    Ok(())
}

/// The ECG patch of simulated person `p`: its id and key (derived from the person's seeds).
fn ecg_device(p: &Person) -> anyhow::Result<(DeviceId, DeviceKey)> {
    let id = format!("p{:05}-ecg", p.index)
        .parse()
        .context("ECG device id")?;
    let seed = vigil_core::digest(
        "vigil/demo/ecg-device/v1",
        &[&p.device_seed(DeviceKind::Thermometer)],
    );
    Ok((id, DeviceKey::from_seed(seed)))
}

/// The heart-rhythm contract on an ECG patch: the ECG crate's AF screen over the last 128 RR
/// intervals (the code `vigil ecg af` runs) raises a warning.
fn ecg_instance() -> JsonValue {
    json!({"kind": "heart-rhythm", "irregularity": {"window": 128, "delta_ms": 50,
        "irregular_permille": 600, "level": 1, "max_gap_ms": 60000, "method": "af-screen"}})
}

/// Enrolls the first `count` people's ECG patches and deploys their heart-rhythm contract,
/// whatever is missing.
async fn setup_ecg(
    api: SocketAddr,
    node: &Node,
    fleet: &Fleet,
    state: &DemoState,
    count: usize,
) -> anyhow::Result<()> {
    let ledger = node.ledger().clone();
    let mut devices = Vec::new();
    for (i, person) in state.people.iter().take(count).enumerate() {
        let (id, key) = ecg_device(fleet.person(i as u32).context("person")?)?;
        devices.push((*person, id, key));
    }
    let missing: Vec<JsonValue> = devices
        .iter()
        .filter(|(_, id, _)| ledger.snapshot().device(id).is_none())
        .map(|(person, id, key)| {
            json!({"person": person, "device": id, "public_key": key.public().to_string()})
        })
        .collect();
    if !missing.is_empty() {
        post_all(api, &state.operator_token, "/api/devices", missing).await?;
    }
    wait_for("ECG patches enrolled", &ledger, |s| {
        let have = devices
            .iter()
            .filter(|(_, id, _)| s.device(id).is_some())
            .count();
        (have, devices.len())
    })
    .await?;
    let covered = |s: &LedgerState, person: &PersonId, id: &DeviceId| {
        s.instances_of(person)
            .any(|(_, r)| r.active && r.deployment.device == *id)
    };
    let bodies: Vec<JsonValue> = devices
        .iter()
        .filter(|(person, id, _)| !covered(&ledger.snapshot(), person, id))
        .map(|(person, id, _)| json!({"person": person, "device": id, "params": ecg_instance()}))
        .collect();
    if !bodies.is_empty() {
        post_all(api, &state.operator_token, "/api/instances", bodies).await?;
    }
    wait_for("heart-rhythm contracts deployed", &ledger, |s| {
        let have = devices
            .iter()
            .filter(|(person, id, _)| covered(s, person, id))
            .count();
        (have, devices.len())
    })
    .await
}

/// The monitor contracts every simulated person gets: the seed's temperature band, SpO2 and
/// heart-rate bands on the oximeter, a home geofence and a no-signal watch on the phone.
/// Times are real time (readings carry wall-clock times).
fn instances_for(p: &Person) -> Vec<(DeviceKind, JsonValue)> {
    vec![
        (
            DeviceKind::Thermometer,
            json!({"kind": "threshold", "metric": "body-temperature",
                "critical_below": 3500, "warning_below": 3550,
                "warning_above": 3750, "critical_above": 3850, "hysteresis": 20}),
        ),
        (
            DeviceKind::Oximeter,
            json!({"kind": "threshold", "metric": "spo2",
                "warning_below": 940, "critical_below": 920, "hysteresis": 5}),
        ),
        (
            DeviceKind::Oximeter,
            json!({"kind": "threshold", "metric": "heart-rate",
                "critical_below": 400, "warning_below": 500,
                "warning_above": 1100, "critical_above": 1300, "repeat": 2, "hysteresis": 30}),
        ),
        (
            DeviceKind::Phone,
            json!({"kind": "geofence", "dwell_ms": 20000, "margin_m": 5, "accuracy_max_m": 200,
                "zones": [{"name": "home", "rule": "keep-inside", "level": 2,
                    "circle": {"lat_udeg": p.home.0, "lon_udeg": p.home.1, "radius_m": HOME_RADIUS_M}}]}),
        ),
        (
            DeviceKind::Phone,
            json!({"kind": "no-signal", "interval_ms": 120000, "grace_ms": 60000}),
        ),
    ]
}

#[derive(Default)]
struct Counters {
    packs: AtomicU64,
    rejected: AtomicU64,
}

/// Runs the fleet until cancelled: each tick advances simulated time by `TICK × speed`, signs
/// the packs due with each device's key and hands them to the node's ingestion path.
async fn simulate(
    node: Arc<Node>,
    mut fleet: Fleet,
    people: Vec<PersonId>,
    mut ecg_sources: Vec<ecg::EcgSource>,
    speed: f64,
) -> anyhow::Result<()> {
    struct Device {
        id: DeviceId,
        key: DeviceKey,
        next_seq: u64,
    }
    // Sequence numbers from the wall clock (×1000) stay above any used before a restart.
    let first_seq = u64::try_from(now_ms()).unwrap_or(0).saturating_mul(1_000);
    let mut devices: Vec<[Device; 3]> = Vec::with_capacity(people.len());
    for p in fleet.people() {
        let make = |kind: DeviceKind| -> anyhow::Result<Device> {
            Ok(Device {
                id: p.device_id(kind).parse().context("device id")?,
                key: DeviceKey::from_seed(p.device_seed(kind)),
                next_seq: first_seq,
            })
        };
        devices.push([
            make(DeviceKind::Thermometer)?,
            make(DeviceKind::Oximeter)?,
            make(DeviceKind::Phone)?,
        ]);
    }
    let mut ecg_devices = Vec::with_capacity(ecg_sources.len());
    for i in 0..ecg_sources.len() {
        let (id, key) = ecg_device(fleet.person(i as u32).context("person")?)?;
        ecg_devices.push(Device {
            id,
            key,
            next_seq: first_seq,
        });
    }
    let counters = Arc::new(Counters::default());
    let mut alerts = node.subscribe();
    let alert_count = Arc::new(AtomicU64::new(0));
    let counted = alert_count.clone();
    tokio::spawn(async move {
        loop {
            match alerts.recv().await {
                Ok(vigil_node::LiveEvent::Alert { .. }) => {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    });
    let dt_ms = ((TICK.as_millis() as f64) * speed).max(1.0) as u64;
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_report = Instant::now();
    loop {
        interval.tick().await;
        let emissions = fleet.step(dt_ms);
        let now = now_ms();
        let mut packs = Vec::with_capacity(emissions.len());
        for e in emissions {
            let slot = match e.device {
                DeviceKind::Thermometer => 0,
                DeviceKind::Oximeter => 1,
                DeviceKind::Phone => 2,
            };
            let device = &mut devices[e.person as usize][slot];
            let seq = device.next_seq.max(u64::try_from(now).unwrap_or(0) * 1_000);
            device.next_seq = seq + 1;
            let mut draft = PackDraft::new(device.id.clone(), seq);
            for (metric, value) in e.readings {
                draft.push(metric, now, value);
            }
            packs.push((people[e.person as usize], draft.sign(&device.key).to_json()));
        }
        // ECG patches: the RR intervals that ended during this step, each at its own time.
        for (i, source) in ecg_sources.iter_mut().enumerate() {
            let beats = source.advance(dt_ms);
            if beats.is_empty() {
                continue;
            }
            let device = &mut ecg_devices[i];
            let seq = device.next_seq.max(u64::try_from(now).unwrap_or(0) * 1_000);
            device.next_seq = seq + 1;
            let mut draft = PackDraft::new(device.id.clone(), seq);
            for (offset_ms, report) in beats {
                let behind_ms = (dt_ms.saturating_sub(offset_ms) as f64 / speed) as i64;
                // Unusable signal is reported as such, never as an interval or a rate.
                let (metric, ms) = match report {
                    ecg::Report::Rr(ms) => (vigil_core::Metric::RrInterval, ms),
                    ecg::Report::Unusable(ms) => (vigil_core::Metric::SignalUnusable, ms),
                };
                draft.push(
                    metric,
                    now - behind_ms,
                    vigil_core::Value::Scalar(i32::from(ms)),
                );
            }
            packs.push((people[i], draft.sign(&device.key).to_json()));
        }
        let ingest_node = node.clone();
        let ingest_counters = counters.clone();
        tokio::task::spawn_blocking(move || {
            for (person, bytes) in packs {
                let reply = ingest_node.ingest(Some(person), &bytes, "sim");
                ingest_counters.packs.fetch_add(1, Ordering::Relaxed);
                if reply.error.is_some() {
                    ingest_counters.rejected.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .await
        .context("ingestion task")?;
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            let sim_min = fleet.now_ms() / 60_000;
            step(&format!(
                "simulated {}h{:02}: {} packs sent ({} refused), {} alerts finalized, ledger height {}",
                sim_min / 60,
                sim_min % 60,
                counters.packs.load(Ordering::Relaxed),
                counters.rejected.load(Ordering::Relaxed),
                alert_count.load(Ordering::Relaxed),
                node.ledger().finalized().0,
            ));
        }
    }
}
