//! The embedded broker against an attacker on 127.0.0.1: who may connect, whose topic a pack
//! may arrive on, and what a device accepts as coming from the node.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rumqttc::{Event, MqttOptions, Packet, QoS};
use vigil_core::{DeviceId, DeviceKey, Metric, PersonId, Value};
use vigil_gateway::auth::{ConnectAuth, Login, device_login};
use vigil_gateway::mqtt::{MqttGateway, PackHandler, Uplink};
use vigil_gateway::outbox::{DeviceCredential, Outbox, Uploader};
use vigil_gateway::signed::NodeKey;
use vigil_gateway::{DeviceDirectory, EnrolledDevice, Rejected, Rejection, Reply, admit, topic};

#[derive(Clone)]
struct Directory(HashMap<DeviceId, EnrolledDevice>);

impl DeviceDirectory for Directory {
    fn device(&self, id: &DeviceId) -> Option<EnrolledDevice> {
        self.0.get(id).copied()
    }
}

const PERSON: PersonId = PersonId::from_bytes([3; 16]);
const ALICE_SEED: [u8; 32] = [11; 32];
const MALLORY_SEED: [u8; 32] = [12; 32];

fn alice() -> DeviceId {
    "oxi-alice".parse().expect("valid")
}

fn mallory() -> DeviceId {
    "thermo-mallory".parse().expect("valid")
}

/// Alice's oximeter and Mallory's thermometer, both enrolled for the same person: Mallory is
/// an authenticated client of the broker, the strongest attacker short of the node.
fn directory() -> Directory {
    let enrolled = |seed| EnrolledDevice {
        person: PERSON,
        key: DeviceKey::from_seed(seed).public(),
        revoked: false,
    };
    Directory(HashMap::from([
        (alice(), enrolled(ALICE_SEED)),
        (mallory(), enrolled(MALLORY_SEED)),
    ]))
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

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    listener.local_addr().expect("has an address")
}

type Stored = Arc<Mutex<HashSet<(DeviceId, u64)>>>;

/// Admission, then an exactly-once store; `answer` false makes every pack "retry later", so
/// that only a forger could make the device drop it.
fn start(answer: bool) -> (SocketAddr, MqttGateway, Stored) {
    let stored: Stored = Arc::default();
    let handler = storing_handler(answer, stored.clone(), directory());
    // The front is bound, and the broker behind it listening, once `embedded` returns: a
    // refusal below is always the broker's verdict on a login.
    let gateway = MqttGateway::embedded(
        ([127, 0, 0, 1], 0).into(),
        handler,
        ConnectAuth::new(Arc::new(directory())),
        node_key(),
    )
    .expect("broker starts");
    let addr = gateway.listen_addr().expect("listens");
    (addr, gateway, stored)
}

/// Admission against `enrolled`, then an exactly-once store into `stored` (see [`start`]).
fn storing_handler(
    answer: bool,
    stored: Stored,
    enrolled: impl DeviceDirectory + Send + Sync + 'static,
) -> PackHandler {
    let store = stored;
    Arc::new(move |uplinks: &[Uplink<'_>]| {
        uplinks
            .iter()
            .map(|uplink| {
                if !answer {
                    let busy = Rejected::new(Rejection::Unavailable, "busy");
                    return Reply::rejected(admit::peek_sequence(uplink.payload), busy);
                }
                match admit::admit(
                    &enrolled,
                    uplink.payload,
                    Some(uplink.person),
                    admit::Horizon::UNBOUNDED,
                ) {
                    Ok(admitted) => {
                        let pack = admitted.pack;
                        store
                            .lock()
                            .expect("lock")
                            .insert((pack.device.clone(), pack.sequence));
                        Reply::accepted(pack.sequence, pack.readings.len())
                    }
                    Err(error) => Reply::rejected(admit::peek_sequence(uplink.payload), error),
                }
            })
            .collect()
    })
}

