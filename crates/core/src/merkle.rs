//! The one binary Merkle tree of Vigil, over SHA-256, in the shape of RFC 6962 §2.1 (Certificate
//! Transparency): an unbalanced tree split at the largest power of two below the size, so no
//! leaf is duplicated and the tree is fixed by the leaf count alone. (Pairing a level's nodes
//! bottom-up and carrying an odd last node up unchanged builds the same tree.)
//!
//! Two users hash its leaves and nodes differently, and each keeps its format, because both are
//! already committed to: the health record's anchors ([`Rfc6962`]: prefixes 0x00 and 0x01, as
//! RFC 6962) are on the chain, and the ledger's transaction roots (`vigil_ledger::block`'s
//! domain-separated hashing) are inside every signed block header. A [`Hashing`] names one
//! such format; [`Tree`] is the tree for it. In both, leaf and node hashes are
//! domain-separated, so a node can never pass for a leaf (the second-preimage attack on naive
//! Merkle trees).

use std::marker::PhantomData;

use sha2::{Digest as _, Sha256};

use crate::Digest;

/// How one tree hashes its leaves, its interior nodes and the empty tree.
pub trait Hashing {
    /// The hash of one leaf's content.
    fn leaf(content: &[u8]) -> Digest;
    /// The hash of an interior node over its two children.
    fn node(left: &Digest, right: &Digest) -> Digest;
    /// The root of the tree with no leaves.
    fn empty() -> Digest;
}

/// RFC 6962's hashing: leaves `SHA-256(0x00 || content)`, nodes `SHA-256(0x01 || l || r)`, the
/// empty tree `SHA-256()`. The health record's anchors use it.
pub struct Rfc6962;

const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

impl Hashing for Rfc6962 {
    fn leaf(content: &[u8]) -> Digest {
        let mut hasher = Sha256::new();
        hasher.update([LEAF_PREFIX]);
        hasher.update(content);
        hasher.finalize().into()
    }

    fn node(left: &Digest, right: &Digest) -> Digest {
        let mut hasher = Sha256::new();
        hasher.update([NODE_PREFIX]);
        hasher.update(left);
        hasher.update(right);
        hasher.finalize().into()
    }

    fn empty() -> Digest {
        Sha256::digest([]).into()
    }
}

/// The tree for the hashing `H`; every operation takes the leaves' hashes (`H::leaf`).
pub struct Tree<H>(PhantomData<H>);

impl<H: Hashing> Tree<H> {
    /// The root over leaf hashes, as RFC 6962's MTH.
    pub fn root(leaves: &[Digest]) -> Digest {
        match leaves {
            [] => H::empty(),
            [leaf] => *leaf,
            _ => {
                let split = split_point(leaves.len());
                H::node(&Self::root(&leaves[..split]), &Self::root(&leaves[split..]))
            }
        }
    }

    /// The audit path for leaf `index` (RFC 6962 §2.1.1), siblings from the leaf upwards.
    /// `None` if `index` is out of range.
    pub fn inclusion_proof(leaves: &[Digest], index: usize) -> Option<Vec<Digest>> {
        if index >= leaves.len() {
            return None;
        }
        let (mut lo, mut hi, mut at) = (0, leaves.len(), index);
        // Walk down from the root, remembering the sibling subtree at each level.
        let mut siblings = Vec::new();
        while hi - lo > 1 {
            let split = split_point(hi - lo);
            if at < split {
                siblings.push(Self::root(&leaves[lo + split..hi]));
                hi = lo + split;
            } else {
                siblings.push(Self::root(&leaves[lo..lo + split]));
                lo += split;
                at -= split;
            }
        }
        siblings.reverse();
        Some(siblings)
    }

    /// The root and every leaf's audit path at once, in O(n log n) hashes and pushes, where
    /// calling [`Self::inclusion_proof`] per leaf would cost O(n²): sealing a batch of n records
    /// needs them all. `proofs[i]` equals `inclusion_proof(leaves, i)`.
    pub fn root_and_proofs(leaves: &[Digest]) -> (Digest, Vec<Vec<Digest>>) {
        let depth = usize::BITS - leaves.len().leading_zeros();
        let mut proofs: Vec<Vec<Digest>> = (0..leaves.len())
            .map(|_| Vec::with_capacity(depth as usize))
            .collect();
        let root = Self::fill_proofs(leaves, &mut proofs);
        (root, proofs)
    }

