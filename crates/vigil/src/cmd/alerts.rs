//! `vigil bench alerts`: the latency from a device's MQTT publish of a fever to its alert on
//! the operators' SSE stream, first on a quiet node, then while `--readers` clients read one
//! patient's readings at `--limit` in a loop (a read storm). Four validators, one node and its
//! API, all in this process on 127.0.0.1. The node's HTTP layer must keep the storm off the
//! ingestion path: the loaded p99 should stay within 2x of the quiet one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use commonware_runtime::{Runner as _, Supervisor as _, tokio as cw_tokio};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio::sync::mpsc;
use vigil_core::senml::PackDraft;
use vigil_core::{DeviceId, DeviceKey, Metric, PersonId, Value};
use vigil_ledger::local::{LocalConfig, start_local};
use vigil_ledger::node::Ledger;
use vigil_ledger::sim::Keys;
use vigil_ledger::tx::{Deployment, TxBody};
use vigil_node::signer::Signer;
use vigil_node::users::{Principal, Users};
use vigil_node::{MqttMode, Node, NodeConfig};

#[derive(Args, Clone)]
pub struct BenchArgs {
    /// Fevers timed in each phase (one person each).
    #[arg(long, default_value_t = 30)]
    pub alerts: usize,
    /// Concurrent readers of one patient's readings in the loaded phase.
    #[arg(long, default_value_t = 8)]
    pub readers: usize,
    /// Observations each read asks for (`?limit=`; at most 10,000).
    #[arg(long, default_value_t = 10_000)]
    pub limit: usize,
}

const WAIT: Duration = Duration::from_secs(120);
const T0_MS: i64 = 1_700_000_000_000;
/// Readings per pack stored for the read patient.
const STORED_PER_PACK: usize = 100;

/// One person with a thermometer and a threshold contract on it.
struct Person {
    id: PersonId,
    device: DeviceId,
    key: DeviceKey,
}

struct Phase {
    latencies_ms: Vec<f64>,
    reads: usize,
    read_ms: Vec<f64>,
}

pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.alerts >= 1, "--alerts must be at least 1");
    anyhow::ensure!(
        (1..=vigil_ehr::READ_LIMIT_MAX).contains(&args.limit),
        "--limit must be 1..={}",
        vigil_ehr::READ_LIMIT_MAX
    );
    let dir = temp_dir()?;
    let runtime = cw_tokio::Config::new().with_storage_directory(dir.join("ledger"));
    let node_dir = dir.join("node");
    let shape = args.clone();
    let result = cw_tokio::Runner::new(runtime).start(|context| async move {
        let cluster = start_local(context.child("ledger"), LocalConfig::new(Keys::new(4, 1))).await;
        let token = hex::encode(random_bytes()?);
        let mut users = Users::default();
        let operator = Arc::new(Signer::new(cluster.keys.operator.clone()));
        users.insert(
            &token,
            Principal::Staff {
                name: "bench-operator".into(),
                signer: operator.clone(),
            },
        );
        let mqtt = free_loopback_port()?;
        let config = NodeConfig {
            data_dir: node_dir,
            mqtt: MqttMode::Embedded(mqtt),
            ehr_master_key: vigil_ehr::SecretKey::random(),
            gateway: Signer::new(cluster.keys.gateways[0].clone()),
            users,
        };
        let loopback = ([127, 0, 0, 1], 0).into();
        let (node, api) = vigil_api::start(cluster.ledgers[0].clone(), config, loopback).await?;
        let run = run(&node, &operator, &shape, mqtt, api, &token).await;
        cluster.shutdown();
        run
    });
    let _ = std::fs::remove_dir_all(&dir);
    let (quiet, loaded) = result?;
    report(&args, &quiet, &loaded);
    Ok(())
}

