//! Pan-Tompkins QRS detection, streaming, in integer arithmetic.
//!
//! The pipeline follows Pan & Tompkins (IEEE TBME 32(3), 1985) with the decision rules of
//! Hamilton & Tompkins (IEEE TBME 33(12), 1986) as later published in Hamilton's open-source
//! OSEA detector (Computers in Cardiology 2002):
//!
//! 1. **Band-pass, about 5–15 Hz**: a low-pass made of two cascaded moving sums of
//!    [`LOW_PASS_MS`] (first zero at 1000 / 25 = 40 Hz, -3 dB near 16 Hz), then a high-pass
//!    "delayed input minus moving average" over [`HIGH_PASS_MS`] (-3 dB near 5 Hz). Both are
//!    designed from the sampling rate: lengths are milliseconds converted to samples, so the
//!    response is the same at 128, 200, 360 or 1000 Hz. Integer arithmetic, exact, no drift.
//! 2. **Derivative** over [`DERIVATIVE_MS`], **squaring**, **moving-window integration** over
//!    [`INTEGRATION_MS`] (the width of a wide QRS).
//! 3. **Peaks** of the integrated signal: a local maximum ends when the signal falls to half of
//!    it or [`PEAK_TIMEOUT_MS`] passes; a peak is held for [`REFRACTORY_MS`] in case a bigger one
//!    follows (only one QRS per refractory period).
//! 4. **Dual adaptive thresholds**: each peak has an integrated value (the square root of the
//!    window's energy, so thresholds scale with amplitude, not its square) and a band-pass
//!    amplitude. Running means of the last [`HISTORY`] QRS and noise peaks give, for each of the
//!    two signals, `threshold = noise + k (qrs - noise)`; a QRS must pass both.
//! 5. **Baseline-shift rejection**: the raw derivative must show a positive and a negative slope of
//!    comparable size (each at least 1/8 of the other) within [`BASELINE_SHIFT_MS`].
//! 6. **T-wave discrimination**: a peak within [`T_WAVE_MS`] of the previous QRS whose maximal
//!    slope is below half that of the previous QRS is a T wave (Pan & Tompkins).
//! 7. **Search-back**: with no QRS for 1.5 mean RR intervals, the largest noise peak found at
//!    least [`T_WAVE_MS`] after the last QRS becomes a QRS if it passes half of both thresholds.
//! 8. **Learning with look-back**: the first thresholds come from the per-second peak maxima of
//!    the first [`LEARN_S`] seconds; the candidate peaks of those seconds are kept and, once
//!    the thresholds exist, decided retroactively, so beats are found from the first second.
//!    After [`RESET_S`] seconds without a QRS (lead-off, a gap, re-attached electrodes) the
//!    thresholds are learned again and the candidates of the last [`LEARN_S`] seconds are
//!    decided again with them. The filters start from the first sample as if the signal had
//!    always had that value, so a DC offset gives no start-up transient.
//! 9. **R-peak refinement**: the band-pass maximum locates the QRS; the beat is then placed at the
//!    extreme deviation of the original signal from its local baseline within
//!    [`REFINE_MS`] of that point (compensating the band-pass delay).
//!
//! Streaming: [`QrsDetector::push`] takes any number of samples and appends the beats decided so
//! far; every beat is reported at most [`DELAY_MAX_MS`] after its R peak, and the detector's state
//! is a fixed set of ring buffers sized at construction ([`QrsDetector::state_bytes`]); nothing is
//! allocated per sample. [`detect`] (batch) runs the same code on a whole signal, so it returns
//! exactly the beats that streaming returns, however the signal is cut into chunks.

