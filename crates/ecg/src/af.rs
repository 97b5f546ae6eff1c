//! Atrial-fibrillation screening from RR intervals alone.
//!
//! **The AF decision** (episodes, the heart-rhythm contract, short strips) is Petrėnas,
//! Marozas & Sörnmo 2015's low-complexity detector with its published parameters, in
//! [`crate::petrenas`]: a 3-point median ectopic filter, an 8-beat pairwise irregularity
//! measure normalised by the RR trend, bigeminy suppression, one threshold. [`af_flags`] runs
//! it on a whole series (zero-phase averagers); [`screen`] gives the live verdict on the newest
//! interval of a trailing window (causal averagers). Intervals marked unusable by the signal
//! quality ([`crate::quality`]) are left out and are never AF.
//!
//! **Window statistics** after Dash, Chon, Lu & Raeder, Annals of Biomedical Engineering
//! 37(9):1701–1709 (2009) ([`window_verdict`]: normalised RMSSD, Shannon entropy,
//! turning-point ratio over 128 intervals with 8 + 8 trimmed) remain as descriptive measures:
//! the short-strip classifier uses the normalised RMSSD to call a non-AF strip irregular.
//! Everything is integer arithmetic, the same on every machine.

use crate::petrenas;

/// Intervals per window (Dash et al.: 128 beats).
pub const WINDOW_RR: usize = 128;
/// Longest and shortest intervals removed from each end of a full window (Dash et al.: 8).
pub const TRIM_RR: usize = 8;
/// Histogram bins of the entropy (Dash et al.: 16).
pub const BINS: u32 = 16;
/// Normalised RMSSD above which a window may be AF (Dash et al.: 0.1).
pub const NRMSSD_MIN: f64 = 0.1;
/// Normalised Shannon entropy above which a window may be AF (Dash et al.: 0.7).
pub const ENTROPY_MIN: f64 = 0.7;
/// Typical delay of the live verdict ([`screen`]) after an AF onset, in intervals: the
/// averagers' time constant `1/α` of Petrėnas et al.'s detector.
pub const LIVE_DELAY_RR: usize = petrenas::ALPHA_DIVISOR as usize;
/// Shortest series judged at all (fewer intervals say nothing about irregularity).
pub const SHORT_RR_MIN: usize = 12;
/// The three statistics of one window and the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WindowVerdict {
    /// RMSSD / mean RR, in per-mille.
    pub nrmssd_permille: u32,
    /// Normalised Shannon entropy, in per-mille.
    pub entropy_permille: u32,
    /// Turning points of the window.
    pub turning_points: u32,
    /// The turning-point count is that of a random sequence.
    pub turning_points_random: bool,
    /// All three statistics indicate AF.
    pub af: bool,
}

/// The statistics of one window of RR intervals in ms (`None` below [`SHORT_RR_MIN`]).
pub fn window_verdict(rr_ms: &[u32]) -> Option<WindowVerdict> {
    let n = rr_ms.len();
    if n < SHORT_RR_MIN {
        return None;
    }
    let trimmed = trim(rr_ms, n * TRIM_RR / WINDOW_RR);
    let m = trimmed.len() as u128;
    let sum: u128 = trimmed.iter().map(|&x| u128::from(x)).sum();
    let squares: u128 = trimmed
        .windows(2)
        .map(|w| u128::from(w[0].abs_diff(w[1])).pow(2))
        .sum();
    // nRMSSD = sqrt(squares / (m - 1)) / (sum / m); in per-mille, exact below.
    let nrmssd_ok = 100 * squares * m * m > sum * sum * (m - 1);
    let nrmssd_permille = if sum == 0 {
        0
    } else {
        let ratio_q = 1_000_000 * squares * m * m / ((m - 1) * sum * sum);
        isqrt(ratio_q) as u32
    };
    let entropy_q16 = entropy_q16(&trimmed);
    // Normalised by log2(BINS) = 4 bits: > 0.7 <=> H > 2.8 bits.
    let entropy_ok = 10 * entropy_q16 > 28 << 16;
    let entropy_permille = (entropy_q16 * 1000 / (4 << 16)) as u32;
    let turning_points = rr_ms
        .windows(3)
        .filter(|w| (w[1] > w[0] && w[1] > w[2]) || (w[1] < w[0] && w[1] < w[2]))
        .count() as u32;
    let turning_points_random = random_turning_points(turning_points, n);
    Some(WindowVerdict {
        nrmssd_permille,
        entropy_permille,
        turning_points,
        turning_points_random,
        af: nrmssd_ok && entropy_ok && turning_points_random,
    })
}

