//! Private statistics through the ledger: every query is a `StatsQuery` transaction from a
//! doctor, every verifying node's verdict a `ProofVerdict` transaction, the collective key a
//! `StatsKey` transaction, and the querier decrypts only what finalized verdicts vouch for.
//!
//! # Flow
//!
//! 1. **Setup** ([`StatsService::setup`]): the servers run the DKG; the consortium admin publishes
//!    the [`CollectiveKey`] (key, every dealer's Feldman commitments and proof of knowledge, the
//!    servers' verification keys) as `StatsKey`, and grants the verifying nodes their role.
//! 2. **Query** ([`StatsService::submit_query`]): the doctor's identity signs `StatsQuery` whose
//!    spec is the canonical [`Query`] (statistic, metric, window, DPs, bins, the collective key's
//!    id and the querier's fresh ElGamal public key). The ledger records who asked what.
//! 3. **Answer** ([`StatsService::step`], once the query is finalized): the DPs named encrypt
//!    and prove their answers, each online server sums the responses routed to it, and key-switches
//!    the total to the querier's key with proofs.
//! 4. **Verify**: each verifying node reads the query *from the ledger* (spec bytes) and the key
//!    *from the ledger* (`StatsKey`), checks every proof ([`vigil_privstats::verify::verify`]) and submits
//!    `ProofVerdict { bitmap, all_valid, evidence }`, where `bitmap` has one bit per check in
//!    [`Verdict::expected_checks`] order and `evidence` is the digest of the aggregates and
//!    key-switch shares it checked.
//! 5. **Accept** (again in [`StatsService::step`]), under this rule, applied to the *finalized*
//!    verdicts on the query:
//!    - any verdict that is not all-valid (or whose bitmap shows a failure, or that vouches for
//!      other evidence than what the querier holds) rejects the result, naming the failed checks
//!      and the verifying node;
//!    - otherwise the result is accepted once at least `quorum` distinct verifying nodes gave
//!      all-valid verdicts over exactly the evidence the querier decrypts, and either every
//!      configured verifying node has answered or [`GRACE_BLOCKS`] more blocks were finalized
//!      (so a late invalid verdict still has its chance to veto, and one verifying node down
//!      does not block the query).
//!
//!    One dishonest verifying node can therefore veto (a denial of service that it signs, and
//!    that anyone can re-check from the evidence), but it cannot make a wrong result accepted
//!    unless `quorum` of them lie.
//!
//! The querier's ElGamal secret stays in this process (the node is custodial for staff keys, see
//! ARCHITECTURE.md); the ledger never sees a plaintext, a ciphertext or a proof, only digests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use bytes::Bytes;
use commonware_cryptography::Signer as _;
use commonware_cryptography::ed25519::{PrivateKey, PublicKey};
use vigil_ledger::node::{Ledger, SubmitError};
use vigil_ledger::signer::Signer;
use vigil_ledger::state::{State, stats_key_id};
use vigil_ledger::tx::{QUERY_SPEC_BYTES_MAX, QueryId, Role, TxBody, TxId};

use crate::error::{Error, Result};
#[cfg(feature = "fault-injection")]
use crate::fault::Fault;
use crate::store::{QueryStore, StoredPhase, Verifying};
use vigil_privstats::dp::{DpResponse, PlainAnswer};
use vigil_privstats::elgamal::KeyPair;
use vigil_privstats::encoding::Canonical;
use vigil_privstats::keys::{CollectiveKey, ServerId};
use vigil_privstats::network::Network;
use vigil_privstats::querier::{Aggregates, DecryptionTable, StatResult};
use vigil_privstats::query::{DpId, Metric, Query, Statistic};
use vigil_privstats::server::{KeySwitchShare, ServerAggregate};
use vigil_privstats::verify::{Evidence, Verdict, verify};

/// Blocks finalized after the quorum is reached before a result is accepted without every
/// configured verifying node's verdict.
pub const GRACE_BLOCKS: u64 = 3;
/// Finalized blocks a query waits for its verdicts before it is rejected as unverified.
pub const VERDICT_BLOCKS_MAX: u64 = 600;
/// Queries one service tracks at once (a limit on everything); the oldest finished ones go first.
pub const TRACKED_QUERIES_MAX: usize = 256;
/// Verifying nodes one service runs.
pub const VERIFIERS_MAX: usize = 16;

