//! The master device's side: signed packs wait in a durable SQLite outbox until the node has
//! answered them, so readings survive a restart of the phone or gateway and a loss of network.
//! A pack leaves the outbox only on the node's reply: accepted, or refused for a reason that
//! re-sending cannot fix (a replay counts as delivered: the node already has it).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use rumqttc::{Event, MqttOptions, Packet, QoS};
use rusqlite::{Connection, OptionalExtension, params};
use vigil_core::senml::PackDraft;
use vigil_core::{DeviceId, DeviceKey, PersonId};

use crate::admit::{Rejection, Reply};
use crate::auth;
use crate::mqtt::MQTT_PAYLOAD_BYTES_MAX;
use crate::signed::NodePublicKey;
use crate::topic;

/// Packs published but not yet answered, at most.
pub const IN_FLIGHT_MAX: usize = 256;
/// Replies buffered between the MQTT thread and the uploader.
const REPLY_QUEUE_MAX: usize = 4_096;
/// Signed alerts remembered to drop a replayed copy; beyond this the oldest is forgotten.
const ALERTS_SEEN_MAX: usize = 4_096;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    #[error("outbox database: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("MQTT client: {0}")]
    Client(#[from] rumqttc::ClientError),
    #[error("pack of {0} readings is empty or too large to send")]
    PackSize(usize),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// One pack waiting for the node's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub person: PersonId,
    pub device: DeviceId,
    pub sequence: u64,
    pub payload: Vec<u8>,
}

pub struct Outbox {
    db: Connection,
}

impl Outbox {
    pub fn open(path: &Path) -> Result<Self, OutboxError> {
        Self::init(Connection::open(path)?)
    }

    pub fn open_in_memory() -> Result<Self, OutboxError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(db: Connection) -> Result<Self, OutboxError> {
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS sequences (device TEXT PRIMARY KEY, next INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS outbox (
                 device TEXT NOT NULL, seq INTEGER NOT NULL, person BLOB NOT NULL,
                 payload BLOB NOT NULL, PRIMARY KEY (device, seq));
             CREATE TABLE IF NOT EXISTS refused (
                 device TEXT NOT NULL, seq INTEGER NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL);",
        )?;
        Ok(Self { db })
    }

