//! Signed SenML packs (RFC 8428), JSON and CBOR.
//!
//! A device sends one pack per batch of readings. The first record carries the base name
//! `"<device-id>:"`, Vigil's two extension fields — `"seq_"`, the device's sequence number, and
//! `"sig_"`, an Ed25519 signature (base64url) — and any base fields. Record names are metric
//! names (`body-temperature`, `heart-rate`, `lat`, ...), units are SenML / UCUM.
//!
//! ```json
//! [{"bn":"thermo-01:","bt":1700000000,"seq_":7,"sig_":"...","n":"body-temperature","u":"Cel","v":38.2},
//!  {"n":"heart-rate","u":"beat/min","t":1,"v":88}]
//! ```
//!
//! The signature covers a canonical encoding of the typed readings (device, sequence, and for
//! each reading its metric, time in ms and fixed-point value), not the bytes received. So the
//! same pack verifies as JSON or as CBOR, and what is signed is exactly what contracts see.
//!
//! Parsing is a pipeline of typed steps: bytes → [`UnverifiedPack`] (syntax, resolution, units,
//! plausibility) → [`UnverifiedPack::verify`] with the device's enrolled key → [`SignedPack`].
//! Each step fails with a [`PackError`] that names the record and field at fault.

mod encode;
mod units;
mod wire;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub use encode::PackDraft;
use units::{Field, is_known_unit};
use wire::{RawPack, RawRecord};

use crate::{DeviceId, DevicePublicKey, GeoFix, Metric, Reading, TimestampMs, Value};

/// Larger packs are refused before any parsing.
pub const PACK_BYTES_MAX: usize = 64 * 1024;
/// Records in one pack. A pack of several minutes of one-second vitals fits comfortably.
pub const RECORDS_MAX: usize = 1024;
/// SenML times below 2^28 s are relative to "now" (RFC 8428 §4.5.3). A device must stamp
/// absolute times: a relative time would make the reading's time depend on the receiver's clock.
const ABSOLUTE_TIME_S_MIN: f64 = 268_435_456.0;
/// 2^33 s is in the year 2242: later times are a broken clock, not a reading.
const TIME_S_MAX: f64 = 8_589_934_592.0;
const SIGNATURE_DOMAIN: &[u8] = b"vigil/senml-pack/v1\0";

/// Why a pack was refused. Every variant names what the sender must fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    #[error("pack is {size} bytes, over the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("malformed {format}: {detail}")]
    Malformed { format: Format, detail: String },
    #[error("pack has no records")]
    Empty,
    #[error("record {index}, field \"{field}\": {problem}")]
    Field {
        index: usize,
        field: &'static str,
        problem: Problem,
    },
    #[error("pack has no signature (field \"sig_\" of the first record)")]
    Unsigned,
    #[error("signature does not verify with the key enrolled for device {device}")]
    BadSignature { device: DeviceId },
}

/// What is wrong with one field of one record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("missing")]
    Missing,
    #[error("{0}")]
    Invalid(String),
    #[error("unknown unit {0:?}")]
    UnknownUnit(String),
    #[error("unit {unit:?} does not measure {field}; accepted: {accepted}")]
    WrongUnit {
        unit: String,
        field: &'static str,
        accepted: String,
    },
    #[error("not a finite number")]
    NotFinite,
    #[error("{value} {unit} is implausible for {field} (accepted {min}..={max} {canonical_unit})")]
    Implausible {
        field: &'static str,
        value: f64,
        unit: String,
        min: i32,
        max: i32,
        canonical_unit: &'static str,
    },
    #[error("relative time {0} s: devices must stamp absolute times (>= 2^28 s)")]
    RelativeTime(f64),
    #[error("unsupported: {0}")]
    Unsupported(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Cbor,
}

impl Format {
    /// RFC 8428 §12.3's media type for the format.
    pub const fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/senml+json",
            Format::Cbor => "application/senml+cbor",
        }
    }

    /// The format a `Content-Type` names (parameters and case ignored, RFC 9110 §8.3.1), or
    /// `None` for any other media type.
    pub fn from_media_type(content_type: &str) -> Option<Format> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        [Format::Json, Format::Cbor]
            .into_iter()
            .find(|format| essence.eq_ignore_ascii_case(format.media_type()))
    }

    /// The format of a pack without a declared type: a CBOR array's first byte is 0x80..=0x9f,
    /// which no JSON text starts with.
    pub fn sniff(bytes: &[u8]) -> Format {
        match bytes.first() {
            Some(0x80..=0x9f) => Format::Cbor,
            _ => Format::Json,
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Json => "SenML JSON",
            Format::Cbor => "SenML CBOR",
        })
    }
}

