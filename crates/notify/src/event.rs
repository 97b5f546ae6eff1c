//! What can be notified: the events the node hands over, in this crate's own terms (it knows
//! nothing of the node, so the node converts its live events into these).
//!
//! Health values travel only inside [`HealthData`], which has no `Serialize`, no `Display` and
//! a redacted `Debug`: the one way to read it is [`HealthData::expose`], which rendering calls
//! only for a channel configured with `allow_health_data`. A value cannot reach a message,
//! a log line or the delivery log by accident.

use vigil_core::{AlertLevel, PersonId, TimestampMs};

/// Something a channel may be told about.
///
/// `non_exhaustive`: a match outside this crate must keep a fallback.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// An alert finalized on the ledger.
    Alert(AlertEvent),
    /// A finalized escalation step of an alert nobody acknowledged in time.
    Escalation(EscalationEvent),
}

/// An escalation step, as the node saw it finalized. It names no value: only which alert,
/// whose, how many steps and at what level it now stands.
#[derive(Clone, Debug)]
pub struct EscalationEvent {
    /// The escalated alert's id (hex): the id of the [`AlertEvent`] it follows.
    pub alert: String,
    pub person: PersonId,
    /// 1 for the first escalation, then 2, 3, … as the policy repeats it.
    pub step: u8,
    /// The alert's level after the step (raised to critical where the policy says so).
    pub level: AlertLevel,
    /// The block that finalized the step.
    pub height: u64,
}

impl EscalationEvent {
    /// The id receivers and the log know this step by: one per alert and step.
    pub fn id(&self) -> String {
        format!("{}.escalation.{}", self.alert, self.step)
    }
}

/// A finalized alert, as the node saw it finalized.
#[derive(Clone, Debug)]
pub struct AlertEvent {
    /// The alert's id (its transaction id, hex): receivers deduplicate on it.
    pub id: String,
    pub person: PersonId,
    /// The contract instance that raised it (hex digest).
    pub instance: String,
    /// The contract's kind (`threshold`, `geofence`, …), when the node knows the instance.
    /// It names the kind of condition, never a value or a parameter.
    pub kind: Option<String>,
    pub level: AlertLevel,
    /// `device-signed` or `attested` (see the ledger's alert evidence).
    pub basis: String,
    pub reading_time_ms: TimestampMs,
    /// The block that finalized it.
    pub height: u64,
    /// When the node saw it finalized (ms since the epoch).
    pub finalized_ms: TimestampMs,
    /// Why the contract raised it: names the readings' values. Present only on the node that
    /// evaluated the alert.
    pub reason: Option<HealthData>,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Alert(_) => EventKind::Alert,
            Event::Escalation(_) => EventKind::Escalation,
        }
    }

    /// The id receivers and the delivery log know the event by.
    pub fn id(&self) -> String {
        match self {
            Event::Alert(alert) => alert.id.clone(),
            Event::Escalation(step) => step.id(),
        }
    }

    pub fn person(&self) -> PersonId {
        match self {
            Event::Alert(alert) => alert.person,
            Event::Escalation(step) => step.person,
        }
    }

    /// The severity a channel's `min_level` is compared with.
    pub fn level(&self) -> AlertLevel {
        match self {
            Event::Alert(alert) => alert.level,
            Event::Escalation(step) => step.level,
        }
    }
}

/// The kinds of [`Event`], as a channel's `events` list names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum EventKind {
    Alert,
    Escalation,
}

impl EventKind {
    /// Every kind, in order: what a channel gets when its configuration names none.
    pub const ALL: &'static [EventKind] = &[EventKind::Alert, EventKind::Escalation];

    /// The one written form: configuration, message bodies, the delivery log.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Alert => "alert",
            EventKind::Escalation => "escalation",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Data that names health values (an alert's reason). Not serialisable, not displayable, and
/// its `Debug` is redacted; read it with [`HealthData::expose`] only where a channel allows it.
#[derive(Clone, PartialEq)]
pub struct HealthData(serde_json::Value);

impl HealthData {
    pub fn new(value: serde_json::Value) -> Self {
        Self(value)
    }

    /// The values themselves. Callers: rendering for a channel with `allow_health_data`.
    pub fn expose(&self) -> &serde_json::Value {
        &self.0
    }
}

impl std::fmt::Debug for HealthData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HealthData(<redacted>)")
    }
}

/// An alert for tests: fixed ids and times, the given level, person and reason.
#[cfg(test)]
pub(crate) fn sample_alert(
    level: AlertLevel,
    person: PersonId,
    reason: Option<serde_json::Value>,
) -> Event {
    Event::Alert(AlertEvent {
        id: "ab".repeat(32),
        person,
        instance: "cd".repeat(32),
        kind: Some("threshold".into()),
        level,
        basis: "device-signed".into(),
        reading_time_ms: 1_700_000_000_000,
        height: 7,
        finalized_ms: 1_700_000_001_500,
        reason: reason.map(HealthData::new),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_data_never_shows_in_debug_output() {
        let data = HealthData::new(serde_json::json!({"value": 3905}));
        assert_eq!(format!("{data:?}"), "HealthData(<redacted>)");
        assert_eq!(data.expose()["value"], 3905);
    }

    #[test]
    fn event_kinds_have_one_written_form() {
        for kind in EventKind::ALL {
            let parsed: EventKind =
                serde_json::from_value(serde_json::Value::from(kind.name())).expect("parses");
            assert_eq!(parsed, *kind);
            assert_eq!(kind.to_string(), kind.name());
        }
    }
}
