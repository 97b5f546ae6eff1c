//! Fault test for the device link: the master device's connection to the node is cut while it
//! publishes, and refused for a while; afterwards every reading is stored exactly once.
//! The cut is made by a TCP proxy on 127.0.0.1 that this test owns.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{WAIT, enroll_device, free_port, register_person, t0_ms, until};
use commonware_runtime::{Runner as _, Supervisor as _, tokio as cw_tokio};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use vigil_core::{DeviceId, DeviceKey, Metric, Value};
use vigil_gateway::outbox::{DeviceCredential, Outbox, Uploader};
use vigil_ledger::local::{LocalConfig, start_local};
use vigil_ledger::signer::Signer;
use vigil_ledger::sim::Keys;
use vigil_node::users::{Principal, Users};
use vigil_node::{MqttMode, NodeConfig};

/// Forwards 127.0.0.1 connections to `target`. Bumping the generation cuts every open
/// connection; while `refusing` is set, new connections are closed at once.
async fn proxy(
    target: SocketAddr,
    cuts: watch::Receiver<u64>,
    refusing: Arc<AtomicBool>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            if refusing.load(Ordering::SeqCst) {
                continue;
            }
            let mut cuts = cuts.clone();
            cuts.mark_unchanged();
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(target).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = cuts.changed() => {}
                }
            });
        }
    });
    addr
}

#[test]
fn readings_survive_cut_and_refused_connections_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = cw_tokio::Config::new().with_storage_directory(dir.path().join("ledger"));
    let data_dir = dir.path().join("node");
    let outbox_path = dir.path().join("outbox.sqlite");
    cw_tokio::Runner::new(runtime).start(|context| async move {
        let cluster = start_local(context.child("ledger"), LocalConfig::new(Keys::new(4, 1))).await;
        let mut users = Users::default();
        users.insert(
            "op",
            Principal::Staff {
                name: "operator".into(),
                signer: Signer::new(cluster.keys.operator.clone()).into(),
            },
        );
        let mqtt = free_port();
        let config = NodeConfig {
            data_dir,
            mqtt: MqttMode::Embedded(mqtt),
            ehr_master_key: vigil_ehr::SecretKey::random(),
            gateway: Signer::new(cluster.keys.gateways[0].clone()),
            users,
            future_skew: vigil_node::FUTURE_SKEW_DEFAULT,
            map_tiles: None,
            notify: None,
        };
        let (node, api) = vigil_api::start(cluster.ledgers[0].clone(), config, common::LOOPBACK)
            .await
            .expect("starts");
        let ledger = node.ledger().clone();
        let person = register_person(api, "op", "D. Fault", &ledger).await;
        let device: DeviceId = "oxi-7".parse().expect("valid");
        let key = DeviceKey::from_seed([8; 32]);
        enroll_device(api, "op", person, &device, &key.public(), &ledger).await;

        let node_key = node.message_public_key();
        let (cut, cuts) = watch::channel(0u64);
        let refusing = Arc::new(AtomicBool::new(false));
        let link = proxy(mqtt, cuts, refusing.clone()).await;

        const ROUNDS: usize = 3;
        const PACKS_PER_ROUND: usize = 40;
        for round in 0..ROUNDS {
            let (path, key, device) = (
                outbox_path.clone(),
                DeviceKey::from_seed([8; 32]),
                device.clone(),
            );
            let publisher = tokio::task::spawn_blocking(move || {
                let mut outbox = Outbox::open(&path).expect("opens");
                for i in 0..PACKS_PER_ROUND {
                    let t = t0_ms() + ((round * PACKS_PER_ROUND + i) as i64) * 1_000;
                    outbox
                        .enqueue(
                            person,
                            &key,
                            |d| {
                                d.push(Metric::SpO2, t, Value::Scalar(950 + (i % 40) as i32));
                            },
                            &device,
                        )
                        .expect("enqueues");
                }
                // A new uploader per round: the phone's app restarting from its outbox.
                let credential = DeviceCredential {
                    person,
                    device: device.clone(),
                    key: DeviceKey::from_seed([8; 32]),
                };
                let mut uploader = Uploader::connect(
                    "127.0.0.1",
                    link.port(),
                    &format!("phone-{round}"),
                    credential,
                    node_key,
                );
                uploader
                    .flush(
                        &mut outbox,
                        Instant::now() + WAIT,
                        Duration::from_millis(700),
                    )
                    .expect("flushes")
            });
            // Cut the link while the round is being published, then refuse connections briefly.
            tokio::time::sleep(Duration::from_millis(30 + 40 * round as u64)).await;
            cut.send_modify(|generation| *generation += 1);
            refusing.store(true, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(600)).await;
            refusing.store(false, Ordering::SeqCst);
            let report = publisher.await.expect("publisher ran");
            assert_eq!(report.remaining, 0, "round {round}: {report:?}");
            assert_eq!(report.refused, 0, "round {round}: {report:?}");
        }

        // Every reading once: as many records as packs, each (device, sequence) accepted once.
        let expected = (ROUNDS * PACKS_PER_ROUND) as u64;
        let report = until("every record anchored", || {
            let report = node.verify_ehr().expect("verifies");
            (report.anchored == expected && report.pending == 0).then_some(report)
        })
        .await;
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.verified, expected);
        let metrics = node.metrics_text();
        assert!(
            metrics.contains(&format!(
                "vigil_readings_accepted_total{{transport=\"mqtt\"}} {expected}"
            )),
            "{metrics}"
        );
        cluster.shutdown();
    });
}