/// Length of each of the two moving sums of the low-pass filter.
pub const LOW_PASS_MS: f64 = 25.0;
/// Length of the moving average subtracted by the high-pass filter.
pub const HIGH_PASS_MS: f64 = 125.0;
/// Span of the derivative.
pub const DERIVATIVE_MS: f64 = 10.0;
/// Width of the moving-window integrator.
pub const INTEGRATION_MS: f64 = 150.0;
/// A peak of the integrated signal ends at most this long after its maximum.
pub const PEAK_TIMEOUT_MS: f64 = 95.0;
/// Two QRS complexes are never closer than this.
pub const REFRACTORY_MS: f64 = 200.0;
/// Peaks this close to the previous QRS are checked for being T waves.
pub const T_WAVE_MS: f64 = 360.0;
/// The positive and negative slopes of a QRS lie within this interval.
pub const BASELINE_SHIFT_MS: f64 = 150.0;
/// R-peak refinement searches this far either side of the band-pass maximum.
pub const REFINE_MS: f64 = 50.0;
/// RR intervals longer than this are clamped before averaging, which bounds the search-back
/// delay.
pub const RR_MAX_MS: f64 = 2400.0;
/// Seconds of signal used to learn the first thresholds, and the delay before re-learning.
pub const LEARN_S: usize = 4;
/// Seconds without a QRS after which the thresholds are learned again.
pub const RESET_S: usize = 8;
/// Number of recent QRS, noise and RR values averaged by the adaptive thresholds.
pub const HISTORY: usize = 8;
/// Delay of a search-back beat: found 1.5 × [`RR_MAX_MS`] plus the integration window after the
/// previous beat and at least [`T_WAVE_MS`] after it.
const SEARCH_BACK_DELAY_MS: f64 = 1.5 * RR_MAX_MS + INTEGRATION_MS - T_WAVE_MS + 2.0 * REFINE_MS;
/// Delay of a beat decided retroactively after (re)learning: at most [`LEARN_S`] seconds (only
/// candidates of the last [`LEARN_S`] seconds are decided again), plus the band-pass and
/// refinement offset of the R peak from the peak of the integrated signal.
const LOOK_BACK_DELAY_MS: f64 = LEARN_S as f64 * 1000.0 + 2.0 * REFINE_MS;
/// Bound on the delay between an R peak and the moment the detector reports it: the larger of
/// the search-back and the look-back delays (4.1 s).
pub const DELAY_MAX_MS: f64 = if SEARCH_BACK_DELAY_MS > LOOK_BACK_DELAY_MS {
    SEARCH_BACK_DELAY_MS
} else {
    LOOK_BACK_DELAY_MS
};
/// Candidate peaks kept for the look-back (at most one per refractory period is decided, so
/// [`LEARN_S`] seconds hold at most 20; the rest is margin).
const RECENT_MAX: usize = 64;
/// Lowest supported sampling rate.
pub const SAMPLING_HZ_MIN: f64 = 50.0;
/// Highest supported sampling rate (bounds the ring buffers and the integer ranges).
pub const SAMPLING_HZ_MAX: f64 = 20_000.0;
/// Input samples are clamped to ±2^19 ADC units (ranges of ADCs up to 20 bits), which keeps
/// every intermediate value of the integer pipeline inside `i64`.
pub const SAMPLE_ABS_MAX: i32 = 1 << 19;

/// Threshold fraction `k` between the noise and QRS levels, as `numerator / 2^THRESHOLD_SHIFT`.
const THRESHOLD_NUMERATOR: i64 = 5; // 5/16 = 0.3125, Hamilton & Tompkins
const THRESHOLD_SHIFT: u32 = 4;

/// A detected heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Beat {
    /// Sample index of the R peak (counted from the first sample pushed).
    pub sample: u64,
    /// True if the beat was found by search-back (below the normal threshold).
    pub search_back: bool,
}

/// The sampling rate is outside [`SAMPLING_HZ_MIN`]..=[`SAMPLING_HZ_MAX`] or not finite.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("sampling rate {0} Hz is outside {SAMPLING_HZ_MIN}..={SAMPLING_HZ_MAX} Hz")]
pub struct SamplingRateError(pub f64);

