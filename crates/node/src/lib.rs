//! Vigil's node: one process that joins ingestion (MQTT, and packs handed over by the HTTP
//! layer), the encrypted health record, the monitor contracts and the ledger, and publishes the
//! live alert stream and Prometheus metrics. It knows nothing of HTTP: `vigil-api` serves it,
//! and the binary wires the two.
//!
//! A reading's way through: a pack arrives (MQTT uplink or `POST /api/packs/{person}`) →
//! [`vigil_gateway::admit`] (syntax, units, enrolled device, signature) → the EHR stores it
//! exactly once (its sequence number in the same SQLite transaction) → the [`monitor`]
//! evaluates the person's contract instances → a level above 0 becomes an `Alert`
//! transaction signed by the node's gateway identity → once finalized, it is pushed to
//! operators (SSE) and to the person (MQTT), and each finalized block triggers the EHR anchor
//! of the records accepted since the previous one.

mod actions;
pub mod config;
mod escalation;
pub mod ingest;
pub mod map_tiles;
pub mod metrics;
pub mod monitor;
pub mod notify;
mod reason_text;
pub mod stats;
pub mod users;

pub use actions::{ActionState, ActionStatus};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lru::LruCache;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::broadcast;
use vigil_core::{PersonId, TimestampMs};
use vigil_ehr::{Ehr, EhrError, SecretKey};
use vigil_gateway::auth::ConnectAuth;
use vigil_gateway::mqtt::MqttGateway;
use vigil_gateway::signed::{NodeKey, NodePublicKey};
use vigil_gateway::{Rejected, Rejection, Reply};
use vigil_ledger::block::Block;
use vigil_ledger::finalized::{Finalized, Followed, Follower};
use vigil_ledger::mempool::DropReason;
use vigil_ledger::node::Ledger;
use vigil_ledger::signer::Signer;
use vigil_ledger::tx::{TxBody, TxId};

use crate::metrics::NodeMetrics;
use crate::monitor::{AlertDraft, Monitor};
use crate::users::Users;
pub use map_tiles::{MapTiles, MapTilesError};

