//! Two-band threshold: the seed's `BodyTemperatureMonitor.analyze(t, min, max)` and its
//! generalisation with warning and critical bands, duration and repeat conditions, and
//! hysteresis before clearing.

use serde::{Deserialize, Serialize};
use vigil_core::{AlertLevel, Metric, TimestampMs};

use crate::canon::{Canonical, Encoder};
use crate::error::{ParamError, StepError};

/// The seed contract, exactly: 0 when `min <= t <= max`; 1 when `t` lies within one unit
/// outside the band (`min - 1 <= t < min` or `max < t <= max + 1`); 2 beyond. Arithmetic is
/// widened so that no input overflows.
pub fn analyze(t: i64, min: i64, max: i64) -> u8 {
    let (t, min, max) = (i128::from(t), i128::from(min), i128::from(max));
    if t >= min && t <= max {
        0
    } else if t >= min - 1 && t <= max + 1 {
        1
    } else {
        2
    }
}

/// Longest duration condition a threshold accepts (7 days).
pub const DURATION_MS_MAX: u64 = 7 * 24 * 3_600_000;
/// Largest repeat condition ("N readings in a row").
pub const REPEAT_MAX: u32 = 1_000;
/// Largest hysteresis, in the metric's canonical units.
pub const HYSTERESIS_MAX: u32 = 1_000_000;

fn one() -> u32 {
    1
}

/// Parameters of a threshold instance. Values are in the metric's canonical unit.
///
/// Bands: `value < critical_below` is critical, else `value < warning_below` a warning,
/// `value > critical_above` critical, else `value > warning_above` a warning; anything else is
/// normal. Absent thresholds are not checked. The seed's `analyze(t, min, max)` is
/// `warning_below = min, critical_below = min - 1, warning_above = max, critical_above = max + 1`
/// (see [`ThresholdParams::seed`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdParams {
    pub metric: Metric,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_below: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning_below: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning_above: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_above: Option<i32>,
    /// A level is raised only once readings at or above it have lasted this long (from the
    /// first such reading to the current one). 0: at once.
    #[serde(default)]
    pub for_ms: u64,
    /// A level is raised only after this many consecutive readings at or above it. 1: at once.
    #[serde(default = "one")]
    pub repeat: u32,
    /// Once a level is raised, it holds until the value is back inside the band by this much.
    #[serde(default)]
    pub hysteresis: u32,
}

impl ThresholdParams {
    /// The seed contract's band `[min, max]` with one unit of warning on each side.
    pub fn seed(metric: Metric, min: i32, max: i32, unit: i32) -> Self {
        Self {
            metric,
            critical_below: Some(min.saturating_sub(unit)),
            warning_below: Some(min),
            warning_above: Some(max),
            critical_above: Some(max.saturating_add(unit)),
            for_ms: 0,
            repeat: 1,
            hysteresis: 0,
        }
    }

    pub(crate) fn validate(&self, prefix: &str) -> Result<(), ParamError> {
        if self.metric == Metric::Position {
            return Err(ParamError::Metric {
                kind: "threshold",
                metric: self.metric,
            });
        }
        let f = |name: &str| format!("{prefix}{name}");
        let (cb, wb, wa, ca) = (
            f("critical_below"),
            f("warning_below"),
            f("warning_above"),
            f("critical_above"),
        );
        let thresholds = [
            (cb.as_str(), self.critical_below.map(i64::from)),
            (wb.as_str(), self.warning_below.map(i64::from)),
            (wa.as_str(), self.warning_above.map(i64::from)),
            (ca.as_str(), self.critical_above.map(i64::from)),
        ];
        if thresholds.iter().all(|(_, v)| v.is_none()) {
            return Err(ParamError::invalid(
                format!("{prefix}critical_below"),
                "a threshold needs at least one of critical_below, warning_below, warning_above, critical_above",
            ));
        }
        ParamError::check_order(&thresholds)?;
        ParamError::check_max_u64(&f("for_ms"), self.for_ms, DURATION_MS_MAX)?;
        ParamError::check_range(
            &f("repeat"),
            i64::from(self.repeat),
            1,
            i64::from(REPEAT_MAX),
        )?;
        ParamError::check_range(
            &f("hysteresis"),
            i64::from(self.hysteresis),
            0,
            i64::from(HYSTERESIS_MAX),
        )?;
        Ok(())
    }

    /// The band of `value`, with every threshold moved `shift` units towards the normal band
    /// (`shift = 0`: the plain classification; `shift = hysteresis`: the one used to decide
    /// whether a raised level still holds).
    pub fn classify(&self, value: i32, shift: u32) -> Band {
        let v = i64::from(value);
        let s = i64::from(shift);
        let below = |t: Option<i32>| t.is_some_and(|t| v < i64::from(t) + s);
        let above = |t: Option<i32>| t.is_some_and(|t| v > i64::from(t) - s);
        if below(self.critical_below) {
            Band::CriticalLow
        } else if above(self.critical_above) {
            Band::CriticalHigh
        } else if below(self.warning_below) {
            Band::WarningLow
        } else if above(self.warning_above) {
            Band::WarningHigh
        } else {
            Band::Normal
        }
    }

