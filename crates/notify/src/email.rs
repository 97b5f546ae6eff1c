//! E-mail channels: plain-text messages (`render::email`) through one SMTP relay, with lettre.
//!
//! TLS is required whenever the relay is not on this machine (checked with the
//! configuration): `starttls` refuses a server that does not offer STARTTLS rather than
//! carry on in plaintext, `tls` speaks TLS from the first byte; certificates are checked
//! against the platform's roots. Each message opens its own connection: alerts are rare, and
//! a connection kept open would need watching. SMTP 4xx replies and network errors are
//! retried; 5xx replies (no such mailbox, relaying refused) are not.

use std::str::FromStr as _;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

use crate::config::{EmailChannel, SmtpServer, SmtpTls};
use crate::event::Event;
use crate::render::{self, RenderOptions};
use crate::transport::{Failure, Sent};

/// The relay, shared by every e-mail channel.
#[derive(Clone)]
pub struct Relay {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    hello_name: String,
}

impl Relay {
    pub fn new(server: &SmtpServer) -> Result<Self, String> {
        let builder = match server.tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&server.host)
                .map_err(|e| e.to_string())?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&server.host)
                .map_err(|e| e.to_string())?,
            // Checked: only to a relay on this machine.
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&server.host),
        };
        let mut builder = builder
            .port(server.port)
            .timeout(Some(server.timeout))
            .hello_name(ClientId::Domain(server.hello_name.clone()));
        if let Some((username, password)) = &server.credentials {
            builder = builder.credentials(Credentials::new(username.clone(), password.0.clone()));
        }
        let from = Mailbox::from_str(&server.from).map_err(|e| format!("from: {e}"))?;
        Ok(Self {
            transport: builder.build(),
            from,
            hello_name: server.hello_name.clone(),
        })
    }
}

pub struct Email {
    channel: EmailChannel,
    to: Mailbox,
    relay: Relay,
    dashboard_url: Option<String>,
}

impl Email {
    pub fn new(
        channel: EmailChannel,
        relay: Relay,
        dashboard_url: Option<String>,
    ) -> Result<Self, String> {
        let to = Mailbox::from_str(&channel.to).map_err(|e| format!("to: {e}"))?;
        Ok(Self {
            channel,
            to,
            relay,
            dashboard_url,
        })
    }

    pub fn name(&self) -> &str {
        &self.channel.name
    }

    pub fn route(&self) -> &crate::route::Route {
        &self.channel.route
    }

    /// The message for `event`; the same for every attempt (one Message-ID, so a reader's
    /// mail client shows a message delivered twice once).
    pub fn message(&self, event: &Event) -> Result<Message, String> {
        let text = render::email(
            event,
            RenderOptions {
                allow_health_data: self.channel.allow_health_data,
                dashboard_url: self.dashboard_url.as_deref(),
            },
        );
        Message::builder()
            .from(self.relay.from.clone())
            .to(self.to.clone())
            .subject(text.subject)
            .message_id(Some(format!(
                "<{}.{}@{}>",
                event.kind().name(),
                event.id(),
                self.relay.hello_name
            )))
            .header(ContentType::TEXT_PLAIN)
            .body(text.body)
            .map_err(|e| e.to_string())
    }

    pub async fn send(&self, message: Message) -> Sent {
        match self.relay.transport.send(message).await {
            Ok(response) => Ok(format!(
                "SMTP {} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )),
            Err(error) => Err(Failure {
                detail: smtp_error_text(&error),
                // 5xx replies, and errors made before any exchange (a bad address), stay.
                permanent: error.is_permanent() || error.is_client(),
                retry_after: None,
            }),
        }
    }
}

fn smtp_error_text(error: &lettre::transport::smtp::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        let part = error.to_string();
        if !parts.contains(&part) {
            parts.push(part);
        }
        cause = error.source();
    }
    parts.join(": ")
}
