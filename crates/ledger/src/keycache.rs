//! Decoded signer keys, cached by their bytes.
//!
//! Decoding an Ed25519 public key decompresses a curve point (a field inversion and a square
//! root), and every validator decodes each transaction several times: from gossip, inside
//! proposed blocks, from storage. A consortium has few signers (gateways, staff), so a small
//! cache turns almost every one of those decompressions into a lookup. Decoding is a pure
//! function of the bytes, so a cached key is exactly the key a fresh decode would give.

use std::num::NonZeroUsize;
use std::sync::{LazyLock, Mutex};

use bytes::Bytes;
use commonware_codec::{Buf, Error as CodecError, ReadExt as _};
use commonware_cryptography::ed25519::PublicKey;
use lru::LruCache;

/// Signer keys held; beyond this the least recently used is forgotten.
const KEYS_MAX: NonZeroUsize = NonZeroUsize::new(65_536).expect("not zero");

static KEYS: LazyLock<Mutex<LruCache<[u8; 32], PublicKey>>> =
    LazyLock::new(|| Mutex::new(LruCache::new(KEYS_MAX)));

/// Reads a public key from `reader` as `PublicKey::read` does, decompressing each distinct key
/// once.
pub(crate) fn read_public_key(reader: &mut impl Buf) -> Result<PublicKey, CodecError> {
    let raw = <[u8; 32]>::read(reader)?;
    if let Some(key) = KEYS
        .lock()
        .ok()
        .and_then(|mut keys| keys.get(&raw).cloned())
    {
        return Ok(key);
    }
    let key = PublicKey::read(&mut Bytes::copy_from_slice(&raw))?;
    if let Ok(mut keys) = KEYS.lock() {
        keys.put(raw, key.clone());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use commonware_codec::Encode as _;
    use commonware_cryptography::{Signer as _, ed25519::PrivateKey};

    use super::*;

    #[test]
    fn cached_keys_equal_fresh_decodes_and_bad_points_are_refused() {
        let key = PrivateKey::from_seed(42).public_key();
        let bytes = key.encode();
        for _ in 0..2 {
            let decoded = read_public_key(&mut bytes.clone()).expect("valid key");
            assert_eq!(decoded, key);
        }
        // Bytes that are not a curve point (about half of all y have no x): refused, not cached.
        let bad = (2u8..=255)
            .map(|y| {
                let mut raw = [0u8; 32];
                raw[0] = y;
                raw
            })
            .find(|raw| PublicKey::read(&mut Bytes::copy_from_slice(raw)).is_err())
            .expect("some y is not on the curve");
        assert!(read_public_key(&mut Bytes::copy_from_slice(&bad)).is_err());
        assert!(read_public_key(&mut Bytes::copy_from_slice(&bad)).is_err());
        // Short input.
        assert!(read_public_key(&mut bytes.slice(..31)).is_err());
    }
}
