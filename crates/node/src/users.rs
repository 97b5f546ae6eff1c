//! Who is calling the API. Each user holds a bearer token; the node stores only the token's
//! SHA-256. Staff users act through an identity key the node keeps for them, and their roles
//! are whatever the ledger's finalized state grants that key, checked on every request.
//! Patients are bound to their pseudonym and see only their own data.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use vigil_core::PersonId;

use vigil_ledger::signer::Signer;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsersError {
    #[error("users file {path}: {detail}")]
    File { path: String, detail: String },
    #[error("user {0:?} has neither an identity key nor a person")]
    Incomplete(String),
}

/// An authenticated caller.
#[derive(Clone)]
pub enum Principal {
    Staff { name: String, signer: Arc<Signer> },
    Patient { name: String, person: PersonId },
}

impl Principal {
    pub fn name(&self) -> &str {
        match self {
            Principal::Staff { name, .. } | Principal::Patient { name, .. } => name,
        }
    }
}

/// One line of the users file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserEntry {
    pub name: String,
    /// Hex SHA-256 of the user's bearer token.
    pub token_sha256: String,
    /// Hex of the staff identity's Ed25519 private key (the node's keystore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<PersonId>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct UsersFile {
    #[serde(default, rename = "user")]
    pub users: Vec<UserEntry>,
}

/// Authenticates bearer tokens.
#[derive(Default, Clone)]
pub struct Users {
    by_token: HashMap<[u8; 32], Principal>,
}

pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh bearer token: 256 random bits, hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("operating system random source unavailable");
    hex::encode(bytes)
}

impl Users {
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let error = |detail: String| UsersError::File {
            path: path.display().to_string(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let file: UsersFile = toml::from_str(&text).map_err(|e| error(e.to_string()))?;
        Self::from_entries(&file.users).map_err(|e| error(e.to_string()))
    }

    pub fn from_entries(entries: &[UserEntry]) -> Result<Self, UsersError> {
        let mut users = Users::default();
        for entry in entries {
            let mut digest = [0u8; 32];
            hex::decode_to_slice(&entry.token_sha256, &mut digest).map_err(|_| {
                UsersError::File {
                    path: String::new(),
                    detail: format!("user {:?}: token_sha256 is not 64 hex digits", entry.name),
                }
            })?;
            let principal = match (&entry.identity_key, entry.person) {
                (Some(key), _) => {
                    let signer = hex::decode(key)
                        .ok()
                        .and_then(|bytes| Signer::from_bytes(&bytes))
                        .ok_or_else(|| UsersError::File {
                            path: String::new(),
                            detail: format!(
                                "user {:?}: identity_key is not a 32-byte hex key",
                                entry.name
                            ),
                        })?;
                    Principal::Staff {
                        name: entry.name.clone(),
                        signer: Arc::new(signer),
                    }
                }
                (None, Some(person)) => Principal::Patient {
                    name: entry.name.clone(),
                    person,
                },
                (None, None) => return Err(UsersError::Incomplete(entry.name.clone())),
            };
            users.by_token.insert(digest, principal);
        }
        Ok(users)
    }

    pub fn insert(&mut self, token: &str, principal: Principal) {
        self.by_token.insert(token_digest(token), principal);
    }

    /// The principal holding `token`. Lookup is by digest in a hash map, so timing reveals
    /// nothing useful about stored tokens.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        self.by_token.get(&token_digest(token)).cloned()
    }
}
