//! Scoring against reference annotations, after AAMI EC57 and WFDB's `bxb` and `epic`.
//!
//! Beats: a detection matches a reference beat (a WFDB beat code, see
//! [`AnnotationCode::is_beat`]) within [`MATCH_WINDOW_S`]; each reference beat and each detection
//! is matched at most once, closest pairs first. Scoring starts [`SCORING_START_S`] into the
//! record (the detector's learning time in EC57) and skips ventricular flutter / fibrillation:
//! the intervals between `[` and `]` annotations and rhythm episodes labelled `(VFL` or `(VF`,
//! where neither reference beats nor detections count.
//!
//! AF: reference AF is every interval from a `(AFIB` rhythm annotation to the next rhythm
//! annotation (or the end of the record). Duration sensitivity is the fraction of reference AF
//! time flagged as AF, duration specificity the fraction of non-AF time not flagged; episode
//! sensitivity is the fraction of reference episodes that overlap a detected episode, episode
//! positive predictivity the fraction of detected episodes that overlap a reference episode.

use crate::wfdb::{Annotation, AnnotationCode};

/// Match window of a detection to a reference beat (EC57: 150 ms).
pub const MATCH_WINDOW_S: f64 = 0.150;
/// Scoring starts this far into a record (EC57: 5 minutes).
pub const SCORING_START_S: f64 = 300.0;

/// A half-open interval of samples, `[start, end)`.
pub type Interval = (u64, u64);

/// Beat-by-beat counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BeatScore {
    /// Reference beats matched by a detection.
    pub true_positives: u64,
    /// Detections matching no reference beat.
    pub false_positives: u64,
    /// Reference beats matched by no detection.
    pub false_negatives: u64,
}

