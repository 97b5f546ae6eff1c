//! The mempool: signature-checked transactions waiting for a block, per signer in nonce order.
//! Nonces need not be consecutive (see [`crate::state::NonceWindow`]): a transaction that
//! fails is dropped alone, and [`Mempool::dropped`] says why.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use commonware_cryptography::ed25519::PublicKey;

use crate::state::{NonceWindow, Rejection, View};
use crate::tx::{Tx, TxId};

/// Most transactions held at once; submissions beyond it are refused (back-pressure).
pub const MEMPOOL_TXS_MAX: usize = 500_000;
/// Proposals in which a transaction may fail to apply before it is dropped. A transaction can
/// fail for a while legitimately (it waits for another signer's transaction, e.g. an alert
/// on an instance whose deployment is in the same batch), but not forever.
pub const MEMPOOL_STRIKES_MAX: u8 = 16;
/// Passes over the signers when filling a block, so that a transaction that depends on another
/// signer's transaction can land in the same block.
const FILL_PASSES_MAX: usize = 3;

/// Dropped transactions remembered, so that whoever submitted one can learn why it went; the
/// oldest is forgotten first.
pub const DROPPED_REMEMBERED_MAX: usize = 4096;

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
    #[error("{0}")]
    Stale(Rejection),
}

/// Why the mempool gave up on a transaction it had admitted. Only that transaction goes: the
/// signer's other transactions stay pending (nonces do not chain, see
/// [`crate::state::NonceWindow`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DropReason {
    /// It failed to apply in [`MEMPOOL_STRIKES_MAX`] proposals; the last rejection.
    #[error("kept failing to apply: {0}")]
    Failed(Rejection),
    /// The evidence held for it contradicts it.
    #[error("refuted by its evidence: {0}")]
    Refuted(String),
    /// Finalized state made its nonce unusable (another transaction of the signer took it, or
    /// the signer's window moved past it).
    #[error("{0}")]
    Nonce(Rejection),
}

/// A transaction the mempool dropped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub id: TxId,
    pub signer: PublicKey,
    pub nonce: u64,
    pub reason: DropReason,
}

struct Entry {
    tx: Tx,
    strikes: u8,
    last_rejection: Option<Rejection>,
}

#[derive(Default)]
pub struct Mempool {
    by_signer: BTreeMap<PublicKey, BTreeMap<u64, Entry>>,
    len: usize,
    dropped: HashMap<TxId, Dropped>,
    dropped_order: VecDeque<TxId>,
}

/// What filling a block produced.
pub struct Fill {
    pub txs: Vec<Tx>,
    pub bytes: usize,
}

/// What happened to one pending transaction in one pass of [`Mempool::fill`].
enum Tried {
    Included,
    Skipped,
    Failed(Rejection),
    Condemned(DropReason),
    Full,
}

impl Mempool {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Admit a transaction whose signature the caller has checked. `window` is the signer's
    /// nonce window in the finalized state.
    pub fn admit(&mut self, tx: Tx, window: &NonceWindow) -> Result<(), AdmitError> {
        window.check(tx.nonce()).map_err(AdmitError::Stale)?;
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
        queue.insert(
            tx.nonce(),
            Entry {
                tx,
                strikes: 0,
                last_rejection: None,
            },
        );
        self.len += 1;
        Ok(())
    }

    /// The nonce the signer's next transaction goes to: above the finalized state's highest
    /// (`next`) and above every one pending here, so never a pending one's nor, while a later
    /// one is pending, a dropped one's ([`crate::signer::Signer`] also remembers the last nonce
    /// it used, so it never reuses a dropped one at all).
    pub fn next_free_nonce(&self, signer: &PublicKey, next: u64) -> u64 {
        self.by_signer
            .get(signer)
            .and_then(|q| q.last_key_value())
            .map_or(next, |(nonce, _)| next.max(nonce.saturating_add(1)))
    }

    /// Whether this exact transaction (same bytes, hence same signature) is pending: its
    /// signature was checked on admission and need not be checked again.
    pub fn contains_exact(&self, tx: &Tx) -> bool {
        self.by_signer
            .get(tx.signer())
            .and_then(|q| q.get(&tx.nonce()))
            .is_some_and(|e| e.tx == *tx)
    }

