//! The application that commonware consensus drives: it proposes blocks from the mempool,
//! verifies peers' blocks (hash link, height, every signature, every transaction, the state
//! root), and applies finalized blocks in order.
//!
//! It plugs into `commonware_consensus::marshal::standard::Inline`, which turns an
//! [`Application`] into the simplex `Automaton`/`Relay`/`Reporter`, gossips whole blocks,
//! persists finalized blocks with their finalization certificates, and backfills blocks a
//! validator missed. This module never orders anything: it only builds and judges blocks.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use commonware_actor::Feedback;
use commonware_codec::EncodeSize as _;
use commonware_consensus::{
    Application, Reporter,
    marshal::{Update, ancestry::Ancestry},
    simplex::{scheme::ed25519::Scheme, types::Context},
};
use commonware_cryptography::{Digested, Digestible as _, ed25519::PublicKey, sha256::Digest};
use commonware_runtime::Clock;
use commonware_utils::{Acknowledgement as _, sync::Mutex};
use futures::StreamExt as _;
use rand_core::CryptoRng;
use tracing::{debug, error, warn};

use crate::block::{BLOCK_BYTES_MAX, BLOCK_TXS_MAX, Block, Header};
use crate::evidence::{self, EvidenceCache, EvidenceError};
use crate::finalized::{Finalized, Publisher, Snapshots};
use crate::mempool::{AdmitError, Mempool};
use crate::state::{Layer, Rejection, State, View, execute_block};
use crate::tx::{Hash, Tx, TxId, verify_batch};

/// Unfinalized ancestors a validator will fetch and execute to judge one block.
pub const ANCESTRY_WALK_MAX: usize = 256;
/// Transactions waiting to be gossiped to peers.
pub const GOSSIP_QUEUE_MAX: usize = 200_000;

/// A deliberate fault for tests (a proposer that breaks the rules) and the log of proposals
/// and verdicts. Compiled into the ledger's own tests only, so no production validator can be
/// configured to misbehave.
#[cfg(test)]
pub use crate::fault::ProposerFault;

/// Block-building limits.
#[derive(Clone, Debug)]
pub struct BlockLimits {
    pub txs_max: usize,
    pub bytes_max: usize,
}

impl Default for BlockLimits {
    fn default() -> Self {
        BlockLimits {
            txs_max: BLOCK_TXS_MAX,
            bytes_max: BLOCK_BYTES_MAX / 2,
        }
    }
}

/// An alert to gossip again with its encoded evidence while it is pending.
struct Regossip {
    tx: Tx,
    evidence: bytes::Bytes,
    /// When it is next due (set on the first pass after admission).
    due_ms: Option<u64>,
    sent: u8,
}

struct Pending {
    height: u64,
    parent: Digest,
    timestamp_ms: u64,
    layer: Arc<Layer>,
}

/// The validator's view of the chain, shared by the consensus-facing application, the
/// finalizer and the client API.
pub(crate) struct Chain {
    pub(crate) state: State,
    tip: Digest,
    tip_timestamp_ms: u64,
    pending: HashMap<Digest, Pending>,
    pub(crate) mempool: Mempool,
    /// The finalized view: one snapshot per finalized block, latest value only.
    published: Publisher,
    pub(crate) gossip_out: VecDeque<(Tx, Option<bytes::Bytes>)>,
    /// Evidence of pending alerts, for re-execution (never stored, never on the ledger).
    pub(crate) evidence: EvidenceCache,
    /// Alerts submitted here with their evidence, to gossip again while they stay pending.
    regossip: VecDeque<Regossip>,
    /// Set if a finalized block does not apply: the validator stops applying blocks.
    diverged: Option<String>,
    limits: BlockLimits,
    #[cfg(test)]
    fault: Option<ProposerFault>,
}

