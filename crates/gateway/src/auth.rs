//! Who may connect to the embedded broker, decided at CONNECT.
//!
//! - Client ids starting `vigil-` are the node's own (its in-process links `vigil-ingest` and
//!   `vigil-push`): a network client using one would take the link over, so it is refused
//!   whatever credentials it shows.
//! - A device logs in with username `<person>/<device>` (or just `<device>`) and, as password,
//!   a short-lived token it signs with its device key: `v1.<unix ms>.<signature hex>`, the
//!   signature over a domain-separated message naming the client id, the username and the
//!   time. The node checks it against the device's finalized enrollment: unknown, revoked,
//!   another person's, stale (outside [`TOKEN_FRESHNESS_MS`]) or badly signed is refused.
//! - A service or staff member logs in as `service:<name>` with a password configured on the
//!   gateway, or one a check given by the node accepts (the node's: a staff member's API
//!   token, never a patient's).
//! - Anonymous clients are refused.
//!
//! A token is not secret material: it proves possession of the device key at one moment,
//! for one client id. Without TLS a listener on the path can replay it within the freshness
//! window under the same client id (which would disconnect the device, as any duplicate
//! client id does); TLS (issue 13, item 2) closes that.

use std::collections::HashMap;
use std::sync::Arc;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};
use vigil_core::{DeviceId, DeviceKey, PersonId};

use crate::admit::DeviceDirectory;

/// Client ids the node keeps for itself.
pub const RESERVED_CLIENT_PREFIX: &str = "vigil-";
/// How far a token's time may be from the node's clock, either way.
pub const TOKEN_FRESHNESS_MS: i64 = 5 * 60 * 1000;
/// Prefix of a service user's username.
pub const SERVICE_PREFIX: &str = "service:";
const TOKEN_VERSION: &str = "v1";
const CONNECT_DOMAIN: &[u8] = b"vigil/mqtt-connect/v1";

/// Why a CONNECT was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginRefused {
    #[error("client ids starting {RESERVED_CLIENT_PREFIX} are reserved for the node")]
    ReservedClientId,
    #[error("no username or password")]
    Anonymous,
    #[error("the username is neither <person>/<device>, <device> nor service:<name>")]
    MalformedUsername,
    #[error("the password is not a v1.<ms>.<signature> token")]
    MalformedToken,
    #[error("the token's time is outside the freshness window")]
    Stale,
    #[error("the device is not enrolled")]
    UnknownDevice,
    #[error("the device was revoked")]
    Revoked,
    #[error("the device is enrolled for another person")]
    WrongPerson,
    #[error("the token's signature does not verify against the enrolled key")]
    BadSignature,
    #[error("unknown service user or wrong password")]
    BadServiceLogin,
}

/// Who a CONNECT authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Device { person: PersonId, device: DeviceId },
    Service(String),
}

/// A device's MQTT username and password for one CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub username: String,
    pub password: String,
}

/// Whether a client id belongs to the node itself.
pub fn is_reserved_client_id(client_id: &str) -> bool {
    client_id.starts_with(RESERVED_CLIENT_PREFIX)
}

/// The login a device presents when connecting as `client_id` at `now_ms`.
pub fn device_login(
    key: &DeviceKey,
    person: PersonId,
    device: &DeviceId,
    client_id: &str,
    now_ms: i64,
) -> Login {
    let username = format!("{person}/{device}");
    let signing = SigningKey::from_bytes(&key.seed());
    let signature = signing.sign(&connect_message(client_id, &username, now_ms));
    Login {
        password: format!(
            "{TOKEN_VERSION}.{now_ms}.{}",
            hex::encode(signature.to_bytes())
        ),
        username,
    }
}

/// What the token's signature covers; each field length-prefixed so none can bleed into the
/// next.
fn connect_message(client_id: &str, username: &str, time_ms: i64) -> Vec<u8> {
    let mut message = CONNECT_DOMAIN.to_vec();
    for field in [client_id.as_bytes(), username.as_bytes()] {
        message.extend_from_slice(&(field.len() as u32).to_be_bytes());
        message.extend_from_slice(field);
    }
    message.extend_from_slice(&time_ms.to_be_bytes());
    message
}

/// Decides whether `service:<name>` with a password may connect.
pub type ServiceCheck = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// Checks every CONNECT against the enrolled devices and the configured service users.
pub struct ConnectAuth {
    directory: Arc<dyn DeviceDirectory + Send + Sync>,
    /// SHA-256 of each service user's password, by name.
    services: HashMap<String, [u8; 32]>,
    service_check: Option<ServiceCheck>,
}

