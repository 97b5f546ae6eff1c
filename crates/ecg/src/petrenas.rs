//! The low-complexity AF detector of Petrėnas, Marozas & Sörnmo, "Low-complexity detection of
//! atrial fibrillation in continuous long-term monitoring", Computers in Biology and Medicine
//! 65:184–191 (2015), from RR intervals alone:
//!
//! 1. **Ectopic beat filtering**: `rm(n) = median{r(n-1), r(n), r(n+1)}` (a premature beat and
//!    its compensatory pause are removed; AF's irregularity is not, since it is not isolated).
//! 2. **Irregularity**: `M(n)`, the share of the pairs among the last [`WINDOW`] filtered
//!    intervals that differ by at least [`GAMMA_MS`]; smoothed by an exponential averager
//!    ([`ALPHA_DIVISOR`]) and divided by the RR trend (the averaged `r`, in seconds):
//!    `I(n) = M̄(n) / r̄(n)`.
//! 3. **Bigeminy suppression**: `B(n) = (Σ rm / Σ r - 1)²` over the same window, averaged. In
//!    bigeminy the median filter swaps short and long intervals without changing their sum,
//!    and in sinus rhythm it changes nothing, so `B̄` stays near zero; in AF it does not.
//! 4. **Fusion and detection**: `O(n) = I(n)` where `B̄(n) ≥ δ` ([`DELTA_Q`]), `B̄(n)` otherwise;
//!    AF where `O(n) > η` ([`ETA_PERMILLE`]).
//!
//! Parameters (α = 0.02, N = 8, γ = 30 ms, δ = 2·10⁻⁴, η = 0.725) as published for the
//! detector and as used by the public re-implementation `tabaraei/LTAF-detection` (`main.m`,
//! "Hyperparameters of the paper"), which we read to check them; nothing here was fitted. Two
//! choices the paper leaves open are ours, fixed before any evaluation: the averagers run
//! forward and then backward (zero phase, as that re-implementation does) when the whole
//! series is known, and forward only over the heart-rhythm contract's trailing window, so the
//! live verdict on the newest interval depends only on the past; each averager starts from
//! the mean of its first `1/α` inputs (its own memory) rather than from zero, so short strips
//! and restarted windows are not judged on a start-up transient. The first `N - 1` windows use
//! the pairs they have.
//!
//! Integer arithmetic throughout (Q32 fixed point), so every validator of the heart-rhythm
//! contract reaches the same verdict.

/// Sliding window of RR intervals (Petrėnas et al.: N = 8).
pub const WINDOW: usize = 8;
/// Pairwise difference counted as irregular, in ms (γ = 0.03 s).
pub const GAMMA_MS: u32 = 30;
/// The exponential averagers' α = 1 / 50 = 0.02.
pub const ALPHA_DIVISOR: i64 = 50;
/// Fusion threshold δ = 2·10⁻⁴ on the averaged bigeminy measure, as `DELTA_Q / 10⁴`.
pub const DELTA_Q: i64 = 2;
/// Detection threshold η = 0.725 on `O(n)`, in per-mille.
pub const ETA_PERMILLE: i64 = 725;

const ONE_Q32: i64 = 1 << 32;

/// The detector's output for one RR interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// `O(n)` in per-mille (the irregularity ratio, or the bigeminy measure where it is small).
    pub output_permille: u32,
    /// `O(n) > η`.
    pub af: bool,
}

/// How the averagers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Smoothing {
    /// Forward then backward (zero phase): the whole series is known.
    ZeroPhase,
    /// Forward only: each decision depends on its past alone (live monitoring).
    Causal,
}

/// `O(n)` and the AF decision for every interval of `rr_ms` (intervals in ms, in order).
pub fn decisions(rr_ms: &[u32], smoothing: Smoothing) -> Vec<Decision> {
    if rr_ms.is_empty() {
        return Vec::new();
    }
    let rm = median3(rr_ms);
    let trend_q16 = average(
        &rr_ms
            .iter()
            .map(|&r| i64::from(r) << 16)
            .collect::<Vec<_>>(),
        smoothing,
    );
    let irregularity = average(&pair_irregularity_q32(&rm), smoothing);
    let bigeminy = average(&bigeminy_q32(rr_ms, &rm), smoothing);
    (0..rr_ms.len())
        .map(|n| {
            // I = M̄ / (r̄ in s) = M̄ · 1000 / r̄ in ms; r̄ is Q16, M̄ Q32, I Q32.
            let trend = i128::from(trend_q16[n].max(1));
            let ratio_q32 = (i128::from(irregularity[n]) * 1000 * (1 << 16) / trend) as i64;
            let output_q32 = if bigeminy[n] * 10_000 >= DELTA_Q * ONE_Q32 {
                ratio_q32
            } else {
                bigeminy[n]
            };
            let output_permille = (i128::from(output_q32.max(0)) * 1000 / i128::from(ONE_Q32))
                .min(i128::from(u32::MAX)) as u32;
            Decision {
                output_permille,
                af: i128::from(output_q32) * 1000 > i128::from(ETA_PERMILLE) * i128::from(ONE_Q32),
            }
        })
        .collect()
}

