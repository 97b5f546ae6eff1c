//! Alert evidence: what lets any validator re-derive an alert from its device's own signed
//! readings, so that no gateway can invent one.
//!
//! An alert raised by readings is backed by [`Evidence::DeviceSigned`]: packs of the instance's
//! device, signed with its enrolled key, oldest first. A validator re-runs the contract over
//! their readings from the instance's *initial* state ([`rederive`]); nothing the submitter
//! declares about the state enters the computation. Only a no-signal alert, which no reading
//! can support (silence cannot be signed), is [`Evidence::Attested`]: the gateway's word that
//! its device was silent, recorded as such.
//!
//! What this checks and what it cannot (ARCHITECTURE.md, "Alert evidence"): every reading was
//! signed by the bound device, the packs are in the device's sequence order, and the contract
//! over exactly those readings reaches the claimed level at the claimed time. It cannot know of
//! packs the gateway does not show: a subsequence of genuine packs is evidence too. The window
//! is bounded ([`EVIDENCE_PACKS_MAX`]), so a condition that only a longer history supports is
//! not submitted (the node logs and counts it) rather than claimed.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use vigil_core::senml::SignedPack;
use vigil_core::{AlertLevel, Digest, TimestampMs};

use crate::canon::{Canonical, Encoder};
use crate::contract::{Contract, Input, Kind, Outcome};
use crate::deployment::{Deployment, InstanceId};
use crate::error::ReexecuteError;

/// Domain separator of the evidence digest an alert transaction carries.
pub const EVIDENCE_DOMAIN: &str = "vigil.contracts.evidence.v2";
/// Most packs one alert's evidence carries, and a node holds per instance to build it from.
pub const EVIDENCE_PACKS_MAX: usize = 64;

/// What backs an alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "basis", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Evidence {
    /// Packs its device signed, oldest first; the step stopped after the first
    /// `last_pack_readings` readings of the last pack (the alert was raised by the last of
    /// them), then at `tick_ms` when the passing of time raised it.
    DeviceSigned {
        instance: InstanceId,
        packs: Vec<SignedPack>,
        last_pack_readings: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tick_ms: Option<TimestampMs>,
    },
    /// A no-signal alert: the gateway attests that its device was silent until `now_ms`.
    Attested {
        instance: InstanceId,
        now_ms: TimestampMs,
    },
}

/// What a validator learned from evidence that holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Basis {
    /// The device's readings give this outcome at `time_ms`.
    DeviceSigned {
        outcome: Outcome,
        time_ms: TimestampMs,
    },
    /// The gateway's word, for a no-signal alert at `time_ms`.
    Attested { time_ms: TimestampMs },
}

impl Evidence {
    pub fn instance(&self) -> &InstanceId {
        match self {
            Evidence::DeviceSigned { instance, .. } | Evidence::Attested { instance, .. } => {
                instance
            }
        }
    }

    /// The signed packs it carries (none for an attestation).
    pub fn packs(&self) -> &[SignedPack] {
        match self {
            Evidence::DeviceSigned { packs, .. } => packs,
            Evidence::Attested { .. } => &[],
        }
    }

    /// The digest an alert transaction carries: over the instance, each pack's signed bytes and
    /// signature, and where the step stopped. Two different evidences never share one.
    pub fn digest(&self) -> Digest {
        vigil_core::digest(EVIDENCE_DOMAIN, &[&self.canonical_bytes()])
    }
}

impl Canonical for Evidence {
    fn encode(&self, e: &mut Encoder) {
        match self {
            Evidence::DeviceSigned {
                instance,
                packs,
                last_pack_readings,
                tick_ms,
            } => {
                e.u8(1).bytes(&instance.0).len(packs.len());
                for pack in packs {
                    e.bytes(&pack.signed_message()).bytes(&pack.signature);
                }
                e.u32(*last_pack_readings).opt(*tick_ms, |e, t| {
                    e.i64(t);
                });
            }
            Evidence::Attested { instance, now_ms } => {
                e.u8(2).bytes(&instance.0).i64(*now_ms);
            }
        }
    }
}

/// Re-derives what the evidence supports for `deployment`: checks that it names the
/// deployment, that an attestation is for no-signal only, that the packs are the bound
/// device's, in increasing sequence order and within bounds, then runs the contract over their
/// readings from its initial state. Signatures are the caller's to check (it holds the
/// enrolled key): [`SignedPack::signed_by`].
pub fn rederive(deployment: &Deployment, evidence: &Evidence) -> Result<Basis, ReexecuteError> {
    if deployment.id() != *evidence.instance() {
        return Err(ReexecuteError::WrongInstance);
    }
    let contract = deployment.validate()?;
    match evidence {
        Evidence::Attested { now_ms, .. } => {
            if contract.kind() != Kind::NoSignal {
                return Err(ReexecuteError::AttestationNotAllowed {
                    kind: contract.kind().name(),
                });
            }
            Ok(Basis::Attested { time_ms: *now_ms })
        }
        Evidence::DeviceSigned {
            packs,
            last_pack_readings,
            tick_ms,
            ..
        } => {
            if contract.kind() == Kind::NoSignal {
                return Err(ReexecuteError::NoSignalIsAttested);
            }
            let device = deployment
                .device
                .as_ref()
                .ok_or(ReexecuteError::NoBoundDevice)?;
            let packs: Vec<&SignedPack> = packs.iter().collect();
            derive_over(
                &contract,
                device,
                &packs,
                *last_pack_readings as usize,
                *tick_ms,
            )
        }
    }
}

