//! Evaluation of the detector and the AF screen on annotated WFDB records (the files of a
//! record directory such as MIT-BIH): the glue the CLI, the benchmark and the tests share.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::af::{self, AfEpisode};
use crate::detect::{Beat, SamplingRateError, detect};
use crate::quality::{self, Assessment};
use crate::score::{self, AfScore, BeatScore, Reference};
use crate::wfdb::{Record, WfdbError, read_annotations};

/// Errors of an evaluation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvaluateError {
    /// A record could not be read.
    #[error("record {record}")]
    Wfdb {
        /// The record path.
        record: PathBuf,
        /// The cause.
        #[source]
        source: WfdbError,
    },
    /// The record's sampling rate is not supported.
    #[error("record {record}")]
    SamplingRate {
        /// The record path.
        record: PathBuf,
        /// The cause.
        #[source]
        source: SamplingRateError,
    },
    /// The record has no such channel.
    #[error("record {record} has {channels} channels, no channel {channel}")]
    NoChannel {
        /// The record path.
        record: PathBuf,
        /// Channels in the record.
        channels: usize,
        /// Channel asked for.
        channel: usize,
    },
    /// The directory could not be listed.
    #[error("cannot list {dir}")]
    Directory {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Names of the records in `dir` that have a header and a reference annotation file, sorted.
pub fn list_records(dir: &Path) -> Result<Vec<String>, EvaluateError> {
    let entries = std::fs::read_dir(dir).map_err(|source| EvaluateError::Directory {
        dir: dir.into(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()?
                .strip_suffix(".hea")
                .map(str::to_string)
        })
        .filter(|name| dir.join(format!("{name}.atr")).exists())
        .collect();
    names.sort();
    Ok(names)
}

/// A record read and its channel detected.
#[derive(Debug, Clone)]
pub struct Detection {
    /// The record.
    pub record: Record,
    /// The detected beats of the channel.
    pub beats: Vec<Beat>,
    /// Wall time of the batch detection alone.
    pub elapsed: Duration,
}

/// Reads `record` (path without extension) and detects the beats of `channel`.
pub fn detect_record(record: &Path, channel: usize) -> Result<Detection, EvaluateError> {
    let data = Record::open(record).map_err(|source| EvaluateError::Wfdb {
        record: record.into(),
        source,
    })?;
    let Some(signal) = data.signals.get(channel) else {
        return Err(EvaluateError::NoChannel {
            record: record.into(),
            channels: data.signals.len(),
            channel,
        });
    };
    let started = Instant::now();
    let beats = detect(signal, data.sampling_frequency_hz()).map_err(|source| {
        EvaluateError::SamplingRate {
            record: record.into(),
            source,
        }
    })?;
    let elapsed = started.elapsed();
    Ok(Detection {
        record: data,
        beats,
        elapsed,
    })
}

/// Reads the reference annotations (`.atr`) of `record`.
pub fn reference(record: &Path, len: usize) -> Result<Reference, EvaluateError> {
    let annotations = read_annotations(record, "atr").map_err(|source| EvaluateError::Wfdb {
        record: record.into(),
        source,
    })?;
    Ok(Reference::from_annotations(&annotations, len as u64))
}

/// Beat-by-beat result of one record.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BeatEvaluation {
    /// Record name.
    pub record: String,
    /// Counts.
    pub score: BeatScore,
    /// Samples of the channel.
    pub samples: usize,
    /// Batch detection time in seconds.
    pub detect_s: f64,
    /// Checksum / initial-value mismatches of the record (see [`crate::wfdb::Check`]).
    pub warnings: Vec<String>,
}

/// Scores detections of `channel` of `record` against its `.atr` (EC57 window and start).
pub fn evaluate_beats(record: &Path, channel: usize) -> Result<BeatEvaluation, EvaluateError> {
    let detection = detect_record(record, channel)?;
    let fs = detection.record.sampling_frequency_hz();
    let reference = reference(record, detection.record.len())?;
    let detected: Vec<u64> = detection.beats.iter().map(|beat| beat.sample).collect();
    let window = (score::MATCH_WINDOW_S * fs).round() as u64;
    let start = (score::SCORING_START_S * fs).round() as u64;
    Ok(BeatEvaluation {
        record: record_name(record),
        score: score::score_beats(&reference, &detected, window, start),
        samples: detection.record.len(),
        detect_s: detection.elapsed.as_secs_f64(),
        warnings: detection.record.warnings,
    })
}

/// AF screening result of one record.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AfEvaluation {
    /// Record name.
    pub record: String,
    /// Counts.
    pub score: AfScore,
    /// Sampling rate of the record.
    pub sampling_hz: f64,
    /// Detected episodes.
    pub episodes: Vec<AfEpisode>,
    /// Checksum / initial-value mismatches of the record (see [`crate::wfdb::Check`]).
    pub warnings: Vec<String>,
}

/// Runs detection and AF screening on `record` and scores the episodes against `(AFIB`.
pub fn evaluate_af(record: &Path, channel: usize) -> Result<AfEvaluation, EvaluateError> {
    let detection = detect_record(record, channel)?;
    let fs = detection.record.sampling_frequency_hz();
    let len = detection.record.len() as u64;
    let reference = reference(record, detection.record.len())?;
    let peaks: Vec<u64> = detection.beats.iter().map(|beat| beat.sample).collect();
    let assessment = quality::assess(&detection.record.signals[channel], fs, &peaks);
    let episodes = af::detect_episodes_usable(&peaks, fs, &usable_rr(&assessment, &peaks));
    let intervals: Vec<(u64, u64)> = episodes.iter().map(|e| (e.start, e.end)).collect();
    let start = (score::SCORING_START_S * fs).round() as u64;
    Ok(AfEvaluation {
        record: record_name(record),
        score: score::score_af(&reference.atrial_fibrillation, &intervals, start, len),
        sampling_hz: fs,
        episodes,
        warnings: detection.record.warnings,
    })
}

