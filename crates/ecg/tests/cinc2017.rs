//! No blind start on the CinC 2017 validation strips (short hand-held recordings at 300 Hz).
//! The strips carry no beat annotations, so the reference for their first seconds is the
//! detector itself once warmed up: the same strip detected after a first pass over it (the
//! strip played twice), i.e. with the thresholds of its steady state. This measures what a cold
//! start loses, not the detector's absolute accuracy. Skips, with a message, when the strips are
//! absent (set `VIGIL_CINC2017` to point elsewhere).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use vigil_ecg::detect;
use vigil_ecg::score::{self, BeatScore};
use vigil_ecg::wfdb::Record;

fn cinc_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("VIGIL_CINC2017") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cinc2017"),
    };
    if dir.join("REFERENCE.csv").exists() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: CinC 2017 strips not found at {}", dir.display());
        None
    }
}

/// The first 3 s of a cold start find the beats the warmed-up detector finds there.
#[test]
fn first_three_seconds_of_strips_match_the_warmed_up_detector() {
    let Some(dir) = cinc_dir() else {
        return;
    };
    let labels = std::fs::read_to_string(dir.join("REFERENCE.csv")).unwrap();
    let (mut total, mut strips) = (BeatScore::default(), 0);
    let mut worst: Vec<(f64, String)> = Vec::new();
    for line in labels.lines() {
        let Some((name, label)) = line.trim().split_once(',') else {
            continue;
        };
        // Strips judged too noisy to classify have no steady state to compare with.
        if label == "~" {
            continue;
        }
        let record = Record::open(&dir.join(name)).unwrap();
        let fs = record.sampling_frequency_hz();
        let strip = &record.signals[0];
        let cold: Vec<u64> = detect(strip, fs)
            .unwrap()
            .iter()
            .map(|b| b.sample)
            .collect();
        let twice: Vec<i32> = strip.iter().chain(strip).copied().collect();
        let len = strip.len() as u64;
        let warm: Vec<u64> = detect(&twice, fs)
            .unwrap()
            .iter()
            .filter(|b| b.sample >= len)
            .map(|b| b.sample - len)
            .collect();
        // From 0.3 s (the junction of the two copies is a step) to 3 s.
        let reference = score::Reference {
            beats: warm,
            excluded: vec![((3.0 * fs) as u64, u64::MAX)],
            ..score::Reference::default()
        };
        let s = score::score_beats(&reference, &cold, (0.15 * fs) as u64, (0.3 * fs) as u64);
        worst.push((
            s.sensitivity_pct().min(s.positive_predictivity_pct()),
            name.to_owned(),
        ));
        total += s;
        strips += 1;
    }
    worst.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!(
        "{strips} strips, 0.3-3 s, cold vs warmed-up: Se {:.2} +P {:.2} ({total:?}); worst {:?}",
        total.sensitivity_pct(),
        total.positive_predictivity_pct(),
        &worst[..worst.len().min(5)]
    );
    assert!(strips >= 200, "only {strips} strips read");
    assert!(total.sensitivity_pct() >= 97.0, "{total:?}");
    assert!(total.positive_predictivity_pct() >= 97.0, "{total:?}");
}
