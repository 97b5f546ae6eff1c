//! Threshold kind: the seed's exact outputs, every band edge, duration, repeat, hysteresis.

use vigil_contracts::threshold::{Band, ThresholdState};
use vigil_contracts::{
    Contract, Input, ParamError, Params, Reason, State, StepError, ThresholdParams, analyze,
};
use vigil_core::{AlertLevel, Metric, Reading, Value};

fn reading(metric: Metric, time_ms: i64, value: i32) -> Reading {
    Reading {
        device: "dev-1".parse().expect("valid"),
        metric,
        time_ms,
        value: Value::Scalar(value),
    }
}

fn contract(p: ThresholdParams) -> Contract {
    Params::Threshold(p).validate().expect("valid parameters")
}

/// Feeds values at 1 s intervals; returns the level after each.
fn run(c: &Contract, values: &[i32]) -> Vec<u8> {
    let mut state = c.initial_state();
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let r = reading(Metric::BodyTemperature, 1_000 * i as i64, v);
            let (next, outcome) = c.step(&state, Input::Reading(&r)).expect("step");
            state = next;
            outcome.level.code()
        })
        .collect()
}

fn temperature_bands() -> ThresholdParams {
    ThresholdParams {
        metric: Metric::BodyTemperature,
        critical_below: Some(3500),
        warning_below: Some(3600),
        warning_above: Some(3750),
        critical_above: Some(3800),
        for_ms: 0,
        repeat: 1,
        hysteresis: 0,
    }
}

#[test]
fn seed_analyze_exact_outputs() {
    // The seed's examples, in whole degrees with the band [36, 37].
    let cases = [
        (36, 0),
        (37, 0),
        (35, 1),
        (38, 1),
        (34, 2),
        (39, 2),
        (0, 2),
        (100, 2),
    ];
    for (t, expected) in cases {
        assert_eq!(analyze(t, 36, 37), expected, "analyze({t}, 36, 37)");
    }
    // Extremes do not overflow.
    assert_eq!(analyze(i64::MAX, i64::MIN, i64::MAX), 0);
    assert_eq!(analyze(i64::MIN, i64::MAX, i64::MAX), 2);
    assert_eq!(analyze(i64::MAX, i64::MIN, i64::MAX - 1), 1);
}

#[test]
fn seed_analyze_on_a_grid_and_its_generalisation_agree() {
    for min in 30..=40 {
        for max in min..=42 {
            for t in 25..=47 {
                let distance = (min - t).max(t - max).max(0);
                let expected = match distance {
                    0 => 0,
                    1 => 1,
                    _ => 2,
                };
                assert_eq!(analyze(t, min, max), expected, "analyze({t}, {min}, {max})");
                // The generalised contract with the seed's bands, in centi-degrees.
                let c = contract(ThresholdParams::seed(
                    Metric::BodyTemperature,
                    min as i32 * 100,
                    max as i32 * 100,
                    100,
                ));
                assert_eq!(
                    run(&c, &[t as i32 * 100]),
                    vec![expected],
                    "t={t} band=[{min},{max}]"
                );
                // And with a unit of 1, in the seed's own units.
                let c = contract(ThresholdParams::seed(
                    Metric::BodyTemperature,
                    min as i32,
                    max as i32,
                    1,
                ));
                assert_eq!(run(&c, &[t as i32]), vec![expected]);
            }
        }
    }
}

#[test]
fn every_band_edge() {
    let p = temperature_bands();
    let cases = [
        (i32::MIN, Band::CriticalLow),
        (3499, Band::CriticalLow),
        (3500, Band::WarningLow),
        (3599, Band::WarningLow),
        (3600, Band::Normal),
        (3750, Band::Normal),
        (3751, Band::WarningHigh),
        (3800, Band::WarningHigh),
        (3801, Band::CriticalHigh),
        (i32::MAX, Band::CriticalHigh),
    ];
    let c = contract(p.clone());
    for (value, band) in cases {
        assert_eq!(p.classify(value, 0), band, "{value}");
        let r = reading(Metric::BodyTemperature, 0, value);
        let (_, outcome) = c
            .step(&c.initial_state(), Input::Reading(&r))
            .expect("step");
        assert_eq!(outcome.level, band.level(), "{value}");
        let Reason::Threshold(reason) = outcome.reason else {
            panic!("reason kind")
        };
        assert_eq!((reason.band, reason.value), (band, value));
    }
}

#[test]
fn one_sided_thresholds() {
    // SpO2: only low thresholds.
    let p = ThresholdParams {
        metric: Metric::SpO2,
        critical_below: Some(900),
        warning_below: Some(940),
        warning_above: None,
        critical_above: None,
        for_ms: 0,
        repeat: 1,
        hysteresis: 0,
    };
    assert_eq!(p.classify(1000, 0), Band::Normal);
    assert_eq!(p.classify(939, 0), Band::WarningLow);
    assert_eq!(p.classify(899, 0), Band::CriticalLow);
    assert_eq!(p.classify(i32::MAX, 0), Band::Normal);
}

