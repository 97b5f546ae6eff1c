//! Authenticated encryption of records, identities and data keys with XChaCha20-Poly1305.
//! The 192-bit nonce is drawn at random for every message, which is safe at any volume
//! (collision odds stay negligible far beyond 2^64 messages), so no nonce counter must survive
//! restarts.

use chacha20poly1305::aead::{Aead, AeadInOut, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 24;

/// A 256-bit symmetric key. Debug never prints it.
#[derive(Clone)]
pub struct SecretKey(pub(crate) [u8; KEY_LEN]);

impl SecretKey {
    pub fn random() -> Self {
        let mut key = [0u8; KEY_LEN];
        getrandom::getrandom(&mut key).expect("operating system random source unavailable");
        Self(key)
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub fn to_bytes(&self) -> [u8; KEY_LEN] {
        self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

pub(crate) fn seal(key: &SecretKey, aad: &[u8], plaintext: &[u8]) -> ([u8; NONCE_LEN], Vec<u8>) {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce).expect("operating system random source unavailable");
    let cipher = XChaCha20Poly1305::new(&key.0.into());
    let ciphertext = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        // Encryption fails only for plaintexts beyond 256 GiB.
        .expect("plaintext within AEAD limits");
    (nonce, ciphertext)
}

/// Fresh random nonces for `count` messages, drawn from the operating system in one call: a
/// system call per record was a measurable share of ingestion.
pub(crate) fn nonces(count: usize) -> Vec<[u8; NONCE_LEN]> {
    let mut bytes = vec![0u8; count * NONCE_LEN];
    getrandom::getrandom(&mut bytes).expect("operating system random source unavailable");
    bytes
        .chunks_exact(NONCE_LEN)
        .map(|chunk| {
            let mut nonce = [0u8; NONCE_LEN];
            nonce.copy_from_slice(chunk);
            nonce
        })
        .collect()
}

pub(crate) type Cipher = XChaCha20Poly1305;

pub(crate) fn cipher(key: &SecretKey) -> Cipher {
    XChaCha20Poly1305::new(&key.0.into())
}

/// Encrypts `buffer` in place (the tag is appended), so a record's plaintext and ciphertext
/// share one allocation.
pub(crate) fn seal_in_place(
    cipher: &XChaCha20Poly1305,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buffer: &mut Vec<u8>,
) {
    cipher
        .encrypt_in_place(&XNonce::from(*nonce), aad, buffer)
        // Encryption fails only for plaintexts beyond 256 GiB.
        .expect("plaintext within AEAD limits");
}

/// `None` if the ciphertext, nonce or associated data were altered, or the key is wrong.
pub(crate) fn open(
    key: &SecretKey,
    nonce: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Option<Vec<u8>> {
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    let cipher = XChaCha20Poly1305::new(&key.0.into());
    cipher
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
}
