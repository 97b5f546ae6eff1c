//! RR intervals, heart rate and heart-rate variability.
//!
//! HRV statistics are computed on *normal-to-normal* intervals: an RR interval is excluded as
//! ectopic or artefact if it lies outside [`RR_MIN_MS`]..=[`RR_MAX_MS`] (physiologically
//! implausible: missed or extra detections), or deviates by more than [`ECTOPIC_FRACTION`] from the
//! median of the [`MEDIAN_SPAN`] intervals around it (a premature beat shortens one interval and
//! lengthens the next; the usual 20 % rule, e.g. Malik et al. 1989 / Task Force 1996).
//! Successive differences (RMSSD, pNN50) use only pairs of adjacent kept intervals.

/// Shortest plausible RR interval (300 bpm).
pub const RR_MIN_MS: f64 = 200.0;
/// Longest plausible RR interval (20 bpm).
pub const RR_MAX_MS: f64 = 3000.0;
/// Largest relative deviation from the local median of a normal interval.
pub const ECTOPIC_FRACTION: f64 = 0.2;
/// Number of intervals of the local median (odd; centred on the interval judged).
pub const MEDIAN_SPAN: usize = 11;

/// One RR interval, ending at a beat.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RrInterval {
    /// Sample index of the beat that ends the interval.
    pub end_sample: u64,
    /// Length in milliseconds.
    pub ms: f64,
}

impl RrInterval {
    /// Instantaneous heart rate in beats per minute.
    pub fn heart_rate_bpm(&self) -> f64 {
        60_000.0 / self.ms
    }
}

/// RR intervals between consecutive beats (sorted sample indices) at `sampling_hz`.
pub fn rr_intervals(beats: &[u64], sampling_hz: f64) -> Vec<RrInterval> {
    beats
        .windows(2)
        .map(|pair| RrInterval {
            end_sample: pair[1],
            ms: pair[1].saturating_sub(pair[0]) as f64 * 1000.0 / sampling_hz,
        })
        .collect()
}

/// For each interval, true if it is normal-to-normal (kept for statistics); see the module
/// documentation.
pub fn normal_mask(rr: &[RrInterval]) -> Vec<bool> {
    let half = MEDIAN_SPAN / 2;
    let mut window = Vec::with_capacity(MEDIAN_SPAN);
    (0..rr.len())
        .map(|i| {
            let ms = rr[i].ms;
            if !(RR_MIN_MS..=RR_MAX_MS).contains(&ms) {
                return false;
            }
            window.clear();
            let (low, high) = (i.saturating_sub(half), (i + half + 1).min(rr.len()));
            window.extend(
                rr[low..high]
                    .iter()
                    .map(|r| r.ms)
                    .filter(|ms| (RR_MIN_MS..=RR_MAX_MS).contains(ms)),
            );
            window.sort_by(f64::total_cmp);
            let median = window[window.len() / 2];
            (ms - median).abs() <= ECTOPIC_FRACTION * median
        })
        .collect()
}

/// Heart rate over a sliding window: at each beat, 60 000 / mean of the normal intervals that
/// end within the last `window_s` seconds (`None` where there are none).
pub fn windowed_heart_rate(
    rr: &[RrInterval],
    sampling_hz: f64,
    window_s: f64,
) -> Vec<(u64, Option<f64>)> {
    let mask = normal_mask(rr);
    let window = (window_s * sampling_hz).round() as u64;
    let (mut first, mut sum, mut count) = (0usize, 0.0f64, 0usize);
    let mut out = Vec::with_capacity(rr.len());
    for (i, interval) in rr.iter().enumerate() {
        if mask[i] {
            sum += interval.ms;
            count += 1;
        }
        while first <= i && rr[first].end_sample + window <= interval.end_sample {
            if mask[first] {
                sum -= rr[first].ms;
                count -= 1;
            }
            first += 1;
        }
        let hr = (count > 0).then(|| 60_000.0 * count as f64 / sum);
        out.push((interval.end_sample, hr));
    }
    out
}

/// Time-domain HRV statistics of normal-to-normal intervals.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct HrvStats {
    /// Intervals used.
    pub normal_count: usize,
    /// Intervals excluded as ectopic or artefact.
    pub excluded_count: usize,
    /// Mean NN interval.
    pub mean_rr_ms: f64,
    /// Standard deviation of NN intervals (sample, n - 1).
    pub sdnn_ms: f64,
    /// Root mean square of successive differences of adjacent NN intervals.
    pub rmssd_ms: f64,
    /// Percentage of successive differences above 50 ms.
    pub pnn50_pct: f64,
}

/// HRV statistics after ectopic / artefact filtering; `None` with fewer than 2 normal intervals.
pub fn hrv_stats(rr: &[RrInterval]) -> Option<HrvStats> {
    let mask = normal_mask(rr);
    let normal: Vec<f64> = rr
        .iter()
        .zip(&mask)
        .filter(|(_, keep)| **keep)
        .map(|(r, _)| r.ms)
        .collect();
    if normal.len() < 2 {
        return None;
    }
    let n = normal.len() as f64;
    let mean = normal.iter().sum::<f64>() / n;
    let variance = normal.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let differences: Vec<f64> = (1..rr.len())
        .filter(|&i| mask[i] && mask[i - 1])
        .map(|i| rr[i].ms - rr[i - 1].ms)
        .collect();
    let (rmssd_ms, pnn50_pct) = if differences.is_empty() {
        (0.0, 0.0)
    } else {
        let m = differences.len() as f64;
        let rmssd = (differences.iter().map(|d| d * d).sum::<f64>() / m).sqrt();
        let over = differences.iter().filter(|d| d.abs() > 50.0).count() as f64;
        (rmssd, 100.0 * over / m)
    };
    Some(HrvStats {
        normal_count: normal.len(),
        excluded_count: rr.len() - normal.len(),
        mean_rr_ms: mean,
        sdnn_ms: variance.sqrt(),
        rmssd_ms,
        pnn50_pct,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_rate() {
        let rr = rr_intervals(&[0, 360, 720, 1080], 360.0);
        assert_eq!(rr.len(), 3);
        assert_eq!(rr[0].ms, 1000.0);
        assert_eq!(rr[2].heart_rate_bpm(), 60.0);
        let hr = windowed_heart_rate(&rr, 360.0, 10.0);
        assert_eq!(hr[2], (1080, Some(60.0)));
    }

    #[test]
    fn ectopic_beats_are_excluded_from_statistics() {
        // 800 ms rhythm alternating with +-20 ms, one premature beat (500 ms then 1100 ms).
        let mut beats = vec![0u64];
        let mut rr_ms = Vec::new();
        for i in 0..40 {
            rr_ms.push(if i % 2 == 0 { 780.0 } else { 820.0 });
        }
        rr_ms[20] = 500.0;
        rr_ms[21] = 1100.0;
        for ms in &rr_ms {
            let last = *beats.last().unwrap();
            beats.push(last + *ms as u64);
        }
        let rr = rr_intervals(&beats, 1000.0);
        let stats = hrv_stats(&rr).unwrap();
        assert_eq!(stats.excluded_count, 2);
        assert!((stats.mean_rr_ms - 800.0).abs() < 1.0, "{stats:?}");
        assert!((stats.rmssd_ms - 40.0).abs() < 1e-9, "{stats:?}");
        assert_eq!(stats.pnn50_pct, 0.0);
        assert!((stats.sdnn_ms - 20.0).abs() < 0.5, "{stats:?}");
    }
}
