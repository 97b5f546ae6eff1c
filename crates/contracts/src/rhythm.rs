//! Heart rhythm: tachycardia and bradycardia from the heart rate (a [`ThresholdParams`] on
//! `heart-rate`), and an irregular-rhythm cue from RR intervals.
//!
//! # Irregularity measure
//!
//! Over the last `window` RR intervals (oldest first) `rr[0..n]`, count the successive
//! differences `|rr[i] - rr[i-1]|` above `delta_ms` and express them in per-mille of the `n - 1`
//! differences, rounded down: an integer pNNx (pNN50 with `delta_ms = 50`). The rhythm is
//! irregular when the window is full and the measure reaches `irregular_permille`. An RR
//! interval arriving more than `max_gap_ms` after the previous one empties the window first: a
//! difference across a gap in the recording says nothing about the rhythm. This is a screening
//! cue, not a diagnosis. A `signal-unusable` reading (a patch whose ECG segment is unusable,
//! sent instead of RR intervals) empties the window the same way and is marked in the reason.
//!
//! With `method = "af-screen"` the window is judged instead by the ECG crate's AF screen
//! (`vigil_ecg::af::screen`: Petrėnas, Marozas & Sörnmo 2015, integer arithmetic, so every
//! validator reaches the same verdict), the detector `vigil ecg af` runs, with causal averagers
//! over the window: the verdict is that of the newest interval, from the window alone. The
//! window holds the last `window` intervals (128 recommended, at least
//! `vigil_ecg::af::SHORT_RR_MIN`); AF is flagged about 50 intervals after its onset (the
//! averagers' α = 0.02), at most `window` intervals; the reason's `irregular_permille` is then
//! the detector's output `O(n)` in per-mille (AF above 725).

use serde::{Deserialize, Serialize};
use vigil_core::{AlertLevel, Metric, TimestampMs};

use crate::canon::{Canonical, Encoder};
use crate::error::{ParamError, StepError};
use crate::threshold::{ThresholdParams, ThresholdReason, ThresholdState};

/// Smallest and largest irregularity window, in RR intervals.
pub const WINDOW_MIN: u16 = 4;
pub const WINDOW_MAX: u16 = 256;
/// RR intervals this contract accepts, in ms (core's plausibility range is narrower).
pub const RR_MS_MIN: i32 = 1;
pub const RR_MS_MAX: i32 = 10_000;
/// Longest gap between successive RR intervals before the window restarts.
pub const GAP_MS_MAX: u32 = 600_000;

fn warning() -> AlertLevel {
    AlertLevel::Warning
}
fn default_gap() -> u32 {
    5_000
}

/// How the irregularity of the RR window is judged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IrregularityMethod {
    /// Per-mille of successive differences above `delta_ms` (pNNx).
    #[default]
    Pnn,
    /// The ECG crate's AF screen (`delta_ms` and `irregular_permille` are not used).
    AfScreen,
}

impl IrregularityMethod {
    fn code(self) -> u8 {
        match self {
            Self::Pnn => 0,
            Self::AfScreen => 1,
        }
    }
}

/// The irregular-rhythm part of a heart-rhythm instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrregularityParams {
    pub window: u16,
    pub delta_ms: u16,
    pub irregular_permille: u16,
    #[serde(default = "warning")]
    pub level: AlertLevel,
    #[serde(default = "default_gap")]
    pub max_gap_ms: u32,
    #[serde(default)]
    pub method: IrregularityMethod,
}

/// Parameters of a heart-rhythm instance: at least one of `rate` and `irregularity`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartRhythmParams {
    /// Brady- and tachycardia bands on `heart-rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<ThresholdParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irregularity: Option<IrregularityParams>,
}

/// State of a heart-rhythm instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HeartRhythmState {
    pub rate: ThresholdState,
    /// The latest RR intervals in ms, oldest first, at most `window` of them.
    pub rr_ms: Vec<u16>,
    pub last_rr_ms: Option<TimestampMs>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HeartRhythmReason {
    /// Set when the input was a heart rate.
    pub rate: Option<ThresholdReason>,
    /// The level of the rate part, in force.
    pub rate_level: AlertLevel,
    /// The irregularity measure, once the window is full.
    pub irregular_permille: Option<u16>,
    pub irregular: bool,
    /// The input was a `signal-unusable` report: the RR window was emptied.
    pub signal_unusable: bool,
}

/// The irregularity measure of `rr` (per-mille of successive differences above `delta_ms`).
pub fn irregularity_permille(rr: &[u16], delta_ms: u16) -> Option<u16> {
    if rr.len() < 2 {
        return None;
    }
    let above = rr
        .windows(2)
        .filter(|w| w[0].abs_diff(w[1]) > delta_ms)
        .count();
    // `above <= len - 1`, so the ratio is at most 1000.
    Some((above * 1000 / (rr.len() - 1)) as u16)
}

