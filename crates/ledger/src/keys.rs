//! Ed25519 identities: generation and key files.
//!
//! - Tests and demos: `PrivateKey::from_seed(n)` (deterministic, insecure).
//! - Production: [`random_key`] with a cryptographic RNG, e.g. the tokio runtime context
//!   (`commonware_runtime::tokio::Context` implements `CryptoRng`, backed by the OS RNG) or
//!   [`os_random_key`] outside a runtime.
//!
//! A key file is TOML: `private_key = "<64 hex>"` and `public_key = "<64 hex>"` (the public key
//! is checked against the private one when read). Written with mode 0600 on Unix.

use std::path::Path;

use commonware_codec::{DecodeExt as _, Encode as _};
use commonware_cryptography::{
    Signer as _,
    ed25519::{PrivateKey, PublicKey},
};
use commonware_math::algebra::Random as _;
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

/// A fresh key from a cryptographic RNG.
pub fn random_key(rng: &mut impl CryptoRng) -> PrivateKey {
    PrivateKey::random(rng)
}

/// A fresh key from the operating system's RNG.
pub fn os_random_key() -> PrivateKey {
    let mut rng = rand_core::UnwrapErr(getrandom_rng::OsRng);
    PrivateKey::random(&mut rng)
}

mod getrandom_rng {
    use core::convert::Infallible;

    /// The OS RNG as a `rand_core` 0.10 RNG.
    pub struct OsRng;

    impl rand_core::TryRng for OsRng {
        type Error = Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Infallible> {
            let mut b = [0u8; 4];
            self.try_fill_bytes(&mut b)?;
            Ok(u32::from_le_bytes(b))
        }
        fn try_next_u64(&mut self) -> Result<u64, Infallible> {
            let mut b = [0u8; 8];
            self.try_fill_bytes(&mut b)?;
            Ok(u64::from_le_bytes(b))
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Infallible> {
            getrandom::getrandom(dest).expect("the operating system RNG is available");
            Ok(())
        }
    }

    impl rand_core::TryCryptoRng for OsRng {}
}

/// Hex of a public key (as in genesis files).
pub fn public_hex(key: &PublicKey) -> String {
    hex::encode(key.encode())
}

/// Parse a hex public key.
pub fn parse_public(hex_key: &str) -> Result<PublicKey, KeyError> {
    let bytes = hex::decode(hex_key.trim()).map_err(|_| KeyError::Hex)?;
    PublicKey::decode(bytes::Bytes::from(bytes)).map_err(|_| KeyError::Invalid)
}

/// Why a key could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("reading or writing the key file: {0}")]
    Io(#[from] std::io::Error),
    #[error("key file is not valid TOML: {0}")]
    Toml(String),
    #[error("key is not hex")]
    Hex,
    #[error("not a valid Ed25519 key")]
    Invalid,
    #[error("the public key does not match the private key")]
    Mismatch,
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    private_key: String,
    public_key: String,
}

/// The TOML text of a key file.
pub fn key_file_text(key: &PrivateKey) -> String {
    let file = KeyFile {
        private_key: hex::encode(key.encode()),
        public_key: public_hex(&key.public_key()),
    };
    toml::to_string(&file).expect("serializable")
}

/// Parse a key file's text.
pub fn parse_key_file(text: &str) -> Result<PrivateKey, KeyError> {
    let file: KeyFile = toml::from_str(text).map_err(|e| KeyError::Toml(e.to_string()))?;
    let bytes = hex::decode(file.private_key.trim()).map_err(|_| KeyError::Hex)?;
    let key = PrivateKey::decode(bytes::Bytes::from(bytes)).map_err(|_| KeyError::Invalid)?;
    if parse_public(&file.public_key)? != key.public_key() {
        return Err(KeyError::Mismatch);
    }
    Ok(key)
}

/// Write a key file (fails if it exists).
pub fn write_key_file(path: &Path, key: &PrivateKey) -> Result<(), KeyError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(key_file_text(key).as_bytes())?;
    Ok(())
}

/// Read a key file.
pub fn read_key_file(path: &Path) -> Result<PrivateKey, KeyError> {
    parse_key_file(&std::fs::read_to_string(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trips_and_rejects_mismatch() {
        let key = os_random_key();
        assert_ne!(key.public_key(), os_random_key().public_key());
        let text = key_file_text(&key);
        assert_eq!(
            parse_key_file(&text).expect("parse").public_key(),
            key.public_key()
        );
        let other = public_hex(&PrivateKey::from_seed(1).public_key());
        let forged = text.replace(&public_hex(&key.public_key()), &other);
        assert!(matches!(parse_key_file(&forged), Err(KeyError::Mismatch)));
    }
}
