//! Streaming / batch equivalence and robustness on synthetic signals, at several sampling rates.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use vigil_ecg::{Beat, QrsDetector, detect};

/// A synthetic ECG: a QRS-like triangle (`qrs_ms` wide, `amplitude` high) at each of `beats`,
/// a slower T-like bump 250 ms later, baseline wander and deterministic noise.
fn synthetic(fs: f64, beats: &[f64], len_s: f64, amplitude: f64, noise: f64) -> Vec<i32> {
    let len = (len_s * fs) as usize;
    let mut signal = vec![0.0f64; len];
    let qrs = 0.04 * fs;
    for &t in beats {
        let centre = t * fs;
        for (n, value) in signal.iter_mut().enumerate() {
            let d = (n as f64 - centre).abs();
            if d < qrs {
                *value += amplitude * (1.0 - d / qrs);
            }
            let dt = (n as f64 - centre - 0.25 * fs).abs();
            if dt < 0.1 * fs {
                *value += 0.25 * amplitude * (1.0 - dt / (0.1 * fs));
            }
        }
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for (n, value) in signal.iter_mut().enumerate() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let uniform = (state % 2001) as f64 / 1000.0 - 1.0;
        *value += noise * uniform
            + 0.3 * amplitude * (2.0 * std::f64::consts::PI * 0.2 * n as f64 / fs).sin();
    }
    signal.into_iter().map(|v| v.round() as i32).collect()
}

fn beat_times(rr_s: &[f64]) -> Vec<f64> {
    let mut t = 0.5;
    rr_s.iter()
        .map(|rr| {
            t += rr;
            t
        })
        .collect()
}

fn stream(samples: &[i32], fs: f64, chunks: &[usize]) -> Vec<Beat> {
    let mut detector = QrsDetector::new(fs).unwrap();
    let mut beats = Vec::new();
    let mut rest = samples;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let size = sizes.next().copied().unwrap_or(1).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(size);
        detector.push(chunk, &mut beats);
        rest = tail;
    }
    detector.finish(&mut beats);
    beats
}

#[test]
fn finds_every_beat_at_any_sampling_rate() {
    let rr: Vec<f64> = (0..60)
        .map(|i| 0.7 + 0.15 * ((i as f64) * 0.7).sin())
        .collect();
    let times = beat_times(&rr);
    for fs in [128.0, 200.0, 250.0, 360.0, 500.0, 1000.0] {
        let signal = synthetic(fs, &times, 50.0, 400.0, 10.0);
        let beats = detect(&signal, fs).unwrap();
        // From the first beat on (no blind start), every beat once, within 20 ms of the true
        // peak.
        let expected: Vec<f64> = times.iter().copied().filter(|&t| t < 49.0).collect();
        let found: Vec<f64> = beats
            .iter()
            .map(|b| b.sample as f64 / fs)
            .filter(|&t| t < 49.1)
            .collect();
        assert_eq!(found.len(), expected.len(), "fs {fs}: {found:?}");
        for (f, e) in found.iter().zip(&expected) {
            assert!(
                (f - e).abs() <= 0.02,
                "fs {fs}: beat at {f} s, expected {e} s"
            );
        }
    }
}

#[test]
fn rejects_unsupported_sampling_rates() {
    assert!(QrsDetector::new(10.0).is_err());
    assert!(QrsDetector::new(f64::NAN).is_err());
    assert!(QrsDetector::new(1e6).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random rhythms, amplitudes, noise and chunkings: streaming equals batch.
    #[test]
    fn streaming_equals_batch_on_synthetic_signals(
        rr in prop::collection::vec(0.3f64..1.6, 10..40),
        amplitude in 20.0f64..3000.0,
        noise in 0.0f64..80.0,
        fs in prop::sample::select(vec![125.0, 250.0, 360.0, 500.0]),
        chunks in prop::collection::vec(1usize..900, 1..8),
    ) {
        let times = beat_times(&rr);
        let len_s = times.last().copied().unwrap_or(1.0) + 1.0;
        let signal = synthetic(fs, &times, len_s, amplitude, noise);
        let batch = detect(&signal, fs).unwrap();
        prop_assert_eq!(stream(&signal, fs, &chunks), batch);
    }

    /// Arbitrary sample values (including extremes): no panic, and streaming equals batch.
    #[test]
    fn arbitrary_samples_never_panic(
        samples in prop::collection::vec(any::<i32>(), 0..6000),
        chunks in prop::collection::vec(1usize..700, 1..5),
    ) {
        let batch = detect(&samples, 200.0).unwrap();
        prop_assert!(batch.windows(2).all(|p| p[0].sample < p[1].sample));
        prop_assert_eq!(stream(&samples, 200.0, &chunks), batch);
    }
}
