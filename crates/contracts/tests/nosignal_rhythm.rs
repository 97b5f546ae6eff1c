//! No-signal timing and heart rhythm (rate bands and irregularity).

use vigil_contracts::rhythm::irregularity_permille;
use vigil_contracts::{
    Audience, Contract, HeartRhythmParams, Input, IrregularityMethod, IrregularityParams,
    NoSignalParams, Params, Reason, State, StepError, ThresholdParams,
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

enum In {
    R(i64),
    T(i64),
}

fn no_signal() -> Contract {
    Params::NoSignal(NoSignalParams {
        interval_ms: 60_000,
        grace_ms: 120_000,
    })
    .validate()
    .expect("valid")
}

fn drive(c: &Contract, inputs: &[In]) -> Vec<(u8, Audience)> {
    let mut state = c.initial_state();
    inputs
        .iter()
        .map(|input| {
            let r;
            let input = match *input {
                In::R(t) => {
                    r = reading(Metric::HeartRate, t, 700);
                    Input::Reading(&r)
                }
                In::T(t) => Input::Tick { now_ms: t },
            };
            let (next, outcome) = c.step(&state, input).expect("step");
            state = next;
            (outcome.level.code(), outcome.audience)
        })
        .collect()
}

#[test]
fn reminder_then_staff_alert_then_clear() {
    use Audience::*;
    let t0 = 1_700_000_000_000;
    let got = drive(
        &no_signal(),
        &[
            In::R(t0),
            In::T(t0 + 60_000),
            In::T(t0 + 60_001),
            In::T(t0 + 180_000),
            In::T(t0 + 180_001),
            In::R(t0 + 200_000),
            In::T(t0 + 200_000),
        ],
    );
    assert_eq!(
        got,
        vec![
            (0, Nobody),
            (0, Nobody),
            (1, Person),
            (1, Person),
            (2, PersonAndStaff),
            (0, Nobody),
            (0, Nobody)
        ]
    );
}

#[test]
fn the_first_tick_arms_a_silent_device() {
    let got = drive(
        &no_signal(),
        &[In::T(1_000), In::T(61_000), In::T(61_001), In::T(181_001)],
    );
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        vec![0, 0, 1, 2]
    );
}

#[test]
fn an_old_reading_does_not_clear_the_alert() {
    // Store-and-forward delivers a reading stamped during the outage: still silent since then.
    let got = drive(
        &no_signal(),
        &[In::R(0), In::T(200_000), In::R(100_000), In::R(199_999)],
    );
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        vec![0, 2, 1, 0]
    );
}

#[test]
fn no_signal_parameters_are_checked() {
    assert!(
        Params::NoSignal(NoSignalParams {
            interval_ms: 999,
            grace_ms: 0
        })
        .validate()
        .is_err()
    );
    assert!(
        Params::NoSignal(NoSignalParams {
            interval_ms: 1_000,
            grace_ms: u64::MAX
        })
        .validate()
        .is_err()
    );
    Params::NoSignal(NoSignalParams {
        interval_ms: 1_000,
        grace_ms: 0,
    })
    .validate()
    .expect("valid");
}

#[test]
fn irregularity_measure() {
    assert_eq!(irregularity_permille(&[], 50), None);
    assert_eq!(irregularity_permille(&[800], 50), None);
    assert_eq!(irregularity_permille(&[800, 800, 800], 50), Some(0));
    // Differences 50 (not above), 51 (above): 1 of 2.
    assert_eq!(irregularity_permille(&[800, 850, 799], 50), Some(500));
    // 1 of 3, rounded down.
    assert_eq!(irregularity_permille(&[800, 900, 900, 900], 50), Some(333));
    assert_eq!(
        irregularity_permille(&[300, 1_500, 300, 1_500], 50),
        Some(1000)
    );
}

fn rhythm() -> Contract {
    Params::HeartRhythm(HeartRhythmParams {
        rate: Some(ThresholdParams {
            metric: Metric::HeartRate,
            critical_below: Some(400),
            warning_below: Some(500),
            warning_above: Some(1000),
            critical_above: Some(1300),
            for_ms: 0,
            repeat: 1,
            hysteresis: 0,
        }),
        irregularity: Some(IrregularityParams {
            window: 5,
            delta_ms: 100,
            irregular_permille: 500,
            level: AlertLevel::Warning,
            max_gap_ms: 5_000,
            method: IrregularityMethod::Pnn,
        }),
    })
    .validate()
    .expect("valid")
}

