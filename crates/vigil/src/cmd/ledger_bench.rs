//! Throughput and latency of alert transactions through 4 validators (`vigil bench ledger`),
//! on the production path: each alert is submitted with its device-signed evidence
//! (`submit_with_evidence`), gossiped with it, and re-derived by every validator. In the
//! simulated mode time is simulated: CPU cost does not advance the clock, so the figures
//! measure the protocol (rounds, links, block sizes); the loopback mode runs in real time.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use commonware_cryptography::Signer as _;
use commonware_p2p::simulated::Link;
use commonware_runtime::{Clock as _, Runner as _, Spawner as _, Supervisor as _, deterministic};
use vigil_core::{AlertLevel, DeviceId, DeviceKey, PersonId};

use vigil_ledger::sim::{Cluster, ClusterConfig, Keys};
use vigil_ledger::tx::{Deployment, Tx, TxBody, TxId};

/// Bench parameters.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub seed: u64,
    /// Alerts submitted in total.
    pub alerts: usize,
    /// Alerts submitted per second of simulated time.
    pub rate_per_s: usize,
    /// One-way link latency: mean and jitter.
    pub latency_ms: u64,
    pub jitter_ms: u64,
    pub gateways: usize,
    pub people: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            seed: 0,
            alerts: 20_000,
            rate_per_s: 10_000,
            latency_ms: 35,
            jitter_ms: 8,
            gateways: 8,
            people: 16,
        }
    }
}

/// What the bench measured.
#[derive(Clone, Debug)]
pub struct BenchReport {
    pub alerts: usize,
    pub blocks: u64,
    pub seconds: f64,
    pub tx_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Mean evidence bytes gossiped with each alert.
    pub evidence_bytes_per_alert: f64,
    /// Share of the process's CPU time spent checking evidence (signatures, re-derivation),
    /// over the submission-to-last-finalization run; loopback only (simulated time has no CPU).
    pub evidence_cpu_share: Option<f64>,
}

fn setup_txs(keys: &Keys, chain_id: &[u8; 32], people: usize) -> (Vec<Tx>, Vec<Deployment>) {
    let mut txs = Vec::new();
    let mut deployments = Vec::new();
    let mut nonce = 0;
    let mut sign = |body| {
        let tx = Tx::sign(&keys.operator, chain_id, nonce, body);
        nonce += 1;
        tx
    };
    for i in 0..people {
        let person = PersonId::from_bytes([
            (i % 256) as u8,
            (i / 256) as u8,
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            8,
            9,
            10,
            11,
            12,
            13,
            14,
        ]);
        let device: DeviceId = format!("bench-{i}").parse().expect("valid id");
        txs.push(sign(TxBody::RegisterPerson { person }));
        txs.push(sign(TxBody::EnrollDevice {
            person,
            device: device.clone(),
            public_key: device_key(i).public().to_bytes(),
        }));
        let deployment = Deployment::new(
            person,
            device,
            &vigil_contracts::Params::Threshold(vigil_contracts::ThresholdParams::seed(
                vigil_core::Metric::BodyTemperature,
                3500,
                3750,
                50,
            )),
        );
        txs.push(sign(TxBody::DeployInstance {
            deployment: deployment.clone(),
        }));
        deployments.push(deployment);
    }
    (txs, deployments)
}

/// One alert as a node submits it: the index of the gateway that signed it, the transaction
/// and the device-signed evidence that re-derives it (one pack with a critical temperature,
/// signed by the instance's enrolled key).
type AlertWithEvidence = (usize, Tx, vigil_contracts::Evidence);

/// The device key `setup_txs` enrolls for person `i`.
fn device_key(i: usize) -> DeviceKey {
    let mut seed = [7u8; 32];
    seed[0] = i as u8;
    DeviceKey::from_seed(seed)
}

