//! The node's copy of the contract catalog, kept in step with the ledger's finalized
//! deployments, and the decision of which evaluations become alert transactions.

use std::collections::HashMap;
use std::sync::Arc;

use vigil_contracts::{Catalog, Evaluation, Evidence, InstanceId};
use vigil_core::senml::SignedPack;
use vigil_core::{AlertLevel, Digest, GeoFix, PersonId, TimestampMs, Value};
use vigil_ledger::block::Block;
pub use vigil_ledger::evidence::contract_deployment;
use vigil_ledger::tx::{Deployment as LedgerDeployment, InstanceId as LedgerInstanceId, TxBody};

/// An alert to submit: which ledger instance, what level, when, and the digest of the evidence
/// (the device-signed packs, or for no-signal the gateway's attestation) that re-derives it. The reason stays off the ledger (it names values) and goes only to the
/// operators' live feed.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertDraft {
    pub instance: LedgerInstanceId,
    pub person: PersonId,
    pub level: AlertLevel,
    pub reading_time_ms: TimestampMs,
    pub evidence: Digest,
    /// What re-derives the alert: handed to the validator beside the transaction, never
    /// stored on the ledger (it holds the readings).
    pub evidence_body: Evidence,
    pub reason: serde_json::Value,
}

#[derive(Default)]
pub struct Monitor {
    catalog: Catalog,
    to_contract: HashMap<LedgerInstanceId, InstanceId>,
    to_ledger: HashMap<InstanceId, LedgerInstanceId>,
    /// Each person's latest position fix, as their geofence contracts saw it: what the
    /// operators' map shows. One entry per registered person at most.
    positions: HashMap<PersonId, (TimestampMs, GeoFix)>,
    /// Raises that no held packs re-derive (logged, not submitted), since the last
    /// [`Monitor::take_unsupported`].
    unsupported: u64,
}

impl Monitor {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn instances(&self) -> usize {
        self.catalog.len()
    }

    /// Deploys every instance active in the finalized state (at start-up).
    pub fn load_active(&mut self, state: &vigil_ledger::state::State) {
        for (_, record) in state.instances() {
            if record.active {
                self.deploy(&record.deployment);
            }
        }
    }

    /// Mirrors a finalized block's deployments, terminations and alert closures.
    pub fn apply_finalized(&mut self, block: &Block) {
        for tx in block.txs() {
            match tx.body() {
                TxBody::DeployInstance { deployment } => self.deploy(deployment),
                TxBody::TerminateInstance { instance } => self.terminate(instance),
                TxBody::ReplaceInstance { old, new } => {
                    self.terminate(old);
                    self.deploy(new);
                }
                _ => {}
            }
        }
    }

    fn deploy(&mut self, deployment: &LedgerDeployment) {
        let ledger_id = deployment.instance_id();
        let Some(contract) = contract_deployment(deployment) else {
            tracing::warn!(instance = %ledger_id, "finalized deployment has parameters this node cannot read");
            return;
        };
        match self.catalog.deploy(contract) {
            Ok(id) => {
                self.to_contract.insert(ledger_id, id);
                self.to_ledger.insert(id, ledger_id);
            }
            Err(error) => {
                tracing::warn!(instance = %ledger_id, %error, "finalized deployment refused by the catalog")
            }
        }
    }

    fn terminate(&mut self, instance: &LedgerInstanceId) {
        if let Some(id) = self.to_contract.remove(instance) {
            self.to_ledger.remove(&id);
            let _ = self.catalog.terminate(&id);
        }
    }

    /// A finalized resolution closes the instance's alert in the catalog too, so the next
    /// excursion raises a new one.
    pub fn resolve(&mut self, instance: &LedgerInstanceId, at_ms: TimestampMs) {
        if let Some(id) = self.to_contract.get(instance) {
            let _ = self.catalog.resolve(id, at_ms);
        }
    }

    /// Evaluates a person's new device-signed pack (its readings in order); returns the alerts
    /// to submit, each with the packs that re-derive it.
    pub fn evaluate(&mut self, person: PersonId, pack: &Arc<SignedPack>) -> Vec<AlertDraft> {
        for reading in &pack.readings {
            if let Value::Position(fix) = reading.value {
                let latest = self
                    .positions
                    .entry(person)
                    .or_insert((reading.time_ms, fix));
                if reading.time_ms >= latest.0 {
                    *latest = (reading.time_ms, fix);
                }
            }
        }
        let evaluations = self.catalog.evaluate_pack(&person, pack);
        evaluations
            .into_iter()
            .filter_map(|evaluation| self.draft(person, evaluation))
            .collect()
    }

    /// How many raises no held packs supported since the last call (each was logged).
    pub fn take_unsupported(&mut self) -> u64 {
        std::mem::take(&mut self.unsupported)
    }

    /// Every person's latest position fix and its time.
    pub fn positions(&self) -> &HashMap<PersonId, (TimestampMs, GeoFix)> {
        &self.positions
    }

    /// Advances time-driven contracts (no-signal, durations) to `now_ms`.
    pub fn tick(&mut self, now_ms: TimestampMs) -> Vec<AlertDraft> {
        let evaluations = match self.catalog.tick(now_ms) {
            Ok(evaluations) => evaluations,
            Err(error) => {
                tracing::warn!(%error, "catalog tick refused");
                return Vec::new();
            }
        };
        evaluations
            .into_iter()
            .filter_map(|evaluation| {
                let person = self.catalog.deployment(&evaluation.instance)?.person;
                self.draft(person, evaluation)
            })
            .collect()
    }

    /// The alert transaction of a raise or escalation: the catalog attaches evidence (or why
    /// there is none) to exactly those.
    fn draft(&mut self, person: PersonId, evaluation: Evaluation) -> Option<AlertDraft> {
        let update = evaluation.alert?;
        let outcome = evaluation.outcome.ok()?;
        let instance = *self.to_ledger.get(&evaluation.instance)?;
        let evidence_body: Evidence = match evaluation.evidence? {
            Ok(evidence) => evidence,
            Err(error) => {
                self.unsupported += 1;
                tracing::warn!(%instance, level = ?outcome.level, %error,
                    "alert not submitted: no run of the device's signed packs held re-derives it");
                return None;
            }
        };
        Some(AlertDraft {
            instance,
            person,
            level: outcome.level,
            reading_time_ms: update.alert.updated_ms,
            evidence: evidence_body.digest(),
            evidence_body,
            reason: crate::reason_text::with_text(&outcome.reason),
        })
    }
}
