//! Vigil's domain model, shared by every other crate. No I/O.
//!
//! - [`PersonId`]: a random 128-bit pseudonym, never derived from identity.
//! - [`DeviceId`]: a device's name, as it appears in the base name of its SenML packs.
//! - [`Metric`] and [`Value`]: what a reading measures, in fixed point with canonical units
//!   (centi-°C, tenths of a beat per minute, tenths of a percent, micro-degrees, milliseconds).
//! - [`Reading`]: one typed measurement of one device at one time.
//! - [`AlertLevel`]: 0 / 1 / 2, OK / warning / critical, the seed contract's codes.
//! - [`named_enum!`]: one written form per enum (`Display`, `FromStr`, serde from one name).
//! - [`senml`]: parse, validate and sign SenML packs (RFC 8428, JSON and CBOR).
//!
//! ```
//! use vigil_core::senml::{PackDraft, UnverifiedPack};
//! use vigil_core::{DeviceId, DeviceKey, Metric, Value};
//!
//! // On the device: 38.20 °C, signed with the device's key, sent as SenML JSON.
//! let key = DeviceKey::generate();
//! let device: DeviceId = "thermo-01".parse().unwrap();
//! let mut draft = PackDraft::new(device, 7);
//! draft.push(Metric::BodyTemperature, 1_700_000_000_000, Value::Scalar(3820));
//! let bytes = draft.sign(&key).to_json();
//!
//! // On the node: parse and validate, look up the enrolled key, verify.
//! let pack = UnverifiedPack::from_json(&bytes).unwrap();
//! assert_eq!(pack.sequence(), Some(7));
//! let pack = pack.verify(&key.public()).unwrap();
//! assert_eq!(pack.readings[0].value, Value::Scalar(3820));
//! ```

mod ids;
mod keys;
mod level;
pub mod merkle;
mod metric;
pub mod named;
mod reading;
pub mod senml;

pub use ids::{DeviceId, IdError, PersonId};
pub use keys::{DeviceKey, DevicePublicKey, KeyError};
pub use level::AlertLevel;
pub use metric::{Consciousness, GeoFix, Metric, Value};
pub use reading::{Reading, TimestampMs};

/// SHA-256 digest, used for evidence digests and content addresses.
pub type Digest = [u8; 32];

/// SHA-256 over `parts`, each prefixed by its length so that the split between parts is
/// unambiguous; `domain` separates the purposes a digest is taken for.
pub fn digest(domain: &str, parts: &[&[u8]]) -> Digest {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    hasher.update((domain.len() as u64).to_be_bytes());
    hasher.update(domain.as_bytes());
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}
