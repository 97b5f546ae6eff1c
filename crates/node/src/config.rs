//! The node service's part of a validator's configuration file: the `[service]` table, which
//! the ledger's loader (`vigil_ledger::config::NodeConfig::load_with_section`) hands over
//! unread.
//!
//! ```toml
//! [service]
//! http_listen = "127.0.0.1:8080"
//! gateway_key_file = "gateway.key"   # an identity with role `gateway` in the genesis
//! ehr_key_file = "ehr.key"           # 64 hex digits; created with the health record
//! users_file = "users.toml"          # optional: API users (`[[user]]` name, token_sha256, …)
//! future_skew_s = 300                # optional: readings stamped further ahead are refused
//! # optional: the dashboard map's tile server (OpenStreetMap-style template); without it the
//! # map is a local plane and the dashboard fetches nothing from elsewhere
//! map_tiles = { url = "https://tile.example/{z}/{x}/{y}.png", attribution = "© OpenStreetMap contributors" }
//! https_listen = "0.0.0.0:8443"      # optional: the API and dashboard over HTTPS
//! [service.tls]                      # needed by https_listen and mqtt.tls_listen
//! cert_file = "server.pem"           # the chain, leaf first (PEM)
//! key_file = "server.key"            # its private key (PEM, 0600)
//! [service.mqtt]
//! mode = "embedded"                  # or "external" (host, port) or "disabled"
//! listen = "127.0.0.1:1883"
//! tls_listen = "0.0.0.0:8883"        # optional: MQTT over TLS
//! [service.notify]                   # optional: webhooks and e-mail for finalized alerts
//! dashboard_url = "https://vigil.example.org/"
//! [[service.notify.webhook]]
//! name = "on-call"
//! url = "https://hooks.example.org/vigil"
//! secret_file = "on-call.secret"
//! min_level = "critical"
//! ```
//!
//! `[service.notify]` is `vigil_notify::config`'s (every key is documented there).
//!
//! Listeners in clear (`http_listen`, `mqtt.listen`) must be on a loopback address: traffic
//! that leaves the machine goes over TLS (`https_listen`, `mqtt.tls_listen`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vigil_tls::rustls::ServerConfig;

use serde::Deserialize;
use vigil_ehr::SecretKey;
use vigil_ledger::config::resolve;
use vigil_ledger::keys::{self, KeyError};

use crate::users::{Users, UsersError};
use crate::{MapTiles, MapTilesError, MqttMode, NodeConfig, ehr_path};
use vigil_ledger::signer::Signer;

/// The `[service]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    pub http_listen: SocketAddr,
    pub gateway_key_file: PathBuf,
    pub ehr_key_file: PathBuf,
    #[serde(default)]
    pub users_file: Option<PathBuf>,
    /// Seconds a reading may be stamped ahead of the node's clock ([`NodeConfig::future_skew`]).
    #[serde(default = "future_skew_s_default")]
    pub future_skew_s: u64,
    #[serde(default)]
    pub mqtt: MqttFile,
    /// The dashboard map's tile server ([`NodeConfig::map_tiles`]).
    #[serde(default)]
    pub map_tiles: Option<MapTilesFile>,
    /// Webhooks and e-mail ([`vigil_notify::NotifyFile`]).
    #[serde(default)]
    pub notify: Option<vigil_notify::NotifyFile>,
    /// The API and dashboard over HTTPS, with `[service.tls]`'s certificate.
    #[serde(default)]
    pub https_listen: Option<SocketAddr>,
    #[serde(default)]
    pub tls: Option<TlsFile>,
}

/// Where HTTPS is served and the certificate it presents.
pub type HttpsListener = (SocketAddr, Arc<ServerConfig>);

/// `[service.tls]`: the certificate chain and key the node's TLS listeners present.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// `map_tiles = { url, attribution, max_zoom }` as written; checked by [`MapTiles::new`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapTilesFile {
    pub url: String,
    pub attribution: String,
    #[serde(default = "max_zoom_default")]
    pub max_zoom: u8,
}

