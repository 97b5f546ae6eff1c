pub mod contracts;
pub mod demo;
pub mod ecg;
pub mod ehr;
pub mod keygen;
pub mod ledger;
pub mod node;
pub mod privstats;
