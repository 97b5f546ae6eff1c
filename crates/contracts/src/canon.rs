//! Canonical encoding: deterministic bytes built from typed values, never from the user's bytes.
//!
//! Every validator that holds the same typed parameters, state and input computes the same
//! bytes, hence the same digests. The format is private to this crate but stable within a
//! version tag: fixed-width big-endian integers, `u32` length prefixes for strings and
//! sequences, one tag byte per enum variant and per `Option`. A change to any encoding must bump
//! [`ENCODING_VERSION`], which every top-level encoding starts with.

use vigil_core::{DeviceId, GeoFix, Metric, PersonId, Reading, Value};

/// First byte of every top-level canonical encoding.
pub const ENCODING_VERSION: u8 = 1;

/// Appends the canonical form of typed values to a byte buffer.
#[derive(Default, Debug)]
pub struct Encoder {
    bytes: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Self {
            bytes: vec![ENCODING_VERSION],
        }
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes.push(v);
        self
    }
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// A length-prefixed byte string. Lengths above `u32::MAX` cannot occur: every input is
    /// bounded far below that by validation.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.len(v.len());
        self.bytes.extend_from_slice(v);
        self
    }
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    pub fn len(&mut self, n: usize) -> &mut Self {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX))
    }
    pub fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) -> &mut Self {
        match v {
            None => {
                self.u8(0);
            }
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
        }
        self
    }
    pub fn value<T: Canonical + ?Sized>(&mut self, v: &T) -> &mut Self {
        v.encode(self);
        self
    }
}

/// A type with a canonical byte encoding.
pub trait Canonical {
    fn encode(&self, e: &mut Encoder);

    /// The canonical bytes of `self`, starting with [`ENCODING_VERSION`].
    fn canonical_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        self.encode(&mut e);
        e.finish()
    }
}

impl<T: Canonical> Canonical for [T] {
    fn encode(&self, e: &mut Encoder) {
        e.len(self.len());
        for item in self {
            item.encode(e);
        }
    }
}

impl<T: Canonical> Canonical for Vec<T> {
    fn encode(&self, e: &mut Encoder) {
        self.as_slice().encode(e);
    }
}

impl Canonical for Metric {
    fn encode(&self, e: &mut Encoder) {
        // The metric's stable name, not its enum position, so reordering core's enum is harmless.
        e.str(self.name());
    }
}

impl Canonical for PersonId {
    fn encode(&self, e: &mut Encoder) {
        e.bytes(self.as_bytes());
    }
}

impl Canonical for DeviceId {
    fn encode(&self, e: &mut Encoder) {
        e.str(self.as_str());
    }
}

impl Canonical for GeoFix {
    fn encode(&self, e: &mut Encoder) {
        e.i32(self.lat_udeg).i32(self.lon_udeg).u32(self.accuracy_m);
    }
}

impl Canonical for Value {
    fn encode(&self, e: &mut Encoder) {
        match self {
            Value::Scalar(v) => {
                e.u8(0).i32(*v);
            }
            Value::Position(fix) => {
                e.u8(1).value(fix);
            }
        }
    }
}

impl Canonical for Reading {
    fn encode(&self, e: &mut Encoder) {
        e.value(&self.device)
            .value(&self.metric)
            .i64(self.time_ms)
            .value(&self.value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_are_prefixed_and_unambiguous() {
        let a = Reading {
            device: "ab".parse().expect("valid"),
            metric: Metric::HeartRate,
            time_ms: 5,
            value: Value::Scalar(700),
        };
        let mut b = a.clone();
        b.device = "a".parse().expect("valid");
        assert_eq!(a.canonical_bytes()[0], ENCODING_VERSION);
        assert_ne!(a.canonical_bytes(), b.canonical_bytes());
        assert_eq!(a.canonical_bytes(), a.clone().canonical_bytes());
    }
}
