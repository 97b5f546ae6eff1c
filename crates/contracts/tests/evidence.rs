//! Alert evidence: what the catalog attaches to a raise is exactly what re-derives it, from the
//! device's signed packs and the instance's initial state; every way of bending it is refused.

use std::sync::Arc;

use vigil_contracts::{
    Basis, Catalog, Deployment, EVIDENCE_PACKS_MAX, Evaluation, Evidence, NoSignalParams, Params,
    ReexecuteError, ThresholdParams, rederive, verify_alert,
};
use vigil_core::senml::{PackDraft, SignedPack};
use vigil_core::{AlertLevel, DeviceId, DeviceKey, Metric, PersonId, Value};

const T0: i64 = 1_700_000_000_000;

fn person() -> PersonId {
    PersonId::from_bytes([1; 16])
}

fn thermo() -> DeviceId {
    "thermo-1".parse().expect("valid")
}

/// 36.00–37.50 °C, one degree of warning each side, raised after `repeat` readings.
fn fever(repeat: u32) -> Deployment {
    let mut params = ThresholdParams::seed(Metric::BodyTemperature, 3600, 3750, 100);
    params.repeat = repeat;
    Deployment {
        person: person(),
        device: Some(thermo()),
        nonce: 0,
        params: Params::Threshold(params),
    }
}

struct Thermometer {
    device: DeviceId,
    key: DeviceKey,
    sequence: u64,
}

impl Thermometer {
    fn new(device: DeviceId, seed: u8) -> Self {
        Self {
            device,
            key: DeviceKey::from_seed([seed; 32]),
            sequence: 0,
        }
    }

    fn pack(&mut self, readings: &[(i64, i32)]) -> Arc<SignedPack> {
        self.sequence += 1;
        let mut draft = PackDraft::new(self.device.clone(), self.sequence);
        for (time_ms, centi) in readings {
            draft.push(Metric::BodyTemperature, *time_ms, Value::Scalar(*centi));
        }
        Arc::new(draft.sign(&self.key))
    }
}

/// The only evaluation of one pack for the one instance of the catalog.
fn evaluate(catalog: &mut Catalog, pack: &Arc<SignedPack>) -> Evaluation {
    let mut out = catalog.evaluate_pack(&person(), pack);
    assert_eq!(out.len(), pack.readings.len());
    out.pop().expect("one evaluation")
}

fn raised_evidence(evaluation: Evaluation) -> Evidence {
    evaluation
        .evidence
        .expect("a raise carries evidence")
        .expect("the held packs support it")
}

#[test]
fn a_raise_carries_the_packs_that_re_derive_it_and_nothing_else_passes() {
    let deployment = fever(1);
    let mut catalog = Catalog::new();
    catalog.deploy(deployment.clone()).expect("deploy");
    let mut thermo = Thermometer::new(thermo(), 3);
    assert!(
        evaluate(&mut catalog, &thermo.pack(&[(T0, 3700)]))
            .evidence
            .is_none()
    );
    let evidence = raised_evidence(evaluate(&mut catalog, &thermo.pack(&[(T0 + 1, 3800)])));
    // The shortest run: the raising pack alone, signed by the device.
    assert_eq!(evidence.packs().len(), 1);
    assert!(evidence.packs()[0].signed_by(&thermo.key.public()));
    let digest = evidence.digest();
    assert!(matches!(
        verify_alert(&deployment, &evidence, AlertLevel::Warning, T0 + 1, &digest),
        Ok(Basis::DeviceSigned { .. })
    ));
    assert_eq!(
        verify_alert(
            &deployment,
            &evidence,
            AlertLevel::Critical,
            T0 + 1,
            &digest
        ),
        Err(ReexecuteError::LevelMismatch {
            claimed: AlertLevel::Critical,
            actual: AlertLevel::Warning
        })
    );
    assert_eq!(
        verify_alert(
            &deployment,
            &evidence,
            AlertLevel::Warning,
            T0 + 60_000,
            &digest
        ),
        Err(ReexecuteError::TimeMismatch {
            claimed: T0 + 60_000,
            actual: T0 + 1
        })
    );
    // A reading changed after signing changes the digest (and breaks the signature).
    let mut tampered = evidence.clone();
    if let Evidence::DeviceSigned { packs, .. } = &mut tampered {
        packs[0].readings[0].value = Value::Scalar(3900);
        assert!(!packs[0].signed_by(&thermo.key.public()));
    }
    assert_eq!(
        verify_alert(
            &deployment,
            &tampered,
            AlertLevel::Critical,
            T0 + 1,
            &digest
        ),
        Err(ReexecuteError::DigestMismatch)
    );
    // Another instance's deployment.
    let mut other = fever(1);
    other.nonce = 1;
    assert_eq!(
        rederive(&other, &evidence),
        Err(ReexecuteError::WrongInstance)
    );
    // Evidence travels as JSON and comes back identical.
    let text = serde_json::to_string(&evidence).expect("serialize");
    let back: Evidence = serde_json::from_str(&text).expect("deserialize");
    assert_eq!(back.digest(), digest);
}

