//! Reads of the finalized state, each checked against the reader's roles, and inclusion
//! proofs that a light client checks knowing only the validator set.

use commonware_consensus::simplex::{scheme::ed25519::Scheme, types::Finalization};
use commonware_cryptography::{ed25519::PublicKey, sha256::Digest};
use commonware_parallel::Sequential;
use rand_core::CryptoRng;
use vigil_core::PersonId;

use crate::block::{Header, TxProof};
use crate::state::{AccessRecord, AlertRecord, AlertStatus, AnchorRecord, InstanceRecord, State};
use crate::tx::{AlertId, InstanceId, Role, TxId};

/// Most records one read returns.
pub const READ_RESULTS_MAX: usize = 1000;
/// Most headers between a transaction's block and the finalized block that certifies it.
pub const PROOF_HEADERS_MAX: usize = 64;

/// A question about the finalized state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    Alert(AlertId),
    /// Alerts with this status (oldest first by id order).
    AlertsByStatus(AlertStatus),
    AlertsByPerson(PersonId),
    /// Alerts whose reading time lies in `[from_ms, to_ms)`.
    AlertsByTime {
        from_ms: i64,
        to_ms: i64,
    },
    Instance(InstanceId),
    InstancesByPerson(PersonId),
    /// EHR anchors from sequence number `from`.
    Anchors {
        from: u64,
    },
    /// EHR access log from sequence number `from`.
    Accesses {
        from: u64,
    },
}

impl Query {
    /// Who may ask: the read side of the permission table.
    pub const fn allowed_roles(&self) -> &'static [Role] {
        use Role::*;
        match self {
            Query::Alert(_)
            | Query::AlertsByStatus(_)
            | Query::AlertsByPerson(_)
            | Query::AlertsByTime { .. } => &[CdcpOperator, Auditor, Admin],
            Query::Instance(_) | Query::InstancesByPerson(_) => {
                &[CdcpOperator, Gateway, Auditor, Admin]
            }
            Query::Anchors { .. } => &[Auditor, Gateway, CdcpOperator, Admin],
            Query::Accesses { .. } => &[Auditor, Admin],
        }
    }
}

/// What a read returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Alerts(Vec<(AlertId, AlertRecord)>),
    Instances(Vec<(InstanceId, InstanceRecord)>),
    Anchors(Vec<(u64, AnchorRecord)>),
    Accesses(Vec<(u64, AccessRecord)>),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("reader may not run this query: needs one of {0:?}")]
    Forbidden(&'static [Role]),
}

/// Answer `query` for `reader` from the finalized `state`, at most [`READ_RESULTS_MAX`] records.
pub fn read(state: &State, reader: &PublicKey, query: &Query) -> Result<Answer, ReadError> {
    let roles = state.view().role_set(reader);
    let needed = query.allowed_roles();
    if !needed.iter().any(|r| roles.contains(*r)) {
        return Err(ReadError::Forbidden(needed));
    }
    let alerts = |found: &mut dyn Iterator<Item = (&AlertId, &AlertRecord)>| {
        Answer::Alerts(
            found
                .take(READ_RESULTS_MAX)
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
        )
    };
    Ok(match query {
        Query::Alert(id) => alerts(&mut state.alert(id).map(|a| (id, a)).into_iter()),
        Query::AlertsByStatus(status) => alerts(&mut state.alerts_with_status(*status)),
        Query::AlertsByPerson(person) => alerts(&mut state.alerts_of(person)),
        // Reading times are not indexed: the scan stops at the first READ_RESULTS_MAX matches.
        Query::AlertsByTime { from_ms, to_ms } => alerts(
            &mut state
                .tables()
                .alerts
                .iter()
                .filter(|(_, a)| (*from_ms..*to_ms).contains(&a.reading_time_ms)),
        ),
        Query::Instance(id) => Answer::Instances(
            state
                .instance(id)
                .map(|i| vec![(*id, i.clone())])
                .unwrap_or_default(),
        ),
        Query::InstancesByPerson(person) => Answer::Instances(
            state
                .instances_of(person)
                .take(READ_RESULTS_MAX)
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
        ),
        Query::Anchors { from } => Answer::Anchors(
            state
                .tables()
                .anchors
                .range(*from..)
                .take(READ_RESULTS_MAX)
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
        ),
        Query::Accesses { from } => Answer::Accesses(
            state
                .accesses_from(*from)
                .take(READ_RESULTS_MAX)
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
        ),
    })
}

/// Proof that a transaction is in a finalized block: a Merkle path to the block's header,
/// the headers linking it to a block with its own finalization certificate, and that
/// certificate (2f+1 Ed25519 signatures of the validators).
#[derive(Clone, Debug)]
pub struct InclusionProof {
    pub tx: TxId,
    pub path: TxProof,
    /// The transaction's block header first, then each child up to the certified block.
    pub headers: Vec<Header>,
    pub finalization: Finalization<Scheme, Digest>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    #[error("no headers")]
    Empty,
    #[error("more than {PROOF_HEADERS_MAX} headers")]
    TooLong,
    #[error("the Merkle path does not lead to the block's transaction root")]
    Path,
    #[error("header {0} does not link to its parent")]
    Link(usize),
    #[error("the certificate is for another block")]
    WrongBlock,
    #[error("the certificate's signatures do not verify against the validator set")]
    Certificate,
}

impl InclusionProof {
    /// Check the proof with a verifier of the validator set
    /// ([`crate::node::Genesis::certificate_verifier`]). Returns the block height.
    pub fn verify<R: CryptoRng>(
        &self,
        rng: &mut R,
        validators: &Scheme,
    ) -> Result<u64, ProofError> {
        let first = self.headers.first().ok_or(ProofError::Empty)?;
        if self.headers.len() > PROOF_HEADERS_MAX {
            return Err(ProofError::TooLong);
        }
        if !self.path.verify(&self.tx, first.tx_count, &first.tx_root) {
            return Err(ProofError::Path);
        }
        for (i, pair) in self.headers.windows(2).enumerate() {
            if pair[1].parent != pair[0].digest() || pair[1].height != pair[0].height + 1 {
                return Err(ProofError::Link(i + 1));
            }
        }
        let last = self.headers.last().ok_or(ProofError::Empty)?;
        if self.finalization.proposal.payload != last.digest() {
            return Err(ProofError::WrongBlock);
        }
        if !self.finalization.verify(rng, validators, &Sequential) {
            return Err(ProofError::Certificate);
        }
        Ok(first.height)
    }
}

impl crate::node::Ledger {
    /// Prove that transaction `tx` is in the finalized block at `height`.
    pub async fn prove(&self, tx: TxId, height: u64) -> Option<InclusionProof> {
        let block = self.block(height).await?;
        let index = block.txs().iter().position(|t| t.id() == tx)?;
        let path = block.prove(index)?;
        let mut headers = vec![block.header().clone()];
        let mut h = height;
        loop {
            if let Some(finalization) = self.finalization(h).await {
                return Some(InclusionProof {
                    tx,
                    path,
                    headers,
                    finalization,
                });
            }
            if headers.len() >= PROOF_HEADERS_MAX {
                return None;
            }
            h += 1;
            headers.push(self.block(h).await?.header().clone());
        }
    }
}
