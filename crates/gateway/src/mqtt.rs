//! The node's MQTT side: an embedded broker (rumqttd) by default, or an external broker
//! (e.g. Debian's mosquitto) reached as a client. Either way one ingestion loop subscribes to
//! every uplink topic, hands each pack to the node and publishes the verdict on the device's
//! reply topic; alerts are published on the person's alert topic.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rumqttc::{Event, MqttOptions, Packet, QoS};
use vigil_core::{DeviceId, PersonId};

use crate::admit::Reply;
use crate::topic;

/// The broker refuses larger MQTT payloads by closing the connection. It is above the pack
/// limit on purpose, so that a pack somewhat too large still gets a reply naming the reason.
pub const MQTT_PAYLOAD_BYTES_MAX: usize = 256 * 1024;
/// Concurrent MQTT connections to the embedded broker.
pub const MQTT_CONNECTIONS_MAX: usize = 200_000;
/// Requests queued towards an external broker before publishing blocks.
const CLIENT_QUEUE_MAX: usize = 10_000;

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

/// Handles one pack received on `vigil/<person>/<device>/up`.
pub type PackHandler = Arc<dyn Fn(PersonId, &DeviceId, &[u8]) -> Reply + Send + Sync>;

enum Publisher {
    Embedded(Mutex<rumqttd::local::LinkTx>),
    External(rumqttc::Client),
}

/// A running MQTT side of the node.
pub struct MqttGateway {
    publisher: Publisher,
    listen: Option<SocketAddr>,
}

impl MqttGateway {
    /// Starts the embedded broker on `listen` (MQTT 3.1.1) and the ingestion loop.
    pub fn embedded(listen: SocketAddr, handler: PackHandler) -> Result<Self, MqttError> {
        let config = format!(
            r#"
            id = 0
            [router]
            id = 0
            max_connections = {MQTT_CONNECTIONS_MAX}
            max_outgoing_packet_count = 200
            max_segment_size = 104857600
            max_segment_count = 10
            [v4.1]
            name = "vigil-v4"
            listen = "{listen}"
            next_connection_delay_ms = 0
            [v4.1.connections]
            connection_timeout_ms = 60000
            max_payload_size = {MQTT_PAYLOAD_BYTES_MAX}
            max_inflight_count = 500
            dynamic_filters = true
            "#
        );
        let config: rumqttd::Config =
            toml::from_str(&config).map_err(|e| MqttError::Broker(e.to_string()))?;
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

        ingest_tx
            .subscribe(topic::UPLINK_FILTER)
            .map_err(|e| MqttError::Link(e.to_string()))?;
        thread::Builder::new()
            .name("mqtt-ingest".into())
            .spawn(move || {
                while let Ok(notification) = ingest_rx.recv() {
                    let Some(rumqttd::Notification::Forward(forward)) = notification else {
                        continue;
                    };
                    let topic = String::from_utf8_lossy(&forward.publish.topic).into_owned();
                    if let Some((reply_topic, reply)) =
                        handle(&handler, &topic, &forward.publish.payload)
                        && let Err(error) = ingest_tx.publish(reply_topic, reply)
                    {
                        tracing::warn!(%error, "could not publish a reply");
                    }
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
            listen: Some(listen),
        })
    }

    /// Connects to an external broker as a client, subscribes to every uplink topic and runs
    /// the ingestion loop on the client's event thread.
    pub fn external(
        host: &str,
        port: u16,
        client_id: &str,
        handler: PackHandler,
    ) -> Result<Self, MqttError> {
        let mut options = MqttOptions::new(client_id, host, port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(MQTT_PAYLOAD_BYTES_MAX + 1024, MQTT_PAYLOAD_BYTES_MAX + 1024)
            .set_clean_session(true);
        let (client, mut connection) = rumqttc::Client::new(options, CLIENT_QUEUE_MAX);
        let replier = client.clone();
        let subscriber = client.clone();
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
                            if let Some((reply_topic, reply)) =
                                handle(&handler, &publish.topic, &publish.payload)
                                && let Err(error) =
                                    replier.try_publish(reply_topic, QoS::AtLeastOnce, false, reply)
                            {
                                tracing::warn!(%error, "could not publish a reply");
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
        Ok(Self {
            publisher: Publisher::External(client),
            listen: None,
        })
    }

    /// Where the embedded broker listens; `None` for an external broker.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen
    }

    /// Publishes a finalized alert (or any node message) to a person's alert topic.
    pub fn publish_alert(&self, person: PersonId, payload: Vec<u8>) -> Result<(), MqttError> {
        self.publish(topic::alerts(person), payload)
    }

    pub fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), MqttError> {
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

fn handle(handler: &PackHandler, topic: &str, payload: &[u8]) -> Option<(String, Vec<u8>)> {
    let (person, device) = topic::parse_uplink(topic)?;
    let reply = handler(person, &device, payload);
    if let Some(error) = &reply.error {
        tracing::info!(%device, reason = error.reason.code(), message = %error.message, "pack refused");
    }
    let body = serde_json::to_vec(&reply).unwrap_or_default();
    Some((topic::reply(person, &device), body))
}