/// Filter lengths and time constants in samples, derived from the sampling rate.
#[derive(Debug, Clone, Copy)]
struct Timing {
    low_pass: usize,
    high_pass: usize,
    high_pass_delay: usize,
    band_pass_delay: usize,
    band_pass_shift: u32,
    derivative: usize,
    integration: usize,
    peak_timeout: u64,
    refractory: u64,
    t_wave: u64,
    baseline_shift: u64,
    refine: usize,
    rr_max: u64,
    delay_max: u64,
    second: u64,
}

fn samples(ms: f64, sampling_hz: f64) -> usize {
    ((ms * sampling_hz / 1000.0).round() as usize).max(1)
}

impl Timing {
    fn new(sampling_hz: f64) -> Self {
        let low_pass = samples(LOW_PASS_MS, sampling_hz);
        // Odd, so that the delayed input sits at the centre of the moving average.
        let high_pass = samples(HIGH_PASS_MS, sampling_hz) | 1;
        let gain = (low_pass * low_pass * high_pass) as u64;
        let high_pass_delay = (high_pass - 1) / 2;
        Self {
            low_pass,
            high_pass,
            high_pass_delay,
            band_pass_delay: (low_pass - 1) + high_pass_delay,
            band_pass_shift: 63 - gain.leading_zeros(),
            derivative: samples(DERIVATIVE_MS, sampling_hz),
            integration: samples(INTEGRATION_MS, sampling_hz),
            peak_timeout: samples(PEAK_TIMEOUT_MS, sampling_hz) as u64,
            refractory: samples(REFRACTORY_MS, sampling_hz) as u64,
            t_wave: samples(T_WAVE_MS, sampling_hz) as u64,
            baseline_shift: samples(BASELINE_SHIFT_MS, sampling_hz) as u64,
            refine: samples(REFINE_MS, sampling_hz),
            rr_max: samples(RR_MAX_MS, sampling_hz) as u64,
            delay_max: samples(DELAY_MAX_MS, sampling_hz) as u64,
            second: samples(1000.0, sampling_hz) as u64,
        }
    }

    /// Samples of history the ring buffers must keep: a peak is examined up to
    /// `peak_timeout + 1` samples after the maximum of the integrated signal, and looks back over
    /// the integration window, the derivative, the band-pass delay and the refinement window.
    fn history(&self) -> usize {
        self.peak_timeout as usize
            + 2
            + self.integration
            + self.derivative
            + self.band_pass_delay
            + 2 * self.refine
            + self.derivative
            + self.low_pass.max(self.high_pass)
    }
}

/// A peak of the integrated signal with the features the decision rules need.
#[derive(Debug, Clone, Copy, Default)]
struct Candidate {
    /// Square root of the integrated energy at the peak.
    energy: i64,
    /// Largest absolute band-pass value in the window of the peak.
    amplitude: i64,
    /// Largest absolute derivative of the band-passed signal in that window.
    slope: i64,
    /// Refined R-peak sample index, in input time.
    r_peak: u64,
    /// False if the raw signal looks like a baseline shift rather than a QRS.
    qrs_shaped: bool,
}

/// Running mean of the last [`HISTORY`] values.
#[derive(Debug, Clone, Copy, Default)]
struct History {
    values: [i64; HISTORY],
    next: usize,
    sum: i64,
}

impl History {
    fn filled(value: i64) -> Self {
        Self {
            values: [value; HISTORY],
            next: 0,
            sum: value * HISTORY as i64,
        }
    }

    fn push(&mut self, value: i64) {
        self.sum += value - self.values[self.next];
        self.values[self.next] = value;
        self.next = (self.next + 1) % HISTORY;
    }

    fn mean(&self) -> i64 {
        self.sum / HISTORY as i64
    }
}