/// Per RR interval of `beats`, true if both of its beats lie in usable segments.
pub fn usable_rr(assessment: &Assessment, beats: &[u64]) -> Vec<bool> {
    beats
        .windows(2)
        .map(|p| assessment.is_usable(p[0]) && assessment.is_usable(p[1]))
        .collect()
}

/// Rhythm class of a short strip, as the PhysioNet/CinC 2017 challenge labels them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum StripClass {
    /// Normal sinus rhythm (`N`).
    Normal,
    /// Atrial fibrillation (`A`).
    AtrialFibrillation,
    /// Another rhythm (`O`).
    Other,
    /// Too noisy to classify (`~`).
    Noisy,
}

impl StripClass {
    /// The challenge's label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Normal => "N",
            Self::AtrialFibrillation => "A",
            Self::Other => "O",
            Self::Noisy => "~",
        }
    }
}

/// Sinus rates outside this band (bpm) are another rhythm (sinus bradycardia below 50 bpm,
/// tachycardia above 100 bpm).
pub const SINUS_BPM: (f64, f64) = (50.0, 100.0);
/// A strip with more of its time unusable than this is noisy.
pub const NOISY_FRACTION: f64 = 0.5;
/// Fraction of intervals excluded as ectopic (HRV's 20 % rule) above which a non-AF strip is
/// another rhythm (frequent ectopy).
pub const ECTOPIC_FRACTION_OTHER: f64 = 0.1;

/// Classifies a strip from its detected beats and their quality: noisy if mostly unusable or
/// too short to judge; AF if the AF screen says so over the usable intervals; other if not AF
/// but irregular (normalised RMSSD above the AF screen's bound), with frequent ectopy or a rate
/// outside [`SINUS_BPM`]; normal otherwise. These rules are fixed here, not fitted to any data.
pub fn classify_strip(
    samples: usize,
    beats: &[u64],
    fs: f64,
    assessment: &Assessment,
) -> StripClass {
    let usable = usable_rr(assessment, beats);
    let rr = af::rr_ms(beats, fs);
    let kept: Vec<u32> = rr
        .iter()
        .zip(&usable)
        .filter_map(|(&r, &ok)| ok.then_some(r))
        .collect();
    let unusable = assessment.unusable_samples() as f64 / samples.max(1) as f64;
    let normal_mask = af::ectopic_filter(&kept);
    let normal: Vec<u32> = kept
        .iter()
        .zip(&normal_mask)
        .filter_map(|(&r, &n)| n.then_some(r))
        .collect();
    let Some(verdict) = af::window_verdict(&normal) else {
        return StripClass::Noisy;
    };
    if unusable > NOISY_FRACTION {
        return StripClass::Noisy;
    }
    // The strip's rhythm is that of most of its usable intervals (Petrėnas et al.'s detector).
    let af_intervals = af::af_flags(&kept, &[]).iter().filter(|&&f| f).count();
    if 2 * af_intervals >= kept.len() {
        return StripClass::AtrialFibrillation;
    }
    let mean_ms = normal.iter().map(|&r| f64::from(r)).sum::<f64>() / normal.len() as f64;
    let rate = 60_000.0 / mean_ms;
    let ectopic = 1.0 - normal.len() as f64 / kept.len() as f64;
    let irregular = f64::from(verdict.nrmssd_permille) > 1000.0 * af::NRMSSD_MIN;
    if irregular || ectopic > ECTOPIC_FRACTION_OTHER || !(SINUS_BPM.0..=SINUS_BPM.1).contains(&rate)
    {
        StripClass::Other
    } else {
        StripClass::Normal
    }
}

/// Reads, detects and classifies a short record (channel 0).
pub fn classify_record(record: &Path) -> Result<(StripClass, Vec<String>), EvaluateError> {
    let detection = detect_record(record, 0)?;
    let fs = detection.record.sampling_frequency_hz();
    let peaks: Vec<u64> = detection.beats.iter().map(|beat| beat.sample).collect();
    let assessment = quality::assess(&detection.record.signals[0], fs, &peaks);
    let class = classify_strip(detection.record.len(), &peaks, fs, &assessment);
    Ok((class, detection.record.warnings))
}

fn record_name(record: &Path) -> String {
    record
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The shared MIT-BIH folder for tests and examples: `$VIGIL_MITDB`, else
/// `../shared/data/mitdb` next to the workspace. `None` (with a message on stderr) if absent,
/// except under CI (`CI` set and not `false`/`0`), where the data is promised and a missing
/// folder is a failure, not a skip.
///
/// # Panics
/// Under CI when the folder is missing or holds no record.
pub fn mitdb_dir(manifest_dir: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("VIGIL_MITDB") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(manifest_dir).join("../../../shared/data/mitdb"),
    };
    let under_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    let has_records = list_records(&dir).is_ok_and(|names| !names.is_empty());
    if has_records {
        Some(dir)
    } else if under_ci {
        panic!(
            "MIT-BIH records not found at {} under CI (set VIGIL_MITDB)",
            dir.display()
        );
    } else {
        eprintln!(
            "SKIPPED: MIT-BIH records not found at {} (set VIGIL_MITDB)",
            dir.display()
        );
        None
    }
}