/// Connects and reports the broker's verdict: `Ok` on a CONNACK that accepts, `Err` naming the
/// CONNACK's return code (or how the connection ended) otherwise.
fn connect(addr: SocketAddr, client_id: &str, login: Option<Login>) -> Result<(), String> {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", addr.port());
    options.set_keep_alive(Duration::from_secs(5));
    if let Some(login) = login {
        options.set_credentials(login.username, login.password);
    }
    let (client, mut connection) = rumqttc::Client::new(options, 16);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match connection.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                let _ = client.disconnect();
                return if ack.code == rumqttc::ConnectReturnCode::Success {
                    // Let the DISCONNECT leave before the client is dropped.
                    for _ in 0..5 {
                        let _ = connection.recv_timeout(Duration::from_millis(20));
                    }
                    Ok(())
                } else {
                    Err(format!("{:?}", ack.code))
                };
            }
            Ok(Err(rumqttc::ConnectionError::Io(error)))
                if error.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                panic!("nothing listens on {addr}: not a verdict on the login")
            }
            Ok(Err(error)) => return Err(error.to_string()),
            _ => {}
        }
    }
    Err("no answer".into())
}

/// A connected client logged in as Mallory's thermometer.
fn mallory_client(addr: SocketAddr, client_id: &str) -> (rumqttc::Client, rumqttc::Connection) {
    let login = device_login(
        &DeviceKey::from_seed(MALLORY_SEED),
        PERSON,
        &mallory(),
        client_id,
        now_ms(),
    );
    let mut options = MqttOptions::new(client_id, "127.0.0.1", addr.port());
    options
        .set_keep_alive(Duration::from_secs(5))
        .set_credentials(login.username, login.password);
    rumqttc::Client::new(options, 64)
}

fn alice_uploader(addr: SocketAddr) -> Uploader {
    alice_uploader_over(addr, "127.0.0.1", None)
}

/// Alice's phone connecting to `host` at `addr`'s port, over TLS with `tls`.
fn alice_uploader_over(
    addr: SocketAddr,
    host: &str,
    tls: Option<Arc<vigil_tls::rustls::ClientConfig>>,
) -> Uploader {
    let credential = DeviceCredential {
        person: PERSON,
        device: alice(),
        key: DeviceKey::from_seed(ALICE_SEED),
    };
    Uploader::connect_with(
        host,
        addr.port(),
        "alice-phone",
        credential,
        node_key().public(),
        tls,
    )
}

fn alice_pack(outbox: &mut Outbox, spo2: i32) -> u64 {
    outbox
        .enqueue(
            PERSON,
            &DeviceKey::from_seed(ALICE_SEED),
            |d| {
                d.push(Metric::SpO2, 1_700_000_000_000, Value::Scalar(spo2));
            },
            &alice(),
        )
        .expect("enqueues")
}

#[test]
fn anonymous_wrong_token_and_stale_clients_are_refused_at_connect() {
    let (addr, _gateway, _) = start(true);
    let key = DeviceKey::from_seed(ALICE_SEED);
    let refused_with =
        |verdict: Result<(), String>, code: &str| verdict.is_err_and(|e| e.contains(code));
    assert!(
        refused_with(connect(addr, "anon", None), "BadUserNamePassword"),
        "anonymous accepted, or refused without its CONNACK"
    );
    let forged = device_login(
        &DeviceKey::from_seed([99; 32]),
        PERSON,
        &alice(),
        "f",
        now_ms(),
    );
    assert!(
        refused_with(connect(addr, "f", Some(forged)), "BadUserNamePassword"),
        "wrong key accepted"
    );
    let stale = device_login(&key, PERSON, &alice(), "s", now_ms() - 3_600_000);
    assert!(
        refused_with(connect(addr, "s", Some(stale)), "BadUserNamePassword"),
        "stale token accepted"
    );
    let unknown = device_login(&key, PERSON, &"oxi-9".parse().expect("ok"), "u", now_ms());
    assert!(
        refused_with(connect(addr, "u", Some(unknown)), "NotAuthorized"),
        "unknown accepted"
    );
    let good = device_login(&key, PERSON, &alice(), "g", now_ms());
    assert_eq!(connect(addr, "g", Some(good)), Ok(()));
}

