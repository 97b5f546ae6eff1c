//! Operator files: the genesis (TOML) and one validator's node configuration (TOML).
//!
//! ```toml
//! # genesis.toml: every validator must hold an identical copy.
//! label = "vigil-local"
//! [[validators]]
//! public_key = "…64 hex…"
//! address = "127.0.0.1:7100"
//! [[roles]]
//! public_key = "…64 hex…"
//! role = "admin"          # admin, cdcp-operator, doctor, auditor, gateway, validator, verifying-node
//! ```
//!
//! ```toml
//! # node.toml: one validator.
//! key_file = "v0.key"      # relative paths are relative to this file
//! genesis = "genesis.toml"
//! data_dir = "data/v0"
//! listen = "127.0.0.1:7100"   # optional: defaults to the validator's genesis address
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use commonware_cryptography::{
    Signer as _,
    ed25519::{PrivateKey, PublicKey},
};
use serde::{Deserialize, Serialize};

use crate::keys::{self, KeyError};
use crate::net::PeerAddress;
use crate::node::Genesis;
use crate::tx::Role;

/// Validators in a genesis at most.
pub const GENESIS_VALIDATORS_MAX: usize = 100;
/// Role grants in a genesis at most.
pub const GENESIS_ROLES_MAX: usize = 10_000;
/// Storage partition prefix of a validator started from a node configuration.
pub const NODE_PARTITION_PREFIX: &str = "ledger";
/// The copy of the genesis a node keeps in its data directory (read by `vigil ledger verify`).
pub const DATA_DIR_GENESIS: &str = "genesis.toml";

/// Why an operator file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("validator {index}: {source}")]
    ValidatorKey { index: usize, source: KeyError },
    #[error("role {index}: {source}")]
    RoleKey { index: usize, source: KeyError },
    #[error("role {index}: unknown role {name:?}")]
    UnknownRole { index: usize, name: String },
    #[error("a genesis needs 1..={GENESIS_VALIDATORS_MAX} distinct validators")]
    Validators,
    #[error("a genesis holds at most {GENESIS_ROLES_MAX} roles")]
    Roles,
    #[error("a genesis needs at least one admin")]
    NoAdmin,
    #[error("key file {path}: {source}")]
    Key { path: PathBuf, source: KeyError },
    #[error("this node's key {0} is not a genesis validator")]
    NotAValidator(String),
}

/// The genesis file as written.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisFile {
    pub label: String,
    pub validators: Vec<ValidatorEntry>,
    #[serde(default)]
    pub roles: Vec<RoleEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorEntry {
    pub public_key: String,
    pub address: SocketAddr,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleEntry {
    pub public_key: String,
    pub role: String,
}

/// A parsed genesis: the ledger genesis and the validators' addresses.
#[derive(Clone)]
pub struct LoadedGenesis {
    pub genesis: Genesis,
    pub peers: Vec<PeerAddress>,
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })
}

impl GenesisFile {
    pub fn parse(text: &str, path: &Path) -> Result<GenesisFile, ConfigError> {
        parse_toml(text, path)
    }

    pub fn load(path: &Path) -> Result<GenesisFile, ConfigError> {
        GenesisFile::parse(&read(path)?, path)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("serializable")
    }

    /// Check and build the genesis.
    pub fn build(&self) -> Result<LoadedGenesis, ConfigError> {
        if self.validators.is_empty() || self.validators.len() > GENESIS_VALIDATORS_MAX {
            return Err(ConfigError::Validators);
        }
        if self.roles.len() > GENESIS_ROLES_MAX {
            return Err(ConfigError::Roles);
        }
        let mut peers = Vec::with_capacity(self.validators.len());
        for (index, v) in self.validators.iter().enumerate() {
            let key = keys::parse_public(&v.public_key)
                .map_err(|source| ConfigError::ValidatorKey { index, source })?;
            if peers.iter().any(|p: &PeerAddress| p.key == key) {
                return Err(ConfigError::Validators);
            }
            peers.push(PeerAddress {
                key,
                address: v.address,
            });
        }
        let mut roles: Vec<(PublicKey, Role)> = Vec::with_capacity(self.roles.len());
        for (index, r) in self.roles.iter().enumerate() {
            let key = keys::parse_public(&r.public_key)
                .map_err(|source| ConfigError::RoleKey { index, source })?;
            let role = Role::from_name(&r.role).ok_or_else(|| ConfigError::UnknownRole {
                index,
                name: r.role.clone(),
            })?;
            roles.push((key, role));
        }
        if !roles.iter().any(|(_, r)| *r == Role::Admin) {
            return Err(ConfigError::NoAdmin);
        }
        let genesis = Genesis::new(
            peers.iter().map(|p| p.key.clone()).collect(),
            &roles,
            &self.label,
        );
        Ok(LoadedGenesis { genesis, peers })
    }
}

/// One validator's configuration as written.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    pub key_file: PathBuf,
    pub genesis: PathBuf,
    pub data_dir: PathBuf,
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

/// A loaded node configuration.
pub struct NodeConfig {
    pub key: PrivateKey,
    pub genesis: LoadedGenesis,
    /// The genesis file's text (copied into the data directory).
    pub genesis_text: String,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
}

