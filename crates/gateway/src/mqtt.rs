//! The node's MQTT side: an embedded broker (rumqttd) by default, or an external broker
//! (e.g. Debian's mosquitto) reached as a client. Either way one ingestion loop subscribes to
//! every uplink topic, hands each pack to the node and publishes the verdict on the device's
//! reply topic; alerts are published on the person's alert topic.
//!
//! rumqttd 0.20 authenticates a CONNECT but has no per-client rule on topics, so the embedded
//! broker listens only on a loopback port of its own, admitting nothing but the MQTT front
//! ([`crate::front`]): the front listens where devices connect, authenticates every CONNECT
//! ([`crate::auth`]; the node's own client ids are refused) and holds every PUBLISH,
//! SUBSCRIBE and will message to [`crate::acl`]. Behind it the node still checks what it
//! handles: an uplink only when the device its topic names is the one that signed the pack
//! (else no reply at all), its person against the enrollment by admission; and every reply
//! and alert is signed by the node ([`crate::signed`]) for the device to check.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use rumqttc::{Event, MqttOptions, Packet, QoS};
use vigil_core::senml::UnverifiedPack;
use vigil_core::{DeviceId, PersonId};

use crate::admit::{Reply, detect_format};
use crate::auth::ConnectAuth;
use crate::signed::NodeKey;
use crate::topic;

/// The largest MQTT payload (the front's limit, [`crate::front::MQTT_PAYLOAD_BYTES_MAX`]).
pub use crate::front::MQTT_PAYLOAD_BYTES_MAX;
/// Concurrent MQTT connections to the embedded broker.
pub const MQTT_CONNECTIONS_MAX: usize = 200_000;
/// Requests queued towards an external broker before publishing blocks.
const CLIENT_QUEUE_MAX: usize = 10_000;
/// Packs received from an external broker and waiting for the ingestion thread, at most.
const UPLINK_QUEUE_MAX: usize = 4_096;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MqttError {
    #[error("embedded MQTT broker: {0}")]
    Broker(String),
    #[error("MQTT link: {0}")]
    Link(String),
    #[error("MQTT client: {0}")]
    Client(#[from] rumqttc::ClientError),
}

/// A free port on 127.0.0.1 for the broker behind the front (the broker binds it itself).
fn internal_port() -> Result<SocketAddr, MqttError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map_err(|e| MqttError::Broker(format!("no loopback port for the broker: {e}")))
}

/// How long the broker may take to listen on its internal port once started.
const BROKER_START_MAX: Duration = Duration::from_secs(10);

/// Returns once the broker accepts connections on `internal`, so that the first client the
/// front admits is never closed for a broker still starting.
fn wait_until_listening(internal: SocketAddr) -> Result<(), MqttError> {
    let deadline = Instant::now() + BROKER_START_MAX;
    loop {
        if std::net::TcpStream::connect_timeout(&internal, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(MqttError::Broker(format!(
                "the embedded broker is not listening on {internal} after {BROKER_START_MAX:?}"
            )));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Where the MQTT front listens: in clear (for loopback), over TLS, or both.
#[derive(Clone, Debug, Default)]
pub struct FrontListeners {
    pub plain: Option<SocketAddr>,
    pub tls: Option<(SocketAddr, Arc<vigil_tls::rustls::ServerConfig>)>,
}

/// A bound front listener and, for TLS, its acceptor.
type BoundListener = (std::net::TcpListener, Option<vigil_tls::TlsAcceptor>);

fn bind(addr: SocketAddr) -> Result<(std::net::TcpListener, SocketAddr), MqttError> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| MqttError::Broker(format!("{addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| MqttError::Broker(e.to_string()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| MqttError::Broker(e.to_string()))?;
    Ok((listener, bound))
}

/// Runs the MQTT front on a runtime of its own, as rumqttd runs on its own threads: one accept
/// loop per listener, all under one connection limit.
fn start_front(
    listeners: Vec<BoundListener>,
    upstream: SocketAddr,
    auth: Arc<ConnectAuth>,
    secret: crate::front::InternalSecret,
) -> Result<(), MqttError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mqtt-front")
        .enable_all()
        .build()
        .map_err(|e| MqttError::Broker(format!("MQTT front runtime: {e}")))?;
    thread::Builder::new()
        .name("mqtt-front".into())
        .spawn(move || {
            runtime.block_on(async move {
                let slots = Arc::new(tokio::sync::Semaphore::new(MQTT_CONNECTIONS_MAX));
                let mut served = tokio::task::JoinSet::new();
                for (listener, tls) in listeners {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            let serve = crate::front::serve(
                                listener,
                                tls,
                                upstream,
                                auth.clone(),
                                secret.clone(),
                                slots.clone(),
                            );
                            served.spawn(serve);
                        }
                        Err(error) => tracing::error!(%error, "MQTT front could not listen"),
                    }
                }
                while served.join_next().await.is_some() {}
            });
        })
        .map_err(|e| MqttError::Broker(e.to_string()))?;
    Ok(())
}

/// Packs handed to the node at once, at most: what the ingestion loop found waiting.
pub const UPLINK_BATCH_MAX: usize = 256;

/// One pack received on `vigil/<person>/<device>/up`.
#[derive(Clone, Copy, Debug)]
pub struct Uplink<'a> {
    pub person: PersonId,
    pub device: &'a DeviceId,
    pub payload: &'a [u8],
}