#[test]
fn the_nodes_client_ids_cannot_take_over_its_links() {
    let (addr, gateway, stored) = start(true);
    let key = DeviceKey::from_seed(ALICE_SEED);
    for id in ["vigil-ingest", "vigil-push", "vigil-anything"] {
        assert!(connect(addr, id, None).is_err(), "{id} anonymous accepted");
        // Not even an enrolled device may use one.
        let login = device_login(&key, PERSON, &alice(), id, now_ms());
        assert!(connect(addr, id, Some(login)).is_err(), "{id} accepted");
    }
    // Ingestion and alert delivery still work.
    let mut outbox = Outbox::open_in_memory().expect("opens");
    alice_pack(&mut outbox, 970);
    let mut uploader = alice_uploader(addr);
    uploader.watch_alerts(PERSON);
    let report = uploader
        .flush(
            &mut outbox,
            Instant::now() + Duration::from_secs(10),
            Duration::from_millis(500),
        )
        .expect("flushes");
    assert_eq!((report.delivered, report.remaining), (1, 0), "{report:?}");
    assert!(stored.lock().expect("lock").contains(&(alice(), 1)));
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        gateway
            .publish_alert(PERSON, br#"{"level":3}"#.to_vec())
            .expect("publishes");
        alice_pack(&mut outbox, 971);
        uploader
            .flush(
                &mut outbox,
                Instant::now() + Duration::from_millis(300),
                Duration::from_millis(500),
            )
            .expect("flushes");
        if !uploader.take_alerts().is_empty() {
            return;
        }
    }
    panic!("the alert never reached the device");
}

#[test]
fn a_pack_on_another_devices_topic_is_neither_stored_nor_answered() {
    let (addr, _gateway, stored) = start(true);
    let mut outbox = Outbox::open_in_memory().expect("opens");
    alice_pack(&mut outbox, 965);
    let pack = outbox.pending(1).expect("reads").remove(0).payload;
    // Mallory replays Alice's pack on Mallory's own uplink and listens for the answer.
    let (client, mut connection) = mallory_client(addr, "mallory");
    client
        .subscribe(topic::reply(PERSON, &mallory()), QoS::AtLeastOnce)
        .expect("subscribes");
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut published = false;
    while Instant::now() < deadline {
        match connection.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) if !published => {
                client
                    .publish(
                        topic::uplink(PERSON, &mallory()),
                        QoS::AtLeastOnce,
                        false,
                        pack.clone(),
                    )
                    .expect("publishes");
                published = true;
            }
            Ok(Ok(Event::Incoming(Packet::Publish(publish)))) => {
                panic!("answered on the topic Mallory chose: {publish:?}")
            }
            _ => {}
        }
    }
    assert!(published, "never subscribed");
    assert!(stored.lock().expect("lock").is_empty(), "stored");
    // The same pack on Alice's own topic is stored.
    let report = alice_uploader(addr)
        .flush(
            &mut outbox,
            Instant::now() + Duration::from_secs(10),
            Duration::from_millis(500),
        )
        .expect("flushes");
    assert_eq!(report.delivered, 1, "{report:?}");
    assert!(stored.lock().expect("lock").contains(&(alice(), 1)));
}