#[test]
fn a_repeat_condition_needs_every_pack_of_its_streak() {
    let deployment = fever(3);
    let mut catalog = Catalog::new();
    catalog.deploy(deployment.clone()).expect("deploy");
    let mut thermo = Thermometer::new(thermo(), 3);
    for i in 0..2 {
        let pack = thermo.pack(&[(T0 + i, 3800)]);
        assert!(evaluate(&mut catalog, &pack).alert.is_none(), "reading {i}");
    }
    let evidence = raised_evidence(evaluate(&mut catalog, &thermo.pack(&[(T0 + 2, 3800)])));
    assert_eq!(evidence.packs().len(), 3, "the whole streak");
    let claim =
        |e: &Evidence| verify_alert(&deployment, e, AlertLevel::Warning, T0 + 2, &e.digest());
    assert!(claim(&evidence).is_ok());
    // Two packs of the streak, or the last one repeated, do not re-derive the level.
    let Evidence::DeviceSigned {
        instance, packs, ..
    } = evidence.clone()
    else {
        panic!("device-signed");
    };
    let with = |packs: Vec<SignedPack>| Evidence::DeviceSigned {
        instance,
        packs,
        last_pack_readings: 1,
        tick_ms: None,
    };
    assert!(matches!(
        claim(&with(packs[1..].to_vec())),
        Err(ReexecuteError::LevelMismatch {
            actual: AlertLevel::Ok,
            ..
        })
    ));
    assert_eq!(
        claim(&with(vec![
            packs[2].clone(),
            packs[2].clone(),
            packs[2].clone()
        ])),
        Err(ReexecuteError::NotIncreasing { pack: 1 })
    );
    assert_eq!(
        claim(&with(vec![packs[2].clone(); EVIDENCE_PACKS_MAX + 1])),
        Err(ReexecuteError::TooManyPacks {
            count: EVIDENCE_PACKS_MAX + 1,
            max: EVIDENCE_PACKS_MAX
        })
    );
    // A normal reading clears the alert; the next streak's evidence begins after it.
    let normal = thermo.pack(&[(T0 + 3, 3700)]);
    evaluate(&mut catalog, &normal);
    assert!(catalog.open_alert(&deployment.id()).is_none(), "cleared");
    for i in 4..6 {
        assert!(
            evaluate(&mut catalog, &thermo.pack(&[(T0 + i, 3800)]))
                .alert
                .is_none()
        );
    }
    let again = raised_evidence(evaluate(&mut catalog, &thermo.pack(&[(T0 + 6, 3800)])));
    assert_eq!(again.packs().len(), 3);
    assert!(again.packs().iter().all(|p| p.sequence > normal.sequence));
}