async fn run(
    node: &Arc<Node>,
    operator: &Signer,
    args: &BenchArgs,
    mqtt: SocketAddr,
    api: SocketAddr,
    token: &str,
) -> anyhow::Result<(Phase, Phase)> {
    // Person 0 is read; the others each raise one timed fever.
    let people: Vec<Person> = (0..=2 * args.alerts)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            Ok(Person {
                id: PersonId::random(),
                device: format!("bench-alerts-{i}").parse()?,
                key: DeviceKey::from_seed(seed),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    eprintln!("enrolling {} people", people.len());
    enroll(node, operator, &people).await?;
    eprintln!("storing {} readings for the read patient", args.limit);
    store_readings(node, &people[0], args.limit)?;

    let http = reqwest::Client::new();
    let mut alerts = sse_alerts(&http, api, token).await?;
    let (client, mut connection) = AsyncClient::new(
        MqttOptions::new("vigil-bench-alerts", mqtt.ip().to_string(), mqtt.port()),
        64,
    );
    let mqtt_task = tokio::spawn(async move {
        // Drives the connection; ends when the client is dropped or on error.
        while connection.poll().await.is_ok() {}
    });
    let (quiet_people, loaded_people) = people[1..].split_at(args.alerts);
    eprintln!("timing {} fevers on a quiet node", quiet_people.len());
    let quiet = time_fevers(&client, &mut alerts, quiet_people).await?;
    eprintln!("starting {} readers", args.readers);

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let url = format!(
        "http://{api}/api/people/{}/readings?limit={}",
        people[0].id, args.limit
    );
    let readers: Vec<_> = (0..args.readers)
        .map(|_| {
            let (http, url, token) = (http.clone(), url.clone(), token.to_owned());
            let (stop, reads, limit) = (stop.clone(), reads.clone(), args.limit);
            tokio::spawn(async move { read_loop(http, url, token, limit, stop, reads).await })
        })
        .collect();
    // The storm is on before the first timed fever.
    let started = Instant::now();
    while reads.load(Ordering::Relaxed) < args.readers && started.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = reads.load(Ordering::Relaxed);
    eprintln!(
        "timing {} fevers during the read storm",
        loaded_people.len()
    );
    let mut loaded = time_fevers(&client, &mut alerts, loaded_people).await;
    stop.store(true, Ordering::Relaxed);
    let mut read_ms = Vec::new();
    for reader in readers {
        read_ms.extend(reader.await.context("reader task")??);
    }
    if let Ok(phase) = &mut loaded {
        phase.reads = reads.load(Ordering::Relaxed) - before;
        read_ms.sort_by(f64::total_cmp);
        phase.read_ms = read_ms;
    }
    let _ = client.disconnect().await;
    mqtt_task.abort();
    Ok((quiet, loaded?))
}

/// Registers, enrols and deploys a fever threshold for everyone, and waits until the node's
/// contracts know them.
async fn enroll(node: &Arc<Node>, operator: &Signer, people: &[Person]) -> anyhow::Result<()> {
    let ledger = node.ledger().clone();
    let params = vigil_contracts::Params::Threshold(vigil_contracts::ThresholdParams {
        warning_above: Some(3_750),
        critical_above: Some(3_850),
        ..vigil_contracts::ThresholdParams::seed(Metric::BodyTemperature, 3_500, 3_750, 100)
    });
    let mut last = Vec::new();
    for person in people {
        node.with_ehr(|ehr| ehr.register_person(person.id, &vigil_ehr::Identity::default()))?;
        operator.submit_tx(&ledger, TxBody::RegisterPerson { person: person.id })?;
    }
    wait_finalized(node, &ledger, "people registered").await?;
    for person in people {
        operator.submit_tx(
            &ledger,
            TxBody::EnrollDevice {
                person: person.id,
                device: person.device.clone(),
                public_key: person.key.public().to_bytes(),
            },
        )?;
        last.push(operator.submit_tx(
            &ledger,
            TxBody::DeployInstance {
                deployment: Deployment::new(person.id, person.device.clone(), &params),
            },
        )?);
    }
    wait_until("instances deployed", || {
        !last.iter().any(|tx| ledger.is_pending(tx))
    })
    .await?;
    wait_finalized(node, &ledger, "instances applied").await
}

/// Waits until the node has applied the block after the currently finalized one: the node
/// applies blocks in order, so everything finalized now is in its catalog then.
async fn wait_finalized(node: &Node, ledger: &Ledger, what: &str) -> anyhow::Result<()> {
    let target = ledger.finalized().0 + 1;
    wait_until(what, || node_height(node) >= target).await
}

/// The last block the node started applying, from its metrics.
fn node_height(node: &Node) -> u64 {
    node.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix("vigil_ledger_height "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    while !done() {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Stores `count` normal temperatures for `person`, so that a read at `--limit` returns that
/// many observations.
fn store_readings(node: &Node, person: &Person, count: usize) -> anyhow::Result<()> {
    for pack in 0..count.div_ceil(STORED_PER_PACK) {
        let mut draft = PackDraft::new(person.device.clone(), pack as u64 + 1);
        for r in 0..STORED_PER_PACK {
            let t = T0_MS + ((pack * STORED_PER_PACK + r) as i64) * 1_000;
            draft.push(Metric::BodyTemperature, t, Value::Scalar(3_650));
        }
        let reply = node.ingest(Some(person.id), &draft.sign(&person.key).to_json(), "bench");
        anyhow::ensure!(
            reply.error.is_none() && reply.stored == STORED_PER_PACK,
            "storing the read patient's readings: {:?}",
            reply.error
        );
    }
    Ok(())
}

/// One fever per person, published over MQTT as a device does, timed until its alert arrives
/// on the SSE stream, one at a time.
async fn time_fevers(
    client: &AsyncClient,
    alerts: &mut mpsc::Receiver<PersonId>,
    people: &[Person],
) -> anyhow::Result<Phase> {
    let mut latencies_ms = Vec::with_capacity(people.len());
    for person in people {
        let mut draft = PackDraft::new(person.device.clone(), 1);
        draft.push(Metric::BodyTemperature, T0_MS, Value::Scalar(3_920));
        let bytes = draft.sign(&person.key).to_json();
        let sent = Instant::now();
        client
            .publish(
                vigil_gateway::topic::uplink(person.id, &person.device),
                QoS::AtLeastOnce,
                false,
                bytes,
            )
            .await
            .context("MQTT publish")?;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let alerted = tokio::time::timeout_at(deadline, alerts.recv())
                .await
                .with_context(|| format!("no alert on the SSE stream for {}", person.id))?
                .context("the SSE stream ended")?;
            if alerted == person.id {
                latencies_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
                eprintln!(
                    "  alert after {:.0} ms",
                    sent.elapsed().as_secs_f64() * 1000.0
                );
                break;
            }
        }
    }
    latencies_ms.sort_by(f64::total_cmp);
    Ok(Phase {
        latencies_ms,
        reads: 0,
        read_ms: Vec::new(),
    })
}

/// Reads `url` until `stop`, checking each answer holds `limit` observations; returns each
/// read's duration.
async fn read_loop(
    http: reqwest::Client,
    url: String,
    token: String,
    limit: usize,
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicUsize>,
) -> anyhow::Result<Vec<f64>> {
    let mut durations = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let response = http.get(&url).bearer_auth(&token).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "read refused: {}",
            response.status()
        );
        let body = response.bytes().await?;
        // Checked once per reader: parsing megabytes on every read would load this process's
        // cores, which the node shares, more than the storm itself.
        if durations.is_empty() {
            let body: serde_json::Value = serde_json::from_slice(&body)?;
            let got = body["observations"].as_array().map_or(0, Vec::len);
            anyhow::ensure!(
                got == limit,
                "a read returned {got} of {limit} observations"
            );
        }
        durations.push(started.elapsed().as_secs_f64() * 1000.0);
        eprintln!(
            "  read in {:.0} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
        reads.fetch_add(1, Ordering::Relaxed);
    }
    Ok(durations)
}

/// Opens the operators' alert stream and yields the person of each alert as it arrives.
async fn sse_alerts(
    http: &reqwest::Client,
    api: SocketAddr,
    token: &str,
) -> anyhow::Result<mpsc::Receiver<PersonId>> {
    let mut response = http
        .get(format!("http://{api}/api/alerts/stream"))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "the alert stream was refused: {}",
        response.status()
    );
    let (sender, receiver) = mpsc::channel(1024);
    tokio::spawn(async move {
        let mut pending = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                let Some(data) = line.trim_end().strip_prefix("data: ") else {
                    continue;
                };
                let Ok(event) = serde_json::from_str::<serde_json::Value>(data) else {
                    continue;
                };
                let person = event["person"].as_str().and_then(|p| p.parse().ok());
                if event["type"] == "alert"
                    && let Some(person) = person
                    && sender.send(person).await.is_err()
                {
                    return;
                }
            }
        }
    });
    Ok(receiver)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(args: &BenchArgs, quiet: &Phase, loaded: &Phase) {
    let (q50, q99) = (
        percentile(&quiet.latencies_ms, 50.0),
        percentile(&quiet.latencies_ms, 99.0),
    );
    let (l50, l99) = (
        percentile(&loaded.latencies_ms, 50.0),
        percentile(&loaded.latencies_ms, 99.0),
    );
    println!(
        "alerts bench: 4 validators (authenticated p2p on 127.0.0.1), one node; {} fevers per \
         phase, MQTT publish -> SSE alert; loaded: {} readers of one patient at limit={}",
        args.alerts, args.readers, args.limit
    );
    println!("{:<28} {:>10} {:>10}", "", "quiet", "loaded");
    println!("{:<28} {:>10.1} {:>10.1}", "alert p50 (ms)", q50, l50);
    println!("{:<28} {:>10.1} {:>10.1}", "alert p99 (ms)", q99, l99);
    println!("{:<28} {:>10} {:>10}", "reads completed", 0, loaded.reads);
    println!(
        "{:<28} {:>10} {:>10.1}",
        "read p50 (ms)",
        "-",
        percentile(&loaded.read_ms, 50.0)
    );
    println!(
        "quiet_p50_ms={q50:.1} quiet_p99_ms={q99:.1} loaded_p50_ms={l50:.1} loaded_p99_ms={l99:.1} \
         p99_ratio={:.2} readers={} limit={} reads={} alerts={}",
        l99 / q99,
        args.readers,
        args.limit,
        loaded.reads,
        args.alerts
    );
}

fn random_bytes() -> anyhow::Result<[u8; 16]> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).context("random source")?;
    Ok(bytes)
}

/// A port on 127.0.0.1 that was free a moment ago, for the embedded broker.
fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1")?;
    Ok(listener.local_addr()?)
}

fn temp_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "vigil-bench-alerts-{}",
        hex::encode(random_bytes()?)
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
