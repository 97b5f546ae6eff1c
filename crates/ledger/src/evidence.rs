//! Alert evidence: what lets every validator re-derive an alert from its device's signed
//! readings and refuse one that no gateway could have honestly raised ("no alert can be
//! invented").
//!
//! An alert transaction carries only the digest of its evidence, because the evidence holds the
//! readings (health data never goes on the ledger). The evidence travels beside the
//! transaction: the node hands it to its validator with
//! [`crate::node::Ledger::submit_with_evidence`], and transaction gossip forwards it to the other
//! validators over the encrypted p2p links. Each validator keeps it in memory only, in a bounded
//! [`EvidenceCache`], until the alert is finalized.
//!
//! The rule: every alert needs evidence, and the evidence must
//! - hash to the alert's digest;
//! - be device-signed packs (an attestation only for a no-signal instance), each verifying
//!   under the key the finalized state enrolls for the instance's device, in sequence order;
//! - re-derive, from the instance's initial state under its finalized parameters, exactly the
//!   claimed level at the claimed reading time;
//! - be recent: its reading time at most [`READING_AGE_MAX_MS`] before and
//!   [`READING_AHEAD_MAX_MS`] after the block's time.
//!
//! Otherwise the alert is refused at submission, when a block is filled, and when a peer's block
//! is judged (a validator that does not hold an alert's evidence refuses the block: it cannot
//! tell an invented alert from a genuine one). The state machine adds that an instance's alerts
//! rise strictly in (reading time, level), so a replayed evidence raises nothing twice.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lru::LruCache;
use vigil_contracts::{Evidence, ReexecuteError, verify_alert};
use vigil_core::DevicePublicKey;
use vigil_core::senml::SignedPack;

use crate::state::View;
use crate::tx::{Deployment, Hash, Tx, TxBody};

/// Largest encoded evidence accepted: up to [`vigil_contracts::EVIDENCE_PACKS_MAX`] packs, well
/// under a gossip message.
pub const EVIDENCE_BYTES_MAX: usize = 256 * 1024;
/// Evidence held per validator; the oldest is forgotten first (its alert is then refused until
/// the node resubmits it with its evidence).
pub const EVIDENCE_CACHE_MAX: NonZeroUsize = NonZeroUsize::new(100_000).expect("not zero");
/// Oldest reading an alert may rest on, before the block's time: a gateway holding old signed
/// packs cannot raise today's alert from last week's fever.
pub const READING_AGE_MAX_MS: i64 = 24 * 3_600_000;
/// Latest reading an alert may rest on, after the block's time (clock skew of devices).
pub const READING_AHEAD_MAX_MS: i64 = 5 * 60_000;

/// Why evidence was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    #[error("evidence given for a transaction that is not an alert")]
    NotAnAlert,
    #[error("evidence larger than {EVIDENCE_BYTES_MAX} bytes")]
    TooLarge,
    #[error("evidence does not decode: {0}")]
    Malformed(String),
    #[error("the alert's instance parameters cannot be read")]
    Parameters,
    #[error("no evidence for the alert: an alert without its device's signed readings is refused")]
    Missing,
    #[error("the instance's device is not enrolled with a usable key")]
    UnknownDevice,
    #[error("pack {pack} of the evidence is not signed by the instance's enrolled device key")]
    NotSigned { pack: usize },
    #[error(
        "the alert's reading ({reading_ms} ms) is more than 24 h before the block ({block_ms} ms)"
    )]
    Stale { reading_ms: i64, block_ms: i64 },
    #[error(
        "the alert's reading ({reading_ms} ms) is more than 5 min after the block ({block_ms} ms)"
    )]
    Ahead { reading_ms: i64, block_ms: i64 },
    #[error("the evidence does not support the alert: {0}")]
    Refuted(#[from] ReexecuteError),
}

