//! Homomorphic statistics over data providers (DPs) for Vigil.
//!
//! A doctor (the querier) asks for a statistic over heart data held by many ECG gateways. Each DP
//! aggregates its rows locally, splits the aggregates into 16-bit digits and encrypts each digit
//! with exponential ElGamal under a t-of-n collective key held by aggregation servers, proving
//! with aggregated Bulletproofs that every digit is in [0, 2^16) and with a sigma proof that
//! every ciphertext is well formed. Servers add the ciphertexts, sum across servers and
//! key-switch the total to the querier's key with proofs; verifying nodes check everything and
//! emit a verdict bitmap for the ledger; the querier decrypts with a bounded baby-step
//! giant-step table only after a quorum of all-good verdicts.
//!
//! ```
//! use vigil_privstats::{elgamal::KeyPair, network::Network, querier::*, query::*, dp::PlainAnswer};
//! let mut rng = rand::thread_rng();
//! let net = Network::new(2, 3, 1, &mut rng).unwrap();
//! let querier = Querier::new(KeyPair::generate(&mut rng), DecryptionTable::new(10, 8));
//! let query = Query {
//!     nonce: 1, querier: querier.keypair.public, key_id: net.key.id(), metric: Metric::Rr,
//!     statistic: Statistic::Mean, from_s: 0, to_s: 3600, cohort: vec![], dps: vec![1, 2], edges: vec![],
//! };
//! let mut a = PlainAnswer::default();
//! a.add_value(800, 3, &[]);
//! let answers = vec![(1, a.clone()), (2, a)];
//! let responses = net.respond(&query, &answers, &mut rng).unwrap();
//! let aggregates = net.aggregate(&query, &responses).unwrap();
//! let shares = net.key_switch(&query, &aggregates, &mut rng);
//! let verdicts = net.verify(&query, &responses, &aggregates, &shares);
//! let (agg, _) = querier.result(&query, &net.key, &aggregates, &shares, &verdicts, 1).unwrap();
//! assert_eq!((agg.count, agg.sum), (6, 4800));
//! ```
//!
//! This crate is the protocol only: pure computation over bytes, no ledger, no database, no
//! async runtime. Running it against the ledger (queries, verdicts and the collective key as
//! transactions, acceptance only on finalized verdicts), the DPs' SQLite databases, the durable
//! store and the runners live in `vigil-stats-service`.
//!
//! Soundness notes live next to the code: [`sigma`] (the sigma protocols), [`keys`] (the DKG),
//! [`server`] (key switching), [`query`] (bounds and decryptability).

pub mod dp;
pub mod elgamal;
pub mod encoding;
pub mod error;
pub mod ids;
pub mod keys;
pub mod network;
pub mod querier;
pub mod query;
pub mod server;
pub mod sigma;
pub mod verify;

pub use error::{Error, Result};
pub use ids::{DpId, ServerId};
