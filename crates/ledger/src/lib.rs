//! Vigil's consortium ledger, built on commonware.
//!
//! - [`tx`]: signed, canonically encoded, replay-protected transactions (roles, people, devices,
//!   contract instances, alerts and their lifecycle, EHR anchors and access log, statistics).
//! - [`state`]: the deterministic state machine, its permission table and typed rejections,
//!   and the chained state commitment carried in every block header.
//! - [`block`]: blocks, headers, Merkle inclusion proofs of transactions.
//! - [`finalized`]: the read boundary. After each finalized block a [`finalized::Finalized`]
//!   snapshot (the block, the state after it and its indexes) is published on a latest-value
//!   channel ([`node::Ledger::snapshot`], [`node::Ledger::snapshots`]); a reader that needs
//!   every block follows them with [`node::Ledger::follow`]. The state's lookups and
//!   [`read`]'s role-checked queries are the only reads other crates make.
//!
//! Consensus is `commonware-consensus` simplex with Ed25519 validator signatures; this crate
//! supplies blocks and checks them, and never orders anything itself.

pub mod app;
pub mod block;
pub mod config;
pub mod evidence;
#[cfg(test)]
pub mod fault;
pub mod finalized;
mod keycache;
pub mod keys;
pub mod local;
pub mod mempool;
pub mod net;
pub mod node;
pub mod read;
pub mod signer;
pub mod sim;
pub mod state;
pub mod tx;
pub mod verify;

#[cfg(test)]
mod sim_faults;
#[cfg(test)]
mod sim_harness;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod state_tests;
