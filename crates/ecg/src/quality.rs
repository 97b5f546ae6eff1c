//! Signal quality: a per-segment quality index, and which segments are unusable.
//!
//! The record is cut into segments of [`SEGMENT_S`]. Each segment gets established measures:
//!
//! - **Flat line**: a run of identical samples of at least [`FLAT_MS`] (lead-off, a disconnected
//!   amplifier).
//! - **Saturation**: a run of at least [`SATURATION_MS`] at the segment's extreme value (ADC
//!   clipping; no R peak stays flat that long).
//! - **Beat-template agreement** (after Orphanidou et al., IEEE JBHI 19(3), 2015, whose
//!   correlation threshold 0.66 is used unchanged): each detected beat's waveform over
//!   ±[`BEAT_HALF_MS`] is correlated with every other beat within ±[`PEER_S`]; a beat that
//!   resembles none (correlation below [`MATCH_CORRELATION`]) is most likely noise taken for a
//!   QRS. Comparing with the best peer rather than the average template keeps frequent ectopic
//!   beats (bigeminy, multiform PVCs that recur) matched. The quality index is the percentage of
//!   the segment's beats that are matched.
//! - **Plausible count**: more beats than [`RATE_MAX_BPM`] allows is noise.
//! - **Kurtosis** of the baseline-removed signal (kSQI, Li, Clark & Clifford, Physiol. Meas.
//!   29, 2008) is reported for each segment; clean ECG is far above 5, noise near 3. It is
//!   informative only: wide QRS complexes and low-voltage records lower it too.
//!
//! - **Two-detector agreement** (bSQI, Li, Mark & Clifford 2008; [`crate::agreement`]): beats a
//!   second detector on a high-frequency-emphasised copy of the signal does not confirm, in a
//!   10-s window whose agreement is below 0.8, are withheld (beat-level, [`Assessment::withheld`]).
//!
//! A segment is **unusable** if it is flat or saturated, has too many beats, or fewer than
//! [`MATCHED_FRACTION_MIN`] of its beats are matched. Orphanidou's heart-rate (40–180 bpm) and
//! RR-ratio rules are *not* applied: they would mark bradycardia, tachycardia and atrial
//! fibrillation, which are what the monitoring is for, as noise.
//!
//! This is a batch analysis of a signal and its detected beats: a segment is decided once the
//! beats up to [`PEER_S`] after it are known.

/// Length of a quality segment.
pub const SEGMENT_S: f64 = 5.0;
/// A run of identical samples at least this long is a flat line.
pub const FLAT_MS: f64 = 1000.0;
/// A run at the segment's extreme value at least this long is saturation.
pub const SATURATION_MS: f64 = 100.0;
/// Half-width of the beat waveform compared between beats.
pub const BEAT_HALF_MS: f64 = 100.0;
/// Beats compared with a beat lie within this distance of it.
pub const PEER_S: f64 = 5.0;
/// Correlation above which two beats have the same waveform (Orphanidou et al. 2015).
pub const MATCH_CORRELATION: f64 = 0.66;
/// Fraction of matched beats below which a segment is unusable.
pub const MATCHED_FRACTION_MIN: f64 = 0.5;
/// Heart rate above which a segment's beat count is implausible.
pub const RATE_MAX_BPM: f64 = 300.0;
/// Length of the moving average removed before the kurtosis.
const BASELINE_MS: f64 = 250.0;

/// Quality of one segment `[start, end)` (samples).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Segment {
    /// First sample.
    pub start: u64,
    /// One past the last sample.
    pub end: u64,
    /// Quality index, 0–100: the percentage of matched beats (100 without beats; 0 if flat or
    /// saturated).
    pub index: u8,
    /// Detected beats in the segment.
    pub beats: usize,
    /// Of which resemble another beat nearby.
    pub matched: usize,
    /// Kurtosis of the baseline-removed signal (3 for Gaussian noise).
    pub kurtosis: f64,
    /// A flat line was found.
    pub flat: bool,
    /// Saturation was found.
    pub saturated: bool,
    /// False if the segment must not be used for heart rate, HRV or AF.
    pub usable: bool,
}

/// Quality of a whole signal.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Assessment {
    /// Consecutive segments covering the signal.
    pub segments: Vec<Segment>,
    /// Detected beats withheld by the two-detector agreement ([`crate::agreement`]): not
    /// confirmed by the second detector inside a window of low bSQI. Sorted.
    pub withheld: Vec<u64>,
}

