//! Messages the node sends to devices (replies to packs, alerts), signed by the node, so that
//! a client of the broker cannot forge them: the embedded broker cannot stop an authenticated
//! client from publishing on any topic, so the device checks every message itself.
//!
//! On the wire: `{"body": "<the JSON message>", "sig": "<Ed25519 signature, hex>"}`. The body
//! travels as a string so that the signed bytes are exactly the bytes received. The signature
//! covers a domain, the kind of message, the topic it is published on (so it cannot be moved
//! to another device or person) and, for a reply, the SHA-256 of the pack it answers (so it
//! cannot be replayed for another pack: the device checks it against its own copy).

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::admit::Reply;

const DOMAIN: &[u8] = b"vigil/node-message/v1";

/// Why a message from "the node" was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Forged {
    #[error("not a signed node message")]
    Malformed,
    #[error("the signature does not verify against the node's key")]
    BadSignature,
    #[error("the signed body is not a valid message")]
    BadBody,
}

#[derive(Debug, thiserror::Error)]
#[error("a node key is 64 hexadecimal digits of a valid Ed25519 public key")]
pub struct NodeKeyError;

/// The node's signing key for messages to devices.
pub struct NodeKey(SigningKey);

impl NodeKey {
    /// The node uses its gateway identity's 32-byte Ed25519 secret: one key, whose public half
    /// is already on the ledger.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    pub fn public(&self) -> NodePublicKey {
        NodePublicKey(self.0.verifying_key())
    }

    /// A signed reply to the pack `pack`, for `topic`.
    pub fn seal_reply(&self, topic: &str, pack: &[u8], reply: &Reply) -> Vec<u8> {
        let body = serde_json::to_string(reply).unwrap_or_default();
        self.seal(Kind::Reply, topic, Some(pack), body)
    }

    /// A signed alert (any JSON message for the person), for `topic`.
    pub fn seal_alert(&self, topic: &str, body: &[u8]) -> Vec<u8> {
        let body = String::from_utf8_lossy(body).into_owned();
        self.seal(Kind::Alert, topic, None, body)
    }

    fn seal(&self, kind: Kind, topic: &str, pack: Option<&[u8]>, body: String) -> Vec<u8> {
        let signature = self.0.sign(&message(kind, topic, pack, &body));
        serde_json::to_vec(&Envelope {
            body,
            sig: hex::encode(signature.to_bytes()),
        })
        .unwrap_or_default()
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey(public: {})", self.public())
    }
}

/// What a device knows of the node: its public key (learnt at enrollment or from its
/// configuration).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NodePublicKey(VerifyingKey);

impl NodePublicKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, NodeKeyError> {
        VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| NodeKeyError)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The reply in `payload`, received on `topic`, if the node signed it for the pack `pack`.
    pub fn open_reply(&self, topic: &str, pack: &[u8], payload: &[u8]) -> Result<Reply, Forged> {
        let body = self.open(Kind::Reply, topic, Some(pack), payload)?;
        serde_json::from_str(&body).map_err(|_| Forged::BadBody)
    }

    /// The sequence number a reply claims to answer, before its signature is checked: only
    /// to find the pack whose digest the signature must cover.
    pub fn peek_reply_sequence(payload: &[u8]) -> Option<u64> {
        let envelope: Envelope = serde_json::from_slice(payload).ok()?;
        serde_json::from_str::<Reply>(&envelope.body).ok()?.sequence
    }

    /// The alert in `payload`, received on `topic`, if the node signed it.
    pub fn open_alert(&self, topic: &str, payload: &[u8]) -> Result<serde_json::Value, Forged> {
        let body = self.open(Kind::Alert, topic, None, payload)?;
        serde_json::from_str(&body).map_err(|_| Forged::BadBody)
    }

    fn open(
        &self,
        kind: Kind,
        topic: &str,
        pack: Option<&[u8]>,
        payload: &[u8],
    ) -> Result<String, Forged> {
        let envelope: Envelope = serde_json::from_slice(payload).map_err(|_| Forged::Malformed)?;
        let mut signature = [0u8; 64];
        hex::decode_to_slice(&envelope.sig, &mut signature).map_err(|_| Forged::Malformed)?;
        self.0
            .verify_strict(
                &message(kind, topic, pack, &envelope.body),
                &Signature::from_bytes(&signature),
            )
            .map_err(|_| Forged::BadSignature)?;
        Ok(envelope.body)
    }
}