impl ConnectAuth {
    pub fn new(directory: Arc<dyn DeviceDirectory + Send + Sync>) -> Self {
        Self {
            directory,
            services: HashMap::new(),
            service_check: None,
        }
    }

    /// Lets `service:<name>` connect when `check(name, password)` says so.
    pub fn with_service_check(mut self, check: ServiceCheck) -> Self {
        self.service_check = Some(check);
        self
    }

    /// Lets `service:<name>` connect with `password`.
    pub fn with_service_user(mut self, name: &str, password: &str) -> Self {
        self.services
            .insert(name.to_owned(), Sha256::digest(password.as_bytes()).into());
        self
    }

    /// The verdict on one CONNECT.
    pub fn check(
        &self,
        client_id: &str,
        username: &str,
        password: &str,
        now_ms: i64,
    ) -> Result<Principal, LoginRefused> {
        if is_reserved_client_id(client_id) {
            return Err(LoginRefused::ReservedClientId);
        }
        if username.is_empty() || password.is_empty() {
            return Err(LoginRefused::Anonymous);
        }
        if let Some(name) = username.strip_prefix(SERVICE_PREFIX) {
            return self.check_service(name, password);
        }
        let (claimed_person, device) = parse_username(username)?;
        let (time_ms, signature) = parse_token(password)?;
        if now_ms.abs_diff(time_ms) > TOKEN_FRESHNESS_MS.unsigned_abs() {
            return Err(LoginRefused::Stale);
        }
        let enrolled = self
            .directory
            .device(&device)
            .ok_or(LoginRefused::UnknownDevice)?;
        if enrolled.revoked {
            return Err(LoginRefused::Revoked);
        }
        if claimed_person.is_some_and(|p| p != enrolled.person) {
            return Err(LoginRefused::WrongPerson);
        }
        let key = VerifyingKey::from_bytes(&enrolled.key.to_bytes())
            .map_err(|_| LoginRefused::BadSignature)?;
        key.verify_strict(
            &connect_message(client_id, username, time_ms),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| LoginRefused::BadSignature)?;
        Ok(Principal::Device {
            person: enrolled.person,
            device,
        })
    }

    /// The person `device` is enrolled for, unless it is unknown or revoked.
    pub fn enrolled_person(&self, device: &DeviceId) -> Option<PersonId> {
        self.directory
            .device(device)
            .filter(|enrolled| !enrolled.revoked)
            .map(|enrolled| enrolled.person)
    }

    /// Whether a client admitted earlier still may be connected: a device must still be
    /// enrolled and not revoked (staff logins are not looked up again).
    pub fn still_admitted(&self, principal: &Principal) -> bool {
        match principal {
            Principal::Device { person, device } => self
                .directory
                .device(device)
                .is_some_and(|enrolled| !enrolled.revoked && enrolled.person == *person),
            Principal::Service(_) => true,
        }
    }

    /// Whether a staff login (`service:<name>`, its token) still authenticates: what the front
    /// checks again while a staff client stays connected.
    pub fn check_service_login(&self, username: &str, token: &str) -> bool {
        username
            .strip_prefix(SERVICE_PREFIX)
            .is_some_and(|name| self.check_service(name, token).is_ok())
    }

    fn check_service(&self, name: &str, password: &str) -> Result<Principal, LoginRefused> {
        let given: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        // Comparing digests, not passwords, keeps the comparison's time independent of how
        // much of the password matched.
        let configured = self
            .services
            .get(name)
            .is_some_and(|stored| *stored == given);
        let checked = || {
            self.service_check
                .as_ref()
                .is_some_and(|c| c(name, password))
        };
        if configured || checked() {
            Ok(Principal::Service(name.to_owned()))
        } else {
            Err(LoginRefused::BadServiceLogin)
        }
    }
}

fn parse_username(username: &str) -> Result<(Option<PersonId>, DeviceId), LoginRefused> {
    let (person, device) = match username.split_once('/') {
        Some((person, device)) => (
            Some(
                person
                    .parse::<PersonId>()
                    .map_err(|_| LoginRefused::MalformedUsername)?,
            ),
            device,
        ),
        None => (None, username),
    };
    let device = device
        .parse::<DeviceId>()
        .map_err(|_| LoginRefused::MalformedUsername)?;
    Ok((person, device))
}

