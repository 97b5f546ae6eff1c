//! The catalog (the seed's `COVIDCaller`): deployed instances addressed by the digest of their
//! canonical deployment, bound to a person and to a metric or a device, each with its state and
//! at most one open alert.
//!
//! # Alert lifecycle
//!
//! ```text
//!            level > 0                 acknowledge
//!   (none) ───────────▶ Raised ─────────────────────▶ Acknowledged
//!                         │  ▲  escalation (1 → 2)         │
//!                         │  └─────────────────────────────┘
//!                         │ level back to 0 ─▶ Cleared    (either state)
//!                         │ resolve         ─▶ Resolved   (either state)
//!                         │ terminate/replace ─▶ Withdrawn
//! ```
//!
//! One open alert per instance. While it is open, a higher level *escalates* it (same alert,
//! new level; an acknowledged alert returns to Raised, since staff acknowledged a warning, not
//! the critical); a lower non-zero level *de-escalates* it (the level follows, the peak and the
//! acknowledgment stay); level 0 *clears* and closes it. Resolving closes it by hand (after an
//! order was carried out, say); if the condition persists, the next evaluation above 0 raises a
//! new alert. Cleared, resolved and withdrawn alerts are closed: the catalog forgets them after
//! reporting them, the ledger keeps the history.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use vigil_core::{AlertLevel, DeviceId, Digest, PersonId, Reading, TimestampMs};

use crate::canon::{Canonical, Encoder};
use crate::contract::{Audience, Contract, Input, Kind, Outcome, OwnedInput, Params, State};
use crate::error::{CatalogError, ReexecuteError, StepError};

/// Domain separators of the digests this crate takes.
pub const INSTANCE_DOMAIN: &str = "vigil.contracts.instance.v1";
pub const EVIDENCE_DOMAIN: &str = "vigil.contracts.evidence.v1";

/// An instance's address: the digest of its canonical [`Deployment`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(pub Digest);

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstanceId({self})")
    }
}

impl FromStr for InstanceId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() != 64 {
            return Err(format!(
                "an instance id is 64 hexadecimal digits, got {} characters",
                s.len()
            ));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|e| format!("{s:?}: {e}"))?;
        Ok(Self(out))
    }
}

impl Serialize for InstanceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InstanceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A deployment: who, what it listens to, with which parameters. The nonce lets the same
/// parameters be deployed twice for one person as two instances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    pub person: PersonId,
    /// Binds the instance to one device's readings; required for no-signal. Without it the
    /// instance takes the person's readings of its metrics from any device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceId>,
    #[serde(default)]
    pub nonce: u64,
    pub params: Params,
}

impl Canonical for Deployment {
    fn encode(&self, e: &mut Encoder) {
        e.value(&self.person);
        e.opt(self.device.as_ref(), |e, d| d.encode(e));
        e.u64(self.nonce).value(&self.params);
    }
}

impl Deployment {
    /// The instance's address.
    pub fn id(&self) -> InstanceId {
        InstanceId(vigil_core::digest(
            INSTANCE_DOMAIN,
            &[&self.canonical_bytes()],
        ))
    }

    /// Everything a validator checks before accepting a deployment transaction: the
    /// parameters and the binding. Returns the ready contract.
    pub fn validate(&self) -> Result<Contract, CatalogError> {
        let contract = self.params.validate()?;
        if contract.kind() == Kind::NoSignal && self.device.is_none() {
            return Err(CatalogError::DeviceRequired {
                kind: Kind::NoSignal.name(),
            });
        }
        Ok(contract)
    }

    /// Whether a person's reading is routed to this deployment.
    fn binds(&self, contract: &Contract, reading: &Reading) -> bool {
        self.device.as_ref().is_none_or(|d| *d == reading.device)
            && contract.accepts(reading.metric)
    }
}

/// What a validator needs, with the deployment, to re-execute a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub instance: InstanceId,
    pub state_before: State,
    pub input: OwnedInput,
}

impl Evidence {
    /// The evidence digest an alert transaction carries.
    pub fn digest(&self, params: &Params) -> Digest {
        evidence_digest(
            &self.instance,
            params,
            &self.state_before,
            self.input.as_input(),
        )
    }
}