fn max_zoom_default() -> u8 {
    crate::map_tiles::MAP_TILES_ZOOM_DEFAULT
}

fn future_skew_s_default() -> u64 {
    crate::FUTURE_SKEW_DEFAULT.as_secs()
}

/// Where the node's MQTT side lives, as written in `[service.mqtt]`.
#[derive(Debug, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MqttFile {
    /// The broker embedded in the node (rumqttd): nothing to install.
    Embedded {
        listen: SocketAddr,
        /// MQTT over TLS, with `[service.tls]`'s certificate.
        #[serde(default)]
        tls_listen: Option<SocketAddr>,
    },
    /// An external broker (e.g. mosquitto), the node being one of its clients.
    External {
        host: String,
        port: u16,
    },
    Disabled,
}

impl Default for MqttFile {
    fn default() -> Self {
        MqttFile::Embedded {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            tls_listen: None,
        }
    }
}

impl MqttFile {
    fn into_mode(self, tls: Option<&Arc<ServerConfig>>) -> Result<MqttMode, ServiceConfigError> {
        Ok(match self {
            MqttFile::Embedded {
                listen,
                tls_listen: None,
            } => MqttMode::Embedded(listen),
            MqttFile::Embedded {
                listen,
                tls_listen: Some(tls_listen),
            } => {
                let server = tls.ok_or(ServiceConfigError::NoCertificate("mqtt.tls_listen"))?;
                MqttMode::EmbeddedOn(vigil_gateway::mqtt::FrontListeners {
                    plain: Some(listen),
                    tls: Some((tls_listen, server.clone())),
                })
            }
            MqttFile::External { host, port } => {
                if !is_loopback_host(&host) {
                    return Err(ServiceConfigError::ExternalBrokerOffLoopback { host });
                }
                MqttMode::External { host, port }
            }
            MqttFile::Disabled => MqttMode::Disabled,
        })
    }
}

/// Whether `host` names this machine: the node's link to an external broker is in clear and
/// without credentials, so it may only go to a broker on the same host.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_matches(['[', ']']);
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A listener in clear must be on loopback.
fn loopback_only(key: &'static str, addr: SocketAddr) -> Result<(), ServiceConfigError> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(ServiceConfigError::PlaintextOffLoopback { key, addr })
    }
}

