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
                        de::Error::custom(format_args!("field \"{}\": {e}", label.name()))
                    };
                    match label {
                        Label::Bn => {
                            set(&mut record.bn, map.next_value().map_err(context)?, label)?
                        }
                        Label::Bt => {
                            set(&mut record.bt, map.next_value().map_err(context)?, label)?
                        }
                        Label::Bu => {
                            set(&mut record.bu, map.next_value().map_err(context)?, label)?
                        }
                        Label::Bv => {
                            set(&mut record.bv, map.next_value().map_err(context)?, label)?
                        }
                        Label::Bver => {
                            set(&mut record.bver, map.next_value().map_err(context)?, label)?
                        }
                        Label::N => set(&mut record.n, map.next_value().map_err(context)?, label)?,
                        Label::U => set(&mut record.u, map.next_value().map_err(context)?, label)?,
                        Label::V => set(&mut record.v, map.next_value().map_err(context)?, label)?,
                        Label::Vb => {
                            set(&mut record.vb, map.next_value().map_err(context)?, label)?
                        }
                        Label::T => set(&mut record.t, map.next_value().map_err(context)?, label)?,
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
                        de::Error::custom(format_args!("record {index}, {e}"))
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
