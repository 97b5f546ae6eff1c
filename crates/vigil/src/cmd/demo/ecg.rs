//! The demo's ECG data providers: a few people wear an ECG patch whose gateway detects
//! heartbeats and sends RR intervals. With MIT-BIH records at hand (`--mitdb`, `VIGIL_MITDB`
//! or `../shared/data/mitdb`), each patch replays one record's RR series as found by our
//! Pan-Tompkins detector (records with atrial fibrillation first, so the heart-rhythm contract
//! has something to find); otherwise the series is synthetic: sinus rhythm with respiratory
//! variation, and one irregular (AF-like) series.

use std::path::{Path, PathBuf};

use vigil_sim::Rng;

/// Records with atrial fibrillation episodes in MIT-BIH, tried first.
const AF_RECORDS: [&str; 7] = ["201", "203", "202", "210", "219", "221", "222"];
/// Intervals kept per source (about an hour of beats): a bound on memory.
const INTERVALS_MAX: usize = 5_000;
/// RR intervals accepted from the detector, in ms (outside: a missed or extra beat).
const RR_MS_PLAUSIBLE: (f64, f64) = (250.0, 2_500.0);
/// Intervals one pack carries at most; a faster replay skips ahead.
pub const INTERVALS_PER_PACK_MAX: usize = 48;

/// What a patch sends for one stretch of its recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// An RR interval in ms, from usable signal.
    Rr(u16),
    /// This many ms of unusable signal (the quality index's unusable segments, or an
    /// implausible interval): reported as `signal-unusable`, never as a rate or an interval.
    Unusable(u16),
}

impl Report {
    fn ms(self) -> u64 {
        match self {
            Self::Rr(ms) | Self::Unusable(ms) => u64::from(ms),
        }
    }
}

pub struct EcgSource {
    /// "MIT-BIH 201" or "synthetic sinus" / "synthetic irregular".
    pub label: String,
    rr_ms: Vec<Report>,
    next: usize,
    /// Simulated ms elapsed into the current interval.
    into_ms: u64,
}

impl EcgSource {
    /// The reports that end within the next `dt_ms` of simulated time, each with its offset
    /// from the start of that span; at most [`INTERVALS_PER_PACK_MAX`].
    pub fn advance(&mut self, dt_ms: u64) -> Vec<(u64, Report)> {
        let mut out = Vec::new();
        let mut elapsed = 0u64;
        let mut budget = dt_ms + self.into_ms;
        let start_offset = self.into_ms;
        loop {
            let rr = self.rr_ms[self.next % self.rr_ms.len()].ms().max(1);
            if budget < rr {
                self.into_ms = budget;
                break;
            }
            budget -= rr;
            elapsed += rr;
            self.next = (self.next + 1) % self.rr_ms.len();
            if out.len() < INTERVALS_PER_PACK_MAX {
                out.push((
                    elapsed.saturating_sub(start_offset),
                    self.rr_ms[(self.next + self.rr_ms.len() - 1) % self.rr_ms.len()],
                ));
            }
        }
        out
    }
}

/// Where MIT-BIH records are looked for when no folder is given.
pub fn default_dir() -> PathBuf {
    std::env::var_os("VIGIL_MITDB")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data/mitdb"))
}

/// `count` sources: MIT-BIH records from `dir` when it holds any, synthetic ones otherwise.
/// Never fails: an unreadable record is skipped with a note in the returned messages.
pub fn sources(dir: &Path, count: usize, seed: u64) -> (Vec<EcgSource>, Vec<String>) {
    let mut notes = Vec::new();
    let mut out = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".hea").map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort_by_key(|n| (!AF_RECORDS.contains(&n.as_str()), n.clone()));
    for name in names {
        if out.len() >= count {
            break;
        }
        match replay(&dir.join(&name)) {
            Ok(rr_ms) if rr_ms.len() >= 16 => out.push(EcgSource {
                label: format!("MIT-BIH {name}"),
                rr_ms,
                next: 0,
                into_ms: 0,
            }),
            Ok(_) => notes.push(format!("record {name}: too few beats, skipped")),
            Err(e) => notes.push(format!("record {name}: {e}, skipped")),
        }
    }
    let mut rng = Rng::new(seed ^ 0xEC6);
    while out.len() < count {
        let irregular = out.len() == 1;
        out.push(synthetic(&mut rng, irregular));
    }
    (out, notes)
}

