//! Evaluation of the detector and the AF screen on annotated WFDB records (the files of a
//! record directory such as MIT-BIH): the glue the CLI, the benchmark and the tests share.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::af::{self, AfEpisode};
use crate::detect::{Beat, SamplingRateError, detect};
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
}

/// Runs detection and AF screening on `record` and scores the episodes against `(AFIB`.
pub fn evaluate_af(record: &Path, channel: usize) -> Result<AfEvaluation, EvaluateError> {
    let detection = detect_record(record, channel)?;
    let fs = detection.record.sampling_frequency_hz();
    let len = detection.record.len() as u64;
    let reference = reference(record, detection.record.len())?;
    let peaks: Vec<u64> = detection.beats.iter().map(|beat| beat.sample).collect();
    let episodes = af::detect_episodes(&peaks, fs);
    let intervals: Vec<(u64, u64)> = episodes.iter().map(|e| (e.start, e.end)).collect();
    let start = (score::SCORING_START_S * fs).round() as u64;
    Ok(AfEvaluation {
        record: record_name(record),
        score: score::score_af(&reference.atrial_fibrillation, &intervals, start, len),
        sampling_hz: fs,
        episodes,
    })
}

fn record_name(record: &Path) -> String {
    record
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The shared MIT-BIH folder for tests and examples: `$VIGIL_MITDB`, else
/// `../shared/data/mitdb` next to the workspace. `None` (with a message on stderr) if absent.
pub fn mitdb_dir(manifest_dir: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("VIGIL_MITDB") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(manifest_dir).join("../../../shared/data/mitdb"),
    };
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: MIT-BIH records not found at {} (set VIGIL_MITDB)",
            dir.display()
        );
        None
    }
}
