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
