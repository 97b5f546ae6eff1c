//! The mempool: signature-checked transactions waiting for a block, per signer in nonce order.

use std::collections::{BTreeMap, HashMap};

use commonware_cryptography::ed25519::PublicKey;

use crate::state::View;
use crate::tx::Tx;

/// Most transactions held at once; submissions beyond it are refused (back-pressure).
pub const MEMPOOL_TXS_MAX: usize = 500_000;
/// Proposals in which a transaction may fail to apply before it is dropped. A transaction can
/// fail for a while legitimately (it waits for another signer's transaction, e.g. an alert
/// on an instance whose deployment is in the same batch), but not forever.
pub const MEMPOOL_STRIKES_MAX: u8 = 16;
/// Passes over the signers when filling a block, so that a transaction that depends on another
/// signer's transaction can land in the same block.
const FILL_PASSES_MAX: usize = 3;

/// Why a transaction was not admitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdmitError {
    #[error("mempool full ({MEMPOOL_TXS_MAX} transactions)")]
    Full,
    #[error("transaction already pending")]
    Duplicate,
    #[error("another transaction with the same signer and nonce is pending")]
    NonceTaken,
    #[error("nonce {got} already used (next is {next})")]
    Stale { next: u64, got: u64 },
}

struct Entry {
    tx: Tx,
    strikes: u8,
}

#[derive(Default)]
pub struct Mempool {
    by_signer: BTreeMap<PublicKey, BTreeMap<u64, Entry>>,
    len: usize,
}

/// What filling a block produced.
pub struct Fill {
    pub txs: Vec<Tx>,
    pub bytes: usize,
}

impl Mempool {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Admit a transaction whose signature the caller has checked. `next` is the signer's next
    /// nonce in the finalized state.
    pub fn admit(&mut self, tx: Tx, next: u64) -> Result<(), AdmitError> {
        if tx.nonce() < next {
            return Err(AdmitError::Stale {
                next,
                got: tx.nonce(),
            });
        }
        if self.len >= MEMPOOL_TXS_MAX {
            return Err(AdmitError::Full);
        }
        let queue = self.by_signer.entry(tx.signer().clone()).or_default();
        if let Some(existing) = queue.get(&tx.nonce()) {
            return Err(if existing.tx == tx {
                AdmitError::Duplicate
            } else {
                AdmitError::NonceTaken
            });
        }
        queue.insert(tx.nonce(), Entry { tx, strikes: 0 });
        self.len += 1;
        Ok(())
    }

    /// The first nonce from `next` (the signer's next in the finalized state) that no pending
    /// transaction of the signer holds: where the signer's next transaction goes. A dropped
    /// transaction leaves its nonce free again, so a signer never waits behind a gap.
    pub fn next_free_nonce(&self, signer: &PublicKey, next: u64) -> u64 {
        let mut nonce = next;
        if let Some(queue) = self.by_signer.get(signer) {
            while queue.contains_key(&nonce) {
                nonce += 1;
            }
        }
        nonce
    }

    /// Whether this exact transaction (same bytes, hence same signature) is pending: its
    /// signature was checked on admission and need not be checked again.
    pub fn contains_exact(&self, tx: &Tx) -> bool {
        self.by_signer
            .get(tx.signer())
            .and_then(|q| q.get(&tx.nonce()))
            .is_some_and(|e| e.tx == *tx)
    }

    /// Fill a block on `view`: per signer, consecutive nonces from the view's next nonce, each
    /// applied to the view. Stops at `txs_max` transactions or `bytes_max` bytes. A transaction
    /// that `refuted` condemns (its own evidence contradicts it) is dropped with the signer's
    /// later ones, as if it had failed to apply too often.
    pub fn fill(
        &mut self,
        view: &mut View<'_>,
        txs_max: usize,
        bytes_max: usize,
        refuted: impl Fn(&View<'_>, &Tx) -> bool,
    ) -> Fill {
        let mut fill = Fill {
            txs: Vec::new(),
            bytes: 0,
        };
        let mut failed: Vec<(PublicKey, u64)> = Vec::new();
        let mut condemned: Vec<(PublicKey, u64)> = Vec::new();
        for _ in 0..FILL_PASSES_MAX {
            let before = fill.txs.len();
            failed.clear();
            'signers: for (signer, queue) in &self.by_signer {
                let mut nonce = view.next_nonce(signer);
                while let Some(entry) = queue.get(&nonce) {
                    if fill.txs.len() >= txs_max || fill.bytes + entry.tx.bytes().len() > bytes_max
                    {
                        break 'signers;
                    }
                    if refuted(view, &entry.tx) {
                        condemned.push((signer.clone(), nonce));
                        break;
                    }
                    match view.apply(&entry.tx) {
                        Ok(()) => {
                            fill.bytes += entry.tx.bytes().len();
                            fill.txs.push(entry.tx.clone());
                            nonce += 1;
                        }
                        Err(_) => {
                            failed.push((signer.clone(), nonce));
                            break;
                        }
                    }
                }
            }
            if fill.txs.len() == before || fill.txs.len() >= txs_max {
                break;
            }
        }
        for (signer, nonce) in failed {
            self.strike(&signer, nonce);
        }
        for (signer, nonce) in condemned {
            self.drop_from(&signer, nonce);
        }
        fill
    }

    fn strike(&mut self, signer: &PublicKey, nonce: u64) {
        let Some(queue) = self.by_signer.get_mut(signer) else {
            return;
        };
        let Some(entry) = queue.get_mut(&nonce) else {
            return;
        };
        entry.strikes += 1;
        if entry.strikes >= MEMPOOL_STRIKES_MAX {
            tracing::warn!(%signer, nonce, "dropping a transaction that keeps failing");
            self.drop_from(signer, nonce);
        }
    }

    /// Drop the signer's transaction at `nonce` and every later one: they cannot apply without it.
    fn drop_from(&mut self, signer: &PublicKey, nonce: u64) {
        let Some(queue) = self.by_signer.get_mut(signer) else {
            return;
        };
        let dropped = queue.split_off(&nonce);
        self.len -= dropped.len();
        if queue.is_empty() {
            self.by_signer.remove(signer);
        }
    }

    /// Remove what finalized state has made stale: every nonce below the signer's next one.
    pub fn prune<'a>(&mut self, signers: impl IntoIterator<Item = (&'a PublicKey, u64)>) {
        for (signer, next) in signers {
            let Some(queue) = self.by_signer.get_mut(signer) else {
                continue;
            };
            let keep = queue.split_off(&next);
            self.len -= queue.len();
            *queue = keep;
            if queue.is_empty() {
                self.by_signer.remove(signer);
            }
        }
    }

    /// Pending transactions per signer, for diagnostics.
    pub fn per_signer(&self) -> HashMap<PublicKey, usize> {
        self.by_signer
            .iter()
            .map(|(k, q)| (k.clone(), q.len()))
            .collect()
    }
}
