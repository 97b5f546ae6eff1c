//! Certificates and rustls configurations for Vigil's listeners and clients.
//!
//! A node serves MQTT and HTTP over TLS with a certificate chain and key read from PEM files
//! ([`server_config`]); a device trusts exactly the CA certificates it is given
//! ([`client_config`]), never the system store, so it talks only to its own deployment.
//! [`LocalAuthority`] creates such a CA and a server certificate for the names a
//! node answers on: what `vigil demo` runs with, and what a small deployment may start from (a
//! province's brings its own PKI). Everything uses the aws-lc-rs provider that rustls already
//! uses in the tree, TLS 1.2 and 1.3 only.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use rustls;
pub use rustls_pki_types::ServerName;
pub use tokio_rustls::server::TlsStream as TlsStreamServer;
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a PEM file of {what}: {reason}")]
    Pem {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("{path}: holds no {what}")]
    Empty { path: PathBuf, what: &'static str },
    #[error("{path}: a private key readable by others (mode {mode:o}); chmod 600 it")]
    KeyReadable { path: PathBuf, mode: u32 },
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The provider every configuration here is built with.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A server configuration from a PEM certificate chain (leaf first) and its PEM private key.
pub fn server_config(cert_chain: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates(cert_chain)?;
    owner_only(key)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, "a private key", e))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// `server` for HTTPS: the same certificate, offering HTTP/1.1 by ALPN (the MQTT listener