/// Adaptive levels of one of the two signals (integrated energy, band-pass amplitude).
#[derive(Debug, Clone, Copy, Default)]
struct Levels {
    qrs: History,
    noise: History,
}

impl Levels {
    fn threshold(&self) -> i64 {
        let (qrs, noise) = (self.qrs.mean(), self.noise.mean());
        noise + (((qrs - noise) * THRESHOLD_NUMERATOR) >> THRESHOLD_SHIFT)
    }
}

/// One slot of the ring buffer: every stage's value at one sample index.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Input sample (clamped).
    raw: i32,
    /// After the first moving sum.
    low_pass_1: i64,
    /// After the second moving sum.
    low_pass_2: i64,
    /// Band-passed.
    band_pass: i64,
    /// Squared derivative of the band-passed signal.
    squared: i64,
}

/// The filter pipeline: a ring buffer of [`Slot`]s and the running sums.
#[derive(Debug, Clone)]
struct Filters {
    /// Indexed by `n & mask`; its length is a power of two covering [`Timing::history`].
    ring: Box<[Slot]>,
    mask: usize,
    sum_1: i64,
    sum_2: i64,
    sum_high: i64,
    sum_squared: i64,
}

/// Peak finder and decision rules.
#[derive(Debug, Clone)]
struct Decision {
    // Peak finder on the integrated signal.
    last_integrated: i64,
    peak_max: i64,
    peak_at: u64,
    peak_active: bool,
    /// Next sample at which [`Decision::events`] has something to do.
    next_event: u64,
    // Refractory hold of the best recent peak.
    held: Option<Candidate>,
    held_until: u64,
    // Thresholds and history.
    learned: bool,
    energy: Levels,
    amplitude: Levels,
    rr: History,
    last_qrs: Option<u64>,
    last_slope: i64,
    search_back: Option<Candidate>,
    search_back_at: u64,
    /// Candidates decided since the last QRS (oldest first, a ring of [`RECENT_MAX`]), for the
    /// look-back after (re)learning.
    recent: [Candidate; RECENT_MAX],
    recent_count: usize,
    recent_next: usize,
    // Per-second maxima for learning and re-learning.
    second_started: u64,
    second_max: Candidate,
    second_maxima: [Candidate; RESET_S],
    seconds_counted: usize,
}

/// Streaming QRS detector for one ECG channel. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct QrsDetector {
    timing: Timing,
    /// Index of the next input sample.
    n: u64,
    filters: Filters,
    decision: Decision,
}

impl QrsDetector {
    /// A detector for a signal sampled at `sampling_hz`.
    pub fn new(sampling_hz: f64) -> Result<Self, SamplingRateError> {
        if !(SAMPLING_HZ_MIN..=SAMPLING_HZ_MAX).contains(&sampling_hz) {
            return Err(SamplingRateError(sampling_hz));
        }
        let timing = Timing::new(sampling_hz);
        let size = timing.history().next_power_of_two();
        Ok(Self {
            timing,
            n: 0,
            filters: Filters {
                ring: vec![Slot::default(); size].into(),
                mask: size - 1,
                sum_1: 0,
                sum_2: 0,
                sum_high: 0,
                sum_squared: 0,
            },
            decision: Decision {
                last_integrated: 0,
                peak_max: 0,
                peak_at: 0,
                peak_active: false,
                next_event: timing.second,
                held: None,
                held_until: u64::MAX,
                learned: false,
                energy: Levels::default(),
                amplitude: Levels::default(),
                rr: History::default(),
                last_qrs: None,
                last_slope: 0,
                search_back: None,
                search_back_at: u64::MAX,
                recent: [Candidate::default(); RECENT_MAX],
                recent_count: 0,
                recent_next: 0,
                second_started: 0,
                second_max: Candidate::default(),
                second_maxima: [Candidate::default(); RESET_S],
                seconds_counted: 0,
            },
        })
    }

