//! NEWS2: every chart edge in fixed point, aggregate bands, level mapping, freshness.

use vigil_contracts::news2::{
    News2Band, band, score_pulse, score_respiration, score_spo2_scale1, score_spo2_scale2,
    score_systolic, score_temperature,
};
use vigil_contracts::{Contract, Input, News2Params, Params, Reason, State, StepError};
use vigil_core::{AlertLevel, Metric, Reading, Value};

fn check(f: impl Fn(i32) -> u8, cases: &[(i32, u8)]) {
    for &(value, expected) in cases {
        assert_eq!(f(value), expected, "value {value}");
    }
}

#[test]
fn respiration_rate_edges() {
    // Tenths per minute, rounded half up to whole breaths.
    check(
        score_respiration,
        &[
            (0, 3),
            (80, 3),
            (84, 3),
            (85, 1),
            (90, 1),
            (110, 1),
            (114, 1),
            (115, 0),
            (120, 0),
            (200, 0),
            (204, 0),
            (205, 2),
            (210, 2),
            (240, 2),
            (245, 3),
            (250, 3),
            (800, 3),
            (i32::MIN, 3),
            (i32::MAX, 3),
        ],
    );
}

#[test]
fn spo2_scale1_edges() {
    check(
        score_spo2_scale1,
        &[
            (910, 3),
            (914, 3),
            (915, 2),
            (920, 2),
            (930, 2),
            (940, 1),
            (950, 1),
            (954, 1),
            (955, 0),
            (960, 0),
            (1000, 0),
            (i32::MIN, 3),
            (i32::MAX, 0),
        ],
    );
}

#[test]
fn spo2_scale2_edges_on_air_and_oxygen() {
    for on_oxygen in [false, true] {
        check(
            |v| score_spo2_scale2(v, on_oxygen),
            &[
                (830, 3),
                (840, 2),
                (850, 2),
                (860, 1),
                (870, 1),
                (880, 0),
                (920, 0),
            ],
        );
    }
    check(
        |v| score_spo2_scale2(v, false),
        &[(930, 0), (970, 0), (1000, 0)],
    );
    check(
        |v| score_spo2_scale2(v, true),
        &[
            (924, 0),
            (925, 1),
            (930, 1),
            (940, 1),
            (950, 2),
            (960, 2),
            (970, 3),
            (1000, 3),
        ],
    );
}

#[test]
fn systolic_pressure_edges() {
    check(
        score_systolic,
        &[
            (40, 3),
            (90, 3),
            (91, 2),
            (100, 2),
            (101, 1),
            (110, 1),
            (111, 0),
            (219, 0),
            (220, 3),
            (300, 3),
        ],
    );
}

#[test]
fn pulse_edges() {
    check(
        score_pulse,
        &[
            (400, 3),
            (404, 3),
            (405, 1),
            (410, 1),
            (500, 1),
            (510, 0),
            (900, 0),
            (904, 0),
            (905, 1),
            (910, 1),
            (1100, 1),
            (1110, 2),
            (1300, 2),
            (1310, 3),
            (3000, 3),
        ],
    );
}

#[test]
fn temperature_edges() {
    // Hundredths of a °C, rounded half up to the chart's tenths.
    check(
        score_temperature,
        &[
            (3500, 3),
            (3504, 3),
            (3505, 1),
            (3510, 1),
            (3600, 1),
            (3604, 1),
            (3605, 0),
            (3610, 0),
            (3800, 0),
            (3804, 0),
            (3805, 1),
            (3810, 1),
            (3900, 1),
            (3910, 2),
            (4500, 2),
        ],
    );
}

#[test]
fn aggregate_bands() {
    assert_eq!(band(0, false), News2Band::Zero);
    for s in 1..=4 {
        assert_eq!(band(s, false), News2Band::Low);
        if s >= 3 {
            assert_eq!(band(s, true), News2Band::LowRedSingle);
        }
    }
    for s in [5, 6] {
        assert_eq!(band(s, false), News2Band::Medium);
        assert_eq!(band(s, true), News2Band::Medium);
    }
    for s in [7, 8, 20] {
        assert_eq!(band(s, true), News2Band::High);
    }
}