impl HeartRhythmParams {
    pub(crate) fn validate(&self) -> Result<(), ParamError> {
        if self.rate.is_none() && self.irregularity.is_none() {
            return Err(ParamError::invalid(
                "rate",
                "a heart-rhythm contract needs rate, irregularity or both",
            ));
        }
        if let Some(rate) = &self.rate {
            if rate.metric != Metric::HeartRate {
                return Err(ParamError::Metric {
                    kind: "heart-rhythm rate",
                    metric: rate.metric,
                });
            }
            rate.validate("rate.")?;
        }
        if let Some(irr) = &self.irregularity {
            ParamError::check_range(
                "irregularity.window",
                i64::from(irr.window),
                i64::from(WINDOW_MIN),
                i64::from(WINDOW_MAX),
            )?;
            if irr.method == IrregularityMethod::AfScreen {
                ParamError::check_range(
                    "irregularity.window",
                    i64::from(irr.window),
                    vigil_ecg::af::SHORT_RR_MIN as i64,
                    i64::from(WINDOW_MAX),
                )?;
            }
            ParamError::check_range(
                "irregularity.irregular_permille",
                i64::from(irr.irregular_permille),
                1,
                1000,
            )?;
            ParamError::check_range("irregularity.level", i64::from(irr.level.code()), 1, 2)?;
            ParamError::check_range(
                "irregularity.max_gap_ms",
                i64::from(irr.max_gap_ms),
                1,
                i64::from(GAP_MS_MAX),
            )?;
        }
        Ok(())
    }

    pub fn accepts(&self, metric: Metric) -> bool {
        (metric == Metric::HeartRate && self.rate.is_some())
            || (matches!(metric, Metric::RrInterval | Metric::SignalUnusable)
                && self.irregularity.is_some())
    }

    fn rhythm(&self, state: &HeartRhythmState) -> (Option<u16>, bool, AlertLevel) {
        let Some(irr) = &self.irregularity else {
            return (None, false, AlertLevel::Ok);
        };
        if state.rr_ms.len() < usize::from(irr.window) {
            return (None, false, AlertLevel::Ok);
        }
        let (permille, irregular) = match irr.method {
            IrregularityMethod::Pnn => {
                let permille = irregularity_permille(&state.rr_ms, irr.delta_ms);
                (
                    permille,
                    permille.is_some_and(|p| p >= irr.irregular_permille),
                )
            }
            IrregularityMethod::AfScreen => {
                let rr: Vec<u32> = state.rr_ms.iter().map(|&ms| u32::from(ms)).collect();
                let verdict = vigil_ecg::af::screen(&rr);
                (
                    verdict.map(|v| v.output_permille.min(1000) as u16),
                    verdict.is_some_and(|v| v.af),
                )
            }
        };
        (
            permille,
            irregular,
            if irregular { irr.level } else { AlertLevel::Ok },
        )
    }

    /// The level of a state: the worse of the rate and the rhythm.
    pub(crate) fn level(&self, state: &HeartRhythmState) -> AlertLevel {
        state.rate.level.max(self.rhythm(state).2)
    }

    pub(crate) fn step_reading(
        &self,
        state: &mut HeartRhythmState,
        metric: Metric,
        value: i32,
        time_ms: TimestampMs,
    ) -> Result<HeartRhythmReason, StepError> {
        let mut rate = None;
        let signal_unusable = metric == Metric::SignalUnusable;
        match (metric, &self.rate, &self.irregularity) {
            // A patch whose signal is unusable says so instead of sending intervals measured on
            // noise: the rhythm across it is unknown, so the window starts again (as after a
            // gap). Its time orders it among the intervals.
            (Metric::SignalUnusable, _, Some(_)) => {
                if let Some(last_ms) = state.last_rr_ms
                    && time_ms < last_ms
                {
                    return Err(StepError::OutOfOrder { time_ms, last_ms });
                }
                state.last_rr_ms = Some(time_ms);
                state.rr_ms.clear();
            }
            (Metric::HeartRate, Some(params), _) => {
                rate = Some(params.step(&mut state.rate, value, time_ms)?);
            }
            (Metric::RrInterval, _, Some(irr)) => {
                if !(RR_MS_MIN..=RR_MS_MAX).contains(&value) {
                    return Err(StepError::ValueOutOfRange {
                        metric,
                        value,
                        min: RR_MS_MIN,
                        max: RR_MS_MAX,
                    });
                }
                if let Some(last_ms) = state.last_rr_ms {
                    if time_ms < last_ms {
                        return Err(StepError::OutOfOrder { time_ms, last_ms });
                    }
                    if time_ms.saturating_sub(last_ms) > i64::from(irr.max_gap_ms) {
                        state.rr_ms.clear();
                    }
                }
                state.last_rr_ms = Some(time_ms);
                let window = usize::from(irr.window);
                if state.rr_ms.len() >= window {
                    let excess = state.rr_ms.len() + 1 - window;
                    state.rr_ms.drain(..excess);
                }
                // RR_MS_MAX < u16::MAX.
                state.rr_ms.push(value as u16);
            }
            _ => {
                return Err(StepError::UnexpectedMetric {
                    kind: "heart-rhythm",
                    metric,
                });
            }
        }
        let (irregular_permille, irregular, _) = self.rhythm(state);
        Ok(HeartRhythmReason {
            rate,
            rate_level: state.rate.level,
            irregular_permille,
            irregular,
            signal_unusable,
        })
    }
}