/// A pack whose syntax, units and values are valid, but whose signature has not been checked.
/// Its device and sequence number are readable so the receiver can look up the enrolled key
/// and reject replays before accepting anything.
#[derive(Debug, Clone, PartialEq)]
pub struct UnverifiedPack {
    device: DeviceId,
    sequence: Option<u64>,
    signature: Option<[u8; 64]>,
    readings: Vec<Reading>,
}

/// A pack whose signature verified with the device's key.
///
/// It also travels as alert evidence (serde: the typed readings and the signature in
/// base64url), and whoever receives it that way checks the signature again with
/// [`SignedPack::signed_by`]: a deserialized pack is only a claim until then.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedPack {
    pub device: DeviceId,
    pub sequence: u64,
    #[serde(with = "signature_base64url")]
    pub signature: [u8; 64],
    pub readings: Vec<Reading>,
}

impl SignedPack {
    /// The bytes its device signed (see [`signed_message`]).
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(&self.device, self.sequence, &self.readings)
    }

    /// Whether `key` signed this pack (strict Ed25519 verification), and every reading names
    /// the pack's device (the signature covers the pack's device, not each reading's copy).
    pub fn signed_by(&self, key: &DevicePublicKey) -> bool {
        self.readings.iter().all(|r| r.device == self.device)
            && key.verify(&self.signed_message(), &self.signature)
    }

    /// The index of the first pack `key` did not sign, if any: one batch equation for all,
    /// then each only when the batch fails.
    pub fn first_not_signed_by(packs: &[&SignedPack], key: &DevicePublicKey) -> Option<usize> {
        let messages: Vec<Vec<u8>> = packs.iter().map(|p| p.signed_message()).collect();
        let items: Vec<crate::keys::SignedMessage<'_>> = messages
            .iter()
            .zip(packs)
            .map(|(message, pack)| (message.as_slice(), &pack.signature, key))
            .collect();
        let devices_agree = packs
            .iter()
            .all(|p| p.readings.iter().all(|r| r.device == p.device));
        if devices_agree && !items.is_empty() && DevicePublicKey::verify_batch(&items) {
            return None;
        }
        packs.iter().position(|pack| !pack.signed_by(key))
    }
}

mod signature_base64url {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    pub fn serialize<S: serde::Serializer>(sig: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&URL_SAFE_NO_PAD.encode(sig))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        <[u8; 64]>::try_from(bytes.as_slice())
            .map_err(|_| serde::de::Error::custom("a signature is 64 bytes"))
    }
}