/// A rumqttd broker with no authentication and no rules, as an external broker configured
/// carelessly would be: anyone may publish anything on it.
fn open_broker() -> SocketAddr {
    let addr = free_port();
    let config = format!(
        r#"
        id = 0
        [router]
        id = 0
        max_connections = 64
        max_outgoing_packet_count = 200
        max_segment_size = 1048576
        max_segment_count = 10
        [v4.1]
        name = "open"
        listen = "{addr}"
        next_connection_delay_ms = 0
        [v4.1.connections]
        connection_timeout_ms = 60000
        max_payload_size = 262144
        max_inflight_count = 100
        dynamic_filters = true
        "#
    );
    let config: rumqttd::Config = toml::from_str(&config).expect("broker config");
    let mut broker = rumqttd::Broker::new(config);
    thread::spawn(move || {
        let _ = broker.start();
    });
    let listening_by = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < listening_by,
            "the open broker never listened"
        );
        thread::sleep(Duration::from_millis(20));
    }
    addr
}

/// Publishes one message at QoS 1 on `addr` and waits for its acknowledgement.
fn publish_once(addr: SocketAddr, client_id: &str, topic: &str, payload: Vec<u8>) {
    let (client, mut connection) =
        rumqttc::Client::new(MqttOptions::new(client_id, "127.0.0.1", addr.port()), 16);
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .expect("queues");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Ok(Event::Incoming(Packet::PubAck(_)))) =
            connection.recv_timeout(Duration::from_millis(100))
        {
            return;
        }
    }
    panic!("no PUBACK for {topic}");
}