impl Chain {
    pub(crate) fn new(genesis: State, genesis_block: &Block, limits: BlockLimits) -> Chain {
        let published = Publisher::new(Finalized::new(
            Arc::new(genesis_block.clone()),
            genesis.clone(),
        ));
        Chain {
            state: genesis,
            tip: genesis_block.digest(),
            tip_timestamp_ms: genesis_block.header().timestamp_ms,
            pending: HashMap::new(),
            mempool: Mempool::default(),
            published,
            gossip_out: VecDeque::new(),
            evidence: EvidenceCache::default(),
            regossip: VecDeque::new(),
            diverged: None,
            limits,
            #[cfg(test)]
            fault: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn set_fault(&mut self, fault: Option<ProposerFault>) {
        self.fault = fault;
    }

    /// The unfinalized layers from the finalized tip up to `digest` (oldest first), with the
    /// height and timestamp of `digest`; `None` if `digest` is not known (or on a dead fork).
    fn layers_to(&self, digest: &Digest) -> Option<(Vec<Arc<Layer>>, u64, u64)> {
        let mut layers = Vec::new();
        let mut cursor = *digest;
        let mut top: Option<(u64, u64)> = None;
        loop {
            if cursor == self.tip {
                layers.reverse();
                let (height, ts) = top.unwrap_or((self.state.height(), self.tip_timestamp_ms));
                return Some((layers, height, ts));
            }
            let pending = self.pending.get(&cursor)?;
            if pending.height <= self.state.height() {
                return None;
            }
            top.get_or_insert((pending.height, pending.timestamp_ms));
            layers.push(pending.layer.clone());
            cursor = pending.parent;
        }
    }

    /// Apply a finalized block (in height order). Duplicates from a redelivery are ignored.
    pub(crate) fn finalize(&mut self, block: &Arc<Block>) {
        if self.diverged.is_some() {
            return;
        }
        let height = block.height();
        if height <= self.state.height() {
            return;
        }
        if height != self.state.height() + 1 || block.header().parent != self.tip {
            self.diverge(format!(
                "finalized block {height} does not extend tip {} at {}",
                self.tip,
                self.state.height()
            ));
            return;
        }
        let layer = match self.pending.get(&block.digest()) {
            Some(pending) => pending.layer.clone(),
            None => match execute_block(&self.state, &[], height, block.time_ms(), block.txs()) {
                Ok(layer) => Arc::new(layer),
                Err((index, rejection)) => {
                    self.diverge(format!(
                        "finalized block {height} transaction {index} rejected: {rejection}"
                    ));
                    return;
                }
            },
        };
        if layer.root != block.header().state_root {
            self.diverge(format!("finalized block {height} state root mismatch"));
            return;
        }
        self.state.merge(&layer);
        self.tip = block.digest();
        self.tip_timestamp_ms = block.header().timestamp_ms;
        let finalized = self.state.height();
        self.pending.retain(|_, p| p.height > finalized);
        // Published before the block's transactions leave the mempool: a reader that finds
        // its transaction no longer pending finds it in the latest snapshot.
        self.published
            .publish(Finalized::new(block.clone(), self.state.clone()));
        let view = self.state.view();
        self.mempool.prune(&view, block.txs());
        if !self.evidence.is_empty() {
            self.evidence.forget(
                block
                    .txs()
                    .iter()
                    .filter_map(evidence::claimed_digest)
                    .copied(),
            );
        }
    }

    fn diverge(&mut self, reason: String) {
        error!(%reason, "ledger diverged from the finalized chain; applying no more blocks");
        self.diverged = Some(reason);
    }

    pub(crate) fn diverged(&self) -> Option<&str> {
        self.diverged.as_deref()
    }

    pub(crate) fn snapshots(&self) -> Snapshots {
        self.published.subscribe()
    }

    /// Admit transactions whose signatures are checked; optionally queue them for gossip.
    pub(crate) fn admit(&mut self, tx: Tx, gossip: bool) -> Result<TxId, AdmitError> {
        let id = tx.id();
        let window = self.state.view().nonce_window(tx.signer());
        self.mempool.admit(tx.clone(), &window)?;
        if gossip && self.gossip_out.len() < GOSSIP_QUEUE_MAX {
            self.gossip_out.push_back((tx, None));
        }
        Ok(id)
    }

    /// Admit an alert with its evidence: the evidence must match the alert's digest and
    /// re-execute to its level against the finalized instance (when the instance is not yet
    /// finalized here, the check waits for block building and judging). The evidence is kept
    /// for judging blocks and gossiped with the alert when `gossip` is set.
    pub(crate) fn admit_with_evidence(
        &mut self,
        tx: Tx,
        evidence: Arc<vigil_contracts::Evidence>,
        gossip: bool,
    ) -> Result<TxId, AdmitWithEvidenceError> {
        let digest = *evidence::claimed_digest(&tx).ok_or(EvidenceError::NotAnAlert)?;
        // A copy gossiped again (or submitted twice) is not checked again: its signatures
        // were verified when it was first admitted.
        if self.mempool.contains_exact(&tx) && self.evidence.get(&digest).is_some() {
            return Err(AdmitError::Duplicate.into());
        }
        let signed_by = evidence::check(
            &self.state.view(),
            &tx,
            &evidence,
            evidence::Prior::default(),
            None,
        )?;
        // On a finalized instance, what the state machine already rules out (a replay, a
        // revoked device) is refused now rather than dropped later.
        if signed_by.is_some() {
            self.state
                .view()
                .check(&tx)
                .map_err(AdmitWithEvidenceError::Rejected)?;
        }
        // Recency against the finalized tip: a stale alert is refused at once (a reading ahead
        // of the tip is judged at the block's time, the tip may lag the clock).
        if let crate::tx::TxBody::Alert {
            reading_time_ms, ..
        } = tx.body()
        {
            let tip_ms = i64::try_from(self.tip_timestamp_ms).unwrap_or(i64::MAX);
            if tip_ms > 0 {
                evidence::not_stale(*reading_time_ms, tip_ms)?;
            }
        }
        let id = tx.id();
        let window = self.state.view().nonce_window(tx.signer());
        self.mempool.admit(tx.clone(), &window)?;
        self.evidence.insert(
            digest,
            evidence::Held {
                evidence: evidence.clone(),
                prior: evidence::Prior {
                    signed_by,
                    rederived_for: signed_by.map(|_| tx.id()),
                },
            },
        );
        // Only the validator an alert was submitted to gossips it, and gossips it again while
        // it stays pending: the peers' copies came from it.
        if gossip {
            let encoded = bytes::Bytes::from(evidence::encode(&evidence));
            if self.regossip.len() < GOSSIP_QUEUE_MAX {
                self.regossip.push_back(Regossip {
                    tx: tx.clone(),
                    evidence: encoded.clone(),
                    due_ms: None,
                    sent: 0,
                });
            }
            if self.gossip_out.len() < GOSSIP_QUEUE_MAX {
                self.gossip_out.push_back((tx, Some(encoded)));
            }
        }
        Ok(id)
    }

    /// Queues for gossip again the alerts still pending here whose re-gossip is due at
    /// `now_ms` (each every [`EVIDENCE_REGOSSIP_PERIOD_MS`], at most
    /// [`EVIDENCE_REGOSSIPS_MAX`] times); forgets the finalized and dropped ones.
    pub(crate) fn regossip_due(&mut self, now_ms: u64) {
        let mut kept = VecDeque::with_capacity(self.regossip.len());
        while let Some(mut entry) = self.regossip.pop_front() {
            if !self.mempool.contains_exact(&entry.tx) || entry.sent >= EVIDENCE_REGOSSIPS_MAX {
                continue;
            }
            let due = *entry
                .due_ms
                .get_or_insert(now_ms + EVIDENCE_REGOSSIP_PERIOD_MS);
            if due <= now_ms && self.gossip_out.len() < GOSSIP_QUEUE_MAX {
                self.gossip_out
                    .push_back((entry.tx.clone(), Some(entry.evidence.clone())));
                entry.sent += 1;
                entry.due_ms = Some(now_ms + EVIDENCE_REGOSSIP_PERIOD_MS);
            }
            kept.push_back(entry);
        }
        self.regossip = kept;
    }

    pub(crate) fn tip(&self) -> (u64, Digest) {
        (self.state.height(), self.tip)
    }
}

/// Why an alert with evidence was not admitted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdmitWithEvidenceError {
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    #[error(transparent)]
    Admit(#[from] AdmitError),
    #[error("rejected by the finalized state: {0}")]
    Rejected(Rejection),
}

/// Longest a validator waits for the gossiped evidence of a block's alerts before judging it.
pub const EVIDENCE_WAIT_MAX: Duration = Duration::from_millis(500);
const EVIDENCE_POLL: Duration = Duration::from_millis(10);
/// How often a validator gossips again the evidence of alerts still pending in its mempool (a
/// peer that lost the first copy would refuse every block with the alert), and how many times.
pub const EVIDENCE_REGOSSIP_PERIOD_MS: u64 = 1_000;
pub const EVIDENCE_REGOSSIPS_MAX: u8 = 5;

/// Furthest a block's time may be ahead of a validator's clock when it judges the block.
pub const BLOCK_AHEAD_MAX_MS: u64 = 60_000;

/// The [`Application`] handed to marshal's `Inline` wrapper.
#[derive(Clone)]
pub struct LedgerApp {
    chain: Arc<Mutex<Chain>>,
}

impl LedgerApp {
    /// Waits, at most [`EVIDENCE_WAIT_MAX`], until this validator holds the evidence of every
    /// alert in `txs`: a proposer proposes alerts it was just handed while their evidence is
    /// still on its way to the peers in gossip. Past the wait, judging refuses an alert whose
    /// evidence is not here ([`crate::evidence::EvidenceError::Missing`]).
    async fn await_evidence<C: Clock>(&self, clock: &C, txs: &[Tx]) {
        let digests: Vec<Hash> = txs
            .iter()
            .filter_map(evidence::claimed_digest)
            .copied()
            .collect();
        if digests.is_empty() {
            return;
        }
        let deadline = clock.current() + EVIDENCE_WAIT_MAX;
        loop {
            let missing = {
                let chain = self.chain.lock();
                digests.iter().any(|d| chain.evidence.get(d).is_none())
            };
            if !missing || clock.current() >= deadline {
                return;
            }
            clock.sleep(EVIDENCE_POLL).await;
        }
    }

    pub(crate) fn new(chain: Arc<Mutex<Chain>>) -> LedgerApp {
        LedgerApp { chain }
    }

    /// Make sure the state after `top` is known, fetching and executing unfinalized ancestors
    /// from `ancestry` (which yields `top` first, then its parent, ...). Returns false if `top`
    /// is on a dead fork, an ancestor does not apply, or the walk is too long.
    async fn ensure_executed(
        &self,
        top: &Digested<Block>,
        mut ancestry: impl Ancestry<Block>,
    ) -> bool {
        let mut missing: Vec<Arc<Block>> = Vec::new();
        let mut cursor = top.digest();
        loop {
            {
                let chain = self.chain.lock();
                if chain.layers_to(&cursor).is_some() {
                    break;
                }
                let finalized = chain.state.height();
                if let Some(last) = missing.last()
                    && last.height() <= finalized
                {
                    return false; // walked below the finalized tip without meeting it
                }
            }
            if missing.len() >= ANCESTRY_WALK_MAX {
                warn!(height = top.height_u64(), "ancestry too long to execute");
                return false;
            }
            // Skip the stream forward to `cursor`.
            let next = loop {
                match ancestry.next().await {
                    Some(block) if block.digest() == cursor => break Some(block),
                    Some(_) => continue,
                    None => break None,
                }
            };
            let Some(block) = next else {
                return false;
            };
            cursor = block.inner().header().parent;
            missing.push(Arc::new(block.inner().clone()));
        }
        // Execute the missing blocks from the oldest.
        let mut chain = self.chain.lock();
        for block in missing.iter().rev() {
            let parent = block.header().parent;
            let Some((layers, parent_height, _)) = chain.layers_to(&parent) else {
                return false;
            };
            if block.height() != parent_height + 1 {
                return false;
            }
            match execute_block(
                &chain.state,
                &layers,
                block.height(),
                block.time_ms(),
                block.txs(),
            ) {
                Ok(layer) if layer.root == block.header().state_root => {
                    chain.pending.insert(
                        block.digest(),
                        Pending {
                            height: block.height(),
                            parent,
                            timestamp_ms: block.header().timestamp_ms,
                            layer: Arc::new(layer),
                        },
                    );
                }
                _ => return false,
            }
        }
        true
    }
}

trait HeightU64 {
    fn height_u64(&self) -> u64;
}
impl HeightU64 for Digested<Block> {
    fn height_u64(&self) -> u64 {
        self.inner().height()
    }
}

impl<E> Application<E> for LedgerApp
where
    E: Clock + CryptoRng + Send + Sync + 'static,
{
    type SigningScheme = Scheme;
    type Context = Context<Digest, PublicKey>;
    type Block = Block;
    type Input = ();

    async fn propose(
        &mut self,
        (runtime, context): (E, Self::Context),
        ancestry: impl Ancestry<Self::Block>,
        _input: (),
    ) -> Option<Digested<Self::Block>> {
        let parent = ancestry.peek()?.clone();
        if !self.ensure_executed(&parent, ancestry).await {
            return None;
        }
        let now_ms = runtime
            .current()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64;
        let mut guard = self.chain.lock();
        let chain = &mut *guard;
        let (layers, parent_height, parent_ts) = chain.layers_to(&parent.digest())?;
        let height = parent_height + 1;
        let timestamp_ms = now_ms.max(parent_ts);
        let block_ms = i64::try_from(timestamp_ms).unwrap_or(i64::MAX);
        let mut view = crate::state::View::new(&chain.state, &layers, height).at_time(block_ms);
        let limits = chain.limits.clone();
        let held = &chain.evidence;
        let fill = chain
            .mempool
            .fill(&mut view, limits.txs_max, limits.bytes_max, |view, tx| {
                held.judge(view, tx, block_ms).err().map(|e| e.to_string())
            });
        let layer = view.finish();
        let txs = fill.txs;
        let block = Block::new(height, parent.digest(), timestamp_ms, txs, layer.root);
        #[cfg(test)]
        let block = misbehave(chain.fault.as_ref(), block, context.round.view().get());
        #[cfg(not(test))]
        let _ = context;
        debug!(height, txs = block.txs().len(), "proposing");
        chain.pending.insert(
            block.digest(),
            Pending {
                height,
                parent: parent.digest(),
                timestamp_ms: block.header().timestamp_ms,
                layer: Arc::new(layer),
            },
        );
        let digest = block.digest();
        Some(Digested::precomputed(block, digest))
    }

    async fn verify(
        &mut self,
        (mut runtime, context): (E, Self::Context),
        ancestry: impl Ancestry<Self::Block>,
    ) -> bool {
        let Some(block) = ancestry.peek().cloned() else {
            return false;
        };
        let now_ms = runtime
            .current()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64;
        let verdict = self.judge(&mut runtime, &block, ancestry, now_ms).await;
        if let Err(reason) = &verdict {
            warn!(height = block.inner().height(), %reason, "rejecting block");
        }
        #[cfg(test)]
        if let Some(fault) = &self.chain.lock().fault {
            fault.log.judged(crate::fault::Verdict {
                validator: fault.validator,
                leader: context.leader.clone(),
                view: context.round.view().get(),
                digest: block.digest(),
                refused: verdict.as_ref().err().map(ToString::to_string),
            });
        }
        #[cfg(not(test))]
        let _ = context;
        verdict.is_ok()
    }
}

/// The block a faulty proposer sends instead of `block` (the honest one), logged with the
/// view it leads. An equivocator's second block is kept in the log for its vote sender.
#[cfg(test)]
fn misbehave(fault: Option<&ProposerFault>, block: Block, view: u64) -> Block {
    use crate::fault::{Misbehaviour, Proposed};
    let Some(fault) = fault else {
        return block;
    };
    let header = block.header().clone();
    let rebuild = |timestamp_ms: u64, txs: Vec<Tx>, state_root: Hash| {
        Block::new(header.height, header.parent, timestamp_ms, txs, state_root)
    };
    let block = match &fault.misbehaviour {
        None => block,
        Some(Misbehaviour::InjectTx(tx)) => {
            let txs = [block.txs().to_vec(), vec![Tx::clone(tx)]].concat();
            rebuild(header.timestamp_ms, txs, header.state_root)
        }
        Some(Misbehaviour::WrongStateRoot) => {
            let mut root = header.state_root;
            root[0] ^= 1;
            rebuild(header.timestamp_ms, block.txs().to_vec(), root)
        }
        Some(Misbehaviour::TimeAhead(ahead_ms)) => rebuild(
            header.timestamp_ms + ahead_ms,
            block.txs().to_vec(),
            header.state_root,
        ),
        Some(Misbehaviour::Equivocate) => {
            let second = rebuild(
                header.timestamp_ms + 1,
                block.txs().to_vec(),
                header.state_root,
            );
            fault.log.alternative(block.digest(), second);
            block
        }
    };
    fault.log.proposed(Proposed {
        validator: fault.validator,
        view,
        height: header.height,
        digest: block.digest(),
    });
    block
}

/// Why a proposed block is invalid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    #[error("transactions do not match the header's count or root")]
    BodyMismatch,
    #[error("block too large: {0} bytes")]
    TooLarge(usize),
    #[error("parent unknown, on a dead fork, or does not apply")]
    Parent,
    #[error("height {got} does not follow the parent's {parent}")]
    Height { parent: u64, got: u64 },
    #[error("timestamp earlier than the parent's")]
    Timestamp,
    #[error(
        "block time {block_ms} ms is ahead of this validator's clock ({now_ms} ms) by more than 60 s"
    )]
    TimestampAhead { block_ms: u64, now_ms: u64 },
    #[error("transaction {0} has an invalid signature")]
    Signature(usize),
    #[error("transaction {index} rejected: {rejection}")]
    Rejected { index: usize, rejection: Rejection },
    #[error("alert {index} refuted by its evidence: {error}")]
    Evidence { index: usize, error: EvidenceError },
    #[error("state root does not match the execution")]
    StateRoot,
}