/// Live events buffered per subscriber of the alert stream; a slower subscriber skips ahead.
pub const LIVE_EVENTS_QUEUE_MAX: usize = 4_096;
/// Times one alert is submitted again after vanishing from the mempool with no reason (lost
/// with a restarted validator, say); then it is logged and counted as lost.
pub const ALERT_RESUBMITS_MAX: u8 = 3;
/// Alerts awaiting finalization whose arrival time and reason are remembered; beyond this the
/// oldest is forgotten (one alert without a reason rather than every in-flight one).
const PENDING_ALERTS_MAX: NonZeroUsize = NonZeroUsize::new(100_000).expect("not zero");
/// How often time-driven contracts (no-signal, durations) are advanced.
const TICK_PERIOD: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error("health record: {0}")]
    Ehr(#[from] EhrError),
    #[error("MQTT: {0}")]
    Mqtt(#[from] vigil_gateway::mqtt::MqttError),
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("notifications: {0}")]
    Notify(#[from] vigil_notify::NotifyError),
    #[error("notifications: {0}")]
    DeliveryLog(#[from] vigil_notify::log::LogError),
}

/// Where the node's MQTT side lives.
#[derive(Clone, Debug)]
pub enum MqttMode {
    /// The embedded broker, listening here (127.0.0.1 by default).
    Embedded(SocketAddr),
    /// The embedded broker with its front on these listeners (in clear, over TLS, or both).
    EmbeddedOn(vigil_gateway::mqtt::FrontListeners),
    /// An external broker such as mosquitto, as a client.
    External {
        host: String,
        port: u16,
    },
    Disabled,
}

impl MqttMode {
    /// Where the embedded broker's front listens; `None` when the broker is not embedded.
    pub fn front_listeners(&self) -> Option<vigil_gateway::mqtt::FrontListeners> {
        match self {
            MqttMode::Embedded(addr) => Some(vigil_gateway::mqtt::FrontListeners {
                plain: Some(*addr),
                tls: None,
            }),
            MqttMode::EmbeddedOn(listeners) => Some(listeners.clone()),
            MqttMode::External { .. } | MqttMode::Disabled => None,
        }
    }
}

pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub mqtt: MqttMode,
    /// Wraps every person's data key in the health record.
    pub ehr_master_key: SecretKey,
    /// The node's own identity (role `gateway` on the ledger): it signs alerts, EHR anchors.
    pub gateway: Signer,
    pub users: Users,
    /// How far ahead of this node's clock a reading may be stamped before it is refused
    /// (`future_reading`): devices' clocks drift, but a reading from the future would keep
    /// its device's no-signal contract from firing. [`FUTURE_SKEW_DEFAULT`] unless configured.
    pub future_skew: Duration,
    /// The tile server of the dashboard's map; `None`: the map is a local plane with no tiles
    /// (nothing fetched from outside the node).
    pub map_tiles: Option<MapTiles>,
    /// Webhooks and e-mail for finalized alerts (`[service.notify]`); `None`: the dashboard
    /// and the person's MQTT topic only.
    pub notify: Option<vigil_notify::NotifyConfig>,
}

/// The default of [`NodeConfig::future_skew`]: five minutes.
pub const FUTURE_SKEW_DEFAULT: Duration = Duration::from_secs(5 * 60);

/// What the live stream carries.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum LiveEvent {
    /// A finalized alert. `reason` (which names values) is present only on the node that
    /// evaluated it, and is sent only to staff.
    Alert {
        id: String,
        person: PersonId,
        instance: String,
        level: u8,
        /// `device-signed` (re-derived by every validator from the device's signed readings)
        /// or `attested` (no-signal: the gateway's word, silence cannot be signed).
        basis: &'static str,
        reading_time_ms: TimestampMs,
        height: u64,
        /// When this node saw the block finalized (ms since the epoch): the dashboard's
        /// latency is measured from here.
        finalized_ms: TimestampMs,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<serde_json::Value>,
    },
    /// A finalized change of an alert's status.
    AlertStatus {
        id: String,
        person: PersonId,
        status: &'static str,
        height: u64,
    },
    /// A finalized block.
    Block { height: u64, txs: usize },
    /// An open alert's person was reminded (the `count`-th time) by the escalation policy.
    AlertReminder {
        id: String,
        person: PersonId,
        count: u8,
    },
    /// A finalized escalation step of an alert nobody acknowledged; `level` is the alert's
    /// level after it (raised to critical where the policy says so).
    AlertEscalated {
        id: String,
        person: PersonId,
        step: u8,
        level: u8,
        height: u64,
    },
}

impl LiveEvent {
    /// The person the event concerns, to filter a patient's stream.
    pub fn person(&self) -> Option<PersonId> {
        match self {
            LiveEvent::Alert { person, .. }
            | LiveEvent::AlertStatus { person, .. }
            | LiveEvent::AlertReminder { person, .. }
            | LiveEvent::AlertEscalated { person, .. } => Some(*person),
            LiveEvent::Block { .. } => None,
        }
    }
}

/// An alert this node submitted and follows until it is finalized.
pub(crate) struct PendingAlert {
    received: Instant,
    reason: serde_json::Value,
    /// The transaction as submitted, and its evidence, to submit it again if it vanishes.
    tx: vigil_ledger::tx::Tx,
    evidence: vigil_contracts::Evidence,
    resubmits: u8,
}

/// The running node, shared by its tasks and request handlers.
pub struct Node {
    pub(crate) ledger: Ledger,
    pub(crate) gateway: Signer,
    pub(crate) ehr: Mutex<Ehr>,
    /// A second handle on the same health record (SQLite WAL: readers never wait for the
    /// writer) for staff and patients' reads, so that a read storm never holds the lock that
    /// ingestion and anchoring take. Never erases: an erasure must go through `ehr`, and
    /// would have to drop this handle's cached data keys too.
    ehr_reader: Mutex<Ehr>,
    pub(crate) monitor: Mutex<Monitor>,
    pub(crate) metrics: NodeMetrics,
    pub(crate) events: broadcast::Sender<LiveEvent>,
    pub(crate) users: RwLock<Users>,
    pub(crate) pending: Mutex<LruCache<TxId, PendingAlert>>,
    /// Reminders sent and escalations in flight ([`escalation`]).
    escalation: Mutex<escalation::Follow>,
    /// Operators' actions followed until finalized or failed ([`actions`]).
    actions: Mutex<actions::Actions>,
    /// The height of the last finalized block this node applied.
    applied_height: std::sync::atomic::AtomicU64,
    mqtt: Mutex<Option<Arc<MqttGateway>>>,
    /// This node's anchor transactions submitted and not yet finalized, by first record.
    anchors_in_flight: Mutex<std::collections::BTreeMap<u64, vigil_ledger::tx::Tx>>,
    /// The validator set block certificates are checked against ([`Node::set_genesis`]).
    genesis: std::sync::OnceLock<vigil_ledger::node::Genesis>,
    /// [`NodeConfig::future_skew`].
    future_skew: Duration,
    /// Private statistics, when a deployment is attached ([`Node::enable_stats`]).
    pub(crate) stats: std::sync::OnceLock<Arc<stats::Stats>>,
    /// [`NodeConfig::map_tiles`].
    map_tiles: Option<MapTiles>,
    /// The notification channels, when configured ([`NodeConfig::notify`]).
    notifier: Option<Arc<vigil_notify::Notifier>>,
}

