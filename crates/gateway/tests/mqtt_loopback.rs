//! Real MQTT on 127.0.0.1: the embedded broker, the ingestion loop, and a master device's
//! outbox uploading through it.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Event, MqttOptions, Packet, QoS};
use vigil_core::{DeviceId, DeviceKey, Metric, PersonId, Value};
use vigil_ehr::{Ehr, EhrError, Identity, SecretKey};
use vigil_gateway::auth::{ConnectAuth, device_login};
use vigil_gateway::mqtt::{MqttGateway, PackHandler, Uplink};
use vigil_gateway::outbox::{DeviceCredential, Outbox, Uploader};
use vigil_gateway::signed::NodeKey;
use vigil_gateway::{DeviceDirectory, EnrolledDevice, Rejected, Rejection, Reply, admit};

#[derive(Clone)]
struct Directory(HashMap<DeviceId, EnrolledDevice>);

impl DeviceDirectory for Directory {
    fn device(&self, id: &DeviceId) -> Option<EnrolledDevice> {
        self.0.get(id).copied()
    }
}

fn node_key() -> NodeKey {
    NodeKey::from_seed([42; 32])
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// A started embedded broker that checks logins against `directory`.
fn gateway(addr: SocketAddr, directory: Directory, handler: PackHandler) -> MqttGateway {
    MqttGateway::embedded(
        addr,
        handler,
        ConnectAuth::new(Arc::new(directory)),
        node_key(),
    )
    .expect("broker starts")
}

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    listener.local_addr().expect("has an address")
}

/// A node in miniature: admission, then the real health record, which stores a device's
/// (device, sequence) once and refuses a pack sent again as a replay.
fn handler(directory: Directory, ehr: Arc<Mutex<Ehr>>) -> PackHandler {
    let one = move |person: PersonId, payload: &[u8]| {
        let admitted =
            match admit::admit(&directory, payload, Some(person), admit::Horizon::UNBOUNDED) {
                Ok(admitted) => admitted,
                Err(error) => return Reply::rejected(admit::peek_sequence(payload), error),
            };
        let pack = admitted.pack;
        let stored = ehr.lock().expect("lock").append_pack(
            person,
            &pack.device,
            pack.sequence,
            &pack.readings,
        );
        match stored {
            Ok(_) => Reply::accepted(pack.sequence, pack.readings.len()),
            Err(EhrError::Replayed { .. }) => Reply::rejected(
                Some(pack.sequence),
                Rejected::new(Rejection::Replayed, "stored before"),
            ),
            Err(error) => Reply::rejected(
                Some(pack.sequence),
                Rejected::new(Rejection::Unavailable, error.to_string()),
            ),
        }
    };
    Arc::new(move |uplinks: &[Uplink<'_>]| {
        uplinks
            .iter()
            .map(|uplink| one(uplink.person, uplink.payload))
            .collect()
    })
}

/// Records the health record holds that no anchor covers yet (sealing them as a batch).
fn records_since_last_look(ehr: &Mutex<Ehr>) -> u64 {
    let anchor = ehr.lock().expect("lock").seal_batch().expect("seals");
    anchor.map_or(0, |a| a.count)
}

