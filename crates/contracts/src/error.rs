//! Typed errors. Nothing in this crate panics on any input: bad parameters are refused at
//! deployment with a [`ParamError`], a reading or tick an instance cannot take with a
//! [`StepError`], and catalog operations with a [`CatalogError`].

use vigil_core::{Metric, TimestampMs};

use crate::InstanceId;

/// Parameters refused at deployment. `field` is the parameter's path as written in an
/// instance file (`zones[1].polygon`, `critical_above`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    #[error("{lower} ({lower_value}) must not exceed {upper} ({upper_value})")]
    OutOfOrder {
        lower: String,
        lower_value: i64,
        upper: String,
        upper_value: i64,
    },
    #[error("{field} = {value} is outside [{min}, {max}]")]
    OutOfRange {
        field: String,
        value: i64,
        min: i64,
        max: i64,
    },
    #[error("{field} has {count} entries, expected {min} to {max}")]
    Count {
        field: String,
        count: usize,
        min: usize,
        max: usize,
    },
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    #[error("metric {metric} cannot drive a {kind} contract")]
    Metric { kind: &'static str, metric: Metric },
}

impl ParamError {
    pub(crate) fn range(field: impl Into<String>, value: i64, min: i64, max: i64) -> Self {
        Self::OutOfRange {
            field: field.into(),
            value,
            min,
            max,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// Fails unless `value` lies in `[min, max]`.
    pub(crate) fn check_range(field: &str, value: i64, min: i64, max: i64) -> Result<(), Self> {
        if value < min || value > max {
            return Err(Self::range(field, value, min, max));
        }
        Ok(())
    }

    /// Fails unless `value <= max`.
    pub(crate) fn check_max_u64(field: &str, value: u64, max: u64) -> Result<(), Self> {
        if value > max {
            let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            return Err(Self::range(field, clamp(value), 0, clamp(max)));
        }
        Ok(())
    }

    /// Fails unless the present values among `named` are non-decreasing.
    pub(crate) fn check_order(named: &[(&str, Option<i64>)]) -> Result<(), Self> {
        let mut previous: Option<(&str, i64)> = None;
        for &(name, value) in named {
            let Some(value) = value else { continue };
            if let Some((lower, lower_value)) = previous
                && lower_value > value
            {
                return Err(Self::OutOfOrder {
                    lower: lower.to_owned(),
                    lower_value,
                    upper: name.to_owned(),
                    upper_value: value,
                });
            }
            previous = Some((name, value));
        }
        Ok(())
    }
}

/// An input an instance cannot take. The state is left as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    #[error("a {kind} contract does not read {metric}")]
    UnexpectedMetric { kind: &'static str, metric: Metric },
    #[error("a {metric} reading must carry a {expected} value")]
    UnexpectedValue {
        metric: Metric,
        expected: &'static str,
    },
    #[error("{metric} value {value} is outside what this contract accepts ({min} to {max})")]
    ValueOutOfRange {
        metric: Metric,
        value: i32,
        min: i32,
        max: i32,
    },
    #[error("input at {time_ms} ms is older than the instance's last input at {last_ms} ms")]
    OutOfOrder {
        time_ms: TimestampMs,
        last_ms: TimestampMs,
    },
    #[error("the state does not belong to this contract: {0}")]
    StateMismatch(&'static str),
}

/// A catalog operation that was refused; the catalog is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    #[error("invalid parameters: {0}")]
    Params(#[from] ParamError),
    #[error("instance {0} is already deployed")]
    AlreadyDeployed(InstanceId),
    #[error("no instance {0} is deployed")]
    UnknownInstance(InstanceId),
    #[error("a {kind} contract must be bound to a device")]
    DeviceRequired { kind: &'static str },
    #[error("a replacement must be for the same person as the instance it replaces")]
    ReplacementForOtherPerson,
    #[error("instance {0} has no open alert")]
    NoOpenAlert(InstanceId),
    #[error("the open alert of instance {0} is already acknowledged")]
    AlreadyAcknowledged(InstanceId),
    #[error("tick at {now_ms} ms is before the catalog's time {last_ms} ms")]
    TickBackwards {
        now_ms: TimestampMs,
        last_ms: TimestampMs,
    },
    #[error("the catalog holds {max} instances already")]
    Full { max: usize },
}

/// A re-execution that does not confirm an alert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReexecuteError {
    #[error("the evidence names another instance than the deployment's")]
    WrongInstance,
    #[error("the evidence does not match the claimed evidence digest")]
    DigestMismatch,
    #[error("re-execution gives level {actual:?}, the alert claims {claimed:?}")]
    LevelMismatch {
        claimed: vigil_core::AlertLevel,
        actual: vigil_core::AlertLevel,
    },
    #[error("the deployment is invalid: {0}")]
    Deployment(#[from] CatalogError),
    #[error("the step fails: {0}")]
    Step(#[from] StepError),
    #[error("re-derivation ends at {actual} ms, the alert claims a reading at {claimed} ms")]
    TimeMismatch { claimed: i64, actual: i64 },
    #[error("a {kind} alert must be backed by its device's signed readings, not attested")]
    AttestationNotAllowed { kind: &'static str },
    #[error("a no-signal alert is attested (silence cannot be signed), not backed by readings")]
    NoSignalIsAttested,
    #[error("the instance is bound to no device, so no device's signature can back it")]
    NoBoundDevice,
    #[error("the evidence holds no reading the instance takes")]
    NoPacks,
    #[error("the evidence holds {count} packs, more than {max}")]
    TooManyPacks { count: usize, max: usize },
    #[error("the evidence's cut is not within its last pack")]
    BadCut,
    #[error("pack {pack} of the evidence is not from the instance's device")]
    OtherDevice { pack: usize },
    #[error("pack {pack} of the evidence does not follow the previous one in sequence")]
    NotIncreasing { pack: usize },
    #[error("the evidence ends on a reading the instance does not take")]
    EndsOnUnboundReading,
    #[error("the evidence's tick is before its last reading")]
    TickBeforeReading,
    #[error("no run of the packs held ({held}) re-derives the level")]
    Unsupported { held: usize },
}