/// On a broker that lets anyone publish (an external broker without rules), the device still
/// takes nothing the node did not sign: forged replies and alerts are counted and dropped, a
/// genuine alert is taken once and its replay is not.
#[test]
fn forged_replies_and_alerts_are_refused_by_the_device() {
    let addr = open_broker();
    let mut outbox = Outbox::open_in_memory().expect("opens");
    let sequence = alice_pack(&mut outbox, 961);
    let pack = outbox.pending(1).expect("reads").remove(0).payload;
    let reply_topic = topic::reply(PERSON, &alice());
    let alert_topic = topic::alerts(PERSON);
    let accepted = Reply::accepted(sequence, 1);
    let wrong_key = NodeKey::from_seed([43; 32]);
    let forgeries: Vec<(String, Vec<u8>)> = vec![
        (
            reply_topic.clone(),
            serde_json::to_vec(&accepted).expect("json"),
        ),
        (
            reply_topic.clone(),
            wrong_key.seal_reply(&reply_topic, &pack, &accepted),
        ),
        // Genuinely signed, but for another pack.
        (
            reply_topic.clone(),
            node_key().seal_reply(&reply_topic, b"another pack", &accepted),
        ),
        (
            alert_topic.clone(),
            br#"{"type":"alert","level":3}"#.to_vec(),
        ),
        (
            alert_topic.clone(),
            wrong_key.seal_alert(&alert_topic, br#"{"type":"alert","level":3}"#),
        ),
    ];
    let (client, mut connection) =
        rumqttc::Client::new(MqttOptions::new("forger", "127.0.0.1", addr.port()), 64);
    let forger = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            for (topic, payload) in &forgeries {
                let _ = client.try_publish(topic, QoS::AtLeastOnce, false, payload.clone());
            }
            // Drive the connection while waiting.
            let pause = Instant::now() + Duration::from_millis(100);
            while Instant::now() < pause {
                let _ = connection.recv_timeout(Duration::from_millis(20));
            }
        }
    });
    let mut uploader = alice_uploader(addr);
    uploader.watch_alerts(PERSON);
    let mut forged = 0;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        let report = uploader
            .flush(
                &mut outbox,
                Instant::now() + Duration::from_millis(500),
                Duration::from_secs(30),
            )
            .expect("flushes");
        assert_eq!(report.delivered + report.refused, 0, "{report:?}");
        forged += report.forged;
    }
    forger.join().expect("forger ends");
    assert_eq!(outbox.len().expect("counts"), 1, "the pack was dropped");
    assert!(uploader.take_alerts().is_empty(), "a forged alert got in");
    assert!(forged >= 4, "only {forged} forgeries seen");
    // The node's own alert gets through.
    let genuine = |payload: &[u8]| node_key().seal_alert(&alert_topic, payload);
    publish_once(addr, "node", &alert_topic, genuine(br#"{"level":1}"#));
    uploader
        .flush(
            &mut outbox,
            Instant::now() + Duration::from_secs(2),
            Duration::from_secs(30),
        )
        .expect("flushes");
    assert_eq!(
        uploader.take_alerts(),
        [serde_json::json!({"level": 1})],
        "the node's alert"
    );
    // A genuine signed alert, then its replay: it is not taken a second time.
    let second = genuine(br#"{"level":2}"#);
    publish_once(addr, "node", &alert_topic, second.clone());
    publish_once(addr, "replayer", &alert_topic, second);
    let report = uploader
        .flush(
            &mut outbox,
            Instant::now() + Duration::from_secs(2),
            Duration::from_secs(30),
        )
        .expect("flushes");
    assert_eq!(
        uploader.take_alerts(),
        [serde_json::json!({"level": 2})],
        "taken once"
    );
    assert!(report.forged >= 1, "{report:?}");
}

const OTHER_PERSON: PersonId = PersonId::from_bytes([4; 16]);
const EVE_SEED: [u8; 32] = [13; 32];

fn eve() -> DeviceId {
    "oxi-eve".parse().expect("valid")
}

/// Alice and Mallory's person, plus Eve, a device enrolled for another person; the directory
/// can be changed while the broker runs (a revocation).
#[derive(Clone)]
struct LiveDirectory(Arc<Mutex<HashMap<DeviceId, EnrolledDevice>>>);

impl DeviceDirectory for LiveDirectory {
    fn device(&self, id: &DeviceId) -> Option<EnrolledDevice> {
        self.0.lock().expect("lock").get(id).copied()
    }
}

fn client_as(
    addr: SocketAddr,
    client_id: &str,
    seed: [u8; 32],
    person: PersonId,
    device: &DeviceId,
) -> (rumqttc::Client, rumqttc::Connection) {
    let login = device_login(
        &DeviceKey::from_seed(seed),
        person,
        device,
        client_id,
        now_ms(),
    );
    let mut options = MqttOptions::new(client_id, "127.0.0.1", addr.port());
    options
        .set_keep_alive(Duration::from_secs(5))
        .set_credentials(login.username, login.password);
    rumqttc::Client::new(options, 64)
}

/// Drives `connection` until `pick` returns something or it ends; `None` on either end.
fn next_event<T>(
    connection: &mut rumqttc::Connection,
    within: Duration,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> Result<Option<T>, String> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match connection.recv_timeout(Duration::from_millis(50)) {
            Ok(Ok(event)) => {
                if let Some(found) = pick(&event) {
                    return Ok(Some(found));
                }
            }
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => {}
        }
    }
    Ok(None)
}

/// Issue 13 item 1 on the embedded broker: a device is held to its person's topics. Eve, a
/// device of another person, is refused every filter but her own in the SUBACK, and is
/// disconnected when she publishes on Alice's uplink; Mallory, a device of Alice's own
/// person, is disconnected when she publishes a forged alert, which never reaches Alice; a
/// revoked device is disconnected while connected; an MQTT 5 client gets an MQTT 5 refusal.
#[test]
fn the_broker_holds_each_device_to_its_persons_topics() {
    let mut devices = directory().0;
    devices.insert(
        eve(),
        EnrolledDevice {
            person: OTHER_PERSON,
            key: DeviceKey::from_seed(EVE_SEED).public(),
            revoked: false,
        },
    );
    let live = LiveDirectory(Arc::new(Mutex::new(devices)));
    let stored: Stored = Arc::default();
    let handler = storing_handler(true, stored.clone(), live.clone());
    let gateway = MqttGateway::embedded(
        ([127, 0, 0, 1], 0).into(),
        handler,
        ConnectAuth::new(Arc::new(live.clone())),
        node_key(),
    )
    .expect("broker starts");
    let addr = gateway.listen_addr().expect("listens");

    // Eve subscribes to everything she can name: only her own person's alerts are granted.
    let (eve_client, mut eve_connection) = client_as(addr, "eve", EVE_SEED, OTHER_PERSON, &eve());
    let filters = [
        "#".to_owned(),
        "vigil/+/+/up".to_owned(),
        "vigil/+/alerts".to_owned(),
        topic::reply(PERSON, &alice()),
        topic::alerts(PERSON),
        topic::alerts(OTHER_PERSON),
    ];
    for filter in &filters {
        eve_client
            .subscribe(filter, QoS::AtLeastOnce)
            .expect("queues");
    }
    let mut granted = Vec::new();
    while granted.len() < filters.len() {
        let ack = next_event(
            &mut eve_connection,
            Duration::from_secs(5),
            |event| match event {
                Event::Incoming(Packet::SubAck(ack)) => Some(ack.return_codes.clone()),
                _ => None,
            },
        )
        .expect("connected")
        .expect("a SUBACK");
        granted.extend(ack);
    }
    let failure = rumqttc::SubscribeReasonCode::Failure;
    assert_eq!(
        granted,
        [
            failure,
            failure,
            failure,
            failure,
            failure,
            rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)
        ],
        "Eve's SUBACKs, filter by filter"
    );
    // Eve publishes a pack on Alice's uplink: the broker closes her connection, nothing is
    // stored or answered.
    let mut outbox = Outbox::open_in_memory().expect("opens");
    alice_pack(&mut outbox, 950);
    let pack = outbox.pending(1).expect("reads").remove(0).payload;
    eve_client
        .publish(
            topic::uplink(PERSON, &alice()),
            QoS::AtLeastOnce,
            false,
            pack,
        )
        .expect("queues");
    let ended = next_event(
        &mut eve_connection,
        Duration::from_secs(5),
        |event| match event {
            Event::Incoming(Packet::PubAck(_)) => Some(()),
            _ => None,
        },
    );
    assert!(
        ended.is_err(),
        "Eve's publish on Alice's uplink was taken: {ended:?}"
    );
    assert!(stored.lock().expect("lock").is_empty(), "stored");

    // Mallory, a device of Alice's own person, forges an alert: disconnected, never delivered.
    let mut uploader = alice_uploader(addr);
    uploader.watch_alerts(PERSON);
    uploader
        .flush(
            &mut outbox,
            Instant::now() + Duration::from_secs(5),
            Duration::from_millis(500),
        )
        .expect("flushes");
    let (mallory_client, mut mallory_connection) =
        client_as(addr, "mallory", MALLORY_SEED, PERSON, &mallory());
    mallory_client
        .publish(
            topic::alerts(PERSON),
            QoS::AtLeastOnce,
            false,
            br#"{"type":"alert","level":3}"#.to_vec(),
        )
        .expect("queues");
    let ended = next_event(
        &mut mallory_connection,
        Duration::from_secs(5),
        |event| match event {
            Event::Incoming(Packet::PubAck(_)) => Some(()),
            _ => None,
        },
    );
    assert!(ended.is_err(), "Mallory's alert was taken: {ended:?}");
    let report = uploader
        .flush(
            &mut outbox,
            Instant::now() + Duration::from_secs(1),
            Duration::from_millis(500),
        )
        .expect("flushes");
    assert_eq!(
        report.forged, 0,
        "a forgery reached Alice's device: {report:?}"
    );
    assert!(uploader.take_alerts().is_empty());

    // Eve's device is revoked while she is connected: the broker disconnects her.
    let (_eve_again, mut eve_connection) = client_as(addr, "eve-2", EVE_SEED, OTHER_PERSON, &eve());
    next_event(
        &mut eve_connection,
        Duration::from_secs(5),
        |event| match event {
            Event::Incoming(Packet::ConnAck(_)) => Some(()),
            _ => None,
        },
    )
    .expect("connected")
    .expect("a CONNACK");
    if let Some(enrolled) = live.0.lock().expect("lock").get_mut(&eve()) {
        enrolled.revoked = true;
    }
    let kept = next_event(&mut eve_connection, Duration::from_secs(6), |_| None::<()>);
    assert!(kept.is_err(), "a revoked device stayed connected");

    // An MQTT 5 CONNECT gets an MQTT 5 CONNACK: 0x84, unsupported protocol version.
    let mut raw = std::net::TcpStream::connect(addr).expect("connects");
    raw.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let connect_v5 = [
        0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3c, 0x00, 0x00, 0x03,
        b'v', b'5', b'c',
    ];
    std::io::Write::write_all(&mut raw, &connect_v5).expect("writes");
    let mut answer = [0u8; 5];
    std::io::Read::read_exact(&mut raw, &mut answer).expect("a CONNACK");
    assert_eq!(answer, [0x20, 0x03, 0x00, 0x84, 0x00]);
}

