//! Determinism: the same inputs give the same outputs, every alert the catalog raises from
//! signed packs carries evidence that re-derives it, and no input panics.

use proptest::prelude::*;
use vigil_contracts::{
    Catalog, Circle, Deployment, GeofenceParams, HeartRhythmParams, Input, IrregularityMethod,
    IrregularityParams, News2Params, NoSignalParams, Params, ThresholdParams, ZoneRule, ZoneSpec,
    verify_alert,
};
use vigil_core::senml::PackDraft;
use vigil_core::{AlertLevel, DeviceKey, GeoFix, Metric, PersonId, Reading, Value};

fn person() -> PersonId {
    PersonId::from_bytes([7; 16])
}

fn deployments() -> Vec<Deployment> {
    let deploy = |params, device: Option<&str>| Deployment {
        person: person(),
        device: device.map(|d| d.parse().expect("valid")),
        nonce: 0,
        params,
    };
    vec![
        deploy(
            Params::Threshold(ThresholdParams {
                for_ms: 2_000,
                repeat: 2,
                hysteresis: 20,
                ..ThresholdParams::seed(Metric::BodyTemperature, 3600, 3750, 100)
            }),
            None,
        ),
        deploy(
            Params::News2(News2Params {
                spo2_scale: 2,
                freshness_ms: 30_000,
                low_score_level: AlertLevel::Warning,
            }),
            None,
        ),
        deploy(
            Params::Geofence(GeofenceParams {
                zones: vec![
                    ZoneSpec::circle(
                        "home",
                        ZoneRule::KeepInside,
                        Circle {
                            lat_udeg: 0,
                            lon_udeg: 0,
                            radius_m: 200,
                        },
                    ),
                    ZoneSpec::polygon(
                        "park",
                        ZoneRule::KeepOutside,
                        vec![
                            [1000, 1000],
                            [1000, 3000],
                            [2000, 3500],
                            [3000, 3000],
                            [2000, 2000],
                            [3000, 1000],
                        ],
                    ),
                ],
                dwell_ms: 3_000,
                margin_m: 2,
                accuracy_max_m: 300,
            }),
            None,
        ),
        deploy(
            Params::NoSignal(NoSignalParams {
                interval_ms: 20_000,
                grace_ms: 30_000,
            }),
            Some("dev-1"),
        ),
        deploy(
            Params::HeartRhythm(HeartRhythmParams {
                rate: Some(ThresholdParams::seed(Metric::HeartRate, 500, 1000, 100)),
                irregularity: Some(IrregularityParams {
                    window: 8,
                    delta_ms: 80,
                    irregular_permille: 400,
                    level: AlertLevel::Critical,
                    max_gap_ms: 4_000,
                    method: IrregularityMethod::Pnn,
                }),
            }),
            None,
        ),
    ]
}

#[derive(Clone, Debug)]
enum Step {
    Reading {
        device: u8,
        metric: u8,
        value: i32,
        fix: GeoFix,
        dt: i64,
    },
    Tick {
        dt: i64,
    },
}

fn arb_step() -> impl Strategy<Value = Step> {
    let value = prop_oneof![0i32..5_000, any::<i32>()];
    let fix = (
        prop_oneof![-6_000i32..6_000, any::<i32>()],
        -2_000i32..6_000,
        prop_oneof![0u32..100, any::<u32>()],
    )
        .prop_map(|(lat_udeg, lon_udeg, accuracy_m)| GeoFix {
            lat_udeg,
            lon_udeg,
            accuracy_m,
        });
    prop_oneof![
        8 => (0u8..2, 0u8..9, value, fix, -500i64..5_000)
            .prop_map(|(device, metric, value, fix, dt)| Step::Reading { device, metric, value, fix, dt }),
        1 => (-1_000i64..40_000).prop_map(|dt| Step::Tick { dt }),
    ]
}