/// `|T - (2N - 4)/3| <= 1.96 sqrt((16N - 29)/90)`, squared and scaled to integers:
/// `90 · 10^4 · (3T - 2N + 4)^2 <= 9 · 38416 · (16N - 29)`.
fn random_turning_points(turning_points: u32, n: usize) -> bool {
    let n = n as i128;
    let deviation = 3 * i128::from(turning_points) - 2 * n + 4;
    90 * 10_000 * deviation * deviation <= 9 * 38_416 * (16 * n - 29)
}

/// The series without its `k` largest and `k` smallest values (ties broken by position), in
/// order.
fn trim(rr_ms: &[u32], k: usize) -> Vec<u32> {
    let mut order: Vec<usize> = (0..rr_ms.len()).collect();
    order.sort_by_key(|&i| (rr_ms[i], i));
    let mut keep = vec![true; rr_ms.len()];
    for &i in order.iter().take(k).chain(order.iter().rev().take(k)) {
        keep[i] = false;
    }
    rr_ms
        .iter()
        .zip(keep)
        .filter_map(|(&x, kept)| kept.then_some(x))
        .collect()
}

/// Shannon entropy (bits, Q16) of the histogram of `values` in [`BINS`] equal bins from their
/// minimum to their maximum: `log2 m - (Σ c log2 c) / m`.
fn entropy_q16(values: &[u32]) -> i64 {
    let (Some(&low), Some(&high)) = (values.iter().min(), values.iter().max()) else {
        return 0;
    };
    if low == high {
        return 0;
    }
    let mut counts = [0u64; BINS as usize];
    let span = u64::from(high - low);
    for &x in values {
        let bin = (u64::from(x - low) * u64::from(BINS) / span).min(u64::from(BINS) - 1);
        counts[bin as usize] += 1;
    }
    let m = values.len() as i64;
    let sum_c_log_c: i64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| c as i64 * log2_q16(c))
        .sum();
    log2_q16(m as u64) - sum_c_log_c / m
}

/// `log2(x)` in Q16 fixed point for `x >= 1` (0 for 0), by the bit-by-bit squaring method:
/// exact integer steps, the same result everywhere.
fn log2_q16(x: u64) -> i64 {
    if x == 0 {
        return 0;
    }
    let integer = 63 - i64::from(x.leading_zeros());
    // Mantissa in [1, 2) as Q31.
    let mut y: u64 = if integer >= 31 {
        x >> (integer - 31)
    } else {
        x << (31 - integer)
    };
    let mut fraction = 0i64;
    for bit in (0..16).rev() {
        y = (y * y) >> 31;
        if y >= 2 << 31 {
            y >>= 1;
            fraction |= 1 << bit;
        }
    }
    (integer << 16) | fraction
}

fn isqrt(value: u128) -> u128 {
    if value == 0 {
        return 0;
    }
    let mut root = (value as f64).sqrt() as u128;
    while root * root > value {
        root -= 1;
    }
    while (root + 1) * (root + 1) <= value {
        root += 1;
    }
    root
}

/// Intervals of the local median judged by the ectopic filter (odd, centred).
pub const ECTOPIC_MEDIAN_SPAN: usize = 11;
/// Largest relative deviation from the local median of a normal interval, as `1 / divisor`
/// (the usual 20 % rule, Malik et al. 1989; the same rule as [`crate::hrv`]).
pub const ECTOPIC_DIVISOR: u32 = 5;

