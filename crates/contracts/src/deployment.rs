//! Deployments and their addresses: who an instance watches, what it listens to, with which
//! parameters, and the digest of that canonical description that names it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use vigil_core::{DeviceId, Digest, PersonId, Reading};

use crate::canon::{Canonical, Encoder};
use crate::contract::{Contract, Kind, Params};
use crate::error::CatalogError;

/// Domain separators of the digests this crate takes.
pub const INSTANCE_DOMAIN: &str = "vigil.contracts.instance.v1";

/// An instance's address: the digest of its canonical [`Deployment`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(pub Digest);

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstanceId({self})")
    }
}

impl FromStr for InstanceId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() != 64 {
            return Err(format!(
                "an instance id is 64 hexadecimal digits, got {} characters",
                s.len()
            ));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|e| format!("{s:?}: {e}"))?;
        Ok(Self(out))
    }
}

impl Serialize for InstanceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InstanceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A deployment: who, what it listens to, with which parameters. The nonce lets the same
/// parameters be deployed twice for one person as two instances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    pub person: PersonId,
    /// Binds the instance to one device's readings; required for no-signal. Without it the
    /// instance takes the person's readings of its metrics from any device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceId>,
    #[serde(default)]
    pub nonce: u64,
    pub params: Params,
}

impl Canonical for Deployment {
    fn encode(&self, e: &mut Encoder) {
        e.value(&self.person);
        e.opt(self.device.as_ref(), |e, d| d.encode(e));
        e.u64(self.nonce).value(&self.params);
    }
}

impl Deployment {
    /// The instance's address.
    pub fn id(&self) -> InstanceId {
        InstanceId(vigil_core::digest(
            INSTANCE_DOMAIN,
            &[&self.canonical_bytes()],
        ))
    }

    /// Everything a validator checks before accepting a deployment transaction: the
    /// parameters and the binding. Returns the ready contract.
    pub fn validate(&self) -> Result<Contract, CatalogError> {
        let contract = self.params.validate()?;
        if contract.kind() == Kind::NoSignal && self.device.is_none() {
            return Err(CatalogError::DeviceRequired {
                kind: Kind::NoSignal.name(),
            });
        }
        Ok(contract)
    }

    /// Whether a person's reading is routed to this deployment.
    pub(crate) fn binds(&self, contract: &Contract, reading: &Reading) -> bool {
        self.device.as_ref().is_none_or(|d| *d == reading.device)
            && contract.accepts(reading.metric)
    }
}