/// The record's reports from our detector on its first signal: RR intervals where the signal
/// is usable, one [`Report::Unusable`] per run of unusable or implausible intervals.
fn replay(record: &Path) -> anyhow::Result<Vec<Report>> {
    let record = vigil_ecg::wfdb::Record::open(record)?;
    let fs = record.sampling_frequency_hz();
    let signal = record
        .signals
        .first()
        .ok_or_else(|| anyhow::anyhow!("no signal"))?;
    let beats: Vec<u64> = vigil_ecg::detect(signal, fs)?
        .iter()
        .map(|b| b.sample)
        .collect();
    let assessment = vigil_ecg::quality::assess(signal, fs, &beats);
    let usable = vigil_ecg::evaluate::usable_rr(&assessment, &beats);
    let intervals = vigil_ecg::hrv::rr_intervals(&beats, fs);
    Ok(reports(
        intervals.iter().zip(usable).map(|(rr, ok)| (rr.ms, ok)),
    ))
}

/// RR intervals (ms) with their usability, as a patch reports them: usable plausible intervals
/// as they are, each run of the others merged into one unusable span (split at `u16::MAX` ms).
fn reports(intervals: impl Iterator<Item = (f64, bool)>) -> Vec<Report> {
    let mut out = Vec::new();
    for (ms, ok) in intervals {
        let plausible = (RR_MS_PLAUSIBLE.0..=RR_MS_PLAUSIBLE.1).contains(&ms);
        let whole = ms.round().clamp(1.0, f64::from(u16::MAX)) as u16;
        match (ok && plausible, out.last_mut()) {
            (true, _) => out.push(Report::Rr(whole)),
            (false, Some(Report::Unusable(span)))
                if u32::from(*span) + u32::from(whole) <= u32::from(u16::MAX) =>
            {
                *span += whole;
            }
            (false, _) => out.push(Report::Unusable(whole)),
        }
        if out.len() >= INTERVALS_MAX {
            break;
        }
    }
    out
}

fn synthetic(rng: &mut Rng, irregular: bool) -> EcgSource {
    let mean = rng.range(720.0, 950.0);
    let rr_ms = (0..INTERVALS_MAX)
        .map(|i| {
            let ms = if irregular {
                rng.range(mean * 0.6, mean * 1.3)
            } else {
                // Respiratory sinus arrhythmia (a breath every ~4 beats) plus a little noise.
                mean + 40.0 * (i as f64 * std::f64::consts::TAU / 4.3).sin() + 8.0 * rng.normal()
            };
            Report::Rr(ms.clamp(RR_MS_PLAUSIBLE.0, RR_MS_PLAUSIBLE.1).round() as u16)
        })
        .collect();
    EcgSource {
        label: if irregular {
            "synthetic irregular".into()
        } else {
            "synthetic sinus".into()
        },
        rr_ms,
        next: 0,
        into_ms: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_emits_each_interval_once_at_its_end() {
        let mut source = EcgSource {
            label: "test".into(),
            rr_ms: vec![Report::Rr(800), Report::Unusable(1_000)],
            next: 0,
            into_ms: 0,
        };
        assert_eq!(source.advance(700), vec![]);
        assert_eq!(source.advance(200), vec![(100, Report::Rr(800))]);
        assert_eq!(
            source.advance(2_000),
            vec![(900, Report::Unusable(1_000)), (1_700, Report::Rr(800))]
        );
    }

    #[test]
    fn unusable_and_implausible_intervals_become_one_unusable_report_per_run() {
        let intervals = [
            (800.0, true),
            (790.0, false),
            (3_000.0, false),
            (100.0, true),
            (810.0, true),
            (820.0, false),
        ];
        assert_eq!(
            reports(intervals.into_iter()),
            vec![
                Report::Rr(800),
                Report::Unusable(3_890),
                Report::Rr(810),
                Report::Unusable(820)
            ]
        );
    }

    #[test]
    fn without_records_the_sources_are_synthetic_and_one_is_irregular() {
        let (sources, _) = sources(Path::new("/nonexistent"), 3, 7);
        assert_eq!(sources.len(), 3);
        assert!(sources.iter().all(|s| s.label.starts_with("synthetic")));
        assert_eq!(sources[1].label, "synthetic irregular");
    }
}
