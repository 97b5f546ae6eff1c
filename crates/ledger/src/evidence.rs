//! Alert evidence: what lets a validator re-execute an alert's contract step and refuse an
//! alert that its own evidence does not support ("no alert can be invented").
//!
//! An alert transaction carries only the digest of its evidence, because the evidence holds the
//! reading that raised it (health data never goes on the ledger). The evidence itself travels
//! beside the transaction: the node hands it to its validator with
//! [`crate::node::Ledger::submit_with_evidence`], and transaction gossip forwards it to the other
//! validators over the encrypted p2p links. Each validator keeps it in memory only, in a bounded
//! [`EvidenceCache`], until the alert is finalized.
//!
//! The rule is: an alert whose evidence a validator holds must re-execute to the claimed level
//! under the instance's finalized parameters, or the validator refuses it — at submission, when
//! filling a block, and when judging a peer's block. An alert whose evidence a validator does
//! not hold is judged on the state machine's rules alone. Because the digest binds the evidence,
//! every validator that holds evidence for an alert holds the same evidence and reaches the same
//! verdict; a validator without it never rejects a block that one with it accepts.

use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;
use vigil_contracts::{Evidence, ReexecuteError, verify_alert};

use crate::state::View;
use crate::tx::{Deployment, Hash, Tx, TxBody};

/// Largest encoded evidence accepted (a contract step's state and one input; a heart-rhythm
/// window of RR intervals is the largest, well below this).
pub const EVIDENCE_BYTES_MAX: usize = 64 * 1024;
/// Evidence held per validator; the oldest is forgotten first (its alert is then judged on the
/// state machine's rules alone, never wrongly rejected).
pub const EVIDENCE_CACHE_MAX: NonZeroUsize = NonZeroUsize::new(100_000).expect("not zero");

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

/// The evidence digest an alert transaction claims, if it is an alert.
pub fn claimed_digest(tx: &Tx) -> Option<&Hash> {
    match tx.body() {
        TxBody::Alert { evidence, .. } => Some(evidence),
        _ => None,
    }
}

/// Re-executes `tx` (an alert) from `evidence` against the instance as `view` sees it.
/// `Ok(false)` means it cannot be judged here (the instance is not known to this view); the
/// state machine then decides on its own rules.
pub fn check(view: &View<'_>, tx: &Tx, evidence: &Evidence) -> Result<bool, EvidenceError> {
    let TxBody::Alert {
        instance,
        level,
        evidence: digest,
        ..
    } = tx.body()
    else {
        return Err(EvidenceError::NotAnAlert);
    };
    let Some(record) = view.instances(instance) else {
        return Ok(false);
    };
    let deployment = contract_deployment(&record.deployment).ok_or(EvidenceError::Parameters)?;
    verify_alert(&deployment, evidence, *level, digest)?;
    Ok(true)
}

/// Evidence held by one validator, by evidence digest, bounded and oldest-first forgotten.
///
/// Lookups `peek` and never refresh an entry: evidence is read while judging a block and is
/// forgotten once its alert is finalized, so the order of arrival is the order to forget in.
pub struct EvidenceCache {
    by_digest: LruCache<Hash, Arc<Evidence>>,
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

    pub fn insert(&mut self, digest: Hash, evidence: Arc<Evidence>) {
        if !self.by_digest.contains(&digest) {
            self.by_digest.put(digest, evidence);
        }
    }

    pub fn get(&self, digest: &Hash) -> Option<&Arc<Evidence>> {
        self.by_digest.peek(digest)
    }

    /// The evidence held for `tx`, if it is an alert and its evidence is here.
    pub fn for_tx(&self, tx: &Tx) -> Option<&Arc<Evidence>> {
        claimed_digest(tx).and_then(|d| self.get(d))
    }

    /// Forget the evidence of finalized alerts: they are decided.
    pub fn forget(&mut self, digests: impl IntoIterator<Item = Hash>) {
        for digest in digests {
            self.by_digest.pop(&digest);
        }
    }

    /// Checks `tx` against the evidence held for it, if any: `Err` only when held evidence
    /// refutes the alert.
    pub fn judge(&self, view: &View<'_>, tx: &Tx) -> Result<(), EvidenceError> {
        match self.for_tx(tx) {
            Some(evidence) => check(view, tx, evidence).map(|_| ()),
            None => Ok(()),
        }
    }
}