fn contract(scale: u8, low: AlertLevel) -> Contract {
    Params::News2(News2Params {
        spo2_scale: scale,
        freshness_ms: 600_000,
        low_score_level: low,
    })
    .validate()
    .expect("valid")
}

fn reading(metric: Metric, time_ms: i64, value: i32) -> Reading {
    Reading {
        device: "dev-1".parse().expect("valid"),
        metric,
        time_ms,
        value: Value::Scalar(value),
    }
}

/// Feeds readings and returns the last (aggregate, level).
fn feed(c: &Contract, readings: &[(Metric, i32)]) -> (u8, AlertLevel, State) {
    let mut state = c.initial_state();
    let mut last = (0, AlertLevel::Ok);
    for (i, &(metric, value)) in readings.iter().enumerate() {
        let r = reading(metric, 1_000 * i as i64, value);
        let (next, outcome) = c.step(&state, Input::Reading(&r)).expect("step");
        state = next;
        let Reason::News2(reason) = outcome.reason else {
            panic!("reason")
        };
        assert_eq!(reason.level, outcome.level);
        last = (reason.aggregate, outcome.level);
    }
    (last.0, last.1, state)
}

const NORMAL: [(Metric, i32); 7] = [
    (Metric::RespirationRate, 160),
    (Metric::SpO2, 980),
    (Metric::SupplementalOxygen, 0),
    (Metric::SystolicBp, 120),
    (Metric::HeartRate, 700),
    (Metric::Consciousness, 0),
    (Metric::BodyTemperature, 3700),
];

fn with(changes: &[(Metric, i32)]) -> Vec<(Metric, i32)> {
    let mut v = NORMAL.to_vec();
    v.extend_from_slice(changes);
    v
}

fn score_and_level(c: &Contract, readings: &[(Metric, i32)]) -> (u8, AlertLevel) {
    let (score, level, _) = feed(c, readings);
    (score, level)
}

#[test]
fn levels_for_each_band() {
    let c = contract(1, AlertLevel::Ok);
    assert_eq!(score_and_level(&c, &NORMAL), (0, AlertLevel::Ok));
    // Low (pulse 91 → 1): level 0 by default, 1 when configured.
    let low = with(&[(Metric::HeartRate, 910)]);
    assert_eq!(score_and_level(&c, &low), (1, AlertLevel::Ok));
    assert_eq!(
        score_and_level(&contract(1, AlertLevel::Warning), &low),
        (1, AlertLevel::Warning)
    );
    // Low 4 without a red parameter: still low.
    let four = with(&[(Metric::HeartRate, 1200), (Metric::RespirationRate, 220)]);
    assert_eq!(score_and_level(&c, &four), (4, AlertLevel::Ok));
    // A 3 in a single parameter (new confusion): warning.
    let red = with(&[(Metric::Consciousness, 1)]);
    assert_eq!(score_and_level(&c, &red), (3, AlertLevel::Warning));
    // Medium, 5 and 6: warning.
    let five = with(&[
        (Metric::HeartRate, 1200),
        (Metric::RespirationRate, 220),
        (Metric::BodyTemperature, 3850),
    ]);
    assert_eq!(score_and_level(&c, &five), (5, AlertLevel::Warning));
    let six = with(&[
        (Metric::HeartRate, 1200),
        (Metric::RespirationRate, 220),
        (Metric::SupplementalOxygen, 1),
    ]);
    assert_eq!(score_and_level(&c, &six), (6, AlertLevel::Warning));
    // High, 7 and more: critical.
    let seven = with(&[
        (Metric::HeartRate, 1200),
        (Metric::RespirationRate, 220),
        (Metric::SupplementalOxygen, 1),
        (Metric::BodyTemperature, 3850),
    ]);
    assert_eq!(score_and_level(&c, &seven), (7, AlertLevel::Critical));
    let all_red = [
        (Metric::RespirationRate, 300),
        (Metric::SpO2, 850),
        (Metric::SupplementalOxygen, 1),
        (Metric::SystolicBp, 80),
        (Metric::HeartRate, 1500),
        (Metric::Consciousness, 4),
        (Metric::BodyTemperature, 3400),
    ];
    assert_eq!(score_and_level(&c, &all_red), (20, AlertLevel::Critical));
}

