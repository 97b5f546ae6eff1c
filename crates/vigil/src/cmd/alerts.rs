//! `vigil bench alerts`: the latency from a device's MQTT publish of a fever to its alert on
//! the operators' SSE stream, first on a quiet node, then while `--readers` clients read one
//! patient's readings at `--limit` in a loop (a read storm). Four validators, one node and its
//! API, all in this process on 127.0.0.1. The node's HTTP layer must keep the storm off the
//! ingestion path: the loaded p99 should stay within 2x of the quiet one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio::sync::mpsc;
use vigil_core::senml::PackDraft;
use vigil_core::{DeviceId, DeviceKey, Metric, PersonId, Value};
use vigil_ledger::node::Ledger;
use vigil_ledger::signer::Signer;
use vigil_ledger::tx::{Deployment, TxBody};
use vigil_node::Node;

use super::bench_node::{alerted_people, on_bench_node, percentile};

#[derive(Args, Clone)]
pub struct BenchArgs {
    /// Fevers timed in each phase (one person each).
    #[arg(long, default_value_t = 30)]
    pub alerts: usize,
    /// Concurrent readers of one patient's readings in the loaded phase.
    #[arg(long, default_value_t = 8)]
    pub readers: usize,
    /// Observations each read asks for (`?limit=`; the API answers at most 1,000).
    #[arg(long, default_value_t = 1_000)]
    pub limit: usize,
    /// Rounds of quiet then loaded fevers.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

const WAIT: Duration = Duration::from_secs(120);
/// Longer than one read at the largest limit and its rest, in a debug build.
const STORM_DRAIN: Duration = Duration::from_secs(4);
/// First reading time: six hours ago, so the stored readings (one a second, at most
/// `READ_LIMIT_MAX` of them) end before now, and the fevers stay within the ledger's 24 h
/// recency bound for alert evidence.
fn t0_ms() -> i64 {
    vigil_node::now_ms() - 6 * 3_600_000
}
/// Readings per pack stored for the read patient.
const STORED_PER_PACK: usize = 100;

/// One person with a thermometer and a threshold contract on it.
struct Person {
    id: PersonId,
    device: DeviceId,
    key: DeviceKey,
}

#[derive(Default)]
struct Phase {
    latencies_ms: Vec<f64>,
    /// Reads completed while fevers were timed.
    reads: usize,
}

pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.alerts >= 1, "--alerts must be at least 1");
    anyhow::ensure!(
        (1..=vigil_ehr::READ_LIMIT_MAX).contains(&args.limit),
        "--limit must be 1..={}",
        vigil_ehr::READ_LIMIT_MAX
    );
    let shape = args.clone();
    let (quiet, loaded) = on_bench_node("alerts", move |bench| async move {
        run(
            &bench.node,
            &bench.operator,
            &shape,
            bench.mqtt,
            bench.api,
            &bench.token,
        )
        .await
    })?;
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
    let mut alerts = alerted_people(&http, api, token).await?;
    // The broker wants a login: the first fever's device (enrolled above) logs in. Not a
    // `vigil-…` client id: those are the node's own.
    let client_id = "bench-alerts";
    let login = vigil_gateway::auth::device_login(
        &people[1].key,
        people[1].id,
        &people[1].device,
        client_id,
        vigil_node::now_ms(),
    );
    let mut options = MqttOptions::new(client_id, mqtt.ip().to_string(), mqtt.port());
    options.set_credentials(login.username, login.password);
    let (client, mut connection) = AsyncClient::new(options, 64);
    let mqtt_task = tokio::spawn(async move {
        // Drives the connection; ends when the client is dropped or on error.
        while connection.poll().await.is_ok() {}
    });
    // Quiet and loaded fevers alternate in rounds, so that whatever else the machine does
    // weighs on both alike.
    let url = format!(
        "http://{api}/api/people/{}/readings?limit={}",
        people[0].id, args.limit
    );
    check_read(&http, &url, token, args.limit).await?;
    // The read's rest ends before the first quiet fever.
    tokio::time::sleep(STORM_DRAIN).await;
    let rounds = args.rounds.clamp(1, args.alerts);
    let per_round = args.alerts.div_ceil(rounds);
    let (quiet_people, loaded_people) = people[1..].split_at(args.alerts);
    let mut quiet = Phase::default();
    let mut loaded = Phase::default();
    for (round, (q, l)) in quiet_people
        .chunks(per_round)
        .zip(loaded_people.chunks(per_round))
        .enumerate()
    {
        eprintln!("round {round}: {} fevers on a quiet node", q.len());
        quiet
            .latencies_ms
            .extend(time_fevers(&client, &mut alerts, q).await?);
        eprintln!(
            "round {round}: {} fevers during a storm of {} readers",
            l.len(),
            args.readers
        );
        let storm = Storm::start(&http, &url, token, args.readers);
        let started = Instant::now();
        // The storm is on once reads flow: by then every reader has a request waiting.
        while storm.reads.load(Ordering::Relaxed) == 0 && started.elapsed() < WAIT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let timed = time_fevers(&client, &mut alerts, l).await;
        loaded.reads += storm.stop()?;
        loaded.latencies_ms.extend(timed?);
        // The read the node is serving when the storm stops still runs: let it end before the
        // next quiet fevers.
        tokio::time::sleep(STORM_DRAIN).await;
    }
    quiet.latencies_ms.sort_by(f64::total_cmp);
    loaded.latencies_ms.sort_by(f64::total_cmp);
    let _ = client.disconnect().await;
    mqtt_task.abort();
    Ok((quiet, loaded))
}