    /// The signer's pending transactions, in nonce order.
    pub fn pending_of<'a>(&'a self, signer: &PublicKey) -> impl Iterator<Item = &'a Tx> + 'a {
        self.by_signer
            .get(signer)
            .into_iter()
            .flat_map(|q| q.values().map(|e| &e.tx))
    }

    /// Why this transaction was dropped, if this mempool dropped it (among the last
    /// [`DROPPED_REMEMBERED_MAX`]).
    pub fn dropped(&self, id: &TxId) -> Option<&Dropped> {
        self.dropped.get(id)
    }

    /// Fill a block on `view`: per signer, pending transactions in nonce order (holes allowed),
    /// each applied to the view. Stops at `txs_max` transactions or `bytes_max` bytes. A
    /// transaction that fails to apply is struck and skipped; the signer's later ones are
    /// still tried. A transaction that `refuted` condemns (its own evidence contradicts it,
    /// with the reason) is dropped alone.
    pub fn fill(
        &mut self,
        view: &mut View<'_>,
        txs_max: usize,
        bytes_max: usize,
        refuted: impl Fn(&View<'_>, &Tx) -> Option<String>,
    ) -> Fill {
        let mut fill = Fill {
            txs: Vec::new(),
            bytes: 0,
        };
        let mut failed: Vec<(PublicKey, u64, Rejection)> = Vec::new();
        let mut condemned: Vec<(PublicKey, u64, DropReason)> = Vec::new();
        for _ in 0..FILL_PASSES_MAX {
            let before = fill.txs.len();
            failed.clear();
            'signers: for (signer, queue) in &self.by_signer {
                // Below the floor everything is expired, and finalization prunes it: start at
                // the floor, so a pass costs at most the window per signer beyond what it adds.
                let floor = view.nonce_window(signer).floor();
                for (nonce, entry) in queue.range(floor..) {
                    match Self::try_one(view, &mut fill, entry, txs_max, bytes_max, &refuted) {
                        Tried::Included | Tried::Skipped => {}
                        Tried::Failed(rejection) => {
                            failed.push((signer.clone(), *nonce, rejection));
                        }
                        Tried::Condemned(reason) => {
                            if !condemned.iter().any(|(s, n, _)| s == signer && n == nonce) {
                                condemned.push((signer.clone(), *nonce, reason));
                            }
                        }
                        Tried::Full => break 'signers,
                    }
                }
            }
            if fill.txs.len() == before || fill.txs.len() >= txs_max {
                break;
            }
        }
        for (signer, nonce, rejection) in failed {
            self.strike(&signer, nonce, rejection);
        }
        for (signer, nonce, reason) in condemned {
            self.drop_one(&signer, nonce, reason);
        }
        fill
    }

    fn try_one(
        view: &mut View<'_>,
        fill: &mut Fill,
        entry: &Entry,
        txs_max: usize,
        bytes_max: usize,
        refuted: &impl Fn(&View<'_>, &Tx) -> Option<String>,
    ) -> Tried {
        let tx = &entry.tx;
        match view.check_nonce(tx.signer(), tx.nonce()) {
            Ok(()) => {}
            // Included by an earlier pass, or in an unfinalized ancestor of this block.
            Err(Rejection::NonceUsed { .. }) => return Tried::Skipped,
            Err(rejection) => return Tried::Condemned(DropReason::Nonce(rejection)),
        }
        if fill.txs.len() >= txs_max || fill.bytes + tx.bytes().len() > bytes_max {
            return Tried::Full;
        }
        if let Some(reason) = refuted(view, tx) {
            return Tried::Condemned(DropReason::Refuted(reason));
        }
        match view.apply(tx) {
            Ok(()) => {
                fill.bytes += tx.bytes().len();
                fill.txs.push(tx.clone());
                Tried::Included
            }
            Err(rejection) => Tried::Failed(rejection),
        }
    }

    fn strike(&mut self, signer: &PublicKey, nonce: u64, rejection: Rejection) {
        let Some(entry) = self
            .by_signer
            .get_mut(signer)
            .and_then(|q| q.get_mut(&nonce))
        else {
            return;
        };
        entry.strikes += 1;
        entry.last_rejection = Some(rejection);
        if entry.strikes >= MEMPOOL_STRIKES_MAX {
            let reason = entry.last_rejection.clone();
            if let Some(rejection) = reason {
                tracing::warn!(%signer, nonce, %rejection, "dropping a transaction that keeps failing");
                self.drop_one(signer, nonce, DropReason::Failed(rejection));
            }
        }
    }

    /// Drop the signer's transaction at `nonce`, alone, and remember why.
    fn drop_one(&mut self, signer: &PublicKey, nonce: u64, reason: DropReason) {
        let Some(queue) = self.by_signer.get_mut(signer) else {
            return;
        };
        let Some(entry) = queue.remove(&nonce) else {
            return;
        };
        self.len -= 1;
        if queue.is_empty() {
            self.by_signer.remove(signer);
        }
        self.remember(Dropped {
            id: entry.tx.id(),
            signer: signer.clone(),
            nonce,
            reason,
        });
    }

    fn remember(&mut self, dropped: Dropped) {
        if self.dropped_order.len() >= DROPPED_REMEMBERED_MAX
            && let Some(oldest) = self.dropped_order.pop_front()
        {
            self.dropped.remove(&oldest);
        }
        self.dropped_order.push_back(dropped.id);
        self.dropped.insert(dropped.id, dropped);
    }

    /// Remove what the finalized state `view` has made stale, for each signer of the finalized
    /// transactions `finalized`: those transactions themselves, and any other whose nonce is now
    /// used or expired (recorded as dropped, with the reason).
    pub fn prune(&mut self, view: &View<'_>, finalized: &[Tx]) {
        let included: HashSet<TxId> = finalized.iter().map(Tx::id).collect();
        let signers: BTreeSet<&PublicKey> = finalized.iter().map(Tx::signer).collect();
        for signer in signers {
            let window = view.nonce_window(signer);
            let Some(queue) = self.by_signer.get_mut(signer) else {
                continue;
            };
            let stale: Vec<(u64, Rejection)> = queue
                .range(..window.next())
                .filter_map(|(nonce, _)| window.check(*nonce).err().map(|r| (*nonce, r)))
                .collect();
            for (nonce, rejection) in stale {
                let Some(entry) = queue.remove(&nonce) else {
                    continue;
                };
                self.len -= 1;
                let id = entry.tx.id();
                if !included.contains(&id) {
                    self.dropped_order.push_back(id);
                    self.dropped.insert(
                        id,
                        Dropped {
                            id,
                            signer: signer.clone(),
                            nonce,
                            reason: DropReason::Nonce(rejection),
                        },
                    );
                }
            }
            if queue.is_empty() {
                self.by_signer.remove(signer);
            }
        }
        while self.dropped_order.len() > DROPPED_REMEMBERED_MAX {
            if let Some(oldest) = self.dropped_order.pop_front() {
                self.dropped.remove(&oldest);
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

#[cfg(test)]
mod tests {
    use commonware_cryptography::{Signer as _, ed25519::PrivateKey};

    use super::*;
    use crate::state::{State, execute_block};
    use crate::tx::{Role, TxBody};

    const CHAIN: [u8; 32] = [7; 32];

    fn grant(key: &PrivateKey, nonce: u64, seed: u64) -> Tx {
        Tx::sign(
            key,
            &CHAIN,
            nonce,
            TxBody::GrantRole {
                identity: PrivateKey::from_seed(seed).public_key(),
                role: Role::Doctor,
            },
        )
    }

    /// Revoking a role nobody granted: fails every time.
    fn failing(key: &PrivateKey, nonce: u64) -> Tx {
        Tx::sign(
            key,
            &CHAIN,
            nonce,
            TxBody::RevokeRole {
                identity: PrivateKey::from_seed(99).public_key(),
                role: Role::Doctor,
            },
        )
    }

    fn admit_all(pool: &mut Mempool, state: &State, txs: &[Tx]) {
        for tx in txs {
            let window = state.view().nonce_window(tx.signer());
            pool.admit(tx.clone(), &window).expect("admitted");
        }
    }

    fn propose(pool: &mut Mempool, state: &State) -> Vec<Tx> {
        let mut view = crate::state::View::new(state, &[], state.height() + 1);
        pool.fill(&mut view, 100, 1 << 20, |_, _| None).txs
    }

    /// Regression (issue 14): a failing transaction took every later one of its signer with it.
    #[test]
    fn a_failing_transaction_is_dropped_alone_and_says_why() {
        let admin = PrivateKey::from_seed(1);
        let state = State::genesis(CHAIN, &[(admin.public_key(), Role::Admin)]);
        let mut pool = Mempool::default();
        let (first, bad, after) = (
            grant(&admin, 0, 10),
            failing(&admin, 1),
            grant(&admin, 2, 11),
        );
        admit_all(
            &mut pool,
            &state,
            &[first.clone(), bad.clone(), after.clone()],
        );
        for _ in 0..MEMPOOL_STRIKES_MAX {
            // Never finalized: every proposal sees the same state and fills the same block.
            assert_eq!(
                propose(&mut pool, &state),
                vec![first.clone(), after.clone()]
            );
        }
        assert!(!pool.contains_exact(&bad));
        assert!(pool.contains_exact(&first) && pool.contains_exact(&after));
        assert_eq!(pool.len(), 2);
        let dropped = pool.dropped(&bad.id()).expect("recorded");
        assert_eq!(
            dropped.reason,
            DropReason::Failed(Rejection::RoleNotHeld(Role::Doctor))
        );
        assert_eq!(pool.dropped(&after.id()), None);
        // The signer's next transaction goes above the hole, never into it.
        assert_eq!(pool.next_free_nonce(&admin.public_key(), 0), 3);
    }

    /// Finalization removes what it included silently, and records what it made stale: another
    /// transaction at a used nonce, or one the window moved past.
    #[test]
    fn finalization_prunes_included_and_records_superseded_ones() {
        let admin = PrivateKey::from_seed(1);
        let mut state = State::genesis(CHAIN, &[(admin.public_key(), Role::Admin)]);
        let mut pool = Mempool::default();
        let (mine, later) = (grant(&admin, 0, 10), grant(&admin, 1, 11));
        admit_all(&mut pool, &state, &[mine.clone(), later.clone()]);
        // Another validator's block used nonce 0 for another transaction.
        let other = grant(&admin, 0, 12);
        let layer =
            execute_block(&state, &[], 1, 0, std::slice::from_ref(&other)).expect("applies");
        state.merge(&layer);
        pool.prune(&state.view(), std::slice::from_ref(&other));
        assert_eq!(
            pool.dropped(&mine.id()).map(|d| d.reason.clone()),
            Some(DropReason::Nonce(Rejection::NonceUsed { nonce: 0 }))
        );
        assert!(pool.contains_exact(&later));
        let included = propose(&mut pool, &state);
        assert_eq!(included, vec![later.clone()]);
        let layer = execute_block(&state, &[], 2, 0, &included).expect("applies");
        state.merge(&layer);
        pool.prune(&state.view(), &included);
        assert!(pool.is_empty());
        assert_eq!(pool.dropped(&later.id()), None);
        // A replay of a finalized transaction is refused at admission.
        assert_eq!(
            pool.admit(later.clone(), &state.view().nonce_window(later.signer())),
            Err(AdmitError::Stale(Rejection::NonceUsed { nonce: 1 }))
        );
    }

    /// A transaction refuted by its evidence goes alone too.
    #[test]
    fn a_refuted_transaction_is_dropped_alone() {
        let admin = PrivateKey::from_seed(1);
        let state = State::genesis(CHAIN, &[(admin.public_key(), Role::Admin)]);
        let mut pool = Mempool::default();
        let (refuted, after) = (grant(&admin, 0, 10), grant(&admin, 1, 11));
        admit_all(&mut pool, &state, &[refuted.clone(), after.clone()]);
        let id = refuted.id();
        let mut view = crate::state::View::new(&state, &[], 1);
        let fill = pool.fill(&mut view, 100, 1 << 20, |_, tx| {
            (tx.id() == id).then(|| "made up".to_owned())
        });
        assert_eq!(fill.txs, vec![after.clone()]);
        assert_eq!(
            pool.dropped(&id).map(|d| d.reason.clone()),
            Some(DropReason::Refuted("made up".to_owned()))
        );
        assert!(pool.contains_exact(&after));
    }
}
