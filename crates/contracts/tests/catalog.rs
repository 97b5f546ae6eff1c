//! Catalog: deploy / terminate / replace isolation, routing, alert lifecycle (evidence is in
//! tests/evidence.rs).

use vigil_contracts::{
    AlertChange, AlertStatus, Catalog, CatalogError, Circle, Deployment, Evaluation,
    GeofenceParams, InstanceId, NoSignalParams, Params, State, ThresholdParams, ZoneRule, ZoneSpec,
};
use vigil_core::{AlertLevel, DeviceId, GeoFix, Metric, PersonId, Reading, Value};

fn person(n: u8) -> PersonId {
    PersonId::from_bytes([n; 16])
}

fn device(name: &str) -> DeviceId {
    name.parse().expect("valid")
}

fn temperature(person: PersonId, nonce: u64) -> Deployment {
    Deployment {
        person,
        device: None,
        nonce,
        params: Params::Threshold(ThresholdParams::seed(
            Metric::BodyTemperature,
            3600,
            3750,
            100,
        )),
    }
}

fn geofence(person: PersonId) -> Deployment {
    Deployment {
        person,
        device: None,
        nonce: 0,
        params: Params::Geofence(GeofenceParams {
            zones: vec![ZoneSpec::circle(
                "home",
                ZoneRule::KeepInside,
                Circle {
                    lat_udeg: 0,
                    lon_udeg: 0,
                    radius_m: 100,
                },
            )],
            dwell_ms: 0,
            margin_m: 0,
            accuracy_max_m: 1_000,
        }),
    }
}

fn temp(time_ms: i64, value: i32) -> Reading {
    Reading {
        device: device("thermo-1"),
        metric: Metric::BodyTemperature,
        time_ms,
        value: Value::Scalar(value),
    }
}

fn fix(time_ms: i64, lat_udeg: i32) -> Reading {
    Reading {
        device: device("phone-1"),
        metric: Metric::Position,
        time_ms,
        value: Value::Position(GeoFix {
            lat_udeg,
            lon_udeg: 0,
            accuracy_m: 0,
        }),
    }
}

fn levels(evaluations: &[Evaluation]) -> Vec<(InstanceId, u8)> {
    evaluations
        .iter()
        .map(|e| (e.instance, e.outcome.as_ref().expect("step").level.code()))
        .collect()
}

#[test]
fn ids_are_content_addresses_with_a_nonce() {
    let a = temperature(person(1), 0);
    assert_eq!(a.id(), a.clone().id());
    assert_ne!(a.id(), temperature(person(1), 1).id());
    assert_ne!(a.id(), temperature(person(2), 0).id());
    let mut catalog = Catalog::new();
    let id = catalog.deploy(a.clone()).expect("deploy");
    assert_eq!(catalog.deploy(a), Err(CatalogError::AlreadyDeployed(id)));
    catalog
        .deploy(temperature(person(1), 1))
        .expect("same parameters, new nonce");
    assert_eq!(id.to_string().parse::<InstanceId>(), Ok(id));
    assert!("zz".parse::<InstanceId>().is_err());
}

#[test]
fn readings_reach_only_their_bindings() {
    let mut catalog = Catalog::new();
    let temp_a = catalog.deploy(temperature(person(1), 0)).expect("deploy");
    let fence_a = catalog.deploy(geofence(person(1))).expect("deploy");
    let temp_b = catalog.deploy(temperature(person(2), 0)).expect("deploy");
    let mut bound = temperature(person(1), 7);
    bound.device = Some(device("thermo-2"));
    let temp_a_dev2 = catalog.deploy(bound).expect("deploy");

    assert_eq!(
        levels(&catalog.evaluate(&person(1), &temp(0, 3900))),
        vec![(temp_a, 2)]
    );
    assert_eq!(
        levels(&catalog.evaluate(&person(1), &fix(0, 2_000))),
        vec![(fence_a, 2)]
    );
    assert_eq!(
        levels(&catalog.evaluate(&person(2), &temp(0, 3700))),
        vec![(temp_b, 0)]
    );
    let mut from_dev2 = temp(1, 3700);
    from_dev2.device = device("thermo-2");
    let mut got = levels(&catalog.evaluate(&person(1), &from_dev2));
    got.sort();
    let mut expected = vec![(temp_a, 0), (temp_a_dev2, 0)];
    expected.sort();
    assert_eq!(got, expected);
    assert!(catalog.evaluate(&person(3), &temp(0, 3900)).is_empty());
}