impl NodeConfig {
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let file: NodeFile = parse_toml(&read(path)?, path)?;
        NodeConfig::from_file(file, path)
    }

    /// Loads a node configuration that may also hold a `[section]` table owned by a layer above
    /// the ledger (the node service's `[service]`). The table is taken out unread and returned,
    /// with the directory its relative paths are relative to; the ledger's own keys are still
    /// checked strictly (unknown keys refused).
    pub fn load_with_section(
        path: &Path,
        section: &str,
    ) -> Result<(NodeConfig, Option<toml::Value>), ConfigError> {
        let mut table: toml::Table = parse_toml(&read(path)?, path)?;
        let extra = table.remove(section);
        let file =
            NodeFile::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Toml {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        Ok((NodeConfig::from_file(file, path)?, extra))
    }

    /// Resolves `file`, read from `path`: keys, genesis, addresses.
    fn from_file(file: NodeFile, path: &Path) -> Result<NodeConfig, ConfigError> {
        let key_path = resolve(path, &file.key_file);
        let key = keys::read_key_file(&key_path).map_err(|source| ConfigError::Key {
            path: key_path.clone(),
            source,
        })?;
        let genesis_path = resolve(path, &file.genesis);
        let genesis_text = read(&genesis_path)?;
        let genesis = GenesisFile::parse(&genesis_text, &genesis_path)?.build()?;
        let me = key.public_key();
        let mine = genesis
            .peers
            .iter()
            .find(|p| p.key == me)
            .ok_or_else(|| ConfigError::NotAValidator(keys::public_hex(&me)))?;
        let listen = file.listen.unwrap_or(mine.address);
        Ok(NodeConfig {
            key,
            genesis,
            genesis_text,
            data_dir: resolve(path, &file.data_dir),
            listen,
        })
    }
}

/// `relative` as written in the file at `config`: relative paths are relative to that file's
/// directory.
pub fn resolve(config: &Path, relative: &Path) -> PathBuf {
    if relative.is_absolute() {
        relative.to_owned()
    } else {
        config.parent().unwrap_or(Path::new(".")).join(relative)
    }
}

fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Toml {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GenesisFile {
        GenesisFile {
            label: "t".into(),
            validators: (0..4u64)
                .map(|i| ValidatorEntry {
                    public_key: keys::public_hex(&PrivateKey::from_seed(i).public_key()),
                    address: SocketAddr::from(([127, 0, 0, 1], 7100 + i as u16)),
                })
                .collect(),
            roles: vec![RoleEntry {
                public_key: keys::public_hex(&PrivateKey::from_seed(100).public_key()),
                role: "admin".into(),
            }],
        }
    }

    #[test]
    fn genesis_file_round_trips_and_is_checked() {
        let file = sample();
        let again = GenesisFile::parse(&file.to_toml(), Path::new("g")).expect("parse");
        let a = file.build().expect("valid");
        let b = again.build().expect("valid");
        assert_eq!(a.genesis.chain_id, b.genesis.chain_id);
        assert_eq!(a.peers.len(), 4);

        let mut no_admin = sample();
        no_admin.roles[0].role = "doctor".into();
        assert!(matches!(no_admin.build(), Err(ConfigError::NoAdmin)));
        let mut unknown = sample();
        unknown.roles[0].role = "king".into();
        assert!(matches!(
            unknown.build(),
            Err(ConfigError::UnknownRole { .. })
        ));
        let mut duplicate = sample();
        duplicate.validators[1].public_key = duplicate.validators[0].public_key.clone();
        assert!(matches!(duplicate.build(), Err(ConfigError::Validators)));
        let mut bad_key = sample();
        bad_key.validators[2].public_key = "zz".into();
        assert!(matches!(
            bad_key.build(),
            Err(ConfigError::ValidatorKey { index: 2, .. })
        ));
    }

    #[test]
    fn a_section_above_the_ledger_is_taken_out_and_the_rest_still_checked() {
        let dir = std::env::temp_dir().join(format!("vigil-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let key = PrivateKey::from_seed(0);
        keys::write_key_file(&dir.join("v0.key"), &key).expect("key file");
        std::fs::write(dir.join("genesis.toml"), sample().to_toml()).expect("genesis");
        let node = |extra: &str| {
            let path = dir.join("node.toml");
            let text = format!(
                "key_file = \"v0.key\"\ngenesis = \"genesis.toml\"\ndata_dir = \"d\"\n{extra}"
            );
            std::fs::write(&path, text).expect("node file");
            path
        };
        let path = node("[service]\nhttp_listen = \"127.0.0.1:1\"\n");
        let (config, section) = NodeConfig::load_with_section(&path, "service").expect("loads");
        assert_eq!(config.data_dir, dir.join("d"));
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 7100)));
        let section = section.expect("the section is returned");
        assert_eq!(
            section.get("http_listen").and_then(|v| v.as_str()),
            Some("127.0.0.1:1")
        );
        // The ledger's own loader knows no such table; neither loader accepts another one.
        assert!(matches!(
            NodeConfig::load(&path),
            Err(ConfigError::Toml { .. })
        ));
        let path = node("[other]\nx = 1\n");
        assert!(matches!(
            NodeConfig::load_with_section(&path, "service"),
            Err(ConfigError::Toml { .. })
        ));
        let path = node("");
        let (_, section) = NodeConfig::load_with_section(&path, "service").expect("loads");
        assert!(section.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
