//! Accuracy and streaming / batch equivalence on the shared MIT-BIH records. Skips, with a
//! message, when the records are absent (set `VIGIL_MITDB` to point elsewhere).
#![allow(clippy::unwrap_used)]

use vigil_ecg::detect::DELAY_MAX_MS;
use vigil_ecg::evaluate::{evaluate_af, evaluate_beats, list_records, mitdb_dir};
use vigil_ecg::score::{self, BeatScore};
use vigil_ecg::wfdb::{Record, read_annotations};
use vigil_ecg::{QrsDetector, detect};

/// Acceptance of issue 3: gross Se and +P of at least 99.5 % over every record present.
#[test]
fn gross_sensitivity_and_positive_predictivity_at_least_99_5() {
    let Some(dir) = mitdb_dir(env!("CARGO_MANIFEST_DIR")) else {
        return;
    };
    let mut gross = BeatScore::default();
    let names = list_records(&dir).unwrap();
    for name in &names {
        let evaluation = evaluate_beats(&dir.join(name), 0).unwrap();
        let s = evaluation.score;
        println!(
            "{name}: TP {} FP {} FN {} Se {:.2} +P {:.2}",
            s.true_positives,
            s.false_positives,
            s.false_negatives,
            s.sensitivity_pct(),
            s.positive_predictivity_pct()
        );
        gross += s;
    }
    let (se, ppv) = (gross.sensitivity_pct(), gross.positive_predictivity_pct());
    println!(
        "gross over {} records: {gross:?} Se {se:.3} +P {ppv:.3}",
        names.len()
    );
    assert!(se >= 99.5 && ppv >= 99.5, "gross Se {se:.3} +P {ppv:.3}");
}

/// A deterministic chunk-size generator (xorshift).
fn chunk_sizes(seed: u64, max: usize) -> impl FnMut() -> usize {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        1 + (state % max as u64) as usize
    }
}

#[test]
fn streaming_in_random_chunks_equals_batch_on_records() {
    let Some(dir) = mitdb_dir(env!("CARGO_MANIFEST_DIR")) else {
        return;
    };
    for name in ["108", "203", "207", "104"] {
        let path = dir.join(name);
        assert!(
            path.with_extension("hea").exists(),
            "record {name} is missing from {}",
            dir.display()
        );
        let record = Record::open(&path).unwrap();
        let fs = record.sampling_frequency_hz();
        let signal = &record.signals[0];
        let batch = detect(signal, fs).unwrap();
        assert!(
            batch.windows(2).all(|pair| pair[0].sample < pair[1].sample),
            "{name}: beats out of order"
        );
        for (seed, max) in [(1u64, 7usize), (2, 500), (3, 70_000)] {
            let mut next = chunk_sizes(seed, max);
            let mut detector = QrsDetector::new(fs).unwrap();
            let mut streamed = Vec::new();
            let mut rest = &signal[..];
            while !rest.is_empty() {
                let (chunk, tail) = rest.split_at(next().min(rest.len()));
                detector.push(chunk, &mut streamed);
                rest = tail;
            }
            detector.finish(&mut streamed);
            assert_eq!(streamed, batch, "record {name}, seed {seed}");
        }
    }
}

/// Every beat is reported within `DELAY_MAX_MS` of its R peak, sample by sample.
#[test]
fn streaming_delay_is_bounded_on_records() {
    let Some(dir) = mitdb_dir(env!("CARGO_MANIFEST_DIR")) else {
        return;
    };
    for name in ["108", "203"] {
        let path = dir.join(name);
        assert!(
            path.with_extension("hea").exists(),
            "record {name} is missing from {}",
            dir.display()
        );
        let record = Record::open(&path).unwrap();
        let fs = record.sampling_frequency_hz();
        let bound = (DELAY_MAX_MS * fs / 1000.0).ceil() as u64;
        let mut detector = QrsDetector::new(fs).unwrap();
        let bytes = detector.state_bytes();
        let mut beats = Vec::new();
        let mut worst = 0;
        for (n, &sample) in record.signals[0].iter().enumerate() {
            let before = beats.len();
            detector.push(&[sample], &mut beats);
            for beat in &beats[before..] {
                worst = worst.max(n as u64 - beat.sample);
            }
        }
        assert_eq!(detector.state_bytes(), bytes, "state must not grow");
        println!("{name}: worst reporting delay {worst} samples, bound {bound}");
        assert!(worst <= bound, "{name}: delay {worst} > {bound}");
    }
}

#[test]
fn af_is_found_in_af_records() {
    let Some(dir) = mitdb_dir(env!("CARGO_MANIFEST_DIR")) else {
        return;
    };
    for name in ["201", "203", "217"] {
        let path = dir.join(name);
        assert!(
            path.with_extension("hea").exists(),
            "record {name} is missing from {}",
            dir.display()
        );
        let evaluation = evaluate_af(&path, 0).unwrap();
        let s = evaluation.score;
        println!(
            "{name}: AF duration Se {:.1} Sp {:.1}",
            s.duration_sensitivity_pct(),
            s.duration_specificity_pct()
        );
        assert!(
            s.af_samples > 0 && s.duration_sensitivity_pct() > 60.0,
            "{name}: {s:?}"
        );
    }
}

