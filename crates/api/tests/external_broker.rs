//! The node with an external MQTT broker instead of the embedded one: Debian's mosquitto,
//! started by this test on a free 127.0.0.1 port with its own configuration. A master device
//! publishes through it; every valid pack is stored once and answered, a forged one is refused
//! with its reason on the reply topic.
//!
//! Without mosquitto installed the test is skipped, except under CI (`CI` set), where it fails:
//! `.ci/run` installs it.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{WAIT, enroll_device, free_port, register_person, t0_ms, until};
use commonware_runtime::{Runner as _, Supervisor as _, tokio as cw_tokio};
use vigil_core::{DeviceId, DeviceKey, Metric, Value};
use vigil_gateway::outbox::{DeviceCredential, Outbox, Uploader};
use vigil_ledger::local::{LocalConfig, start_local};
use vigil_ledger::signer::Signer;
use vigil_ledger::sim::Keys;
use vigil_node::users::{Principal, Users};
use vigil_node::{MqttMode, NodeConfig};

/// How long mosquitto may take to accept connections.
const BROKER_START: Duration = Duration::from_secs(10);

/// The mosquitto binary, if installed.
fn mosquitto() -> Option<PathBuf> {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// A mosquitto process this test owns; killed when dropped, even if the test fails.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_broker(binary: &PathBuf, dir: &std::path::Path) -> (Broker, SocketAddr) {
    let addr = free_port();
    let config = dir.join("mosquitto.conf");
    std::fs::write(
        &config,
        format!(
            "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n",
            addr.port()
        ),
    )
    .expect("writes the broker configuration");
    let child = Command::new(binary)
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto starts");
    let broker = Broker(child);
    let deadline = Instant::now() + BROKER_START;
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto never listened on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (broker, addr)
}

#[test]
fn packs_through_an_external_mosquitto_are_stored_once_and_answered() {
    let Some(binary) = mosquitto() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "mosquitto is not installed; .ci/run installs it (apt-get install mosquitto)"
        );
        eprintln!("skipped: mosquitto is not installed (apt-get install mosquitto)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (_broker, broker_addr) = start_broker(&binary, dir.path());
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
        let config = NodeConfig {
            data_dir,
            mqtt: MqttMode::External {
                host: "127.0.0.1".into(),
                port: broker_addr.port(),
            },
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
        assert_eq!(node.mqtt_addr(), None, "no embedded broker");
        let ledger = node.ledger().clone();
        let person = register_person(api, "op", "E. Broker", &ledger).await;
        let device: DeviceId = "thermo-9".parse().expect("valid");
        let key = DeviceKey::from_seed([9; 32]);
        enroll_device(api, "op", person, &device, &key.public(), &ledger).await;

        const PACKS: usize = 30;
        let port = broker_addr.port();
        // Replies come through mosquitto signed by the node all the same.
        let node_key = node.message_public_key();
        let report = tokio::task::spawn_blocking(move || {
            let mut outbox = Outbox::open(&outbox_path).expect("opens");
            for i in 0..PACKS {
                let t = t0_ms() + i as i64 * 1_000;
                outbox
                    .enqueue(
                        person,
                        &key,
                        |d| {
                            d.push(Metric::BodyTemperature, t, Value::Scalar(3_650));
                        },
                        &device,
                    )
                    .expect("enqueues");
            }
            // One pack signed with a key the device was not enrolled with.
            outbox
                .enqueue(
                    person,
                    &DeviceKey::from_seed([10; 32]),
                    |d| {
                        d.push(Metric::BodyTemperature, t0_ms(), Value::Scalar(3_650));
                    },
                    &device,
                )
                .expect("enqueues");
            let credential = DeviceCredential {
                person,
                device: device.clone(),
                key: DeviceKey::from_seed([9; 32]),
            };
            let mut uploader =
                Uploader::connect("127.0.0.1", port, "phone-mosquitto", credential, node_key);
            let report = uploader
                .flush(&mut outbox, Instant::now() + WAIT, Duration::from_secs(2))
                .expect("flushes");
            (report, outbox.refused().expect("reads"))
        })
        .await
        .expect("publisher ran");
        let (report, refused) = report;
        assert_eq!(report.delivered, PACKS, "{report:?}");
        assert_eq!(report.refused, 1, "{report:?}");
        assert_eq!(report.remaining, 0, "{report:?}");
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].2, "bad_signature");

        let expected = PACKS as u64;
        let verified = until("every record anchored", || {
            let report = node.verify_ehr().expect("verifies");
            (report.anchored == expected && report.pending == 0).then_some(report)
        })
        .await;
        assert!(verified.is_intact(), "{verified:?}");
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