/// Three-point median; the end intervals are their own neighbours' median with themselves.
fn median3(rr: &[u32]) -> Vec<u32> {
    (0..rr.len())
        .map(|n| {
            let a = rr[n.saturating_sub(1)];
            let b = rr[n];
            let c = rr[(n + 1).min(rr.len() - 1)];
            a.max(b).min(a.min(b).max(c))
        })
        .collect()
}

/// `M(n)` in Q32: the share of the pairs of the last [`WINDOW`] values (fewer at the start)
/// differing by at least [`GAMMA_MS`].
fn pair_irregularity_q32(rm: &[u32]) -> Vec<i64> {
    (0..rm.len())
        .map(|n| {
            let window = &rm[(n + 1).saturating_sub(WINDOW)..=n];
            let pairs = window.len() * (window.len() - 1) / 2;
            if pairs == 0 {
                return 0;
            }
            let irregular = window
                .iter()
                .enumerate()
                .flat_map(|(j, &a)| window[j + 1..].iter().map(move |&b| a.abs_diff(b)))
                .filter(|&d| d >= GAMMA_MS)
                .count();
            (irregular as i64 * ONE_Q32) / pairs as i64
        })
        .collect()
}

/// `B(n) = (Σ rm / Σ r - 1)²` over the last [`WINDOW`] intervals, in Q32.
fn bigeminy_q32(rr: &[u32], rm: &[u32]) -> Vec<i64> {
    (0..rr.len())
        .map(|n| {
            let start = (n + 1).saturating_sub(WINDOW);
            let sum_r: i128 = rr[start..=n].iter().map(|&x| i128::from(x)).sum();
            let sum_rm: i128 = rm[start..=n].iter().map(|&x| i128::from(x)).sum();
            if sum_r == 0 {
                return 0;
            }
            let excess = sum_rm - sum_r;
            (excess * excess * i128::from(ONE_Q32) / (sum_r * sum_r)).min(i128::from(i64::MAX))
                as i64
        })
        .collect()
}

/// The exponential averager `y(n) = y(n-1) + α (x(n) - y(n-1))`, started from the mean of the
/// first `1/α` inputs, forward or forward then backward.
fn average(x: &[i64], smoothing: Smoothing) -> Vec<i64> {
    let warm = &x[..x.len().min(ALPHA_DIVISOR as usize)];
    let start = warm.iter().sum::<i64>() / warm.len().max(1) as i64;
    let mut y = start;
    let mut forward: Vec<i64> = x
        .iter()
        .map(|&value| {
            y += (value - y) / ALPHA_DIVISOR;
            y
        })
        .collect();
    if smoothing == Smoothing::ZeroPhase {
        let mut y = forward.last().copied().unwrap_or(0);
        for value in forward.iter_mut().rev() {
            y += (*value - y) / ALPHA_DIVISOR;
            *value = y;
        }
    }
    forward
}

#[cfg(test)]
mod tests {
    use super::*;

    fn irregular(count: usize, seed: u64, low: u32, range: u64) -> Vec<u32> {
        let mut state = seed;
        (0..count)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                low + (state % range) as u32
            })
            .collect()
    }

    fn af_share(rr: &[u32], smoothing: Smoothing) -> f64 {
        let d = decisions(rr, smoothing);
        d.iter().filter(|d| d.af).count() as f64 / d.len() as f64
    }

    #[test]
    fn median_of_three_removes_isolated_ectopic_beats() {
        assert_eq!(
            median3(&[800, 800, 500, 1100, 800, 800]),
            vec![800, 800, 800, 800, 800, 800]
        );
        assert_eq!(median3(&[700]), vec![700]);
    }

    #[test]
    fn sinus_bigeminy_and_isolated_ectopy_are_not_af() {
        let sinus: Vec<u32> = irregular(600, 3, 780, 25);
        assert_eq!(af_share(&sinus, Smoothing::ZeroPhase), 0.0);
        let bigeminy: Vec<u32> = (0..600)
            .map(|i| if i % 2 == 0 { 550 } else { 1050 })
            .collect();
        assert_eq!(af_share(&bigeminy, Smoothing::ZeroPhase), 0.0);
        let mut ectopy = sinus.clone();
        for k in (10..590).step_by(12) {
            ectopy[k] = 480;
            ectopy[k + 1] = 1100;
        }
        assert_eq!(af_share(&ectopy, Smoothing::ZeroPhase), 0.0);
        assert_eq!(af_share(&ectopy, Smoothing::Causal), 0.0);
    }

    #[test]
    fn irregular_rhythm_is_af_with_either_smoothing() {
        let af = irregular(600, 11, 450, 400);
        assert!(af_share(&af, Smoothing::ZeroPhase) > 0.95);
        assert!(af_share(&af, Smoothing::Causal) > 0.9);
        // A live verdict turns on within a bounded number of intervals after onset.
        let mut series = irregular(300, 5, 790, 20);
        series.extend(irregular(300, 9, 450, 400));
        let causal = decisions(&series, Smoothing::Causal);
        let onset = causal.iter().position(|d| d.af).unwrap();
        assert!((300..300 + 100).contains(&onset), "{onset}");
    }

    #[test]
    fn empty_and_tiny_series_do_not_panic() {
        assert!(decisions(&[], Smoothing::Causal).is_empty());
        assert_eq!(decisions(&[0], Smoothing::ZeroPhase).len(), 1);
        assert_eq!(decisions(&[10_000, 1], Smoothing::Causal).len(), 2);
    }
}