pub fn now_ms() -> TimestampMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as TimestampMs)
}

impl Node {
    /// Opens the health record, rebuilds the catalog from the finalized state, and starts the
    /// MQTT side, the finalized-block follower and the contract ticker, on the caller's tokio
    /// runtime. The HTTP API is not the node's: `vigil_api` serves it over the returned node.
    pub fn start(ledger: Ledger, config: NodeConfig) -> Result<Arc<Node>, NodeError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| NodeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let ehr_reader = Ehr::open(&ehr_path(&config.data_dir), config.ehr_master_key.clone())?;
        let ehr = Ehr::open(&ehr_path(&config.data_dir), config.ehr_master_key)?;
        // The catalog is loaded from one snapshot and the follower starts right after it, so no
        // block falls between the two.
        let loaded = ledger.snapshot();
        let mut monitor = Monitor::new();
        monitor.load_active(&loaded);
        let follower = ledger.follow(loaded.height() + 1);
        let (events, _) = broadcast::channel(LIVE_EVENTS_QUEUE_MAX);
        let metrics = NodeMetrics::new();
        // Subscribed before the follower starts, so no finalized alert escapes the channels.
        let notifier = match config.notify {
            Some(notify) => Some(notify::start(
                notify,
                &config.data_dir,
                ledger.clone(),
                events.subscribe(),
                metrics.notify_counters(),
            )?),
            None => None,
        };
        let node = Arc::new(Node {
            ledger,
            gateway: config.gateway,
            ehr: Mutex::new(ehr),
            ehr_reader: Mutex::new(ehr_reader),
            monitor: Mutex::new(monitor),
            metrics,
            events,
            users: RwLock::new(config.users),
            pending: Mutex::new(LruCache::new(PENDING_ALERTS_MAX)),
            escalation: Mutex::default(),
            actions: Mutex::default(),
            applied_height: std::sync::atomic::AtomicU64::new(0),
            mqtt: Mutex::new(None),
            anchors_in_flight: Mutex::default(),
            stats: std::sync::OnceLock::new(),
            genesis: std::sync::OnceLock::new(),
            future_skew: config.future_skew,
            map_tiles: config.map_tiles,
            notifier,
        });

        let handler_node = node.clone();
        let handler: vigil_gateway::mqtt::PackHandler = Arc::new(move |uplinks| {
            let packs: Vec<ingest::Incoming<'_>> = uplinks
                .iter()
                .map(|u| ingest::Incoming {
                    person: Some(u.person),
                    bytes: u.payload,
                })
                .collect();
            handler_node.ingest_batch(&packs, "mqtt")
        });
        let mqtt = match &config.mqtt {
            MqttMode::Embedded(_) | MqttMode::EmbeddedOn(_) => {
                let listeners = config.mqtt.front_listeners().unwrap_or_default();
                let directory = Arc::new(ingest::SharedLedgerDirectory(node.ledger.clone()));
                // Devices log in with tokens signed by their enrolled key; staff as
                // `service:<name>` with their API token. Never patients: the broker cannot
                // keep a client to its own topics, and a patient must not read others'.
                let staff = Arc::downgrade(&node);
                let auth = ConnectAuth::new(directory).with_service_check(Arc::new(
                    move |name: &str, token: &str| {
                        let Some(node) = staff.upgrade() else {
                            return false;
                        };
                        matches!(
                            node.users.read().authenticate(token),
                            Some(users::Principal::Staff { name: staff, .. }) if staff == name
                        )
                    },
                ));
                Some(MqttGateway::embedded_on(
                    listeners,
                    handler,
                    auth,
                    node.message_key(),
                )?)
            }
            MqttMode::External { host, port } => Some(MqttGateway::external(
                host,
                *port,
                "vigil-node",
                handler,
                node.message_key(),
            )?),
            MqttMode::Disabled => None,
        };
        *node.mqtt.lock() = mqtt.map(Arc::new);

