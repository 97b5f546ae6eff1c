//! The channels a node notifies, as its configuration file writes them (the `[service.notify]`
//! table, read by the node's loader) and as they are checked.
//!
//! ```toml
//! [service.notify]
//! dashboard_url = "https://vigil.example.org/"   # optional: links in messages
//! [service.notify.retry]                         # optional: these are the defaults
//! attempts = 8
//! first_delay_ms = 2000
//! max_delay_ms = 300000
//!
//! [[service.notify.webhook]]
//! name = "on-call"
//! url = "https://hooks.example.org/vigil"        # http:// only to a loopback address
//! secret_file = "on-call.secret"                 # at least 32 bytes; HMAC key
//! min_level = "critical"                         # or "warning" (the default)
//! allow_health_data = false                      # the default: no values in messages
//!
//! [service.notify.smtp]
//! host = "smtp.example.org"
//! port = 587
//! tls = "starttls"                               # or "tls" (implicit, port 465), or
//!                                                # "none" (a loopback relay only)
//! from = "Vigil <vigil@example.org>"
//! username = "vigil"                             # optional, with password_file
//! password_file = "smtp.password"
//!
//! [[service.notify.email]]
//! to = "duty-officer@example.org"
//! min_level = "warning"
//! ```
//!
//! Either kind of channel also takes `events` (kinds of event, default all: `["alert", "escalation"]`) and
//! `people` (pseudonyms; default everyone). Every check runs before the node starts, and
//! again in [`crate::Notifier::start`] for a configuration built in code.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use vigil_core::{AlertLevel, PersonId};

use crate::backoff::{Backoff, BackoffError};
use crate::event::EventKind;
use crate::route::Route;
use crate::signature::Secret;

/// Channels one node may have, webhooks and e-mail together.
pub const CHANNELS_MAX: usize = 64;
/// Events waiting per channel by default; beyond its queue an event is dropped for that
/// channel (and logged as such), never waited for.
pub const QUEUE_DEFAULT: usize = 256;
pub const QUEUE_MAX: usize = 10_000;
/// Longest channel name.
pub const NAME_BYTES_MAX: usize = 64;

/// `[service.notify]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyFile {
    #[serde(default)]
    pub dashboard_url: Option<String>,
    #[serde(default)]
    pub retry: RetryFile,
    #[serde(default)]
    pub queue_max: Option<usize>,
    #[serde(default)]
    pub webhook: Vec<WebhookFile>,
    #[serde(default)]
    pub smtp: Option<SmtpFile>,
    #[serde(default)]
    pub email: Vec<EmailFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    pub attempts: Option<u32>,
    pub first_delay_ms: Option<u64>,
    pub max_delay_ms: Option<u64>,
}

/// The lowest severity a channel is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MinLevel {
    #[default]
    Warning,
    Critical,
}

