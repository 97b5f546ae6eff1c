//! The contract kinds behind one interface: validated parameters ([`Contract`]), explicit
//! state ([`State`]), inputs ([`Input`]) and a pure step function.

use serde::{Deserialize, Serialize};
use vigil_core::{AlertLevel, Metric, Reading, TimestampMs, Value};

use crate::canon::{Canonical, Encoder};
use crate::error::{ParamError, StepError};
use crate::geofence::{CompiledZone, GeofenceParams, GeofenceReason, GeofenceState};
use crate::news2::{News2Params, News2Reason, News2State, Parameter};
use crate::nosignal::{NoSignalParams, NoSignalReason, NoSignalState};
use crate::rhythm::{HeartRhythmParams, HeartRhythmReason, HeartRhythmState};
use crate::threshold::{ThresholdParams, ThresholdReason, ThresholdState};

/// The monitor kinds compiled into every node. Its one written form is [`Kind::name`]:
/// `Display`, `FromStr` and serde all go through it (the `kind` tag of [`Params`] is serde's
/// own; `tests/written_names.rs` pins both to the same spelling).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum Kind {
    Threshold,
    News2,
    Geofence,
    NoSignal,
    HeartRhythm,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Threshold,
        Kind::News2,
        Kind::Geofence,
        Kind::NoSignal,
        Kind::HeartRhythm,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Kind::Threshold => "threshold",
            Kind::News2 => "news2",
            Kind::Geofence => "geofence",
            Kind::NoSignal => "no-signal",
            Kind::HeartRhythm => "heart-rhythm",
        }
    }

    const fn tag(self) -> u8 {
        match self {
            Kind::Threshold => 1,
            Kind::News2 => 2,
            Kind::Geofence => 3,
            Kind::NoSignal => 4,
            Kind::HeartRhythm => 5,
        }
    }
}

vigil_core::named_enum!(Kind by name, error String = |s| format!("unknown contract kind {s:?}"));

/// An instance's parameters, as deployed: plain data, not yet validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Params {
    Threshold(ThresholdParams),
    News2(News2Params),
    Geofence(GeofenceParams),
    NoSignal(NoSignalParams),
    HeartRhythm(HeartRhythmParams),
}

impl Params {
    pub const fn kind(&self) -> Kind {
        match self {
            Params::Threshold(_) => Kind::Threshold,
            Params::News2(_) => Kind::News2,
            Params::Geofence(_) => Kind::Geofence,
            Params::NoSignal(_) => Kind::NoSignal,
            Params::HeartRhythm(_) => Kind::HeartRhythm,
        }
    }

    /// Checks every parameter and prepares the instance for evaluation. This is the only way
    /// to a [`Contract`].
    pub fn validate(&self) -> Result<Contract, ParamError> {
        let zones = match self {
            Params::Threshold(p) => {
                p.validate("")?;
                Vec::new()
            }
            Params::News2(p) => {
                p.validate()?;
                Vec::new()
            }
            Params::Geofence(p) => p.compile()?,
            Params::NoSignal(p) => {
                p.validate()?;
                Vec::new()
            }
            Params::HeartRhythm(p) => {
                p.validate()?;
                Vec::new()
            }
        };
        Ok(Contract {
            params: self.clone(),
            zones,
        })
    }
}

impl Canonical for Params {
    fn encode(&self, e: &mut Encoder) {
        e.u8(self.kind().tag());
        match self {
            Params::Threshold(p) => p.encode(e),
            Params::News2(p) => p.encode(e),
            Params::Geofence(p) => p.encode(e),
            Params::NoSignal(p) => p.encode(e),
            Params::HeartRhythm(p) => p.encode(e),
        }
    }
}

/// An instance's state between inputs. Everything a step depends on besides the parameters
/// and the input is here: re-executing a step from (parameters, state, input) gives the same
/// new state and outcome on every machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum State {
    Threshold(ThresholdState),
    News2(News2State),
    Geofence(GeofenceState),
    NoSignal(NoSignalState),
    HeartRhythm(HeartRhythmState),
}