impl fmt::Display for NodePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0.to_bytes()))
    }
}

impl fmt::Debug for NodePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodePublicKey({self})")
    }
}

impl FromStr for NodePublicKey {
    type Err = NodeKeyError;
    fn from_str(s: &str) -> Result<Self, NodeKeyError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut bytes).map_err(|_| NodeKeyError)?;
        Self::from_bytes(&bytes)
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    body: String,
    sig: String,
}

#[derive(Clone, Copy)]
enum Kind {
    Reply = 1,
    Alert = 2,
}

fn message(kind: Kind, topic: &str, pack: Option<&[u8]>, body: &str) -> Vec<u8> {
    let mut message = DOMAIN.to_vec();
    message.push(kind as u8);
    message.extend_from_slice(&(topic.len() as u32).to_be_bytes());
    message.extend_from_slice(topic.as_bytes());
    if let Some(pack) = pack {
        message.extend_from_slice(&Sha256::digest(pack));
    }
    message.extend_from_slice(body.as_bytes());
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admit::{Rejected, Rejection};

    #[test]
    fn a_reply_verifies_only_for_its_pack_topic_and_key() {
        let key = NodeKey::from_seed([7; 32]);
        let public = key.public();
        let reply = Reply::accepted(3, 2);
        let sealed = key.seal_reply("vigil/p/d/reply", b"pack-3", &reply);
        assert_eq!(
            public.open_reply("vigil/p/d/reply", b"pack-3", &sealed),
            Ok(reply.clone())
        );
        assert_eq!(NodePublicKey::peek_reply_sequence(&sealed), Some(3));
        let open = |topic: &str, pack: &[u8], payload: &[u8]| {
            public.open_reply(topic, pack, payload).err()
        };
        assert_eq!(
            open("vigil/p/d/reply", b"pack-4", &sealed),
            Some(Forged::BadSignature)
        );
        assert_eq!(
            open("vigil/p/e/reply", b"pack-3", &sealed),
            Some(Forged::BadSignature)
        );
        let other = NodeKey::from_seed([8; 32]).seal_reply("vigil/p/d/reply", b"pack-3", &reply);
        assert_eq!(
            open("vigil/p/d/reply", b"pack-3", &other),
            Some(Forged::BadSignature)
        );
        let plain = serde_json::to_vec(&reply).expect("serializes");
        assert_eq!(
            open("vigil/p/d/reply", b"pack-3", &plain),
            Some(Forged::Malformed)
        );
        // The body altered after signing.
        let refused = Reply::rejected(Some(3), Rejected::new(Rejection::Unavailable, "busy"));
        let text = String::from_utf8(key.seal_reply("vigil/p/d/reply", b"pack-3", &refused))
            .expect("utf-8")
            .replace("\\\"accepted\\\":false", "\\\"accepted\\\":true");
        assert!(text.contains("\\\"accepted\\\":true"), "{text}");
        assert_eq!(
            open("vigil/p/d/reply", b"pack-3", text.as_bytes()),
            Some(Forged::BadSignature)
        );
    }

    #[test]
    fn an_alert_verifies_only_on_its_topic() {
        let key = NodeKey::from_seed([7; 32]);
        let sealed = key.seal_alert("vigil/p/alerts", br#"{"level":2}"#);
        assert_eq!(
            key.public().open_alert("vigil/p/alerts", &sealed),
            Ok(serde_json::json!({"level": 2}))
        );
        assert_eq!(
            key.public().open_alert("vigil/q/alerts", &sealed),
            Err(Forged::BadSignature)
        );
        let hex = key.public().to_string();
        assert_eq!(hex.parse::<NodePublicKey>().ok(), Some(key.public()));
    }
}
