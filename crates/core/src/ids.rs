use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    #[error("a pseudonym is 32 hexadecimal digits, got {0:?}")]
    Pseudonym(String),
    #[error(
        "a device id is 1 to {max} characters from A-Z a-z 0-9 . _ - or a device URN \
         (urn:dev:mac:<hex>, urn:dev:ow:<hex>, urn:dev:org:, os:, ops:, example:), got {0:?}",
        max = DeviceId::LEN_MAX
    )]
    Device(String),
}

/// A person's pseudonym: 128 random bits. It is drawn from the operating system's random
/// source and never derived from a name, a phone number or any other identity, so the ledger
/// can carry it without linking anything to a real person.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersonId([u8; 16]);

impl PersonId {
    /// A fresh pseudonym from the operating system's random source.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        // The OS random source failing is not something to recover from: no pseudonym may be
        // made from anything weaker.
        getrandom::getrandom(&mut bytes).expect("operating system random source unavailable");
        Self(bytes)
    }

    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonId({self})")
    }
}

impl FromStr for PersonId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let mut bytes = [0u8; 16];
        if s.len() != 32 || hex::decode_to_slice(s, &mut bytes).is_err() {
            return Err(IdError::Pseudonym(truncate(s)));
        }
        Ok(Self(bytes))
    }
}

/// A device's identifier: the name it announces in the base name of its SenML packs
/// (`"bn": "thermo-01:"`). It is bound to the device's public key by enrollment on the ledger.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(String);

impl DeviceId {
    pub const LEN_MAX: usize = 64;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DeviceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        let plain = !s.is_empty() && s.chars().all(allowed);
        if s.len() > Self::LEN_MAX || !(plain || is_device_urn(s)) {
            return Err(IdError::Device(truncate(s)));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.0)
    }
}

/// A device URN in the canonical form of RFC 9039, which RFC 8428 §5 recommends for SenML
/// base names: `urn:dev:mac:` or `urn:dev:ow:` and lowercase hexadecimal digits, or
/// `urn:dev:org:`, `os:`, `ops:`, `example:` and colon-separated parts of unreserved characters.
/// Only the canonical spelling is taken (lowercase scheme, no percent-encoding): the id is
/// signed and compared byte for byte, so two spellings of one device would be two devices.
fn is_device_urn(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:dev:") else {
        return false;
    };
    let Some((kind, body)) = rest.split_once(':') else {
        return false;
    };
    let hex = |body: &str| {
        !body.is_empty()
            && body.len().is_multiple_of(2)
            && body.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    // RFC 3986 unreserved characters; ':' separates parts and '%' escapes are refused.
    let parts = |body: &str| {
        body.split(':').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        })
    };
    match kind {
        // EUI-48 or EUI-64 (RFC 9039 §3.1), and 1-Wire's 64-bit ids (§3.2).
        "mac" => hex(body) && matches!(body.len(), 12 | 16),
        "ow" => hex(body) && body.len() == 16,
        // "<enterprise number>-..." (§3.3 to §3.5), and "example" for documentation (§3.6).
        "org" | "os" | "ops" => {
            body.split_once('-').is_some_and(|(number, _)| {
                !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
            }) && parts(body)
        }
        "example" => parts(body),
        _ => false,
    }
}

/// Error messages quote the offending input, but never more than a line of it.
fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

macro_rules! serde_via_str {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_via_str!(PersonId);
serde_via_str!(DeviceId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_random_and_round_trip() {
        let a = PersonId::random();
        let b = PersonId::random();
        assert_ne!(a, b);
        assert_eq!(a.to_string().parse::<PersonId>(), Ok(a));
        assert!("xyz".parse::<PersonId>().is_err());
        assert!("0".repeat(31).parse::<PersonId>().is_err());
    }

    #[test]
    fn device_ids_reject_separators_and_overlong_names() {
        assert!("thermo-01".parse::<DeviceId>().is_ok());
        for bad in ["", "a:b", "a b", "é", &"x".repeat(65)] {
            assert!(bad.parse::<DeviceId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn device_urns_of_rfc_9039_are_ids_in_their_canonical_spelling_only() {
        for good in [
            "urn:dev:mac:0024befffe804ff1",
            "urn:dev:mac:0024be804ff1",
            "urn:dev:ow:10e2073a01080063",
            "urn:dev:org:32473-foo",
            "urn:dev:os:32473-123456",
            "urn:dev:ops:32473-Refrigerator-5002",
            "urn:dev:example:new1",
        ] {
            assert!(good.parse::<DeviceId>().is_ok(), "{good:?}");
        }
        for bad in [
            "URN:dev:mac:0024befffe804ff1",
            "urn:dev:mac:0024BEFFFE804FF1",
            "urn:dev:mac:0024befffe804ff",
            "urn:dev:ow:10e2073a0108006",
            "urn:dev:mac:",
            "urn:dev:org:foo",
            "urn:dev:example:a::b",
            "urn:dev:example:a%20b",
            "urn:dev:other:abc",
            "urn:dev:example:x:",
        ] {
            assert!(bad.parse::<DeviceId>().is_err(), "{bad:?}");
        }
    }
}