/// Digest over the canonical encodings of (instance, parameters, state before, input).
pub fn evidence_digest(
    instance: &InstanceId,
    params: &Params,
    state_before: &State,
    input: Input<'_>,
) -> Digest {
    vigil_core::digest(
        EVIDENCE_DOMAIN,
        &[
            &instance.0,
            &params.canonical_bytes(),
            &state_before.canonical_bytes(),
            &input.canonical_bytes(),
        ],
    )
}

/// Re-executes a step from its evidence: checks that the evidence names this deployment,
/// validates the deployment, and steps. Gives the same state and outcome as the original.
pub fn reexecute(
    deployment: &Deployment,
    evidence: &Evidence,
) -> Result<(State, Outcome), ReexecuteError> {
    if deployment.id() != evidence.instance {
        return Err(ReexecuteError::WrongInstance);
    }
    let contract = deployment.validate()?;
    Ok(contract.step(&evidence.state_before, evidence.input.as_input())?)
}

/// Checks an alert's claim (level and evidence digest) by re-execution.
pub fn verify_alert(
    deployment: &Deployment,
    evidence: &Evidence,
    claimed_level: AlertLevel,
    claimed_digest: &Digest,
) -> Result<Outcome, ReexecuteError> {
    if evidence.digest(&deployment.params) != *claimed_digest {
        return Err(ReexecuteError::DigestMismatch);
    }
    let (_, outcome) = reexecute(deployment, evidence)?;
    if outcome.level != claimed_level {
        return Err(ReexecuteError::LevelMismatch {
            claimed: claimed_level,
            actual: outcome.level,
        });
    }
    Ok(outcome)
}

/// Where an alert is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertStatus {
    Raised,
    Acknowledged,
    /// Closed: the level went back to 0.
    Cleared,
    /// Closed by staff.
    Resolved,
    /// Closed: the instance was terminated or replaced.
    Withdrawn,
}

impl AlertStatus {
    pub const fn is_open(self) -> bool {
        matches!(self, AlertStatus::Raised | AlertStatus::Acknowledged)
    }
}

/// An instance's alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub instance: InstanceId,
    /// 1 for the instance's first alert, then counting up.
    pub seq: u64,
    pub level: AlertLevel,
    pub peak: AlertLevel,
    pub audience: Audience,
    pub status: AlertStatus,
    pub raised_ms: TimestampMs,
    pub updated_ms: TimestampMs,
}

/// What happened to an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "change")]
pub enum AlertChange {
    Raised,
    Escalated { from: AlertLevel },
    DeEscalated { from: AlertLevel },
    Cleared,
    Acknowledged,
    Resolved,
    Withdrawn,
}

/// An alert after a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertUpdate {
    #[serde(flatten)]
    pub change: AlertChange,
    pub alert: Alert,
}

/// One instance's result for one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    pub instance: InstanceId,
    pub kind: Kind,
    pub outcome: Result<Outcome, StepError>,
    pub alert: Option<AlertUpdate>,
    /// When the level is above 0 or the alert changed: the evidence to re-execute the step and
    /// its digest.
    pub evidence: Option<(Evidence, Digest)>,
}

/// A terminated instance, as it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terminated {
    pub deployment: Deployment,
    pub state: State,
    /// Its open alert, now withdrawn.
    pub alert: Option<Alert>,
}

struct Entry {
    deployment: Deployment,
    contract: Contract,
    state: State,
    alert: Option<Alert>,
    alerts_raised: u64,
}

/// The deployed instances and their states.
#[derive(Default)]
pub struct Catalog {
    entries: BTreeMap<InstanceId, Entry>,
    by_person: BTreeMap<PersonId, Vec<InstanceId>>,
    now_ms: Option<TimestampMs>,
}

/// Most instances in one catalog, and per person.
pub const INSTANCES_MAX: usize = 1_000_000;
pub const INSTANCES_PER_PERSON_MAX: usize = 64;

