//! What publishing the finalized view costs per block, on a large state.
//!
//! Builds a state of `PEOPLE` people, each with a device, a threshold instance and
//! `ALERTS_PER_PERSON` alerts, then finalizes blocks of `BLOCK_ALERTS` new alerts and as many
//! acknowledgements. Per block it times the merge (tables and indexes) and the snapshot
//! (`State::clone`, which is what the ledger publishes), and, for contrast, a deep copy of the
//! alerts alone (what a snapshot would cost without structural sharing).
//!
//! `cargo bench -p vigil-ledger --bench snapshot_cost` (optionally `-- PEOPLE`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use commonware_cryptography::{Signer as _, ed25519::PrivateKey};
use vigil_core::{AlertLevel, DeviceKey, Metric, PersonId};
use vigil_ledger::state::{State, execute_block};
use vigil_ledger::tx::{Deployment, Role, Tx, TxBody};

const ALERTS_PER_PERSON: usize = 4;
const BLOCK_ALERTS: usize = 500;
const BLOCKS: usize = 20;
const CHAIN: [u8; 32] = [7; 32];

struct Signers {
    operator: PrivateKey,
    gateway: PrivateKey,
    operator_nonce: u64,
    gateway_nonce: u64,
}

impl Signers {
    fn operator(&mut self, body: TxBody) -> Tx {
        self.operator_nonce += 1;
        Tx::sign(&self.operator, &CHAIN, self.operator_nonce - 1, body)
    }
    fn gateway(&mut self, body: TxBody) -> Tx {
        self.gateway_nonce += 1;
        Tx::sign(&self.gateway, &CHAIN, self.gateway_nonce - 1, body)
    }
}

fn apply(state: &mut State, txs: &[Tx]) -> Duration {
    let layer =
        execute_block(state, &[], state.height() + 1, state.time_ms(), txs).expect("block applies");
    let started = Instant::now();
    state.merge(&layer);
    let snapshot = state.clone();
    let elapsed = started.elapsed();
    drop(snapshot);
    elapsed
}

fn alert(signers: &mut Signers, deployment: &Deployment, i: usize) -> Tx {
    signers.gateway(TxBody::Alert {
        instance: deployment.instance_id(),
        level: AlertLevel::Warning,
        reading_time_ms: i as i64,
        evidence: [(i % 251) as u8; 32],
    })
}

fn main() {
    let people: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let mut signers = Signers {
        operator: PrivateKey::from_seed(2),
        gateway: PrivateKey::from_seed(3),
        operator_nonce: 0,
        gateway_nonce: 0,
    };
    let mut state = State::genesis(
        CHAIN,
        &[
            (signers.operator.public_key(), Role::CdcpOperator),
            (signers.gateway.public_key(), Role::Gateway),
        ],
    );
    let params = vigil_contracts::Params::Threshold(vigil_contracts::ThresholdParams::seed(
        Metric::BodyTemperature,
        3_500,
        3_800,
        50,
    ));
    let mut deployments = Vec::with_capacity(people);
    for chunk in 0..people.div_ceil(1000) {
        let mut txs = Vec::new();
        for i in chunk * 1000..((chunk + 1) * 1000).min(people) {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let person = PersonId::from_bytes(id);
            let device = format!("thermo-{i}").parse().expect("device id");
            let key = DeviceKey::from_seed([(i % 251) as u8; 32])
                .public()
                .to_bytes();
            let deployment = Deployment::new(person, device, &params);
            txs.push(signers.operator(TxBody::RegisterPerson { person }));
            txs.push(signers.operator(TxBody::EnrollDevice {
                person,
                device: deployment.device.clone(),
                public_key: key,
            }));
            txs.push(signers.operator(TxBody::DeployInstance {
                deployment: deployment.clone(),
            }));
            deployments.push(deployment);
        }
        apply(&mut state, &txs);
    }
    let mut alerts = Vec::new();
    for round in 0..ALERTS_PER_PERSON {
        for chunk in deployments.chunks(1000) {
            let txs: Vec<Tx> = chunk
                .iter()
                .enumerate()
                .map(|(i, d)| alert(&mut signers, d, round * people + i))
                .collect();
            alerts.extend(txs.iter().map(Tx::id));
            apply(&mut state, &txs);
        }
    }
    println!(
        "state: {} people, {} devices, {} instances, {} alerts",
        state.person_count(),
        state.device_count(),
        state.instance_count(),
        state.alert_count()
    );

    let mut per_block = Vec::with_capacity(BLOCKS);
    for b in 0..BLOCKS {
        let mut txs: Vec<Tx> = deployments
            .iter()
            .cycle()
            .skip(b * BLOCK_ALERTS)
            .take(BLOCK_ALERTS)
            .enumerate()
            .map(|(i, d)| alert(&mut signers, d, 1_000_000 + b * BLOCK_ALERTS + i))
            .collect();
        for id in alerts.iter().skip(b * BLOCK_ALERTS).take(BLOCK_ALERTS) {
            txs.push(signers.operator(TxBody::Acknowledge { alert: *id }));
        }
        per_block.push(apply(&mut state, &txs));
    }
    per_block.sort();
    let copy = {
        let started = Instant::now();
        let copied: BTreeMap<_, _> = state
            .unresolved_alerts()
            .chain(state.alerts_with_status(vigil_ledger::state::AlertStatus::Resolved))
            .map(|(id, a)| (*id, a.clone()))
            .collect();
        let elapsed = started.elapsed();
        assert_eq!(copied.len(), state.alert_count());
        elapsed
    };
    let clone = {
        let started = Instant::now();
        let snapshot = state.clone();
        let elapsed = started.elapsed();
        drop(snapshot);
        elapsed
    };
    println!(
        "per block of {BLOCK_ALERTS} alerts + {BLOCK_ALERTS} acknowledgements: merge + snapshot median {:?}, max {:?} ({:?} per write)",
        per_block[BLOCKS / 2],
        per_block[BLOCKS - 1],
        per_block[BLOCKS / 2] / (2 * BLOCK_ALERTS) as u32
    );
    println!("snapshot alone (State::clone): {clone:?}");
    println!(
        "deep copy of the alerts alone, for contrast: {copy:?} ({} alerts)",
        state.alert_count()
    );
}
