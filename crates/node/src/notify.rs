//! Notifications beyond the dashboard (`vigil-notify`), fed from the node's live events.
//!
//! The node converts each live event a channel could want into a `vigil_notify::Event` and
//! hands it over; the notifier queues it per channel without waiting, so a slow receiver never
//! holds up the node. The conversion is one exhaustive match: a new kind of live event does
//! not compile until it says whether, and as what, it is notified (alerts and escalation
//! steps are; status changes, blocks and the person's reminders are not).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::broadcast;
use vigil_core::AlertLevel;
use vigil_ledger::node::Ledger;
use vigil_ledger::tx::InstanceId;
use vigil_notify::{
    AlertEvent, DeliveryLog, EscalationEvent, Event, HealthData, Notifier, NotifyConfig, Status,
};

use crate::LiveEvent;

/// The delivery log in a node's data directory.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("notifications.sqlite")
}

/// What a live event is notified as, if anything. `kind_of` names an instance's contract
/// kind (from the finalized state).
pub fn notice(
    event: &LiveEvent,
    kind_of: impl FnOnce(&InstanceId) -> Option<String>,
) -> Option<Event> {
    match event {
        LiveEvent::Alert {
            id,
            person,
            instance,
            level,
            basis,
            reading_time_ms,
            height,
            finalized_ms,
            reason,
        } => {
            let kind = parse_instance(instance).and_then(|instance| kind_of(&instance));
            Some(Event::Alert(AlertEvent {
                id: id.clone(),
                person: *person,
                instance: instance.clone(),
                kind,
                level: AlertLevel::from_code(*level)?,
                basis: (*basis).to_owned(),
                reading_time_ms: *reading_time_ms,
                height: *height,
                finalized_ms: *finalized_ms,
                reason: reason.clone().map(HealthData::new),
            }))
        }
        LiveEvent::AlertEscalated {
            id,
            person,
            step,
            level,
            height,
        } => Some(Event::Escalation(EscalationEvent {
            alert: id.clone(),
            person: *person,
            step: *step,
            level: AlertLevel::from_code(*level)?,
            height: *height,
        })),
        // Status changes and blocks are the dashboard's, reminders the person's (on their
        // alert topic): no channel is paged for them.
        LiveEvent::AlertStatus { .. }
        | LiveEvent::Block { .. }
        | LiveEvent::AlertReminder { .. } => None,
    }
}

fn parse_instance(hex_id: &str) -> Option<InstanceId> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_id, &mut bytes).ok()?;
    Some(InstanceId(bytes))
}

/// A notification channel, by its configured name (the configuration bounds the set).
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ChannelLabel {
    pub channel: String,
}

/// Counts each channel's outcomes in the node's metrics.
pub(crate) struct Counters {
    pub delivered: Family<ChannelLabel, Counter>,
    pub retried: Family<ChannelLabel, Counter>,
    pub failed: Family<ChannelLabel, Counter>,
}

impl vigil_notify::Observer for Counters {
    fn outcome(&self, channel: &str, status: Status) {
        let label = ChannelLabel {
            channel: channel.to_owned(),
        };
        match status {
            Status::Delivered => self.delivered.get_or_create(&label).inc(),
            Status::Retrying => self.retried.get_or_create(&label).inc(),
            Status::Failed | Status::Dropped => self.failed.get_or_create(&label).inc(),
        };
    }
}

/// Opens the delivery log, starts the channels and the task that feeds them the live events
/// from `events` (subscribed before the node publishes anything).
pub(crate) fn start(
    config: NotifyConfig,
    data_dir: &Path,
    ledger: Ledger,
    events: broadcast::Receiver<LiveEvent>,
    counters: Counters,
) -> Result<Arc<Notifier>, crate::NodeError> {
    let log = Arc::new(DeliveryLog::open(&log_path(data_dir))?);
    // Every configured channel shows in the metrics from the start, at zero.
    let names = config
        .webhooks
        .iter()
        .map(|w| &w.name)
        .chain(config.emails.iter().map(|e| &e.name));
    for name in names {
        let label = ChannelLabel {
            channel: name.clone(),
        };
        for family in [&counters.delivered, &counters.retried, &counters.failed] {
            let _ = family.get_or_create(&label);
        }
    }
    let notifier = Arc::new(Notifier::start(config, log, Arc::new(counters))?);
    tokio::spawn(forward(notifier.clone(), ledger, events));
    Ok(notifier)
}

async fn forward(
    notifier: Arc<Notifier>,
    ledger: Ledger,
    mut events: broadcast::Receiver<LiveEvent>,
) {
    loop {
        match events.recv().await {
            Ok(event) => {
                let kind_of = |instance: &InstanceId| {
                    let latest = ledger.snapshot();
                    latest
                        .instance(instance)
                        .map(|record| record.deployment.kind.clone())
                };
                if let Some(notice) = notice(&event, kind_of) {
                    notifier.notify(notice);
                }
            }
            // Handing over never waits, so this falls behind only when the process is starved.
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::error!(
                    missed,
                    "notifications fell behind the live events; some were not sent"
                );
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::PersonId;

    #[test]
    fn only_alerts_are_notified_with_their_reason_kept_as_health_data() {
        let person = PersonId::random();
        let alert = LiveEvent::Alert {
            id: "ab".repeat(32),
            person,
            instance: "cd".repeat(32),
            level: 2,
            basis: "device-signed",
            reading_time_ms: 1,
            height: 3,
            finalized_ms: 2,
            reason: Some(serde_json::json!({"value": 3905})),
        };
        let instance = InstanceId([0xcd; 32]);
        let kind_of = |id: &InstanceId| (*id == instance).then(|| "threshold".to_owned());
        let Some(Event::Alert(notice)) = notice(&alert, kind_of) else {
            panic!("an alert is notified");
        };
        assert_eq!(notice.level, AlertLevel::Critical);
        assert_eq!(notice.person, person);
        assert_eq!(notice.kind.as_deref(), Some("threshold"));
        assert_eq!(
            notice.reason.as_ref().map(|r| r.expose()["value"].clone()),
            Some(3905.into())
        );
        let status = LiveEvent::AlertStatus {
            id: "ab".repeat(32),
            person,
            status: "acknowledged",
            height: 4,
        };
        assert!(super::notice(&status, kind_of).is_none());
        assert!(super::notice(&LiveEvent::Block { height: 4, txs: 1 }, kind_of).is_none());
        let reminder = LiveEvent::AlertReminder {
            id: "ab".repeat(32),
            person,
            count: 1,
        };
        assert!(super::notice(&reminder, kind_of).is_none());
        let escalated = LiveEvent::AlertEscalated {
            id: "ab".repeat(32),
            person,
            step: 1,
            level: 2,
            height: 9,
        };
        let Some(Event::Escalation(step)) = super::notice(&escalated, kind_of) else {
            panic!("an escalation is notified");
        };
        assert_eq!(
            (step.step, step.level, step.height),
            (1, AlertLevel::Critical, 9)
        );
        let bad_level = LiveEvent::Alert {
            id: String::new(),
            person,
            instance: "not hex".into(),
            level: 9,
            basis: "attested",
            reading_time_ms: 0,
            height: 0,
            finalized_ms: 0,
            reason: None,
        };
        assert!(super::notice(&bad_level, kind_of).is_none());
    }
}
