//! `vigil bench ingest`: accepted readings per second through one node's ingestion path as
//! `Node::ingest_batch` runs it (parse, signature, exactly-once encrypted storage, contract
//! evaluation; the packs are handed over in-process, so the MQTT broker, the gateway's receive
//! loop and the replies are not in this figure), and the latency from
//! a device publishing a pack over MQTT to its alert arriving on the operators' SSE stream, with
//! four validators.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use vigil_core::senml::PackDraft;
use vigil_core::{DeviceId, DeviceKey, Metric, PersonId, Value};
use vigil_ledger::tx::{Deployment, TxBody};

use vigil_ledger::signer::Signer;
use vigil_node::Node;
use vigil_node::ingest::Incoming;

use super::bench_node::{alerted_people, percentile};

/// Where the latency probe reaches the running node: its MQTT broker (the device's side) and
/// its HTTP API with a staff token that may read the alert stream (the operators' side).
#[derive(Clone, Debug)]
pub struct LatencyProbe {
    pub mqtt: SocketAddr,
    pub api: SocketAddr,
    pub token: String,
}

/// Shape of a run; every loop below is bounded by these counts and by `WAIT`.
#[derive(Clone, Debug)]
pub struct IngestBenchConfig {
    pub people: usize,
    pub packs: usize,
    pub readings_per_pack: usize,
    pub alerts: usize,
    pub threads: usize,
    /// Packs handed to the node at once (what the MQTT loop gathers from its queue).
    pub batch: usize,
    /// Throughput rounds of `packs` each; the median round is reported.
    pub rounds: usize,
}

#[derive(Clone, Debug)]
pub struct IngestBenchReport {
    /// Readings accepted over all rounds.
    pub readings: usize,
    /// Wall time of the median round.
    pub ingest_s: f64,
    /// The median round's rate, and every round's.
    pub readings_per_s: f64,
    pub rounds_per_s: Vec<f64>,
    pub alerts: usize,
    /// From the MQTT publish of a fever pack to its alert on the SSE stream.
    pub alert_p50_ms: f64,
    pub alert_p99_ms: f64,
}