impl Catalog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Deploys an instance and returns its address.
    pub fn deploy(&mut self, deployment: Deployment) -> Result<InstanceId, CatalogError> {
        let (id, contract) = self.check_deploy(&deployment, None)?;
        self.insert(id, deployment, contract);
        Ok(id)
    }

    fn check_deploy(
        &self,
        deployment: &Deployment,
        replacing: Option<&InstanceId>,
    ) -> Result<(InstanceId, Contract), CatalogError> {
        let contract = deployment.validate()?;
        let id = deployment.id();
        if self.entries.contains_key(&id) {
            return Err(CatalogError::AlreadyDeployed(id));
        }
        let freed = usize::from(replacing.is_some());
        if self.entries.len() - freed >= INSTANCES_MAX {
            return Err(CatalogError::Full { max: INSTANCES_MAX });
        }
        let held = self.by_person.get(&deployment.person).map_or(0, Vec::len);
        if held - freed >= INSTANCES_PER_PERSON_MAX {
            return Err(CatalogError::Full {
                max: INSTANCES_PER_PERSON_MAX,
            });
        }
        Ok((id, contract))
    }

    fn insert(&mut self, id: InstanceId, deployment: Deployment, contract: Contract) {
        let ids = self.by_person.entry(deployment.person).or_default();
        // Kept sorted so evaluation order is the same everywhere.
        let at = ids.binary_search(&id).unwrap_or_else(|at| at);
        ids.insert(at, id);
        let state = contract.initial_state();
        self.entries.insert(
            id,
            Entry {
                deployment,
                contract,
                state,
                alert: None,
                alerts_raised: 0,
            },
        );
    }

    /// Terminates an instance; no other instance is touched.
    pub fn terminate(&mut self, id: &InstanceId) -> Result<Terminated, CatalogError> {
        let entry = self
            .entries
            .remove(id)
            .ok_or(CatalogError::UnknownInstance(*id))?;
        if let Some(ids) = self.by_person.get_mut(&entry.deployment.person) {
            ids.retain(|i| i != id);
            if ids.is_empty() {
                self.by_person.remove(&entry.deployment.person);
            }
        }
        let alert = entry.alert.map(|mut a| {
            a.status = AlertStatus::Withdrawn;
            a
        });
        Ok(Terminated {
            deployment: entry.deployment,
            state: entry.state,
            alert,
        })
    }

    /// Terminates `old` and deploys `new` for the same person, atomically: if anything is
    /// wrong, neither happens. The new instance starts from its initial state.
    pub fn replace(
        &mut self,
        old: &InstanceId,
        new: Deployment,
    ) -> Result<(InstanceId, Terminated), CatalogError> {
        let entry = self
            .entries
            .get(old)
            .ok_or(CatalogError::UnknownInstance(*old))?;
        if entry.deployment.person != new.person {
            return Err(CatalogError::ReplacementForOtherPerson);
        }
        let (id, contract) = self.check_deploy(&new, Some(old))?;
        let terminated = self.terminate(old)?;
        self.insert(id, new, contract);
        Ok((id, terminated))
    }

    pub fn deployment(&self, id: &InstanceId) -> Option<&Deployment> {
        self.entries.get(id).map(|e| &e.deployment)
    }

    pub fn state(&self, id: &InstanceId) -> Option<&State> {
        self.entries.get(id).map(|e| &e.state)
    }

    pub fn open_alert(&self, id: &InstanceId) -> Option<&Alert> {
        self.entries.get(id).and_then(|e| e.alert.as_ref())
    }

    /// The instances bound to a person, in address order.
    pub fn instances_of(&self, person: &PersonId) -> &[InstanceId] {
        self.by_person.get(person).map_or(&[], Vec::as_slice)
    }

    /// Routes a person's reading to every instance bound to it, in address order.
    pub fn evaluate(&mut self, person: &PersonId, reading: &Reading) -> Vec<Evaluation> {
        let Some(ids) = self.by_person.get(person) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for id in ids {
            let Some(entry) = self.entries.get_mut(id) else {
                continue;
            };
            if !entry.deployment.binds(&entry.contract, reading) {
                continue;
            }
            out.push(step_entry(
                *id,
                entry,
                Input::Reading(reading),
                reading.time_ms,
                true,
            ));
        }
        out
    }

    /// Advances every instance to `now_ms`. Returns the evaluations whose level or alert
    /// changed, or that failed.
    pub fn tick(&mut self, now_ms: TimestampMs) -> Result<Vec<Evaluation>, CatalogError> {
        if let Some(last_ms) = self.now_ms
            && now_ms < last_ms
        {
            return Err(CatalogError::TickBackwards { now_ms, last_ms });
        }
        self.now_ms = Some(now_ms);
        let mut out = Vec::new();
        for (id, entry) in &mut self.entries {
            let evaluation = step_entry(*id, entry, Input::Tick { now_ms }, now_ms, false);
            if evaluation.outcome.is_err() || evaluation.alert.is_some() {
                out.push(evaluation);
            }
        }
        Ok(out)
    }

    /// Staff acknowledge an instance's open alert.
    pub fn acknowledge(
        &mut self,
        id: &InstanceId,
        at_ms: TimestampMs,
    ) -> Result<AlertUpdate, CatalogError> {
        let entry = self
            .entries
            .get_mut(id)
            .ok_or(CatalogError::UnknownInstance(*id))?;
        let alert = entry.alert.as_mut().ok_or(CatalogError::NoOpenAlert(*id))?;
        if alert.status == AlertStatus::Acknowledged {
            return Err(CatalogError::AlreadyAcknowledged(*id));
        }
        alert.status = AlertStatus::Acknowledged;
        alert.updated_ms = at_ms;
        Ok(AlertUpdate {
            change: AlertChange::Acknowledged,
            alert: *alert,
        })
    }

    /// Staff close an instance's open alert.
    pub fn resolve(
        &mut self,
        id: &InstanceId,
        at_ms: TimestampMs,
    ) -> Result<AlertUpdate, CatalogError> {
        let entry = self
            .entries
            .get_mut(id)
            .ok_or(CatalogError::UnknownInstance(*id))?;
        let mut alert = entry.alert.take().ok_or(CatalogError::NoOpenAlert(*id))?;
        alert.status = AlertStatus::Resolved;
        alert.updated_ms = at_ms;
        Ok(AlertUpdate {
            change: AlertChange::Resolved,
            alert,
        })
    }
}

