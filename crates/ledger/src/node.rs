//! Wiring one validator: simplex consensus, marshal (block gossip, finalized storage,
//! backfill), transaction gossip, and the [`Ledger`] handle that clients use.
//!
//! The same code runs on the deterministic runtime with the simulated network (tests,
//! `vigil bench ledger`) and on the tokio runtime with authenticated networking (`vigil node`):
//! the caller registers six channels and hands them over as [`Channels`].

use std::num::{NonZeroU16, NonZeroU64, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use bytes::Buf as _;
use bytes::Bytes;
use commonware_codec::{EncodeSize as _, ReadExt as _, Write as _};
use commonware_consensus::{
    marshal::{
        self,
        core::{Actor as MarshalActor, Mailbox as MarshalMailbox},
        standard::{Inline, Standard},
    },
    simplex::{
        self,
        config::{ForwardPolicy, SkipBudget, SkipPolicy},
        elector::RoundRobin,
        scheme::ed25519::Scheme,
        types::Finalization,
    },
    types::{Epoch, FixedEpocher, Height, ViewDelta},
};
use commonware_cryptography::{
    Digested, Signer as _,
    certificate::ConstantProvider,
    ed25519::{PrivateKey, PublicKey},
    sha256::{Digest, Sha256},
};
use commonware_p2p::{Blocker, Provider, Receiver, Recipients, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::{Clock, Handle, Metrics, Spawner, Storage, buffer::paged::CacheRef};
use commonware_storage::archive::{Archive as _, Identifier as ArchiveId, immutable};
use commonware_utils::{NZDuration, NZU16, NZU64, NZUsize, ordered::Set, sync::Mutex};
use rand_core::CryptoRng;
use tracing::{info, warn};

#[cfg(test)]
use crate::app::ProposerFault;
use crate::app::{AdmitWithEvidenceError, BlockLimits, Chain, Finalizer, LedgerApp};
use crate::block::{BLOCK_BYTES_MAX, Block};
use crate::evidence::{self, EVIDENCE_BYTES_MAX, EvidenceError};
use crate::finalized::{Finalized, Follower, Snapshots, stored_block};
use crate::mempool::{AdmitError, Dropped};
use crate::state::{Rejection, State};
use crate::tx::{Hash, Tx, TxId, verify_batch};

/// Pending transactions of one signer applied before checking its new one
/// ([`Ledger::submit_after_pending`]): bounds the work of one submission.
pub const PENDING_CHECKED_MAX: usize = 1024;
/// Namespace of consensus votes and certificates.
pub const CONSENSUS_NAMESPACE: &[u8] = b"_VIGIL_LEDGER_CONSENSUS_V1";
/// Transactions in one gossip message.
pub const GOSSIP_BATCH_TXS_MAX: usize = 2048;
/// Bytes in one gossip message (well under [`MESSAGE_BYTES_MAX`]).
pub const GOSSIP_BATCH_BYTES_MAX: usize = 1024 * 1024;
/// How often queued transactions are gossiped.
pub const GOSSIP_INTERVAL: Duration = Duration::from_millis(20);
/// Largest message on any ledger channel: a block at its bound plus framing.
pub const MESSAGE_BYTES_MAX: u32 = (BLOCK_BYTES_MAX + 64 * 1024) as u32;

/// Channel numbers; every validator must use the same.
pub mod channel {
    pub const VOTES: u64 = 0;
    pub const CERTIFICATES: u64 = 1;
    pub const RESOLVER: u64 = 2;
    pub const BACKFILL: u64 = 3;
    pub const BLOCKS: u64 = 4;
    pub const TXS: u64 = 5;
}

/// Where a validator reads and writes each kind of message.
pub struct Channels<S, R> {
    pub votes: (S, R),
    pub certificates: (S, R),
    pub resolver: (S, R),
    pub backfill: (S, R),
    pub blocks: (S, R),
    pub txs: (S, R),
}

/// Consensus timeouts. Shorter timeouts skip a crashed leader's views sooner.
#[derive(Clone, Debug)]
pub struct Timing {
    pub leader_timeout: Duration,
    pub certification_timeout: Duration,
    pub timeout_retry: Duration,
    pub skip_timeout: Duration,
    pub fetch_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            leader_timeout: Duration::from_millis(500),
            certification_timeout: Duration::from_millis(1000),
            timeout_retry: Duration::from_millis(1000),
            skip_timeout: Duration::from_millis(1500),
            fetch_timeout: Duration::from_millis(1000),
        }
    }
}