/// `count` critical alerts, round robin over the gateways (each in nonce order) and the
/// deployed instances, each on a later reading of its instance's device (from `base_ms`, so
/// readings are recent for the block times of the run). Each instance's alerts come from one
/// gateway, as a person's device talks to one node: an instance's alerts must be finalized in
/// reading order (`Rejection::AlertNotNewer`), which only one signer's nonce order guarantees.
fn sign_alerts(
    keys: &Keys,
    chain_id: &[u8; 32],
    deployments: &[Deployment],
    count: usize,
    base_ms: i64,
) -> Vec<AlertWithEvidence> {
    let per_gateway = count.div_ceil(keys.gateways.len());
    let device_keys: Vec<DeviceKey> = (0..deployments.len()).map(device_key).collect();
    let mut raised = vec![0u64; deployments.len()];
    let mut alerts = Vec::with_capacity(count);
    for n in 0..per_gateway {
        for (g, gateway) in keys.gateways.iter().enumerate() {
            if alerts.len() >= count {
                break;
            }
            let gateways = keys.gateways.len();
            let own = deployments.len().div_ceil(gateways);
            let d = (g + gateways * (n % own)) % deployments.len();
            let deployment = &deployments[d];
            raised[d] += 1;
            let time_ms = base_ms + raised[d] as i64;
            let mut draft = vigil_core::senml::PackDraft::new(deployment.device.clone(), raised[d]);
            draft.push(
                vigil_core::Metric::BodyTemperature,
                time_ms,
                vigil_core::Value::Scalar(3900),
            );
            let contract = vigil_ledger::evidence::contract_deployment(deployment)
                .expect("the bench's parameters are readable");
            let evidence = vigil_contracts::Evidence::DeviceSigned {
                instance: contract.id(),
                packs: vec![draft.sign(&device_keys[d])],
                last_pack_readings: 1,
                tick_ms: None,
            };
            let tx = Tx::sign(
                gateway,
                chain_id,
                n as u64,
                TxBody::Alert {
                    instance: deployment.instance_id(),
                    level: AlertLevel::Critical,
                    reading_time_ms: time_ms,
                    evidence: evidence.digest(),
                },
            );
            alerts.push((g, tx, evidence));
        }
    }
    alerts
}

/// Mean bytes of evidence gossiped per alert (as `vigil_ledger::evidence::encode` sends it).
fn evidence_bytes_per_alert(alerts: &[AlertWithEvidence]) -> f64 {
    let total: usize = alerts
        .iter()
        .map(|(_, _, e)| vigil_ledger::evidence::encode(e).len())
        .sum();
    total as f64 / alerts.len().max(1) as f64
}

