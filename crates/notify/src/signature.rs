//! Webhook signatures: how a receiver knows a request came from this node, unaltered, and
//! recently.
//!
//! Every request carries
//!
//! ```text
//! Vigil-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." || body)>
//! ```
//!
//! To verify, a receiver takes `t` and the `v1` values from the header, computes
//! HMAC-SHA256 with the channel's shared secret over the ASCII decimal `t`, one `.` and the
//! raw body bytes exactly as received (before any JSON parsing), compares in constant time with
//! each `v1` (more than one may appear while a secret is being rotated), and refuses a `t` more
//! than five minutes ([`TOLERANCE_S_DEFAULT`]) from its own clock, which bounds replays. Each
//! attempt is signed anew, so a retried delivery has a fresh `t`; the body's `id` stays the
//! same, for deduplication. [`verify`] does all of this.
//!
//! The timestamp is inside the MAC so that a captured request cannot be replayed later with a
//! new header; the `v1` label lets the scheme change without breaking receivers.

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// The header's name.
pub const HEADER: &str = "Vigil-Signature";
/// How far a signature's time may be from the receiver's clock.
pub const TOLERANCE_S_DEFAULT: u64 = 300;
/// Shortest secret accepted: 32 bytes, HMAC-SHA256's output size.
pub const SECRET_BYTES_MIN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// A channel's shared secret. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret of at least [`SECRET_BYTES_MIN`] bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, SignatureError> {
        if bytes.len() < SECRET_BYTES_MIN {
            return Err(SignatureError::SecretTooShort(bytes.len()));
        }
        Ok(Self(bytes))
    }

    fn mac(&self, timestamp_s: u64, body: &[u8]) -> HmacSha256 {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        mac.update(timestamp_s.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("a webhook secret must be at least {SECRET_BYTES_MIN} bytes, not {0}")]
    SecretTooShort(usize),
    #[error("the signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error("the signature is {age_s} s away from now, over the {tolerance_s} s allowed")]
    Stale { age_s: u64, tolerance_s: u64 },
    #[error("no signature in the header matches the body")]
    Mismatch,
}

/// The header value for `body` sent at `timestamp_s` (unix seconds).
pub fn sign(secret: &Secret, timestamp_s: u64, body: &[u8]) -> String {
    let tag = secret.mac(timestamp_s, body).finalize().into_bytes();
    format!("t={timestamp_s},v1={}", hex::encode(tag))
}

/// Checks a received header against the body, at the receiver's time `now_s`, allowing
/// `tolerance_s` of clock difference either way.
pub fn verify(
    secret: &Secret,
    header: &str,
    body: &[u8],
    now_s: u64,
    tolerance_s: u64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed("a part is not key=value"))?;
        match key {
            "t" => {
                let t: u64 = value
                    .parse()
                    .map_err(|_| SignatureError::Malformed("t is not unix seconds"))?;
                if timestamp.replace(t).is_some() {
                    return Err(SignatureError::Malformed("t appears twice"));
                }
            }
            "v1" => {
                let mut tag = [0u8; 32];
                hex::decode_to_slice(value, &mut tag)
                    .map_err(|_| SignatureError::Malformed("v1 is not 64 hex digits"))?;
                tags.push(tag);
            }
            // Other schemes (a later v2) are skipped, so that a sender can add one first.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no t"))?;
    if tags.is_empty() {
        return Err(SignatureError::Malformed("no v1"));
    }
    let age_s = now_s.abs_diff(timestamp);
    if age_s > tolerance_s {
        return Err(SignatureError::Stale { age_s, tolerance_s });
    }
    let expected = secret.mac(timestamp, body);
    // `verify_slice` compares in constant time.
    if tags
        .iter()
        .any(|tag| expected.clone().verify_slice(tag).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new(b"0123456789abcdef0123456789abcdef".to_vec()).expect("long enough")
    }

    #[test]
    fn a_signature_matches_an_independent_hmac_sha256() {
        // RFC 4231 has no test vector of this form, so the expectation is computed from the
        // definition, HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m)), with SHA-256 alone.
        use sha2::Digest as _;
        let key = b"0123456789abcdef0123456789abcdef";
        let message = b"1700000000.{\"id\":1}";
        let mut ipad = [0x36u8; 64];
        let mut opad = [0x5cu8; 64];
        for (i, byte) in key.iter().enumerate() {
            ipad[i] ^= byte;
            opad[i] ^= byte;
        }
        let inner = Sha256::new()
            .chain_update(ipad)
            .chain_update(message)
            .finalize();
        let outer = Sha256::new()
            .chain_update(opad)
            .chain_update(inner)
            .finalize();
        let header = sign(&secret(), 1_700_000_000, b"{\"id\":1}");
        assert_eq!(
            header,
            format!("t=1700000000,v1={}", hex::encode(outer.as_slice()))
        );
    }

    #[test]
    fn a_receiver_accepts_a_fresh_signature_and_refuses_any_change() {
        let body = br#"{"event":"alert","level":2}"#;
        let header = sign(&secret(), 1_000, body);
        assert_eq!(verify(&secret(), &header, body, 1_000, 300), Ok(()));
        assert_eq!(verify(&secret(), &header, body, 1_299, 300), Ok(()));
        assert_eq!(
            verify(
                &secret(),
                &header,
                br#"{"event":"alert","level":1}"#,
                1_000,
                300
            ),
            Err(SignatureError::Mismatch)
        );
        let other = Secret::new(vec![7; 32]).expect("long enough");
        assert_eq!(
            verify(&other, &header, body, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        // The time is inside the MAC: moving it breaks the signature.
        let moved = header.replacen("t=1000", "t=1001", 1);
        assert_eq!(
            verify(&secret(), &moved, body, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&secret(), &header, body, 1_301, 300),
            Err(SignatureError::Stale {
                age_s: 301,
                tolerance_s: 300
            })
        );
    }

    #[test]
    fn a_rotated_secret_verifies_with_either_tag() {
        let body = b"{}";
        let new = Secret::new(vec![9; 40]).expect("long enough");
        let old_tag = sign(&secret(), 5, body);
        let new_tag = sign(&new, 5, body);
        let both = format!("{new_tag},{}", old_tag.trim_start_matches("t=5,"));
        assert_eq!(verify(&secret(), &both, body, 5, 300), Ok(()));
        assert_eq!(verify(&new, &both, body, 5, 300), Ok(()));
    }

    #[test]
    fn malformed_headers_are_refused_without_panicking() {
        for header in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1,t=1,v1=",
            "t=1,v1=zz",
            "garbage",
            "t=18446744073709551616,v1=00",
            ",,,",
        ] {
            assert!(
                matches!(
                    verify(&secret(), header, b"", 1, 300),
                    Err(SignatureError::Malformed(_))
                ),
                "{header:?}"
            );
        }
        assert_eq!(
            Secret::new(vec![1; 31]),
            Err(SignatureError::SecretTooShort(31))
        );
    }
}
