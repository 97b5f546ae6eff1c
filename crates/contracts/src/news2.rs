//! NEWS2, the Royal College of Physicians' National Early Warning Score 2 (2017 chart).
//!
//! Each parameter's latest reading within a freshness window is scored 0–3 on the chart; the
//! aggregate is the sum of the fresh sub-scores. Values arrive in canonical fixed point and are
//! first rounded half up to the chart's resolution (whole breaths, %, beats and mmHg; tenths of
//! a °C), the way a clinician reads a display, then scored on the chart's integer ranges.
//!
//! | parameter | 3 | 2 | 1 | 0 | 1 | 2 | 3 |
//! |---|---|---|---|---|---|---|---|
//! | respiration rate /min | ≤ 8 | | 9–11 | 12–20 | | 21–24 | ≥ 25 |
//! | SpO2 scale 1 % | ≤ 91 | 92–93 | 94–95 | ≥ 96 | | | |
//! | SpO2 scale 2 % | ≤ 83 | 84–85 | 86–87 | 88–92, or ≥ 93 on air | 93–94 on O2 | 95–96 on O2 | ≥ 97 on O2 |
//! | air or oxygen | | oxygen | | air | | | |
//! | systolic BP mmHg | ≤ 90 | 91–100 | 101–110 | 111–219 | | | ≥ 220 |
//! | pulse /min | ≤ 40 | | 41–50 | 51–90 | 91–110 | 111–130 | ≥ 131 |
//! | consciousness | | | | alert | | | new confusion, V, P or U |
//! | temperature °C | ≤ 35.0 | | 35.1–36.0 | 36.1–38.0 | 38.1–39.0 | ≥ 39.1 | |
//!
//! # From score to alert level
//!
//! | NEWS2 band (RCP clinical risk) | RCP response | level |
//! |---|---|---|
//! | 0 | routine monitoring | 0 |
//! | 1–4, low | assessment by a registered nurse, who decides on monitoring frequency | `low_score_level`, default 0 |
//! | a 3 in any single parameter, low-medium | urgent ward-based response | 1 |
//! | 5–6, medium | key threshold for urgent response | 1 |
//! | ≥ 7, high | emergency response | 2 |
//!
//! The default for 1–4 is 0: a person in home isolation is already under periodic review, a
//! single point (a pulse of 91, a temperature of 38.1 °C) is common in a mild infection, and an
//! alert on every such reading would bury the CDCP in noise; set `low_score_level = 1` for
//! frailer people. A red single parameter and a medium score call for an urgent clinical review:
//! a warning that reaches staff at once. High is an emergency: critical.
//!
//! # Missing parameters
//!
//! A parameter without a reading within `freshness_ms` of the instance's time (the latest
//! reading or tick seen) scores nothing and is listed as missing. Sub-scores are never negative,
//! so the partial aggregate is a lower bound of the full one: a missing parameter can hide an
//! alert, never invent one. Without a fresh air/oxygen reading the person is taken to breathe
//! air (score 0, and SpO2 scale 2 scores as on air).

use serde::{Deserialize, Serialize};
use vigil_core::{AlertLevel, Metric, TimestampMs};

use crate::canon::{Canonical, Encoder};
use crate::error::{ParamError, StepError};

/// Longest freshness window (24 h).
pub const FRESHNESS_MS_MAX: u64 = 24 * 3_600_000;

/// The NEWS2 parameters, in chart order. The index is the slot in [`News2State::latest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Parameter {
    RespirationRate = 0,
    SpO2 = 1,
    AirOrOxygen = 2,
    SystolicBp = 3,
    Pulse = 4,
    Consciousness = 5,
    Temperature = 6,
}

impl Parameter {
    pub const ALL: [Parameter; 7] = [
        Parameter::RespirationRate,
        Parameter::SpO2,
        Parameter::AirOrOxygen,
        Parameter::SystolicBp,
        Parameter::Pulse,
        Parameter::Consciousness,
        Parameter::Temperature,
    ];

    pub const fn metric(self) -> Metric {
        match self {
            Parameter::RespirationRate => Metric::RespirationRate,
            Parameter::SpO2 => Metric::SpO2,
            Parameter::AirOrOxygen => Metric::SupplementalOxygen,
            Parameter::SystolicBp => Metric::SystolicBp,
            Parameter::Pulse => Metric::HeartRate,
            Parameter::Consciousness => Metric::Consciousness,
            Parameter::Temperature => Metric::BodyTemperature,
        }
    }

    pub fn of_metric(metric: Metric) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.metric() == metric)
    }
}