/// Throughput from the first submission to the last finalization, and the latency
/// percentiles of the alerts that were finalized.
fn summarize(
    submitted: &HashMap<TxId, SystemTime>,
    finalized: &HashMap<TxId, SystemTime>,
    blocks: u64,
    start: SystemTime,
) -> BenchReport {
    let end = finalized.values().max().copied().unwrap_or(start);
    let mut latencies: Vec<f64> = submitted
        .iter()
        .filter_map(|(id, t)| finalized.get(id).map(|f| ms_since(*t, *f)))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let seconds = ms_since(start, end) / 1000.0;
    BenchReport {
        alerts: latencies.len(),
        blocks,
        seconds,
        tx_per_s: latencies.len() as f64 / seconds.max(f64::EPSILON),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        evidence_bytes_per_alert: 0.0,
        evidence_cpu_share: None,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Milliseconds since the Unix epoch of a runtime's clock reading.
fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// User plus system CPU seconds of this process so far (Linux `/proc/self/stat`, in clock
/// ticks of 1/100 s); 0 where it cannot be read.
fn process_cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return 0.0;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn ms_since(a: SystemTime, b: SystemTime) -> f64 {
    b.duration_since(a).unwrap_or_default().as_secs_f64() * 1000.0
}

/// Run the simulated bench.
pub fn simulated(config: BenchConfig) -> BenchReport {
    let (sender, receiver) = std::sync::mpsc::channel();
    let runtime = deterministic::Config::new()
        .with_seed(config.seed)
        .with_timeout(Some(Duration::from_secs(3600)));
    deterministic::Runner::new(runtime).start(move |context| async move {
        let cluster_config = ClusterConfig {
            link: Link {
                latency: Duration::from_millis(config.latency_ms),
                jitter: Duration::from_millis(config.jitter_ms),
                success_rate: commonware_utils::probability!(1.0),
            },
            ..ClusterConfig::default()
        };
        let keys = Keys::new(4, config.gateways);
        let mut cluster = Cluster::new(context, cluster_config, keys).await;
        cluster.start_all().await;
        let chain_id = cluster.genesis.chain_id;
        let (setup, deployments) = setup_txs(&cluster.keys, &chain_id, config.people);
        let ledger = cluster.ledger(0).expect("running").clone();
        let mut rng = cluster.context().child("client");
        let operator = cluster.keys.operator.public_key();
        for r in ledger.submit_many(&mut rng, setup.clone()) {
            r.expect("setup admitted");
        }
        while ledger.next_nonce(&operator) < setup.len() as u64 {
            cluster.context().sleep(Duration::from_millis(50)).await;
        }
        // Sign every alert up front (signing is the devices' and gateways' work, not ours).
        let base_ms = epoch_ms(cluster.context().current());
        let alerts = sign_alerts(
            &cluster.keys,
            &chain_id,
            &deployments,
            config.alerts,
            base_ms,
        );
        // Finalization times, observed at validator 1.
        let observed = cluster.ledger(1).expect("running");
        let mut finalized = observed.follow(observed.snapshot().height() + 1);
        let clock = cluster.context().child("observer");
        let (done_tx, done_rx) = futures::channel::oneshot::channel();
        let wanted: usize = alerts.len();
        clock.spawn(move |context| async move {
            let mut times: HashMap<TxId, SystemTime> = HashMap::with_capacity(wanted);
            let mut blocks = 0u64;
            while times.len() < wanted {
                let Some(followed) = finalized.next().await else {
                    break;
                };
                let block = followed.block;
                blocks += 1;
                let now = context.current();
                for tx in block.txs() {
                    times.insert(tx.id(), now);
                }
            }
            let _ = done_tx.send((times, blocks));
        });
        // Submit at the configured rate, in 10 ms ticks.
        const TICK: Duration = Duration::from_millis(10);
        let per_tick = (config.rate_per_s / 100).max(1);
        let mut submitted: HashMap<TxId, SystemTime> = HashMap::with_capacity(alerts.len());
        let start = cluster.context().current();
        for chunk in alerts.chunks(per_tick) {
            let now = cluster.context().current();
            // Each gateway (a node) submits to its own validator, in nonce order.
            for (g, tx, evidence) in chunk {
                submitted.insert(tx.id(), now);
                let target = cluster.ledger(g % cluster.len()).expect("running");
                target
                    .submit_with_evidence(&mut rng, tx.clone(), evidence.clone())
                    .expect("alert admitted with its evidence");
            }
            cluster.context().sleep(TICK).await;
        }
        let (times, blocks) = done_rx.await.expect("observer");
        let mut report = summarize(&submitted, &times, blocks, start);
        report.evidence_bytes_per_alert = evidence_bytes_per_alert(&alerts);
        let _ = sender.send(report);
    });
    receiver.recv().expect("bench report")
}

/// Run the bench in real time: 4 validators in this process on the tokio runtime, talking
/// over authenticated p2p on 127.0.0.1 sockets ([`vigil_ledger::local`]), storage under `dir`.
/// Gives up after `timeout` of wall time (the report then counts what was finalized).
pub fn loopback(config: BenchConfig, dir: &std::path::Path, timeout: Duration) -> BenchReport {
    use commonware_runtime::tokio;
    let runtime = tokio::Config::new().with_storage_directory(dir);
    tokio::Runner::new(runtime).start(|mut context| async move {
        let keys = Keys::new(4, config.gateways);
        let cluster = vigil_ledger::local::start_local(
            context.child("cluster"),
            vigil_ledger::local::LocalConfig::new(keys),
        )
        .await;
        let chain_id = cluster.genesis.chain_id;
        let (setup, deployments) = setup_txs(&cluster.keys, &chain_id, config.people);
        let ledger = cluster.ledgers[0].clone();
        let operator = cluster.keys.operator.public_key();
        for r in ledger.submit_many(&mut context, setup.clone()) {
            r.expect("setup admitted");
        }
        let deadline = context.current() + timeout;
        while ledger.next_nonce(&operator) < setup.len() as u64 {
            assert!(context.current() < deadline, "setup not finalized");
            context.sleep(Duration::from_millis(20)).await;
        }
        let base_ms = epoch_ms(context.current());
        let alerts = sign_alerts(
            &cluster.keys,
            &chain_id,
            &deployments,
            config.alerts,
            base_ms,
        );
        let mut finalized = cluster.ledgers[1].follow(cluster.ledgers[1].snapshot().height() + 1);
        let (done_tx, done_rx) = futures::channel::oneshot::channel();
        let wanted = alerts.len();
        context.child("observer").spawn(move |context| async move {
            let mut times: HashMap<TxId, SystemTime> = HashMap::with_capacity(wanted);
            let mut blocks = 0u64;
            while times.len() < wanted {
                let next = futures::future::select(
                    Box::pin(finalized.next()),
                    Box::pin(context.sleep_until(deadline)),
                )
                .await;
                let futures::future::Either::Left((Some(followed), _)) = next else {
                    break;
                };
                let block = followed.block;
                blocks += 1;
                let now = context.current();
                for tx in block.txs() {
                    times.insert(tx.id(), now);
                }
            }
            let _ = done_tx.send((times, blocks));
        });
        const TICK: Duration = Duration::from_millis(10);
        let per_tick = (config.rate_per_s / 100).max(1);
        let mut submitted: HashMap<TxId, SystemTime> = HashMap::with_capacity(alerts.len());
        let start = context.current();
        let cpu_before = process_cpu_s();
        let evidence_before = vigil_ledger::evidence::checking_time();
        for (i, chunk) in alerts.chunks(per_tick).enumerate() {
            let now = context.current();
            // Each gateway (a node) submits to its own validator, in nonce order.
            for (g, tx, evidence) in chunk {
                submitted.insert(tx.id(), now);
                let target = &cluster.ledgers[g % cluster.ledgers.len()];
                target
                    .submit_with_evidence(&mut context, tx.clone(), evidence.clone())
                    .expect("alert admitted with its evidence");
            }
            // Pace by the schedule, not by the tick, so slow submission does not lower the rate.
            let due = start + TICK * (i as u32 + 1);
            context.sleep_until(due).await;
        }
        let (times, blocks) = done_rx.await.expect("observer");
        let evidence_s = (vigil_ledger::evidence::checking_time() - evidence_before).as_secs_f64();
        let cpu_s = process_cpu_s() - cpu_before;
        cluster.shutdown();
        let mut report = summarize(&submitted, &times, blocks, start);
        report.evidence_bytes_per_alert = evidence_bytes_per_alert(&alerts);
        report.evidence_cpu_share = (cpu_s > 0.0).then(|| evidence_s / cpu_s);
        report
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_submitted_alert_is_finalized_and_measured() {
        let report = simulated(BenchConfig {
            alerts: 2_000,
            rate_per_s: 4_000,
            ..BenchConfig::default()
        });
        assert_eq!(report.alerts, 2_000);
        assert!(report.p50_ms > 0.0 && report.p50_ms <= report.p99_ms);
        assert!(report.tx_per_s > 0.0);
    }

    /// The full-size run behind `vigil bench ledger` (simulated mode): `cargo test -p
    /// vigil-ledger --release bench_full -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_full() {
        let report = simulated(BenchConfig::default());
        println!("{report:?}");
    }

    /// The loopback run behind `vigil bench ledger --mode loopback`, for profiling the ledger
    /// alone: `VIGIL_BENCH_ALERTS=40000 VIGIL_BENCH_RATE=20000 cargo test -p vigil-ledger
    /// --release bench_loopback -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_loopback() {
        let env = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let dir = std::env::temp_dir().join(format!("vigil-bench-loopback-{}", std::process::id()));
        let report = loopback(
            BenchConfig {
                alerts: env("VIGIL_BENCH_ALERTS", 20_000),
                rate_per_s: env("VIGIL_BENCH_RATE", 10_000),
                ..BenchConfig::default()
            },
            &dir,
            Duration::from_secs(120),
        );
        let _ = std::fs::remove_dir_all(&dir);
        println!("{report:?}");
    }
}
