//! Geofence: circle and polygon zones, edge and vertex cases, accuracy, dwell, events.

use vigil_contracts::geofence::{Evidence, GeofenceState, ZoneEventKind, ZoneStatus};
use vigil_contracts::{
    Circle, Contract, GeofenceParams, Input, Outcome, ParamError, Params, Reason, State, ZoneRule,
    ZoneSpec,
};
use vigil_core::{AlertLevel, GeoFix, Metric, Reading, Value};

/// Reference point of the test zones, on the equator where cos = 1: one micro-degree is one
/// plane unit (0.111 m) both ways.
const LAT0: i32 = 0;
const LON0: i32 = 10_000_000;

fn fix_reading(time_ms: i64, lat_udeg: i32, lon_udeg: i32, accuracy_m: u32) -> Reading {
    Reading {
        device: "phone-1".parse().expect("valid"),
        metric: Metric::Position,
        time_ms,
        value: Value::Position(GeoFix {
            lat_udeg,
            lon_udeg,
            accuracy_m,
        }),
    }
}

fn geofence(zones: Vec<ZoneSpec>, dwell_ms: u64) -> Contract {
    Params::Geofence(GeofenceParams {
        zones,
        dwell_ms,
        margin_m: 0,
        accuracy_max_m: 1_000,
    })
    .validate()
    .expect("valid")
}

fn home_circle() -> ZoneSpec {
    // 100 m = 899 plane units.
    ZoneSpec::circle(
        "home",
        ZoneRule::KeepInside,
        Circle {
            lat_udeg: LAT0,
            lon_udeg: LON0,
            radius_m: 100,
        },
    )
}

fn step(c: &Contract, state: &State, r: &Reading) -> (State, Outcome) {
    c.step(state, Input::Reading(r)).expect("step")
}

fn evidence(c: &Contract, lat: i32, lon: i32, accuracy_m: u32) -> Vec<Evidence> {
    let (_, outcome) = step(c, &c.initial_state(), &fix_reading(0, lat, lon, accuracy_m));
    let Reason::Geofence(reason) = outcome.reason else {
        panic!("reason")
    };
    reason.zones.iter().map(|z| z.evidence).collect()
}

#[test]
fn circle_edges_with_and_without_accuracy() {
    let c = geofence(vec![home_circle()], 0);
    let at = |north: i32, acc: u32| evidence(&c, LAT0 + north, LON0, acc)[0];
    assert_eq!(at(0, 0), Evidence::Compliant);
    assert_eq!(at(899, 0), Evidence::Compliant, "on the circle");
    assert_eq!(at(900, 0), Evidence::Violating);
    // 10 m = 90 units: the disc must clear the circle entirely.
    assert_eq!(at(900, 10), Evidence::Uncertain);
    assert_eq!(at(989, 10), Evidence::Uncertain, "disc touching the fence");
    assert_eq!(at(990, 10), Evidence::Violating);
    assert_eq!(at(-990, 10), Evidence::Violating);
    // A centre inside is compliant whatever the accuracy.
    assert_eq!(at(898, 900), Evidence::Compliant);
}

#[test]
fn exclusion_zone_needs_the_whole_disc_inside() {
    let zone = ZoneSpec::circle(
        "school",
        ZoneRule::KeepOutside,
        Circle {
            lat_udeg: LAT0,
            lon_udeg: LON0,
            radius_m: 100,
        },
    );
    let c = geofence(vec![zone], 0);
    let at = |north: i32, acc: u32| evidence(&c, LAT0 + north, LON0, acc)[0];
    assert_eq!(at(900, 0), Evidence::Compliant);
    assert_eq!(at(899, 0), Evidence::Uncertain, "on the boundary");
    assert_eq!(at(898, 0), Evidence::Violating);
    assert_eq!(at(809, 10), Evidence::Uncertain);
    assert_eq!(at(808, 10), Evidence::Violating);
    // A disc larger than the zone never proves a violation.
    assert_eq!(at(0, 200), Evidence::Uncertain);
}

fn square() -> ZoneSpec {
    // 1000 x 1000 units (111 m), vertices as [lat, lon].
    ZoneSpec::polygon(
        "yard",
        ZoneRule::KeepInside,
        vec![
            [LAT0, LON0],
            [LAT0, LON0 + 1000],
            [LAT0 + 1000, LON0 + 1000],
            [LAT0 + 1000, LON0],
        ],
    )
}