/// For each interval, true if it lies within 20 % of the median of the
/// [`ECTOPIC_MEDIAN_SPAN`] intervals around it. Frequent ectopic beats (bigeminy, PVC
/// couplets, multiform PVCs) are short–long pairs far from the local median; removing them
/// leaves the underlying rhythm, regular in sinus rhythm and still irregular in AF (whose
/// intervals spread around the median rather than jump away from it). Integer arithmetic.
pub fn ectopic_filter(rr_ms: &[u32]) -> Vec<bool> {
    let half = ECTOPIC_MEDIAN_SPAN / 2;
    let mut window = Vec::with_capacity(ECTOPIC_MEDIAN_SPAN);
    (0..rr_ms.len())
        .map(|k| {
            window.clear();
            window
                .extend_from_slice(&rr_ms[k.saturating_sub(half)..(k + half + 1).min(rr_ms.len())]);
            window.sort_unstable();
            let median = window[window.len() / 2];
            rr_ms[k].abs_diff(median) * ECTOPIC_DIVISOR <= median
        })
        .collect()
}

/// The live verdict on the newest interval of `rr_ms` (the heart-rhythm contract's trailing
/// window): Petrėnas et al.'s detector ([`crate::petrenas`]) with causal averagers over the
/// window, so it depends on the window alone. `None` below [`SHORT_RR_MIN`] intervals.
pub fn screen(rr_ms: &[u32]) -> Option<petrenas::Decision> {
    if rr_ms.len() < SHORT_RR_MIN {
        return None;
    }
    petrenas::decisions(rr_ms, petrenas::Smoothing::Causal)
        .last()
        .copied()
}

/// Per RR interval, whether it is AF: Petrėnas et al.'s detector ([`crate::petrenas`], zero-
/// phase averagers) on the usable intervals (`usable[k]` false leaves interval `k` out and it
/// is never AF; a shorter `usable` counts the rest as usable). Series shorter than
/// [`SHORT_RR_MIN`] usable intervals are never AF.
pub fn af_flags(rr_ms: &[u32], usable: &[bool]) -> Vec<bool> {
    let kept: Vec<usize> = (0..rr_ms.len())
        .filter(|&k| usable.get(k).copied().unwrap_or(true))
        .collect();
    let mut flags = vec![false; rr_ms.len()];
    if kept.len() < SHORT_RR_MIN {
        return flags;
    }
    let series: Vec<u32> = kept.iter().map(|&k| rr_ms[k]).collect();
    for (&k, decision) in kept
        .iter()
        .zip(petrenas::decisions(&series, petrenas::Smoothing::ZeroPhase))
    {
        flags[k] = decision.af;
    }
    flags
}