fn submit_err(what: &str, e: SubmitError) -> Error {
    Error::Ledger(format!("{what}: {e}"))
}

/// Where the DPs' data comes from.
pub trait DataSource: Send + Sync {
    /// The DPs available, sorted.
    fn dps(&self) -> Vec<DpId>;
    /// DP `dp`'s exact local answer to `query`.
    fn answer(&self, dp: DpId, query: &Query) -> Result<PlainAnswer>;
}

/// DP databases (SQLite), one per DP.
pub struct Databases(pub BTreeMap<DpId, Mutex<crate::db::DpDatabase>>);

impl DataSource for Databases {
    fn dps(&self) -> Vec<DpId> {
        self.0.keys().copied().collect()
    }
    fn answer(&self, dp: DpId, q: &Query) -> Result<PlainAnswer> {
        let db = self
            .0
            .get(&dp)
            .ok_or_else(|| Error::Param(format!("no data provider {dp}")))?;
        let db = db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        db.answer(q.metric, q.from_s, q.to_s, &q.cohort, &q.edges)
    }
}

impl Databases {
    /// `dps` in-memory databases of `rows` synthetic rows each (seeded by the DP id), over the
    /// week starting at [`crate::runner::DATA_START_S`]: for tests and the demo.
    pub fn synthetic(dps: u32, rows: usize) -> Result<Self> {
        let mut out = BTreeMap::new();
        for dp in 1..=dps {
            let mut db = crate::db::DpDatabase::open_in_memory()?;
            db.insert(crate::db::generate(&crate::db::GeneratorConfig {
                rows,
                seed: u64::from(dp),
                prefix: format!("dp{dp}-p"),
                start_s: crate::runner::DATA_START_S,
                ..Default::default()
            }))?;
            out.insert(dp, Mutex::new(db));
        }
        Ok(Self(out))
    }
}

/// Shape of a statistics deployment.
#[derive(Clone, Debug)]
pub struct StatsConfig {
    pub servers: usize,
    pub threshold: usize,
    /// Servers that are down.
    pub offline: Vec<ServerId>,
    /// Ledger identities of the verifying nodes.
    pub verifiers: Vec<PrivateKey>,
    /// All-valid verdicts needed to accept.
    pub quorum: usize,
    /// Threads each DP proves on, and each verifying node verifies on.
    pub threads: usize,
    /// Decryption table: 2^baby_bits entries, 2^giant_bits giant steps.
    pub baby_bits: u32,
    pub giant_bits: u32,
}

impl StatsConfig {
    /// 3 servers (t = 2), `verifiers` verifying nodes with keys from fixed seeds (a demo or a
    /// test, never a deployment), quorum = all of them, 2 threads, the default table.
    pub fn demo(verifiers: usize) -> Self {
        Self {
            servers: 3,
            threshold: 2,
            offline: Vec::new(),
            verifiers: (0..verifiers as u64)
                .map(|i| PrivateKey::from_seed(3000 + i))
                .collect(),
            quorum: verifiers,
            threads: 2,
            baby_bits: vigil_privstats::querier::BABY_BITS,
            giant_bits: vigil_privstats::querier::GIANT_BITS,
        }
    }
}

/// What a doctor asks for (the API's request).
#[derive(Clone, Debug)]
pub struct QueryRequest {
    pub statistic: Statistic,
    pub metric: Metric,
    pub from_s: i64,
    pub to_s: i64,
    /// Empty: every DP of the deployment.
    pub dps: Vec<DpId>,
    /// Histogram edges; empty: the default edges for statistics that need bins.
    pub edges: Vec<u32>,
    pub cohort: Vec<String>,
}

/// Where a query stands.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryStatus {
    /// Waiting: for the query to be finalized, or for the verdicts.
    Pending {
        stage: Stage,
        verdicts: u32,
        valid_verdicts: u32,
    },
    /// Verified and decrypted.
    Accepted {
        statistic: StatResult,
        aggregates: Aggregates,
        /// Verifying nodes whose all-valid verdicts were finalized.
        verdicts: usize,
    },
    /// Rejected: why, and the checks that failed (empty when the rejection is not about a
    /// proof, e.g. a decryption beyond the table).
    Rejected { reason: String, failed: Vec<String> },
}