#[test]
fn repeat_condition_needs_consecutive_readings() {
    let c = contract(ThresholdParams {
        repeat: 3,
        ..temperature_bands()
    });
    assert_eq!(run(&c, &[3760, 3760, 3760, 3760]), vec![0, 0, 1, 1]);
    // A normal reading breaks the run.
    assert_eq!(
        run(&c, &[3760, 3760, 3700, 3760, 3760, 3760]),
        vec![0, 0, 0, 0, 0, 1]
    );
    // Critical readings count towards the warning run too, each level its own run.
    assert_eq!(run(&c, &[3760, 3810, 3810, 3810]), vec![0, 0, 1, 2]);
}

#[test]
fn duration_condition_counts_from_the_first_reading() {
    let c = contract(ThresholdParams {
        for_ms: 300_000,
        ..temperature_bands()
    });
    let mut state = c.initial_state();
    let t0 = 1_700_000_000_000;
    for (dt, expected) in [(0, 0), (299_999, 0), (300_000, 1), (400_000, 1)] {
        let r = reading(Metric::BodyTemperature, t0 + dt, 3760);
        let (next, outcome) = c.step(&state, Input::Reading(&r)).expect("step");
        state = next;
        assert_eq!(outcome.level.code(), expected, "at +{dt} ms");
    }
    let State::Threshold(ThresholdState {
        warning_streak: Some(streak),
        ..
    }) = state
    else {
        panic!()
    };
    assert_eq!((streak.since_ms, streak.count), (t0, 4));
}

#[test]
fn hysteresis_holds_a_raised_level_until_inside_by_the_margin() {
    let c = contract(ThresholdParams {
        hysteresis: 20,
        ..temperature_bands()
    });
    // Warning at 3760; 3731 is inside the band but not by 20: held; 3730 clears.
    assert_eq!(
        run(&c, &[3760, 3740, 3731, 3730, 3740]),
        vec![1, 1, 1, 0, 0]
    );
    // Critical at 3810; 3781 holds critical; 3780 drops to warning; then 3730 clears.
    assert_eq!(
        run(&c, &[3810, 3790, 3781, 3780, 3731, 3730]),
        vec![2, 2, 2, 1, 1, 0]
    );
    // Low side: warning at 3590 holds until 3620.
    assert_eq!(run(&c, &[3590, 3610, 3619, 3620]), vec![1, 1, 1, 0]);
    // Hysteresis never raises a level by itself.
    assert_eq!(run(&c, &[3740, 3760 - 20, 3751 - 20]), vec![0, 0, 0]);
}

#[test]
fn out_of_order_and_wrong_inputs_are_refused_without_change() {
    let c = contract(temperature_bands());
    let r = reading(Metric::BodyTemperature, 10_000, 3760);
    let (state, _) = c
        .step(&c.initial_state(), Input::Reading(&r))
        .expect("step");
    let older = reading(Metric::BodyTemperature, 9_999, 3900);
    assert_eq!(
        c.step(&state, Input::Reading(&older)),
        Err(StepError::OutOfOrder {
            time_ms: 9_999,
            last_ms: 10_000
        })
    );
    let other = reading(Metric::HeartRate, 20_000, 700);
    assert!(matches!(
        c.step(&state, Input::Reading(&other)),
        Err(StepError::UnexpectedMetric { .. })
    ));
    let mut position = reading(Metric::BodyTemperature, 20_000, 0);
    position.value = Value::Position(vigil_core::GeoFix {
        lat_udeg: 0,
        lon_udeg: 0,
        accuracy_m: 0,
    });
    assert!(matches!(
        c.step(&state, Input::Reading(&position)),
        Err(StepError::UnexpectedValue { .. })
    ));
    // A tick changes nothing.
    let (after, outcome) = c
        .step(&state, Input::Tick { now_ms: 99_000 })
        .expect("tick");
    assert_eq!((after, outcome.level), (state, AlertLevel::Warning));
}

#[test]
fn invalid_parameters_are_refused() {
    let bad = |p: ThresholdParams| Params::Threshold(p).validate().expect_err("invalid");
    assert!(matches!(
        bad(ThresholdParams {
            warning_below: Some(3900),
            ..temperature_bands()
        }),
        ParamError::OutOfOrder { .. }
    ));
    assert!(matches!(
        bad(ThresholdParams {
            critical_above: Some(3700),
            ..temperature_bands()
        }),
        ParamError::OutOfOrder { .. }
    ));
    let none = ThresholdParams {
        critical_below: None,
        warning_below: None,
        warning_above: None,
        critical_above: None,
        ..temperature_bands()
    };
    assert!(matches!(bad(none), ParamError::Invalid { .. }));
    assert!(matches!(
        bad(ThresholdParams {
            repeat: 0,
            ..temperature_bands()
        }),
        ParamError::OutOfRange { .. }
    ));
    assert!(matches!(
        bad(ThresholdParams {
            for_ms: u64::MAX,
            ..temperature_bands()
        }),
        ParamError::OutOfRange { .. }
    ));
    assert!(matches!(
        bad(ThresholdParams {
            metric: Metric::Position,
            ..temperature_bands()
        }),
        ParamError::Metric { .. }
    ));
    // Equal thresholds are allowed (an empty warning band).
    Params::Threshold(ThresholdParams {
        critical_above: Some(3750),
        ..temperature_bands()
    })
    .validate()
    .expect("valid");
}
