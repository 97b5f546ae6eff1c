//! The node's reader of finalized blocks paused far past the finalized view's bound, on real
//! components (four validators over authenticated p2p on loopback, the node, its SQLite
//! record).
//!
//! The node runs on a tokio runtime of its own, with one thread, so the test can freeze it
//! whole while the validators go on finalizing; a contract instance is deployed meanwhile.
//! Once the node is released it must apply every block it missed, in order (the live
//! stream's block events have no gap), so the deployment reaches its catalog, an alert raised
//! afterwards reaches the operators' event stream, and its records are anchored.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{WAIT, enroll_device, event_stream, next_event, register_person, t0_ms, until};
use commonware_runtime::{Runner as _, Supervisor as _, tokio as cw_tokio};
use tokio::sync::broadcast::error::TryRecvError;
use vigil_core::senml::PackDraft;
use vigil_core::{DeviceId, DeviceKey, Metric, Value};
use vigil_ledger::local::{LocalConfig, start_local};
use vigil_ledger::node::Ledger;
use vigil_ledger::signer::Signer;
use vigil_ledger::sim::Keys;
use vigil_ledger::tx::{Deployment, TxBody};
use vigil_node::users::{Principal, Users};
use vigil_node::{LiveEvent, MqttMode, Node, NodeConfig};

/// Blocks finalized while the node is frozen, at least: far past the finalized view's bound
/// (it holds the latest snapshot only).
const PAUSED_BLOCKS: u64 = 40;
const OPERATOR: &str = "operator-token-for-this-test";

/// Starts the node on a one-thread runtime on a thread of its own; returns the node, its API
/// address and a handle to that runtime.
async fn start_node_apart(
    ledger: Ledger,
    config: NodeConfig,
) -> (Arc<Node>, SocketAddr, tokio::runtime::Handle) {
    let (started, node) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("node runtime");
        runtime.block_on(async move {
            let (node, api) = vigil_api::start(ledger, config, common::LOOPBACK)
                .await
                .expect("node starts");
            let _ = started.send((node, api, tokio::runtime::Handle::current()));
            std::future::pending::<()>().await
        });
    });
    node.await.expect("node started")
}

/// Blocks the node runtime's only thread until the returned sender is dropped or sent to.
async fn freeze(runtime: &tokio::runtime::Handle) -> std::sync::mpsc::Sender<()> {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (frozen, is_frozen) = tokio::sync::oneshot::channel();
    runtime.spawn(async move {
        let _ = frozen.send(());
        let _ = released.recv();
    });
    is_frozen.await.expect("the node runtime froze");
    release
}

fn fever_pack(device: &DeviceId, key: &DeviceKey, sequence: u64, centi: i32) -> Vec<u8> {
    let mut draft = PackDraft::new(device.clone(), sequence);
    draft.push(
        Metric::BodyTemperature,
        t0_ms() + sequence as i64 * 60_000,
        Value::Scalar(centi),
    );
    draft.sign(key).to_json()
}

#[test]
fn a_reader_paused_past_the_bound_applies_every_block_and_alerts_after_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = cw_tokio::Config::new().with_storage_directory(dir.path().join("ledger"));
    let data_dir = dir.path().join("node");
    cw_tokio::Runner::new(runtime).start(|context| async move {
        let cluster = start_local(context.child("ledger"), LocalConfig::new(Keys::new(4, 1))).await;
        let operator = Signer::new(cluster.keys.operator.clone());
        let mut users = Users::default();
        users.insert(
            OPERATOR,
            Principal::Staff {
                name: "operator".into(),
                signer: Signer::new(cluster.keys.operator.clone()).into(),
            },
        );
        let config = NodeConfig {
            data_dir,
            mqtt: MqttMode::Disabled,
            ehr_master_key: vigil_ehr::SecretKey::random(),
            gateway: Signer::new(cluster.keys.gateways[0].clone()),
            users,
            future_skew: vigil_node::FUTURE_SKEW_DEFAULT,
            map_tiles: None,
            notify: None,
        };
        let ledger = cluster.ledgers[0].clone();
        let (node, api, node_runtime) = start_node_apart(ledger.clone(), config).await;
        let mut applied = node.subscribe();
        let person = register_person(api, OPERATOR, "Ana Souza", &ledger).await;
        let thermo: DeviceId = "thermo-01".parse().expect("valid");
        let key = DeviceKey::from_seed([1; 32]);
        enroll_device(api, OPERATOR, person, &thermo, &key.public(), &ledger).await;
        let reply = node.ingest(Some(person), &fever_pack(&thermo, &key, 1, 3_690), "http");
        assert!(reply.accepted && reply.stored == 1, "{reply:?}");

        // Freeze the node, then note the last block it applied (a block being applied when the
        // runtime froze finishes on its blocking thread; no other can start).
        let release = freeze(&node_runtime).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut last_applied = 0;
        loop {
            match applied.try_recv() {
                Ok(LiveEvent::Block { height, .. }) => last_applied = height,
                Ok(_) => {}
                Err(TryRecvError::Empty) => break,
                Err(error) => panic!("live stream: {error}"),
            }
        }
        assert!(
            last_applied > 0,
            "the node applied no block before the pause"
        );
        let paused_at = ledger.finalized().0;

        // While it is frozen: a threshold contract on the thermometer, and many more blocks.
        let params = vigil_contracts::Params::Threshold(vigil_contracts::ThresholdParams {
            warning_above: Some(3_750),
            critical_above: Some(3_850),
            ..vigil_contracts::ThresholdParams::seed(Metric::BodyTemperature, 3_500, 3_750, 100)
        });
        let deployment = Deployment::new(person, thermo.clone(), &params);
        let instance = deployment.instance_id();
        operator
            .submit_tx(&ledger, TxBody::DeployInstance { deployment })
            .expect("deployment admitted");
        until("the deployment finalized and many blocks after it", || {
            let snapshot = ledger.snapshot();
            (snapshot.instance(&instance).is_some()
                && snapshot.height() >= paused_at + PAUSED_BLOCKS)
                .then_some(())
        })
        .await;
        let released_at = ledger.finalized().0;
        assert!(applied.is_empty(), "the node applied blocks while frozen");
        drop(release);

        // Every block after the last one applied, in order, none twice, none skipped.
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut next = last_applied + 1;
        while next <= released_at {
            let event = tokio::time::timeout_at(deadline, applied.recv())
                .await
                .unwrap_or_else(|_| panic!("block {next} never applied after the pause"))
                .expect("live stream open");
            if let LiveEvent::Block { height, .. } = event {
                assert_eq!(height, next, "blocks applied out of order or skipped");
                next += 1;
            }
        }

        // The deployment made while frozen is in the catalog: a fever now alerts the operators.
        let mut events = event_stream(api, OPERATOR).await;
        next_event(&mut events, "the stream live", |e| e["type"] == "block").await;
        let reply = node.ingest(Some(person), &fever_pack(&thermo, &key, 2, 3_920), "http");
        assert!(reply.accepted && reply.stored == 1, "{reply:?}");
        let alert = next_event(&mut events, "the alert after the pause", |e| {
            e["type"] == "alert" && e["person"] == person.to_string()
        })
        .await;
        assert_eq!(alert["instance"], instance.to_string());
        assert!(alert["height"].as_u64().expect("a height") > released_at);

        // And both records are anchored on the ledger.
        let report = until("every record anchored", || {
            let report = node.verify_ehr().ok()?;
            (report.anchored == 2 && report.pending == 0).then_some(report)
        })
        .await;
        assert!(report.is_intact(), "{report:?}");
        cluster.shutdown();
    });
}
