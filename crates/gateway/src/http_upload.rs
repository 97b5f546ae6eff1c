//! The master device's other link: its outbox sent to the node's HTTP API
//! (`POST /api/packs/{person}`), one pack per request, for where MQTT is not available.

use std::io::Read as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use vigil_core::senml::Format;

use crate::admit::{Rejection, Reply, detect_format};
use crate::outbox::{FlushReport, IN_FLIGHT_MAX, Outbox, OutboxError};

/// Longest wait for the node to answer one request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// A reply body read, at most (a reply is a few hundred bytes; anything longer is not one).
const REPLY_BYTES_MAX: u64 = 64 * 1024;
/// Pause after the node could not be reached, before the caller goes on.
const UNREACHABLE_PAUSE: Duration = Duration::from_millis(200);

/// Sends the outbox over HTTP and applies the node's replies.
pub struct HttpUploader {
    client: reqwest::blocking::Client,
    base: String,
}

impl HttpUploader {
    pub fn new(node: SocketAddr) -> Result<HttpUploader, OutboxError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()?;
        Ok(HttpUploader {
            client,
            base: format!("http://{node}"),
        })
    }

    /// Sends waiting packs one request at a time until the outbox is empty, the node is
    /// unreachable (`FlushReport::unreachable`), or `deadline` passes. A failed request leaves
    /// the pack waiting.
    pub fn flush(
        &mut self,
        outbox: &mut Outbox,
        deadline: Instant,
    ) -> Result<FlushReport, OutboxError> {
        let mut report = FlushReport::default();
        'outer: while Instant::now() < deadline {
            let pending = outbox.pending(IN_FLIGHT_MAX)?;
            if pending.is_empty() {
                break;
            }
            let before = outbox.len()?;
            for pack in pending {
                if Instant::now() >= deadline {
                    break 'outer;
                }
                let reply = match self.post(&format!("/api/packs/{}", pack.person), &pack.payload) {
                    Ok(reply) => reply,
                    Err(error) => {
                        // Unreachable: wait a little rather than spin, then let the caller go on.
                        tracing::debug!(%error, "node unreachable");
                        report.unreachable = true;
                        std::thread::sleep(
                            UNREACHABLE_PAUSE
                                .min(deadline.saturating_duration_since(Instant::now())),
                        );
                        break 'outer;
                    }
                };
                // A body that is no reply (a proxy's error page): the pack waits.
                let Some(reply) = reply else { continue };
                if outbox.apply_reply(&pack.device, &reply)? {
                    let replayed = reply
                        .error
                        .as_ref()
                        .is_some_and(|e| e.reason == Rejection::Replayed);
                    if reply.accepted || replayed {
                        report.delivered += 1;
                    } else {
                        report.refused += 1;
                    }
                }
            }
            if outbox.len()? == before {
                // Nothing left the outbox (the node is busy, or answers no reply): pause
                // rather than post the same packs again at once.
                std::thread::sleep(
                    UNREACHABLE_PAUSE.min(deadline.saturating_duration_since(Instant::now())),
                );
                break;
            }
        }
        report.remaining = outbox.len()?;
        Ok(report)
    }

    /// One POST; the node's reply whatever the status (refusals carry a JSON body too), or
    /// `None` if the body is not one.
    fn post(&self, path: &str, body: &[u8]) -> Result<Option<Reply>, reqwest::Error> {
        let content_type = match detect_format(body) {
            Format::Cbor => "application/senml+cbor",
            Format::Json => "application/senml+json",
        };
        let mut response = self
            .client
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.to_vec())
            .send()?;
        let mut bytes = Vec::new();
        // A read error mid-body is a failed request like any other: the pack waits.
        if (&mut response)
            .take(REPLY_BYTES_MAX)
            .read_to_end(&mut bytes)
            .is_err()
        {
            return Ok(None);
        }
        Ok(serde_json::from_slice(&bytes).ok())
    }
}