        tokio::spawn(follow_finalized(node.clone(), follower));
        tokio::spawn(tick_contracts(node.clone()));
        Ok(node)
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Opens a person's health record, as registering them through the API does; for tools
    /// that drive the node in-process (`vigil bench ingest`).
    pub fn register_record(
        &self,
        person: PersonId,
        identity: &vigil_ehr::Identity,
    ) -> Result<(), EhrError> {
        self.ehr.lock().register_person(person, identity)
    }

    /// Contract instances the node's monitor runs (it follows the finalized deployments).
    pub fn monitored_instances(&self) -> usize {
        self.monitor.lock().instances()
    }

    pub fn gateway_identity(&self) -> &Signer {
        &self.gateway
    }

    /// The key replies and alerts to devices are signed with: the gateway identity's own, so
    /// its public half (on the ledger, and [`Node::message_public_key`]) is what a device
    /// checks them against.
    fn message_key(&self) -> NodeKey {
        let mut seed = [0u8; 32];
        // An Ed25519 private key encodes as its 32-byte seed (RFC 8032).
        seed.copy_from_slice(&self.gateway.to_bytes()[..32]);
        NodeKey::from_seed(seed)
    }

    /// What a device must be configured with to accept the node's replies and alerts.
    pub fn message_public_key(&self) -> NodePublicKey {
        self.message_key().public()
    }

    /// The genesis this node's ledger started from: its validator set is what block
    /// certificates are verified against. Without it the explorer says so instead of
    /// claiming a verified certificate. The first call wins.
    pub fn set_genesis(&self, genesis: vigil_ledger::node::Genesis) {
        let _ = self.genesis.set(genesis);
    }

    /// The genesis given to [`Node::set_genesis`], if any.
    pub fn genesis(&self) -> Option<&vigil_ledger::node::Genesis> {
        self.genesis.get()
    }

    /// The dashboard map's tile server ([`NodeConfig::map_tiles`]), if one is configured.
    pub fn map_tiles(&self) -> Option<&MapTiles> {
        self.map_tiles.as_ref()
    }

    /// The principal holding a bearer token.
    pub fn authenticate(&self, token: &str) -> Option<users::Principal> {
        self.users.read().authenticate(token)
    }

    /// Runs `write` on the health record under the lock ingestion takes. SQLite blocks: call
    /// this from a blocking thread (`spawn_blocking`), never from async code, and keep it
    /// short.
    pub fn with_ehr<T>(&self, write: impl FnOnce(&mut Ehr) -> T) -> T {
        write(&mut self.ehr.lock())
    }

    /// Runs `read` (identity, observations, record proofs) on the health record's read handle,
    /// whose lock ingestion never takes. Blocking as [`Node::with_ehr`]; reads only.
    pub fn with_ehr_reader<T>(&self, read: impl FnOnce(&mut Ehr) -> T) -> T {
        read(&mut self.ehr_reader.lock())
    }

    /// Runs `read` over the last position fix of each person the geofence contracts saw.
    pub fn with_positions<T>(
        &self,
        read: impl FnOnce(&HashMap<PersonId, (TimestampMs, vigil_core::GeoFix)>) -> T,
    ) -> T {
        read(self.monitor.lock().positions())
    }

    /// The private statistics deployment, if one is attached ([`Node::enable_stats`]).
    pub fn stats(&self) -> Option<&Arc<stats::Stats>> {
        self.stats.get()
    }

