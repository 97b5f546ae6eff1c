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
        let leaves: Vec<Hash> = self.txs.iter().map(|tx| leaf(&tx.id())).collect();
        merkle_proof(&leaves, index).map(|siblings| TxProof {
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
// Leaves are H(0x00 || id), inner nodes H(0x01 || left || right); a level with an odd count
// carries its last node up unchanged. Leaf and node hashes are domain-separated, so a node can
// never be passed off as a leaf (the second-preimage attack on naive Merkle trees).

fn leaf(id: &TxId) -> Hash {
    vigil_core::digest("vigil/ledger/tx-leaf/v1", &[&id.0])
}

fn node(left: &Hash, right: &Hash) -> Hash {
    vigil_core::digest("vigil/ledger/tx-node/v1", &[left, right])
}

const EMPTY_ROOT_DOMAIN: &str = "vigil/ledger/tx-empty/v1";

/// Merkle root over the ids of `txs`.
pub fn tx_root(txs: &[Tx]) -> Hash {
    let leaves: Vec<Hash> = txs.iter().map(|tx| leaf(&tx.id())).collect();
    merkle_root(leaves)
}

fn merkle_root(mut level: Vec<Hash>) -> Hash {
    if level.is_empty() {
        return vigil_core::digest(EMPTY_ROOT_DOMAIN, &[]);
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => node(l, r),
                [single] => *single,
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect();
    }
    level[0]
}

fn merkle_proof(leaves: &[Hash], mut index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut siblings = Vec::new();
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        let sibling = index ^ 1;
        if sibling < level.len() {
            siblings.push(level[sibling]);
        }
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => node(l, r),
                [single] => *single,
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect();
        index /= 2;
    }
    Some(siblings)
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
        if self.index >= count {
            return false;
        }
        let mut hash = leaf(id);
        let mut index = self.index as usize;
        let mut width = count as usize;
        let mut siblings = self.siblings.iter();
        while width > 1 {
            let sibling = index ^ 1;
            if sibling < width {
                let Some(s) = siblings.next() else {
                    return false;
                };
                hash = if index.is_multiple_of(2) {
                    node(&hash, s)
                } else {
                    node(s, &hash)
                };
            }
            index /= 2;
            width = width.div_ceil(2);
        }
        siblings.next().is_none() && &hash == root
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