    /// Signs the readings as the device's next pack and stores it, in one transaction: a
    /// sequence number is never used twice, even across a crash.
    pub fn enqueue(
        &mut self,
        person: PersonId,
        key: &DeviceKey,
        build: impl FnOnce(&mut PackDraft),
        device: &DeviceId,
    ) -> Result<u64, OutboxError> {
        let tx = self.db.transaction()?;
        let sequence: u64 = tx
            .query_row(
                "SELECT next FROM sequences WHERE device = ?1",
                [device.as_str()],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(1);
        let mut draft = PackDraft::new(device.clone(), sequence);
        build(&mut draft);
        let payload = draft.sign(key).to_json();
        if payload.len() > vigil_core::senml::PACK_BYTES_MAX {
            return Err(OutboxError::PackSize(payload.len()));
        }
        tx.execute(
            "INSERT OR REPLACE INTO sequences VALUES (?1, ?2)",
            params![device.as_str(), sequence + 1],
        )?;
        tx.execute(
            "INSERT INTO outbox VALUES (?1, ?2, ?3, ?4)",
            params![device.as_str(), sequence, person.as_bytes(), payload],
        )?;
        tx.commit()?;
        Ok(sequence)
    }

    /// The oldest packs still waiting, at most `limit`.
    pub fn pending(&self, limit: usize) -> Result<Vec<Pending>, OutboxError> {
        let mut query = self.db.prepare_cached(
            "SELECT device, seq, person, payload FROM outbox ORDER BY rowid LIMIT ?1",
        )?;
        let rows = query.query_map([limit as i64], |row| {
            let device: String = row.get(0)?;
            let person: Vec<u8> = row.get(2)?;
            Ok((
                device,
                row.get::<_, u64>(1)?,
                person,
                row.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        let mut pending = Vec::new();
        for row in rows {
            let (device, sequence, person, payload) = row?;
            // Rows are only written by `enqueue`, from valid values; skip any that are not.
            let (Ok(device), Ok(person)) = (device.parse(), <[u8; 16]>::try_from(person)) else {
                continue;
            };
            pending.push(Pending {
                person: PersonId::from_bytes(person),
                device,
                sequence,
                payload,
            });
        }
        Ok(pending)
    }

    /// The bytes of a pack still waiting, to check that a reply answers this very pack.
    pub fn payload(
        &self,
        device: &DeviceId,
        sequence: u64,
    ) -> Result<Option<Vec<u8>>, OutboxError> {
        Ok(self
            .db
            .query_row(
                "SELECT payload FROM outbox WHERE device = ?1 AND seq = ?2",
                params![device.as_str(), sequence],
                |row| row.get(0),
            )
            .optional()?)
    }

    pub fn len(&self) -> Result<usize, OutboxError> {
        Ok(self
            .db
            .query_row("SELECT COUNT(*) FROM outbox", [], |row| {
                row.get::<_, i64>(0)
            })? as usize)
    }

    pub fn is_empty(&self) -> Result<bool, OutboxError> {
        Ok(self.len()? == 0)
    }

    /// Applies the node's reply to the pack it answers. Returns whether the pack left the
    /// outbox.
    pub fn apply_reply(&mut self, device: &DeviceId, reply: &Reply) -> Result<bool, OutboxError> {
        let Some(sequence) = reply.sequence else {
            return Ok(false);
        };
        let done = match &reply.error {
            None => true,
            Some(error) if error.reason == Rejection::Replayed => true,
            Some(error) if error.reason.is_final() => {
                self.db.execute(
                    "INSERT INTO refused VALUES (?1, ?2, ?3, ?4)",
                    params![
                        device.as_str(),
                        sequence,
                        error.reason.code(),
                        error.message
                    ],
                )?;
                true
            }
            Some(_) => false,
        };
        if done {
            self.db.execute(
                "DELETE FROM outbox WHERE device = ?1 AND seq = ?2",
                params![device.as_str(), sequence],
            )?;
        }
        Ok(done)
    }

    /// Packs the node refused for good, with the reason, for the person or an engineer to see.
    pub fn refused(&self) -> Result<Vec<(DeviceId, u64, String)>, OutboxError> {
        let mut query = self
            .db
            .prepare("SELECT device, seq, reason FROM refused ORDER BY rowid")?;
        let rows = query.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get(1)?, row.get(2)?))
        })?;
        let mut refused = Vec::new();
        for row in rows {
            let (device, seq, reason) = row?;
            if let Ok(device) = device.parse() {
                refused.push((device, seq, reason));
            }
        }
        Ok(refused)
    }
}

/// What one [`Uploader::flush`] achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Packs the node accepted (or already had).
    pub delivered: usize,
    /// Packs the node refused for good.
    pub refused: usize,
    /// Packs still waiting when the flush ended.
    pub remaining: usize,
    /// Whether the flush ended because the node could not be reached (the packs wait).
    pub unreachable: bool,
    /// Replies and alerts refused because the node did not sign them (for this pack, on this
    /// topic): what a forger on the broker sent.
    pub forged: usize,
}

/// What the uploader logs in with: one device's identity, whose key signs each CONNECT's
/// token. A master device uploading for several wearables of one person logs in as one of
/// them.
pub struct DeviceCredential {
    pub person: PersonId,
    pub device: DeviceId,
    pub key: DeviceKey,
}

impl DeviceCredential {
    fn login(&self, client_id: &str) -> auth::Login {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        auth::device_login(&self.key, self.person, &self.device, client_id, now_ms)
    }
}

/// Sends the outbox over MQTT and applies the node's replies, each only once its signature
/// by the node verifies for the pack it answers.
pub struct Uploader {
    client: rumqttc::Client,
    node_key: NodePublicKey,
    /// Alerts received with the node's signature, not yet taken.
    alerts: Vec<serde_json::Value>,
    /// The signed alerts already taken, oldest first: anyone on the broker can publish a
    /// captured genuine alert again, and it must not count twice.
    alerts_seen: std::collections::VecDeque<Vec<u8>>,
    alert_topics: HashSet<String>,
    replies: mpsc::Receiver<(String, Vec<u8>)>,
    /// Reply topics to (re)subscribe on every connection: the session is clean.
    reply_topics: Arc<Mutex<HashSet<String>>>,
    /// When each unanswered pack was last published, across flushes, so that calling
    /// [`Uploader::flush`] often does not re-send packs still within `resend_after`.
    sent_at: HashMap<(DeviceId, u64), Instant>,
}

impl Uploader {
    /// Starts connecting to the node's broker; the connection is re-established on its own
    /// after a loss, and packs wait in the outbox meanwhile. Each (re)connection logs in with
    /// a fresh token of `credential`; replies and alerts count only when `node_key` signed
    /// them.
    pub fn connect(
        host: &str,
        port: u16,
        client_id: &str,
        credential: DeviceCredential,
        node_key: NodePublicKey,
    ) -> Self {
        Self::connect_with(host, port, client_id, credential, node_key, None)
    }

