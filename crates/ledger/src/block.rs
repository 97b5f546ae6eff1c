//! Blocks, their headers, and Merkle inclusion proofs of transactions.
//!
//! A block's digest is the SHA-256 of its header, and the header commits to the transactions
//! through `tx_root` (a binary Merkle tree over transaction ids) and to the state through
//! `state_root` (see [`crate::state`]). Consensus certifies block digests, so a finalization
//! certificate for a block certifies every transaction in it and the state after it.

use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error as CodecError, Read, ReadExt, Write};
use commonware_consensus::{Heightable, types::Height};
use commonware_cryptography::{Digestible, sha256::Digest};

use vigil_core::merkle::{Hashing, Tree};

use crate::tx::{Hash, Tx, TxId};

/// Most transactions in one block.
pub const BLOCK_TXS_MAX: usize = 20_000;
/// Most bytes in one encoded block (also the p2p message bound for block gossip).
pub const BLOCK_BYTES_MAX: usize = 8 * 1024 * 1024;

/// The part of a block that consensus signs (through its digest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub height: u64,
    pub parent: Digest,
    /// Proposer's clock, never earlier than the parent's.
    pub timestamp_ms: u64,
    pub tx_count: u32,
    pub tx_root: Hash,
    /// State commitment after this block.
    pub state_root: Hash,
}

impl Header {
    pub const ENCODED_LEN: usize = 8 + 32 + 8 + 4 + 32 + 32;

    pub fn digest(&self) -> Digest {
        let mut buf = Vec::with_capacity(Self::ENCODED_LEN);
        self.write(&mut buf);
        Digest(vigil_core::digest("vigil/ledger/header/v1", &[&buf]))
    }
}

impl Write for Header {
    fn write(&self, buf: &mut impl BufMut) {
        self.height.write(buf);
        self.parent.write(buf);
        self.timestamp_ms.write(buf);
        self.tx_count.write(buf);
        buf.put_slice(&self.tx_root);
        buf.put_slice(&self.state_root);
    }
}

impl EncodeSize for Header {
    fn encode_size(&self) -> usize {
        Self::ENCODED_LEN
    }
}

impl Read for Header {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Header {
            height: u64::read(buf)?,
            parent: Digest::read(buf)?,
            timestamp_ms: u64::read(buf)?,
            tx_count: u32::read(buf)?,
            tx_root: <[u8; 32]>::read(buf)?,
            state_root: <[u8; 32]>::read(buf)?,
        })
    }
}

/// A block: a header and its transactions.
#[derive(Clone, Debug)]
pub struct Block {
    header: Header,
    txs: Vec<Tx>,
    digest: Digest,
}

impl PartialEq for Block {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest && self.txs == other.txs
    }
}
impl Eq for Block {}

impl Block {
    /// Assemble a block; `tx_count` and `tx_root` are computed here.
    pub fn new(
        height: u64,
        parent: Digest,
        timestamp_ms: u64,
        txs: Vec<Tx>,
        state_root: Hash,
    ) -> Block {
        let header = Header {
            height,
            parent,
            timestamp_ms,
            tx_count: txs.len() as u32,
            tx_root: tx_root(&txs),
            state_root,
        };
        Block::from_parts(header, txs)
    }

    /// The header's time as the state machine reads it ([`crate::state::View::at_time`]).
    pub fn time_ms(&self) -> i64 {
        i64::try_from(self.header.timestamp_ms).unwrap_or(i64::MAX)
    }

    /// A block from a header and transactions as received; check with [`Block::body_matches`].
    pub fn from_parts(header: Header, txs: Vec<Tx>) -> Block {
        let digest = header.digest();
        Block {
            header,
            txs,
            digest,
        }
    }

    /// The genesis block: height 0, no transactions, the genesis state root.
    pub fn genesis(state_root: Hash) -> Block {
        Block::new(0, Digest([0; 32]), 0, Vec::new(), state_root)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }
    pub fn txs(&self) -> &[Tx] {
        &self.txs
    }
    pub fn height(&self) -> u64 {
        self.header.height
    }
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// Whether the transactions are the ones the header commits to.
    pub fn body_matches(&self) -> bool {
        self.header.tx_count as usize == self.txs.len() && self.header.tx_root == tx_root(&self.txs)
    }

    /// Merkle proof that the transaction at `index` is in this block.
    pub fn prove(&self, index: usize) -> Option<TxProof> {
        TxTree::inclusion_proof(&leaves(&self.txs), index).map(|siblings| TxProof {
            index: index as u32,
            siblings,
        })
    }
}

impl Write for Block {
    fn write(&self, buf: &mut impl BufMut) {
        self.header.write(buf);
        for tx in &self.txs {
            tx.write(buf);
        }
    }
}

impl EncodeSize for Block {
    fn encode_size(&self) -> usize {
        Header::ENCODED_LEN + self.txs.iter().map(EncodeSize::encode_size).sum::<usize>()
    }
}

impl Read for Block {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let header = Header::read(buf)?;
        let count = header.tx_count as usize;
        if count > BLOCK_TXS_MAX {
            return Err(CodecError::InvalidLength(count));
        }
        let mut txs = Vec::with_capacity(count);
        for _ in 0..count {
            txs.push(Tx::read(buf)?);
        }
        Ok(Block::from_parts(header, txs))
    }
}

impl Digestible for Block {
    type Digest = Digest;
    fn digest(&self) -> Digest {
        self.digest
    }
}

impl Heightable for Block {
    fn height(&self) -> Height {
        Height::new(self.header.height)
    }
}

impl commonware_consensus::Block for Block {
    fn parent(&self) -> Digest {
        self.header.parent
    }
}