#[test]
fn terminate_and_replace_touch_no_other_binding() {
    let mut catalog = Catalog::new();
    let temp_a = catalog.deploy(temperature(person(1), 0)).expect("deploy");
    let fence_a = catalog.deploy(geofence(person(1))).expect("deploy");
    let temp_b = catalog.deploy(temperature(person(2), 0)).expect("deploy");
    catalog.evaluate(&person(1), &temp(0, 3900));
    catalog.evaluate(&person(1), &fix(0, 2_000));
    catalog.evaluate(&person(2), &temp(0, 3800));
    let snapshot = |c: &Catalog, id: &InstanceId| (c.state(id).cloned(), c.open_alert(id).copied());
    let (fence_before, b_before) = (snapshot(&catalog, &fence_a), snapshot(&catalog, &temp_b));

    // Replace A's thermometer contract with tighter bands.
    let mut tighter = temperature(person(1), 0);
    tighter.params = Params::Threshold(ThresholdParams::seed(
        Metric::BodyTemperature,
        3600,
        3700,
        50,
    ));
    let (new_id, old) = catalog.replace(&temp_a, tighter).expect("replace");
    assert_eq!(old.alert.map(|a| a.status), Some(AlertStatus::Withdrawn));
    assert!(catalog.state(&temp_a).is_none());
    assert!(matches!(catalog.state(&new_id), Some(State::Threshold(s)) if s.last_ms.is_none()));
    assert_eq!(snapshot(&catalog, &fence_a), fence_before);
    assert_eq!(snapshot(&catalog, &temp_b), b_before);
    assert_eq!(
        levels(&catalog.evaluate(&person(1), &temp(1, 3720))),
        vec![(new_id, 1)]
    );

    // A failed replacement changes nothing.
    let mut invalid = temperature(person(1), 3);
    invalid.params = Params::Threshold(ThresholdParams {
        repeat: 0,
        ..ThresholdParams::seed(Metric::BodyTemperature, 1, 2, 1)
    });
    assert!(matches!(
        catalog.replace(&new_id, invalid),
        Err(CatalogError::Params(_))
    ));
    assert_eq!(
        catalog
            .replace(&new_id, temperature(person(2), 9))
            .map(|r| r.0),
        Err(CatalogError::ReplacementForOtherPerson)
    );
    assert!(catalog.state(&new_id).is_some());
    assert_eq!(catalog.len(), 3);

    // Terminate.
    catalog.terminate(&fence_a).expect("terminate");
    assert_eq!(
        catalog.terminate(&fence_a).map(|_| ()),
        Err(CatalogError::UnknownInstance(fence_a))
    );
    assert_eq!(snapshot(&catalog, &temp_b), b_before);
    assert_eq!(catalog.instances_of(&person(1)), &[new_id]);
    assert!(catalog.evaluate(&person(1), &fix(5, 2_000)).is_empty());
}

#[test]
fn no_signal_needs_a_device() {
    let mut d = Deployment {
        person: person(1),
        device: None,
        nonce: 0,
        params: Params::NoSignal(NoSignalParams {
            interval_ms: 60_000,
            grace_ms: 60_000,
        }),
    };
    assert!(matches!(
        Catalog::new().deploy(d.clone()),
        Err(CatalogError::DeviceRequired { .. })
    ));
    d.device = Some(device("phone-1"));
    let mut catalog = Catalog::new();
    let id = catalog.deploy(d).expect("deploy");
    catalog.tick(0).expect("tick");
    let changed = catalog.tick(60_001).expect("tick");
    assert_eq!(levels(&changed), vec![(id, 1)]);
    assert_eq!(
        changed[0].alert.map(|a| a.alert.audience),
        Some(vigil_contracts::Audience::Person)
    );
    assert!(
        catalog.tick(60_002).expect("tick").is_empty(),
        "no change, nothing reported"
    );
    assert_eq!(
        catalog.tick(0).map(|_| ()),
        Err(CatalogError::TickBackwards {
            now_ms: 0,
            last_ms: 60_002
        })
    );
    // Any reading of the bound device clears it; another device's does not reach it.
    let mut other = fix(70_000, 0);
    other.device = device("phone-2");
    assert!(catalog.evaluate(&person(1), &other).is_empty());
    let cleared = catalog.evaluate(&person(1), &fix(70_000, 0));
    assert_eq!(
        cleared[0].alert.map(|a| a.change),
        Some(AlertChange::Cleared)
    );
}