/// Handles the packs that arrived together, answering each, in order. Getting them as a batch
/// lets the node check their signatures in parallel and store them in one transaction.
pub type PackHandler = Arc<dyn Fn(&[Uplink<'_>]) -> Vec<Reply> + Send + Sync>;

enum Publisher {
    Embedded(Mutex<rumqttd::local::LinkTx>),
    External(rumqttc::Client),
}

/// A running MQTT side of the node.
pub struct MqttGateway {
    publisher: Publisher,
    listen: Option<SocketAddr>,
    tls_listen: Option<SocketAddr>,
    key: Arc<NodeKey>,
}

impl MqttGateway {
    /// Starts the MQTT front on `listen` (MQTT 3.1.1; port 0 picks a free one, which
    /// [`MqttGateway::listen_addr`] then names), the embedded broker behind it on a loopback
    /// port of its own, and the ingestion loop. Every CONNECT is checked by `auth` and every
    /// packet by [`crate::acl`]; replies and alerts are signed with `key`.
    pub fn embedded(
        listen: SocketAddr,
        handler: PackHandler,
        auth: ConnectAuth,
        key: NodeKey,
    ) -> Result<Self, MqttError> {
        let listeners = FrontListeners {
            plain: Some(listen),
            tls: None,
        };
        Self::embedded_on(listeners, handler, auth, key)
    }

    /// [`MqttGateway::embedded`] with the front on `listeners`: in clear, over TLS (MQTT
    /// inside TLS 1.2 or 1.3, the same rules), or both.
    pub fn embedded_on(
        listeners: FrontListeners,
        handler: PackHandler,
        auth: ConnectAuth,
        key: NodeKey,
    ) -> Result<Self, MqttError> {
        let mut bound = Vec::new();
        let mut listen = None;
        let mut tls_listen = None;
        if let Some(addr) = listeners.plain {
            let (listener, addr) = bind(addr)?;
            listen = Some(addr);
            bound.push((listener, None));
        }
        if let Some((addr, config)) = listeners.tls {
            let (listener, addr) = bind(addr)?;
            tls_listen = Some(addr);
            bound.push((listener, Some(vigil_tls::TlsAcceptor::from(config))));
        }
        if bound.is_empty() {
            return Err(MqttError::Broker("the MQTT front has no listener".into()));
        }
        let internal = internal_port()?;
        let secret = crate::front::InternalSecret::generate()
            .map_err(|e| MqttError::Broker(format!("no random secret: {e}")))?;
        // Above the front's own limit: rumqttd 0.20 mishandles a connection it cannot
        // register, so the front must run out of slots first.
        let broker_connections = MQTT_CONNECTIONS_MAX + 64;
        let config = format!(
            r#"
            id = 0
            [router]
            id = 0
            max_connections = {broker_connections}
            max_outgoing_packet_count = 200
            max_segment_size = 104857600
            max_segment_count = 10
            [v4.1]
            name = "vigil-v4"
            listen = "{internal}"
            next_connection_delay_ms = 0
            [v4.1.connections]
            connection_timeout_ms = 60000
            max_payload_size = {MQTT_PAYLOAD_BYTES_MAX}
            max_inflight_count = 500
            dynamic_filters = true
            "#
        );
        let mut config: rumqttd::Config =
            toml::from_str(&config).map_err(|e| MqttError::Broker(e.to_string()))?;
        for server in config
            .v4
            .iter_mut()
            .flat_map(|servers| servers.values_mut())
        {
            let secret = secret.clone();
            // Only the front knows the secret: a process that finds the internal port cannot
            // log in, and the node's reserved client ids stay the node's.
            server.set_auth_handler(
                move |client_id: String, _username: String, password: String| {
                    std::future::ready(
                        !crate::auth::is_reserved_client_id(&client_id) && secret.admits(&password),
                    )
                },
            );
        }
        start_front(bound, internal, Arc::new(auth), secret)?;
        let key = Arc::new(key);
        let mut broker = rumqttd::Broker::new(config);
        let (mut ingest_tx, mut ingest_rx) = broker
            .link("vigil-ingest")
            .map_err(|e| MqttError::Link(e.to_string()))?;
        let (push_tx, mut push_rx) = broker
            .link("vigil-push")
            .map_err(|e| MqttError::Link(e.to_string()))?;
        thread::Builder::new()
            .name("mqtt-broker".into())
            .spawn(move || {
                if let Err(error) = broker.start() {
                    tracing::error!(%error, "embedded MQTT broker stopped");
                }
            })
            .map_err(|e| MqttError::Broker(e.to_string()))?;
        wait_until_listening(internal)?;

        ingest_tx
            .subscribe(topic::UPLINK_FILTER)
            .map_err(|e| MqttError::Link(e.to_string()))?;
        let signer = key.clone();
        thread::Builder::new()
            .name("mqtt-ingest".into())
            .spawn(move || {
                let mut batch: Vec<(String, bytes::Bytes)> = Vec::with_capacity(UPLINK_BATCH_MAX);
                // Block for the first message, then take whatever else is already waiting.
                while let Ok(first) = ingest_rx.recv() {
                    let mut next = Some(first);
                    while let Some(notification) = next.take() {
                        if let Some(rumqttd::Notification::Forward(forward)) = notification {
                            let topic =
                                String::from_utf8_lossy(&forward.publish.topic).into_owned();
                            batch.push((topic, forward.publish.payload));
                        }
                        if batch.len() < UPLINK_BATCH_MAX {
                            next = ingest_rx.recv_deadline(Instant::now()).ok();
                        }
                    }
                    for (reply_topic, reply) in handle_batch(&handler, &signer, &batch) {
                        if let Err(error) = ingest_tx.publish(reply_topic, reply) {
                            tracing::warn!(%error, "could not publish a reply");
                        }
                    }
                    batch.clear();
                }
                tracing::error!("MQTT ingestion link closed");
            })
            .map_err(|e| MqttError::Link(e.to_string()))?;
        // The push link only publishes; drain what the router sends it so it never backs up.
        thread::Builder::new()
            .name("mqtt-push-drain".into())
            .spawn(move || while push_rx.recv().is_ok() {})
            .map_err(|e| MqttError::Link(e.to_string()))?;
        Ok(Self {
            publisher: Publisher::Embedded(Mutex::new(push_tx)),
            listen,
            tls_listen,
            key,
        })
    }

    /// Connects to an external broker as a client, subscribes to every uplink topic and runs
    /// the ingestion loop on the client's event thread. Replies and alerts are signed with
    /// `key` as with the embedded broker.
    pub fn external(
        host: &str,
        port: u16,
        client_id: &str,
        handler: PackHandler,
        key: NodeKey,
    ) -> Result<Self, MqttError> {
        let key = Arc::new(key);
        let signer = key.clone();
        let mut options = MqttOptions::new(client_id, host, port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(MQTT_PAYLOAD_BYTES_MAX + 1024, MQTT_PAYLOAD_BYTES_MAX + 1024)
            .set_clean_session(true);
        let (client, mut connection) = rumqttc::Client::new(options, CLIENT_QUEUE_MAX);
        let replier = client.clone();
        let subscriber = client.clone();
        // The event thread only moves packs to the ingestion thread, so that storing them never
        // stalls the connection's keep-alive; the bounded queue pushes back on the broker.
        let (uplinks, queued) = mpsc::sync_channel::<(String, bytes::Bytes)>(UPLINK_QUEUE_MAX);
        thread::Builder::new()
            .name("mqtt-external".into())
            .spawn(move || {
                for event in connection.iter() {
                    match event {
                        // Subscribe on every (re)connection: the session is clean.
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            if let Err(error) =
                                subscriber.try_subscribe(topic::UPLINK_FILTER, QoS::AtLeastOnce)
                            {
                                tracing::error!(%error, "could not subscribe to uplinks");
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(publish))) => {
                            if uplinks.send((publish.topic, publish.payload)).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(%error, "external MQTT broker connection; retrying");
                            thread::sleep(Duration::from_millis(500));
                        }
                    }
                }
            })
            .map_err(|e| MqttError::Link(e.to_string()))?;
        thread::Builder::new()
            .name("mqtt-ingest".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(UPLINK_BATCH_MAX);
                while let Ok(first) = queued.recv() {
                    batch.push(first);
                    while batch.len() < UPLINK_BATCH_MAX {
                        let Ok(more) = queued.try_recv() else { break };
                        batch.push(more);
                    }
                    for (reply_topic, reply) in handle_batch(&handler, &signer, &batch) {
                        if let Err(error) =
                            replier.try_publish(reply_topic, QoS::AtLeastOnce, false, reply)
                        {
                            tracing::warn!(%error, "could not publish a reply");
                        }
                    }
                    batch.clear();
                }
            })
            .map_err(|e| MqttError::Link(e.to_string()))?;
        Ok(Self {
            publisher: Publisher::External(client),
            listen: None,
            tls_listen: None,
            key,
        })
    }

    /// Where the embedded broker's front listens in clear; `None` for an external broker or
    /// a front on TLS only.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen
    }

    /// Where the embedded broker's front listens over TLS, if it does.
    pub fn tls_listen_addr(&self) -> Option<SocketAddr> {
        self.tls_listen
    }

    /// Publishes a finalized alert (or any node message) to a person's alert topic, signed.
    pub fn publish_alert(&self, person: PersonId, payload: Vec<u8>) -> Result<(), MqttError> {
        let topic = topic::alerts(person);
        let sealed = self.key.seal_alert(&topic, &payload);
        self.publish(topic, sealed)
    }

    fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), MqttError> {
        match &self.publisher {
            Publisher::Embedded(link) => {
                let mut link = link
                    .lock()
                    .map_err(|_| MqttError::Link("publisher poisoned".into()))?;
                link.publish(topic, payload)
                    .map_err(|e| MqttError::Link(e.to_string()))?;
            }
            Publisher::External(client) => {
                client.try_publish(topic, QoS::AtLeastOnce, false, payload)?
            }
        }
        Ok(())
    }
}