    /// Bytes of memory the detector holds (struct and ring buffer); constant for its lifetime.
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + std::mem::size_of_val(&*self.filters.ring)
    }

    /// Number of samples pushed so far.
    pub fn samples_seen(&self) -> u64 {
        self.n
    }

    /// Feeds samples (ADC units) and appends the beats decided so far to `beats`, in order.
    pub fn push(&mut self, samples: &[i32], beats: &mut Vec<Beat>) {
        if self.n == 0
            && let Some(&first) = samples.first()
        {
            self.filters.prime(&self.timing, first);
        }
        let t = self.timing;
        let f = &mut self.filters;
        let d = &mut self.decision;
        let mask = f.mask;
        let ring = &mut *f.ring;
        let (mut sum_1, mut sum_2, mut sum_high, mut sum_squared) =
            (f.sum_1, f.sum_2, f.sum_high, f.sum_squared);
        let mut last_integrated = d.last_integrated;
        let mut n = self.n;
        for &input in samples {
            let i = n as usize;
            let x = input.clamp(-SAMPLE_ABS_MAX, SAMPLE_ABS_MAX);
            // Band-pass: two moving sums (low-pass), then delayed input minus moving average.
            let old_low = ring[i.wrapping_sub(t.low_pass) & mask];
            sum_1 += i64::from(x) - i64::from(old_low.raw);
            sum_2 += sum_1 - old_low.low_pass_1;
            sum_high += sum_2 - ring[i.wrapping_sub(t.high_pass) & mask].low_pass_2;
            let centre = ring[i.wrapping_sub(t.high_pass_delay) & mask].low_pass_2;
            let band = (centre * t.high_pass as i64 - sum_high) >> t.band_pass_shift;
            // Derivative, squaring, moving-window integration.
            let slope = band - ring[i.wrapping_sub(t.derivative) & mask].band_pass;
            let squared = slope * slope;
            sum_squared += squared - ring[i.wrapping_sub(t.integration) & mask].squared;
            ring[i & mask] = Slot {
                raw: x,
                low_pass_1: sum_1,
                low_pass_2: sum_2,
                band_pass: band,
                squared,
            };
            let integrated = sum_squared;

            // Peak finder (Hamilton's `Peak`): a maximum ends when the signal halves or after
            // the timeout.
            if integrated > last_integrated && integrated > d.peak_max {
                d.peak_max = integrated;
                d.peak_at = n;
                d.peak_active = true;
            } else if d.peak_active
                && (integrated < d.peak_max >> 1 || n - d.peak_at > t.peak_timeout)
            {
                d.peak_ended(&t, ring, mask, n, beats);
            }
            last_integrated = integrated;
            if n >= d.next_event {
                d.events(&t, n, beats);
            }
            n += 1;
        }
        (f.sum_1, f.sum_2, f.sum_high, f.sum_squared) = (sum_1, sum_2, sum_high, sum_squared);
        d.last_integrated = last_integrated;
        self.n = n;
    }

    /// Ends the signal: decides on the peaks still pending, as if the signal had gone flat.
    pub fn finish(&mut self, beats: &mut Vec<Beat>) {
        let Some(latest) = self.n.checked_sub(1) else {
            return;
        };
        let d = &mut self.decision;
        if d.peak_active {
            d.peak_ended(
                &self.timing,
                &self.filters.ring,
                self.filters.mask,
                latest,
                beats,
            );
        }
        if let Some(candidate) = d.held.take() {
            d.classify(&self.timing, candidate, latest, beats);
        }
        // A recording shorter than the learning time: learn from the seconds there are.
        if !d.learned && d.recent_count > 0 {
            let seconds = d.seconds_counted.min(LEARN_S - 1);
            d.second_maxima[seconds] = d.second_max;
            d.learn(&self.timing, seconds + 1, latest, beats);
        }
    }
}