#[test]
fn alert_lifecycle() {
    let mut catalog = Catalog::new();
    let id = catalog.deploy(temperature(person(1), 0)).expect("deploy");
    let change = |c: &mut Catalog, t: i64, v: i32| {
        c.evaluate(&person(1), &temp(t, v))[0]
            .alert
            .map(|u| (u.change, u.alert.status, u.alert.level.code(), u.alert.seq))
    };
    assert_eq!(change(&mut catalog, 0, 3700), None);
    assert_eq!(
        change(&mut catalog, 1, 3800),
        Some((AlertChange::Raised, AlertStatus::Raised, 1, 1))
    );
    assert_eq!(change(&mut catalog, 2, 3800), None, "same level: no change");
    let ack = catalog.acknowledge(&id, 3).expect("ack");
    assert_eq!(ack.alert.status, AlertStatus::Acknowledged);
    assert_eq!(
        catalog.acknowledge(&id, 3).map(|_| ()),
        Err(CatalogError::AlreadyAcknowledged(id))
    );
    // Escalation updates the same alert and asks for a new acknowledgment.
    let up = Some((
        AlertChange::Escalated {
            from: AlertLevel::Warning,
        },
        AlertStatus::Raised,
        2,
        1,
    ));
    assert_eq!(change(&mut catalog, 4, 3900), up);
    catalog.acknowledge(&id, 5).expect("ack");
    let down = Some((
        AlertChange::DeEscalated {
            from: AlertLevel::Critical,
        },
        AlertStatus::Acknowledged,
        1,
        1,
    ));
    assert_eq!(change(&mut catalog, 6, 3800), down);
    assert_eq!(
        catalog.open_alert(&id).map(|a| a.peak),
        Some(AlertLevel::Critical)
    );
    assert_eq!(
        change(&mut catalog, 7, 3700),
        Some((AlertChange::Cleared, AlertStatus::Cleared, 0, 1))
    );
    assert!(catalog.open_alert(&id).is_none());
    assert_eq!(
        catalog.acknowledge(&id, 8).map(|_| ()),
        Err(CatalogError::NoOpenAlert(id))
    );
    // A new episode is a new alert; resolving closes it by hand.
    assert_eq!(
        change(&mut catalog, 9, 3900),
        Some((AlertChange::Raised, AlertStatus::Raised, 2, 2))
    );
    let resolved = catalog.resolve(&id, 10).expect("resolve");
    assert_eq!(
        (
            resolved.alert.status,
            resolved.alert.raised_ms,
            resolved.alert.updated_ms
        ),
        (AlertStatus::Resolved, 9, 10)
    );
    assert_eq!(
        change(&mut catalog, 11, 3900),
        Some((AlertChange::Raised, AlertStatus::Raised, 2, 3))
    );
}

/// Resolving an alert whose last reading is still out of range: no tick re-raises it (a tick
/// brings no reading, and its alert would carry a time no reading has); the excursion's next
/// reading does. A no-signal alert resolved while the device is still silent is not re-raised
/// by the next tick either, only by a new silence.
#[test]
fn a_resolved_alert_is_raised_again_by_a_reading_never_by_a_tick() {
    let mut catalog = Catalog::new();
    let id = catalog.deploy(temperature(person(1), 0)).expect("deploy");
    let raised = catalog.evaluate(&person(1), &temp(1, 3900));
    assert_eq!(raised[0].alert.map(|u| u.change), Some(AlertChange::Raised));
    catalog.resolve(&id, 2).expect("resolve");
    let ticked = catalog.tick(3).expect("tick");
    assert!(
        ticked.iter().all(|e| e.alert.is_none()),
        "a tick re-raised the resolved alert: {ticked:?}"
    );
    let again = catalog.evaluate(&person(1), &temp(4, 3900));
    assert_eq!(
        again[0].alert.map(|u| (u.change, u.alert.raised_ms)),
        Some((AlertChange::Raised, 4))
    );

    let mut silent = Catalog::new();
    let watch = silent
        .deploy(Deployment {
            person: person(2),
            device: Some(device("phone-1")),
            nonce: 0,
            params: Params::NoSignal(NoSignalParams {
                interval_ms: 60_000,
                grace_ms: 60_000,
            }),
        })
        .expect("deploy");
    silent.tick(0).expect("tick");
    assert_eq!(
        levels(&silent.tick(60_001).expect("tick")),
        vec![(watch, 1)]
    );
    silent.resolve(&watch, 60_002).expect("resolve");
    assert!(
        silent
            .tick(120_000)
            .expect("tick")
            .iter()
            .all(|e| e.alert.is_none()),
        "still silent: not raised again"
    );
    silent.evaluate(&person(2), &fix(130_000, 0));
    let new_silence = silent.tick(260_000).expect("tick");
    assert_eq!(
        new_silence[0].alert.map(|u| u.change),
        Some(AlertChange::Raised)
    );
}