#[test]
fn spo2_scale2_follows_supplemental_oxygen() {
    let c = contract(2, AlertLevel::Ok);
    // 97 % on air scores 0 on scale 2; on oxygen it scores 3, plus 2 for the oxygen.
    assert_eq!(
        score_and_level(&c, &with(&[(Metric::SpO2, 970)])),
        (0, AlertLevel::Ok)
    );
    let on_o2 = with(&[(Metric::SpO2, 970), (Metric::SupplementalOxygen, 1)]);
    assert_eq!(score_and_level(&c, &on_o2), (5, AlertLevel::Warning));
    // Scale 1 would score 97 % as 0, so on oxygen only the 2 for oxygen.
    assert_eq!(
        score_and_level(&contract(1, AlertLevel::Ok), &on_o2),
        (2, AlertLevel::Ok)
    );
}

#[test]
fn stale_parameters_drop_out_at_the_freshness_edge() {
    let c = contract(1, AlertLevel::Ok);
    let mut state = c.initial_state();
    let r = reading(Metric::Consciousness, 0, 2);
    let (next, outcome) = c.step(&state, Input::Reading(&r)).expect("step");
    state = next;
    assert_eq!(outcome.level, AlertLevel::Warning);
    let (next, outcome) = c
        .step(&state, Input::Tick { now_ms: 600_000 })
        .expect("tick");
    assert_eq!(
        outcome.level,
        AlertLevel::Warning,
        "fresh at exactly freshness_ms"
    );
    let (next, outcome) = c
        .step(&next, Input::Tick { now_ms: 600_001 })
        .expect("tick");
    assert_eq!(outcome.level, AlertLevel::Ok);
    let Reason::News2(reason) = outcome.reason else {
        panic!()
    };
    assert_eq!(reason.subscores, [None; 7]);
    // An older tick moves nothing back.
    let (_, outcome) = c.step(&next, Input::Tick { now_ms: 0 }).expect("tick");
    assert_eq!(outcome.level, AlertLevel::Ok);
    // A reading older than its parameter's latest is refused.
    let older = reading(Metric::Consciousness, -1, 0);
    assert!(matches!(
        c.step(&state, Input::Reading(&older)),
        Err(StepError::OutOfOrder { .. })
    ));
}

#[test]
fn unknown_codes_and_metrics_are_refused() {
    let c = contract(1, AlertLevel::Ok);
    let s = c.initial_state();
    for (metric, value) in [
        (Metric::Consciousness, 5),
        (Metric::Consciousness, -1),
        (Metric::SupplementalOxygen, 2),
    ] {
        let r = reading(metric, 0, value);
        assert!(matches!(
            c.step(&s, Input::Reading(&r)),
            Err(StepError::ValueOutOfRange { .. })
        ));
    }
    let r = reading(Metric::RrInterval, 0, 800);
    assert!(matches!(
        c.step(&s, Input::Reading(&r)),
        Err(StepError::UnexpectedMetric { .. })
    ));
    for bad in [
        News2Params {
            spo2_scale: 3,
            freshness_ms: 1,
            low_score_level: AlertLevel::Ok,
        },
        News2Params {
            spo2_scale: 1,
            freshness_ms: 0,
            low_score_level: AlertLevel::Ok,
        },
        News2Params {
            spo2_scale: 1,
            freshness_ms: 1,
            low_score_level: AlertLevel::Critical,
        },
    ] {
        assert!(Params::News2(bad).validate().is_err());
    }
}
