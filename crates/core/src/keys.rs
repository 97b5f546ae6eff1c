use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    #[error("a key is 64 hexadecimal digits (32 bytes)")]
    Encoding,
    #[error("the public key is not a valid Ed25519 point")]
    InvalidPoint,
    #[error("the public key is a point of small order (the identity or a torsion point)")]
    WeakKey,
    #[error("the public key is not the canonical encoding of its point")]
    NonCanonical,
}

/// A device's Ed25519 signing key. It never leaves the device (or the simulator).
pub struct DeviceKey(SigningKey);

impl DeviceKey {
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).expect("operating system random source unavailable");
        Self(SigningKey::from_bytes(&seed))
    }

    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public(&self) -> DevicePublicKey {
        DevicePublicKey(self.0.verifying_key())
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceKey(public: {})", self.public())
    }
}

/// A message, its signature and the key that should have made it.
pub(crate) type SignedMessage<'a> = (&'a [u8], &'a [u8; 64], &'a DevicePublicKey);

/// A device's public key, as enrolled on the ledger.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DevicePublicKey(VerifyingKey);

impl DevicePublicKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| KeyError::InvalidPoint)
    }

    /// A key fit to be enrolled: a valid point that is not of small order (the identity or a
    /// torsion point, whose "signatures" need no secret key) and encoded canonically (one
    /// point has one encoding, so one key cannot be enrolled under two spellings). The API
    /// checks it before submitting an enrollment and the ledger's state machine again when
    /// applying one; [`DevicePublicKey::from_bytes`] stays lenient for keys already enrolled.
    pub fn for_enrollment(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let key = Self::from_bytes(bytes)?;
        // Decompression accepts a y coordinate not reduced modulo p and a sign bit on x = 0;
        // the point's own encoding is the one canonical form.
        if key.0.to_edwards().compress().to_bytes() != *bytes {
            return Err(KeyError::NonCanonical);
        }
        if key.0.is_weak() {
            return Err(KeyError::WeakKey);
        }
        Ok(key)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Strict verification: rejects non-canonical and small-order encodings, so a signature
    /// cannot be malleated into a second valid one for the same message.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok()
    }

    /// Whether every signature verifies, by one batch equation (ed25519-dalek's
    /// `verify_batch`: one multiscalar multiplication for all, about half the cost of checking
    /// each). `false` says only that some signature fails, or that some key is of small order
    /// (which strict verification refuses and the batch would not): the caller then checks
    /// each with [`DevicePublicKey::verify`] to learn which.
    ///
    /// A batch pass is not strictly the same verdict as `verify_strict` on each: a signature
    /// whose `R` has a small-order component can pass the batch equation. Only the holder of
    /// the device's secret key can make such a signature (it must satisfy the equation with
    /// `H(R‖A‖M)` for the altered `R`), so it is no forgery and gives no third party a second
    /// valid pack; and nothing downstream tells packs apart by their signature bytes.
    pub(crate) fn verify_batch(items: &[SignedMessage<'_>]) -> bool {
        if items.iter().any(|(_, _, key)| key.0.is_weak()) {
            return false;
        }
        let messages: Vec<&[u8]> = items.iter().map(|(message, _, _)| *message).collect();
        let signatures: Vec<Signature> = items
            .iter()
            .map(|(_, signature, _)| Signature::from_bytes(signature))
            .collect();
        let keys: Vec<VerifyingKey> = items.iter().map(|(_, _, key)| key.0).collect();
        ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
    }
}

impl fmt::Display for DevicePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0.to_bytes()))
    }
}

impl fmt::Debug for DevicePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DevicePublicKey({self})")
    }
}

impl FromStr for DevicePublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| KeyError::Encoding)?;
        Self::from_bytes(&bytes)
    }
}

impl Serialize for DevicePublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DevicePublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `p + y` for a small `y`: a second, non-canonical encoding of the point with that `y`.
    fn unreduced(y: u8) -> [u8; 32] {
        let mut bytes = [0xff; 32];
        bytes[0] = 0xed + y;
        bytes[31] = 0x7f;
        bytes
    }

    /// Issue 13: the identity point and non-canonical encodings were accepted as device keys.
    #[test]
    fn enrollment_refuses_small_order_points_and_non_canonical_encodings() {
        let good = DeviceKey::from_seed([1; 32]).public().to_bytes();
        assert!(DevicePublicKey::for_enrollment(&good).is_ok());
        // The eight points of small order (the identity, order 2, 4 and 8), canonically encoded.
        for hex in [
            "0100000000000000000000000000000000000000000000000000000000000000",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000000000000080",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        ] {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(hex, &mut bytes).expect("hex");
            assert!(DevicePublicKey::from_bytes(&bytes).is_ok(), "{hex} decodes");
            assert_eq!(
                DevicePublicKey::for_enrollment(&bytes),
                Err(KeyError::WeakKey),
                "{hex}"
            );
        }
        // Points of large order with a small y, under their second encoding: refused as
        // non-canonical, while their canonical encoding is enrollable.
        let mut non_canonical = 0;
        for y in 2..=18u8 {
            let mut canonical = [0u8; 32];
            canonical[0] = y;
            if DevicePublicKey::from_bytes(&canonical).is_err() {
                continue;
            }
            assert!(
                DevicePublicKey::for_enrollment(&canonical).is_ok(),
                "y = {y}"
            );
            assert!(
                DevicePublicKey::from_bytes(&unreduced(y)).is_ok(),
                "y = {y}"
            );
            assert_eq!(
                DevicePublicKey::for_enrollment(&unreduced(y)),
                Err(KeyError::NonCanonical),
                "y = {y}"
            );
            non_canonical += 1;
        }
        assert!(non_canonical > 0, "some small y is on the curve");
        // The identity under its second encoding (sign bit on x = 0): refused either way.
        let mut negative_zero = [0u8; 32];
        negative_zero[0] = 1;
        negative_zero[31] = 0x80;
        assert!(DevicePublicKey::for_enrollment(&negative_zero).is_err());
    }
}