impl Assessment {
    /// The unusable stretches, merged, sorted.
    pub fn unusable_intervals(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for segment in self.segments.iter().filter(|s| !s.usable) {
            match out.last_mut() {
                Some(last) if last.1 == segment.start => last.1 = segment.end,
                _ => out.push((segment.start, segment.end)),
            }
        }
        out
    }

    /// Samples in unusable segments.
    pub fn unusable_samples(&self) -> u64 {
        self.segments
            .iter()
            .filter(|s| !s.usable)
            .map(|s| s.end - s.start)
            .sum()
    }

    /// True if `sample` lies in a usable segment (samples past the end count as usable) and is
    /// not a [withheld](Self::withheld) beat.
    pub fn is_usable(&self, sample: u64) -> bool {
        let index = self.segments.partition_point(|s| s.end <= sample);
        self.segments.get(index).is_none_or(|s| s.usable)
            && self.withheld.binary_search(&sample).is_err()
    }
}

/// The beats (sorted sample indices) that lie in usable segments.
pub fn usable_beats(assessment: &Assessment, beats: &[u64]) -> Vec<u64> {
    beats
        .iter()
        .copied()
        .filter(|&b| assessment.is_usable(b))
        .collect()
}

fn samples(ms: f64, fs: f64) -> usize {
    ((ms * fs / 1000.0).round() as usize).max(1)
}

/// Assesses `signal` (ADC units, at `fs` Hz) with its detected `beats` (sorted sample indices).
pub fn assess(signal: &[i32], fs: f64, beats: &[u64]) -> Assessment {
    if !(fs.is_finite() && fs > 0.0) {
        return Assessment::default();
    }
    let segment_len = samples(SEGMENT_S * 1000.0, fs);
    let matched = matched_beats(signal, fs, beats);
    let detrended = remove_baseline(signal, samples(BASELINE_MS, fs));
    let beats_max = (RATE_MAX_BPM / 60.0 * SEGMENT_S).ceil() as usize;
    let mut segments = Vec::with_capacity(signal.len() / segment_len + 1);
    let mut start = 0usize;
    while start < signal.len() {
        let end = (start + segment_len).min(signal.len());
        let first = beats.partition_point(|&b| b < start as u64);
        let last = beats.partition_point(|&b| b < end as u64);
        let count = last - first;
        let matched_count = matched[first..last].iter().filter(|m| **m).count();
        let flat = longest_run(&signal[start..end], None) >= samples(FLAT_MS, fs);
        let saturated = saturation(&signal[start..end]) >= samples(SATURATION_MS, fs);
        let fraction = if count == 0 {
            1.0
        } else {
            matched_count as f64 / count as f64
        };
        let usable = !flat && !saturated && count <= beats_max && fraction >= MATCHED_FRACTION_MIN;
        segments.push(Segment {
            start: start as u64,
            end: end as u64,
            index: if flat || saturated {
                0
            } else {
                (100.0 * fraction).round() as u8
            },
            beats: count,
            matched: matched_count,
            kurtosis: kurtosis(&detrended[start..end]),
            flat,
            saturated,
            usable,
        });
        start = end;
    }
    Assessment {
        segments,
        withheld: crate::agreement::withheld_beats(signal, fs, beats),
    }
}

/// For each beat, whether another beat within ±[`PEER_S`] has the same waveform.
fn matched_beats(signal: &[i32], fs: f64, beats: &[u64]) -> Vec<bool> {
    let half = samples(BEAT_HALF_MS, fs);
    let peer = (PEER_S * fs) as u64;
    let window = |b: u64| -> Option<&[i32]> {
        let b = usize::try_from(b).ok()?;
        signal.get(b.checked_sub(half)?..b.checked_add(half + 1)?)
    };
    beats
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let Some(own) = window(b) else {
                // Too close to an edge to compare: no evidence against it.
                return true;
            };
            let low = beats.partition_point(|&p| p + peer < b);
            let high = beats.partition_point(|&p| p <= b + peer);
            (low..high)
                .filter(|&j| j != i)
                .filter_map(|j| window(beats[j]))
                .any(|other| correlation(own, other) >= MATCH_CORRELATION)
        })
        .collect()
}

/// Pearson correlation of two equal-length windows (0 if either is constant).
fn correlation(a: &[i32], b: &[i32]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let mean = |x: &[i32]| x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let (ma, mb) = (mean(a), mean(b));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa <= 0.0 || bb <= 0.0 {
        0.0
    } else {
        ab / (aa * bb).sqrt()
    }
}

