//! Typed errors. Each variant that concerns a party names it.

use crate::ids::{DpId, ServerId};

/// Everything that can go wrong in `vigil-privstats`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Canonical decoding failed (truncated input, trailing bytes, bad tag, non-canonical point).
    #[error("malformed encoding: {0}")]
    Decode(&'static str),
    /// A parameter is outside the supported bounds (threshold, number of digits, bins, ...).
    #[error("invalid parameter: {0}")]
    Param(String),
    /// A dealer's Feldman share did not match its published commitments.
    #[error("dealer {dealer} sent server {receiver} a share that does not match its commitments")]
    BadShare {
        dealer: ServerId,
        receiver: ServerId,
    },
    /// A receiver's complaint against a dealer does not hold (bad proof, or the share is fine).
    #[error("server {receiver}'s complaint against dealer {dealer} does not hold")]
    BadComplaint {
        dealer: ServerId,
        receiver: ServerId,
    },
    /// A dealer's proof of knowledge of its constant term failed.
    #[error("dealer {0}: proof of knowledge of the secret is invalid")]
    BadDealing(ServerId),
    /// A data provider's response failed a proof.
    #[error("data provider {dp}: {what} proof is invalid")]
    BadResponse { dp: DpId, what: &'static str },
    /// A server's key-switch share failed its proof.
    #[error("server {0}: key-switch proof is invalid")]
    BadKeySwitch(ServerId),
    /// Too few valid key-switch shares to reach the threshold.
    #[error("only {got} valid key-switch shares, threshold is {threshold}")]
    BelowThreshold { got: usize, threshold: usize },
    /// A plaintext is beyond the decryption table: the aggregate is out of the supported bounds.
    #[error("ciphertext {index} decrypts to a value beyond the table bound {bound}")]
    Undecryptable { index: usize, bound: u64 },
    /// A value handed to encryption is outside the bounds the proofs enforce.
    #[error("value out of range: {0}")]
    OutOfRange(String),
    /// The verifying nodes did not accept the result.
    #[error("result rejected: {0}")]
    Rejected(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;