/// The contracts deployment a ledger deployment stands for: its checked parameters bound to
/// the deployment's person and device. Nodes evaluate readings against exactly this
/// deployment, so the evidence they produce names its instance.
pub fn contract_deployment(deployment: &Deployment) -> Option<vigil_contracts::Deployment> {
    Some(vigil_contracts::Deployment {
        person: deployment.person,
        device: Some(deployment.device.clone()),
        nonce: 0,
        params: deployment.contract_params().ok()?,
    })
}

/// Encodes evidence for [`crate::node::Ledger::submit_with_evidence`] and gossip.
pub fn encode(evidence: &Evidence) -> Vec<u8> {
    // Serializing plain data structures to JSON cannot fail.
    serde_json::to_vec(evidence).unwrap_or_default()
}

/// Decodes evidence received from a client or a peer, bounded in size.
pub fn decode(bytes: &[u8]) -> Result<Evidence, EvidenceError> {
    if bytes.len() > EVIDENCE_BYTES_MAX {
        return Err(EvidenceError::TooLarge);
    }
    serde_json::from_slice(bytes).map_err(|e| EvidenceError::Malformed(e.to_string()))
}

/// What an instance's alerts rest on, as the API and the live feed name it: `attested` for a
/// no-signal instance (the only kind whose alerts may be the gateway's attestation: silence
/// cannot be signed), `device-signed` for every other (re-derived from the device's packs).
pub fn alert_basis(instance: Option<&crate::state::InstanceRecord>) -> &'static str {
    let no_signal =
        instance.is_some_and(|i| i.deployment.kind == vigil_contracts::Kind::NoSignal.name());
    if no_signal {
        "attested"
    } else {
        "device-signed"
    }
}

/// The evidence digest an alert transaction claims, if it is an alert.
pub fn claimed_digest(tx: &Tx) -> Option<&Hash> {
    match tx.body() {
        TxBody::Alert { evidence, .. } => Some(evidence),
        _ => None,
    }
}

/// Checks `tx` (an alert) against `evidence` as `view` sees the instance: digest, basis,
/// re-derivation, signatures, and, given the block's time, recency. `prior` is what an earlier
/// check of this validator established: signatures that verified under the enrolled key are
/// not verified again, and an alert already re-derived (the same transaction, hence the same
/// claim and evidence, on an instance whose deployment its id fixes) is not re-derived again. Gives the enrolled key the packs
/// verified under, or `None` when the instance is unknown to this view (its deployment may be
/// pending: the state machine refuses the alert if it is still unknown when applied).
pub fn check(
    view: &View<'_>,
    tx: &Tx,
    evidence: &Evidence,
    prior: Prior,
    block_ms: Option<i64>,
) -> Result<Option<[u8; 32]>, EvidenceError> {
    let started = std::time::Instant::now();
    let checked = check_timed(view, tx, evidence, prior, block_ms);
    CHECKING_NANOS.fetch_add(
        u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    checked
}

/// Time this process spent in [`check`], over every validator it runs: what `vigil bench
/// ledger` reports as the evidence share of validator time. Measurement only; no decision
/// depends on it.
pub fn checking_time() -> std::time::Duration {
    std::time::Duration::from_nanos(CHECKING_NANOS.load(Ordering::Relaxed))
}

static CHECKING_NANOS: AtomicU64 = AtomicU64::new(0);

/// What an earlier check of the same evidence established (see [`check`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prior {
    /// The enrolled key its packs verified under.
    pub signed_by: Option<[u8; 32]>,
    /// The alert transaction it was re-derived for.
    pub rederived_for: Option<crate::tx::TxId>,
}