/// Hands the batch's valid uplinks to the node and returns each signed reply with its topic.
/// A message on any other topic is ignored (the filter makes that unlikely), and so is a pack
/// on another device's topic: answering it would publish a verdict where its sender chose.
fn handle_batch(
    handler: &PackHandler,
    key: &NodeKey,
    batch: &[(String, bytes::Bytes)],
) -> Vec<(String, Vec<u8>)> {
    let parsed: Vec<(PersonId, DeviceId, &[u8])> = batch
        .iter()
        .filter_map(|(topic, payload)| {
            let (person, device) = topic::parse_uplink(topic)?;
            if !topic_device_matches(&device, payload) {
                tracing::info!(%device, "pack on another device's uplink topic; dropped");
                return None;
            }
            Some((person, device, payload.as_ref()))
        })
        .collect();
    let uplinks: Vec<Uplink<'_>> = parsed
        .iter()
        .map(|(person, device, payload)| Uplink {
            person: *person,
            device,
            payload,
        })
        .collect();
    let replies = handler(&uplinks);
    parsed
        .iter()
        .zip(replies)
        .map(|((person, device, payload), reply)| {
            if let Some(error) = &reply.error {
                tracing::info!(%device, reason = error.reason.code(), message = %error.message, "pack refused");
            }
            let topic = topic::reply(*person, device);
            let body = key.seal_reply(&topic, payload, &reply);
            (topic, body)
        })
        .collect()
}

/// Whether the pack names the device of its topic, or cannot be read at all (then admission
/// refuses it with the reason, on the topic's own reply topic: nothing in it names another
/// device whose reply topic a sender could aim at).
fn topic_device_matches(device: &DeviceId, payload: &[u8]) -> bool {
    match UnverifiedPack::parse(payload, detect_format(payload)) {
        Ok(pack) => pack.device() == device,
        Err(_) => true,
    }
}
