pub mod contracts;
pub mod ecg;
pub mod ledger;