fn scale_one() -> u8 {
    1
}

/// Parameters of a NEWS2 instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct News2Params {
    /// 1, or 2 for people with hypercapnic respiratory failure (a clinician's decision).
    #[serde(default = "scale_one")]
    pub spo2_scale: u8,
    /// A parameter's latest reading counts for this long.
    pub freshness_ms: u64,
    /// Level for an aggregate of 1–4 without a red single parameter: 0 (default) or 1.
    #[serde(default)]
    pub low_score_level: AlertLevel,
}

/// Clinical risk band of an aggregate score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum News2Band {
    Zero,
    Low,
    /// An aggregate of 1–4 with a 3 in a single parameter.
    LowRedSingle,
    Medium,
    High,
}

impl News2Band {
    pub const ALL: [News2Band; 5] = [
        News2Band::Zero,
        News2Band::Low,
        News2Band::LowRedSingle,
        News2Band::Medium,
        News2Band::High,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            News2Band::Zero => "zero",
            News2Band::Low => "low",
            News2Band::LowRedSingle => "low-red-single",
            News2Band::Medium => "medium",
            News2Band::High => "high",
        }
    }
}

// One written form, `News2Band::name`: printing, parsing and serde go through it.
vigil_core::named_enum!(News2Band by name, error String = |s| format!("unknown band {s:?}"));

/// The band of an aggregate, given whether some parameter scored 3.
pub const fn band(aggregate: u8, red_single: bool) -> News2Band {
    match aggregate {
        0 => News2Band::Zero,
        1..=4 if red_single => News2Band::LowRedSingle,
        1..=4 => News2Band::Low,
        5 | 6 => News2Band::Medium,
        _ => News2Band::High,
    }
}

/// Rounds half up to a multiple of `divisor`, in units of that multiple.
fn round_to(value: i32, divisor: i64) -> i64 {
    (i64::from(value) + divisor / 2).div_euclid(divisor)
}

/// Respiration rate in tenths per minute → sub-score.
pub fn score_respiration(rate_x10: i32) -> u8 {
    match round_to(rate_x10, 10) {
        ..=8 => 3,
        9..=11 => 1,
        12..=20 => 0,
        21..=24 => 2,
        _ => 3,
    }
}

/// SpO2 in tenths of a percent → sub-score on scale 1.
pub fn score_spo2_scale1(spo2_x10: i32) -> u8 {
    match round_to(spo2_x10, 10) {
        ..=91 => 3,
        92..=93 => 2,
        94..=95 => 1,
        _ => 0,
    }
}

/// SpO2 in tenths of a percent → sub-score on scale 2, which depends on supplemental oxygen.
pub fn score_spo2_scale2(spo2_x10: i32, on_oxygen: bool) -> u8 {
    match (round_to(spo2_x10, 10), on_oxygen) {
        (..=83, _) => 3,
        (84..=85, _) => 2,
        (86..=87, _) => 1,
        (88..=92, _) | (_, false) => 0,
        (93..=94, true) => 1,
        (95..=96, true) => 2,
        (_, true) => 3,
    }
}

/// Systolic blood pressure in mmHg → sub-score.
pub fn score_systolic(mmhg: i32) -> u8 {
    match mmhg {
        ..=90 => 3,
        91..=100 => 2,
        101..=110 => 1,
        111..=219 => 0,
        _ => 3,
    }
}

/// Pulse in tenths of a beat per minute → sub-score.
pub fn score_pulse(rate_x10: i32) -> u8 {
    match round_to(rate_x10, 10) {
        ..=40 => 3,
        41..=50 => 1,
        51..=90 => 0,
        91..=110 => 1,
        111..=130 => 2,
        _ => 3,
    }
}

/// Temperature in hundredths of a °C → sub-score (chart resolution: tenths).
pub fn score_temperature(centi_celsius: i32) -> u8 {
    match round_to(centi_celsius, 10) {
        ..=350 => 3,
        351..=360 => 1,
        361..=380 => 0,
        381..=390 => 1,
        _ => 2,
    }
}

impl News2Params {
    pub(crate) fn validate(&self) -> Result<(), ParamError> {
        ParamError::check_range("spo2_scale", i64::from(self.spo2_scale), 1, 2)?;
        ParamError::check_range(
            "freshness_ms",
            i64::try_from(self.freshness_ms).unwrap_or(i64::MAX),
            1,
            FRESHNESS_MS_MAX as i64,
        )?;
        ParamError::check_range(
            "low_score_level",
            i64::from(self.low_score_level.code()),
            0,
            1,
        )?;
        Ok(())
    }