impl LedgerApp {
    async fn judge<R: CryptoRng + Clock>(
        &self,
        rng: &mut R,
        block: &Digested<Block>,
        mut ancestry: impl Ancestry<Block>,
        now_ms: u64,
    ) -> Result<(), BlockError> {
        let inner = block.inner();
        let header: &Header = inner.header();
        // A block from the future would let readings from the future pass as recent.
        if header.timestamp_ms > now_ms.saturating_add(BLOCK_AHEAD_MAX_MS) {
            return Err(BlockError::TimestampAhead {
                block_ms: header.timestamp_ms,
                now_ms,
            });
        }
        if !inner.body_matches() {
            return Err(BlockError::BodyMismatch);
        }
        let size = inner.encode_size();
        if size > BLOCK_BYTES_MAX {
            return Err(BlockError::TooLarge(size));
        }
        // Signatures first (no lock held): skip those already checked on mempool admission.
        let (chain_id, unchecked): (Hash, Vec<(usize, &Tx)>) = {
            let chain = self.chain.lock();
            let unchecked = inner
                .txs()
                .iter()
                .enumerate()
                .filter(|(_, tx)| !chain.mempool.contains_exact(tx))
                .collect();
            (*chain.state.chain_id(), unchecked)
        };
        let refs: Vec<&Tx> = unchecked.iter().map(|(_, tx)| *tx).collect();
        if let Some(bad) = verify_batch(rng, &chain_id, &refs).first() {
            return Err(BlockError::Signature(unchecked[*bad].0));
        }
        self.await_evidence(rng, inner.txs()).await;
        // The parent: the second element of the ancestry.
        let _ = ancestry.next().await;
        let parent_ancestry = ancestry.clone();
        let Some(parent) = ancestry.peek().cloned() else {
            return Err(BlockError::Parent);
        };
        if parent.digest() != header.parent {
            return Err(BlockError::Parent);
        }
        if !self.ensure_executed(&parent, parent_ancestry).await {
            return Err(BlockError::Parent);
        }
        let mut chain = self.chain.lock();
        let (layers, parent_height, parent_ts) =
            chain.layers_to(&header.parent).ok_or(BlockError::Parent)?;
        if header.height != parent_height + 1 {
            return Err(BlockError::Height {
                parent: parent_height,
                got: header.height,
            });
        }
        if header.timestamp_ms < parent_ts {
            return Err(BlockError::Timestamp);
        }
        // Execute, re-deriving each alert from the evidence this validator holds just before
        // it applies (so an instance deployed earlier in the block is known); an alert whose
        // evidence is not held here is refused.
        let block_ms = i64::try_from(header.timestamp_ms).unwrap_or(i64::MAX);
        let mut view = View::new(&chain.state, &layers, header.height).at_time(block_ms);
        for (index, tx) in inner.txs().iter().enumerate() {
            chain
                .evidence
                .judge(&view, tx, block_ms)
                .map_err(|error| BlockError::Evidence { index, error })?;
            view.apply(tx)
                .map_err(|rejection| BlockError::Rejected { index, rejection })?;
        }
        let layer = view.finish();
        if layer.root != header.state_root {
            return Err(BlockError::StateRoot);
        }
        chain.pending.insert(
            block.digest(),
            Pending {
                height: header.height,
                parent: header.parent,
                timestamp_ms: header.timestamp_ms,
                layer: Arc::new(layer),
            },
        );
        Ok(())
    }
}

/// Receives finalized blocks from marshal, in height order, and applies them.
#[derive(Clone)]
pub struct Finalizer {
    chain: Arc<Mutex<Chain>>,
}

impl Finalizer {
    pub(crate) fn new(chain: Arc<Mutex<Chain>>) -> Finalizer {
        Finalizer { chain }
    }
}

impl Reporter for Finalizer {
    type Activity = Update<Block>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        match activity {
            Update::Block(block, ack) => {
                let block = block.inner_shared();
                self.chain.lock().finalize(&block);
                ack.acknowledge();
            }
            Update::Tip(..) => {}
        }
        Feedback::Ok
    }
}
