use serde::{Deserialize, Serialize};

use crate::{DeviceId, Metric, Value};

/// Milliseconds since the Unix epoch, as stamped by the device. Contracts take time only from
/// readings and from an explicit tick, never from a clock.
pub type TimestampMs = i64;

/// One validated measurement: which device, what, when, and the value in canonical units.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reading {
    pub device: DeviceId,
    pub metric: Metric,
    pub time_ms: TimestampMs,
    pub value: Value,
}