fn step_entry(
    id: InstanceId,
    entry: &mut Entry,
    input: Input<'_>,
    at_ms: TimestampMs,
    always_evidence: bool,
) -> Evaluation {
    let kind = entry.contract.kind();
    let (next, outcome) = match entry.contract.step(&entry.state, input) {
        Ok(stepped) => stepped,
        Err(error) => {
            return Evaluation {
                instance: id,
                kind,
                outcome: Err(error),
                alert: None,
                evidence: None,
            };
        }
    };
    let before = std::mem::replace(&mut entry.state, next);
    let alert = update_alert(id, entry, &outcome, at_ms);
    let evidence =
        (alert.is_some() || (always_evidence && outcome.level > AlertLevel::Ok)).then(|| {
            let evidence = Evidence {
                instance: id,
                state_before: before,
                input: input.to_owned(),
            };
            let digest = evidence.digest(entry.contract.params());
            (evidence, digest)
        });
    Evaluation {
        instance: id,
        kind,
        outcome: Ok(outcome),
        alert,
        evidence,
    }
}

fn update_alert(
    id: InstanceId,
    entry: &mut Entry,
    outcome: &Outcome,
    at_ms: TimestampMs,
) -> Option<AlertUpdate> {
    let level = outcome.level;
    let Some(alert) = entry.alert.as_mut() else {
        if level == AlertLevel::Ok {
            return None;
        }
        entry.alerts_raised = entry.alerts_raised.saturating_add(1);
        let alert = Alert {
            instance: id,
            seq: entry.alerts_raised,
            level,
            peak: level,
            audience: outcome.audience,
            status: AlertStatus::Raised,
            raised_ms: at_ms,
            updated_ms: at_ms,
        };
        entry.alert = Some(alert);
        return Some(AlertUpdate {
            change: AlertChange::Raised,
            alert,
        });
    };
    let from = alert.level;
    let change = if level == AlertLevel::Ok {
        alert.status = AlertStatus::Cleared;
        AlertChange::Cleared
    } else if level > from {
        alert.status = AlertStatus::Raised;
        alert.peak = alert.peak.max(level);
        AlertChange::Escalated { from }
    } else if level < from {
        AlertChange::DeEscalated { from }
    } else {
        return None;
    };
    alert.level = level;
    alert.audience = outcome.audience;
    alert.updated_ms = at_ms;
    let alert = *alert;
    if !alert.status.is_open() {
        entry.alert = None;
    }
    Some(AlertUpdate { change, alert })
}