#[test]
fn polygon_edges_and_vertices_belong_to_the_zone() {
    let c = geofence(vec![square()], 0);
    let at = |n: i32, e: i32, acc: u32| evidence(&c, LAT0 + n, LON0 + e, acc)[0];
    for (n, e) in [
        (0, 0),
        (1000, 1000),
        (0, 1000),
        (1000, 0),
        (500, 0),
        (500, 1000),
        (0, 500),
        (1000, 500),
    ] {
        assert_eq!(
            at(n, e, 0),
            Evidence::Compliant,
            "boundary point ({n}, {e})"
        );
    }
    assert_eq!(at(500, 500, 0), Evidence::Compliant);
    assert_eq!(at(500, 1001, 0), Evidence::Violating);
    assert_eq!(at(-1, -1, 0), Evidence::Violating, "diagonal from a vertex");
    // Accuracy 1 m = 9 units: distance to the edge must exceed 9.
    assert_eq!(at(500, 1009, 1), Evidence::Uncertain);
    assert_eq!(at(500, 1010, 1), Evidence::Violating);
    // Near a vertex the distance is to the corner: (1006, 1007) is at distance 9.2 from it.
    assert_eq!(at(1006, 1007, 1), Evidence::Violating);
    assert_eq!(at(1005, 1007, 1), Evidence::Uncertain);
}

#[test]
fn concave_polygon_and_collinear_vertices() {
    // A U (concave) with a collinear vertex in the middle of its bottom edge.
    let u = ZoneSpec::polygon(
        "u",
        ZoneRule::KeepInside,
        [
            (0, 0),
            (0, 500),
            (0, 1000),
            (1000, 1000),
            (1000, 700),
            (300, 700),
            (300, 300),
            (1000, 300),
            (1000, 0),
        ]
        .iter()
        .map(|&(n, e)| [LAT0 + n, LON0 + e])
        .collect(),
    );
    let c = geofence(vec![u], 0);
    let at = |n: i32, e: i32| evidence(&c, LAT0 + n, LON0 + e, 0)[0];
    assert_eq!(at(100, 500), Evidence::Compliant, "in the base");
    assert_eq!(at(800, 100), Evidence::Compliant, "in a prong");
    assert_eq!(at(800, 500), Evidence::Violating, "in the notch");
    assert_eq!(at(300, 500), Evidence::Compliant, "on the notch floor");
    assert_eq!(at(0, 500), Evidence::Compliant, "on the collinear vertex");
    assert_eq!(at(1000, 500), Evidence::Violating, "across the notch mouth");
    assert_eq!(at(1000, 200), Evidence::Compliant, "on a prong's top edge");
}

#[test]
fn degenerate_and_oversized_polygons_are_refused() {
    let poly = |v: Vec<[i32; 2]>| {
        Params::Geofence(GeofenceParams {
            zones: vec![ZoneSpec::polygon("z", ZoneRule::KeepInside, v)],
            dwell_ms: 0,
            margin_m: 0,
            accuracy_max_m: 100,
        })
        .validate()
    };
    assert!(matches!(
        poly(vec![[0, 0], [0, 10]]),
        Err(ParamError::Count { count: 2, .. })
    ));
    assert!(matches!(
        poly(vec![[0, 0]; 1025]),
        Err(ParamError::Count { count: 1025, .. })
    ));
    assert!(
        matches!(
            poly(vec![[0, 0], [0, 10], [0, 20]]),
            Err(ParamError::Invalid { .. })
        ),
        "collinear"
    );
    assert!(
        matches!(
            poly(vec![[0, 0], [0, 10], [600_000, 0]]),
            Err(ParamError::Invalid { .. })
        ),
        "too large"
    );
    assert!(matches!(
        poly(vec![[0, 0], [0, 10], [90_000_000, 0]]),
        Err(ParamError::OutOfRange { .. })
    ));
    let zones = |zones: Vec<ZoneSpec>| {
        Params::Geofence(GeofenceParams {
            zones,
            dwell_ms: 0,
            margin_m: 0,
            accuracy_max_m: 100,
        })
        .validate()
    };
    assert!(zones(vec![]).is_err());
    assert!(zones(vec![home_circle(); 17]).is_err());
    assert!(
        zones(vec![home_circle(), home_circle()]).is_err(),
        "duplicate names"
    );
    let mut both = home_circle();
    both.polygon = square().polygon;
    assert!(zones(vec![both]).is_err());
    let mut neither = home_circle();
    neither.circle = None;
    assert!(zones(vec![neither]).is_err());
    let mut zero = home_circle();
    zero.circle = Some(Circle {
        lat_udeg: 0,
        lon_udeg: 0,
        radius_m: 0,
    });
    assert!(zones(vec![zero]).is_err());
    let mut ok_level = home_circle();
    ok_level.level = AlertLevel::Ok;
    assert!(zones(vec![ok_level]).is_err());
}

#[test]
fn dwell_then_leave_and_return_events() {
    let c = geofence(vec![home_circle()], 60_000);
    let mut state = c.initial_state();
    let out = |north: i32| (LAT0 + north, LON0);
    let mut levels = Vec::new();
    let mut events = Vec::new();
    for (t, (lat, lon)) in [
        (0, out(0)),
        (10_000, out(2_000)),
        (69_999, out(2_000)),
        (70_000, out(2_000)),
        (80_000, out(2_000)),
        (90_000, out(0)),
    ] {
        let (next, outcome) = step(&c, &state, &fix_reading(t, lat, lon, 5));
        state = next;
        levels.push(outcome.level.code());
        let Reason::Geofence(reason) = outcome.reason else {
            panic!()
        };
        events.push(reason.events.iter().map(|e| e.event).collect::<Vec<_>>());
    }
    assert_eq!(levels, vec![0, 0, 0, 2, 2, 0]);
    assert_eq!(
        events,
        vec![
            vec![],
            vec![],
            vec![],
            vec![ZoneEventKind::Left],
            vec![],
            vec![ZoneEventKind::Returned]
        ]
    );
}

