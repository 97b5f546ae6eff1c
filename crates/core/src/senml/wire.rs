//! SenML records as they arrive, before base resolution: RFC 8428's labels, as text in JSON
//! and as the registered integer labels in CBOR, plus Vigil's two extension fields.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Vigil's extension fields. Their names end in `_`: RFC 8428 §4.4 makes such fields
/// "must understand", so a generic SenML consumer rejects a signed pack rather than silently
/// trusting it.
pub(crate) const SEQUENCE_LABEL: &str = "seq_";
pub(crate) const SIGNATURE_LABEL: &str = "sig_";

/// One record as received. Every field is optional here; resolution decides what is missing.
#[derive(Debug, Default)]
pub(crate) struct RawRecord {
    pub bn: Option<String>,
    pub bt: Option<f64>,
    pub bu: Option<String>,
    pub bv: Option<f64>,
    pub bver: Option<i64>,
    pub n: Option<String>,
    pub u: Option<String>,
    pub v: Option<f64>,
    pub vb: Option<bool>,
    pub t: Option<f64>,
    pub seq: Option<u64>,
    pub sig: Option<String>,
    /// A field Vigil cannot use for a vital sign (`vs`, `vd`, `s`), or an unknown
    /// must-understand field; the record is rejected with its name.
    pub unsupported: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    Bver,
    Bn,
    Bt,
    Bu,
    Bv,
    Bs,
    N,
    U,
    V,
    Vs,
    Vb,
    S,
    T,
    Ut,
    Vd,
    Seq,
    Sig,
    MustUnderstand,
    Ignored,
}

impl Label {
    fn from_text(text: &str) -> Label {
        match text {
            "bver" => Label::Bver,
            "bn" => Label::Bn,
            "bt" => Label::Bt,
            "bu" => Label::Bu,
            "bv" => Label::Bv,
            "bs" => Label::Bs,
            "n" => Label::N,
            "u" => Label::U,
            "v" => Label::V,
            "vs" => Label::Vs,
            "vb" => Label::Vb,
            "s" => Label::S,
            "t" => Label::T,
            "ut" => Label::Ut,
            "vd" => Label::Vd,
            SEQUENCE_LABEL => Label::Seq,
            SIGNATURE_LABEL => Label::Sig,
            other if other.ends_with('_') => Label::MustUnderstand,
            _ => Label::Ignored,
        }
    }

    /// RFC 8428 Table 4: CBOR labels.
    fn from_cbor(code: i64) -> Label {
        match code {
            -1 => Label::Bver,
            -2 => Label::Bn,
            -3 => Label::Bt,
            -4 => Label::Bu,
            -5 => Label::Bv,
            -6 => Label::Bs,
            0 => Label::N,
            1 => Label::U,
            2 => Label::V,
            3 => Label::Vs,
            4 => Label::Vb,
            5 => Label::S,
            6 => Label::T,
            7 => Label::Ut,
            8 => Label::Vd,
            // Negative labels are base fields; RFC 8428 treats unknown ones like unknown
            // "_" fields.
            code if code < 0 => Label::MustUnderstand,
            _ => Label::Ignored,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Label::Bver => "bver",
            Label::Bn => "bn",
            Label::Bt => "bt",
            Label::Bu => "bu",
            Label::Bv => "bv",
            Label::Bs => "bs",
            Label::N => "n",
            Label::U => "u",
            Label::V => "v",
            Label::Vs => "vs",
            Label::Vb => "vb",
            Label::S => "s",
            Label::T => "t",
            Label::Ut => "ut",
            Label::Vd => "vd",
            Label::Seq => SEQUENCE_LABEL,
            Label::Sig => SIGNATURE_LABEL,
            Label::MustUnderstand => "unknown must-understand field",
            Label::Ignored => "unknown field",
        }
    }
}

struct LabelKey(Label, Option<String>);

