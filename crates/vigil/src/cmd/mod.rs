pub mod contracts;
pub mod ecg;