    /// The notification channels and their delivery log, when configured.
    pub fn notifications(&self) -> Option<&Arc<vigil_notify::Notifier>> {
        self.notifier.as_ref()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.events.subscribe()
    }

    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        self.mqtt.lock().as_ref().and_then(|m| m.listen_addr())
    }

    /// Where the embedded broker's front listens over TLS, if it does.
    pub fn mqtt_tls_addr(&self) -> Option<SocketAddr> {
        self.mqtt.lock().as_ref().and_then(|m| m.tls_listen_addr())
    }

    /// Adds an API user at run time (the demo creates its logins this way).
    pub fn add_user(&self, token: &str, principal: users::Principal) {
        self.users.write().insert(token, principal);
    }

    /// Records stored since the last anchor, anchored or not: for tests and `vigil ehr verify`.
    pub fn verify_ehr(&self) -> Result<vigil_ehr::VerifyReport, EhrError> {
        let anchors = ledger_anchors(&self.ledger.snapshot(), self.gateway.public());
        self.ehr.lock().verify(&anchors)
    }

    pub fn metrics_text(&self) -> String {
        self.metrics.encode()
    }

    /// The whole ingestion path for one pack; never panics, always answers. A batch of one:
    /// see [`Node::ingest_batch`].
    pub fn ingest(
        &self,
        claimed_person: Option<PersonId>,
        bytes: &[u8],
        transport: &'static str,
    ) -> Reply {
        let pack = ingest::Incoming {
            person: claimed_person,
            bytes,
        };
        self.ingest_batch(&[pack], transport)
            .pop()
            .unwrap_or_else(|| Reply::rejected(None, Rejected::new(Rejection::Unavailable, "")))
    }

    fn submit_alert(&self, draft: AlertDraft, received: Instant) {
        let body = TxBody::Alert {
            instance: draft.instance,
            level: draft.level,
            reading_time_ms: draft.reading_time_ms,
            evidence: draft.evidence,
        };
        match self
            .gateway
            .submit_alert_tx(&self.ledger, body, draft.evidence_body.clone())
        {
            Ok(tx) => {
                self.metrics.alerts_submitted.inc();
                self.pending.lock().put(
                    tx.id(),
                    PendingAlert {
                        received,
                        reason: draft.reason,
                        tx,
                        evidence: draft.evidence_body,
                        resubmits: 0,
                    },
                );
            }
            Err(error) => {
                self.metrics.alerts_refused.inc();
                tracing::warn!(instance = %draft.instance, %error, "alert refused at submission");
            }
        }
    }

    /// Follows every alert in flight: one that the mempool dropped for what it says is logged
    /// and counted as refused; one that lost its nonce to another transaction, or vanished
    /// without a reason (neither pending, nor finalized, nor dropped here), is submitted again, at most [`ALERT_RESUBMITS_MAX`] times. Runs every
    /// contract tick ([`TICK_PERIOD`]).
    fn recheck_alerts(&self) {
        let ids: Vec<TxId> = self.pending.lock().iter().map(|(id, _)| *id).collect();
        for id in ids {
            let Some(tx) = self.pending.lock().peek(&id).map(|p| p.tx.clone()) else {
                continue;
            };
            // The ledger publishes a block's snapshot before its transactions leave the
            // mempool: pending or finalized, one of the two holds for a live transaction.
            if self.ledger.is_pending(&tx) || self.ledger.snapshot().alert(&id).is_some() {
                continue;
            }
            let Some(pending) = self.pending.lock().pop(&id) else {
                continue;
            };
            match self.ledger.dropped(&id).map(|dropped| dropped.reason) {
                // Another transaction of this identity took its nonce (a copy signed before a
                // restart, still pending at another validator, or a nonce chosen from a state
                // not yet caught up): the alert itself is sound, so it goes again, re-signed.
                Some(DropReason::Nonce(rejection)) => {
                    tracing::warn!(alert = %hex::encode(id.0), %rejection,
                        "alert lost its nonce; submitting it again");
                    self.resubmit_alert(id, pending);
                }
                Some(reason) => {
                    self.metrics.alerts_refused.inc();
                    tracing::warn!(alert = %hex::encode(id.0), %reason,
                        "alert dropped by the ledger; not finalized");
                }
                None => self.resubmit_alert(id, pending),
            }
        }
    }

    /// Follows an operator's action that the API answered 202 until it is finalized or the
    /// ledger drops it ([`actions`]); `who` sees it in [`Node::actions_of`].
    pub fn track_action(
        &self,
        who: &str,
        action: &'static str,
        alert: Option<String>,
        tx: vigil_ledger::tx::Tx,
    ) {
        self.actions.lock().track(who, action, alert, tx, now_ms());
    }

    /// `who`'s recent actions, newest first: pending, finalized (at a height) or failed (why).
    pub fn actions_of(&self, who: &str) -> Vec<actions::ActionStatus> {
        self.actions.lock().of(who)
    }

    /// Settles actions that left the mempool without being finalized here: failed, with the
    /// mempool's reason (or as lost). Runs every tick.
    fn recheck_actions(&self) {
        let pending = self.actions.lock().pending();
        let applied = self
            .applied_height
            .load(std::sync::atomic::Ordering::Acquire);
        for (id, tx, missing_since) in pending {
            if self.ledger.is_pending(&tx) {
                continue;
            }
            match missing_since {
                None => {
                    let height = self.ledger.snapshot().height();
                    self.actions.lock().missing(&id, height);
                }
                // Every block up to that height is applied and none held it: it failed.
                Some(since) if applied >= since => {
                    let reason = self.ledger.dropped(&id).map_or_else(
                        || {
                            "left the mempool without being finalized (lost with a restart?)"
                                .to_owned()
                        },
                        |dropped| dropped.reason.to_string(),
                    );
                    tracing::warn!(tx = %hex::encode(id.0), %reason, "an operator's action failed");
                    self.actions.lock().failed(&id, reason);
                }
                Some(_) => {}
            }
        }
    }

    /// Reminds and escalates this gateway's open alerts as the ledger's escalation policy and
    /// the latest finalized block time make them due ([`escalation`]). Runs every tick.
    fn follow_up_alerts(&self) {
        let snapshot = self.ledger.snapshot();
        let Some(policy) = snapshot.view().escalation_policy() else {
            return;
        };
        let now_ms = snapshot.state().time_ms();
        let me = self.gateway.public();
        let open: Vec<(TxId, vigil_ledger::state::AlertRecord)> = snapshot
            .alerts_with_status(vigil_ledger::state::AlertStatus::Open)
            .filter(|(_, alert)| &alert.raised_by == me)
            .map(|(id, alert)| (*id, alert.clone()))
            .collect();
        let mut follow = self.escalation.lock();
        follow.retain_open(|id| {
            snapshot
                .alert(id)
                .is_some_and(|a| a.status == vigil_ledger::state::AlertStatus::Open)
        });
        for (id, alert) in open {
            let due = escalation::due(&policy, now_ms, &alert);
            if due.reminders > 0 && follow.remind(id, due.reminders) {
                let event = LiveEvent::AlertReminder {
                    id: hex::encode(id.0),
                    person: alert.person,
                    count: due.reminders,
                };
                self.push_to_person(alert.person, &event);
                let _ = self.events.send(event);
            }
            let Some(step) = due.step else { continue };
            // The ledger publishes a block's snapshot before its transactions leave the
            // mempool: a step in flight that is no longer pending was refused (or lost).
            if let Some((in_flight, tx)) = follow.in_flight(&id)
                && *in_flight == step
                && self.ledger.is_pending(tx)
            {
                continue;
            }
            match self
                .gateway
                .submit_tx(&self.ledger, TxBody::Escalate { alert: id, step })
            {
                Ok(tx) => follow.submitted(id, step, tx),
                Err(error) => {
                    tracing::warn!(alert = %hex::encode(id.0), step, %error, "escalation refused")
                }
            }
        }
    }

    fn resubmit_alert(&self, id: TxId, mut pending: PendingAlert) {
        if pending.resubmits >= ALERT_RESUBMITS_MAX {
            self.metrics.alerts_lost.inc();
            tracing::error!(alert = %hex::encode(id.0), resubmits = pending.resubmits,
                "alert vanished after every resubmission; given up");
            return;
        }
        pending.resubmits += 1;
        let body = pending.tx.body().clone();
        match self
            .gateway
            .submit_alert_tx(&self.ledger, body, pending.evidence.clone())
        {
            Ok(tx) => {
                self.metrics.alerts_resubmitted.inc();
                tracing::warn!(alert = %hex::encode(id.0), again = %hex::encode(tx.id().0),
                    "alert vanished from the mempool; submitted again");
                pending.tx = tx;
                self.pending.lock().put(pending.tx.id(), pending);
            }
            Err(error) => {
                self.metrics.alerts_refused.inc();
                tracing::warn!(alert = %hex::encode(id.0), %error, "alert refused on resubmission");
            }
        }
    }

    /// Applies one finalized block: the catalog, the live stream, the person's push, the EHR
    /// anchor. `latest` is the newest snapshot (at the block's height or later).
    fn on_finalized(&self, block: &Block, latest: &Finalized) {
        let height = block.height();
        self.metrics.ledger_height.set(height as i64);
        self.monitor.lock().apply_finalized(block);
        self.actions.lock().finalized_block(block.txs(), height);
        // The reasons of this node's alerts finalized here: health data, so kept in the
        // health record (never on the ledger), where listings read them after a reload.
        let mut reasons = Vec::new();
        for tx in block.txs() {
            let id = tx.id();
            match tx.body() {
                TxBody::Alert {
                    instance,
                    level,
                    reading_time_ms,
                    ..
                } => {
                    let person = latest.alert(&id).map(|a| a.person);
                    let Some(person) = person else { continue };
                    let pending = self.pending.lock().pop(&id);
                    if let Some(pending) = &pending {
                        self.metrics
                            .alert_latency
                            .observe(pending.received.elapsed().as_secs_f64());
                        reasons.push((person, id.0, pending.reason.clone()));
                    }
                    let event = LiveEvent::Alert {
                        id: hex::encode(id.0),
                        person,
                        instance: instance.to_string(),
                        level: level.code(),
                        basis: vigil_ledger::evidence::alert_basis(latest.instance(instance)),
                        reading_time_ms: *reading_time_ms,
                        height,
                        finalized_ms: now_ms(),
                        reason: pending.map(|p| p.reason),
                    };
                    self.push_to_person(person, &event);
                    let _ = self.events.send(event);
                }
                TxBody::Escalate { alert, step } => {
                    let Some(record) = latest.alert(alert) else {
                        continue;
                    };
                    self.escalation.lock().settled(alert);
                    let event = LiveEvent::AlertEscalated {
                        id: hex::encode(alert.0),
                        person: record.person,
                        step: *step,
                        level: record.level.code(),
                        height,
                    };
                    self.push_to_person(record.person, &event);
                    let _ = self.events.send(event);
                }
                TxBody::Acknowledge { alert }
                | TxBody::Order { alert, .. }
                | TxBody::Resolve { alert, .. } => {
                    let record = latest.alert(alert).cloned();
                    let Some(record) = record else { continue };
                    if matches!(tx.body(), TxBody::Resolve { .. }) {
                        self.monitor.lock().resolve(&record.instance, now_ms());
                    }
                    let event = LiveEvent::AlertStatus {
                        id: hex::encode(alert.0),
                        person: record.person,
                        status: record.status.name(),
                        height,
                    };
                    self.push_to_person(record.person, &event);
                    let _ = self.events.send(event);
                }
                _ => {}
            }
        }
        if !reasons.is_empty()
            && let Err(error) = self.ehr.lock().store_alert_reasons(&reasons)
        {
            tracing::error!(%error, alerts = reasons.len(), "alert reasons not stored");
        }
        self.applied_height
            .store(height, std::sync::atomic::Ordering::Release);
        let _ = self.events.send(LiveEvent::Block {
            height,
            txs: block.txs().len(),
        });
        self.anchor_ehr();
    }

    /// The first health record this node's next anchor must cover, in the latest snapshot.
    fn anchored_up_to(&self) -> u64 {
        self.ledger
            .snapshot()
            .view()
            .next_anchored_seq(self.gateway.public())
    }

    fn push_to_person(&self, person: PersonId, event: &LiveEvent) {
        let mqtt = self.mqtt.lock().clone();
        if let Some(mqtt) = mqtt {
            let mut event = event.clone();
            if let LiveEvent::Alert { reason, .. } = &mut event {
                *reason = None;
            }
            let payload = serde_json::to_vec(&event).unwrap_or_default();
            if let Err(error) = mqtt.publish_alert(person, payload) {
                tracing::warn!(%error, "alert not pushed to the person");
            }
        }
    }

    /// Seals the records accepted since the last anchor, then submits every sealed batch the
    /// ledger does not hold yet, oldest first.
    ///
    /// Why not just the batch just sealed: the node may have died between sealing a batch and
    /// its anchor's finalization, or the anchor may have been dropped. The ledger's anchors
    /// then stop short of the store's, and every later record would prove against the wrong
    /// anchor. The ledger refuses an anchor that does not start where the gateway's last one
    /// ended, so an anchor is never counted twice; but a re-sent copy of a finalized anchor
    /// would fail for good (dropped by the mempool, alone) and waste a slot, so every batch
    /// is checked against the latest snapshot before it is sent.
    ///
    /// It reads the current snapshot, not the block's: a node catching up applies old blocks,
    /// and against their state an anchor finalized since would look missing.
    fn anchor_ehr(&self) {
        let unanchored = {
            let mut ehr = self.ehr.lock();
            if let Err(error) = ehr.seal_batch() {
                tracing::error!(%error, "could not seal the health record batch");
            }
            let next = self.anchored_up_to();
            match ehr.sealed_anchors_from(next) {
                Ok(anchors) => anchors,
                Err(error) => {
                    tracing::error!(%error, "could not read the sealed anchors");
                    return;
                }
            }
        };
        let mut in_flight = self.anchors_in_flight.lock();
        in_flight.retain(|first_seq, _| unanchored.iter().any(|a| a.first_seq == *first_seq));
        for anchor in unanchored {
            if in_flight
                .get(&anchor.first_seq)
                .is_some_and(|tx| self.ledger.is_pending(tx))
            {
                continue;
            }
            // Not pending: finalized since the snapshot above, or really lost. The ledger
            // publishes a block's snapshot before its transactions leave the mempool, so a
            // fresh snapshot tells; re-sending a finalized anchor would fail forever and, once
            // the mempool drops it, be reported as a lost anchor.
            if self.anchored_up_to() > anchor.first_seq {
                continue;
            }
            let body = TxBody::EhrAnchor {
                first_seq: anchor.first_seq,
                root: anchor.root,
                count: u32::try_from(anchor.count).unwrap_or(u32::MAX),
                from_ms: anchor.from_ms,
                to_ms: anchor.to_ms,
            };
            match self.gateway.submit_tx(&self.ledger, body) {
                Ok(tx) => {
                    if in_flight.insert(anchor.first_seq, tx).is_none() {
                        self.metrics.ehr_records_anchored.inc_by(anchor.count);
                    } else {
                        tracing::warn!(first_seq = anchor.first_seq, "EHR anchor re-submitted");
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "EHR anchor not submitted; retried after the next block");
                    return;
                }
            }
        }
    }
}

