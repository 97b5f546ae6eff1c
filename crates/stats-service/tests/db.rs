//! DP database: bucketed answers equal a full scan, for any window, cohort and edges.

use proptest::prelude::*;
use vigil_privstats::dp::PlainAnswer;
use vigil_privstats::query::Metric;
use vigil_stats_service::db::{DpDatabase, GeneratorConfig, Row, generate};

fn scan(
    rows: &[Row],
    metric: Metric,
    from: i64,
    to: i64,
    cohort: &[String],
    edges: &[u32],
) -> PlainAnswer {
    let mut a = PlainAnswer {
        bins: vec![0; edges.len().saturating_sub(1)],
        ..Default::default()
    };
    for r in rows
        .iter()
        .filter(|r| r.t >= from && r.t < to && (cohort.is_empty() || cohort.contains(&r.patient)))
    {
        let v = match metric {
            Metric::Hr => r.hr,
            Metric::Rr => r.rr,
        };
        a.add_value(u64::from(v), 1, edges);
    }
    a
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn bucketed_answer_equals_scan(seed in 0u64..1000, from in 0i64..40_000, len in 1i64..60_000, hr in any::<bool>(), cohort in any::<bool>()) {
        let cfg = GeneratorConfig { rows: 6_000, patients: 3, start_s: 0, step_s: 20, seed, ..Default::default() };
        let rows: Vec<Row> = generate(&cfg).collect();
        let mut db = DpDatabase::open_in_memory().expect("db");
        db.insert(rows.clone()).expect("insert");
        let metric = if hr { Metric::Hr } else { Metric::Rr };
        let cohort: Vec<String> = if cohort { vec!["p0".into(), "p2".into()] } else { vec![] };
        let edges: Vec<u32> = if hr { vec![0, 60, 70, 80, 90, 256] } else { vec![300, 600, 700, 800, 900, 1000, 1200] };
        for e in [&[][..], &edges[..]] {
            let got = db.answer(metric, from, from + len, &cohort, e).expect("answer");
            let want = scan(&rows, metric, from, from + len, &cohort, e);
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn generator_is_realistic() {
    let rows: Vec<Row> = generate(&GeneratorConfig::default()).collect();
    assert_eq!(rows.len(), 302_400);
    for p in ["p0", "p3"] {
        let rr: Vec<f64> = rows
            .iter()
            .filter(|r| r.patient == p)
            .map(|r| f64::from(r.rr))
            .collect();
        let hr: Vec<f64> = rows
            .iter()
            .filter(|r| r.patient == p)
            .map(|r| f64::from(r.hr))
            .collect();
        // RR consistent with HR on average.
        let mean_rr = rr.iter().sum::<f64>() / rr.len() as f64;
        let mean_hr = hr.iter().sum::<f64>() / hr.len() as f64;
        assert!(
            (mean_rr - 60_000.0 / mean_hr).abs() / mean_rr < 0.05,
            "{p}: {mean_rr} vs {mean_hr}"
        );
        // Successive-difference irregularity: high for the AF patient (p3), low in sinus rhythm.
        let rmssd = (rr.windows(2).map(|w| (w[1] - w[0]).powi(2)).sum::<f64>() / rr.len() as f64)
            .sqrt()
            / mean_rr;
        if p == "p3" {
            assert!(rmssd > 0.2, "{p} rmssd {rmssd}");
        } else {
            assert!(rmssd < 0.1, "{p} rmssd {rmssd}");
        }
    }
}

#[test]
fn import_beats_skips_artefacts() {
    let mut db = DpDatabase::open_in_memory().expect("db");
    let (n, skipped) = db
        .import_beats("ecg-100", 0, &[800, 810, 5000, 790, 100], &[true; 5])
        .expect("import");
    assert_eq!((n, skipped), (3, 2));
    let a = db.answer(Metric::Rr, 0, 100, &[], &[]).expect("answer");
    assert_eq!((a.count, a.sum), (3, 2400));
}

#[test]
fn import_beats_takes_only_usable_intervals() {
    let mut db = DpDatabase::open_in_memory().expect("db");
    let (n, skipped) = db
        .import_beats(
            "ecg-105",
            0,
            &[800, 400, 820, 790],
            &[true, false, true, false],
        )
        .expect("import");
    assert_eq!((n, skipped), (2, 2));
    let a = db.answer(Metric::Rr, 0, 100, &[], &[]).expect("answer");
    assert_eq!((a.count, a.sum), (2, 1620));
    assert!(
        db.import_beats("ecg-105", 10, &[800, 810], &[true])
            .is_err()
    );
}
