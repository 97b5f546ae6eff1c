//! Prometheus metrics at `/metrics`.

pub use crate::notify::ChannelLabel;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use vigil_gateway::Rejection;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabel {
    pub transport: &'static str,
}

pub struct NodeMetrics {
    registry: Registry,
    pub readings_accepted: Family<TransportLabel, Counter>,
    pub packs_rejected: Family<ReasonLabel, Counter>,
    pub alerts_submitted: Counter,
    /// Alerts the ledger refused or dropped with a reason (logged), never finalized.
    pub alerts_refused: Counter,
    /// Alerts submitted again after they vanished from the mempool without a reason.
    pub alerts_resubmitted: Counter,
    /// Alerts given up after their resubmissions ran out.
    pub alerts_lost: Counter,
    /// Raises not submitted: no run of the device's signed packs held re-derives them.
    pub alerts_unsupported: Counter,
    /// Seconds from a pack's arrival to its alert's finalization.
    pub alert_latency: Histogram,
    pub ledger_height: Gauge,
    pub ehr_records_anchored: Counter,
    /// Notifications a channel's receiver took, by channel.
    pub notifications_delivered: Family<ChannelLabel, Counter>,
    /// Attempts that failed and will be retried, by channel.
    pub notifications_retried: Family<ChannelLabel, Counter>,
    /// Notifications given up (refused, out of attempts, or dropped by a full queue).
    pub notifications_failed: Family<ChannelLabel, Counter>,
}

impl NodeMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vigil");
        let readings_accepted = Family::<TransportLabel, Counter>::default();
        let packs_rejected = Family::<ReasonLabel, Counter>::default();
        let alerts_submitted = Counter::default();
        let alerts_refused = Counter::default();
        let alerts_resubmitted = Counter::default();
        let alerts_lost = Counter::default();
        let alerts_unsupported = Counter::default();
        let buckets = [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let alert_latency = Histogram::new(buckets);
        let ledger_height = Gauge::default();
        let ehr_records_anchored = Counter::default();
        let notifications_delivered = Family::<ChannelLabel, Counter>::default();
        let notifications_retried = Family::<ChannelLabel, Counter>::default();
        let notifications_failed = Family::<ChannelLabel, Counter>::default();
        registry.register(
            "readings_accepted",
            "Readings accepted and stored",
            readings_accepted.clone(),
        );
        registry.register(
            "packs_rejected",
            "Packs refused, by reason",
            packs_rejected.clone(),
        );
        registry.register(
            "alerts_submitted",
            "Alert transactions submitted",
            alerts_submitted.clone(),
        );
        registry.register(
            "alerts_refused",
            "Alert transactions refused or dropped by the ledger with a reason",
            alerts_refused.clone(),
        );
        registry.register(
            "alerts_resubmitted",
            "Alert transactions submitted again after vanishing from the mempool",
            alerts_resubmitted.clone(),
        );
        registry.register(
            "alerts_lost",
            "Alert transactions given up after every resubmission vanished",
            alerts_lost.clone(),
        );
        registry.register(
            "alerts_unsupported",
            "Raises not submitted because no held device-signed packs re-derive them",
            alerts_unsupported.clone(),
        );
        registry.register(
            "alert_latency_seconds",
            "From a pack's arrival to its alert's finalization",
            alert_latency.clone(),
        );
        registry.register(
            "ledger_height",
            "Height of the last finalized block",
            ledger_height.clone(),
        );
        registry.register(
            "ehr_records_anchored",
            "Health records anchored on the ledger",
            ehr_records_anchored.clone(),
        );
        registry.register(
            "notifications_delivered",
            "Notifications taken by a channel's receiver (webhook 2xx, SMTP 250)",
            notifications_delivered.clone(),
        );
        registry.register(
            "notifications_retried",
            "Notification attempts that failed and are tried again",
            notifications_retried.clone(),
        );
        registry.register(
            "notifications_failed",
            "Notifications given up: refused, out of attempts, or dropped by a full queue",
            notifications_failed.clone(),
        );
        // Every reason appears from the start, so a dashboard sees zeros rather than gaps.
        for reason in Rejection::ALL {
            let _ = packs_rejected.get_or_create(&ReasonLabel {
                reason: reason.code(),
            });
        }
        Self {
            registry,
            readings_accepted,
            packs_rejected,
            alerts_submitted,
            alerts_refused,
            alerts_resubmitted,
            alerts_lost,
            alerts_unsupported,
            alert_latency,
            ledger_height,
            ehr_records_anchored,
            notifications_delivered,
            notifications_retried,
            notifications_failed,
        }
    }

    /// The notification counters, for the notifier to count into.
    pub(crate) fn notify_counters(&self) -> crate::notify::Counters {
        crate::notify::Counters {
            delivered: self.notifications_delivered.clone(),
            retried: self.notifications_retried.clone(),
            failed: self.notifications_failed.clone(),
        }
    }

    pub fn reject(&self, reason: Rejection) {
        self.packs_rejected
            .get_or_create(&ReasonLabel {
                reason: reason.code(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

impl Default for NodeMetrics {
    fn default() -> Self {
        Self::new()
    }
}