impl From<MinLevel> for AlertLevel {
    fn from(level: MinLevel) -> AlertLevel {
        match level {
            MinLevel::Warning => AlertLevel::Warning,
            MinLevel::Critical => AlertLevel::Critical,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookFile {
    pub name: String,
    pub url: String,
    pub secret_file: PathBuf,
    #[serde(default)]
    pub min_level: MinLevel,
    #[serde(default)]
    pub allow_health_data: bool,
    #[serde(default)]
    pub events: Option<Vec<EventKind>>,
    #[serde(default)]
    pub people: Option<Vec<PersonId>>,
}

/// How the node talks to its SMTP relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmtpTls {
    /// STARTTLS, required (never falls back to plaintext); port 587 by default.
    Starttls,
    /// TLS from the first byte (SMTPS); port 465 by default.
    Tls,
    /// Plaintext: only to a relay on this machine (127.0.0.0/8, ::1, `localhost`).
    None,
}

impl SmtpTls {
    pub const fn default_port(self) -> u16 {
        match self {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpFile {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    pub tls: SmtpTls,
    pub from: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The name the node gives in EHLO (default `localhost`).
    #[serde(default)]
    pub hello_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailFile {
    /// Default `email:<to>`.
    #[serde(default)]
    pub name: Option<String>,
    pub to: String,
    #[serde(default)]
    pub min_level: MinLevel,
    #[serde(default)]
    pub allow_health_data: bool,
    #[serde(default)]
    pub events: Option<Vec<EventKind>>,
    #[serde(default)]
    pub people: Option<Vec<PersonId>>,
}

/// Why a notification configuration cannot be used. Each names the channel or file at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("notification channel {name:?}: {detail}")]
    Channel { name: String, detail: String },
    #[error("{path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("[service.notify.smtp]: {0}")]
    Smtp(String),
    #[error("[service.notify.retry]: {0}")]
    Retry(#[from] BackoffError),
    #[error("[service.notify]: {0}")]
    Notify(String),
}

/// A password read from a file; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Checked configuration of every channel.
#[derive(Clone, Debug)]
pub struct NotifyConfig {
    /// The dashboard's address, normalised (`https://host/`), for links in messages.
    pub dashboard_url: Option<String>,
    pub backoff: Backoff,
    /// Events waiting per channel ([`QUEUE_DEFAULT`]).
    pub queue_max: usize,
    pub webhooks: Vec<WebhookChannel>,
    pub smtp: Option<SmtpServer>,
    pub emails: Vec<EmailChannel>,
}

#[derive(Clone, Debug)]
pub struct WebhookChannel {
    pub name: String,
    pub url: Url,
    pub secret: Secret,
    pub route: Route,
    pub allow_health_data: bool,
}

#[derive(Clone, Debug)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// A mailbox (`Vigil <vigil@example.org>` or a bare address).
    pub from: String,
    pub credentials: Option<(String, Password)>,
    pub hello_name: String,
    /// Longest one SMTP command may take.
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct EmailChannel {
    pub name: String,
    pub to: String,
    pub route: Route,
    pub allow_health_data: bool,
}

/// Longest an SMTP command may take by default.
pub const SMTP_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

impl NotifyConfig {
    /// No channel, the default schedule: what tests and tools add channels to.
    pub fn empty() -> Self {
        Self {
            dashboard_url: None,
            backoff: Backoff::default(),
            queue_max: QUEUE_DEFAULT,
            webhooks: Vec::new(),
            smtp: None,
            emails: Vec::new(),
        }
    }

    /// Every check on a configuration, whether read from a file or built in code.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.backoff.check()?;
        if self.queue_max == 0 || self.queue_max > QUEUE_MAX {
            return Err(ConfigError::Notify(format!(
                "queue_max must be between 1 and {QUEUE_MAX}"
            )));
        }
        let count = self.webhooks.len() + self.emails.len();
        if count > CHANNELS_MAX {
            return Err(ConfigError::Notify(format!(
                "{count} channels, over the {CHANNELS_MAX} allowed"
            )));
        }
        if let Some(url) = &self.dashboard_url {
            dashboard_url(url)?;
        }
        let mut names = BTreeSet::new();
        let channel_names = self
            .webhooks
            .iter()
            .map(|w| &w.name)
            .chain(self.emails.iter().map(|e| &e.name));
        for name in channel_names {
            check_name(name)?;
            if !names.insert(name) {
                return Err(channel(name, "two channels have this name"));
            }
        }
        for webhook in &self.webhooks {
            check_webhook_url(&webhook.name, &webhook.url)?;
        }
        if let Some(smtp) = &self.smtp {
            check_smtp(smtp)?;
        }
        if !self.emails.is_empty() && self.smtp.is_none() {
            return Err(ConfigError::Smtp(
                "e-mail channels need a [service.notify.smtp] relay".into(),
            ));
        }
        for email in &self.emails {
            lettre::Address::from_str(&email.to)
                .map_err(|e| channel(&email.name, format!("to {:?}: {e}", email.to)))?;
        }
        Ok(())
    }

    /// Channels of any kind.
    pub fn channel_count(&self) -> usize {
        self.webhooks.len() + self.emails.len()
    }
}

impl NotifyFile {
    /// The checked configuration; `resolve` turns a file name written in the configuration
    /// into a path (relative to the configuration file). Reads the secret files.
    pub fn into_config(
        self,
        resolve: impl Fn(&Path) -> PathBuf,
    ) -> Result<NotifyConfig, ConfigError> {
        let defaults = Backoff::default();
        let backoff = Backoff {
            attempts: self.retry.attempts.unwrap_or(defaults.attempts),
            first_delay: self
                .retry
                .first_delay_ms
                .map_or(defaults.first_delay, Duration::from_millis),
            max_delay: self
                .retry
                .max_delay_ms
                .map_or(defaults.max_delay, Duration::from_millis),
        };
        let dashboard_url = self
            .dashboard_url
            .as_deref()
            .map(dashboard_url)
            .transpose()?;
        let mut webhooks = Vec::new();
        for file in self.webhook {
            let url = Url::parse(&file.url)
                .map_err(|e| channel(&file.name, format!("url {:?}: {e}", file.url)))?;
            let path = resolve(&file.secret_file);
            let secret =
                Secret::new(read_secret(&path)?.into_bytes()).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            webhooks.push(WebhookChannel {
                route: route(file.min_level, file.events, file.people),
                name: file.name,
                url,
                secret,
                allow_health_data: file.allow_health_data,
            });
        }
        let smtp = self
            .smtp
            .map(|file| smtp_server(file, &resolve))
            .transpose()?;
        let emails = self
            .email
            .into_iter()
            .map(|file| EmailChannel {
                name: file.name.unwrap_or_else(|| format!("email:{}", file.to)),
                route: route(file.min_level, file.events, file.people),
                to: file.to,
                allow_health_data: file.allow_health_data,
            })
            .collect();
        let config = NotifyConfig {
            dashboard_url,
            backoff,
            queue_max: self.queue_max.unwrap_or(QUEUE_DEFAULT),
            webhooks,
            smtp,
            emails,
        };
        config.check()?;
        Ok(config)
    }
}

fn route(
    min_level: MinLevel,
    events: Option<Vec<EventKind>>,
    people: Option<Vec<PersonId>>,
) -> Route {
    Route {
        min_level: min_level.into(),
        events: events.map_or_else(
            || EventKind::ALL.iter().copied().collect(),
            |e| e.into_iter().collect(),
        ),
        people: people.map(|p| p.into_iter().collect()),
    }
}

fn smtp_server(
    file: SmtpFile,
    resolve: &impl Fn(&Path) -> PathBuf,
) -> Result<SmtpServer, ConfigError> {
    let credentials = match (file.username, file.password_file) {
        (Some(username), Some(path)) => Some((username, Password(read_secret(&resolve(&path))?))),
        (None, None) => None,
        _ => {
            return Err(ConfigError::Smtp(
                "username and password_file go together".into(),
            ));
        }
    };
    Ok(SmtpServer {
        port: file.port.unwrap_or(file.tls.default_port()),
        host: file.host,
        tls: file.tls,
        from: file.from,
        credentials,
        hello_name: file.hello_name.unwrap_or_else(|| "localhost".into()),
        timeout: SMTP_TIMEOUT_DEFAULT,
    })
}

fn channel(name: &str, detail: impl Into<String>) -> ConfigError {
    ConfigError::Channel {
        name: name.to_owned(),
        detail: detail.into(),
    }
}

fn check_name(name: &str) -> Result<(), ConfigError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-:@+".contains(c);
    if name.is_empty() || name.len() > NAME_BYTES_MAX || !name.chars().all(allowed) {
        return Err(channel(
            name,
            format!("a name is 1 to {NAME_BYTES_MAX} of A-Z a-z 0-9 . _ - : @ +"),
        ));
    }
    Ok(())
}

/// Whether `host` is this machine: `localhost` or a loopback address.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn check_webhook_url(name: &str, url: &Url) -> Result<(), ConfigError> {
    let host = url
        .host_str()
        .ok_or_else(|| channel(name, "the url has no host"))?;
    match url.scheme() {
        "https" => Ok(()),
        // A signature proves origin, not secrecy: plaintext stays on this machine.
        "http" if is_loopback_host(host) => Ok(()),
        "http" => Err(channel(
            name,
            "http:// only to a loopback address; use https:// for another host",
        )),
        other => Err(channel(name, format!("scheme {other:?} is not http(s)"))),
    }
}

fn check_smtp(smtp: &SmtpServer) -> Result<(), ConfigError> {
    if smtp.tls == SmtpTls::None && !is_loopback_host(&smtp.host) {
        return Err(ConfigError::Smtp(format!(
            "tls = \"none\" only to a relay on this machine, not {:?}: use \"starttls\" or \"tls\"",
            smtp.host
        )));
    }
    if smtp.host.is_empty() || smtp.port == 0 {
        return Err(ConfigError::Smtp(
            "host and a port above 0 are needed".into(),
        ));
    }
    lettre::message::Mailbox::from_str(&smtp.from)
        .map_err(|e| ConfigError::Smtp(format!("from {:?}: {e}", smtp.from)))?;
    if smtp.hello_name.is_empty() || smtp.hello_name.contains(char::is_whitespace) {
        return Err(ConfigError::Smtp("hello_name must be one word".into()));
    }
    if smtp.timeout.is_zero() {
        return Err(ConfigError::Smtp("the timeout must be positive".into()));
    }
    Ok(())
}

/// The dashboard's address, normalised; http(s), without a fragment (links add one).
fn dashboard_url(text: &str) -> Result<String, ConfigError> {
    let url = Url::parse(text)
        .map_err(|e| ConfigError::Notify(format!("dashboard_url {text:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.fragment().is_some() {
        return Err(ConfigError::Notify(format!(
            "dashboard_url {text:?}: an http(s) address without a #fragment"
        )));
    }
    Ok(url.to_string())
}

/// A secret file's text without its final line break. Warns when others may read it.
fn read_secret(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(metadata) = std::fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "a notification secret is readable by others than its owner");
        }
    }
    let secret = text.trim_end_matches(['\n', '\r']).to_owned();
    if secret.is_empty() {
        return Err(ConfigError::File {
            path: path.to_owned(),
            detail: "empty".into(),
        });
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(dir: &Path, text: &str) -> Result<NotifyConfig, ConfigError> {
        let file: NotifyFile =
            toml::from_str(text).map_err(|e| ConfigError::Notify(e.to_string()))?;
        file.into_config(|p| dir.join(p))
    }

    fn with_secret() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("hook.secret"), "s".repeat(40) + "\n").expect("secret");
        std::fs::write(dir.path().join("smtp.password"), "hunter2\n").expect("password");
        dir
    }

    #[test]
    fn a_full_table_is_read_with_its_defaults() {
        let dir = with_secret();
        let person = PersonId::random();
        let config = load(
            dir.path(),
            &format!(
                r#"
                dashboard_url = "https://vigil.example.org"
                [retry]
                attempts = 3
                [[webhook]]
                name = "on-call"
                url = "https://hooks.example.org/vigil"
                secret_file = "hook.secret"
                min_level = "critical"
                [smtp]
                host = "smtp.example.org"
                tls = "starttls"
                from = "Vigil <vigil@example.org>"
                username = "vigil"
                password_file = "smtp.password"
                [[email]]
                to = "duty@example.org"
                allow_health_data = true
                people = ["{person}"]
                "#
            ),
        )
        .expect("valid");
        assert_eq!(
            config.dashboard_url.as_deref(),
            Some("https://vigil.example.org/")
        );
        assert_eq!(config.backoff.attempts, 3);
        assert_eq!(config.backoff.first_delay, Backoff::default().first_delay);
        assert_eq!(config.queue_max, QUEUE_DEFAULT);
        let hook = &config.webhooks[0];
        assert_eq!(hook.route.min_level, AlertLevel::Critical);
        assert!(!hook.allow_health_data);
        assert_eq!(
            hook.secret,
            Secret::new("s".repeat(40).into_bytes()).expect("valid")
        );
        let smtp = config.smtp.as_ref().expect("smtp");
        assert_eq!(smtp.port, 587);
        assert_eq!(
            smtp.credentials.as_ref().map(|c| c.1.0.as_str()),
            Some("hunter2")
        );
        assert!(!format!("{smtp:?}").contains("hunter2"));
        let email = &config.emails[0];
        assert_eq!(email.name, "email:duty@example.org");
        assert_eq!(email.route.min_level, AlertLevel::Warning);
        assert_eq!(email.route.people, Some([person].into()));
        assert!(email.allow_health_data);
    }

    #[test]
    fn plaintext_leaves_this_machine_for_no_channel() {
        let dir = with_secret();
        let hook = |url: &str| {
            format!("[[webhook]]\nname = \"h\"\nurl = \"{url}\"\nsecret_file = \"hook.secret\"\n")
        };
        assert!(load(dir.path(), &hook("http://127.0.0.1:9000/in")).is_ok());
        assert!(load(dir.path(), &hook("http://localhost/in")).is_ok());
        assert!(load(dir.path(), &hook("http://[::1]:8000/")).is_ok());
        for refused in ["http://hooks.example.org/", "http://10.0.0.1/", "ftp://x/"] {
            assert!(
                matches!(
                    load(dir.path(), &hook(refused)),
                    Err(ConfigError::Channel { .. })
                ),
                "{refused}"
            );
        }
        let smtp = |host: &str| {
            format!("[smtp]\nhost = \"{host}\"\ntls = \"none\"\nfrom = \"v@example.org\"\n")
        };
        assert!(load(dir.path(), &smtp("127.0.0.1")).is_ok());
        assert!(matches!(
            load(dir.path(), &smtp("smtp.example.org")),
            Err(ConfigError::Smtp(_))
        ));
    }

    #[test]
    fn mistakes_are_named() {
        let dir = with_secret();
        let cases = [
            // Unknown key.
            "surprise = 1\n",
            // E-mail without a relay.
            "[[email]]\nto = \"a@example.org\"\n",
            // A bad recipient.
            "[smtp]\nhost = \"localhost\"\ntls = \"none\"\nfrom = \"v@example.org\"\n[[email]]\nto = \"not an address\"\n",
            // Two channels of one name.
            "[[webhook]]\nname = \"x\"\nurl = \"https://a/\"\nsecret_file = \"hook.secret\"\n\
             [[webhook]]\nname = \"x\"\nurl = \"https://b/\"\nsecret_file = \"hook.secret\"\n",
            // A short secret.
            "[[webhook]]\nname = \"x\"\nurl = \"https://a/\"\nsecret_file = \"smtp.password\"\n",
            // A missing secret.
            "[[webhook]]\nname = \"x\"\nurl = \"https://a/\"\nsecret_file = \"nope\"\n",
            // A username without a password.
            "[smtp]\nhost = \"localhost\"\ntls = \"none\"\nfrom = \"v@example.org\"\nusername = \"u\"\n",
            // Retry bounds.
            "[retry]\nattempts = 0\n",
            "[retry]\nfirst_delay_ms = 10\nmax_delay_ms = 5\n",
            // A level that is not one.
            "[[email]]\nto = \"a@example.org\"\nmin_level = \"ok\"\n",
            "queue_max = 0\n",
            "dashboard_url = \"https://x/#/alerts\"\n",
            "[[webhook]]\nname = \"has space\"\nurl = \"https://a/\"\nsecret_file = \"hook.secret\"\n",
        ];
        for case in cases {
            assert!(load(dir.path(), case).is_err(), "{case}");
        }
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "example.org",
            "10.0.0.1",
            "localhost.example.org",
            "0.0.0.0",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