impl Filters {
    /// Fills the filter state as if the signal had always had the value `first`: no start-up
    /// transient from a DC offset.
    fn prime(&mut self, t: &Timing, first: i32) {
        let x = i64::from(first.clamp(-SAMPLE_ABS_MAX, SAMPLE_ABS_MAX));
        let low_pass_1 = x * t.low_pass as i64;
        let low_pass_2 = low_pass_1 * t.low_pass as i64;
        self.ring.fill(Slot {
            raw: x as i32,
            low_pass_1,
            low_pass_2,
            band_pass: 0,
            squared: 0,
        });
        self.sum_1 = low_pass_1;
        self.sum_2 = low_pass_2;
        self.sum_high = low_pass_2 * t.high_pass as i64;
        self.sum_squared = 0;
    }
}

impl Decision {
    /// The current peak of the integrated signal has ended at sample `n`.
    #[cold]
    #[inline(never)]
    fn peak_ended(
        &mut self,
        t: &Timing,
        ring: &[Slot],
        mask: usize,
        n: u64,
        beats: &mut Vec<Beat>,
    ) {
        self.peak_active = false;
        let candidate = examine(t, ring, mask, self.peak_at, self.peak_max, n);
        self.peak_max = 0;
        self.offer(t, candidate, n, beats);
    }

    /// Refractory hold: keep the biggest peak until none bigger has come for a refractory period.
    fn offer(&mut self, t: &Timing, candidate: Candidate, n: u64, beats: &mut Vec<Beat>) {
        match self.held {
            Some(held) if candidate.energy <= held.energy => return,
            Some(held) if candidate.r_peak >= held.r_peak + t.refractory => {
                // A bigger peak, but far enough to be a beat of its own: decide on the old one.
                self.held = None;
                self.classify(t, held, n, beats);
            }
            _ => {}
        }
        self.held = Some(candidate);
        self.held_until = n + t.refractory;
        self.next_event = self.next_event.min(self.held_until);
    }

    fn threshold_passed(&self, c: &Candidate, halve: bool) -> bool {
        let shift = u32::from(halve);
        c.energy > self.energy.threshold() >> shift
            && c.amplitude > self.amplitude.threshold() >> shift
    }

    /// Decision rules for a peak that survived its refractory hold.
    fn classify(&mut self, t: &Timing, c: Candidate, n: u64, beats: &mut Vec<Beat>) {
        if c.energy > self.second_max.energy {
            self.second_max = c;
        }
        if !c.qrs_shaped {
            return;
        }
        self.remember(c);
        if self.learned {
            self.decide(t, c, n, beats);
        }
    }

    /// Keeps `c` for a later look-back (the oldest is dropped when the ring is full).
    fn remember(&mut self, c: Candidate) {
        self.recent[self.recent_next] = c;
        self.recent_next = (self.recent_next + 1) % RECENT_MAX;
        self.recent_count = (self.recent_count + 1).min(RECENT_MAX);
    }

    /// The decision rules proper, for a QRS-shaped candidate with thresholds learned.
    fn decide(&mut self, t: &Timing, c: Candidate, n: u64, beats: &mut Vec<Beat>) {
        let since_last = self.last_qrs.map(|last| c.r_peak.saturating_sub(last));
        if since_last.is_some_and(|since| since < t.refractory) {
            return;
        }
        let t_wave =
            since_last.is_some_and(|since| since < t.t_wave) && c.slope < self.last_slope / 2;
        if !t_wave && self.threshold_passed(&c, false) {
            self.accept(t, c, false, n, beats);
            return;
        }
        self.energy.noise.push(c.energy);
        self.amplitude.noise.push(c.amplitude);
        let late = since_last.is_none_or(|since| since >= t.t_wave);
        if late && self.search_back.is_none_or(|best| c.energy > best.energy) {
            self.search_back = Some(c);
        }
        // Thresholds and candidate changed: a search-back already due is checked again now.
        self.next_event = self.next_event.min(self.search_back_at.max(n));
    }