/// Runs the steps through a catalog; returns a transcript of everything observable.
fn run(steps: &[Step], check_evidence: bool) -> Vec<String> {
    let deployments = deployments();
    let mut catalog = Catalog::new();
    for d in &deployments {
        catalog.deploy(d.clone()).expect("deploy");
    }
    let mut t: i64 = 1_700_000_000_000;
    let mut transcript = Vec::new();
    let keys = [DeviceKey::from_seed([1; 32]), DeviceKey::from_seed([2; 32])];
    let mut sequence = 0u64;
    for step in steps {
        match *step {
            Step::Reading {
                device,
                metric,
                value,
                fix,
                dt,
            } => {
                t += dt;
                let metric = Metric::ALL[usize::from(metric)];
                let key = &keys[usize::from(device)];
                let reading = Reading {
                    device: if device == 0 { "dev-1" } else { "dev-2" }
                        .parse()
                        .expect("valid"),
                    metric,
                    time_ms: t,
                    value: if metric == Metric::Position {
                        Value::Position(fix)
                    } else {
                        Value::Scalar(value)
                    },
                };
                sequence += 1;
                let mut draft = PackDraft::new(reading.device.clone(), sequence);
                draft.push(reading.metric, reading.time_ms, reading.value);
                let pack = std::sync::Arc::new(draft.sign(key));
                for e in catalog.evaluate_pack(&person(), &pack) {
                    if check_evidence && let Some(Ok(evidence)) = &e.evidence {
                        let deployment = catalog.deployment(&e.instance).expect("deployed");
                        let alert = e.alert.expect("evidence only for a raise");
                        verify_alert(
                            deployment,
                            evidence,
                            alert.alert.level,
                            alert.alert.updated_ms,
                            &evidence.digest(),
                        )
                        .expect("the catalog's evidence re-derives its alert");
                        assert!(evidence.packs().iter().all(|p| p.signed_by(&key.public())));
                    }
                    transcript.push(format!("{e:?}"));
                }
            }
            Step::Tick { dt } => {
                t += dt;
                transcript.push(format!("{:?}", catalog.tick(t)));
            }
        }
    }
    for d in &deployments {
        transcript.push(format!(
            "{:?} {:?}",
            catalog.state(&d.id()),
            catalog.open_alert(&d.id())
        ));
    }
    transcript
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn same_inputs_same_outputs_and_evidence_re_executes(steps in prop::collection::vec(arb_step(), 0..120)) {
        let first = run(&steps, true);
        let second = run(&steps, false);
        prop_assert_eq!(first, second);
    }

    #[test]
    fn every_step_re_executes_from_state_and_input(steps in prop::collection::vec(arb_step(), 0..80)) {
        for deployment in deployments() {
            let contract = deployment.validate().expect("valid");
            let mut state = contract.initial_state();
            let mut t: i64 = 0;
            for step in &steps {
                let reading;
                let input = match *step {
                    Step::Reading { metric, value, fix, dt, .. } => {
                        t += dt;
                        let metric = Metric::ALL[usize::from(metric)];
                        reading = Reading {
                            device: "dev-1".parse().expect("valid"),
                            metric,
                            time_ms: t,
                            value: if metric == Metric::Position { Value::Position(fix) } else { Value::Scalar(value) },
                        };
                        Input::Reading(&reading)
                    }
                    Step::Tick { dt } => {
                        t += dt;
                        Input::Tick { now_ms: t }
                    }
                };
                let first = contract.step(&state, input);
                let again = deployment.validate().expect("valid").step(&state, input);
                prop_assert_eq!(&first, &again);
                let mut scratch = state.clone();
                let in_place = contract.step_mut(&mut scratch, input);
                if let Ok((next, outcome)) = first {
                    prop_assert_eq!(in_place, Ok(outcome));
                    prop_assert_eq!(&scratch, &next);
                    state = next;
                }
            }
        }
    }

    #[test]
    fn no_input_panics(
        values in prop::collection::vec((0u8..9, any::<i32>(), any::<i64>(), any::<GeoFixProxy>()), 0..60)
    ) {
        for deployment in deployments() {
            let contract = deployment.validate().expect("valid");
            let mut state = contract.initial_state();
            for (metric, value, time_ms, fix) in &values {
                let metric = Metric::ALL[usize::from(*metric)];
                let reading = Reading {
                    device: "dev-1".parse().expect("valid"),
                    metric,
                    time_ms: *time_ms,
                    value: if metric == Metric::Position { Value::Position(fix.0) } else { Value::Scalar(*value) },
                };
                if let Ok((next, _)) = contract.step(&state, Input::Reading(&reading)) {
                    state = next;
                }
                if let Ok((next, _)) = contract.step(&state, Input::Tick { now_ms: *time_ms }) {
                    state = next;
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct GeoFixProxy(GeoFix);

impl Arbitrary for GeoFixProxy {
    type Parameters = ();
    type Strategy = BoxedStrategy<Self>;
    fn arbitrary_with(_: ()) -> Self::Strategy {
        (any::<i32>(), any::<i32>(), any::<u32>())
            .prop_map(|(lat_udeg, lon_udeg, accuracy_m)| {
                GeoFixProxy(GeoFix {
                    lat_udeg,
                    lon_udeg,
                    accuracy_m,
                })
            })
            .boxed()
    }
}
