//! Instance files: contract instances (and the devices they watch) written by hand, in TOML or
//! JSON, for `vigil contracts check|eval` and for seeding a deployment.
//!
//! ```toml
//! [[device]]
//! id = "thermo-1"
//! person = "…32 hex…"
//! [[instance]]
//! name = "fever"            # optional display name, not part of the deployment's address
//! person = "…32 hex…"
//! device = "thermo-1"       # optional
//! nonce = 0                 # optional
//! [instance.params]
//! kind = "threshold"
//! # …the contract's parameters
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use vigil_core::{DeviceId, PersonId};

use crate::{CatalogError, Deployment, Params};

/// One `[[instance]]` of an instance file: a deployment plus an optional display name (which
/// is not part of the deployment, hence not of its address).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceEntry {
    #[serde(default)]
    name: Option<String>,
    person: PersonId,
    #[serde(default)]
    device: Option<DeviceId>,
    #[serde(default)]
    nonce: u64,
    params: Params,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceEntry {
    id: DeviceId,
    person: PersonId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceFileRaw {
    #[serde(default)]
    device: Vec<DeviceEntry>,
    #[serde(default)]
    instance: Vec<InstanceEntry>,
}

/// A checked instance file.
#[derive(Debug)]
pub struct InstanceFile {
    /// Which person each listed device belongs to.
    pub devices: BTreeMap<DeviceId, PersonId>,
    /// Validated deployments with their display names, in file order.
    pub instances: Vec<(Deployment, String)>,
}

/// Why an instance file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstanceFileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: an instance file ends in .toml or .json")]
    Extension { path: PathBuf },
    #[error("{path}: invalid instance file: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: device {device} is listed for two people")]
    DeviceTwice { path: PathBuf, device: DeviceId },
    #[error("{path}: instance[{index}] ({name}): {source}")]
    Instance {
        path: PathBuf,
        index: usize,
        name: String,
        source: CatalogError,
    },
}

impl InstanceFile {
    /// Reads and checks the file at `path`; its extension (`.toml` or `.json`) names its
    /// format.
    pub fn load(path: &Path) -> Result<InstanceFile, InstanceFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| InstanceFileError::Io {
            path: path.to_owned(),
            source,
        })?;
        let syntax = |message: String| InstanceFileError::Syntax {
            path: path.to_owned(),
            message,
        };
        let raw: InstanceFileRaw = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => toml::from_str(&text).map_err(|e| syntax(e.to_string()))?,
            Some("json") => serde_json::from_str(&text).map_err(|e| syntax(e.to_string()))?,
            _ => {
                return Err(InstanceFileError::Extension {
                    path: path.to_owned(),
                });
            }
        };
        InstanceFile::check(raw, path)
    }

    fn check(raw: InstanceFileRaw, path: &Path) -> Result<InstanceFile, InstanceFileError> {
        let mut devices = BTreeMap::new();
        for d in raw.device {
            if let Some(previous) = devices.insert(d.id.clone(), d.person)
                && previous != d.person
            {
                return Err(InstanceFileError::DeviceTwice {
                    path: path.to_owned(),
                    device: d.id,
                });
            }
        }
        let mut instances = Vec::new();
        for (index, entry) in raw.instance.into_iter().enumerate() {
            let name = entry
                .name
                .unwrap_or_else(|| format!("{}#{index}", entry.params.kind()));
            let deployment = Deployment {
                person: entry.person,
                device: entry.device,
                nonce: entry.nonce,
                params: entry.params,
            };
            if let Err(source) = deployment.validate() {
                return Err(InstanceFileError::Instance {
                    path: path.to_owned(),
                    index,
                    name,
                    source,
                });
            }
            instances.push((deployment, name));
        }
        Ok(InstanceFile { devices, instances })
    }
}