/// Stages of a pending query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The `StatsQuery` transaction is not finalized yet.
    Submitted,
    /// DPs answered, servers aggregated and key-switched, verdicts submitted; waiting for them
    /// to be finalized.
    Verifying,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Submitted => "submitted",
            Stage::Verifying => "verifying",
        }
    }
}

struct Tracked {
    query: Query,
    keypair: KeyPair,
    phase: Phase,
}

enum Phase {
    Submitted,
    Verifying(Verifying),
    Done(QueryStatus),
}

impl Phase {
    fn to_stored(&self) -> StoredPhase {
        match self {
            Phase::Submitted => StoredPhase::Submitted,
            Phase::Verifying(verifying) => StoredPhase::Verifying(verifying.clone()),
            Phase::Done(QueryStatus::Accepted {
                aggregates,
                verdicts,
                ..
            }) => StoredPhase::Accepted {
                aggregates: aggregates.clone(),
                verdicts: *verdicts as u64,
            },
            Phase::Done(QueryStatus::Rejected { reason, failed }) => StoredPhase::Rejected {
                reason: reason.clone(),
                failed: failed.clone(),
            },
            // Never a phase's state (status() derives Pending): stored as its stage.
            Phase::Done(QueryStatus::Pending { .. }) => StoredPhase::Submitted,
        }
    }

    fn from_stored(p: StoredPhase, query: &Query) -> Self {
        match p {
            StoredPhase::Submitted => Phase::Submitted,
            StoredPhase::Verifying(verifying) => Phase::Verifying(verifying),
            StoredPhase::Accepted {
                aggregates,
                verdicts,
            } => Phase::Done(QueryStatus::Accepted {
                statistic: aggregates.statistic(query),
                aggregates,
                verdicts: usize::try_from(verdicts).unwrap_or(usize::MAX),
            }),
            StoredPhase::Rejected { reason, failed } => {
                Phase::Done(QueryStatus::Rejected { reason, failed })
            }
        }
    }
}

/// Servers, DPs and verifying nodes in one process, driven by the ledger.
pub struct StatsService {
    ledger: Ledger,
    net: Network,
    key_bytes: Vec<u8>,
    verifiers: Vec<Signer>,
    quorum: usize,
    threads: usize,
    table: DecryptionTable,
    data: Box<dyn DataSource>,
    queries: Mutex<BTreeMap<QueryId, Tracked>>,
    order: Mutex<Vec<QueryId>>,
    #[cfg(feature = "fault-injection")]
    fault: Mutex<Option<Fault>>,
    /// Why the last publication failed (it is retried by [`StatsService::wait_ready`]).
    publish_error: Mutex<Option<String>>,
    /// Where queries and the deployment's keys survive a restart (None: memory only).
    store: Option<QueryStore>,
    /// Why the last write to the store failed, if it did.
    store_error: Mutex<Option<String>>,
}

impl StatsService {
    /// Runs the DKG among the servers, publishes the collective key on the ledger (signed by
    /// `admin`) and grants the verifying nodes their role where they lack it. Returns at once:
    /// [`StatsService::ready`] says when all of it is finalized, and
    /// [`StatsService::wait_ready`] waits for it (re-submitting what a race lost).
    pub fn setup(
        ledger: Ledger,
        admin: &Signer,
        config: StatsConfig,
        data: Box<dyn DataSource>,
    ) -> Result<Self> {
        Self::setup_with_store(ledger, admin, config, data, None)
    }

