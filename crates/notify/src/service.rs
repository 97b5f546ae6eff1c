//! The running channels: one tokio task and one bounded queue per channel.
//!
//! [`Notifier::notify`] never waits: it puts the event on the queue of each channel whose
//! route accepts it, and an event finding a queue full is dropped for that channel alone
//! (logged as `dropped`). So a slow or failing receiver delays only its own channel, and
//! never the node that hands the events over. Each task delivers its queue in order, one
//! event at a time, with the channel's retries ([`crate::backoff`]); every attempt is written
//! to the delivery log and reported to the [`Observer`] (the node's metrics).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::backoff::Backoff;
use crate::config::{ConfigError, NotifyConfig};
use crate::email::{Email, Relay};
use crate::event::{Event, EventKind};
use crate::log::{Attempt, DeliveryLog, Status};
use crate::route::Route;
use crate::transport::Sent;
use crate::webhook::Webhook;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("notifications need a tokio runtime to run on")]
    NoRuntime,
    #[error("notification channel {name:?}: {detail}")]
    Channel { name: String, detail: String },
}

/// Told of every attempt's outcome once it is logged; the node counts them.
pub trait Observer: Send + Sync + 'static {
    fn outcome(&self, channel: &str, status: Status);
}

/// An observer that ignores everything.
pub struct NoObserver;

impl Observer for NoObserver {
    fn outcome(&self, _: &str, _: Status) {}
}

/// A channel as listed for operators: its name, its kind and what it is sent, never its
/// address or secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChannelSummary {
    pub name: String,
    pub kind: &'static str,
    pub min_level: &'static str,
    pub allow_health_data: bool,
}

enum Channel {
    // Boxed, both: a channel is made once and lives as long as the notifier.
    Webhook(Box<Webhook>),
    Email(Box<Email>),
}

impl Channel {
    fn name(&self) -> &str {
        match self {
            Channel::Webhook(w) => w.name(),
            Channel::Email(e) => e.name(),
        }
    }

    fn route(&self) -> &Route {
        match self {
            Channel::Webhook(w) => w.route(),
            Channel::Email(e) => e.route(),
        }
    }
}

struct Queue {
    name: String,
    route: Route,
    sender: mpsc::Sender<Arc<Event>>,
}

/// Shared by the channels' tasks: where attempts are written and who is told.
#[derive(Clone)]
struct Recorder {
    log: Arc<DeliveryLog>,
    observer: Arc<dyn Observer>,
}

impl Recorder {
    async fn record(
        &self,
        channel: &str,
        event: EventKind,
        event_id: &str,
        attempt: u32,
        status: Status,
        detail: String,
    ) {
        let log = self.log.clone();
        let (name, id) = (channel.to_owned(), event_id.to_owned());
        // SQLite blocks: off the async workers.
        let written = tokio::task::spawn_blocking(move || {
            log.record(&Attempt {
                time_ms: now_ms(),
                channel: &name,
                event,
                event_id: &id,
                attempt,
                status,
                detail: &detail,
            })
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, channel, "delivery not logged"),
            Err(error) => tracing::error!(%error, channel, "delivery log task failed"),
        }
        if status == Status::Delivered {
            tracing::debug!(channel, event_id, attempt, "notification delivered");
        } else {
            tracing::warn!(channel, event_id, attempt, %status, "notification not delivered");
        }
        self.observer.outcome(channel, status);
    }
}

/// Drops waiting to be logged; beyond this a drop is still counted (the observer is told at
/// once) but not logged, so a flood of alerts at a stuck channel costs bounded memory.
pub const DROPS_QUEUE_MAX: usize = 1024;

/// An event a channel's full queue refused.
struct Dropped {
    channel: String,
    event: EventKind,
    event_id: String,
    detail: &'static str,
}

/// The channels, running.
pub struct Notifier {
    queues: Vec<Queue>,
    summaries: Vec<ChannelSummary>,
    recorder: Recorder,
    drops: mpsc::Sender<Dropped>,
}