/// The contract over `packs` (the last cut after `cut` readings), from its initial state.
fn derive_over(
    contract: &Contract,
    device: &vigil_core::DeviceId,
    packs: &[&SignedPack],
    cut: usize,
    tick_ms: Option<TimestampMs>,
) -> Result<Basis, ReexecuteError> {
    let Some(last) = packs.last() else {
        return Err(ReexecuteError::NoPacks);
    };
    if packs.len() > EVIDENCE_PACKS_MAX {
        return Err(ReexecuteError::TooManyPacks {
            count: packs.len(),
            max: EVIDENCE_PACKS_MAX,
        });
    }
    if cut == 0 || cut > last.readings.len() {
        return Err(ReexecuteError::BadCut);
    }
    for (index, pack) in packs.iter().enumerate() {
        if pack.device != *device {
            return Err(ReexecuteError::OtherDevice { pack: index });
        }
        if index > 0 && pack.sequence <= packs[index - 1].sequence {
            return Err(ReexecuteError::NotIncreasing { pack: index });
        }
    }
    if tick_ms.is_none() && !contract.accepts(last.readings[cut - 1].metric) {
        return Err(ReexecuteError::EndsOnUnboundReading);
    }
    let mut state = contract.initial_state();
    let mut derived: Option<(Outcome, TimestampMs)> = None;
    for (index, pack) in packs.iter().enumerate() {
        let readings = if index + 1 == packs.len() {
            &pack.readings[..cut]
        } else {
            &pack.readings[..]
        };
        for reading in readings {
            if reading.device != *device {
                return Err(ReexecuteError::OtherDevice { pack: index });
            }
            if !contract.accepts(reading.metric) {
                continue;
            }
            let outcome = contract.step_mut(&mut state, Input::Reading(reading))?;
            derived = Some((outcome, reading.time_ms));
        }
    }
    let (mut outcome, mut time_ms) = derived.ok_or(ReexecuteError::NoPacks)?;
    if let Some(now_ms) = tick_ms {
        if now_ms < time_ms {
            return Err(ReexecuteError::TickBeforeReading);
        }
        outcome = contract.step_mut(&mut state, Input::Tick { now_ms })?;
        time_ms = now_ms;
    }
    Ok(Basis::DeviceSigned { outcome, time_ms })
}

/// Checks an alert's claim (evidence digest, level and reading time) by re-derivation. For an
/// attestation only the digest and the time can be checked.
pub fn verify_alert(
    deployment: &Deployment,
    evidence: &Evidence,
    claimed_level: AlertLevel,
    claimed_time_ms: TimestampMs,
    claimed_digest: &Digest,
) -> Result<Basis, ReexecuteError> {
    if evidence.digest() != *claimed_digest {
        return Err(ReexecuteError::DigestMismatch);
    }
    let basis = rederive(deployment, evidence)?;
    let (level, time_ms) = match &basis {
        Basis::DeviceSigned { outcome, time_ms } => (Some(outcome.level), *time_ms),
        Basis::Attested { time_ms } => (None, *time_ms),
    };
    if let Some(actual) = level
        && actual != claimed_level
    {
        return Err(ReexecuteError::LevelMismatch {
            claimed: claimed_level,
            actual,
        });
    }
    if time_ms != claimed_time_ms {
        return Err(ReexecuteError::TimeMismatch {
            claimed: claimed_time_ms,
            actual: time_ms,
        });
    }
    Ok(basis)
}

/// The packs an instance's alerts may need, newest last, at most [`EVIDENCE_PACKS_MAX`]: what a
/// node keeps per instance to build evidence from (shared with every instance of the device).
#[derive(Clone, Debug, Default)]
pub struct EvidenceWindow {
    packs: VecDeque<Arc<SignedPack>>,
}

impl EvidenceWindow {
    pub fn len(&self) -> usize {
        self.packs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packs.is_empty()
    }

    /// How many readings the newest held pack has (0 when none is held).
    pub fn newest_len(&self) -> usize {
        self.packs.back().map_or(0, |p| p.readings.len())
    }

    /// Holds `pack` unless it is already the newest; the oldest goes beyond the bound.
    pub fn push(&mut self, pack: &Arc<SignedPack>) {
        if self.packs.back().is_some_and(|p| Arc::ptr_eq(p, pack)) {
            return;
        }
        if self.packs.len() == EVIDENCE_PACKS_MAX {
            self.packs.pop_front();
        }
        self.packs.push_back(pack.clone());
    }

    /// The shortest run of the newest held packs (ending after `cut` readings of the newest,
    /// then at `tick_ms` if given) that re-derives the claimed `level` at `time_ms`: the
    /// evidence a validator will accept. `None` when no held run supports it.
    pub fn support(
        &self,
        instance: InstanceId,
        contract: &Contract,
        device: &vigil_core::DeviceId,
        (cut, tick_ms): (usize, Option<TimestampMs>),
        (level, time_ms): (AlertLevel, TimestampMs),
    ) -> Option<Evidence> {
        let held: Vec<&SignedPack> = self.packs.iter().map(|p| p.as_ref()).collect();
        (1..=held.len()).find_map(|n| {
            let run = &held[held.len() - n..];
            match derive_over(contract, device, run, cut, tick_ms) {
                Ok(Basis::DeviceSigned {
                    outcome,
                    time_ms: t,
                }) if outcome.level == level && t == time_ms => Some(Evidence::DeviceSigned {
                    instance,
                    packs: run.iter().map(|p| (*p).clone()).collect(),
                    last_pack_readings: u32::try_from(cut).ok()?,
                    tick_ms,
                }),
                _ => None,
            }
        })
    }
}