#[test]
fn a_short_excursion_within_the_dwell_raises_nothing() {
    let c = geofence(vec![home_circle()], 60_000);
    let mut state = c.initial_state();
    for (t, north) in [(0, 2_000), (30_000, 0), (70_000, 2_000), (100_000, 2_000)] {
        let (next, outcome) = step(&c, &state, &fix_reading(t, LAT0 + north, LON0, 5));
        state = next;
        assert_eq!(outcome.level, AlertLevel::Ok, "at {t}");
    }
    let State::Geofence(GeofenceState { zones, .. }) = state else {
        panic!()
    };
    assert_eq!(zones, vec![ZoneStatus::Pending { since_ms: 70_000 }]);
}

#[test]
fn jitter_at_the_fence_does_not_flap() {
    let c = geofence(vec![home_circle()], 0);
    let mut state = c.initial_state();
    // Fixes alternate 5 m inside and 5 m outside the fence with a 10 m accuracy.
    for i in 0..100 {
        let north = if i % 2 == 0 { 899 - 45 } else { 899 + 45 };
        let (next, outcome) = step(&c, &state, &fix_reading(i * 1_000, LAT0 + north, LON0, 10));
        state = next;
        assert_eq!(outcome.level, AlertLevel::Ok);
        let Reason::Geofence(reason) = outcome.reason else {
            panic!()
        };
        assert!(reason.events.is_empty());
    }
}

#[test]
fn inaccurate_fixes_change_nothing() {
    let c = geofence(vec![home_circle()], 0);
    // accuracy_max_m is 1000: a fix of accuracy 1001 far away is uncertain.
    assert_eq!(
        evidence(&c, LAT0 + 1_000_000, LON0, 1_001),
        vec![Evidence::Uncertain]
    );
    assert_eq!(
        evidence(&c, LAT0 + 1_000_000, LON0, 1_000),
        vec![Evidence::Violating]
    );
}

#[test]
fn several_zones_and_the_worst_level() {
    let mut exclusion = square();
    exclusion.name = "market".into();
    exclusion.rule = ZoneRule::KeepOutside;
    exclusion.level = AlertLevel::Warning;
    // The market square lies 5000 units north of home.
    exclusion.polygon = Some(vec![
        [5_000, LON0],
        [5_000, LON0 + 1000],
        [6_000, LON0 + 1000],
        [6_000, LON0],
    ]);
    let c = geofence(vec![home_circle(), exclusion], 0);
    let mut state = c.initial_state();
    let mut run = |t: i64, north: i32| {
        let (next, outcome) = step(&c, &state, &fix_reading(t, LAT0 + north, LON0 + 500, 0));
        state = next;
        let Reason::Geofence(reason) = outcome.reason else {
            panic!()
        };
        (
            outcome.level,
            reason
                .events
                .iter()
                .map(|e| (e.zone.clone(), e.event))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(run(0, 0), (AlertLevel::Ok, vec![]));
    assert_eq!(
        run(1, 3_000),
        (
            AlertLevel::Critical,
            vec![("home".into(), ZoneEventKind::Left)]
        )
    );
    assert_eq!(
        run(2, 5_500),
        (
            AlertLevel::Critical,
            vec![("market".into(), ZoneEventKind::Entered)]
        )
    );
    assert_eq!(
        run(3, 7_000),
        (
            AlertLevel::Critical,
            vec![("market".into(), ZoneEventKind::Exited)]
        )
    );
    assert_eq!(
        run(4, 0),
        (
            AlertLevel::Ok,
            vec![("home".into(), ZoneEventKind::Returned)]
        )
    );
}

#[test]
fn polygons_across_the_antimeridian() {
    let zone = ZoneSpec::polygon(
        "island",
        ZoneRule::KeepInside,
        vec![
            [0, 179_999_500],
            [0, -179_999_500],
            [1_000, -179_999_500],
            [1_000, 179_999_500],
        ],
    );
    let c = geofence(vec![zone], 0);
    assert_eq!(evidence(&c, 500, 180_000_000, 0), vec![Evidence::Compliant]);
    assert_eq!(
        evidence(&c, 500, -179_999_800, 0),
        vec![Evidence::Compliant]
    );
    assert_eq!(
        evidence(&c, 500, -179_999_000, 0),
        vec![Evidence::Violating]
    );
}

#[test]
fn garbage_positions_do_not_panic() {
    let c = geofence(vec![home_circle(), square()], 0);
    for (lat, lon, acc) in [
        (i32::MIN, i32::MIN, u32::MAX),
        (i32::MAX, i32::MAX, 0),
        (0, i32::MIN, 1),
        (i32::MAX, 0, 500),
    ] {
        let _ = evidence(&c, lat, lon, acc);
    }
}