impl<'de> de::Deserialize<'de> for LabelKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LabelVisitor;
        impl Visitor<'_> for LabelVisitor {
            type Value = LabelKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a SenML label (text or CBOR integer)")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<LabelKey, E> {
                let label = Label::from_text(text);
                let name =
                    (label == Label::MustUnderstand).then(|| text.chars().take(40).collect());
                Ok(LabelKey(label, name))
            }
            fn visit_i64<E: de::Error>(self, code: i64) -> Result<LabelKey, E> {
                let label = Label::from_cbor(code);
                Ok(LabelKey(
                    label,
                    (label == Label::MustUnderstand).then(|| code.to_string()),
                ))
            }
            fn visit_u64<E: de::Error>(self, code: u64) -> Result<LabelKey, E> {
                Ok(LabelKey(
                    Label::from_cbor(i64::try_from(code).unwrap_or(i64::MAX)),
                    None,
                ))
            }
        }
        deserializer.deserialize_any(LabelVisitor)
    }
}

fn set<T, E: de::Error>(slot: &mut Option<T>, value: T, label: Label) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::custom(format_args!(
            "field \"{}\" appears twice",
            label.name()
        )));
    }
    *slot = Some(value);
    Ok(())
}

impl<'de> de::Deserialize<'de> for RawRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RecordVisitor;
        impl<'de> Visitor<'de> for RecordVisitor {
            type Value = RawRecord;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a SenML record (a map)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRecord, A::Error> {
                let mut record = RawRecord::default();
                while let Some(LabelKey(label, unknown_name)) = map.next_key()? {
                    // Name the field in any type error, so the sender knows what to fix.
                    let context = |e: A::Error| {
                        de::Error::custom(format_args!("field \"{}\": {}", label.name(), plain(&e)))
                    };
                    match label {
                        Label::Bn => {
                            set(&mut record.bn, map.next_value().map_err(context)?, label)?
                        }
                        Label::Bt => set(
                            &mut record.bt,
                            map.next_value::<Number>().map_err(context)?.0,
                            label,
                        )?,
                        Label::Bu => {
                            set(&mut record.bu, map.next_value().map_err(context)?, label)?
                        }
                        Label::Bv => set(
                            &mut record.bv,
                            map.next_value::<Number>().map_err(context)?.0,
                            label,
                        )?,
                        Label::Bver => {
                            set(&mut record.bver, map.next_value().map_err(context)?, label)?
                        }
                        Label::N => set(&mut record.n, map.next_value().map_err(context)?, label)?,
                        Label::U => set(&mut record.u, map.next_value().map_err(context)?, label)?,
                        Label::V => set(
                            &mut record.v,
                            map.next_value::<Number>().map_err(context)?.0,
                            label,
                        )?,
                        Label::Vb => {
                            set(&mut record.vb, map.next_value().map_err(context)?, label)?
                        }
                        Label::T => set(
                            &mut record.t,
                            map.next_value::<Number>().map_err(context)?.0,
                            label,
                        )?,
                        Label::Seq => {
                            set(&mut record.seq, map.next_value().map_err(context)?, label)?
                        }
                        Label::Sig => {
                            set(&mut record.sig, map.next_value().map_err(context)?, label)?
                        }
                        Label::Vs | Label::Vd | Label::S => {
                            map.next_value::<IgnoredAny>()?;
                            record
                                .unsupported
                                .get_or_insert_with(|| label.name().to_owned());
                        }
                        Label::MustUnderstand => {
                            map.next_value::<IgnoredAny>()?;
                            let name = unknown_name.unwrap_or_default();
                            record.unsupported.get_or_insert(name);
                        }
                        Label::Bs | Label::Ut | Label::Ignored => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(record)
            }
        }
        deserializer.deserialize_map(RecordVisitor)
    }
}

/// An error's message without the decoder's wrapping: ciborium prints its errors as `Debug`
/// (`Semantic(None, "...")`), so nested context would read as nested escapes. JSON's errors
/// pass through unchanged.
pub(crate) fn plain(error: &dyn fmt::Display) -> String {
    let mut text = error.to_string();
    // Each pass removes one wrapper; the bound keeps a hostile message from looping long.
    for _ in 0..8 {
        let Some(rest) = text.strip_prefix("Semantic(") else {
            break;
        };
        let Some((_, quoted)) = rest.split_once(", \"") else {
            break;
        };
        let Some(inner) = quoted.strip_suffix("\")") else {
            break;
        };
        text = inner.replace("\\\"", "\"").replace("\\\\", "\\");
    }
    if text.starts_with("Io(") && text.contains("UnexpectedEof") {
        return TRUNCATED.to_owned();
    }
    text
}