    /// [`Uploader::connect`], over TLS when `tls` is given: the broker's certificate must
    /// chain to the configuration's roots and name `host`.
    pub fn connect_with(
        host: &str,
        port: u16,
        client_id: &str,
        credential: DeviceCredential,
        node_key: NodePublicKey,
        tls: Option<Arc<vigil_tls::rustls::ClientConfig>>,
    ) -> Self {
        let mut options = MqttOptions::new(client_id, host, port);
        if let Some(config) = tls {
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(config),
            ));
        }
        let login = credential.login(client_id);
        let client_id = client_id.to_owned();
        options
            .set_credentials(login.username, login.password)
            .set_keep_alive(Duration::from_secs(15))
            .set_max_packet_size(MQTT_PAYLOAD_BYTES_MAX + 1024, MQTT_PAYLOAD_BYTES_MAX + 1024)
            .set_clean_session(true);
        let (client, mut connection) = rumqttc::Client::new(options, IN_FLIGHT_MAX * 2);
        let (sender, replies) = mpsc::sync_channel(REPLY_QUEUE_MAX);
        let reply_topics: Arc<Mutex<HashSet<String>>> = Arc::default();
        let resubscriber = client.clone();
        let topics = reply_topics.clone();
        thread::spawn(move || {
            loop {
                let Ok(event) = connection.recv() else { return };
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let topics = topics.lock().map(|t| t.clone()).unwrap_or_default();
                        for topic in topics {
                            let _ = resubscriber.try_subscribe(topic, QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        if sender
                            .send((publish.topic, publish.payload.to_vec()))
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // The event loop reconnects on the next poll, with a token fresh for it;
                    // don't spin meanwhile.
                    Err(_) => {
                        let login = credential.login(&client_id);
                        connection
                            .eventloop
                            .mqtt_options
                            .set_credentials(login.username, login.password);
                        thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        });
        Self {
            client,
            node_key,
            alerts: Vec::new(),
            alerts_seen: std::collections::VecDeque::new(),
            alert_topics: HashSet::new(),
            replies,
            reply_topics,
            sent_at: HashMap::new(),
        }
    }

    fn subscribe_replies(&self, person: PersonId, device: &DeviceId) {
        self.subscribe(topic::reply(person, device));
    }

    /// Receives the person's alerts from now on; [`Uploader::take_alerts`] hands over those
    /// the node signed.
    pub fn watch_alerts(&mut self, person: PersonId) {
        let topic = topic::alerts(person);
        self.alert_topics.insert(topic.clone());
        self.subscribe(topic);
    }

    /// The signed alerts received during the flushes so far.
    pub fn take_alerts(&mut self) -> Vec<serde_json::Value> {
        std::mem::take(&mut self.alerts)
    }

    fn subscribe(&self, topic: String) {
        let new = self
            .reply_topics
            .lock()
            .map(|mut t| t.insert(topic.clone()))
            .unwrap_or(false);
        if new {
            let _ = self.client.try_subscribe(topic, QoS::AtLeastOnce);
        }
    }

    /// Publishes waiting packs and applies the replies until the outbox is empty or `deadline`
    /// passes. A pack not answered within `resend_after` is published again.
    pub fn flush(
        &mut self,
        outbox: &mut Outbox,
        deadline: Instant,
        resend_after: Duration,
    ) -> Result<FlushReport, OutboxError> {
        let mut report = FlushReport::default();
        loop {
            let pending = outbox.pending(IN_FLIGHT_MAX)?;
            // Forget packs that left the outbox (answered here or by an earlier flush).
            if self.sent_at.len() > pending.len() {
                let waiting: HashSet<(&DeviceId, u64)> =
                    pending.iter().map(|p| (&p.device, p.sequence)).collect();
                self.sent_at
                    .retain(|(device, sequence), _| waiting.contains(&(device, *sequence)));
            }
            if pending.is_empty() || Instant::now() >= deadline {
                report.remaining = outbox.len()?;
                return Ok(report);
            }
            for pack in pending {
                let key = (pack.device.clone(), pack.sequence);
                if self
                    .sent_at
                    .get(&key)
                    .is_some_and(|at| at.elapsed() < resend_after)
                {
                    continue;
                }
                self.subscribe_replies(pack.person, &pack.device);
                // A full request queue or a lost connection only delays the pack.
                let _ = self.client.try_publish(
                    topic::uplink(pack.person, &pack.device),
                    QoS::AtLeastOnce,
                    false,
                    pack.payload,
                );
                self.sent_at.insert(key, Instant::now());
            }
            let mut next = self.replies.recv_timeout(Duration::from_millis(50)).ok();
            while let Some((message_topic, payload)) = next {
                self.receive(outbox, &message_topic, &payload, &mut report)?;
                next = self.replies.try_recv().ok();
            }
        }
    }

    /// Applies one message from the broker: a reply the node signed for a waiting pack, or a
    /// signed alert. Anything else is counted as forged and changes nothing.
    fn receive(
        &mut self,
        outbox: &mut Outbox,
        message_topic: &str,
        payload: &[u8],
        report: &mut FlushReport,
    ) -> Result<(), OutboxError> {
        if self.alert_topics.contains(message_topic) {
            match self.node_key.open_alert(message_topic, payload) {
                // A byte-identical copy is a replay (each alert and status change names
                // its alert and differs from every other).
                Ok(_) if self.alerts_seen.iter().any(|seen| seen == payload) => {
                    report.forged += 1;
                }
                Ok(alert) => {
                    if self.alerts_seen.len() == ALERTS_SEEN_MAX {
                        self.alerts_seen.pop_front();
                    }
                    self.alerts_seen.push_back(payload.to_vec());
                    self.alerts.push(alert);
                }
                Err(error) => {
                    tracing::warn!(topic = message_topic, %error, "alert refused");
                    report.forged += 1;
                }
            }
            return Ok(());
        }
        let Some((_, device)) = topic::parse_reply(message_topic) else {
            return Ok(());
        };
        // A reply for no waiting pack changes nothing whoever sent it (an answer to a pack
        // already applied, typically), and neither does one that names no pack at all.
        let Some(sequence) = NodePublicKey::peek_reply_sequence(payload) else {
            return Ok(());
        };
        let Some(pack) = outbox.payload(&device, sequence)? else {
            return Ok(());
        };
        let reply = match self.node_key.open_reply(message_topic, &pack, payload) {
            Ok(reply) => reply,
            Err(error) => {
                tracing::warn!(topic = message_topic, %error, "reply refused");
                report.forged += 1;
                return Ok(());
            }
        };
        if outbox.apply_reply(&device, &reply)? {
            if reply.accepted
                || reply
                    .error
                    .as_ref()
                    .is_some_and(|e| e.reason == Rejection::Replayed)
            {
                report.delivered += 1;
            } else {
                report.refused += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use vigil_core::{Metric, Value};

    use super::*;
    use crate::admit::Rejected;

    fn device() -> DeviceId {
        "oxi-1".parse().expect("valid")
    }

    fn enqueue(outbox: &mut Outbox, key: &DeviceKey, spo2: i32) -> u64 {
        outbox
            .enqueue(
                PersonId::from_bytes([5; 16]),
                key,
                |draft| {
                    draft.push(Metric::SpO2, 1_700_000_000_000, Value::Scalar(spo2));
                },
                &device(),
            )
            .expect("enqueues")
    }

    #[test]
    fn sequences_survive_a_restart_and_replies_empty_the_outbox() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("outbox.sqlite");
        let key = DeviceKey::from_seed([1; 32]);
        {
            let mut outbox = Outbox::open(&path).expect("opens");
            assert_eq!(enqueue(&mut outbox, &key, 970), 1);
            assert_eq!(enqueue(&mut outbox, &key, 971), 2);
        }
        let mut outbox = Outbox::open(&path).expect("reopens");
        assert_eq!(enqueue(&mut outbox, &key, 972), 3);
        let pending = outbox.pending(10).expect("reads");
        assert_eq!(
            pending.iter().map(|p| p.sequence).collect::<Vec<_>>(),
            [1, 2, 3]
        );

        assert!(
            outbox
                .apply_reply(&device(), &Reply::accepted(1, 1))
                .expect("applies")
        );
        let replayed = Rejected::new(Rejection::Replayed, "already accepted");
        assert!(
            outbox
                .apply_reply(&device(), &Reply::rejected(Some(2), replayed))
                .expect("applies")
        );
        let busy = Rejected::new(Rejection::Unavailable, "database busy");
        assert!(
            !outbox
                .apply_reply(&device(), &Reply::rejected(Some(3), busy))
                .expect("applies")
        );
        assert_eq!(outbox.len().expect("counts"), 1);
        let bad = Rejected::new(Rejection::InvalidReading, "spo2 over 100 %");
        assert!(
            outbox
                .apply_reply(&device(), &Reply::rejected(Some(3), bad))
                .expect("applies")
        );
        assert!(outbox.is_empty().expect("counts"));
        assert_eq!(
            outbox.refused().expect("reads"),
            [(device(), 3, "invalid_reading".to_owned())]
        );
    }
}
