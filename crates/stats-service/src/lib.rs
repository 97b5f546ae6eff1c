//! Private statistics as a service of the ledger, around the protocol of `vigil-privstats`.
//!
//! - [`ledger`]: [`ledger::StatsService`], the servers, DPs and verifying nodes of a deployment
//!   in one process, driven by the finalized ledger (queries, verdicts and the collective key
//!   are transactions; a result is accepted only on finalized verdicts);
//! - [`store`]: the service's durable state (SQLite), so a restart keeps keys and queries;
//! - [`db`]: a DP's local database of heart data, pre-aggregated into hourly buckets;
//! - [`local`]: one query through a whole deployment with its own local ledger (`vigil query`);
//! - [`runner`]: the protocol alone in one process with timings (`vigil bench privstats`).
//!
//! Fault injection (a cheating DP, server or key switch) exists only with the `fault-injection`
//! feature, which only this crate's tests enable.

pub mod db;
pub mod error;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod ledger;
pub mod local;
pub mod runner;
pub mod store;

pub use error::{Error, Result};