impl UnverifiedPack {
    pub fn parse(bytes: &[u8], format: Format) -> Result<Self, PackError> {
        if bytes.len() > PACK_BYTES_MAX {
            return Err(PackError::TooLarge {
                size: bytes.len(),
                max: PACK_BYTES_MAX,
            });
        }
        let malformed = |detail: String| PackError::Malformed { format, detail };
        let RawPack(records) = match format {
            Format::Json => serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?,
            Format::Cbor => {
                ciborium::de::from_reader(bytes).map_err(|e| malformed(cbor_error(e)))?
            }
        };
        resolve(records)
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, PackError> {
        Self::parse(bytes, Format::Json)
    }

    pub fn from_cbor(bytes: &[u8]) -> Result<Self, PackError> {
        Self::parse(bytes, Format::Cbor)
    }

    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    pub fn sequence(&self) -> Option<u64> {
        self.sequence
    }

    /// The latest time any of its readings is stamped with, so the receiver can refuse
    /// readings from the future before checking the signature (the pack has readings: an
    /// empty one is refused when parsed).
    pub fn latest_time_ms(&self) -> Option<TimestampMs> {
        self.readings.iter().map(|r| r.time_ms).max()
    }

    /// Whether the pack carries both a sequence number and a signature to check.
    pub fn is_signed(&self) -> bool {
        self.sequence.is_some() && self.signature.is_some()
    }

    /// Checks the signature against the key enrolled for [`Self::device`].
    pub fn verify(self, key: &DevicePublicKey) -> Result<SignedPack, PackError> {
        let (Some(sequence), Some(signature)) = (self.sequence, self.signature) else {
            return Err(PackError::Unsigned);
        };
        let message = signed_message(&self.device, sequence, &self.readings);
        if !key.verify(&message, &signature) {
            return Err(PackError::BadSignature {
                device: self.device,
            });
        }
        Ok(SignedPack {
            device: self.device,
            sequence,
            signature,
            readings: self.readings,
        })
    }

    /// Checks many packs, each against its device's key, giving each the answer
    /// [`UnverifiedPack::verify`] would: one batch equation for the lot, and only when it fails
    /// a check of each (see `DevicePublicKey::verify_batch` for how a batch pass differs from
    /// strict verification). Ingestion checks thousands of packs a second; this halves the cost
    /// of the most expensive step.
    pub fn verify_all(
        packs: Vec<(UnverifiedPack, DevicePublicKey)>,
    ) -> Vec<Result<SignedPack, PackError>> {
        let messages: Vec<Option<(Vec<u8>, [u8; 64])>> = packs
            .iter()
            .map(|(pack, _)| match (pack.sequence, pack.signature) {
                (Some(sequence), Some(signature)) => Some((
                    signed_message(&pack.device, sequence, &pack.readings),
                    signature,
                )),
                _ => None,
            })
            .collect();
        let items: Option<Vec<crate::keys::SignedMessage<'_>>> = messages
            .iter()
            .zip(&packs)
            .map(|(signed, (_, key))| {
                signed
                    .as_ref()
                    .map(|(message, signature)| (message.as_slice(), signature, key))
            })
            .collect();
        let all_valid = items
            .as_deref()
            .is_some_and(|items| !items.is_empty() && DevicePublicKey::verify_batch(items));
        packs
            .into_iter()
            .zip(messages)
            .map(|((pack, key), signed)| match signed {
                Some((message, signature)) if all_valid || key.verify(&message, &signature) => {
                    Ok(pack.into_signed(signature))
                }
                Some(_) => Err(PackError::BadSignature {
                    device: pack.device,
                }),
                None => Err(PackError::Unsigned),
            })
            .collect()
    }

    fn into_signed(self, signature: [u8; 64]) -> SignedPack {
        SignedPack {
            device: self.device,
            sequence: self.sequence.unwrap_or_default(),
            signature,
            readings: self.readings,
        }
    }

    /// The readings without any signature check, for offline tools that evaluate recorded
    /// files (`vigil contracts eval`). Never use this on the ingestion path.
    pub fn into_readings_unverified(self) -> Vec<Reading> {
        self.readings
    }
}

/// The bytes a device signs: a domain separator, then the typed content in fixed-width
/// big-endian fields, so that two different packs can never encode alike.
pub(crate) fn signed_message(device: &DeviceId, sequence: u64, readings: &[Reading]) -> Vec<u8> {
    let mut message = Vec::with_capacity(64 + readings.len() * 22);
    message.extend_from_slice(SIGNATURE_DOMAIN);
    // DeviceId::LEN_MAX is 64, so its length always fits a byte.
    message.push(device.as_str().len() as u8);
    message.extend_from_slice(device.as_str().as_bytes());
    message.extend_from_slice(&sequence.to_be_bytes());
    message.extend_from_slice(&(readings.len() as u32).to_be_bytes());
    for reading in readings {
        message.push(reading.metric.code());
        message.extend_from_slice(&reading.time_ms.to_be_bytes());
        match reading.value {
            Value::Scalar(v) => {
                message.push(0);
                message.extend_from_slice(&v.to_be_bytes());
            }
            Value::Position(fix) => {
                message.push(1);
                message.extend_from_slice(&fix.lat_udeg.to_be_bytes());
                message.extend_from_slice(&fix.lon_udeg.to_be_bytes());
                message.extend_from_slice(&fix.accuracy_m.to_be_bytes());
            }
        }
    }
    message
}

/// Base fields in force while walking the pack (RFC 8428 §4.5.1).
#[derive(Default)]
struct Base {
    name: Option<String>,
    time_s: Option<f64>,
    unit: Option<String>,
    value: Option<f64>,
}

/// Latitude, longitude and accuracy records that share one time become one position.
#[derive(Default)]
struct PendingFix {
    first_index: usize,
    lat_udeg: Option<i32>,
    lon_udeg: Option<i32>,
    accuracy_m: Option<i32>,
}

fn resolve(records: Vec<RawRecord>) -> Result<UnverifiedPack, PackError> {
    if records.is_empty() {
        return Err(PackError::Empty);
    }
    let mut base = Base::default();
    let mut device: Option<DeviceId> = None;
    let mut sequence = None;
    let mut signature = None;
    // Readings keep the order of their records; a position takes the place of its first part.
    let mut readings: Vec<(usize, Reading)> = Vec::with_capacity(records.len());
    let mut fixes: BTreeMap<TimestampMs, PendingFix> = BTreeMap::new();

    for (index, record) in records.into_iter().enumerate() {
        let fail = |field: &'static str, problem: Problem| PackError::Field {
            index,
            field,
            problem,
        };
        if let Some(name) = record.unsupported {
            return Err(fail("n", Problem::Unsupported(format!("field {name:?}"))));
        }
        if let Some(version) = record.bver
            && !(5..=10).contains(&version)
        {
            return Err(fail(
                "bver",
                Problem::Invalid(format!("SenML version {version} not supported")),
            ));
        }
        if index == 0 {
            sequence = record.seq;
            signature = record
                .sig
                .map(|text| {
                    decode_signature(&text).ok_or_else(|| {
                        fail("sig_", Problem::Invalid("not 64 bytes of base64url".into()))
                    })
                })
                .transpose()?;
        } else if record.seq.is_some() {
            return Err(fail(
                "seq_",
                Problem::Invalid("belongs in the first record only".into()),
            ));
        } else if record.sig.is_some() {
            return Err(fail(
                "sig_",
                Problem::Invalid("belongs in the first record only".into()),
            ));
        }
        if record.bn.is_some() {
            base.name = record.bn;
        }
        if let Some(bt) = record.bt {
            base.time_s = Some(finite(bt).ok_or_else(|| fail("bt", Problem::NotFinite))?);
        }
        if record.bu.is_some() {
            base.unit = record.bu;
        }
        if let Some(bv) = record.bv {
            base.value = Some(finite(bv).ok_or_else(|| fail("bv", Problem::NotFinite))?);
        }

        let name = format!(
            "{}{}",
            base.name.as_deref().unwrap_or(""),
            record.n.as_deref().unwrap_or("")
        );
        let (device_part, field_part) = name.rsplit_once(':').ok_or_else(|| {
            fail(
                "n",
                Problem::Invalid(format!("name {name:?} is not \"<device>:<metric>\"")),
            )
        })?;
        let record_device: DeviceId = device_part
            .parse()
            .map_err(|e: crate::IdError| fail("bn", Problem::Invalid(e.to_string())))?;
        match &device {
            None => device = Some(record_device.clone()),
            Some(first) if *first != record_device => {
                return Err(fail(
                    "bn",
                    Problem::Invalid(format!(
                        "device {record_device} differs from {first}: a pack comes from one device"
                    )),
                ));
            }
            Some(_) => {}
        }
        let field = Field::from_name(field_part).ok_or_else(|| {
            fail(
                "n",
                Problem::Invalid(format!("unknown metric {field_part:?}")),
            )
        })?;

        let time_s = match (base.time_s, record.t) {
            (None, None) => return Err(fail("t", Problem::Missing)),
            (bt, t) => {
                bt.unwrap_or(0.0)
                    + finite(t.unwrap_or(0.0)).ok_or_else(|| fail("t", Problem::NotFinite))?
            }
        };
        if time_s < ABSOLUTE_TIME_S_MIN {
            return Err(fail("t", Problem::RelativeTime(time_s)));
        }
        if time_s > TIME_S_MAX {
            return Err(fail(
                "t",
                Problem::Invalid(format!("time {time_s} s is after the year 2242")),
            ));
        }
        // In range by the checks above, so the conversion is exact enough and cannot saturate.
        let time_ms = (time_s * 1000.0).round() as TimestampMs;

        let unit = record.u.or_else(|| base.unit.clone()).unwrap_or_default();
        let Some(conversion) = field.conversion(&unit) else {
            let problem = if unit.is_empty() {
                Problem::Missing
            } else if !is_known_unit(&unit) {
                Problem::UnknownUnit(unit)
            } else {
                let accepted = field
                    .units()
                    .iter()
                    .map(|(u, _)| format!("{u:?}"))
                    .collect::<Vec<_>>();
                Problem::WrongUnit {
                    unit,
                    field: field.name(),
                    accepted: accepted.join(", "),
                }
            };
            return Err(fail("u", problem));
        };

        let raw_value = match (record.v, record.vb) {
            (Some(v), None) => {
                let v = finite(v).ok_or_else(|| fail("v", Problem::NotFinite))?;
                finite(v + base.value.unwrap_or(0.0))
                    .ok_or_else(|| fail("v", Problem::NotFinite))?
            }
            (None, Some(flag)) if field == Field::Scalar(Metric::SupplementalOxygen) => {
                f64::from(u8::from(flag))
            }
            (None, Some(_)) => {
                return Err(fail(
                    "vb",
                    Problem::Invalid(format!("{} is not a boolean", field.name())),
                ));
            }
            (Some(_), Some(_)) => {
                return Err(fail(
                    "vb",
                    Problem::Invalid("a record has one value, not v and vb".into()),
                ));
            }
            (None, None) if base.value.is_some() => base.value.unwrap_or(0.0),
            (None, None) => return Err(fail("v", Problem::Missing)),
        };
        let (min, max) = match field {
            Field::Scalar(metric) => metric.plausible_range(),
            Field::Latitude => (-GeoFix::LAT_UDEG_MAX, GeoFix::LAT_UDEG_MAX),
            Field::Longitude => (-GeoFix::LON_UDEG_MAX, GeoFix::LON_UDEG_MAX),
            Field::Accuracy => (0, GeoFix::ACCURACY_M_MAX as i32),
        };
        let implausible = || Problem::Implausible {
            field: field.name(),
            value: raw_value,
            unit: unit.clone(),
            min,
            max,
            canonical_unit: match field {
                Field::Scalar(metric) => metric.canonical_unit(),
                Field::Latitude | Field::Longitude => "udeg",
                Field::Accuracy => "m",
            },
        };
        let value = conversion
            .apply(raw_value)
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| fail("v", implausible()))?;