    /// Returns the root of `leaves` and appends, bottom-up, each leaf's siblings within it.
    fn fill_proofs(leaves: &[Digest], proofs: &mut [Vec<Digest>]) -> Digest {
        match leaves {
            [] => H::empty(),
            [leaf] => *leaf,
            _ => {
                let split = split_point(leaves.len());
                let (left_proofs, right_proofs) = proofs.split_at_mut(split);
                let left = Self::fill_proofs(&leaves[..split], left_proofs);
                let right = Self::fill_proofs(&leaves[split..], right_proofs);
                left_proofs.iter_mut().for_each(|p| p.push(right));
                right_proofs.iter_mut().for_each(|p| p.push(left));
                H::node(&left, &right)
            }
        }
    }

    /// Recomputes the root from a leaf hash, its index, the tree size and its audit path
    /// (RFC 9162 §2.1.3.2). `None` if the index is out of range or the path has the wrong
    /// length for it.
    pub fn root_from_proof(
        leaf: &Digest,
        index: usize,
        size: usize,
        path: &[Digest],
    ) -> Option<Digest> {
        if index >= size {
            return None;
        }
        let (mut fn_, mut sn) = (index, size - 1);
        let mut hash = *leaf;
        for sibling in path {
            if sn == 0 {
                return None;
            }
            if fn_ & 1 == 1 || fn_ == sn {
                hash = H::node(sibling, &hash);
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            } else {
                hash = H::node(&hash, sibling);
            }
            fn_ >>= 1;
            sn >>= 1;
        }
        (sn == 0).then_some(hash)
    }
}

/// The largest power of two strictly below `n` (n >= 2).
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The health record's anchor tree.
pub type AnchorTree = Tree<Rfc6962>;

/// The hash of one anchored leaf's content ([`Rfc6962`]).
pub fn leaf_hash(content: &[u8]) -> Digest {
    Rfc6962::leaf(content)
}

/// [`Tree::root`] of the anchor tree.
pub fn root(leaves: &[Digest]) -> Digest {
    AnchorTree::root(leaves)
}

/// [`Tree::inclusion_proof`] of the anchor tree.
pub fn inclusion_proof(leaves: &[Digest], index: usize) -> Option<Vec<Digest>> {
    AnchorTree::inclusion_proof(leaves, index)
}

/// [`Tree::root_and_proofs`] of the anchor tree.
pub fn root_and_proofs(leaves: &[Digest]) -> (Digest, Vec<Vec<Digest>>) {
    AnchorTree::root_and_proofs(leaves)
}

/// [`Tree::root_from_proof`] of the anchor tree.
pub fn root_from_proof(
    leaf: &Digest,
    index: usize,
    size: usize,
    path: &[Digest],
) -> Option<Digest> {
    AnchorTree::root_from_proof(leaf, index, size, path)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn node_hash(left: &Digest, right: &Digest) -> Digest {
        Rfc6962::node(left, right)
    }

    fn leaves(n: usize) -> Vec<Digest> {
        (0..n as u32).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn small_trees_have_the_rfc_6962_shape() {
        let l = leaves(3);
        assert_eq!(root(&l[..1]), l[0]);
        assert_eq!(root(&l[..2]), node_hash(&l[0], &l[1]));
        assert_eq!(root(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
        assert_ne!(leaf_hash(b""), root(&[]));
    }

    #[test]
    fn all_proofs_at_once_match_one_by_one() {
        for n in 0..40 {
            let l = leaves(n);
            let (all_root, proofs) = root_and_proofs(&l);
            assert_eq!(all_root, root(&l), "n = {n}");
            assert_eq!(proofs.len(), n);
            for (index, proof) in proofs.iter().enumerate() {
                assert_eq!(
                    Some(proof),
                    inclusion_proof(&l, index).as_ref(),
                    "{index}/{n}"
                );
            }
        }
    }

    #[test]
    fn proofs_out_of_range_are_refused() {
        let l = leaves(5);
        assert!(inclusion_proof(&l, 5).is_none());
        assert!(root_from_proof(&l[0], 5, 5, &[]).is_none());
    }

    proptest! {
        #[test]
        fn every_leaf_proves_and_no_other_leaf_does(n in 1usize..70, pick: prop::sample::Index) {
            let l = leaves(n);
            let expected = root(&l);
            let index = pick.index(n);
            let path = inclusion_proof(&l, index).expect("in range");
            prop_assert_eq!(root_from_proof(&l[index], index, n, &path), Some(expected));
            let wrong_leaf = leaf_hash(b"forged");
            prop_assert_ne!(root_from_proof(&wrong_leaf, index, n, &path), Some(expected));
            if n > 1 {
                let other = (index + 1) % n;
                prop_assert_ne!(root_from_proof(&l[index], other, n, &path), Some(expected));
            }
        }
    }
}
