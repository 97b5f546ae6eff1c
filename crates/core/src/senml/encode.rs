//! The device's side: build a pack of typed readings, sign it, write it as JSON or CBOR.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::units::Field;
use super::wire::{SEQUENCE_LABEL, SIGNATURE_LABEL};
use super::{SignedPack, signed_message};
use crate::{DeviceId, DeviceKey, Metric, Reading, TimestampMs, Value};

/// Readings a device is about to send, in canonical units.
#[derive(Debug, Clone)]
pub struct PackDraft {
    device: DeviceId,
    sequence: u64,
    readings: Vec<Reading>,
}

impl PackDraft {
    pub fn new(device: DeviceId, sequence: u64) -> Self {
        Self {
            device,
            sequence,
            readings: Vec::new(),
        }
    }

    pub fn push(&mut self, metric: Metric, time_ms: TimestampMs, value: Value) -> &mut Self {
        self.readings.push(Reading {
            device: self.device.clone(),
            metric,
            time_ms,
            value,
        });
        self
    }

    pub fn len(&self) -> usize {
        self.readings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
    }

    pub fn sign(self, key: &DeviceKey) -> SignedPack {
        let message = signed_message(&self.device, self.sequence, &self.readings);
        SignedPack {
            signature: key.sign(&message),
            device: self.device,
            sequence: self.sequence,
            readings: self.readings,
        }
    }
}

enum Scalar {
    Text(String),
    Float(f64),
    Unsigned(u64),
}

/// A record to write: (JSON label, CBOR label, value). Extension fields have no CBOR integer
/// label and are written as text in both formats.
type OutRecord = Vec<(&'static str, Option<i64>, Scalar)>;

impl SignedPack {
    fn records(&self) -> Vec<OutRecord> {
        let base_ms = self.readings.first().map_or(0, |r| r.time_ms);
        let mut records: Vec<OutRecord> = Vec::with_capacity(self.readings.len() + 2);
        for reading in &self.readings {
            let relative_s = (reading.time_ms - base_ms) as f64 / 1000.0;
            let mut push = |field: Field, canonical: i64| {
                let (unit, scale) = field.preferred_unit();
                let mut record: OutRecord = Vec::with_capacity(8);
                if records.is_empty() {
                    record.push(("bn", Some(-2), Scalar::Text(format!("{}:", self.device))));
                    record.push(("bt", Some(-3), Scalar::Float(base_ms as f64 / 1000.0)));
                    record.push((SEQUENCE_LABEL, None, Scalar::Unsigned(self.sequence)));
                    let signature = URL_SAFE_NO_PAD.encode(self.signature);
                    record.push((SIGNATURE_LABEL, None, Scalar::Text(signature)));
                }
                record.push(("n", Some(0), Scalar::Text(field.name().to_owned())));
                if !unit.is_empty() {
                    record.push(("u", Some(1), Scalar::Text(unit.to_owned())));
                }
                if relative_s != 0.0 {
                    record.push(("t", Some(6), Scalar::Float(relative_s)));
                }
                record.push(("v", Some(2), Scalar::Float(canonical as f64 / scale)));
                records.push(record);
            };
            match reading.value {
                Value::Scalar(v) => push(Field::Scalar(reading.metric), i64::from(v)),
                Value::Position(fix) => {
                    push(Field::Latitude, i64::from(fix.lat_udeg));
                    push(Field::Longitude, i64::from(fix.lon_udeg));
                    push(Field::Accuracy, i64::from(fix.accuracy_m));
                }
            }
        }
        records
    }

    /// SenML JSON (`application/senml+json`).
    pub fn to_json(&self) -> Vec<u8> {
        let records: Vec<serde_json::Value> = self
            .records()
            .into_iter()
            .map(|record| {
                let map = record.into_iter().map(|(label, _, value)| {
                    let value = match value {
                        Scalar::Text(text) => serde_json::Value::from(text),
                        Scalar::Float(f) => serde_json::Value::from(f),
                        Scalar::Unsigned(u) => serde_json::Value::from(u),
                    };
                    (label.to_owned(), value)
                });
                serde_json::Value::Object(map.collect())
            })
            .collect();
        serde_json::to_vec(&records).unwrap_or_default()
    }

    /// SenML CBOR (`application/senml+cbor`), with RFC 8428's integer labels.
    pub fn to_cbor(&self) -> Vec<u8> {
        use ciborium::Value as Cbor;
        let records: Vec<Cbor> = self
            .records()
            .into_iter()
            .map(|record| {
                let map = record.into_iter().map(|(label, code, value)| {
                    let key = match code {
                        Some(code) => Cbor::Integer(code.into()),
                        None => Cbor::Text(label.to_owned()),
                    };
                    let value = match value {
                        Scalar::Text(text) => Cbor::Text(text),
                        Scalar::Float(f) => Cbor::Float(f),
                        Scalar::Unsigned(u) => Cbor::Integer(u.into()),
                    };
                    (key, value)
                });
                Cbor::Map(map.collect())
            })
            .collect();
        let mut bytes = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = ciborium::ser::into_writer(&Cbor::Array(records), &mut bytes);
        bytes
    }
}