/// The genesis of a ledger: the validator set, the initial state and block, and the chain id
/// that every transaction signature binds to.
#[derive(Clone)]
pub struct Genesis {
    pub chain_id: Hash,
    pub validators: Set<PublicKey>,
    pub state: State,
    pub block: Block,
}

impl Genesis {
    /// Build a genesis from the validator set and the initial roles.
    pub fn new(
        validators: Vec<PublicKey>,
        roles: &[(PublicKey, crate::tx::Role)],
        label: &str,
    ) -> Genesis {
        let validators = Set::from_iter_dedup(validators);
        let mut material = Vec::new();
        (label.len() as u32).write(&mut material);
        material.extend_from_slice(label.as_bytes());
        for v in validators.iter() {
            v.write(&mut material);
        }
        let mut sorted: Vec<_> = roles.to_vec();
        sorted.sort();
        for (k, r) in &sorted {
            k.write(&mut material);
            material.push(r.code());
        }
        let chain_id = vigil_core::digest("vigil/ledger/chain-id/v1", &[&material]);
        let state = State::genesis(chain_id, roles);
        let block = Block::genesis(state.root());
        Genesis {
            chain_id,
            validators,
            state,
            block,
        }
    }

    /// A verifier of finalization certificates for this validator set.
    pub fn certificate_verifier(&self) -> Scheme {
        Scheme::verifier(CONSENSUS_NAMESPACE, self.validators.clone())
    }
}