impl State {
    pub const fn kind(&self) -> Kind {
        match self {
            State::Threshold(_) => Kind::Threshold,
            State::News2(_) => Kind::News2,
            State::Geofence(_) => Kind::Geofence,
            State::NoSignal(_) => Kind::NoSignal,
            State::HeartRhythm(_) => Kind::HeartRhythm,
        }
    }
}

impl Canonical for State {
    fn encode(&self, e: &mut Encoder) {
        e.u8(self.kind().tag());
        match self {
            State::Threshold(s) => s.encode(e),
            State::News2(s) => s.encode(e),
            State::Geofence(s) => s.encode(e),
            State::NoSignal(s) => s.encode(e),
            State::HeartRhythm(s) => s.encode(e),
        }
    }
}

/// What drives a step: a reading routed to the instance, or the passing of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input<'a> {
    Reading(&'a Reading),
    Tick { now_ms: TimestampMs },
}

impl Input<'_> {
    pub fn to_owned(&self) -> OwnedInput {
        match *self {
            Input::Reading(r) => OwnedInput::Reading(r.clone()),
            Input::Tick { now_ms } => OwnedInput::Tick { now_ms },
        }
    }
}

impl Canonical for Input<'_> {
    fn encode(&self, e: &mut Encoder) {
        match self {
            Input::Reading(r) => {
                e.u8(1).value(*r);
            }
            Input::Tick { now_ms } => {
                e.u8(2).i64(*now_ms);
            }
        }
    }
}

/// An [`Input`] that owns its reading, for evidence kept or sent elsewhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnedInput {
    Reading(Reading),
    Tick { now_ms: TimestampMs },
}

impl OwnedInput {
    pub fn as_input(&self) -> Input<'_> {
        match self {
            OwnedInput::Reading(r) => Input::Reading(r),
            OwnedInput::Tick { now_ms } => Input::Tick { now_ms: *now_ms },
        }
    }
}

impl Canonical for OwnedInput {
    fn encode(&self, e: &mut Encoder) {
        self.as_input().encode(e);
    }
}

/// Who an outcome is for. Every level above 0 reaches the person and staff at once, except a
/// no-signal reminder, which goes to the person alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Audience {
    Nobody,
    Person,
    PersonAndStaff,
}

/// The result of one step: the instance's level in force and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub level: AlertLevel,
    pub audience: Audience,
    pub reason: Reason,
}

/// Why an instance stands at its level, per kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    Threshold(ThresholdReason),
    News2(News2Reason),
    Geofence(GeofenceReason),
    NoSignal(NoSignalReason),
    HeartRhythm(HeartRhythmReason),
    /// A tick reached a kind that does not move with time; the level is unchanged.
    Unchanged {
        now_ms: TimestampMs,
    },
}

/// Validated parameters, ready to evaluate. Made only by [`Params::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contract {
    params: Params,
    zones: Vec<CompiledZone>,
}

impl Contract {
    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn kind(&self) -> Kind {
        self.params.kind()
    }

    /// Whether readings of `metric` are routed to this contract. A no-signal contract takes
    /// every metric of its device.
    pub fn accepts(&self, metric: Metric) -> bool {
        match &self.params {
            Params::Threshold(p) => p.metric == metric,
            Params::News2(_) => Parameter::of_metric(metric).is_some(),
            Params::Geofence(_) => metric == Metric::Position,
            Params::NoSignal(_) => true,
            Params::HeartRhythm(p) => p.accepts(metric),
        }
    }

    /// The state of a freshly deployed instance.
    pub fn initial_state(&self) -> State {
        match &self.params {
            Params::Threshold(_) => State::Threshold(ThresholdState::default()),
            Params::News2(_) => State::News2(News2State::default()),
            Params::Geofence(p) => State::Geofence(p.initial_state()),
            Params::NoSignal(_) => State::NoSignal(NoSignalState::default()),
            Params::HeartRhythm(_) => State::HeartRhythm(HeartRhythmState::default()),
        }
    }