    /// [`StatsService::setup`] with a durable store: a store that already holds a deployment
    /// of the same shape (servers, threshold) brings back its server keys (so the collective
    /// key, already on the ledger, stays the same) and every query it tracked, pending or
    /// decided; otherwise the DKG runs and its keys are stored. Queries then reach the store
    /// as they are submitted and each time they change phase.
    pub fn setup_with_store(
        ledger: Ledger,
        admin: &Signer,
        config: StatsConfig,
        data: Box<dyn DataSource>,
        store: Option<QueryStore>,
    ) -> Result<Self> {
        if config.verifiers.is_empty() || config.verifiers.len() > VERIFIERS_MAX {
            return Err(Error::Param(format!("1..={VERIFIERS_MAX} verifying nodes")));
        }
        if config.quorum == 0 || config.quorum > config.verifiers.len() {
            return Err(Error::Param(
                "quorum must be 1..=the number of verifying nodes".into(),
            ));
        }
        let mut rng = rand::thread_rng();
        let stored = match &store {
            Some(st) => st.servers()?.filter(|keys| {
                keys.len() == config.servers
                    && keys
                        .first()
                        .is_some_and(|k| k.collective.threshold == config.threshold)
            }),
            None => None,
        };
        let mut net = match stored {
            Some(keys) => Network::from_server_keys(keys, config.verifiers.len() as u32)?,
            None => {
                let net = Network::new(
                    config.threshold,
                    config.servers,
                    config.verifiers.len() as u32,
                    &mut rng,
                )?;
                if let Some(st) = &store {
                    let keys: Vec<&vigil_privstats::keys::ServerKey> =
                        net.servers.iter().map(|s| &s.key).collect();
                    st.save_servers(&keys)?;
                }
                net
            }
        };
        let mut queries = BTreeMap::new();
        let mut order = Vec::new();
        if let Some(st) = &store {
            for q in st.queries(TRACKED_QUERIES_MAX)? {
                let id = TxId(q.id);
                order.push(id);
                queries.insert(
                    id,
                    Tracked {
                        phase: Phase::from_stored(q.phase, &q.query),
                        query: q.query,
                        keypair: q.keypair,
                    },
                );
            }
        }
        net.offline = config.offline.clone();
        net.verify_threads = config.threads;
        let key_bytes = net.key.to_bytes();
        let service = Self {
            ledger,
            net,
            key_bytes,
            verifiers: config.verifiers.into_iter().map(Signer::new).collect(),
            quorum: config.quorum,
            threads: config.threads.max(1),
            table: DecryptionTable::new(config.baby_bits, config.giant_bits),
            data,
            queries: Mutex::new(queries),
            order: Mutex::new(order),
            #[cfg(feature = "fault-injection")]
            fault: Mutex::new(None),
            publish_error: Mutex::new(None),
            store,
            store_error: Mutex::new(None),
        };
        service.try_publish(admin);
        Ok(service)
    }

    /// Submits what setup still lacks in the finalized state (the key, verifying-node roles).
    /// Safe to call again: a submission lost to a nonce race is simply made again.
    pub fn publish(&self, admin: &Signer) -> Result<()> {
        let (key_done, missing) = {
            let s = self.ledger.snapshot();
            let view = s.view();
            let missing: Vec<PublicKey> = self
                .verifiers
                .iter()
                .filter(|v| !view.has_role(v.public(), Role::VerifyingNode))
                .map(|v| v.public().clone())
                .collect();
            (
                s.stats_key(&stats_key_id(&self.key_bytes)).is_some(),
                missing,
            )
        };
        if !key_done {
            admin
                .submit_checked(
                    &self.ledger,
                    TxBody::StatsKey {
                        key: Bytes::from(self.key_bytes.clone()),
                    },
                )
                .map_err(|e| submit_err("publishing the collective key", e))?;
        }
        for identity in missing {
            admin
                .submit_checked(
                    &self.ledger,
                    TxBody::GrantRole {
                        identity,
                        role: Role::VerifyingNode,
                    },
                )
                .map_err(|e| submit_err("granting a verifying node its role", e))?;
        }
        Ok(())
    }

    /// [`StatsService::publish`], remembering a failure instead of returning it (a submission
    /// that lost a nonce race with another user of the admin key is simply made again).
    fn try_publish(&self, admin: &Signer) {
        let error = self.publish(admin).err().map(|e| e.to_string());
        *self
            .publish_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = error;
    }

    /// True once the key and every verifying node's role are finalized.
    pub fn ready(&self) -> bool {
        let s = self.ledger.snapshot();
        let view = s.view();
        s.stats_key(&stats_key_id(&self.key_bytes)).is_some()
            && self
                .verifiers
                .iter()
                .all(|v| view.has_role(v.public(), Role::VerifyingNode))
    }

    /// The collective key (as published).
    pub fn key(&self) -> &CollectiveKey {
        &self.net.key
    }

    /// The DPs this deployment can ask.
    pub fn dps(&self) -> Vec<DpId> {
        self.data.dps()
    }