    /// One reading. The caller has checked the metric. Readings must come in time order.
    pub(crate) fn step(
        &self,
        state: &mut ThresholdState,
        value: i32,
        time_ms: TimestampMs,
    ) -> Result<ThresholdReason, StepError> {
        if let Some(last_ms) = state.last_ms
            && time_ms < last_ms
        {
            return Err(StepError::OutOfOrder { time_ms, last_ms });
        }
        let band = self.classify(value, 0);
        let raw = band.level();
        state.last_ms = Some(time_ms);
        advance(
            &mut state.warning_streak,
            raw >= AlertLevel::Warning,
            time_ms,
        );
        advance(
            &mut state.critical_streak,
            raw >= AlertLevel::Critical,
            time_ms,
        );
        let qualified = |streak: &Option<Streak>| {
            streak.is_some_and(|s| {
                s.count >= self.repeat && time_ms.saturating_sub(s.since_ms) >= self.for_ms as i64
            })
        };
        let candidate = if qualified(&state.critical_streak) {
            AlertLevel::Critical
        } else if qualified(&state.warning_streak) {
            AlertLevel::Warning
        } else {
            AlertLevel::Ok
        };
        let held = self
            .classify(value, self.hysteresis)
            .level()
            .min(state.level);
        let level = candidate.max(held);
        state.level = level;
        Ok(ThresholdReason {
            metric: self.metric,
            band,
            value,
            raw_level: raw,
            held: held > candidate,
            pending: raw > level,
        })
    }
}

fn advance(streak: &mut Option<Streak>, on: bool, time_ms: TimestampMs) {
    *streak = if on {
        Some(match *streak {
            Some(s) => Streak {
                since_ms: s.since_ms,
                count: s.count.saturating_add(1),
            },
            None => Streak {
                since_ms: time_ms,
                count: 1,
            },
        })
    } else {
        None
    };
}

/// Where a value lies relative to the thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum Band {
    CriticalLow,
    WarningLow,
    Normal,
    WarningHigh,
    CriticalHigh,
}

impl Band {
    pub const ALL: [Band; 5] = [
        Band::CriticalLow,
        Band::WarningLow,
        Band::Normal,
        Band::WarningHigh,
        Band::CriticalHigh,
    ];

    pub const fn level(self) -> AlertLevel {
        match self {
            Band::Normal => AlertLevel::Ok,
            Band::WarningLow | Band::WarningHigh => AlertLevel::Warning,
            Band::CriticalLow | Band::CriticalHigh => AlertLevel::Critical,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Band::CriticalLow => "critical-low",
            Band::WarningLow => "warning-low",
            Band::Normal => "normal",
            Band::WarningHigh => "warning-high",
            Band::CriticalHigh => "critical-high",
        }
    }
}

// One written form, `Band::name`: printing, parsing and serde go through it.
vigil_core::named_enum!(Band by name, error String = |s| format!("unknown band {s:?}"));

/// A run of consecutive readings at or above a level: when it began and how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Streak {
    pub since_ms: TimestampMs,
    pub count: u32,
}

/// State of a threshold instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ThresholdState {
    /// The level in force (after duration, repeat and hysteresis).
    pub level: AlertLevel,
    /// Time of the last reading taken.
    pub last_ms: Option<TimestampMs>,
    /// Consecutive readings at warning or worse.
    pub warning_streak: Option<Streak>,
    /// Consecutive readings at critical.
    pub critical_streak: Option<Streak>,
}

/// Why a threshold instance is at its level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ThresholdReason {
    pub metric: Metric,
    pub band: Band,
    pub value: i32,
    /// The reading's own level, before duration, repeat and hysteresis.
    pub raw_level: AlertLevel,
    /// The level in force is above `raw_level` because of hysteresis.
    pub held: bool,
    /// `raw_level` is above the level in force: a duration or repeat condition is not met yet.
    pub pending: bool,
}

impl Canonical for ThresholdParams {
    fn encode(&self, e: &mut Encoder) {
        e.value(&self.metric);
        for t in [
            self.critical_below,
            self.warning_below,
            self.warning_above,
            self.critical_above,
        ] {
            e.opt(t, |e, v| {
                e.i32(v);
            });
        }
        e.u64(self.for_ms).u32(self.repeat).u32(self.hysteresis);
    }
}

impl Canonical for Streak {
    fn encode(&self, e: &mut Encoder) {
        e.i64(self.since_ms).u32(self.count);
    }
}

impl Canonical for ThresholdState {
    fn encode(&self, e: &mut Encoder) {
        e.u8(self.level.code());
        e.opt(self.last_ms, |e, v| {
            e.i64(v);
        });
        e.opt(self.warning_streak, |e, s| s.encode(e));
        e.opt(self.critical_streak, |e, s| s.encode(e));
    }
}