/// Readers of one patient's readings, each reading again as soon as it is answered.
struct Storm {
    readers: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    reads: Arc<AtomicUsize>,
}

impl Storm {
    fn start(http: &reqwest::Client, url: &str, token: &str, readers: usize) -> Self {
        let reads = Arc::new(AtomicUsize::new(0));
        let readers = (0..readers)
            .map(|_| {
                let (http, url, token) = (http.clone(), url.to_owned(), token.to_owned());
                let reads = reads.clone();
                tokio::spawn(async move { read_loop(http, url, token, reads).await })
            })
            .collect();
        Self { readers, reads }
    }

    /// Ends the storm (requests in flight are dropped) and returns the reads completed; the
    /// first reader error, if any.
    fn stop(self) -> anyhow::Result<usize> {
        for reader in &self.readers {
            if reader.is_finished() {
                continue;
            }
            reader.abort();
        }
        for reader in self.readers {
            if let Some(Ok(Err(error))) = futures::FutureExt::now_or_never(reader) {
                return Err(error);
            }
        }
        Ok(self.reads.load(Ordering::Relaxed))
    }
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
            let t = t0_ms() + ((pack * STORED_PER_PACK + r) as i64) * 1_000;
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
) -> anyhow::Result<Vec<f64>> {
    let mut latencies_ms = Vec::with_capacity(people.len());
    for person in people {
        let mut draft = PackDraft::new(person.device.clone(), 1);
        draft.push(Metric::BodyTemperature, t0_ms(), Value::Scalar(3_920));
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
    Ok(latencies_ms)
}

/// One read of `url`, checked to hold `limit` observations: the storm's readers do not parse
/// their answers, which would load this process's cores, shared with the node, more than the
/// storm itself.
async fn check_read(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    limit: usize,
) -> anyhow::Result<()> {
    let response = http.get(url).bearer_auth(token).send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "read refused: {}",
        response.status()
    );
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await?)?;
    let got = body["observations"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(
        got == limit,
        "a read returned {got} of {limit} observations"
    );
    Ok(())
}

/// Reads `url` until aborted.
async fn read_loop(
    http: reqwest::Client,
    url: String,
    token: String,
    reads: Arc<AtomicUsize>,
) -> anyhow::Result<()> {
    loop {
        let response = http.get(&url).bearer_auth(&token).send().await?;
        if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
            // The node's per-caller allowance (`EHR_REQUESTS_PER_S`). A storm does not wait
            // the `Retry-After` it is told: it tries again almost at once, as an abuser would.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        anyhow::ensure!(
            response.status().is_success(),
            "read refused: {}",
            response.status()
        );
        response.bytes().await?;
        reads.fetch_add(1, Ordering::Relaxed);
    }
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
         phase in {} rounds, MQTT publish -> SSE alert; loaded: {} readers of one patient at \
         limit={}",
        args.alerts,
        args.rounds.clamp(1, args.alerts),
        args.readers,
        args.limit
    );
    println!("{:<28} {:>10} {:>10}", "", "quiet", "loaded");
    println!("{:<28} {:>10.1} {:>10.1}", "alert p50 (ms)", q50, l50);
    println!("{:<28} {:>10.1} {:>10.1}", "alert p99 (ms)", q99, l99);
    println!("{:<28} {:>10} {:>10}", "reads completed", 0, loaded.reads);
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