pub(crate) const TRUNCATED: &str = "the CBOR ends before the pack does (truncated)";

/// A SenML number as other implementations write it: a float, an integer (`kpn-senml` and
/// most CBOR encoders write whole numbers as CBOR integers, RFC 8949 §4.2 preferred
/// serialization), a decimal fraction (CBOR tag 4, `[exponent, mantissa]`, RFC 8949 §3.4.4)
/// or a bigfloat (tag 5). Resolution works in `f64` and then in fixed point, so `37`, `37.0` and
/// `4([-1, 370])` become the same reading and verify under the same signature.
struct Number(f64);

/// Exponents past this are no measurement; refusing them keeps `powi` finite and exact enough.
const EXPONENT_MAX: i64 = 300;

impl<'de> de::Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // ciborium's own `f64` refuses CBOR integers; its `Value` takes whatever the format
        // has (a JSON number too), and the conversion below decides what is a number.
        let value = ciborium::Value::deserialize(deserializer)?;
        number(&value).map(Number).map_err(de::Error::custom)
    }
}

fn number(value: &ciborium::Value) -> Result<f64, String> {
    use ciborium::Value as Cbor;
    let integer = |value: &Cbor| match value {
        Cbor::Integer(i) => Some(i128::from(*i)),
        _ => None,
    };
    match value {
        // Past 2^53 an integer rounds to the nearest float; no plausible reading gets there.
        Cbor::Integer(i) => Ok(i128::from(*i) as f64),
        Cbor::Float(f) => Ok(*f),
        Cbor::Tag(tag @ (4 | 5), content) => {
            let pair = match content.as_ref() {
                Cbor::Array(parts) => match parts.as_slice() {
                    [exponent, mantissa] => integer(exponent).zip(integer(mantissa)),
                    _ => None,
                },
                _ => None,
            };
            let Some((exponent, mantissa)) = pair else {
                return Err(format!(
                    "CBOR tag {tag} must hold [exponent, mantissa], two integers"
                ));
            };
            let Ok(exponent) = i64::try_from(exponent) else {
                return Err(format!("exponent {exponent} out of range"));
            };
            if !(-EXPONENT_MAX..=EXPONENT_MAX).contains(&exponent) {
                return Err(format!(
                    "exponent {exponent} out of range (|e| <= {EXPONENT_MAX})"
                ));
            }
            let base: f64 = if *tag == 4 { 10.0 } else { 2.0 };
            let mantissa = mantissa as f64;
            // Dividing by an exact power of ten rounds once, so 4([-1, 382]) is the float 38.2.
            let scale = base.powi(exponent.unsigned_abs() as i32);
            Ok(if exponent < 0 {
                mantissa / scale
            } else {
                mantissa * scale
            })
        }
        Cbor::Tag(tag, _) => Err(format!(
            "CBOR tag {tag} is not a number (expected a float, an integer or a decimal fraction, tag 4)"
        )),
        other => Err(format!(
            "expected a number, got {}",
            match other {
                Cbor::Text(_) => "text",
                Cbor::Bytes(_) => "a byte string",
                Cbor::Bool(_) => "a boolean",
                Cbor::Null => "null",
                Cbor::Array(_) => "an array",
                Cbor::Map(_) => "a map",
                _ => "another CBOR value",
            }
        )),
    }
}

/// A pack: an array of records. Errors inside a record name its index.
pub(crate) struct RawPack(pub Vec<RawRecord>);

impl<'de> de::Deserialize<'de> for RawPack {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PackVisitor;
        impl<'de> Visitor<'de> for PackVisitor {
            type Value = RawPack;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a SenML pack (an array of records)")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawPack, A::Error> {
                let mut records = Vec::new();
                loop {
                    let index = records.len();
                    if index == super::RECORDS_MAX {
                        return Err(de::Error::custom(format_args!(
                            "more than {} records in one pack",
                            super::RECORDS_MAX
                        )));
                    }
                    let next = seq.next_element().map_err(|e: A::Error| {
                        de::Error::custom(format_args!("record {index}, {}", plain(&e)))
                    })?;
                    match next {
                        Some(record) => records.push(record),
                        None => return Ok(RawPack(records)),
                    }
                }
            }
        }
        deserializer.deserialize_seq(PackVisitor)
    }
}
