//! Typed errors of the service: the protocol's own, and what the ledger, the databases and the
//! file system add around it.

/// Everything that can go wrong in `vigil-stats-service`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The protocol refused (a proof, a bound, a decoding, a rejected result).
    #[error(transparent)]
    Protocol(#[from] vigil_privstats::Error),
    /// A parameter is outside what the service supports (a path, a deployment's shape).
    #[error("invalid parameter: {0}")]
    Param(String),
    /// A row or an answer of a DP database is outside the bounds the proofs enforce.
    #[error("value out of range: {0}")]
    OutOfRange(String),
    /// The ledger refused a transaction or lacks a record.
    #[error("ledger: {0}")]
    Ledger(String),
    /// A DP database or the service's store failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;