    fn accept(
        &mut self,
        t: &Timing,
        c: Candidate,
        search_back: bool,
        n: u64,
        beats: &mut Vec<Beat>,
    ) {
        self.energy.qrs.push(c.energy);
        self.amplitude.qrs.push(c.amplitude);
        if let Some(last) = self.last_qrs {
            self.rr.push((c.r_peak - last).min(t.rr_max) as i64);
        }
        self.last_qrs = Some(c.r_peak);
        self.last_slope = c.slope;
        self.search_back = None;
        // Only candidates after the last QRS are ever decided again.
        self.recent_count = 0;
        // Search back after 1.5 mean RR intervals (plus the integration window) without a QRS.
        let rr = self.rr.mean() as u64;
        self.search_back_at = c.r_peak + rr + rr / 2 + t.integration as u64 + 1;
        self.seconds_counted = 0;
        self.second_started = n;
        self.second_max = Candidate::default();
        self.next_event = self.next_event.min(self.search_back_at.max(n + 1));
        beats.push(Beat {
            sample: c.r_peak,
            search_back,
        });
    }

    /// Timed work: end of a refractory hold, search-back, per-second learning and re-learning.
    #[cold]
    #[inline(never)]
    fn events(&mut self, t: &Timing, n: u64, beats: &mut Vec<Beat>) {
        if n >= self.held_until {
            self.held_until = u64::MAX;
            if let Some(candidate) = self.held.take() {
                self.classify(t, candidate, n, beats);
            }
        }
        // A candidate re-checked long after its deadline is dropped rather than reported later
        // than the delay bound.
        if n >= self.search_back_at
            && let Some(candidate) = self.search_back
            && n - candidate.r_peak <= t.delay_max
            && self.threshold_passed(&candidate, true)
        {
            self.accept(t, candidate, true, n, beats);
        }
        if n - self.second_started >= t.second {
            self.second_started = n;
            self.second_maxima[self.seconds_counted] = self.second_max;
            self.second_max = Candidate::default();
            self.seconds_counted += 1;
            let needed = if self.learned { RESET_S } else { LEARN_S };
            if self.seconds_counted >= needed {
                self.learn(t, needed, n, beats);
            }
        }
        // The next sample at which something is due (a search-back already due waits for the
        // next classification, which calls for it again).
        let search_back = if self.search_back_at > n {
            self.search_back_at
        } else {
            u64::MAX
        };
        self.next_event = self
            .held_until
            .min(search_back)
            .min(self.second_started + t.second);
    }

    /// (Re)starts the thresholds from the per-second maxima of the last `seconds` seconds, then
    /// decides again the candidates of the last [`LEARN_S`] seconds with them (look-back).
    fn learn(&mut self, t: &Timing, seconds: usize, n: u64, beats: &mut Vec<Beat>) {
        let maxima = &self.second_maxima[..seconds];
        let (mut energy, mut amplitude) = (History::default(), History::default());
        for i in 0..HISTORY {
            energy.push(maxima[i % seconds].energy);
            amplitude.push(maxima[i % seconds].amplitude);
        }
        self.energy = Levels {
            qrs: energy,
            noise: History::default(),
        };
        self.amplitude = Levels {
            qrs: amplitude,
            noise: History::default(),
        };
        self.rr = History::filled(t.second as i64);
        self.last_qrs = None;
        self.search_back = None;
        self.search_back_at = u64::MAX;
        self.learned = true;
        self.seconds_counted = 0;
        self.look_back(t, n, beats);
    }