#[test]
fn annotations_carry_rhythm_labels() {
    let Some(dir) = mitdb_dir(env!("CARGO_MANIFEST_DIR")) else {
        return;
    };
    let path = dir.join("201");
    if !path.with_extension("atr").exists() {
        return;
    }
    let annotations = read_annotations(&path, "atr").unwrap();
    assert!(
        annotations
            .iter()
            .any(|a| a.aux.as_deref() == Some("(AFIB"))
    );
    assert!(
        annotations
            .windows(2)
            .all(|pair| pair[0].sample <= pair[1].sample)
    );
}

/// Linear interpolation to `factor / divisor` times the rate (a crude resampler, enough to move
/// the sampling rate away from 360 Hz for the test).
fn rescale(signal: &[i32], factor: usize, divisor: usize) -> Vec<i32> {
    let len = signal.len() * factor / divisor;
    (0..len)
        .map(|m| {
            let position = (m * divisor) as f64 / factor as f64;
            let i = position.floor() as usize;
            let frac = position - i as f64;
            let a = f64::from(signal[i.min(signal.len() - 1)]);
            let b = f64::from(signal[(i + 1).min(signal.len() - 1)]);
            (a + frac * (b - a)).round() as i32
        })
        .collect()
}

/// Streams `strip` one sample at a time, checking that every beat is reported within
/// `DELAY_MAX_MS` of its R peak, and returns the R-peak samples.
fn stream_with_delay_bound(strip: &[i32], fs: f64) -> Vec<u64> {
    let bound = (DELAY_MAX_MS * fs / 1000.0).ceil() as u64;
    let mut detector = QrsDetector::new(fs).unwrap();
    let mut beats = Vec::new();
    for (n, &sample) in strip.iter().enumerate() {
        let before = beats.len();
        detector.push(&[sample], &mut beats);
        for beat in &beats[before..] {
            let delay = n as u64 - beat.sample;
            assert!(
                delay <= bound,
                "{fs} Hz: beat reported {delay} samples late (bound {bound})"
            );
        }
    }
    detector.finish(&mut beats);
    beats.iter().map(|b| b.sample).collect()
}

/// No blind start: 10-s pieces of the records, cut at many offsets, at 180, 250, 360, 500 and
/// 720 Hz; the beats from 0.3 s on are found (issue 16: every beat of the first 3 s used to be
/// missed), streaming sample by sample gives the batch beats, each within `DELAY_MAX_MS`.
#[test]
fn ten_second_pieces_at_several_rates_find_beats_from_the_start() {
    let Some(dir) = mitdb_dir(env!("CARGO_MANIFEST_DIR")) else {
        return;
    };
    for (factor, divisor) in [(1usize, 2usize), (25, 36), (1, 1), (25, 18), (2, 1)] {
        let (mut whole, mut start) = (BeatScore::default(), BeatScore::default());
        for name in [
            "101", "106", "112", "116", "119", "201", "208", "215", "223", "230",
        ] {
            let path = dir.join(name);
            if !path.with_extension("hea").exists() {
                continue;
            }
            let record = Record::open(&path).unwrap();
            let truth = vigil_ecg::evaluate::reference(&path, record.len()).unwrap();
            let fs = record.sampling_frequency_hz() * factor as f64 / divisor as f64;
            let piece = (10.0 * record.sampling_frequency_hz()) as usize;
            for from in (0..record.len().saturating_sub(piece)).step_by(piece * 5 + 1237) {
                let strip = rescale(&record.signals[0][from..from + piece], factor, divisor);
                let beats: Vec<u64> = detect(&strip, fs)
                    .unwrap()
                    .iter()
                    .map(|b| b.sample)
                    .collect();
                assert_eq!(
                    stream_with_delay_bound(&strip, fs),
                    beats,
                    "{name} from {from} at {fs} Hz: streaming differs from batch"
                );
                let mut reference = score::Reference {
                    beats: truth
                        .beats
                        .iter()
                        .filter(|&&b| (from as u64..(from + piece) as u64).contains(&b))
                        .map(|&b| (b - from as u64) * factor as u64 / divisor as u64)
                        .collect(),
                    ..score::Reference::default()
                };
                let window = (0.15 * fs) as u64;
                let (early, end) = ((0.3 * fs) as u64, (9.5 * fs) as u64);
                reference.excluded = vec![(end, u64::MAX)];
                whole += score::score_beats(&reference, &beats, window, early);
                reference.excluded = vec![((3.0 * fs) as u64, u64::MAX)];
                start += score::score_beats(&reference, &beats, window, early);
            }
        }
        let fs = 360 * factor / divisor;
        println!(
            "{fs} Hz: 0.3-9.5 s Se {:.2} +P {:.2}; 0.3-3 s Se {:.2} +P {:.2} ({:?})",
            whole.sensitivity_pct(),
            whole.positive_predictivity_pct(),
            start.sensitivity_pct(),
            start.positive_predictivity_pct(),
            start
        );
        assert!(whole.sensitivity_pct() >= 99.0, "{fs} Hz: {whole:?}");
        assert!(
            whole.positive_predictivity_pct() >= 99.0,
            "{fs} Hz: {whole:?}"
        );
        assert!(start.sensitivity_pct() >= 98.0, "{fs} Hz: {start:?}");
        assert!(
            start.positive_predictivity_pct() >= 98.0,
            "{fs} Hz: {start:?}"
        );
    }
}
