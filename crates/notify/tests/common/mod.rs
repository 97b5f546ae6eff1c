//! What the channel tests share: an alert whose reason names a value no message may carry
//! unless allowed, an observer that remembers outcomes, and waits with a bound.
#![allow(dead_code)]

pub mod servers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use vigil_core::{AlertLevel, PersonId};
use vigil_notify::log::{Delivery, Filter};
use vigil_notify::{AlertEvent, DeliveryLog, Event, HealthData, Observer, Status};

/// The value in the alerts' reason: it must appear only where health data is allowed.
pub const VALUE: &str = "39057";
pub const WAIT: Duration = Duration::from_secs(20);

pub fn fever(id: &str) -> Event {
    Event::Alert(AlertEvent {
        id: id.to_owned(),
        person: PersonId::random(),
        instance: "cd".repeat(32),
        kind: Some("threshold".into()),
        level: AlertLevel::Critical,
        basis: "device-signed".into(),
        reading_time_ms: 1_700_000_000_000,
        height: 12,
        finalized_ms: 1_700_000_002_000,
        reason: Some(HealthData::new(serde_json::json!({
            "kind": "threshold", "metric": "body-temperature", "band": "critical-above",
            "value": VALUE.parse::<i64>().expect("a number"),
        }))),
    })
}

#[derive(Default)]
pub struct Outcomes(pub Mutex<Vec<(String, Status)>>);

impl Observer for Outcomes {
    fn outcome(&self, channel: &str, status: Status) {
        self.0.lock().push((channel.to_owned(), status));
    }
}

impl Outcomes {
    pub fn count(&self, channel: &str, status: Status) -> usize {
        self.0
            .lock()
            .iter()
            .filter(|(c, s)| c == channel && *s == status)
            .count()
    }
}

/// Polls `check` until it gives a value, for at most [`WAIT`].
pub async fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A channel's attempts, oldest first.
pub fn attempts(log: &Arc<DeliveryLog>, channel: &str) -> Vec<Delivery> {
    let mut rows = log
        .read(&Filter {
            channel: Some(channel.to_owned()),
            limit: 100,
            ..Filter::default()
        })
        .expect("the log reads");
    rows.reverse();
    rows
}

/// Waits until `channel`'s last attempt is final (delivered, failed or dropped), then gives
/// every attempt, oldest first.
pub async fn settled(log: &Arc<DeliveryLog>, channel: &str, rows: usize) -> Vec<Delivery> {
    until(&format!("{rows} attempts of {channel}"), || {
        let rows_now = attempts(log, channel);
        (rows_now.len() >= rows
            && rows_now
                .last()
                .is_some_and(|d| d.status != Status::Retrying))
        .then_some(rows_now)
    })
    .await
}
