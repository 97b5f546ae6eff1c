//! No-signal: a device that stays silent past its interval first earns the person a reminder
//! (level 1, addressed to the person only), then, after a grace period, a staff alert (level 2).
//! Data resuming clears it.
//!
//! Silence is measured at the instance's time (the latest reading or tick seen) from the latest
//! reading's own time or, before any reading, from the first tick (which arms the watch). With
//! `silence = now - last`: `silence <= interval_ms` is level 0; `interval_ms < silence <=
//! interval_ms + grace_ms` is the reminder; beyond is the staff alert. A reading stamped long
//! ago (store-and-forward after an outage) does not clear anything until the device's data is
//! recent again.

use serde::{Deserialize, Serialize};
use vigil_core::{AlertLevel, TimestampMs};

use crate::canon::{Canonical, Encoder};
use crate::error::ParamError;

/// Shortest and longest reporting interval, and longest grace period.
pub const INTERVAL_MS_MIN: u64 = 1_000;
pub const INTERVAL_MS_MAX: u64 = 7 * 24 * 3_600_000;
pub const GRACE_MS_MAX: u64 = 7 * 24 * 3_600_000;

/// Parameters of a no-signal instance (bound to one device).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSignalParams {
    /// Silence longer than this earns the person a reminder.
    pub interval_ms: u64,
    /// Silence longer than `interval_ms + grace_ms` alerts staff.
    pub grace_ms: u64,
}

/// State of a no-signal instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NoSignalState {
    /// Time of the device's most recent reading.
    pub last_seen_ms: Option<TimestampMs>,
    /// Time of the first tick, from which silence counts before any reading.
    pub armed_ms: Option<TimestampMs>,
    /// The latest time seen, from readings or ticks.
    pub now_ms: Option<TimestampMs>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct NoSignalReason {
    pub last_seen_ms: Option<TimestampMs>,
    /// `None` before the watch is armed.
    pub silence_ms: Option<i64>,
    pub level: AlertLevel,
}

impl NoSignalParams {
    pub(crate) fn validate(&self) -> Result<(), ParamError> {
        if self.interval_ms < INTERVAL_MS_MIN {
            return Err(ParamError::range(
                "interval_ms",
                self.interval_ms as i64,
                INTERVAL_MS_MIN as i64,
                INTERVAL_MS_MAX as i64,
            ));
        }
        ParamError::check_max_u64("interval_ms", self.interval_ms, INTERVAL_MS_MAX)?;
        ParamError::check_max_u64("grace_ms", self.grace_ms, GRACE_MS_MAX)
    }

    pub(crate) fn step_reading(
        &self,
        state: &mut NoSignalState,
        time_ms: TimestampMs,
    ) -> NoSignalReason {
        state.last_seen_ms = Some(state.last_seen_ms.map_or(time_ms, |t| t.max(time_ms)));
        state.now_ms = Some(state.now_ms.map_or(time_ms, |t| t.max(time_ms)));
        self.assess(state)
    }

    pub(crate) fn step_tick(
        &self,
        state: &mut NoSignalState,
        now_ms: TimestampMs,
    ) -> NoSignalReason {
        // An instance's time is the latest it has seen: an older tick moves nothing.
        state.now_ms = Some(state.now_ms.map_or(now_ms, |t| t.max(now_ms)));
        state.armed_ms.get_or_insert(now_ms);
        self.assess(state)
    }

    /// The level of a state at its own time.
    pub fn assess(&self, state: &NoSignalState) -> NoSignalReason {
        let from = state.last_seen_ms.or(state.armed_ms);
        let silence_ms = match (state.now_ms, from) {
            (Some(now), Some(from)) => Some(now.saturating_sub(from)),
            _ => None,
        };
        let interval = self.interval_ms as i64;
        let level = match silence_ms {
            Some(s) if s > interval.saturating_add(self.grace_ms as i64) => AlertLevel::Critical,
            Some(s) if s > interval => AlertLevel::Warning,
            _ => AlertLevel::Ok,
        };
        NoSignalReason {
            last_seen_ms: state.last_seen_ms,
            silence_ms,
            level,
        }
    }
}

impl Canonical for NoSignalParams {
    fn encode(&self, e: &mut Encoder) {
        e.u64(self.interval_ms).u64(self.grace_ms);
    }
}

impl Canonical for NoSignalState {
    fn encode(&self, e: &mut Encoder) {
        for t in [self.last_seen_ms, self.armed_ms, self.now_ms] {
            e.opt(t, |e, v| {
                e.i64(v);
            });
        }
    }
}
