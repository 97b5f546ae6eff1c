//! Vigil's monitor contracts and the catalog that routes a person's readings to them.
//!
//! A contract *kind* ([`Kind`]: threshold, NEWS2, geofence, no-signal, heart rhythm) is code
//! compiled into every node; an *instance* is a [`Deployment`] of a kind with [`Params`] for
//! one person, addressed by the digest of its canonical encoding ([`InstanceId`]). Evaluation is
//! a pure step, `Contract::step(&state, input) -> (new state, Outcome)`, with integer
//! arithmetic only and time taken from readings and explicit ticks, so any validator can
//! re-derive an alert from its [`Evidence`] (the device-signed packs it rests on, run from the
//! instance's initial state) and the deployment, and get the same level: see [`rederive`] and
//! [`verify_alert`].
//!
//! Architecture invariant: no I/O, no clock, no floating point, no randomness; nothing here
//! panics on any input (parameters are validated at deployment, inputs give typed errors).
//!
//! ```
//! use vigil_contracts::{Catalog, Deployment, Params, ThresholdParams};
//! use vigil_core::{AlertLevel, Metric, Reading, Value};
//!
//! let person = "00112233445566778899aabbccddeeff".parse().unwrap();
//! let mut catalog = Catalog::new();
//! // The seed's BodyTemperatureMonitor: [36.0, 37.5] °C, one degree of warning each side.
//! let params = Params::Threshold(ThresholdParams::seed(Metric::BodyTemperature, 3600, 3750, 100));
//! let id = catalog.deploy(Deployment { person, device: None, nonce: 0, params }).unwrap();
//!
//! let reading = Reading {
//!     device: "thermo-01".parse().unwrap(),
//!     metric: Metric::BodyTemperature,
//!     time_ms: 1_700_000_000_000,
//!     value: Value::Scalar(3820),
//! };
//! let results = catalog.evaluate(&person, &reading);
//! assert_eq!(results[0].instance, id);
//! assert_eq!(results[0].outcome.as_ref().unwrap().level, AlertLevel::Warning);
//! ```

pub mod canon;
mod catalog;
mod contract;
mod deployment;
mod error;
pub mod evidence;
pub mod geo;
pub mod geofence;
pub mod instance_file;
pub mod news2;
pub mod nosignal;
pub mod rhythm;
pub mod threshold;

pub use canon::Canonical;
pub use catalog::{
    Alert, AlertChange, AlertStatus, AlertUpdate, Catalog, Deployment, Evaluation, INSTANCE_DOMAIN,
    INSTANCES_MAX, INSTANCES_PER_PERSON_MAX, InstanceId, Terminated,
};
pub use contract::{Audience, Contract, Input, Kind, Outcome, OwnedInput, Params, Reason, State};
pub use error::{CatalogError, ParamError, ReexecuteError, StepError};
pub use evidence::{
    Basis, EVIDENCE_DOMAIN, EVIDENCE_PACKS_MAX, Evidence, EvidenceWindow, rederive, verify_alert,
};
pub use geofence::{Circle, GeofenceParams, ZoneRule, ZoneSpec};
pub use news2::News2Params;
pub use nosignal::NoSignalParams;
pub use rhythm::{HeartRhythmParams, IrregularityMethod, IrregularityParams};
pub use threshold::{ThresholdParams, analyze};