/// Why the `[service]` table could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceConfigError {
    #[error("[service]: {0}")]
    Table(String),
    #[error("gateway key file {path}: {source}")]
    GatewayKey { path: PathBuf, source: KeyError },
    #[error("health record key {path}: {detail}")]
    EhrKey { path: PathBuf, detail: String },
    #[error(transparent)]
    Users(#[from] UsersError),
    #[error("[service] {0}")]
    MapTiles(#[from] MapTilesError),
    #[error(transparent)]
    Notify(#[from] vigil_notify::config::ConfigError),
    #[error(
        "[service] {key} = {addr}: a listener in clear must be on a loopback address; \
         serve other addresses over TLS (https_listen, mqtt.tls_listen)"
    )]
    PlaintextOffLoopback { key: &'static str, addr: SocketAddr },
    #[error(
        "[service.mqtt] host = {host:?}: the link to an external broker is in clear and without \
         credentials, so only a broker on this host (127.0.0.1, ::1, localhost)"
    )]
    ExternalBrokerOffLoopback { host: String },
    #[error("[service] {0} needs [service.tls] (cert_file, key_file)")]
    NoCertificate(&'static str),
    #[error("[service.tls]: {0}")]
    Tls(#[from] vigil_tls::TlsError),
}

impl ServiceFile {
    /// Reads the table the ledger's loader handed over.
    pub fn from_toml(table: toml::Value) -> Result<ServiceFile, ServiceConfigError> {
        ServiceFile::deserialize(table).map_err(|e| ServiceConfigError::Table(e.to_string()))
    }

    /// The service's configuration: key files and the users file read from where the
    /// configuration file at `config_path` names them, the health record kept in `data_dir`.
    /// The TLS server configuration of `[service.tls]`, if given, files read from where the
    /// configuration file at `config_path` names them.
    pub fn tls_server(
        &self,
        config_path: &Path,
    ) -> Result<Option<Arc<ServerConfig>>, ServiceConfigError> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        let cert = resolve(config_path, &tls.cert_file);
        let key = resolve(config_path, &tls.key_file);
        Ok(Some(vigil_tls::server_config(&cert, &key)?))
    }

    /// Where the API is served: in clear on `http_listen` (loopback only), and over HTTPS on
    /// `https_listen` with the certificate of `[service.tls]`.
    pub fn api_listeners(
        &self,
        config_path: &Path,
    ) -> Result<(SocketAddr, Option<HttpsListener>), ServiceConfigError> {
        loopback_only("http_listen", self.http_listen)?;
        let https = match self.https_listen {
            None => None,
            Some(addr) => {
                let server = self
                    .tls_server(config_path)?
                    .ok_or(ServiceConfigError::NoCertificate("https_listen"))?;
                Some((addr, server))
            }
        };
        Ok((self.http_listen, https))
    }

    pub fn into_config(
        self,
        config_path: &Path,
        data_dir: PathBuf,
    ) -> Result<NodeConfig, ServiceConfigError> {
        if let MqttFile::Embedded { listen, .. } = &self.mqtt {
            loopback_only("mqtt.listen", *listen)?;
        }
        let tls_server = self.tls_server(config_path)?;
        let gateway_path = resolve(config_path, &self.gateway_key_file);
        let gateway = keys::read_key_file(&gateway_path).map_err(|source| {
            ServiceConfigError::GatewayKey {
                path: gateway_path,
                source,
            }
        })?;
        let ehr_master_key = ehr_master_key(&resolve(config_path, &self.ehr_key_file), &data_dir)?;
        let users = match &self.users_file {
            Some(path) => Users::load(&resolve(config_path, path))?,
            None => Users::default(),
        };
        let map_tiles = self
            .map_tiles
            .map(|t| MapTiles::with_max_zoom(&t.url, &t.attribution, t.max_zoom))
            .transpose()?;
        let notify = self
            .notify
            .map(|file| file.into_config(|path| resolve(config_path, path)))
            .transpose()?;
        Ok(NodeConfig {
            data_dir,
            map_tiles,
            mqtt: self.mqtt.into_mode(tls_server.as_ref())?,
            ehr_master_key,
            gateway: Signer::new(gateway),
            users,
            future_skew: std::time::Duration::from_secs(self.future_skew_s),
            notify,
        })
    }
}