fn check_timed(
    view: &View<'_>,
    tx: &Tx,
    evidence: &Evidence,
    prior: Prior,
    block_ms: Option<i64>,
) -> Result<Option<[u8; 32]>, EvidenceError> {
    let TxBody::Alert {
        instance,
        level,
        reading_time_ms,
        evidence: digest,
    } = tx.body()
    else {
        return Err(EvidenceError::NotAnAlert);
    };
    let Some(record) = view.instances(instance) else {
        return Ok(None);
    };
    let device = view
        .devices(&record.deployment.device)
        .ok_or(EvidenceError::UnknownDevice)?;
    let same_key = prior.signed_by == Some(device.public_key);
    if !(same_key && prior.rederived_for == Some(tx.id())) {
        let deployment =
            contract_deployment(&record.deployment).ok_or(EvidenceError::Parameters)?;
        verify_alert(&deployment, evidence, *level, *reading_time_ms, digest)?;
    }
    if !evidence.packs().is_empty() && !same_key {
        let key = DevicePublicKey::from_bytes(&device.public_key)
            .map_err(|_| EvidenceError::UnknownDevice)?;
        let packs: Vec<&SignedPack> = evidence.packs().iter().collect();
        if let Some(pack) = SignedPack::first_not_signed_by(&packs, &key) {
            return Err(EvidenceError::NotSigned { pack });
        }
    }
    if let Some(block_ms) = block_ms {
        let reading_ms = *reading_time_ms;
        not_stale(reading_ms, block_ms)?;
        if reading_ms > block_ms.saturating_add(READING_AHEAD_MAX_MS) {
            return Err(EvidenceError::Ahead {
                reading_ms,
                block_ms,
            });
        }
    }
    Ok(Some(device.public_key))
}

/// Refuses a reading more than [`READING_AGE_MAX_MS`] before `block_ms` (a block's time, or
/// at submission the finalized tip's).
pub(crate) fn not_stale(reading_ms: i64, block_ms: i64) -> Result<(), EvidenceError> {
    if reading_ms < block_ms.saturating_sub(READING_AGE_MAX_MS) {
        return Err(EvidenceError::Stale {
            reading_ms,
            block_ms,
        });
    }
    Ok(())
}

/// Evidence held for one alert, and what its admission established (so judging a block checks
/// recency and the enrolled key, and neither verifies the signatures nor re-derives again).
#[derive(Clone)]
pub struct Held {
    pub evidence: Arc<Evidence>,
    pub prior: Prior,
}

/// Evidence held by one validator, by evidence digest, bounded and oldest-first forgotten.
///
/// Lookups `peek` and never refresh an entry: evidence is read while judging a block and is
/// forgotten once its alert is finalized, so the order of arrival is the order to forget in.
pub struct EvidenceCache {
    by_digest: LruCache<Hash, Held>,
}

impl Default for EvidenceCache {
    fn default() -> Self {
        EvidenceCache {
            by_digest: LruCache::new(EVIDENCE_CACHE_MAX),
        }
    }
}

impl EvidenceCache {
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    pub fn insert(&mut self, digest: Hash, held: Held) {
        if !self.by_digest.contains(&digest) {
            self.by_digest.put(digest, held);
        }
    }

    pub fn get(&self, digest: &Hash) -> Option<&Held> {
        self.by_digest.peek(digest)
    }

    /// The evidence held for `tx`, if it is an alert and its evidence is here.
    pub fn for_tx(&self, tx: &Tx) -> Option<&Held> {
        claimed_digest(tx).and_then(|d| self.get(d))
    }

    /// Forget the evidence of finalized alerts: they are decided.
    pub fn forget(&mut self, digests: impl IntoIterator<Item = Hash>) {
        for digest in digests {
            self.by_digest.pop(&digest);
        }
    }

    /// Checks `tx` in a block of time `block_ms`: an alert must have evidence held here that
    /// supports it; any other transaction passes (the state machine judges it).
    pub fn judge(&self, view: &View<'_>, tx: &Tx, block_ms: i64) -> Result<(), EvidenceError> {
        let Some(_) = claimed_digest(tx) else {
            return Ok(());
        };
        let held = self.for_tx(tx).ok_or(EvidenceError::Missing)?;
        check(view, tx, &held.evidence, held.prior, Some(block_ms)).map(|_| ())
    }
}