#[test]
fn the_cut_inside_a_pack_is_the_raising_reading() {
    let deployment = fever(1);
    let mut catalog = Catalog::new();
    catalog.deploy(deployment.clone()).expect("deploy");
    let mut thermo = Thermometer::new(thermo(), 3);
    // One pack: normal, warning, critical. The warning raises at reading 2, the critical
    // escalates at reading 3; each evidence is cut at its own reading.
    let pack = thermo.pack(&[(T0, 3700), (T0 + 1, 3800), (T0 + 2, 3900)]);
    let evaluations = catalog.evaluate_pack(&person(), &pack);
    let cuts: Vec<(AlertLevel, u32)> = evaluations
        .into_iter()
        .filter_map(|e| {
            let level = e.alert?.alert.level;
            match e.evidence? {
                Ok(Evidence::DeviceSigned {
                    last_pack_readings, ..
                }) => Some((level, last_pack_readings)),
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert_eq!(
        cuts,
        vec![(AlertLevel::Warning, 2), (AlertLevel::Critical, 3)]
    );
}

#[test]
fn packs_from_another_device_and_attestations_are_refused() {
    let deployment = fever(1);
    let mut catalog = Catalog::new();
    catalog.deploy(deployment.clone()).expect("deploy");
    // Another device's genuine pack is not the bound device's reading.
    let mut other = Thermometer::new("thermo-2".parse().expect("valid"), 4);
    let foreign = Evidence::DeviceSigned {
        instance: deployment.id(),
        packs: vec![other.pack(&[(T0, 3900)]).as_ref().clone()],
        last_pack_readings: 1,
        tick_ms: None,
    };
    assert_eq!(
        rederive(&deployment, &foreign),
        Err(ReexecuteError::OtherDevice { pack: 0 })
    );
    // A threshold alert cannot rest on the gateway's word.
    let attested = Evidence::Attested {
        instance: deployment.id(),
        now_ms: T0,
    };
    assert_eq!(
        rederive(&deployment, &attested),
        Err(ReexecuteError::AttestationNotAllowed { kind: "threshold" })
    );
    // The old form, a state and an input the submitter declared, no longer decodes.
    let declared = serde_json::json!({
        "instance": deployment.id().to_string(),
        "state_before": {"kind": "threshold"},
        "input": {"reading": {}},
    });
    assert!(serde_json::from_value::<Evidence>(declared).is_err());
}

#[test]
fn a_silent_device_is_attested_and_only_for_no_signal() {
    let deployment = Deployment {
        person: person(),
        device: Some(thermo()),
        nonce: 0,
        params: Params::NoSignal(NoSignalParams {
            interval_ms: 60_000,
            grace_ms: 60_000,
        }),
    };
    let mut catalog = Catalog::new();
    catalog.deploy(deployment.clone()).expect("deploy");
    let mut thermo = Thermometer::new(thermo(), 3);
    evaluate(&mut catalog, &thermo.pack(&[(T0, 3700)]));
    let raised = catalog.tick(T0 + 90_000).expect("forward");
    let evidence = raised
        .into_iter()
        .find_map(|e| e.evidence)
        .expect("a reminder is raised")
        .expect("attested");
    assert_eq!(
        evidence,
        Evidence::Attested {
            instance: deployment.id(),
            now_ms: T0 + 90_000
        }
    );
    assert_eq!(
        verify_alert(
            &deployment,
            &evidence,
            AlertLevel::Warning,
            T0 + 90_000,
            &evidence.digest()
        ),
        Ok(Basis::Attested {
            time_ms: T0 + 90_000
        })
    );
    // Readings cannot back a no-signal alert.
    let signed = Evidence::DeviceSigned {
        instance: deployment.id(),
        packs: vec![thermo.pack(&[(T0 + 1, 3700)]).as_ref().clone()],
        last_pack_readings: 1,
        tick_ms: None,
    };
    assert_eq!(
        rederive(&deployment, &signed),
        Err(ReexecuteError::NoSignalIsAttested)
    );
}
