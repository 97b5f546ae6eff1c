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
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use vigil_core::senml::SignedPack;
use vigil_core::{AlertLevel, PersonId, Reading, TimestampMs};

use crate::contract::{Audience, Contract, Input, Kind, Outcome, State};
pub use crate::deployment::{Deployment, INSTANCE_DOMAIN, InstanceId};
use crate::error::{CatalogError, ReexecuteError, StepError};
use crate::evidence::{Evidence, EvidenceWindow};

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
    /// When the alert was raised or escalated by a signed pack or a tick
    /// ([`Catalog::evaluate_pack`], [`Catalog::tick`]): the evidence a validator re-derives it
    /// from, or why the packs held do not support it. `None` otherwise, and always from
    /// [`Catalog::evaluate`] (a bare reading is no evidence).
    pub evidence: Option<Result<Evidence, ReexecuteError>>,
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
    /// The level its last step left it at: a tick raises only above it (see [`step_entry`]).
    level: AlertLevel,
    /// The signed packs its next alert may need.
    window: EvidenceWindow,
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
                level: AlertLevel::Ok,
                window: EvidenceWindow::default(),
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
            ));
        }
        out
    }

    /// Routes each reading of a device-signed pack, in order, to every instance bound to it, as
    /// [`Catalog::evaluate`] does; an alert raised or escalated carries the evidence that
    /// re-derives it from the instance's held packs (this one included).
    pub fn evaluate_pack(&mut self, person: &PersonId, pack: &Arc<SignedPack>) -> Vec<Evaluation> {
        let Some(ids) = self.by_person.get(person) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (index, reading) in pack.readings.iter().enumerate() {
            if reading.device != pack.device {
                continue;
            }
            for id in ids {
                let Some(entry) = self.entries.get_mut(id) else {
                    continue;
                };
                if !entry.deployment.binds(&entry.contract, reading) {
                    continue;
                }
                entry.window.push(pack);
                let mut evaluation =
                    step_entry(*id, entry, Input::Reading(reading), reading.time_ms);
                if raises(&evaluation) {
                    evaluation.evidence = Some(support(entry, &evaluation, index + 1, None));
                }
                out.push(evaluation);
            }
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
            let mut evaluation = step_entry(*id, entry, Input::Tick { now_ms }, now_ms);
            if raises(&evaluation) {
                evaluation.evidence = Some(if entry.contract.kind() == Kind::NoSignal {
                    Ok(Evidence::Attested {
                        instance: *id,
                        now_ms,
                    })
                } else {
                    let cut = entry.window.newest_len();
                    support(entry, &evaluation, cut, Some(now_ms))
                });
            }
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

/// Whether an evaluation raised or escalated its alert: what becomes an alert transaction.
fn raises(evaluation: &Evaluation) -> bool {
    evaluation.alert.as_ref().is_some_and(|update| {
        matches!(
            update.change,
            AlertChange::Raised | AlertChange::Escalated { .. }
        )
    })
}

/// The evidence for a raise from the entry's held packs.
fn support(
    entry: &Entry,
    evaluation: &Evaluation,
    cut: usize,
    tick_ms: Option<TimestampMs>,
) -> Result<Evidence, ReexecuteError> {
    let (Some(update), Some(device)) = (&evaluation.alert, &entry.deployment.device) else {
        return Err(ReexecuteError::NoBoundDevice);
    };
    entry
        .window
        .support(
            evaluation.instance,
            &entry.contract,
            device,
            (cut, tick_ms),
            (update.alert.level, update.alert.updated_ms),
        )
        .ok_or(ReexecuteError::Unsupported {
            held: entry.window.len(),
        })
}

fn step_entry(
    id: InstanceId,
    entry: &mut Entry,
    input: Input<'_>,
    at_ms: TimestampMs,
) -> Evaluation {
    let kind = entry.contract.kind();
    // A reading may open an alert at any level it reaches (after a resolution, an excursion
    // that goes on raises anew). A tick brings no new data: it may open one only where time
    // itself raised the level (silence, a duration); otherwise resolving an alert whose last
    // reading is still out of range re-raised it at the next tick, stamped with a time no
    // reading has, and the excursion's next reading found it open.
    let may_open = match input {
        Input::Reading(_) => true,
        Input::Tick { .. } => false,
    };
    let before = entry.level;
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
    entry.state = next;
    entry.level = outcome.level;
    let may_open = may_open || outcome.level > before;
    let alert = update_alert(id, entry, &outcome, at_ms, may_open);
    Evaluation {
        instance: id,
        kind,
        outcome: Ok(outcome),
        alert,
        evidence: None,
    }
}

fn update_alert(
    id: InstanceId,
    entry: &mut Entry,
    outcome: &Outcome,
    at_ms: TimestampMs,
    may_open: bool,
) -> Option<AlertUpdate> {
    let level = outcome.level;
    let Some(alert) = entry.alert.as_mut() else {
        if level == AlertLevel::Ok || !may_open {
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