    /// Decides the remembered candidates of the last [`LEARN_S`] seconds in order, with the
    /// search-backs that fall due between them, as if the thresholds had existed then.
    fn look_back(&mut self, t: &Timing, n: u64, beats: &mut Vec<Beat>) {
        let oldest = n.saturating_sub(LEARN_S as u64 * t.second);
        let count = self.recent_count;
        let first = (self.recent_next + RECENT_MAX - count) % RECENT_MAX;
        let candidates: [Candidate; RECENT_MAX] = self.recent;
        self.recent_count = 0;
        for k in 0..count {
            let c = candidates[(first + k) % RECENT_MAX];
            if c.r_peak < oldest {
                continue;
            }
            // The moment this candidate was decided: a refractory period after its peak.
            let decided_at = (c.r_peak + t.refractory).min(n);
            if decided_at >= self.search_back_at
                && let Some(best) = self.search_back
                && self.threshold_passed(&best, true)
            {
                self.accept(t, best, true, n, beats);
            }
            self.remember(c);
            self.decide(t, c, n, beats);
        }
        if n >= self.search_back_at
            && let Some(best) = self.search_back
            && n - best.r_peak <= t.delay_max
            && self.threshold_passed(&best, true)
        {
            self.accept(t, best, true, n, beats);
        }
    }
}

/// Features of the peak of the integrated signal at sample `at`, of value `integrated`;
/// `latest` is the index of the most recent sample in the ring buffer.
fn examine(
    t: &Timing,
    ring: &[Slot],
    mask: usize,
    at: u64,
    integrated: i64,
    latest: u64,
) -> Candidate {
    let at = at as usize;
    // The squared derivative summed at `at` spans band-pass samples
    // `at - integration - derivative + 1 ..= at`.
    let start = at.saturating_sub(t.integration + t.derivative - 1);
    let (mut amplitude, mut amplitude_at, mut slope) = (0i64, at, 0i64);
    for i in start..=at {
        let value = ring[i & mask].band_pass;
        if value.abs() > amplitude {
            amplitude = value.abs();
            amplitude_at = i;
        }
        if i >= t.derivative {
            slope = slope.max((value - ring[(i - t.derivative) & mask].band_pass).abs());
        }
    }
    // Back to input time; refine on the original signal around the band-pass maximum.
    let centre = amplitude_at.saturating_sub(t.band_pass_delay);
    let low = centre.saturating_sub(t.refine);
    let high = (centre + t.refine).min(latest as usize);
    let raw = |i: usize| i64::from(ring[i & mask].raw);
    let baseline = (raw(low) + raw(high)) / 2;
    let (mut best, mut r_peak) = (-1i64, centre);
    let (mut up, mut up_at, mut down, mut down_at) = (0i64, 0usize, 0i64, 0usize);
    for i in low..=high {
        let value = raw(i);
        let deviation = (value - baseline).abs();
        if deviation > best {
            best = deviation;
            r_peak = i;
        }
        if i >= t.derivative + low {
            let d = value - raw(i - t.derivative);
            if d > up {
                (up, up_at) = (d, i);
            } else if -d > down {
                (down, down_at) = (-d, i);
            }
        }
    }
    let qrs_shaped =
        up > down >> 3 && down > up >> 3 && (up_at.abs_diff(down_at) as u64) < t.baseline_shift;
    Candidate {
        energy: isqrt(integrated),
        amplitude,
        slope,
        r_peak: r_peak as u64,
        qrs_shaped,
    }
}

/// Integer square root (floor) of a non-negative value.
fn isqrt(value: i64) -> i64 {
    if value <= 0 {
        return 0;
    }
    let mut root = (value as f64).sqrt() as i64;
    while root * root > value {
        root -= 1;
    }
    while (root + 1) * (root + 1) <= value {
        root += 1;
    }
    root
}

/// Batch detection over a whole signal: exactly the beats a [`QrsDetector`] streams.
pub fn detect(samples: &[i32], sampling_hz: f64) -> Result<Vec<Beat>, SamplingRateError> {
    let mut detector = QrsDetector::new(sampling_hz)?;
    let mut beats = Vec::with_capacity(samples.len() / (sampling_hz as usize / 4).max(1));
    detector.push(samples, &mut beats);
    detector.finish(&mut beats);
    Ok(beats)
}