    /// Checks a reading's value for its parameter: codes must be known, everything else is
    /// scored on open-ended ranges and cannot be refused.
    fn check(parameter: Parameter, value: i32) -> Result<(), StepError> {
        let (min, max) = match parameter {
            Parameter::AirOrOxygen => (0, 1),
            Parameter::Consciousness => (0, 4),
            _ => return Ok(()),
        };
        if value < min || value > max {
            return Err(StepError::ValueOutOfRange {
                metric: parameter.metric(),
                value,
                min,
                max,
            });
        }
        Ok(())
    }

    pub(crate) fn step_reading(
        &self,
        state: &mut News2State,
        metric: Metric,
        value: i32,
        time_ms: TimestampMs,
    ) -> Result<News2Reason, StepError> {
        let parameter = Parameter::of_metric(metric).ok_or(StepError::UnexpectedMetric {
            kind: "news2",
            metric,
        })?;
        Self::check(parameter, value)?;
        let slot = &mut state.latest[parameter as usize];
        if let Some(previous) = slot
            && time_ms < previous.time_ms
        {
            return Err(StepError::OutOfOrder {
                time_ms,
                last_ms: previous.time_ms,
            });
        }
        *slot = Some(Sample { time_ms, value });
        state.now_ms = Some(state.now_ms.map_or(time_ms, |now| now.max(time_ms)));
        Ok(self.score(state))
    }

    pub(crate) fn step_tick(&self, state: &mut News2State, now_ms: TimestampMs) -> News2Reason {
        // An instance's time is the latest it has seen: an older tick moves nothing.
        state.now_ms = Some(state.now_ms.map_or(now_ms, |t| t.max(now_ms)));
        self.score(state)
    }

    /// Scores the state at its own time.
    pub fn score(&self, state: &News2State) -> News2Reason {
        let now = state.now_ms.unwrap_or(TimestampMs::MIN);
        let fresh = |p: Parameter| {
            state.latest[p as usize]
                .filter(|s| now.saturating_sub(s.time_ms) <= self.freshness_ms as i64)
                .map(|s| s.value)
        };
        let on_oxygen = fresh(Parameter::AirOrOxygen) == Some(1);
        let mut subscores = [None; 7];
        for p in Parameter::ALL {
            subscores[p as usize] = fresh(p).map(|v| match p {
                Parameter::RespirationRate => score_respiration(v),
                Parameter::SpO2 if self.spo2_scale == 2 => score_spo2_scale2(v, on_oxygen),
                Parameter::SpO2 => score_spo2_scale1(v),
                Parameter::AirOrOxygen => 2 * u8::from(v == 1),
                Parameter::SystolicBp => score_systolic(v),
                Parameter::Pulse => score_pulse(v),
                Parameter::Consciousness => 3 * u8::from(v != 0),
                Parameter::Temperature => score_temperature(v),
            });
        }
        let aggregate: u8 = subscores.iter().flatten().sum();
        let red_single = subscores.contains(&Some(3));
        let band = band(aggregate, red_single);
        let level = match band {
            News2Band::Zero => AlertLevel::Ok,
            News2Band::Low => self.low_score_level,
            News2Band::LowRedSingle | News2Band::Medium => AlertLevel::Warning,
            News2Band::High => AlertLevel::Critical,
        };
        News2Reason {
            aggregate,
            band,
            level,
            subscores,
        }
    }
}

/// One parameter's latest reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sample {
    pub time_ms: TimestampMs,
    pub value: i32,
}

/// State of a NEWS2 instance: each parameter's latest reading, and the instance's time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct News2State {
    /// Indexed by [`Parameter`] (as `usize`).
    pub latest: [Option<Sample>; 7],
    /// The latest time seen, from readings or ticks.
    pub now_ms: Option<TimestampMs>,
}

/// An aggregate score and how it was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct News2Reason {
    pub aggregate: u8,
    pub band: News2Band,
    pub level: AlertLevel,
    /// Per [`Parameter`]; `None` when the parameter has no fresh reading.
    pub subscores: [Option<u8>; 7],
}

impl Canonical for News2Params {
    fn encode(&self, e: &mut Encoder) {
        e.u8(self.spo2_scale)
            .u64(self.freshness_ms)
            .u8(self.low_score_level.code());
    }
}

impl Canonical for News2State {
    fn encode(&self, e: &mut Encoder) {
        for slot in &self.latest {
            e.opt(*slot, |e, s| {
                e.i64(s.time_ms).i32(s.value);
            });
        }
        e.opt(self.now_ms, |e, v| {
            e.i64(v);
        });
    }
}