const WAIT: Duration = Duration::from_secs(120);

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    while !done() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Runs the benchmark against a started node; `operator` must hold the CDCP operator role.
pub async fn ingest(
    node: Arc<Node>,
    operator: &Signer,
    config: &IngestBenchConfig,
    probe: &LatencyProbe,
) -> Result<IngestBenchReport, String> {
    let ledger = node.ledger().clone();
    let people: Vec<(PersonId, DeviceId, DeviceKey)> = (0..config.people)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            (
                PersonId::random(),
                format!("bench-thermo-{i}").parse().expect("valid id"),
                DeviceKey::from_seed(seed),
            )
        })
        .collect();
    for (person, _, _) in &people {
        node.register_record(*person, &vigil_ehr::Identity::default())
            .map_err(|e| e.to_string())?;
    }
    let submit = |body| {
        operator
            .submit(&ledger, body)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    for (person, _, _) in &people {
        submit(TxBody::RegisterPerson { person: *person })?;
    }
    wait_until("people registered", || {
        let s = ledger.snapshot();
        people.iter().all(|(p, _, _)| s.person(p).is_some())
    })
    .await?;
    let params = vigil_contracts::Params::Threshold(vigil_contracts::ThresholdParams {
        warning_above: Some(3_750),
        critical_above: Some(3_850),
        ..vigil_contracts::ThresholdParams::seed(Metric::BodyTemperature, 3_500, 3_750, 100)
    });
    for (person, device, key) in &people {
        submit(TxBody::EnrollDevice {
            person: *person,
            device: device.clone(),
            public_key: key.public().to_bytes(),
        })?;
        submit(TxBody::DeployInstance {
            deployment: Deployment::new(*person, device.clone(), &params),
        })?;
    }
    wait_until("devices and instances", || {
        let s = ledger.snapshot();
        s.instance_count() >= people.len() && s.device_count() >= people.len()
    })
    .await?;
    wait_until("the node's catalog", || {
        node.monitored_instances() >= people.len()
    })
    .await?;

    // Throughput: normal temperatures, signed ahead of time, ingested from several threads in
    // batches. Each round uses new sequence numbers, so every pack is accepted.
    let mut rounds_per_s = Vec::with_capacity(config.rounds);
    let mut readings = 0;
    let packs_per_device = config.packs.div_ceil(people.len()) as u64;
    // A minute per sequence number, ending before now: the last fevers are recent (alert
    // evidence older than 24 h before the block is refused) and none is from the future.
    let sequences = config.rounds.max(1) as u64 * packs_per_device + config.alerts as u64 + 2;
    let t0_ms = vigil_node::now_ms() - i64::try_from(sequences).unwrap_or(i64::MAX / 2) * 60_000;
    for round in 0..config.rounds.max(1) as u64 {
        let first_sequence = round * packs_per_device + 1;
        let mut packs: Vec<(PersonId, Vec<u8>)> = Vec::with_capacity(config.packs);
        for i in 0..config.packs {
            let (person, device, key) = &people[i % people.len()];
            let sequence = first_sequence + (i / people.len()) as u64;
            let mut draft = PackDraft::new(device.clone(), sequence);
            for r in 0..config.readings_per_pack {
                let t = t0_ms + (sequence as i64) * 60_000 + r as i64 * 1_000;
                draft.push(
                    Metric::BodyTemperature,
                    t,
                    Value::Scalar(3_650 + (r % 50) as i32),
                );
            }
            packs.push((*person, draft.sign(key).to_json()));
        }
        let started = Instant::now();
        let chunk = packs.len().div_ceil(config.threads.max(1));
        let mut workers = Vec::new();
        for part in packs.chunks(chunk.max(1)).map(<[_]>::to_vec) {
            let node = node.clone();
            let batch = config.batch.max(1);
            workers.push(tokio::task::spawn_blocking(move || {
                let mut accepted = 0;
                for group in part.chunks(batch) {
                    let incoming: Vec<Incoming<'_>> = group
                        .iter()
                        .map(|(person, bytes)| Incoming {
                            person: Some(*person),
                            bytes,
                        })
                        .collect();
                    accepted += node
                        .ingest_batch(&incoming, "bench")
                        .iter()
                        .map(|reply| reply.stored)
                        .sum::<usize>();
                }
                accepted
            }));
        }
        let mut accepted = 0;
        for worker in workers {
            accepted += worker.await.map_err(|e| e.to_string())?;
        }
        let elapsed_s = started.elapsed().as_secs_f64();
        if accepted != config.packs * config.readings_per_pack {
            return Err(format!(
                "round {round}: only {accepted} of {} readings accepted",
                config.packs * config.readings_per_pack
            ));
        }
        readings += accepted;
        rounds_per_s.push(accepted as f64 / elapsed_s);
    }
    let mut sorted = rounds_per_s.clone();
    sorted.sort_by(f64::total_cmp);
    let median_per_s = percentile(&sorted, 50.0);
    let ingest_s = (config.packs * config.readings_per_pack) as f64 / median_per_s;

    // Latency: one fever per person, published over MQTT as a device does, until its alert
    // arrives on the operators' SSE stream, one at a time.
    let mut alerts_seen = alerted_people(&reqwest::Client::new(), probe.api, &probe.token)
        .await
        .map_err(|e| format!("{e:#}"))?;
    // The broker wants a login: the first person's device (enrolled above) logs in. Not a
    // `vigil-…` client id: those are the node's own.
    let client_id = "bench-device";
    let (first_person, first_device, first_key) = people.first().ok_or("no people")?;
    let login = vigil_gateway::auth::device_login(
        first_key,
        *first_person,
        first_device,
        client_id,
        vigil_node::now_ms(),
    );
    let mut options = MqttOptions::new(client_id, probe.mqtt.ip().to_string(), probe.mqtt.port());
    options.set_credentials(login.username, login.password);
    let (mqtt, mut mqtt_loop) = AsyncClient::new(options, 64);
    let mqtt_task = tokio::spawn(async move {
        // Drives the connection; ends with the benchmark (the client is dropped) or on error.
        while let Ok(event) = mqtt_loop.poll().await {
            if let Event::Incoming(Packet::Disconnect) = event {
                break;
            }
        }
    });
    let mut latencies = Vec::with_capacity(config.alerts);
    for (i, (person, device, key)) in people.iter().take(config.alerts).enumerate() {
        // After every round's sequence numbers, inside the replay window.
        let sequence = config.rounds.max(1) as u64 * packs_per_device + 1 + i as u64;
        let mut draft = PackDraft::new(device.clone(), sequence);
        draft.push(
            Metric::BodyTemperature,
            // After every throughput reading.
            t0_ms + (sequence as i64 + 1) * 60_000,
            Value::Scalar(3_920),
        );
        let bytes = draft.sign(key).to_json();
        let sent = Instant::now();
        mqtt.publish(
            vigil_gateway::topic::uplink(*person, device),
            QoS::AtLeastOnce,
            false,
            bytes,
        )
        .await
        .map_err(|e| format!("MQTT publish: {e}"))?;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let alerted = tokio::time::timeout_at(deadline, alerts_seen.recv())
                .await
                .map_err(|_| format!("no alert on the SSE stream for fever {i}"))?
                .ok_or("the SSE stream ended")?;
            if alerted == *person {
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                break;
            }
        }
    }
    let _ = mqtt.disconnect().await;
    mqtt_task.abort();
    latencies.sort_by(f64::total_cmp);
    Ok(IngestBenchReport {
        readings,
        ingest_s,
        readings_per_s: median_per_s,
        rounds_per_s,
        alerts: latencies.len(),
        alert_p50_ms: percentile(&latencies, 50.0),
        alert_p99_ms: percentile(&latencies, 99.0),
    })
}