/// offers none, so neither negotiates the other's protocol).
pub fn for_http(server: &ServerConfig) -> Arc<ServerConfig> {
    let mut config = server.clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A client configuration that trusts the CA certificates in `ca` and nothing else.
pub fn client_config(ca: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(ca)? {
        roots.add(certificate)?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Refuses a private key file that others than its owner may read (as ssh does).
fn owner_only(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .map_err(|source| TlsError::Io {
            path: path.to_owned(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyReadable {
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

/// Every certificate in a PEM file, in order; at least one.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, "certificates", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, "certificates", e))?;
    if chain.is_empty() {
        return Err(TlsError::Empty {
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(chain)
}

fn pem_error(path: &Path, what: &'static str, error: rustls_pki_types::pem::Error) -> TlsError {
    match error {
        rustls_pki_types::pem::Error::Io(source) => TlsError::Io {
            path: path.to_owned(),
            source,
        },
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            path: path.to_owned(),
            what,
        },
        other => TlsError::Pem {
            path: path.to_owned(),
            what,
            reason: other.to_string(),
        },
    }
}

/// Days a [`LocalAuthority`]'s certificates are valid.
pub const VALIDITY_DAYS: i64 = 398;

/// A certificate authority and one server certificate it signed, written as PEM files.
#[derive(Clone, Debug)]
pub struct LocalAuthority {
    /// The CA certificate: what clients are given to trust (readable by anyone).
    pub ca_cert: PathBuf,
    /// The server's certificate chain (its certificate, then the CA's).
    pub server_cert: PathBuf,
    /// The server's private key (0600).
    pub server_key: PathBuf,
}

impl LocalAuthority {
    /// File names inside the directory [`LocalAuthority::create`] writes to.
    pub const CA_CERT: &'static str = "ca.pem";
    pub const SERVER_CERT: &'static str = "server.pem";
    pub const SERVER_KEY: &'static str = "server.key";

    /// Creates a fresh CA (ECDSA P-256; its key is used once and never written) and a server
    /// certificate for `names` (DNS names or IP addresses, e.g. `localhost` and `127.0.0.1`)
    /// in `dir`, replacing what an earlier run wrote there: clients take the new `ca.pem`.
    pub fn create(dir: &Path, names: &[&str]) -> Result<Self, TlsError> {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "Vigil local certificate authority",
        );
        // Bounded validity: the CA's key is gone once this returns, so nothing can revoke a
        // leaked server key; it expires instead (398 days, the longest browsers accept).
        let now = time::OffsetDateTime::now_utc();
        ca_params.not_before = now - time::Duration::days(1);
        ca_params.not_after = now + time::Duration::days(VALIDITY_DAYS);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate()?)?;

        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut server_params = rcgen::CertificateParams::new(names)?;
        server_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Vigil node");
        server_params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        server_params.not_before = now - time::Duration::days(1);
        server_params.not_after = now + time::Duration::days(VALIDITY_DAYS);
        server_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = rcgen::KeyPair::generate()?;
        let server = server_params.signed_by(&server_key, &ca)?;

        let authority = Self {
            ca_cert: dir.join(Self::CA_CERT),
            server_cert: dir.join(Self::SERVER_CERT),
            server_key: dir.join(Self::SERVER_KEY),
        };
        write_file(&authority.ca_cert, ca.pem().as_bytes(), 0o644)?;
        let chain = format!("{}{}", server.pem(), ca.pem());
        write_file(&authority.server_cert, chain.as_bytes(), 0o644)?;
        write_file(
            &authority.server_key,
            server_key.serialize_pem().as_bytes(),
            0o600,
        )?;
        Ok(authority)
    }

    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        server_config(&self.server_cert, &self.server_key)
    }

    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        client_config(&self.ca_cert)
    }
}

/// Writes `bytes` to `path` (replacing it) with `mode`, the mode set before any byte lands.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    // A file an earlier run left with a wider mode is removed, not reused.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A TLS echo on loopback: the client with `client` sends a line and reads it back.
    async fn round_trip(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
        name: &str,
    ) -> std::io::Result<Vec<u8>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(server);
        let served = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let mut tls = acceptor.accept(tcp).await?;
            let mut line = [0u8; 5];
            tls.read_exact(&mut line).await?;
            tls.write_all(&line).await?;
            tls.shutdown().await?;
            Ok::<_, std::io::Error>(())
        });
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let server_name = rustls_pki_types::ServerName::try_from(name.to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let mut tls = TlsConnector::from(client).connect(server_name, tcp).await?;
        tls.write_all(b"hello").await?;
        let mut back = Vec::new();
        tls.read_to_end(&mut back).await?;
        let _ = served.await;
        Ok(back)
    }

    #[tokio::test]
    async fn a_client_trusting_the_local_ca_reaches_the_server_by_name_and_address() {
        let dir = scratch("ok");
        let authority = LocalAuthority::create(&dir, &["localhost", "127.0.0.1"]).expect("ca");
        for name in ["localhost", "127.0.0.1"] {
            let back = round_trip(
                authority.server_config().expect("server"),
                authority.client_config().expect("client"),
                name,
            )
            .await
            .expect("handshake");
            assert_eq!(back, b"hello");
        }
        let mode = |p: &Path| std::fs::metadata(p).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode(&authority.server_key), 0o600);
        assert_eq!(mode(&authority.ca_cert), 0o644);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_client_refuses_another_authority_and_another_name() {
        let dir = scratch("refused");
        let ours = LocalAuthority::create(&dir.join("ours"), &["localhost"]).expect("ca");
        let theirs = LocalAuthority::create(&dir.join("theirs"), &["localhost"]).expect("ca");
        // A server with a certificate from another authority: refused.
        let other = round_trip(
            theirs.server_config().expect("server"),
            ours.client_config().expect("client"),
            "localhost",
        )
        .await;
        assert!(other.is_err(), "{other:?}");
        // Our server, asked for a name its certificate does not carry: refused.
        let wrong_name = round_trip(
            ours.server_config().expect("server"),
            ours.client_config().expect("client"),
            "vigil.example",
        )
        .await;
        assert!(wrong_name.is_err(), "{wrong_name:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_files_are_named_errors() {
        let dir = scratch("bad");
        std::fs::create_dir_all(&dir).expect("dir");
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").expect("write");
        assert!(matches!(
            client_config(&garbage),
            Err(TlsError::Empty { .. })
        ));
        let missing = dir.join("missing.pem");
        assert!(matches!(client_config(&missing), Err(TlsError::Io { .. })));
        assert!(server_config(&garbage, &missing).is_err());
        let authority = LocalAuthority::create(&dir.join("ca"), &["localhost"]).expect("ca");
        std::fs::set_permissions(
            &authority.server_key,
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        assert!(matches!(
            authority.server_config(),
            Err(TlsError::KeyReadable { mode: 0o644, .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