/// Longest run of identical samples (of the value `only`, if given).
fn longest_run(signal: &[i32], only: Option<i32>) -> usize {
    let (mut best, mut run, mut previous) = (0usize, 0usize, None);
    for &x in signal {
        run = if previous == Some(x) { run + 1 } else { 1 };
        previous = Some(x);
        if only.is_none_or(|v| v == x) {
            best = best.max(run);
        }
    }
    best
}

/// Longest run at the segment's maximum or minimum.
fn saturation(signal: &[i32]) -> usize {
    let (Some(&low), Some(&high)) = (signal.iter().min(), signal.iter().max()) else {
        return 0;
    };
    if low == high {
        // A constant segment is a flat line, not saturation.
        return 0;
    }
    longest_run(signal, Some(high)).max(longest_run(signal, Some(low)))
}

/// The signal minus its centred moving average over `len` samples.
fn remove_baseline(signal: &[i32], len: usize) -> Vec<f64> {
    let half = len / 2;
    let mut prefix = Vec::with_capacity(signal.len() + 1);
    prefix.push(0.0f64);
    for &x in signal {
        let last = prefix.last().copied().unwrap_or(0.0);
        prefix.push(last + f64::from(x));
    }
    (0..signal.len())
        .map(|i| {
            let (low, high) = (i.saturating_sub(half), (i + half + 1).min(signal.len()));
            f64::from(signal[i]) - (prefix[high] - prefix[low]) / (high - low) as f64
        })
        .collect()
}

/// Kurtosis `E[(x - m)^4] / var^2` (0 for a constant segment).
fn kurtosis(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / n;
    let (mut m2, mut m4) = (0.0, 0.0);
    for v in values {
        let d = (v - mean).powi(2);
        m2 += d;
        m4 += d * d;
    }
    let (m2, m4) = (m2 / n, m4 / n);
    if m2 <= 0.0 { 0.0 } else { m4 / (m2 * m2) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spikes every 0.8 s with a T wave, at 250 Hz, over `seconds`.
    fn ecg(seconds: usize) -> (Vec<i32>, Vec<u64>) {
        let fs = 250usize;
        // A little deterministic noise, as every real amplifier has.
        let mut signal: Vec<i32> = (0..seconds * fs).map(|n| (n * 7 % 5) as i32 - 2).collect();
        let mut beats = Vec::new();
        let mut at = 100usize;
        while at + 100 < signal.len() {
            for k in 0..10 {
                signal[at - 5 + k] += 400 - 80 * (k as i32 - 5).abs();
                signal[at + 50 + k] += 60;
            }
            beats.push(at as u64);
            at += 200;
        }
        (signal, beats)
    }

    #[test]
    fn clean_signal_is_usable() {
        let (signal, beats) = ecg(20);
        let assessment = assess(&signal, 250.0, &beats);
        assert_eq!(assessment.segments.len(), 4);
        assert!(
            assessment
                .segments
                .iter()
                .all(|s| s.usable && s.index == 100)
        );
        assert_eq!(usable_beats(&assessment, &beats), beats);
    }

    #[test]
    fn flat_and_saturated_segments_are_unusable() {
        let (mut signal, beats) = ecg(20);
        signal[1250..2500].fill(0);
        signal[3000..3100].fill(2047);
        let beats: Vec<u64> = beats
            .into_iter()
            .filter(|&b| !(1250..2500).contains(&b))
            .collect();
        let assessment = assess(&signal, 250.0, &beats);
        let flags: Vec<(bool, bool, bool)> = assessment
            .segments
            .iter()
            .map(|s| (s.flat, s.saturated, s.usable))
            .collect();
        assert_eq!(
            flags,
            vec![
                (false, false, true),
                (true, false, false),
                (false, true, false),
                (false, false, true)
            ]
        );
        assert_eq!(assessment.unusable_intervals(), vec![(1250, 3750)]);
    }

    #[test]
    fn detections_resembling_nothing_make_a_segment_unusable() {
        let (signal, _) = ecg(20);
        // Detections at arbitrary points (noise taken for beats) in the third segment.
        let beats: Vec<u64> = (0..6).map(|k| 2520 + 173 * k).collect();
        let assessment = assess(&signal, 250.0, &beats);
        assert!(
            !assessment.segments[2].usable,
            "{:?}",
            assessment.segments[2]
        );
        assert!(usable_beats(&assessment, &beats).is_empty());
    }
}