/// The health record's master key (64 hex digits). Created, readable by its owner only, with a
/// new health record; refused to be created for an existing one, whose data keys it wraps.
fn ehr_master_key(path: &Path, data_dir: &Path) -> Result<SecretKey, ServiceConfigError> {
    let error = |detail: String| ServiceConfigError::EhrKey {
        path: path.to_owned(),
        detail,
    };
    if !path.exists() {
        let record = ehr_path(data_dir);
        if record.exists() {
            return Err(error(format!(
                "missing, but the health record {} exists: its data keys need that key",
                record.display()
            )));
        }
        let key = SecretKey::random();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|e| error(e.to_string()))?;
        std::io::Write::write_all(&mut file, hex::encode(key.to_bytes()).as_bytes())
            .map_err(|e| error(e.to_string()))?;
        return Ok(key);
    }
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes)
        .map_err(|_| error("expected 64 hex digits".into()))?;
    Ok(SecretKey::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(text: &str) -> Result<ServiceFile, ServiceConfigError> {
        ServiceFile::from_toml(toml::Value::Table(
            toml::from_str(text).map_err(|e| ServiceConfigError::Table(e.to_string()))?,
        ))
    }

    /// Plaintext only on loopback; TLS listeners only with a certificate, which is then what
    /// the MQTT front and the HTTPS listener present.
    #[test]
    fn listeners_in_clear_stay_on_loopback_and_tls_needs_a_certificate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let gateway = vigil_ledger::keys::os_random_key();
        keys::write_key_file(&dir.path().join("gw.key"), &gateway).expect("key file");
        let config_path = dir.path().join("node.toml");
        let keys = "gateway_key_file = \"gw.key\"\nehr_key_file = \"ehr.key\"\n";
        let open = |text: String| {
            let file = service(&format!("{keys}{text}")).expect("valid table");
            let api = file
                .api_listeners(&config_path)
                .map(|(_, https)| https.is_some());
            let node = file.into_config(&config_path, dir.path().join("data"));
            (api, node)
        };
        let (api, _) = open("http_listen = \"0.0.0.0:8080\"\n".into());
        assert!(
            matches!(
                api,
                Err(ServiceConfigError::PlaintextOffLoopback {
                    key: "http_listen",
                    ..
                })
            ),
            "{api:?}"
        );
        let (_, node) = open(
            "http_listen = \"127.0.0.1:8080\"\n[mqtt]\nmode = \"embedded\"\nlisten = \"10.0.0.1:1883\"\n"
                .into(),
        );
        assert!(matches!(
            node.err(),
            Some(ServiceConfigError::PlaintextOffLoopback {
                key: "mqtt.listen",
                ..
            })
        ));
        let (api, _) =
            open("http_listen = \"[::1]:8080\"\nhttps_listen = \"0.0.0.0:8443\"\n".into());
        assert!(
            matches!(api, Err(ServiceConfigError::NoCertificate("https_listen"))),
            "{api:?}"
        );

        let (_, node) = open(
            "http_listen = \"127.0.0.1:8080\"\n[mqtt]\nmode = \"external\"\nhost = \"broker.example\"\nport = 1883\n"
                .into(),
        );
        assert!(matches!(
            node.err(),
            Some(ServiceConfigError::ExternalBrokerOffLoopback { .. })
        ));
        let (_, node) = open(
            "http_listen = \"127.0.0.1:8080\"\n[mqtt]\nmode = \"external\"\nhost = \"localhost\"\nport = 1883\n"
                .into(),
        );
        assert!(matches!(
            node.map(|c| c.mqtt),
            Ok(MqttMode::External { .. })
        ));

        let authority =
            vigil_tls::LocalAuthority::create(&dir.path().join("tls"), &["localhost"]).expect("ca");
        let tls = format!(
            "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            authority.server_cert, authority.server_key
        );
        let (api, node) = open(format!(
            "http_listen = \"127.0.0.1:8080\"\nhttps_listen = \"0.0.0.0:8443\"\n{tls}\
             [mqtt]\nmode = \"embedded\"\nlisten = \"127.0.0.1:1883\"\ntls_listen = \"0.0.0.0:8883\"\n"
        ));
        assert!(api.expect("listeners"), "HTTPS configured");
        let mqtt = node
            .expect("config")
            .mqtt
            .front_listeners()
            .expect("embedded");
        assert_eq!(mqtt.plain, Some(([127, 0, 0, 1], 1883).into()));
        assert_eq!(
            mqtt.tls.map(|(addr, _)| addr),
            Some(([0, 0, 0, 0], 8883).into())
        );
    }

    #[test]
    fn the_service_table_is_checked_and_its_key_created_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let gateway = vigil_ledger::keys::os_random_key();
        keys::write_key_file(&dir.path().join("gw.key"), &gateway).expect("key file");
        let file = service(
            "http_listen = \"127.0.0.1:8080\"\ngateway_key_file = \"gw.key\"\n\
             ehr_key_file = \"ehr.key\"\n[mqtt]\nmode = \"disabled\"\n",
        )
        .expect("valid table");
        let config_path = dir.path().join("node.toml");
        let data = dir.path().join("data");
        let config = file
            .into_config(&config_path, data.clone())
            .expect("config");
        assert!(matches!(config.mqtt, MqttMode::Disabled));
        assert_eq!(config.future_skew, crate::FUTURE_SKEW_DEFAULT);
        assert_eq!(config.map_tiles, None);
        let key = std::fs::read_to_string(dir.path().join("ehr.key")).expect("key created");
        assert_eq!(key.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            for file in [dir.path().join("ehr.key"), ehr_path(&data)] {
                if file.exists() {
                    let mode = std::fs::metadata(&file)
                        .expect("exists")
                        .permissions()
                        .mode();
                    assert_eq!(mode & 0o777, 0o600, "{}", file.display());
                }
            }
        }
        // Read back, not created again.
        let again = service(
            "http_listen = \"127.0.0.1:8080\"\ngateway_key_file = \"gw.key\"\nehr_key_file = \"ehr.key\"\nfuture_skew_s = 60\n",
        )
        .expect("valid table")
        .into_config(&config_path, data)
        .expect("config");
        assert_eq!(
            again.ehr_master_key.to_bytes(),
            config.ehr_master_key.to_bytes()
        );
        assert!(matches!(again.mqtt, MqttMode::Embedded(_)));
        // A tile server, checked where the table is read.
        let table = "http_listen = \"127.0.0.1:8080\"\ngateway_key_file = \"gw.key\"\n\
                     ehr_key_file = \"ehr.key\"\n";
        let tiles = service(&format!(
            "{table}map_tiles = {{ url = \"https://tile.example/{{z}}/{{x}}/{{y}}.png\", \
             attribution = \"© OSM\", max_zoom = 18 }}\n"
        ))
        .expect("valid table")
        .into_config(&config_path, dir.path().join("data"))
        .expect("config")
        .map_tiles
        .expect("tiles");
        assert_eq!(tiles.origin(), "https://tile.example");
        assert_eq!(tiles.max_zoom(), 18);
        let refused = service(&format!(
            "{table}map_tiles = {{ url = \"https://tile.example/{{z}}/{{x}}.png\", attribution = \"a\" }}\n"
        ))
        .expect("valid table")
        .into_config(&config_path, dir.path().join("data"));
        assert!(
            matches!(refused, Err(ServiceConfigError::MapTiles(_))),
            "{:?}",
            refused.as_ref().err()
        );
        assert_eq!(again.future_skew, std::time::Duration::from_secs(60));
        assert!(matches!(
            service("http_listen = \"127.0.0.1:8080\"\nsurprise = 1\n"),
            Err(ServiceConfigError::Table(_))
        ));
    }

    #[test]
    fn the_notify_table_reads_its_secrets_next_to_the_configuration() {
        let dir = tempfile::tempdir().expect("temp dir");
        let gateway = vigil_ledger::keys::os_random_key();
        keys::write_key_file(&dir.path().join("gw.key"), &gateway).expect("key file");
        std::fs::write(dir.path().join("hook.secret"), "k".repeat(32)).expect("secret");
        let table = "http_listen = \"127.0.0.1:8080\"\ngateway_key_file = \"gw.key\"\n\
             ehr_key_file = \"ehr.key\"\n[notify]\n[[notify.webhook]]\nname = \"on-call\"\n\
             url = \"https://hooks.example.org/vigil\"\nsecret_file = \"hook.secret\"\n\
             min_level = \"critical\"\n";
        let config = service(table)
            .expect("valid table")
            .into_config(&dir.path().join("node.toml"), dir.path().join("data"))
            .expect("config");
        let notify = config.notify.expect("notifications configured");
        assert_eq!(notify.webhooks.len(), 1);
        assert_eq!(
            notify.webhooks[0].route.min_level,
            vigil_core::AlertLevel::Critical
        );
        // A plaintext webhook to another machine is refused before the node starts.
        let plaintext = table.replace("https://hooks.example.org", "http://hooks.example.org");
        let refused = service(&plaintext)
            .expect("valid table")
            .into_config(&dir.path().join("node.toml"), dir.path().join("data2"));
        assert!(matches!(refused, Err(ServiceConfigError::Notify(_))));
    }

    #[test]
    fn a_missing_key_is_not_created_for_an_existing_health_record() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(ehr_path(dir.path()), b"").expect("record");
        let result = ehr_master_key(&dir.path().join("ehr.key"), dir.path());
        assert!(matches!(result, Err(ServiceConfigError::EhrKey { .. })));
        assert!(!dir.path().join("ehr.key").exists());
    }
}
