//! A webhook channel: a signed HTTP POST of the event's JSON (`render::webhook_body`).
//!
//! Headers: `Content-Type: application/json`, [`crate::signature::HEADER`] (see there for how
//! to verify it), `Vigil-Event` (the kind), `Vigil-Event-Id` (deduplicate on it: a retried or
//! re-sent event keeps its id) and `Vigil-Attempt`. A 2xx answer delivers; 408, 425, 429 and
//! 5xx answers and network errors are retried (honouring `Retry-After` in seconds); any other
//! answer, redirects included, is a refusal that retrying would not change. Redirects are
//! not followed: a signed alert goes to the address configured, nowhere else.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use crate::config::{WebhookChannel, is_loopback_host};
use crate::event::Event;
use crate::render::{self, RenderOptions};
use crate::signature;
use crate::transport::{Failure, Sent};

/// Longest one request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Webhook {
    channel: WebhookChannel,
    client: reqwest::Client,
    dashboard_url: Option<String>,
}

impl Webhook {
    pub fn new(channel: WebhookChannel, dashboard_url: Option<String>) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vigil-notify/", env!("CARGO_PKG_VERSION")));
        // A receiver on this machine is never reached through a proxy from the environment.
        if channel.url.host_str().is_some_and(is_loopback_host) {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| error_text(&e))?;
        Ok(Self {
            channel,
            client,
            dashboard_url,
        })
    }

    pub fn name(&self) -> &str {
        &self.channel.name
    }

    pub fn route(&self) -> &crate::route::Route {
        &self.channel.route
    }

    /// The body this channel sends for `event` (the same for every attempt).
    pub fn body(&self, event: &Event) -> Vec<u8> {
        render::webhook_body(
            event,
            RenderOptions {
                allow_health_data: self.channel.allow_health_data,
                dashboard_url: self.dashboard_url.as_deref(),
            },
        )
    }

    /// One attempt, signed at `now_s` (unix seconds).
    pub async fn send(&self, event: &Event, body: &[u8], attempt: u32, now_s: u64) -> Sent {
        let signature = signature::sign(&self.channel.secret, now_s, body);
        let request = self
            .client
            .post(self.channel.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(signature::HEADER, signature)
            .header("Vigil-Event", event.kind().name())
            .header("Vigil-Event-Id", event.id())
            .header("Vigil-Attempt", attempt.to_string())
            .body(body.to_vec());
        match request.send().await {
            Ok(response) => classify(response.status(), response.headers()),
            Err(error) => Err(Failure::transient(error_text(&error))),
        }
    }
}

/// What an answer means for the delivery.
pub fn classify(status: StatusCode, headers: &HeaderMap) -> Sent {
    let line = format!(
        "HTTP {}{}",
        status.as_u16(),
        status
            .canonical_reason()
            .map(|r| format!(" {r}"))
            .unwrap_or_default()
    );
    if status.is_success() {
        return Ok(line);
    }
    let transient = status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429);
    if !transient {
        let why = if status.is_redirection() {
            " (redirects are not followed)"
        } else {
            ""
        };
        return Err(Failure::permanent(format!("{line}{why}")));
    }
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Err(Failure {
        detail: line,
        permanent: false,
        retry_after,
    })
}

/// An error and its causes, without the URL (a webhook's path may hold a token): reqwest's
/// own words are replaced by its kind, the causes below it (I/O, TLS, HTTP) name no URL.
fn error_text(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_builder() {
        "could not build the request"
    } else {
        "request failed"
    };
    let mut parts = vec![kind.to_owned()];
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

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn answers_are_delivered_retried_or_refused() {
        let none = HeaderMap::new();
        assert_eq!(classify(StatusCode::OK, &none), Ok("HTTP 200 OK".into()));
        assert!(classify(StatusCode::NO_CONTENT, &none).is_ok());
        for transient in [500, 502, 503, 504, 408, 425, 429] {
            let status = StatusCode::from_u16(transient).expect("status");
            let failure = classify(status, &none).expect_err("fails");
            assert!(!failure.permanent, "{transient}");
        }
        for permanent in [400, 401, 403, 404, 410, 413, 301, 302, 307] {
            let status = StatusCode::from_u16(permanent).expect("status");
            let failure = classify(status, &none).expect_err("fails");
            assert!(failure.permanent, "{permanent}");
        }
        assert!(
            classify(StatusCode::FOUND, &none)
                .expect_err("fails")
                .detail
                .contains("redirects are not followed")
        );
    }

    #[test]
    fn retry_after_in_seconds_is_read_and_anything_else_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("12"));
        let failure = classify(StatusCode::TOO_MANY_REQUESTS, &headers).expect_err("fails");
        assert_eq!(failure.retry_after, Some(Duration::from_secs(12)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        let failure = classify(StatusCode::SERVICE_UNAVAILABLE, &headers).expect_err("fails");
        assert_eq!(failure.retry_after, None);
    }
}
