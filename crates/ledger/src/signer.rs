//! An identity that signs ledger transactions, several in flight at once: the one signer of the
//! node (its gateway identity, the staff it acts for) and of the statistics service (its
//! verifying nodes, the admin, the doctor of `vigil query`).

use crate::node::{Ledger, SubmitError};
use crate::tx::{Tx, TxBody, TxId};
use commonware_codec::{Encode as _, ReadExt as _};
use commonware_cryptography::Signer as _;
use commonware_cryptography::ed25519::{PrivateKey, PublicKey};
use parking_lot::Mutex;

/// A key the node signs with: its own gateway identity, or a staff member's on whose behalf
/// the API acts after authenticating them.
pub struct Signer {
    key: PrivateKey,
    public: PublicKey,
    /// Held while a nonce is chosen and its transaction submitted, so two submissions never
    /// take the same nonce; holds the last nonce admitted, so that a dropped transaction's
    /// nonce is not handed out again even once nothing of this identity is pending (a copy of
    /// it may still be pending at another validator).
    submitting: Mutex<Option<u64>>,
}

impl Signer {
    pub fn new(key: PrivateKey) -> Self {
        let public = key.public_key();
        Self {
            key,
            public,
            submitting: Mutex::new(None),
        }
    }

    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).expect("operating system random source unavailable");
        // Any 32 bytes are a valid Ed25519 secret key (RFC 8032 §5.1.5 hashes them).
        Self::from_bytes(&seed).expect("32 bytes decode as an Ed25519 private key")
    }

    /// Signs `body` with a nonce above the ledger's (finalized and pending) and above the last
    /// one this signer got admitted, and hands it to `submit`; the nonce counts as handed out
    /// only if `submit` admits it (a refusal leaves no hole in the window).
    fn sign_and_submit<T>(
        &self,
        ledger: &Ledger,
        body: TxBody,
        submit: impl FnOnce(Tx) -> Result<T, SubmitError>,
    ) -> Result<T, SubmitError> {
        let mut last = self.submitting.lock();
        let free = ledger.next_free_nonce(&self.public);
        let nonce = last.map_or(free, |l| free.max(l.saturating_add(1)));
        let tx = Tx::sign(&self.key, &ledger.chain_id(), nonce, body);
        let admitted = submit(tx)?;
        *last = Some(nonce);
        Ok(admitted)
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.key.encode().to_vec()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut buf = bytes::Bytes::copy_from_slice(bytes);
        PrivateKey::read(&mut buf).ok().map(Self::new)
    }

    /// Signs `body` with the next free nonce and submits it. The nonce follows this identity's
    /// transactions pending in the ledger's mempool (`Ledger::next_free_nonce`); nonces need
    /// not be consecutive, so neither a refusal here nor a transaction the mempool later drops
    /// stalls this identity's later transactions.
    pub fn submit(&self, ledger: &Ledger, body: TxBody) -> Result<TxId, SubmitError> {
        self.submit_tx(ledger, body).map(|tx| tx.id())
    }

    /// [`Signer::submit`], returning the transaction itself (to ask the ledger later whether
    /// it is still pending).
    pub fn submit_tx(&self, ledger: &Ledger, body: TxBody) -> Result<Tx, SubmitError> {
        self.sign_and_submit(ledger, body, |tx| {
            ledger.submit(&mut rand::rng(), tx.clone())?;
            Ok(tx)
        })
    }

    /// Like [`Signer::submit`], for an alert with the evidence that re-executes it.
    pub fn submit_alert(
        &self,
        ledger: &Ledger,
        body: TxBody,
        evidence: vigil_contracts::Evidence,
    ) -> Result<TxId, SubmitError> {
        self.submit_alert_tx(ledger, body, evidence)
            .map(|tx| tx.id())
    }

    /// [`Signer::submit_alert`], returning the transaction itself (to follow it until it is
    /// finalized).
    pub fn submit_alert_tx(
        &self,
        ledger: &Ledger,
        body: TxBody,
        evidence: vigil_contracts::Evidence,
    ) -> Result<Tx, SubmitError> {
        self.sign_and_submit(ledger, body, |tx| {
            ledger.submit_with_evidence(&mut rand::rng(), tx.clone(), evidence)?;
            Ok(tx)
        })
    }

    /// Like [`Signer::submit`], but first checks the transaction against the finalized state,
    /// so that a staff action the ledger would refuse (resolving a resolved alert, deploying on
    /// an unknown device) is answered at once with the ledger's reason instead of being
    /// accepted into the mempool and dropped at proposal. Actions that depend on a transaction
    /// not yet finalized are refused too: the API acts on what staff can see, which is final.
    pub fn submit_checked(&self, ledger: &Ledger, body: TxBody) -> Result<TxId, SubmitError> {
        // The probe's nonce is read from the same snapshot as the check: read apart, a block
        // finalized in between made the probe's nonce stale and refused a good transaction
        // ("bad nonce") while registering thousands of people.
        let chain_id = ledger.chain_id();
        let snapshot = ledger.snapshot();
        let view = snapshot.view();
        let probe = Tx::sign(
            &self.key,
            &chain_id,
            view.next_nonce(&self.public),
            body.clone(),
        );
        view.check(&probe).map_err(SubmitError::Rejected)?;
        self.submit(ledger, body)
    }

    /// Like [`Signer::submit_checked`], and also against this identity's transactions still
    /// pending ([`Ledger::submit_after_pending`]): an operator's second acknowledgement of an
    /// alert whose first is not final yet is refused at once instead of being dropped later.
    pub fn submit_after_pending(&self, ledger: &Ledger, body: TxBody) -> Result<TxId, SubmitError> {
        self.submit_after_pending_tx(ledger, body).map(|tx| tx.id())
    }

    /// [`Signer::submit_after_pending`], returning the transaction itself (to follow it until
    /// it is finalized or dropped).
    pub fn submit_after_pending_tx(
        &self,
        ledger: &Ledger,
        body: TxBody,
    ) -> Result<Tx, SubmitError> {
        self.sign_and_submit(ledger, body, |tx| {
            ledger.submit_after_pending(&mut rand::rng(), tx.clone())?;
            Ok(tx)
        })
    }
}