// ---- Merkle tree over transaction ids ------------------------------------------------------
//
// The tree is `vigil_core::merkle`'s; only the hashing is the ledger's own, unchanged since the
// first block because every header commits to it: leaves H("tx-leaf" || id), nodes
// H("tx-node" || left || right), the empty tree H("tx-empty"), each a length-prefixed,
// domain-separated `vigil_core::digest` (so a node can never pass for a leaf).

/// The hashing of transaction trees.
pub struct TxHashing;

impl Hashing for TxHashing {
    fn leaf(id: &[u8]) -> Hash {
        vigil_core::digest("vigil/ledger/tx-leaf/v1", &[id])
    }

    fn node(left: &Hash, right: &Hash) -> Hash {
        vigil_core::digest("vigil/ledger/tx-node/v1", &[left, right])
    }

    fn empty() -> Hash {
        vigil_core::digest("vigil/ledger/tx-empty/v1", &[])
    }
}

/// The Merkle tree over a block's transaction ids.
pub type TxTree = Tree<TxHashing>;

fn leaf(id: &TxId) -> Hash {
    TxHashing::leaf(&id.0)
}

fn leaves(txs: &[Tx]) -> Vec<Hash> {
    txs.iter().map(|tx| leaf(&tx.id())).collect()
}

/// Merkle root over the ids of `txs`.
pub fn tx_root(txs: &[Tx]) -> Hash {
    TxTree::root(&leaves(txs))
}

/// A Merkle path from a transaction to its block's `tx_root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxProof {
    pub index: u32,
    pub siblings: Vec<Hash>,
}

impl TxProof {
    /// Whether `id` sits at `self.index` in a block of `count` transactions with root `root`.
    pub fn verify(&self, id: &TxId, count: u32, root: &Hash) -> bool {
        TxTree::root_from_proof(
            &leaf(id),
            self.index as usize,
            count as usize,
            &self.siblings,
        )
        .is_some_and(|computed| &computed == root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::{TxBody, tests::key};
    use commonware_codec::{DecodeExt as _, Encode as _};
    use vigil_core::PersonId;

    fn txs(n: usize) -> Vec<Tx> {
        (0..n)
            .map(|i| {
                Tx::sign(
                    &key(1),
                    &[0; 32],
                    i as u64,
                    TxBody::RegisterPerson {
                        person: PersonId::from_bytes([i as u8; 16]),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn every_transaction_has_a_proof_and_proofs_do_not_transfer() {
        for n in [1usize, 2, 3, 5, 8, 13] {
            let block = Block::new(1, Digest([0; 32]), 0, txs(n), [0; 32]);
            let header = block.header();
            for (i, tx) in block.txs().iter().enumerate() {
                let proof = block.prove(i).expect("index in range");
                assert!(
                    proof.verify(&tx.id(), header.tx_count, &header.tx_root),
                    "n={n} i={i}"
                );
                let other = &block.txs()[(i + 1) % n];
                if n > 1 {
                    assert!(!proof.verify(&other.id(), header.tx_count, &header.tx_root));
                }
                assert!(!proof.verify(&tx.id(), header.tx_count, &[0; 32]));
                assert!(
                    !proof.verify(&tx.id(), i as u32, &header.tx_root),
                    "index past count"
                );
            }
            assert!(block.prove(n).is_none());
        }
    }

    /// The transaction roots of blocks already on chains, from before the ledger used
    /// `vigil_core::merkle`: a change of tree or hashing would fork every existing chain.
    #[test]
    fn transaction_roots_keep_their_on_chain_format() {
        let pinned = [
            (
                0usize,
                "e3745430d774e21cacbbfd1e7169168839155f474ec71ec5abd7d58ca5ba9ff6",
                0usize,
            ),
            (
                1,
                "2e76ce83e86e31f738c987b096e45a7ca681641c0838f5025f72487a5cd13553",
                0,
            ),
            (
                2,
                "f437614d62eac5fd981eeefbe62399de415d80a0263bcc7bec46bf6f2a01079e",
                1,
            ),
            (
                3,
                "e6570771e0aa70d0a196c14d268b2716d7a374a91a02673bfaae4ae277dcba50",
                1,
            ),
            (
                5,
                "557c9e924e69a8d7862666811e39ec503a821d52d407c2a958390a14bb8599a8",
                1,
            ),
            (
                7,
                "63f945e00be8a7a7921a2a8b3b1b31f6a24dd10e6ec459fa1fe8d546413959e9",
                2,
            ),
        ];
        for (n, root, last_proof_len) in pinned {
            let leaves: Vec<Hash> = (0..n as u64)
                .map(|i| leaf(&TxId(vigil_core::digest("pin", &[&i.to_be_bytes()]))))
                .collect();
            assert_eq!(hex::encode(TxTree::root(&leaves)), root, "n = {n}");
            if let Some(last) = n.checked_sub(1) {
                let proof = TxTree::inclusion_proof(&leaves, last).expect("in range");
                assert_eq!(proof.len(), last_proof_len, "n = {n}");
            }
        }
    }

    #[test]
    fn blocks_round_trip_and_tampering_changes_the_digest() {
        let block = Block::new(3, Digest([9; 32]), 77, txs(4), [5; 32]);
        let bytes = block.encode();
        let again = Block::decode(bytes.clone()).expect("decodes");
        assert_eq!(again, block);
        assert!(again.body_matches());
        // Swap two transactions: same header, body no longer matches.
        let mut swapped = block.txs().to_vec();
        swapped.swap(0, 1);
        let forged = Block::from_parts(block.header().clone(), swapped);
        assert!(!forged.body_matches());
        // Flip a header byte: different digest.
        let mut bytes = bytes.to_vec();
        bytes[0] ^= 1;
        let other = Block::decode(bytes::Bytes::from(bytes)).expect("decodes");
        assert_ne!(other.digest(), block.digest());
    }
}