fn feed(c: &Contract, state: &mut State, input: &[(Metric, i64, i32)]) -> Vec<u8> {
    input
        .iter()
        .map(|&(m, t, v)| {
            let r = reading(m, t, v);
            let (next, outcome) = c.step(state, Input::Reading(&r)).expect("step");
            *state = next;
            outcome.level.code()
        })
        .collect()
}

#[test]
fn brady_and_tachycardia_bands() {
    let c = rhythm();
    let mut s = c.initial_state();
    let hr = |t: i64, v: i32| (Metric::HeartRate, t, v);
    let got = feed(
        &c,
        &mut s,
        &[
            hr(0, 399),
            hr(1, 400),
            hr(2, 499),
            hr(3, 500),
            hr(4, 1000),
            hr(5, 1001),
            hr(6, 1300),
            hr(7, 1301),
        ],
    );
    assert_eq!(got, vec![2, 1, 1, 0, 0, 1, 1, 2]);
}

#[test]
fn irregular_rhythm_raises_once_the_window_is_full() {
    let c = rhythm();
    let mut s = c.initial_state();
    let rr = |t: i64, v: i32| (Metric::RrInterval, t, v);
    // Alternating 600 / 900 ms: every difference is 300 > 100.
    let got = feed(
        &c,
        &mut s,
        &[
            rr(0, 600),
            rr(900, 900),
            rr(1_500, 600),
            rr(2_400, 900),
            rr(3_000, 600),
            rr(3_900, 900),
        ],
    );
    assert_eq!(got, vec![0, 0, 0, 0, 1, 1]);
    // Regular beats push the irregular ones out: differences [300, 300, 300, 0] = 750 ‰, then
    // [300, 300, 0, 0] = 500 ‰ (still irregular, at the edge), then [300, 0, 0, 0] = 250 ‰.
    let got = feed(
        &c,
        &mut s,
        &[rr(4_800, 900), rr(5_700, 900), rr(6_600, 900)],
    );
    assert_eq!(got, vec![1, 1, 0]);
    // The rate part adds to it: the worse level wins.
    let got = feed(&c, &mut s, &[(Metric::HeartRate, 6_700, 1400)]);
    assert_eq!(got, vec![2]);
    let State::HeartRhythm(state) = &s else {
        panic!()
    };
    assert_eq!(state.rr_ms, vec![600, 900, 900, 900, 900]);
}

#[test]
fn a_gap_restarts_the_window() {
    let c = rhythm();
    let mut s = c.initial_state();
    let rr = |t: i64, v: i32| (Metric::RrInterval, t, v);
    feed(
        &c,
        &mut s,
        &[rr(0, 600), rr(900, 900), rr(1_500, 600), rr(2_400, 900)],
    );
    // 5001 ms later: the window restarts, so four more intervals do not fill it.
    let got = feed(
        &c,
        &mut s,
        &[
            rr(7_401, 600),
            rr(8_301, 900),
            rr(8_901, 600),
            rr(9_801, 900),
        ],
    );
    assert_eq!(got, vec![0, 0, 0, 0]);
    let State::HeartRhythm(state) = &s else {
        panic!()
    };
    assert_eq!(state.rr_ms.len(), 4);
    let r = reading(Metric::RrInterval, 9_802, 0);
    assert!(matches!(
        c.step(&s, Input::Reading(&r)),
        Err(StepError::ValueOutOfRange { .. })
    ));
    let r = reading(Metric::RrInterval, 9_000, 800);
    assert!(matches!(
        c.step(&s, Input::Reading(&r)),
        Err(StepError::OutOfOrder { .. })
    ));
    let (_, outcome) = c.step(&s, Input::Tick { now_ms: 20_000 }).expect("tick");
    assert!(matches!(outcome.reason, Reason::Unchanged { .. }));
}

#[test]
fn heart_rhythm_parameters_are_checked() {
    let none = HeartRhythmParams {
        rate: None,
        irregularity: None,
    };
    assert!(Params::HeartRhythm(none).validate().is_err());
    let Params::HeartRhythm(mut p) = rhythm().params().clone() else {
        panic!()
    };
    if let Some(rate) = p.rate.as_mut() {
        rate.metric = Metric::BodyTemperature;
    }
    assert!(Params::HeartRhythm(p.clone()).validate().is_err());
    p.rate = None;
    if let Some(irr) = p.irregularity.as_mut() {
        irr.window = 3;
    }
    assert!(Params::HeartRhythm(p).validate().is_err());
}
