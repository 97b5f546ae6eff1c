//! Notifications beyond the dashboard: finalized alerts and escalations sent to webhooks (a signed HTTP POST)
//! and by e-mail (SMTP), per channel and per severity, each attempt written to a delivery log.
//!
//! The pure parts decide and shape; the I/O parts only carry:
//!
//! - [`route`]: who gets what (a channel's minimum level, kinds of event, people);
//! - [`render`]: the webhook's JSON and the e-mail's text, without health values unless the
//!   channel has `allow_health_data` (values live in [`event::HealthData`], which only
//!   rendering for such a channel opens);
//! - [`signature`]: `Vigil-Signature: t=…,v1=…`, HMAC-SHA256 over the time and the body, and
//!   how a receiver verifies it;
//! - [`backoff`]: exponential retries with a cap and a bounded number of attempts;
//! - [`config`]: the `[service.notify]` table and its checks (plaintext only on loopback);
//! - [`log`]: the delivery log (SQLite, mode 0600), one row per attempt;
//! - [`webhook`], [`email`] (lettre) and [`service`]: one tokio task and one bounded queue
//!   per channel, so a slow receiver holds up only itself.
//!
//! ```no_run
//! use std::sync::Arc;
//! use vigil_notify::{DeliveryLog, Event, NoObserver, Notifier, NotifyConfig};
//!
//! async fn run(config: NotifyConfig, event: Event) -> Result<(), Box<dyn std::error::Error>> {
//!     let log = Arc::new(DeliveryLog::open("notifications.sqlite".as_ref())?);
//!     let notifier = Notifier::start(config, log, Arc::new(NoObserver))?;
//!     notifier.notify(event); // never waits
//!     Ok(())
//! }
//! ```
//!
//! It knows nothing of the node, the ledger or the health record: the node converts its live
//! events into [`Event`]s and hands them over.

pub mod backoff;
pub mod config;
pub mod email;
pub mod event;
pub mod log;
pub mod render;
pub mod route;
pub mod service;
pub mod signature;
pub mod transport;
pub mod webhook;

pub use config::{NotifyConfig, NotifyFile};
pub use event::{AlertEvent, EscalationEvent, Event, EventKind, HealthData};
pub use log::{DeliveryLog, Status};
pub use service::{NoObserver, Notifier, NotifyError, Observer};