impl BeatScore {
    /// Sensitivity `TP / (TP + FN)` in percent (NaN when there is nothing to find).
    pub fn sensitivity_pct(&self) -> f64 {
        pct(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }

    /// Positive predictivity `TP / (TP + FP)` in percent (NaN when nothing was detected).
    pub fn positive_predictivity_pct(&self) -> f64 {
        pct(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }
}

impl std::ops::AddAssign for BeatScore {
    fn add_assign(&mut self, other: Self) {
        self.true_positives += other.true_positives;
        self.false_positives += other.false_positives;
        self.false_negatives += other.false_negatives;
    }
}

/// `part / whole` in percent; undefined (NaN) when there is nothing to count, so an empty
/// evaluation (no records, no reference beats) can never pass a `>=` threshold.
fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        f64::NAN
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// Reference beats and excluded (ventricular flutter) intervals of an annotation list.
#[derive(Debug, Clone, Default)]
pub struct Reference {
    /// Sample indices of the reference beats, sorted.
    pub beats: Vec<u64>,
    /// Intervals excluded from beat scoring, sorted.
    pub excluded: Vec<Interval>,
    /// Reference AF intervals, sorted.
    pub atrial_fibrillation: Vec<Interval>,
}

impl Reference {
    /// Extracts beats, flutter intervals and AF intervals; `len` is the record length in samples
    /// (open intervals end there).
    pub fn from_annotations(annotations: &[Annotation], len: u64) -> Self {
        let mut reference = Self::default();
        let mut flutter_start: Option<u64> = None;
        let mut rhythm: Option<(u64, &str)> = None;
        let close_rhythm = |reference: &mut Self, rhythm: Option<(u64, &str)>, end: u64| {
            if let Some((start, label)) = rhythm {
                let interval = (start, end.max(start));
                match label {
                    "(AFIB" => reference.atrial_fibrillation.push(interval),
                    "(VFL" | "(VF" => reference.excluded.push(interval),
                    _ => {}
                }
            }
        };
        let mut sorted: Vec<&Annotation> = annotations.iter().collect();
        sorted.sort_by_key(|a| a.sample);
        for annotation in sorted {
            let at = annotation.sample.max(0) as u64;
            match annotation.code {
                code if code.is_beat() => reference.beats.push(at),
                AnnotationCode::VF_ON => flutter_start = flutter_start.or(Some(at)),
                AnnotationCode::VF_OFF => {
                    if let Some(start) = flutter_start.take() {
                        reference.excluded.push((start, at + 1));
                    }
                }
                AnnotationCode::RHYTHM => {
                    if let Some(label) = annotation.aux.as_deref() {
                        close_rhythm(&mut reference, rhythm, at);
                        rhythm = Some((at, label));
                    }
                }
                _ => {}
            }
        }
        close_rhythm(&mut reference, rhythm, len);
        if let Some(start) = flutter_start {
            reference.excluded.push((start, len));
        }
        reference.excluded.sort_unstable();
        reference
    }
}

fn inside(intervals: &[Interval], sample: u64) -> bool {
    intervals
        .iter()
        .any(|&(start, end)| (start..end).contains(&sample))
}

/// Matches `detected` against `reference.beats` (both sorted sample indices); `window` and
/// `start` are in samples.
pub fn score_beats(reference: &Reference, detected: &[u64], window: u64, start: u64) -> BeatScore {
    let keep = |sample: &&u64| **sample >= start && !inside(&reference.excluded, **sample);
    let truth: Vec<u64> = reference.beats.iter().filter(keep).copied().collect();
    let tests: Vec<u64> = detected.iter().filter(keep).copied().collect();
    // Candidate pairs within the window, closest first.
    let mut pairs = Vec::new();
    let mut first = 0;
    for (i, &r) in truth.iter().enumerate() {
        while first < tests.len() && tests[first] + window < r {
            first += 1;
        }
        for (j, &d) in tests.iter().enumerate().skip(first) {
            if d > r + window {
                break;
            }
            pairs.push((r.abs_diff(d), i, j));
        }
    }
    pairs.sort_unstable();
    let (mut truth_used, mut test_used) = (vec![false; truth.len()], vec![false; tests.len()]);
    let mut matched = 0u64;
    for (_, i, j) in pairs {
        if !truth_used[i] && !test_used[j] {
            truth_used[i] = true;
            test_used[j] = true;
            matched += 1;
        }
    }
    BeatScore {
        true_positives: matched,
        false_positives: tests.len() as u64 - matched,
        false_negatives: truth.len() as u64 - matched,
    }
}

/// Duration and episode counts of an AF detector on one record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AfScore {
    /// Reference AF samples flagged as AF.
    pub af_detected_samples: u64,
    /// Reference AF samples.
    pub af_samples: u64,
    /// Non-AF samples not flagged.
    pub non_af_clear_samples: u64,
    /// Non-AF samples.
    pub non_af_samples: u64,
    /// Reference episodes overlapped by a detected episode.
    pub episodes_found: u64,
    /// Reference episodes.
    pub episodes: u64,
    /// Detected episodes overlapping a reference episode.
    pub detections_true: u64,
    /// Detected episodes.
    pub detections: u64,
}

impl AfScore {
    /// Duration sensitivity in percent.
    pub fn duration_sensitivity_pct(&self) -> f64 {
        pct(self.af_detected_samples, self.af_samples)
    }
    /// Duration specificity in percent.
    pub fn duration_specificity_pct(&self) -> f64 {
        pct(self.non_af_clear_samples, self.non_af_samples)
    }
    /// Episode sensitivity in percent.
    pub fn episode_sensitivity_pct(&self) -> f64 {
        pct(self.episodes_found, self.episodes)
    }
    /// Episode positive predictivity in percent.
    pub fn episode_positive_predictivity_pct(&self) -> f64 {
        pct(self.detections_true, self.detections)
    }
}

impl std::ops::AddAssign for AfScore {
    fn add_assign(&mut self, o: Self) {
        self.af_detected_samples += o.af_detected_samples;
        self.af_samples += o.af_samples;
        self.non_af_clear_samples += o.non_af_clear_samples;
        self.non_af_samples += o.non_af_samples;
        self.episodes_found += o.episodes_found;
        self.episodes += o.episodes;
        self.detections_true += o.detections_true;
        self.detections += o.detections;
    }
}

fn clip(intervals: &[Interval], start: u64, end: u64) -> Vec<Interval> {
    intervals
        .iter()
        .map(|&(a, b)| (a.max(start), b.min(end)))
        .filter(|&(a, b)| a < b)
        .collect()
}

fn overlap(a: &[Interval], b: &[Interval]) -> u64 {
    let mut total = 0;
    for &(a0, a1) in a {
        for &(b0, b1) in b {
            total += a1.min(b1).saturating_sub(a0.max(b0));
        }
    }
    total
}

fn length(intervals: &[Interval]) -> u64 {
    intervals.iter().map(|(a, b)| b - a).sum()
}

/// Scores detected AF episodes against reference AF intervals over `[start, end)` samples.
pub fn score_af(reference: &[Interval], detected: &[Interval], start: u64, end: u64) -> AfScore {
    let truth = clip(reference, start, end);
    let tests = clip(detected, start, end);
    let total = end.saturating_sub(start);
    let af_samples = length(&truth);
    let flagged = length(&tests);
    let af_detected_samples = overlap(&truth, &tests);
    let non_af_samples = total - af_samples;
    let false_flagged = flagged - af_detected_samples;
    let hits = |x: &Interval, ys: &[Interval]| ys.iter().any(|y| x.0 < y.1 && y.0 < x.1);
    AfScore {
        af_detected_samples,
        af_samples,
        non_af_clear_samples: non_af_samples - false_flagged.min(non_af_samples),
        non_af_samples,
        episodes_found: truth.iter().filter(|x| hits(x, &tests)).count() as u64,
        episodes: truth.len() as u64,
        detections_true: tests.iter().filter(|x| hits(x, &truth)).count() as u64,
        detections: tests.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_evaluation_passes_no_threshold() {
        // The acceptance tests' form of threshold: `pct >= 99.5`.
        let passes = |pct: f64| pct >= 99.5;
        let nothing = BeatScore::default();
        assert!(!passes(nothing.sensitivity_pct()));
        assert!(!passes(nothing.positive_predictivity_pct()));
        let no_af = AfScore::default();
        assert!(no_af.duration_sensitivity_pct().is_nan());
        assert!(no_af.episode_positive_predictivity_pct().is_nan());
    }

    fn annotation(sample: i64, code: u8, aux: Option<&str>) -> Annotation {
        Annotation {
            sample,
            code: AnnotationCode(code),
            subtype: 0,
            channel: 0,
            num: 0,
            aux: aux.map(str::to_string),
        }
    }

    #[test]
    fn matches_closest_pairs_within_window() {
        let reference = Reference {
            beats: vec![100, 300, 500, 700],
            ..Reference::default()
        };
        // 290 and 310 both near 300: one matches, one is a false positive; 700 is missed.
        let score = score_beats(&reference, &[105, 290, 310, 498, 900], 54, 0);
        assert_eq!(
            score,
            BeatScore {
                true_positives: 3,
                false_positives: 2,
                false_negatives: 1
            }
        );
        let late = score_beats(&reference, &[105, 290, 310, 498, 900], 54, 400);
        assert_eq!(
            late,
            BeatScore {
                true_positives: 1,
                false_positives: 1,
                false_negatives: 1
            }
        );
    }

    #[test]
    fn excludes_flutter_and_reads_af() {
        let annotations = [
            annotation(10, 28, Some("(N")),
            annotation(100, 1, None),
            annotation(200, 32, None),
            annotation(250, 1, None),
            annotation(300, 33, None),
            annotation(400, 28, Some("(AFIB")),
            annotation(450, 1, None),
            annotation(600, 28, Some("(N")),
            annotation(700, 28, Some("(AFIB")),
        ];
        let reference = Reference::from_annotations(&annotations, 1000);
        assert_eq!(reference.beats, vec![100, 250, 450]);
        assert_eq!(reference.excluded, vec![(200, 301)]);
        assert_eq!(reference.atrial_fibrillation, vec![(400, 600), (700, 1000)]);
        let score = score_beats(&reference, &[101, 260, 455], 54, 0);
        assert_eq!(
            score,
            BeatScore {
                true_positives: 2,
                false_positives: 0,
                false_negatives: 0
            }
        );
        let af = score_af(&reference.atrial_fibrillation, &[(450, 650)], 0, 1000);
        assert_eq!((af.af_detected_samples, af.af_samples), (150, 500));
        assert_eq!((af.non_af_clear_samples, af.non_af_samples), (450, 500));
        assert_eq!(
            (
                af.episodes_found,
                af.episodes,
                af.detections_true,
                af.detections
            ),
            (1, 2, 1, 1)
        );
    }
}