/// MQTT over TLS at the front: a device trusting the deployment's CA is stored and answered
/// under the same rules; a client in clear on the TLS port, or one that trusts another CA, never
/// reaches a CONNACK.
#[test]
fn over_tls_only_a_client_of_the_deployments_ca_gets_in_and_the_rules_still_hold() {
    let dir = tempfile::tempdir().expect("scratch");
    let names = ["localhost", "127.0.0.1"];
    let ours = vigil_tls::LocalAuthority::create(&dir.path().join("ours"), &names).expect("ca");
    let theirs = vigil_tls::LocalAuthority::create(&dir.path().join("theirs"), &names).expect("ca");
    let stored: Stored = Arc::default();
    let listeners = vigil_gateway::mqtt::FrontListeners {
        plain: None,
        tls: Some((
            ([127, 0, 0, 1], 0).into(),
            ours.server_config().expect("server config"),
        )),
    };
    let gateway = MqttGateway::embedded_on(
        listeners,
        storing_handler(true, stored.clone(), directory()),
        ConnectAuth::new(Arc::new(directory())),
        node_key(),
    )
    .expect("broker starts");
    assert_eq!(
        gateway.listen_addr(),
        None,
        "no listener in clear was asked for"
    );
    let addr = gateway.tls_listen_addr().expect("listens over TLS");

    // Alice's phone over TLS, by name: stored once and answered.
    let mut outbox = Outbox::open_in_memory().expect("opens");
    let sequence = alice_pack(&mut outbox, 968);
    let client = ours.client_config().expect("client config");
    let report = alice_uploader_over(addr, "localhost", Some(client))
        .flush(
            &mut outbox,
            Instant::now() + Duration::from_secs(10),
            Duration::from_millis(500),
        )
        .expect("flushes");
    assert_eq!((report.delivered, report.remaining), (1, 0), "{report:?}");
    assert!(stored.lock().expect("lock").contains(&(alice(), sequence)));

    // The same login in clear on the TLS port: the handshake fails, no CONNACK.
    let login = device_login(
        &DeviceKey::from_seed(ALICE_SEED),
        PERSON,
        &alice(),
        "clear",
        now_ms(),
    );
    let verdict = connect(addr, "clear", Some(login));
    assert!(verdict.is_err(), "a client in clear got in: {verdict:?}");

    // A phone that trusts another authority refuses the node's certificate: nothing sent.
    alice_pack(&mut outbox, 969);
    let stranger = theirs.client_config().expect("client config");
    let report = alice_uploader_over(addr, "localhost", Some(stranger))
        .flush(
            &mut outbox,
            Instant::now() + Duration::from_secs(2),
            Duration::from_millis(500),
        )
        .expect("flushes");
    assert_eq!((report.delivered, report.remaining), (0, 1), "{report:?}");
    assert_eq!(stored.lock().expect("lock").len(), 1);
}