/// Everything one validator needs to start.
pub struct ValidatorConfig {
    pub key: PrivateKey,
    pub genesis: Genesis,
    /// Storage partitions are named with this prefix.
    pub partition_prefix: String,
    pub timing: Timing,
    pub limits: BlockLimits,
    /// A misbehaving proposer, in the ledger's own tests only.
    #[cfg(test)]
    pub fault: Option<ProposerFault>,
}

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    #[error("invalid signature")]
    Signature,
    #[error("rejected by the finalized state: {0}")]
    Rejected(Rejection),
    #[error("not admitted: {0}")]
    Admit(#[from] AdmitError),
    #[error("evidence refused: {0}")]
    Evidence(#[from] EvidenceError),
}

impl From<AdmitWithEvidenceError> for SubmitError {
    fn from(error: AdmitWithEvidenceError) -> Self {
        match error {
            AdmitWithEvidenceError::Evidence(e) => SubmitError::Evidence(e),
            AdmitWithEvidenceError::Admit(e) => SubmitError::Admit(e),
            AdmitWithEvidenceError::Rejected(r) => SubmitError::Rejected(r),
        }
    }
}

/// The client-facing handle of a running validator.
#[derive(Clone)]
pub struct Ledger {
    chain: Arc<Mutex<Chain>>,
    chain_id: Hash,
    marshal: MarshalMailbox<Scheme, Standard<Block>>,
    snapshots: Snapshots,
}

impl Ledger {
    pub fn chain_id(&self) -> Hash {
        self.chain_id
    }

    /// Submit transactions: signatures are batch-verified, each is checked against the
    /// finalized state's permission table and nonce, admitted to the mempool and gossiped. An
    /// alert is refused here: it goes with its evidence through
    /// [`Ledger::submit_with_evidence`].
    pub fn submit_many<R: CryptoRng>(
        &self,
        rng: &mut R,
        txs: Vec<Tx>,
    ) -> Vec<Result<TxId, SubmitError>> {
        let refs: Vec<&Tx> = txs.iter().collect();
        let bad = verify_batch(rng, &self.chain_id, &refs);
        let mut chain = self.chain.lock();
        txs.into_iter()
            .enumerate()
            .map(|(i, tx)| {
                if bad.contains(&i) {
                    return Err(SubmitError::Signature);
                }
                if evidence::claimed_digest(&tx).is_some() {
                    return Err(SubmitError::Evidence(EvidenceError::Missing));
                }
                let view = chain.state.view();
                let kind = tx.kind();
                let roles = view.role_set(tx.signer());
                if !kind.allowed_roles().iter().any(|r| roles.contains(*r)) {
                    return Err(SubmitError::Rejected(Rejection::Unauthorized {
                        kind,
                        needed: kind.allowed_roles(),
                    }));
                }
                Ok(chain.admit(tx, true)?)
            })
            .collect()
    }

    /// Submit an alert with the device-signed evidence that re-derives it (see
    /// [`crate::evidence`]). The evidence is checked here against the finalized instance and
    /// device enrollment, kept in memory until the alert is finalized, and forwarded to the
    /// other validators so that each can re-derive it.
    pub fn submit_with_evidence<R: CryptoRng>(
        &self,
        rng: &mut R,
        tx: Tx,
        evidence: vigil_contracts::Evidence,
    ) -> Result<TxId, SubmitError> {
        if !tx.verify_signature(&self.chain_id) {
            return Err(SubmitError::Signature);
        }
        let _ = rng;
        let mut chain = self.chain.lock();
        let kind = tx.kind();
        let roles = chain.state.view().role_set(tx.signer());
        if !kind.allowed_roles().iter().any(|r| roles.contains(*r)) {
            return Err(SubmitError::Rejected(Rejection::Unauthorized {
                kind,
                needed: kind.allowed_roles(),
            }));
        }
        Ok(chain.admit_with_evidence(tx, Arc::new(evidence), true)?)
    }

    /// Hold evidence as if it had arrived with a gossiped alert (tests of Byzantine
    /// validators, which must be able to hold evidence for an alert they did not receive it with).
    #[doc(hidden)]
    pub fn hold_evidence(&self, evidence: vigil_contracts::Evidence) {
        self.chain.lock().evidence.insert(
            evidence.digest(),
            evidence::Held {
                evidence: Arc::new(evidence),
                prior: evidence::Prior::default(),
            },
        );
    }

    /// Submit one transaction (see [`Ledger::submit_many`]).
    pub fn submit<R: CryptoRng>(&self, rng: &mut R, tx: Tx) -> Result<TxId, SubmitError> {
        self.submit_many(rng, vec![tx])
            .pop()
            .unwrap_or(Err(SubmitError::Signature))
    }

    /// The latest finalized snapshot (the block and the state after it). Taken without the
    /// consensus lock; hold it as long as needed, it never changes.
    pub fn snapshot(&self) -> Arc<Finalized> {
        self.snapshots.borrow().clone()
    }

    /// The finalized view as a latest-value channel: `changed().await` wakes on the next
    /// finalized block; a reader that waits longer sees only the latest snapshot.
    pub fn snapshots(&self) -> Snapshots {
        self.snapshots.clone()
    }

    /// Every finalized block from height `from` on, in order: the ones the channel skipped
    /// while the reader was busy are read back from the finalized block store.
    pub fn follow(&self, from: u64) -> Follower {
        Follower::new(self.marshal.clone(), self.snapshots.clone(), from)
    }

    /// Height and digest of the last finalized block applied to the state.
    pub fn finalized(&self) -> (u64, Digest) {
        self.chain.lock().tip()
    }

    /// The signer's next nonce in the finalized state.
    pub fn next_nonce(&self, signer: &PublicKey) -> u64 {
        self.chain.lock().state.view().next_nonce(signer)
    }

    /// The nonce the signer's next transaction should carry: above the finalized state's
    /// highest and above every one pending here. A dropped transaction's nonce is not handed
    /// out again, and its hole blocks nothing (see [`crate::state::NonceWindow`]).
    pub fn next_free_nonce(&self, signer: &PublicKey) -> u64 {
        let chain = self.chain.lock();
        let next = chain.state.view().next_nonce(signer);
        chain.mempool.next_free_nonce(signer, next)
    }

    /// Why this validator's mempool dropped the transaction, if it did (among the last
    /// [`crate::mempool::DROPPED_REMEMBERED_MAX`] it dropped).
    pub fn dropped(&self, id: &TxId) -> Option<Dropped> {
        self.chain.lock().mempool.dropped(id).cloned()
    }

    /// Submit `tx` only if it applies on the finalized state after the signer's transactions
    /// pending here (in nonce order, those that apply): what the signer already asked for
    /// and the ledger will refuse (a second acknowledgement of an alert whose first is
    /// pending) is refused at once, with the ledger's reason, instead of being admitted and
    /// dropped at proposal. At most [`PENDING_CHECKED_MAX`] pending transactions are applied.
    pub fn submit_after_pending<R: CryptoRng>(
        &self,
        rng: &mut R,
        tx: Tx,
    ) -> Result<TxId, SubmitError> {
        if !verify_batch(rng, &self.chain_id, &[&tx]).is_empty() {
            return Err(SubmitError::Signature);
        }
        let mut chain = self.chain.lock();
        {
            let mut view = chain.state.view();
            for pending in chain
                .mempool
                .pending_of(tx.signer())
                .take(PENDING_CHECKED_MAX)
            {
                // A pending transaction that does not apply now will not make this one pass.
                let _ = view.apply(pending);
            }
            view.check(&tx).map_err(SubmitError::Rejected)?;
        }
        Ok(chain.admit(tx, true)?)
    }

    /// Whether this exact transaction is waiting in this validator's mempool.
    pub fn is_pending(&self, tx: &Tx) -> bool {
        self.chain.lock().mempool.contains_exact(tx)
    }

    /// Pending transactions in the mempool.
    pub fn mempool_len(&self) -> usize {
        self.chain.lock().mempool.len()
    }

    /// Set when a finalized block failed to apply (a bug or a Byzantine quorum).
    pub fn diverged(&self) -> Option<String> {
        self.chain.lock().diverged().map(str::to_owned)
    }

    /// A finalized block by height, from storage.
    pub async fn block(&self, height: u64) -> Option<Arc<Block>> {
        stored_block(&self.marshal, height).await
    }

    /// The finalization certificate stored for a height, if that block was finalized directly
    /// (an ancestor finalized through a descendant has none of its own).
    pub async fn finalization(&self, height: u64) -> Option<Finalization<Scheme, Digest>> {
        self.marshal.get_finalization(Height::new(height)).await
    }

    #[cfg(test)]
    pub fn set_fault(&self, fault: Option<ProposerFault>) {
        self.chain.lock().set_fault(fault);
    }
}

/// Storage partitions for a validator's finalized blocks and certificates.
pub fn archive_config<C>(prefix: &str, name: &str, codec_config: C) -> immutable::Config<C> {
    const PAGE_SIZE: NonZeroU16 = NZU16!(4096);
    const PAGE_CACHE_PAGES: NonZeroUsize = NZUsize!(256);
    immutable::Config {
        metadata_partition: format!("{prefix}-{name}-metadata"),
        freezer_table_partition: format!("{prefix}-{name}-freezer-table"),
        freezer_table_initial_size: 1024,
        freezer_table_resize_frequency: 4,
        freezer_table_resize_chunk_size: 1024,
        freezer_key_partition: format!("{prefix}-{name}-freezer-key"),
        freezer_key_page_cache: CacheRef::new(PAGE_SIZE, PAGE_CACHE_PAGES),
        freezer_value_partition: format!("{prefix}-{name}-freezer-value"),
        freezer_value_target_size: 64 * 1024 * 1024,
        freezer_value_compression: None,
        ordinal_partition: format!("{prefix}-{name}-ordinal"),
        items_per_section: NZU64!(1024),
        codec_config,
        replay_buffer: NZUsize!(1024 * 1024),
        freezer_key_write_buffer: NZUsize!(1024 * 1024),
        freezer_value_write_buffer: NZUsize!(1024 * 1024),
        ordinal_write_buffer: NZUsize!(1024 * 1024),
    }
}

/// Partition names of the two archives (used by `vigil ledger verify` too).
pub const BLOCKS_ARCHIVE: &str = "finalized-blocks";
pub const CERTIFICATES_ARCHIVE: &str = "finalizations-by-height";

/// Epochs never end: the validator set is fixed by the genesis.
const EPOCH_LENGTH: NonZeroU64 = NZU64!(1 << 62);

/// Start a validator. Returns the client handle and the handle of its root task: aborting
/// that task stops (crashes) every task of the validator.
pub async fn start<E, S, R, C, B>(
    context: E,
    config: ValidatorConfig,
    channels: Channels<S, R>,
    peer_provider: C,
    blocker: B,
) -> Ledger
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
    C: Provider<PublicKey = PublicKey> + Clone,
    B: Blocker<PublicKey = PublicKey> + Clone,
{
    let ValidatorConfig {
        key,
        genesis,
        partition_prefix: prefix,
        timing,
        limits,
        #[cfg(test)]
        fault,
    } = config;
    let me = key.public_key();
    let scheme = Scheme::signer(CONSENSUS_NAMESPACE, genesis.validators.clone(), key)
        .expect("the validator key is in the genesis validator set");

    // Finalized storage, then the state rebuilt from it.
    let finalizations: immutable::Archive<E, Digest, Finalization<Scheme, Digest>> =
        immutable::Archive::init(
            context.child("finalizations"),
            archive_config(
                &prefix,
                CERTIFICATES_ARCHIVE,
                <Scheme as commonware_cryptography::certificate::Verifier>::certificate_codec_config_unbounded(),
            ),
        )
        .await
        .expect("open the certificates archive");
    let blocks: immutable::Archive<E, Digest, Arc<Block>> = immutable::Archive::init(
        context.child("blocks"),
        archive_config(&prefix, BLOCKS_ARCHIVE, ()),
    )
    .await
    .expect("open the blocks archive");
    let mut chain = Chain::new(genesis.state.clone(), &genesis.block, limits);
    #[cfg(test)]
    chain.set_fault(fault);
    let mut height = 1u64;
    while let Ok(Some(block)) = blocks.get(ArchiveId::Index(height)).await {
        chain.finalize(&block);
        height += 1;
    }
    if height > 1 {
        info!(%me, height = height - 1, "state rebuilt from finalized blocks");
    }
    let snapshots = chain.snapshots();
    let chain = Arc::new(Mutex::new(chain));

    // Marshal: block dissemination, finalized storage, backfill.
    let epocher = FixedEpocher::new(EPOCH_LENGTH);
    let mailbox_size = NZUsize!(1024);
    let marshal_config = marshal::Config {
        provider: ConstantProvider::new(scheme.clone()),
        epocher: epocher.clone(),
        start: marshal::Start::Genesis(Digested::precomputed(
            genesis.block.clone(),
            genesis.block.digest(),
        )),
        partition_prefix: format!("{prefix}-marshal"),
        mailbox_size,
        view_retention: ViewDelta::new(64),
        prunable_items_per_section: NZU64!(64),
        page_cache: CacheRef::new(NZU16!(4096), NZUsize!(256)),
        replay_buffer: NZUsize!(1024 * 1024),
        key_write_buffer: NZUsize!(1024 * 1024),
        value_write_buffer: NZUsize!(1024 * 1024),
        block_codec_config: (),
        max_repair: NZUsize!(16),
        max_pending_acks: NZUsize!(16),
        strategy: Sequential,
    };
    let (resolver_rx, resolver) = marshal::resolver::p2p::init(
        context.child("backfill"),
        marshal::resolver::p2p::Config {
            public_key: me.clone(),
            peer_provider: peer_provider.clone(),
            blocker: blocker.clone(),
            mailbox_size,
            fetch_timeout: NZDuration!(Duration::from_secs(2)),
            fetch_retry_delay: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
        channels.backfill,
    );
    let (broadcast_engine, buffer) = commonware_broadcast::buffered::Engine::new(
        context.child("broadcast"),
        commonware_broadcast::buffered::Config {
            public_key: me.clone(),
            mailbox_size,
            deque_size: 16,
            priority: false,
            codec_config: (),
            peer_provider: peer_provider.clone(),
            strategy: Sequential,
        },
    );
    broadcast_engine.start(channels.blocks);
    let (actor, marshal_mailbox, _floor) = MarshalActor::<_, Standard<Block>, _, _, _, _, _>::init(
        context.child("marshal"),
        finalizations,
        blocks,
        marshal_config,
    )
    .await;
    actor.start(
        Finalizer::new(chain.clone()),
        buffer,
        (resolver_rx, resolver),
    );

    // Consensus.
    let app = Inline::new(
        context.child("application"),
        LedgerApp::new(chain.clone()),
        marshal_mailbox.clone(),
        epocher,
    );
    let engine = simplex::Engine::new(
        context.child("consensus"),
        simplex::config::Config {
            scheme,
            elector: RoundRobin::<Sha256>::default(),
            blocker,
            automaton: app.clone(),
            relay: app.clone(),
            reporter: app,
            strategy: Sequential,
            partition: format!("{prefix}-consensus"),
            mailbox_size,
            epoch: Epoch::zero(),
            floor: simplex::config::Floor::Genesis(genesis.block.digest()),
            replay_buffer: NZUsize!(1024 * 1024),
            write_buffer: NZUsize!(1024 * 1024),
            page_cache: CacheRef::new(NZU16!(4096), NZUsize!(256)),
            leader_timeout: timing.leader_timeout,
            certification_timeout: timing.certification_timeout,
            timeout_retry: timing.timeout_retry,
            view_retention: ViewDelta::new(64),
            skip: SkipPolicy::Enabled {
                timeout: timing.skip_timeout,
                budget: SkipBudget::Participants,
            },
            fetch_timeout: commonware_utils::NonZeroDuration::new(timing.fetch_timeout)
                .unwrap_or(NZDuration!(Duration::from_secs(1))),
            fetch_retry_delay: Duration::from_millis(100),
            forward: ForwardPolicy::SilentVoters,
            track_historical_votes: false,
        },
    );
    engine.start(channels.votes, channels.certificates, channels.resolver);

    // Transaction gossip.
    let ledger = Ledger {
        chain: chain.clone(),
        chain_id: genesis.chain_id,
        marshal: marshal_mailbox,
        snapshots,
    };
    spawn_gossip(
        context.child("gossip"),
        chain,
        genesis.chain_id,
        channels.txs,
    );
    ledger
}

fn spawn_gossip<E, S, R>(
    context: E,
    chain: Arc<Mutex<Chain>>,
    chain_id: Hash,
    (mut sender, mut receiver): (S, R),
) -> Handle<()>
where
    E: Clock + CryptoRng + Spawner,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
{
    let out_chain = chain.clone();
    context.child("out").spawn(move |context| async move {
        for round in 0u64.. {
            context.sleep(GOSSIP_INTERVAL).await;
            // Every 250 ms: pending alerts whose evidence is due to be gossiped again.
            if round % 12 == 0 {
                let now_ms = context
                    .current()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis() as u64;
                out_chain.lock().regossip_due(now_ms);
            }
            loop {
                let batch: Vec<Gossiped> = {
                    // Bounded in count and in bytes, so a message never exceeds the channel's
                    // limit even when alerts carry evidence.
                    let mut chain = out_chain.lock();
                    let mut bytes = 0usize;
                    let n = chain
                        .gossip_out
                        .iter()
                        .take(GOSSIP_BATCH_TXS_MAX)
                        .take_while(|(tx, evidence)| {
                            bytes +=
                                tx.encode_size() + 5 + evidence.as_ref().map_or(0, |e| e.len());
                            bytes <= GOSSIP_BATCH_BYTES_MAX
                        })
                        .count()
                        .max(1);
                    let n = n.min(chain.gossip_out.len());
                    chain.gossip_out.drain(..n).collect()
                };
                if batch.is_empty() {
                    break;
                }
                let message = encode_gossip(&batch);
                let _ = sender.send(Recipients::All, Bytes::from(message), false);
            }
        }
    });
    context.child("in").spawn(move |mut context| async move {
        loop {
            let Ok((peer, message)) = receiver.recv().await else {
                return;
            };
            let txs = match decode_gossip(message.into()) {
                Ok(txs) => txs,
                Err(reason) => {
                    warn!(%peer, %reason, "malformed transaction gossip");
                    continue;
                }
            };
            let refs: Vec<&Tx> = txs.iter().map(|(tx, _)| tx).collect();
            let bad = verify_batch(&mut context, &chain_id, &refs);
            let mut chain = chain.lock();
            for (i, (tx, evidence)) in txs.into_iter().enumerate() {
                if bad.contains(&i) {
                    continue;
                }
                match evidence {
                    None if evidence::claimed_digest(&tx).is_some() => {
                        warn!(%peer, "gossiped alert without evidence refused");
                    }
                    None => {
                        let _ = chain.admit(tx, false);
                    }
                    Some(bytes) => match evidence::decode(&bytes) {
                        Ok(evidence) => {
                            if let Err(AdmitWithEvidenceError::Evidence(error)) =
                                chain.admit_with_evidence(tx, Arc::new(evidence), false)
                            {
                                warn!(%peer, %error, "gossiped alert refuted by its evidence");
                            }
                        }
                        Err(error) => warn!(%peer, %error, "malformed evidence in gossip"),
                    },
                }
            }
        }
    })
}

/// A gossip message: a count, then each transaction followed by its evidence, if any (a flag
/// byte, then a length-prefixed encoding).
fn encode_gossip(batch: &[Gossiped]) -> Vec<u8> {
    let mut message = Vec::with_capacity(
        batch
            .iter()
            .map(|(t, _)| t.encode_size() + 1)
            .sum::<usize>()
            + 4,
    );
    (batch.len() as u32).write(&mut message);
    for (tx, evidence) in batch {
        tx.write(&mut message);
        match evidence {
            None => 0u8.write(&mut message),
            Some(bytes) => {
                1u8.write(&mut message);
                (bytes.len() as u32).write(&mut message);
                message.extend_from_slice(bytes);
            }
        }
    }
    message
}

type Gossiped = (Tx, Option<Bytes>);

fn decode_gossip(mut message: Bytes) -> Result<Vec<Gossiped>, commonware_codec::Error> {
    let count = u32::read(&mut message)? as usize;
    if count > GOSSIP_BATCH_TXS_MAX {
        return Err(commonware_codec::Error::InvalidLength(count));
    }
    let mut txs = Vec::with_capacity(count);
    for _ in 0..count {
        let tx = Tx::read(&mut message)?;
        let evidence = match u8::read(&mut message)? {
            0 => None,
            1 => {
                let len = u32::read(&mut message)? as usize;
                if len > EVIDENCE_BYTES_MAX || len > message.remaining() {
                    return Err(commonware_codec::Error::InvalidLength(len));
                }
                Some(message.split_to(len))
            }
            other => return Err(commonware_codec::Error::InvalidEnum(other)),
        };
        txs.push((tx, evidence));
    }
    if message.has_remaining() {
        return Err(commonware_codec::Error::ExtraData(message.remaining()));
    }
    Ok(txs)
}
