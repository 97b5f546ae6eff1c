//! Beat agreement between two detectors (bSQI, after Li, Mark & Clifford, "Robust heart rate
//! estimation from multiple asynchronous noisy sources using signal quality indices and a
//! Kalman filter", Physiol. Meas. 29:15–32, 2008): the share of beats both detectors report,
//! `matched / (primary + secondary - matched)`, two beats matching within [`MATCH_MS`], over a
//! window of [`WINDOW_S`] (both values as in that paper's bSQI).
//!
//! The second detector sees the signal through a high-frequency emphasis (see
//! [`secondary_beats`]), so slow electrode-motion and baseline transients reach it weaker
//! than the QRS complexes; on clean signal both detectors find the same beats and the index is
//! near 1.
//! A primary beat the second detector does not confirm, inside a window whose bSQI is below
//! [`BSQI_MIN`], is withheld. The threshold was fixed before any evaluation (Li et al. treat
//! bSQI as a continuous weight; 0.8 means one beat in five disputed).

use crate::detect;

/// Two detections within this distance are the same beat (Li et al. 2008: 150 ms).
pub const MATCH_MS: f64 = 150.0;
/// Window over which the agreement is measured (Li et al. 2008: 10 s).
pub const WINDOW_S: f64 = 10.0;
/// Agreement below which unconfirmed beats are withheld.
pub const BSQI_MIN: f64 = 0.8;
/// Lag of the differences of the second detector's input.
const DIFFERENCE_MS: f64 = 10.0;

/// The second detector's beats: the same decision rules on a differently filtered signal, a
/// 10-ms difference applied twice (gain `4 sin²(π f · 10 ms)`: 9 times more at 15 Hz than at
/// 5 Hz, 3 times more than at 8 Hz), which weakens slow motion and baseline transients
/// against the QRS complexes.
pub fn secondary_beats(signal: &[i32], fs: f64) -> Vec<u64> {
    let lag = ((DIFFERENCE_MS * fs / 1000.0).round() as usize).max(1);
    let emphasised = difference(&difference(signal, lag), lag);
    detect(&emphasised, fs)
        .map(|beats| beats.iter().map(|b| b.sample).collect())
        .unwrap_or_default()
}

/// `x[n] - x[n - lag]` (the first `lag` samples against the first sample).
fn difference(signal: &[i32], lag: usize) -> Vec<i32> {
    (0..signal.len())
        .map(|n| {
            let before = signal[n.saturating_sub(lag)];
            signal[n].saturating_sub(before)
        })
        .collect()
}

/// For each of the sorted `beats`, whether a sorted `other` beat lies within `tolerance`.
fn confirmed(beats: &[u64], other: &[u64], tolerance: u64) -> Vec<bool> {
    beats
        .iter()
        .map(|&b| {
            let first = other.partition_point(|&o| o + tolerance < b);
            other.get(first).is_some_and(|&o| o <= b + tolerance)
        })
        .collect()
}

/// The primary `beats` (sorted) to withhold: not confirmed by the second detector and inside a
/// window, centred on the beat, whose bSQI is below [`BSQI_MIN`].
pub fn withheld_beats(signal: &[i32], fs: f64, beats: &[u64]) -> Vec<u64> {
    if !(fs.is_finite() && fs > 0.0) || beats.is_empty() {
        return Vec::new();
    }
    let secondary = secondary_beats(signal, fs);
    let tolerance = (MATCH_MS * fs / 1000.0).round() as u64;
    let half = (WINDOW_S * fs / 2.0) as u64;
    let ok = confirmed(beats, &secondary, tolerance);
    let mut prefix = Vec::with_capacity(beats.len() + 1);
    prefix.push(0usize);
    for &c in &ok {
        prefix.push(prefix.last().copied().unwrap_or(0) + usize::from(c));
    }
    beats
        .iter()
        .zip(&ok)
        .filter(|&(_, &c)| !c)
        .filter_map(|(&b, _)| {
            let (from, to) = (b.saturating_sub(half), b + half);
            let low = beats.partition_point(|&p| p < from);
            let high = beats.partition_point(|&p| p < to);
            let matched = prefix[high] - prefix[low];
            let second =
                secondary.partition_point(|&p| p < to) - secondary.partition_point(|&p| p < from);
            let union = (high - low) + second - matched.min(second);
            let bsqi = matched as f64 / union.max(1) as f64;
            (bsqi < BSQI_MIN).then_some(b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spikes every 0.8 s at 250 Hz, plus `extra` slow bumps (motion-like) between them.
    fn signal(extra: bool) -> Vec<i32> {
        (0..250 * 30)
            .map(|n: i32| {
                let phase = n % 200;
                let spike = if (98..=102).contains(&phase) {
                    200 - 40 * (phase - 100).abs()
                } else {
                    0
                };
                let t = f64::from(n % 200 - 150) / 250.0;
                let bump = if extra && n % 400 >= 300 {
                    (260.0 * (-(t * t) / (2.0 * 0.04 * 0.04)).exp()) as i32
                } else {
                    0
                };
                spike + bump
            })
            .collect()
    }

    #[test]
    fn matching_is_within_the_tolerance() {
        assert_eq!(
            confirmed(&[100, 500, 900], &[120, 700, 960], 40),
            vec![true, false, false]
        );
        assert!(confirmed(&[5], &[], 10).iter().all(|c| !c));
    }

    #[test]
    fn clean_beats_are_confirmed_and_nothing_is_withheld() {
        let clean = signal(false);
        let beats: Vec<u64> = detect(&clean, 250.0)
            .unwrap()
            .iter()
            .map(|b| b.sample)
            .collect();
        assert!(beats.len() > 30);
        assert!(withheld_beats(&clean, 250.0, &beats).is_empty());
        assert!(withheld_beats(&clean, f64::NAN, &beats).is_empty());
    }

    #[test]
    fn slow_bumps_taken_for_beats_are_withheld() {
        let noisy = signal(true);
        // Beats as a fooled detector would report them: the spikes and the bumps.
        let mut beats: Vec<u64> = (0..37).map(|k| 100 + 200 * k).collect();
        let bumps: Vec<u64> = (0..18).map(|k| 350 + 400 * k).collect();
        beats.extend(&bumps);
        beats.sort_unstable();
        let withheld = withheld_beats(&noisy, 250.0, &beats);
        let spikes_withheld = withheld.iter().filter(|&&b| b % 200 == 100).count();
        assert_eq!(spikes_withheld, 0, "{withheld:?}");
        assert!(withheld.len() >= bumps.len() / 2, "{withheld:?}");
    }
}