fn parse_token(password: &str) -> Result<(i64, [u8; 64]), LoginRefused> {
    let mut parts = password.split('.');
    let (Some(TOKEN_VERSION), Some(time), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(LoginRefused::MalformedToken);
    };
    let time: i64 = time.parse().map_err(|_| LoginRefused::MalformedToken)?;
    let mut bytes = [0u8; 64];
    hex::decode_to_slice(signature, &mut bytes).map_err(|_| LoginRefused::MalformedToken)?;
    Ok((time, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admit::EnrolledDevice;

    struct One(DeviceId, EnrolledDevice);

    impl DeviceDirectory for One {
        fn device(&self, id: &DeviceId) -> Option<EnrolledDevice> {
            (*id == self.0).then_some(self.1)
        }
    }

    const NOW: i64 = 1_800_000_000_000;

    fn setup(revoked: bool) -> (ConnectAuth, DeviceKey, PersonId, DeviceId) {
        let key = DeviceKey::from_seed([4; 32]);
        let person = PersonId::from_bytes([1; 16]);
        let device: DeviceId = "oxi-1".parse().expect("valid");
        let enrolled = EnrolledDevice {
            person,
            key: key.public(),
            revoked,
        };
        let auth = ConnectAuth::new(Arc::new(One(device.clone(), enrolled)))
            .with_service_user("bridge", "s3cret-long-password");
        (auth, key, person, device)
    }

    #[test]
    fn a_fresh_token_from_the_enrolled_key_is_accepted_and_nothing_else() {
        let (auth, key, person, device) = setup(false);
        let login = device_login(&key, person, &device, "phone-1", NOW);
        assert_eq!(
            auth.check("phone-1", &login.username, &login.password, NOW + 1_000),
            Ok(Principal::Device {
                person,
                device: device.clone()
            })
        );
        let check = |client: &str, user: &str, pass: &str, now: i64| {
            auth.check(client, user, pass, now).err()
        };
        // The same token under another client id, too late, or too early.
        assert_eq!(
            check("phone-2", &login.username, &login.password, NOW),
            Some(LoginRefused::BadSignature)
        );
        let late = NOW + TOKEN_FRESHNESS_MS + 1;
        assert_eq!(
            check("phone-1", &login.username, &login.password, late),
            Some(LoginRefused::Stale)
        );
        let early = NOW - TOKEN_FRESHNESS_MS - 1;
        assert_eq!(
            check("phone-1", &login.username, &login.password, early),
            Some(LoginRefused::Stale)
        );
        // Signed by another key.
        let forged = device_login(&DeviceKey::from_seed([5; 32]), person, &device, "x", NOW);
        assert_eq!(
            check("x", &forged.username, &forged.password, NOW),
            Some(LoginRefused::BadSignature)
        );
        // Claiming another person, an unknown device, junk, nothing, a reserved id.
        let other = device_login(&key, PersonId::from_bytes([2; 16]), &device, "x", NOW);
        assert_eq!(
            check("x", &other.username, &other.password, NOW),
            Some(LoginRefused::WrongPerson)
        );
        let unknown = device_login(&key, person, &"oxi-9".parse().expect("ok"), "x", NOW);
        assert_eq!(
            check("x", &unknown.username, &unknown.password, NOW),
            Some(LoginRefused::UnknownDevice)
        );
        assert_eq!(
            check("x", "oxi-1", "v1.12.zz", NOW),
            Some(LoginRefused::MalformedToken)
        );
        assert_eq!(
            check("x", "a/b/c", "v1.1.00", NOW),
            Some(LoginRefused::MalformedUsername)
        );
        assert_eq!(check("x", "", "", NOW), Some(LoginRefused::Anonymous));
        let own = device_login(&key, person, &device, "vigil-ingest", NOW);
        assert_eq!(
            check("vigil-ingest", &own.username, &own.password, NOW),
            Some(LoginRefused::ReservedClientId)
        );
    }

    #[test]
    fn a_revoked_device_is_refused_and_service_users_need_their_password() {
        let (auth, key, person, device) = setup(true);
        let login = device_login(&key, person, &device, "phone-1", NOW);
        assert_eq!(
            auth.check("phone-1", &login.username, &login.password, NOW),
            Err(LoginRefused::Revoked)
        );
        assert_eq!(
            auth.check("b", "service:bridge", "s3cret-long-password", NOW),
            Ok(Principal::Service("bridge".into()))
        );
        for (user, pass) in [("service:bridge", "wrong"), ("service:other", "x")] {
            assert_eq!(
                auth.check("b", user, pass, NOW),
                Err(LoginRefused::BadServiceLogin)
            );
        }
        let auth = auth.with_service_check(Arc::new(|name, pass| name == "ops" && pass == "tok"));
        assert_eq!(
            auth.check("c", "service:ops", "tok", NOW),
            Ok(Principal::Service("ops".into()))
        );
        assert_eq!(
            auth.check("c", "service:ops", "bad", NOW),
            Err(LoginRefused::BadServiceLogin)
        );
    }
}