impl Canonical for IrregularityParams {
    fn encode(&self, e: &mut Encoder) {
        e.u16(self.window)
            .u16(self.delta_ms)
            .u16(self.irregular_permille)
            .u8(self.level.code())
            .u32(self.max_gap_ms)
            .u8(self.method.code());
    }
}

impl Canonical for HeartRhythmParams {
    fn encode(&self, e: &mut Encoder) {
        e.opt(self.rate.as_ref(), |e, r| r.encode(e));
        e.opt(self.irregularity.as_ref(), |e, r| r.encode(e));
    }
}

impl Canonical for HeartRhythmState {
    fn encode(&self, e: &mut Encoder) {
        e.value(&self.rate);
        e.len(self.rr_ms.len());
        for rr in &self.rr_ms {
            e.u16(*rr);
        }
        e.opt(self.last_rr_ms, |e, v| {
            e.i64(v);
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn af_params(window: u16) -> HeartRhythmParams {
        HeartRhythmParams {
            rate: None,
            irregularity: Some(IrregularityParams {
                window,
                delta_ms: 50,
                irregular_permille: 600,
                level: AlertLevel::Warning,
                max_gap_ms: 5_000,
                method: IrregularityMethod::AfScreen,
            }),
        }
    }

    /// Feeds RR intervals at their own times; the last reason.
    fn feed(params: &HeartRhythmParams, rr: &[i32]) -> HeartRhythmReason {
        let mut state = HeartRhythmState::default();
        let mut time_ms = 0i64;
        let mut last = None;
        for &ms in rr {
            time_ms += i64::from(ms);
            last = Some(
                params
                    .step_reading(&mut state, Metric::RrInterval, ms, time_ms)
                    .unwrap(),
            );
        }
        last.unwrap()
    }

    #[test]
    fn af_screen_flags_irregular_windows_and_not_sinus_with_ectopy() {
        let params = af_params(128);
        params.validate().unwrap();
        let mut state = 0x9e37_79b9u64;
        let af: Vec<i32> = (0..200)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                500 + (state % 300) as i32
            })
            .collect();
        assert!(feed(&params, &af).irregular);
        let mut sinus: Vec<i32> = (0..200).map(|i| 800 + (i % 5) * 10).collect();
        for k in (5..190).step_by(20) {
            sinus[k] = 480;
            sinus[k + 1] = 1120;
        }
        let reason = feed(&params, &sinus);
        assert!(!reason.irregular && reason.irregular_permille.is_some());
        assert!(af_params(8).validate().is_err());
    }

    #[test]
    fn signal_unusable_empties_the_window_and_is_reported() {
        let params = af_params(16);
        let mut state = HeartRhythmState::default();
        let mut time_ms = 0i64;
        for k in 0..20 {
            time_ms += i64::from(700 + (k % 7) * 90);
            params
                .step_reading(&mut state, Metric::RrInterval, 700 + (k % 7) * 90, time_ms)
                .unwrap();
        }
        assert_eq!(state.rr_ms.len(), 16);
        assert!(params.accepts(Metric::SignalUnusable));
        let reason = params
            .step_reading(&mut state, Metric::SignalUnusable, 5_000, time_ms + 5_000)
            .unwrap();
        assert!(reason.signal_unusable && !reason.irregular);
        assert!(state.rr_ms.is_empty() && reason.irregular_permille.is_none());
        assert!(matches!(
            params.step_reading(&mut state, Metric::SignalUnusable, 1_000, time_ms),
            Err(StepError::OutOfOrder { .. })
        ));
        let rate_only = HeartRhythmParams {
            rate: None,
            irregularity: None,
        };
        assert!(!rate_only.accepts(Metric::SignalUnusable));
    }
}