/// AF episodes as runs of AF intervals: `(first, end)`, 0-based indices into the RR list, `end`
/// exclusive (interval `k` lies between beats `k` and `k + 1`).
pub fn rr_episodes(rr_ms: &[u32], usable: &[bool]) -> Vec<(usize, usize)> {
    let flags = af_flags(rr_ms, usable);
    let mut episodes = Vec::new();
    let mut open: Option<usize> = None;
    for (k, &af) in flags.iter().enumerate() {
        match (af, open) {
            (true, None) => open = Some(k),
            (false, Some(first)) => {
                episodes.push((first, k));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(first) = open {
        episodes.push((first, flags.len()));
    }
    episodes
}

/// An AF episode, in samples: `[start, end)`, from the first AF beat to just after the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AfEpisode {
    /// R peak of the first beat of the first AF interval.
    pub start: u64,
    /// One past the R peak that ends the last AF interval.
    pub end: u64,
}

/// RR intervals in whole ms (rounded) between consecutive beats at `sampling_hz`.
pub fn rr_ms(beats: &[u64], sampling_hz: f64) -> Vec<u32> {
    beats
        .windows(2)
        .map(|p| (p[1].saturating_sub(p[0]) as f64 * 1000.0 / sampling_hz).round() as u32)
        .collect()
}

/// AF episodes of the beats at sorted sample indices `beats`.
pub fn detect_episodes(beats: &[u64], sampling_hz: f64) -> Vec<AfEpisode> {
    detect_episodes_usable(beats, sampling_hz, &[])
}

/// [`detect_episodes`], leaving out the intervals `usable` marks false (see [`af_flags`]).
pub fn detect_episodes_usable(beats: &[u64], sampling_hz: f64, usable: &[bool]) -> Vec<AfEpisode> {
    rr_episodes(&rr_ms(beats, sampling_hz), usable)
        .into_iter()
        .map(|(first, end)| AfEpisode {
            start: beats[first],
            end: beats[end] + 1,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random sequence (xorshift) in `0..range`.
    fn irregular(count: usize, seed: u64, range: u64) -> Vec<u32> {
        let mut state = seed;
        (0..count)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % range) as u32
            })
            .collect()
    }

    #[test]
    fn log2_is_exact_on_powers_and_close_elsewhere() {
        assert_eq!(log2_q16(1), 0);
        assert_eq!(log2_q16(1024), 10 << 16);
        for x in [3u64, 7, 100, 127, 1_000_000] {
            let expected = (x as f64).log2() * 65536.0;
            assert!((log2_q16(x) as f64 - expected).abs() < 2.0, "{x}");
        }
    }

    #[test]
    fn regular_breathing_and_bigeminal_rhythms_are_not_af() {
        let regular = vec![800u32; 400];
        assert!(rr_episodes(&regular, &[]).is_empty());
        let bigeminy: Vec<u32> = (0..400)
            .map(|i| if i % 2 == 0 { 550 } else { 1050 })
            .collect();
        assert!(rr_episodes(&bigeminy, &[]).is_empty());
        // Respiratory sinus arrhythmia: ±60 ms over ~4.3 beats, a little noise.
        let sinus: Vec<u32> = irregular(400, 7, 20)
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                (800.0 + 60.0 * (i as f64 * std::f64::consts::TAU / 4.3).sin()) as u32 + r
            })
            .collect();
        assert!(rr_episodes(&sinus, &[]).is_empty());
    }

    #[test]
    fn isolated_ectopic_beats_do_not_make_af() {
        let mut rr: Vec<u32> = irregular(400, 3, 30).into_iter().map(|r| 780 + r).collect();
        for k in (10..390).step_by(25) {
            rr[k] = 480;
            rr[k + 1] = 1100;
        }
        assert!(rr_episodes(&rr, &[]).is_empty());
    }

    #[test]
    fn irregular_rhythm_inside_sinus_is_one_episode() {
        let rr: Vec<u32> = std::iter::repeat_n(800, 300)
            .chain(irregular(400, 11, 300).into_iter().map(|r| 500 + r))
            .chain(std::iter::repeat_n(800, 300))
            .collect();
        let episodes = rr_episodes(&rr, &[]);
        assert_eq!(episodes.len(), 1, "{episodes:?}");
        let (first, end) = episodes[0];
        assert!(first.abs_diff(300) <= WINDOW_RR / 2, "{first}");
        assert!(end.abs_diff(700) <= WINDOW_RR / 2, "{end}");
    }

    #[test]
    fn unusable_intervals_are_never_af_and_short_strips_are_judged() {
        // AF-like: RR intervals spread ±23 % around 650 ms, in random order.
        let rr: Vec<u32> = irregular(100, 5, 300)
            .into_iter()
            .map(|r| 500 + r)
            .collect();
        assert_eq!(rr_episodes(&rr, &[]), vec![(0, 100)]);
        let usable: Vec<bool> = (0..100).map(|k| k >= 30).collect();
        assert_eq!(rr_episodes(&rr, &usable), vec![(30, 100)]);
        assert!(rr_episodes(&rr[..SHORT_RR_MIN - 1], &[]).is_empty());
    }
}