        let device_id = device.clone().ok_or_else(|| fail("bn", Problem::Missing))?;
        match field {
            Field::Scalar(metric) => readings.push((
                index,
                Reading {
                    device: device_id,
                    metric,
                    time_ms,
                    value: Value::Scalar(value),
                },
            )),
            Field::Latitude | Field::Longitude | Field::Accuracy => {
                let pending = fixes.entry(time_ms).or_insert_with(|| PendingFix {
                    first_index: index,
                    ..PendingFix::default()
                });
                let slot = match field {
                    Field::Latitude => &mut pending.lat_udeg,
                    Field::Longitude => &mut pending.lon_udeg,
                    _ => &mut pending.accuracy_m,
                };
                if slot.replace(value).is_some() {
                    return Err(fail(
                        "n",
                        Problem::Invalid(format!(
                            "two {} records at time {time_s} s",
                            field.name()
                        )),
                    ));
                }
            }
        }
    }

    let device = device.ok_or(PackError::Empty)?;
    for (time_ms, fix) in fixes {
        let fail = |field: &'static str, missing: &str| PackError::Field {
            index: fix.first_index,
            field,
            problem: Problem::Invalid(format!("position at {time_ms} ms has no {missing} record")),
        };
        let lat_udeg = fix.lat_udeg.ok_or_else(|| fail("n", "lat"))?;
        let lon_udeg = fix.lon_udeg.ok_or_else(|| fail("n", "lon"))?;
        // Accuracy is within 0..=ACCURACY_M_MAX by the plausibility check.
        let accuracy_m = fix.accuracy_m.unwrap_or(0).unsigned_abs();
        let value = Value::Position(GeoFix {
            lat_udeg,
            lon_udeg,
            accuracy_m,
        });
        readings.push((
            fix.first_index,
            Reading {
                device: device.clone(),
                metric: Metric::Position,
                time_ms,
                value,
            },
        ));
    }
    readings.sort_by_key(|(index, _)| *index);
    Ok(UnverifiedPack {
        device,
        sequence,
        signature,
        readings: readings.into_iter().map(|(_, reading)| reading).collect(),
    })
}

/// ciborium's errors print as `Debug` (`Semantic(None, "...")`); this says what a sender can
/// act on: the record and field (named by the visitors in `wire`) and the byte offset.
fn cbor_error(error: ciborium::de::Error<std::io::Error>) -> String {
    use ciborium::de::Error;
    match error {
        Error::Io(_) => wire::TRUNCATED.to_owned(),
        Error::Syntax(offset) => format!("not well-formed CBOR at byte {offset}"),
        Error::Semantic(Some(offset), message) => {
            format!("{} (at byte {offset})", wire::plain(&message))
        }
        Error::Semantic(None, message) => wire::plain(&message),
        Error::RecursionLimitExceeded => "CBOR nested too deeply".to_owned(),
    }
}

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

fn decode_signature(text: &str) -> Option<[u8; 64]> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests;