    /// One step, pure: the new state and the outcome. On error nothing changes (the caller
    /// keeps its state).
    pub fn step(&self, state: &State, input: Input<'_>) -> Result<(State, Outcome), StepError> {
        let mut next = state.clone();
        let outcome = self.step_mut(&mut next, input)?;
        Ok((next, outcome))
    }

    /// One step in place. On error `state` may be partly updated: use [`Contract::step`]
    /// unless the state is a scratch copy.
    pub fn step_mut(&self, state: &mut State, input: Input<'_>) -> Result<Outcome, StepError> {
        let kind = self.kind().name();
        let scalar = |r: &Reading| match r.value {
            Value::Scalar(v) => Ok(v),
            Value::Position(_) => Err(StepError::UnexpectedValue {
                metric: r.metric,
                expected: "scalar",
            }),
        };
        let check_metric = |r: &Reading| {
            if self.accepts(r.metric) {
                Ok(())
            } else {
                Err(StepError::UnexpectedMetric {
                    kind,
                    metric: r.metric,
                })
            }
        };
        let (level, reason) = match (&self.params, state, input) {
            (Params::Threshold(p), State::Threshold(s), Input::Reading(r)) => {
                check_metric(r)?;
                let reason = p.step(s, scalar(r)?, r.time_ms)?;
                (s.level, Reason::Threshold(reason))
            }
            (Params::Threshold(_), State::Threshold(s), Input::Tick { now_ms }) => {
                (s.level, Reason::Unchanged { now_ms })
            }
            (Params::News2(p), State::News2(s), Input::Reading(r)) => {
                check_metric(r)?;
                let reason = p.step_reading(s, r.metric, scalar(r)?, r.time_ms)?;
                (reason.level, Reason::News2(reason))
            }
            (Params::News2(p), State::News2(s), Input::Tick { now_ms }) => {
                let reason = p.step_tick(s, now_ms);
                (reason.level, Reason::News2(reason))
            }
            (Params::Geofence(p), State::Geofence(s), Input::Reading(r)) => {
                check_metric(r)?;
                let Value::Position(fix) = r.value else {
                    return Err(StepError::UnexpectedValue {
                        metric: r.metric,
                        expected: "position",
                    });
                };
                let reason = p.step(&self.zones, s, fix, r.time_ms)?;
                (p.level(s), Reason::Geofence(reason))
            }
            (Params::Geofence(p), State::Geofence(s), Input::Tick { now_ms }) => {
                if s.zones.len() != p.zones.len() {
                    return Err(StepError::StateMismatch("geofence zone count"));
                }
                (p.level(s), Reason::Unchanged { now_ms })
            }
            (Params::NoSignal(p), State::NoSignal(s), Input::Reading(r)) => {
                let reason = p.step_reading(s, r.time_ms);
                (reason.level, Reason::NoSignal(reason))
            }
            (Params::NoSignal(p), State::NoSignal(s), Input::Tick { now_ms }) => {
                let reason = p.step_tick(s, now_ms);
                (reason.level, Reason::NoSignal(reason))
            }
            (Params::HeartRhythm(p), State::HeartRhythm(s), Input::Reading(r)) => {
                check_metric(r)?;
                let reason = p.step_reading(s, r.metric, scalar(r)?, r.time_ms)?;
                (p.level(s), Reason::HeartRhythm(reason))
            }
            (Params::HeartRhythm(p), State::HeartRhythm(s), Input::Tick { now_ms }) => {
                (p.level(s), Reason::Unchanged { now_ms })
            }
            _ => return Err(StepError::StateMismatch("the state is of another kind")),
        };
        let audience = match (level, self.kind()) {
            (AlertLevel::Ok, _) => Audience::Nobody,
            (AlertLevel::Warning, Kind::NoSignal) => Audience::Person,
            _ => Audience::PersonAndStaff,
        };
        Ok(Outcome {
            level,
            audience,
            reason,
        })
    }
}