    /// Injects a fault into the next query computed (tests of the acceptance rule).
    #[cfg(feature = "fault-injection")]
    pub fn inject(&self, fault: Fault) {
        *self
            .fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fault);
    }

    /// Builds the query of a request (a fresh querier key pair and nonce), checks it fits a
    /// ledger transaction, and submits it signed by `doctor`. Returns the ledger's query id.
    pub fn submit_query(&self, doctor: &Signer, request: &QueryRequest) -> Result<QueryId> {
        let mut rng = rand::thread_rng();
        let keypair = KeyPair::generate(&mut rng);
        let mut dps = if request.dps.is_empty() {
            self.data.dps()
        } else {
            request.dps.clone()
        };
        dps.sort_unstable();
        dps.dedup();
        let edges = if request.edges.is_empty() && request.statistic.needs_bins() {
            request.metric.default_edges()
        } else {
            request.edges.clone()
        };
        let query = Query {
            nonce: rand::Rng::r#gen(&mut rng),
            querier: keypair.public,
            key_id: self.net.key.id(),
            metric: request.metric,
            statistic: request.statistic,
            from_s: request.from_s,
            to_s: request.to_s,
            cohort: request.cohort.clone(),
            dps,
            edges,
        };
        query.validate()?;
        let spec = query.to_bytes();
        if spec.len() > QUERY_SPEC_BYTES_MAX {
            return Err(Error::Param(format!(
                "the query takes {} bytes, a ledger query at most {QUERY_SPEC_BYTES_MAX} (fewer DPs or cohort members)",
                spec.len()
            )));
        }
        let id = doctor
            .submit_checked(
                &self.ledger,
                TxBody::StatsQuery {
                    spec: Bytes::from(spec),
                },
            )
            .map_err(|e| submit_err("submitting the query", e))?;
        let mut queries = self
            .queries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut order = self
            .order
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while order.len() >= TRACKED_QUERIES_MAX {
            let old = order.remove(0);
            queries.remove(&old);
            if let Some(st) = &self.store {
                self.note_store(st.remove(&old.0));
            }
        }
        order.push(id);
        let stored = self
            .store
            .as_ref()
            .map(|st| st.insert(&id.0, &query, &keypair));
        queries.insert(
            id,
            Tracked {
                query,
                keypair,
                phase: Phase::Submitted,
            },
        );
        // The query is on its way to the ledger and tracked: a failed write is reported, and
        // the query goes on in memory.
        if let Some(Err(e)) = stored {
            return Err(Error::Ledger(format!(
                "query {id} submitted, but not stored durably: {e}"
            )));
        }
        Ok(id)
    }

    /// Remembers the outcome of a write to the store.
    fn note_store(&self, r: Result<()>) {
        if let Err(e) = r {
            *self
                .store_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e.to_string());
        }
    }

    /// Why the last write to the durable store failed (None: every write succeeded, or no
    /// store).
    pub fn store_error(&self) -> Option<String> {
        self.store_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Writes a query's phase to the store.
    fn persist(&self, id: &QueryId, phase: &Phase) {
        if let Some(st) = &self.store {
            self.note_store(st.set_phase(&id.0, &phase.to_stored()));
        }
    }

    /// The ids of every query this service tracks, oldest first.
    pub fn tracked(&self) -> Vec<QueryId> {
        self.order
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Waits until [`StatsService::ready`], re-submitting what is missing every 20 finalized
    /// blocks (a submission can lose a nonce race with another user of the admin key). At most
    /// `blocks_max` blocks.
    pub async fn wait_ready(&self, admin: &Signer, blocks_max: u64) -> Result<()> {
        let mut snapshots = self.ledger.snapshots();
        let start = snapshots.borrow_and_update().height();
        let mut republished = start;
        while !self.ready() {
            let seen = snapshots.borrow().height() - start;
            if seen >= blocks_max || snapshots.changed().await.is_err() {
                let last = self
                    .publish_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
                    .unwrap_or_else(|| "none".into());
                return Err(Error::Ledger(format!(
                    "the collective key and verifying nodes are not finalized after {seen} blocks (last submission error: {last})"
                )));
            }
            let height = snapshots.borrow_and_update().height();
            if height >= republished + 20 && !self.ready() {
                republished = height;
                self.try_publish(admin);
            }
        }
        Ok(())
    }

    /// Waits until `identity` holds `role` in the finalized state, at most `blocks_max`
    /// blocks. A role granted just before by another signer is finalized in its own time, and
    /// a query that needs it is refused at once until then (`Signer::submit_checked`), so a
    /// client that grants and then asks waits for the grant first.
    pub async fn wait_for_role(
        ledger: &Ledger,
        identity: &PublicKey,
        role: Role,
        blocks_max: u64,
    ) -> Result<()> {
        let mut snapshots = ledger.snapshots();
        let start = snapshots.borrow_and_update().height();
        loop {
            let (height, held) = {
                let snapshot = snapshots.borrow_and_update();
                (snapshot.height(), snapshot.view().has_role(identity, role))
            };
            if held {
                return Ok(());
            }
            let seen = height.saturating_sub(start);
            if seen >= blocks_max || snapshots.changed().await.is_err() {
                return Err(Error::Ledger(format!(
                    "the role {role:?} is not finalized after {seen} blocks"
                )));
            }
        }
    }

    /// Runs one query end to end against the ledger: submits it as `doctor`, then
    /// [`StatsService::step`]s after every finalized block until the query is accepted or
    /// rejected, at most `blocks_max` blocks. The steps run on the calling task (CPU-bound:
    /// give the runtime spare workers, or drive [`StatsService::step`] yourself off them).
    pub async fn run_query(
        &self,
        doctor: &Signer,
        request: &QueryRequest,
        blocks_max: u64,
    ) -> Result<(QueryId, QueryStatus)> {
        let mut snapshots = self.ledger.snapshots();
        let start = snapshots.borrow_and_update().height();
        let id = self.submit_query(doctor, request)?;
        while snapshots.borrow().height() - start < blocks_max {
            if snapshots.changed().await.is_err() {
                break;
            }
            self.step();
            if let Some(s @ (QueryStatus::Accepted { .. } | QueryStatus::Rejected { .. })) =
                self.status(&id)
            {
                return Ok((id, s));
            }
        }
        Err(Error::Ledger(format!(
            "query {id} not decided within {blocks_max} finalized blocks"
        )))
    }

    /// The status of a query this service tracks (None: unknown here).
    pub fn status(&self, id: &QueryId) -> Option<QueryStatus> {
        let queries = self
            .queries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let t = queries.get(id)?;
        let counts = || {
            self.ledger
                .snapshot()
                .query(id)
                .map_or((0, 0), |r| (r.verdicts, r.valid_verdicts))
        };
        Some(match &t.phase {
            Phase::Submitted => QueryStatus::Pending {
                stage: Stage::Submitted,
                verdicts: 0,
                valid_verdicts: 0,
            },
            Phase::Verifying(_) => {
                let (verdicts, valid_verdicts) = counts();
                QueryStatus::Pending {
                    stage: Stage::Verifying,
                    verdicts,
                    valid_verdicts,
                }
            }
            Phase::Done(s) => s.clone(),
        })
    }

    /// The query a tracked id stands for.
    pub fn query(&self, id: &QueryId) -> Option<Query> {
        self.queries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .map(|t| t.query.clone())
    }

    /// Advances every tracked query as far as the finalized state allows: runs DPs, servers and
    /// verifying nodes for newly finalized queries, and decides queries whose verdicts are
    /// finalized. CPU-bound (encryption, proofs): call it off async workers. Returns the number
    /// of queries that changed phase.
    pub fn step(&self) -> usize {
        if !self.ready() {
            return 0;
        }
        let ids: Vec<QueryId> = self
            .queries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .copied()
            .collect();
        let mut changed = 0;
        for id in ids {
            changed += usize::from(self.advance(&id));
        }
        changed
    }

    fn advance(&self, id: &QueryId) -> bool {
        let lock = || {
            self.queries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let snapshot = self.ledger.snapshot();
        let (height, finalized) = (snapshot.height(), snapshot.query(id).is_some());
        // A newly finalized query: answer and verify it without holding the lock (status reads
        // go on meanwhile; only `step` changes phases).
        let submitted = lock()
            .get(id)
            .filter(|t| matches!(t.phase, Phase::Submitted))
            .map(|t| t.query.clone());
        if let Some(query) = submitted {
            if !finalized {
                return false;
            }
            let next = match self.answer_and_verify(id, &query) {
                Ok((aggregates, shares, evidence)) => Phase::Verifying(Verifying {
                    aggregates,
                    shares,
                    evidence,
                    since: height,
                    quorum_at: None,
                }),
                Err(e) => Phase::Done(QueryStatus::Rejected {
                    reason: format!("the query could not be answered: {e}"),
                    failed: Vec::new(),
                }),
            };
            self.persist(id, &next);
            if let Some(t) = lock().get_mut(id) {
                t.phase = next;
            }
            return true;
        }
        let mut queries = lock();
        let Some(t) = queries.get_mut(id) else {
            return false;
        };
        let next = match &mut t.phase {
            Phase::Done(_) | Phase::Submitted => return false,
            Phase::Verifying(Verifying {
                aggregates,
                shares,
                evidence,
                since,
                quorum_at,
            }) => {
                let decision = decide(
                    &snapshot,
                    id,
                    &t.query,
                    self.net.key.servers,
                    evidence,
                    self.quorum,
                    self.verifiers.len(),
                );
                match decision {
                    Decision::Wait if height > *since + VERDICT_BLOCKS_MAX => {
                        Phase::Done(QueryStatus::Rejected {
                            reason: format!(
                                "no quorum of verdicts within {VERDICT_BLOCKS_MAX} finalized blocks"
                            ),
                            failed: Vec::new(),
                        })
                    }
                    Decision::Wait => return false,
                    Decision::Reject { reason, failed } => {
                        Phase::Done(QueryStatus::Rejected { reason, failed })
                    }
                    Decision::Quorum { verdicts, all } => {
                        let since = *quorum_at.get_or_insert(height);
                        if !all && height < since + GRACE_BLOCKS {
                            return false;
                        }
                        match decrypt(
                            &t.keypair,
                            &self.table,
                            &t.query,
                            &self.net.key,
                            aggregates,
                            shares,
                        ) {
                            Ok((aggregates, statistic)) => Phase::Done(QueryStatus::Accepted {
                                statistic,
                                aggregates,
                                verdicts,
                            }),
                            Err(e) => Phase::Done(QueryStatus::Rejected {
                                reason: e.to_string(),
                                failed: Vec::new(),
                            }),
                        }
                    }
                }
            }
        };
        self.persist(id, &next);
        t.phase = next;
        true
    }

    /// Steps 3 and 4: DPs, servers, then every verifying node's verdict on the ledger.
    #[allow(clippy::type_complexity)]
    fn answer_and_verify(
        &self,
        id: &QueryId,
        query: &Query,
    ) -> Result<(Vec<ServerAggregate>, Vec<KeySwitchShare>, [u8; 32])> {
        let mut rng = rand::thread_rng();
        let net = &self.net;
        #[cfg(feature = "fault-injection")]
        let fault = self
            .fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        #[cfg(feature = "fault-injection")]
        let mut answers = Vec::with_capacity(query.dps.len());
        let mut responses = Vec::with_capacity(query.dps.len());
        for &dp in &query.dps {
            let answer = self.data.answer(dp, query)?;
            let server = net.route(dp)?;
            responses.push(DpResponse::create_with_threads(
                query,
                &net.key,
                dp,
                server,
                &answer,
                self.threads,
                &mut rng,
            )?);
            #[cfg(feature = "fault-injection")]
            answers.push((dp, answer));
        }
        #[cfg(feature = "fault-injection")]
        crate::fault::tamper_responses(
            fault.as_ref(),
            query,
            net,
            self.threads,
            &answers,
            &mut responses,
            &mut rng,
        )?;
        let mut aggregates = Vec::new();
        for s in net
            .servers
            .iter()
            .filter(|s| !net.offline.contains(&s.id()))
        {
            let mine: Vec<&DpResponse> = responses.iter().filter(|r| r.server == s.id()).collect();
            aggregates.push(s.aggregate(query, &mine)?);
        }
        #[cfg(feature = "fault-injection")]
        crate::fault::tamper_aggregates(
            fault.as_ref(),
            query,
            net,
            &responses,
            &mut aggregates,
            &mut rng,
        )?;
        let total = vigil_privstats::server::total(query.digits(), &aggregates);
        #[cfg_attr(not(feature = "fault-injection"), allow(unused_mut))]
        let mut shares: Vec<KeySwitchShare> = net
            .servers
            .iter()
            .filter(|s| !net.offline.contains(&s.id()))
            .map(|s| s.key_switch(query, &total, &mut rng))
            .collect();
        #[cfg(feature = "fault-injection")]
        crate::fault::tamper_shares(fault.as_ref(), &mut shares);

        // Each verifying node works from the ledger: the query's spec and the published key.
        let (record, keys) = {
            let s = self.ledger.snapshot();
            let keys: Vec<Bytes> = s.stats_keys().map(|(_, k)| k.key.clone()).collect();
            (s.query(id).cloned(), keys)
        };
        let record = record.ok_or_else(|| Error::Ledger("query not on the ledger".into()))?;
        let evidence = vigil_privstats::verify::result_digest(&query.id(), &aggregates, &shares);
        for (i, verifier) in self.verifiers.iter().enumerate() {
            let verdict = ledger_verdict(
                &record.spec,
                &keys,
                &responses,
                &aggregates,
                &shares,
                i as u32 + 1,
                self.threads,
            );
            let body = match verdict {
                Some(v) => TxBody::ProofVerdict {
                    query: *id,
                    bitmap: Bytes::from(v.bitmap.clone()),
                    all_valid: v.all_good(),
                    evidence: v.result_digest,
                },
                None => TxBody::ProofVerdict {
                    query: *id,
                    bitmap: Bytes::new(),
                    all_valid: false,
                    evidence,
                },
            };
            verifier
                .submit(&self.ledger, body)
                .map_err(|e| submit_err("submitting a verdict", e))?;
        }
        Ok((aggregates, shares, evidence))
    }
}

/// One verifying node's verdict from what the ledger says (the query's spec, the published
/// keys) and the evidence. None: the spec does not decode or names no published key.
fn ledger_verdict(
    spec: &[u8],
    published: &[Bytes],
    responses: &[DpResponse],
    aggregates: &[ServerAggregate],
    shares: &[KeySwitchShare],
    verifier: u32,
    threads: usize,
) -> Option<Verdict> {
    let query = Query::from_bytes(spec).ok()?;
    let key = published
        .iter()
        .filter_map(|b| CollectiveKey::from_bytes(b).ok())
        .find(|k| k.id() == query.key_id)?;
    let ev = Evidence {
        query: &query,
        key: &key,
        responses,
        aggregates,
        shares,
    };
    Some(verify(&ev, verifier, threads))
}

enum Decision {
    Wait,
    Reject { reason: String, failed: Vec<String> },
    Quorum { verdicts: usize, all: bool },
}

/// The acceptance rule (module docs) over the finalized verdicts on query `id`.
fn decide(
    state: &State,
    id: &QueryId,
    query: &Query,
    servers: usize,
    evidence: &[u8; 32],
    quorum: usize,
    configured: usize,
) -> Decision {
    let mut good = BTreeSet::new();
    let mut seen = 0;
    for (who, v) in state.verdicts_on(id) {
        seen += 1;
        let who_hex = short(who);
        let failed = match Verdict::failures_in_bitmap(query, servers, &v.bitmap) {
            Ok(f) => f,
            Err(_) => {
                return Decision::Reject {
                    reason: format!("verifying node {who_hex} found the query or key invalid"),
                    failed: Vec::new(),
                };
            }
        };
        if !v.all_valid || !failed.is_empty() {
            return Decision::Reject {
                reason: format!("verifying node {who_hex} rejected the proofs"),
                failed: failed.iter().map(ToString::to_string).collect(),
            };
        }
        if v.evidence != *evidence {
            return Decision::Reject {
                reason: format!(
                    "verifying node {who_hex} vouched for other evidence than the querier received"
                ),
                failed: Vec::new(),
            };
        }
        good.insert(who.clone());
    }
    if good.len() >= quorum {
        Decision::Quorum {
            verdicts: good.len(),
            all: seen >= configured,
        }
    } else {
        Decision::Wait
    }
}

fn short(key: &PublicKey) -> String {
    hex::encode(&key.as_ref()[..6])
}

fn decrypt(
    keypair: &KeyPair,
    table: &DecryptionTable,
    query: &Query,
    key: &CollectiveKey,
    aggregates: &[ServerAggregate],
    shares: &[KeySwitchShare],
) -> Result<(Aggregates, StatResult)> {
    let agg =
        vigil_privstats::querier::decrypt_with(keypair, table, query, key, aggregates, shares)?;
    let stat = agg.statistic(query);
    Ok((agg, stat))
}