impl Notifier {
    /// Checks `config` and starts one task per channel on the current tokio runtime.
    pub fn start(
        config: NotifyConfig,
        log: Arc<DeliveryLog>,
        observer: Arc<dyn Observer>,
    ) -> Result<Notifier, NotifyError> {
        config.check()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| NotifyError::NoRuntime)?;
        let failed = |name: &str, detail: String| NotifyError::Channel {
            name: name.to_owned(),
            detail,
        };
        let mut channels = Vec::new();
        let mut summaries = Vec::new();
        for webhook in config.webhooks {
            summaries.push(summary(
                &webhook.name,
                "webhook",
                &webhook.route,
                webhook.allow_health_data,
            ));
            let name = webhook.name.clone();
            let channel = Webhook::new(webhook, config.dashboard_url.clone())
                .map_err(|detail| failed(&name, detail))?;
            channels.push(Channel::Webhook(Box::new(channel)));
        }
        if let Some(smtp) = &config.smtp {
            let relay = Relay::new(smtp).map_err(|detail| failed("smtp", detail))?;
            for email in config.emails {
                summaries.push(summary(
                    &email.name,
                    "email",
                    &email.route,
                    email.allow_health_data,
                ));
                let name = email.name.clone();
                let channel = Email::new(email, relay.clone(), config.dashboard_url.clone())
                    .map_err(|detail| failed(&name, detail))?;
                channels.push(Channel::Email(Box::new(channel)));
            }
        }
        let recorder = Recorder { log, observer };
        let (drops, dropped) = mpsc::channel(DROPS_QUEUE_MAX);
        runtime.spawn(log_drops(dropped, recorder.clone()));
        let mut queues = Vec::new();
        for channel in channels {
            let (sender, receiver) = mpsc::channel(config.queue_max);
            queues.push(Queue {
                name: channel.name().to_owned(),
                route: channel.route().clone(),
                sender,
            });
            runtime.spawn(run(channel, receiver, config.backoff, recorder.clone()));
        }
        Ok(Notifier {
            queues,
            summaries,
            recorder,
            drops,
        })
    }

    /// Hands `event` to every channel that wants it, without waiting; returns how many took
    /// it. A channel whose queue is full drops it (logged, and told to the observer).
    pub fn notify(&self, event: Event) -> usize {
        let event = Arc::new(event);
        let mut queued = 0;
        for queue in self.queues.iter().filter(|q| q.route.accepts(&event)) {
            let detail = match queue.sender.try_send(event.clone()) {
                Ok(()) => {
                    queued += 1;
                    continue;
                }
                Err(mpsc::error::TrySendError::Full(_)) => "the channel's queue is full",
                Err(mpsc::error::TrySendError::Closed(_)) => "the channel's task stopped",
            };
            let drop = Dropped {
                channel: queue.name.clone(),
                event: event.kind(),
                event_id: event.id(),
                detail,
            };
            if self.drops.try_send(drop).is_err() {
                // Even the drops are backed up: counted, not logged.
                self.recorder.observer.outcome(&queue.name, Status::Dropped);
                tracing::warn!(channel = %queue.name, "notification dropped and not logged");
            }
        }
        queued
    }

    /// The delivery log the channels write.
    pub fn log(&self) -> &Arc<DeliveryLog> {
        &self.recorder.log
    }

    /// The channels, in configuration order (webhooks, then e-mail).
    pub fn channels(&self) -> &[ChannelSummary] {
        &self.summaries
    }
}

fn summary(
    name: &str,
    kind: &'static str,
    route: &Route,
    allow_health_data: bool,
) -> ChannelSummary {
    ChannelSummary {
        name: name.to_owned(),
        kind,
        min_level: route.min_level.name(),
        allow_health_data,
    }
}

/// Logs the drops [`Notifier::notify`] hands over, one at a time.
async fn log_drops(mut drops: mpsc::Receiver<Dropped>, recorder: Recorder) {
    while let Some(drop) = drops.recv().await {
        let detail = drop.detail.to_owned();
        recorder
            .record(
                &drop.channel,
                drop.event,
                &drop.event_id,
                0,
                Status::Dropped,
                detail,
            )
            .await;
    }
}

/// One channel's task: its queue, in order, each event until delivered, refused or out of
/// attempts. Ends when the notifier is dropped and the queue is empty.
async fn run(
    channel: Channel,
    mut queue: mpsc::Receiver<Arc<Event>>,
    backoff: Backoff,
    recorder: Recorder,
) {
    while let Some(event) = queue.recv().await {
        deliver(&channel, &event, backoff, &recorder).await;
    }
}

async fn deliver(channel: &Channel, event: &Event, backoff: Backoff, recorder: &Recorder) {
    let name = channel.name();
    match channel {
        Channel::Webhook(webhook) => {
            // One body for every attempt; each attempt is signed at its own time.
            let body = webhook.body(event);
            let attempt = |n| webhook.send(event, &body, n, now_s());
            with_retries(name, event, backoff, recorder, attempt).await;
        }
        Channel::Email(email) => match email.message(event) {
            Ok(message) => {
                let attempt = |_| email.send(message.clone());
                with_retries(name, event, backoff, recorder, attempt).await;
            }
            Err(detail) => {
                recorder
                    .record(name, event.kind(), &event.id(), 1, Status::Failed, detail)
                    .await;
            }
        },
    }
}

/// Attempts until one delivers, one is refused for good, or the schedule runs out; logs each.
async fn with_retries<F, Fut>(
    name: &str,
    event: &Event,
    backoff: Backoff,
    recorder: &Recorder,
    mut attempt: F,
) where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Sent>,
{
    for n in 1..=backoff.attempts {
        let (status, detail, wait) = match attempt(n).await {
            Ok(detail) => (Status::Delivered, detail, None),
            Err(failure) if failure.permanent => (Status::Failed, failure.detail, None),
            Err(failure) => match backoff.after(n, failure.retry_after) {
                Some(wait) => (Status::Retrying, failure.detail, Some(wait)),
                None => (Status::Failed, failure.detail, None),
            },
        };
        recorder
            .record(name, event.kind(), &event.id(), n, status, detail)
            .await;
        match wait {
            Some(wait) => tokio::time::sleep(wait).await,
            None => return,
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