/// A client id is its client's only inside its own login: Mallory, a device of Alice's own
/// person, connecting under the client id of Alice's phone neither takes over Alice's session
/// (rumqttd drops the older of two connections with one id) nor inherits its subscriptions.
#[test]
fn a_client_id_cannot_be_taken_over_by_another_login() {
    let (addr, gateway, _) = start(true);
    let (alice_client, mut alice_connection) =
        client_as(addr, "alice-phone", ALICE_SEED, PERSON, &alice());
    let connected =
        |event: &Event| matches!(event, Event::Incoming(Packet::ConnAck(_))).then_some(());
    next_event(&mut alice_connection, Duration::from_secs(5), connected)
        .expect("Alice connects")
        .expect("a CONNACK");
    alice_client
        .subscribe(topic::reply(PERSON, &alice()), QoS::AtLeastOnce)
        .expect("queues");
    let (_mallory_client, mut mallory_connection) =
        client_as(addr, "alice-phone", MALLORY_SEED, PERSON, &mallory());
    next_event(&mut mallory_connection, Duration::from_secs(5), connected)
        .expect("Mallory connects")
        .expect("a CONNACK");
    // Alice's connection is still hers: her SUBACK arrives and nothing closes it.
    let suback = |event: &Event| matches!(event, Event::Incoming(Packet::SubAck(_))).then_some(());
    next_event(&mut alice_connection, Duration::from_secs(5), suback)
        .expect("Alice's connection stays open")
        .expect("her SUBACK");
    alice_client
        .subscribe(topic::alerts(PERSON), QoS::AtLeastOnce)
        .expect("queues");
    next_event(&mut alice_connection, Duration::from_secs(5), suback)
        .expect("Alice's connection stays open")
        .expect("her second SUBACK");
    // And the node's alerts still reach her on it.
    gateway
        .publish_alert(PERSON, br#"{"level":2}"#.to_vec())
        .expect("publishes");
    let alert = |event: &Event| matches!(event, Event::Incoming(Packet::Publish(_))).then_some(());
    next_event(&mut alice_connection, Duration::from_secs(5), alert)
        .expect("Alice's connection stays open")
        .expect("the alert reaches Alice");
}

/// A staff client stays connected only while its token still authenticates: once the token is
/// withdrawn (here the node's check starts refusing it), the front disconnects it within the
/// revocation check, with the alert subscription it held.
#[test]
fn a_staff_client_is_disconnected_once_its_token_is_withdrawn() {
    let valid = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let still = valid.clone();
    let auth = ConnectAuth::new(Arc::new(directory())).with_service_check(Arc::new(
        move |name: &str, token: &str| {
            still.load(std::sync::atomic::Ordering::SeqCst) && name == "ops" && token == "tok"
        },
    ));
    let gateway = MqttGateway::embedded(
        ([127, 0, 0, 1], 0).into(),
        storing_handler(true, Stored::default(), directory()),
        auth,
        node_key(),
    )
    .expect("broker starts");
    let addr = gateway.listen_addr().expect("listens");
    let mut options = MqttOptions::new("console", "127.0.0.1", addr.port());
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_credentials("service:ops", "tok");
    let (client, mut connection) = rumqttc::Client::new(options, 16);
    client
        .subscribe("vigil/+/alerts", QoS::AtLeastOnce)
        .expect("queues");
    let granted = next_event(
        &mut connection,
        Duration::from_secs(5),
        |event| match event {
            Event::Incoming(Packet::SubAck(ack)) => Some(ack.return_codes.clone()),
            _ => None,
        },
    )
    .expect("connected")
    .expect("a SUBACK");
    assert_ne!(granted, [rumqttc::SubscribeReasonCode::Failure]);
    // Still admitted: nothing closes the connection while the token holds.
    let quiet = next_event(
        &mut connection,
        Duration::from_millis(2_500),
        |_| None::<()>,
    );
    assert_eq!(quiet, Ok(None), "disconnected with a valid token");
    valid.store(false, std::sync::atomic::Ordering::SeqCst);
    let closed = next_event(&mut connection, Duration::from_secs(5), |_| None::<()>);
    assert!(
        closed.is_err(),
        "still connected after the token was withdrawn"
    );
}