#[test]
fn packs_flow_through_the_embedded_broker_exactly_once_and_alerts_reach_the_person() {
    let person = PersonId::from_bytes([7; 16]);
    let device: DeviceId = "oxi-1".parse().expect("valid");
    let key = DeviceKey::from_seed([2; 32]);
    let impostor: DeviceId = "oxi-2".parse().expect("valid");
    let directory = Directory(HashMap::from([
        (
            device.clone(),
            EnrolledDevice {
                person,
                key: key.public(),
                revoked: false,
            },
        ),
        // Enrolled with another key than the one that signs its packs below.
        (
            impostor.clone(),
            EnrolledDevice {
                person,
                key: DeviceKey::from_seed([3; 32]).public(),
                revoked: false,
            },
        ),
    ]));
    let mut record = Ehr::open_in_memory(SecretKey::random()).expect("health record");
    let identity = Identity {
        name: "Test Person".into(),
        address: "1 Test Street".into(),
        phone: "+1 555 0100".into(),
    };
    record
        .register_person(person, &identity)
        .expect("registers");
    let ehr = Arc::new(Mutex::new(record));
    let addr = free_port();
    let gateway = gateway(addr, directory.clone(), handler(directory, ehr.clone()));

    let mut outbox = Outbox::open_in_memory().expect("opens");
    for i in 0..20 {
        outbox
            .enqueue(
                person,
                &key,
                |d| {
                    d.push(
                        Metric::SpO2,
                        1_700_000_000_000 + i * 1_000,
                        Value::Scalar(960 + i as i32),
                    );
                },
                &device,
            )
            .expect("enqueues");
    }
    outbox
        .enqueue(
            person,
            &key,
            |d| {
                d.push(Metric::SpO2, 1_700_000_000_000, Value::Scalar(950));
            },
            &impostor,
        )
        .expect("enqueues");

    let credential = DeviceCredential {
        person,
        device: device.clone(),
        key: DeviceKey::from_seed([2; 32]),
    };
    let mut uploader = Uploader::connect(
        "127.0.0.1",
        addr.port(),
        "phone-7",
        credential,
        node_key().public(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let report = uploader
        .flush(&mut outbox, deadline, Duration::from_millis(500))
        .expect("flushes");
    assert_eq!(
        (report.delivered, report.refused, report.remaining),
        (20, 1, 0),
        "{report:?}"
    );
    assert_eq!(
        outbox.refused().expect("reads"),
        [(impostor, 1, "bad_signature".to_owned())]
    );
    assert_eq!(records_since_last_look(&ehr), 20, "each pack stored once");

    // A pack sent again under a used sequence number (a second outbox for the same device
    // starts again at 1, as a device restored from an old backup would) stores nothing.
    let mut stale = Outbox::open_in_memory().expect("opens");
    stale
        .enqueue(
            person,
            &key,
            |d| {
                d.push(Metric::SpO2, 1_700_000_100_000, Value::Scalar(930));
            },
            &device,
        )
        .expect("enqueues");
    let report = uploader
        .flush(
            &mut stale,
            Instant::now() + Duration::from_secs(20),
            Duration::from_millis(500),
        )
        .expect("flushes");
    assert_eq!(report.remaining, 0, "{report:?}");
    assert_eq!(
        records_since_last_look(&ehr),
        0,
        "a replayed sequence was stored again"
    );

    // The person's master device receives what the node pushes on its alert topic, signed.
    let mut options = MqttOptions::new("phone-7-alerts", "127.0.0.1", addr.port());
    let login = device_login(&key, person, &device, "phone-7-alerts", now_ms());
    options
        .set_keep_alive(Duration::from_secs(5))
        .set_credentials(login.username, login.password);
    let (client, mut connection) = rumqttc::Client::new(options, 16);
    client
        .subscribe(vigil_gateway::topic::alerts(person), QoS::AtLeastOnce)
        .expect("subscribes");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut published = false;
    while Instant::now() < deadline {
        match connection.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) if !published => {
                gateway
                    .publish_alert(person, br#"{"level":2}"#.to_vec())
                    .expect("publishes");
                published = true;
            }
            Ok(Ok(Event::Incoming(Packet::Publish(publish)))) => {
                let alert = node_key()
                    .public()
                    .open_alert(&publish.topic, &publish.payload)
                    .expect("signed by the node");
                assert_eq!(alert, serde_json::json!({"level": 2}));
                return;
            }
            _ => {}
        }
    }
    panic!("the alert never reached the person's topic (subscribed: {published})");
}

#[test]
fn garbage_on_the_uplink_gets_a_reply_naming_the_reason() {
    let person = PersonId::from_bytes([8; 16]);
    let device: DeviceId = "thermo-3".parse().expect("valid");
    let addr = free_port();
    // The prober logs in as an enrolled device of the person; its garbage goes on the uplink
    // of thermo-3, another of the person's devices (the broker admits that), whose admission
    // then refuses every pack with its reason.
    let prober: DeviceId = "oxi-8".parse().expect("valid");
    let key = DeviceKey::from_seed([8; 32]);
    let enrolled = EnrolledDevice {
        person,
        key: key.public(),
        revoked: false,
    };
    let directory = Directory(HashMap::from([
        (prober.clone(), enrolled),
        (device.clone(), enrolled),
    ]));
    let ehr = Ehr::open_in_memory(SecretKey::random()).expect("health record");
    let handler = handler(Directory(HashMap::new()), Arc::new(Mutex::new(ehr)));
    let _gateway = gateway(addr, directory, handler);
    let mut options = MqttOptions::new("prober", "127.0.0.1", addr.port());
    let login = device_login(&key, person, &prober, "prober", now_ms());
    options
        .set_max_packet_size(1 << 20, 1 << 20)
        .set_credentials(login.username, login.password);
    let (client, mut connection) = rumqttc::Client::new(options, 16);
    client
        .subscribe(
            vigil_gateway::topic::reply(person, &device),
            QoS::AtLeastOnce,
        )
        .expect("subscribes");
    let cases: Vec<(Vec<u8>, Rejection)> = vec![
        (b"not json at all".to_vec(), Rejection::Malformed),
        (vec![0x9f, 0xff, 0x00], Rejection::Malformed),
        (vec![b' '; 100_000], Rejection::TooLarge),
        (
            br#"[{"bn":"thermo-3:","bt":1700000000,"n":"body-temperature","u":"Cel","v":37}]"#
                .to_vec(),
            Rejection::Unsigned,
        ),
    ];
    let mut expected = cases.iter().map(|(_, reason)| *reason).collect::<Vec<_>>();
    let mut sent = false;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && !expected.is_empty() {
        match connection.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) if !sent => {
                for (payload, _) in &cases {
                    client
                        .publish(
                            vigil_gateway::topic::uplink(person, &device),
                            QoS::AtLeastOnce,
                            false,
                            payload.clone(),
                        )
                        .expect("publishes");
                }
                sent = true;
            }
            Ok(Ok(Event::Incoming(Packet::Publish(publish)))) => {
                let answered = &cases[cases.len() - expected.len()].0;
                let reply: Reply = node_key()
                    .public()
                    .open_reply(&publish.topic, answered, &publish.payload)
                    .expect("a reply signed for the pack it answers");
                assert!(!reply.accepted);
                let reason = reply.error.expect("names an error").reason;
                assert_eq!(reason, expected.remove(0));
            }
            _ => {}
        }
    }
    assert!(expected.is_empty(), "no reply for {expected:?}");
}