/// Applies every finalized block in order, however far behind the node falls: the follower
/// reads the blocks the finalized view skipped back from the ledger's block store.
async fn follow_finalized(node: Arc<Node>, mut follower: Follower) {
    while let Some(Followed { block, latest }) = follower.next().await {
        let node = node.clone();
        // Applying a block touches SQLite: keep it off the async workers.
        let _ = tokio::task::spawn_blocking(move || node.on_finalized(&block, &latest)).await;
    }
    tracing::error!("the validator stopped: no more finalized blocks to apply");
}

async fn tick_contracts(node: Arc<Node>) {
    let mut interval = tokio::time::interval(TICK_PERIOD);
    loop {
        interval.tick().await;
        let drafts = {
            let mut monitor = node.monitor.lock();
            let drafts = monitor.tick(now_ms());
            node.metrics
                .alerts_unsupported
                .inc_by(monitor.take_unsupported());
            drafts
        };
        for draft in drafts {
            node.submit_alert(draft, Instant::now());
        }
        node.recheck_alerts();
        node.follow_up_alerts();
        node.recheck_actions();
    }
}

/// The anchors `gateway` recorded on the ledger, in order, as its health record checks them.
/// The ledger makes each start where the gateway's previous one ended.
pub fn ledger_anchors(
    state: &vigil_ledger::state::State,
    gateway: &commonware_cryptography::ed25519::PublicKey,
) -> Vec<vigil_ehr::Anchor> {
    state
        .anchors_by(gateway)
        .map(|record| vigil_ehr::Anchor {
            first_seq: record.first_seq,
            count: u64::from(record.count),
            root: record.root,
            from_ms: record.from_ms,
            to_ms: record.to_ms,
        })
        .collect()
}

/// Paths inside a node's data directory.
pub fn ehr_path(data_dir: &Path) -> PathBuf {
    data_dir.join("ehr.sqlite")
}
