//! `vigil ecg ...` and `vigil bench ecg`: QRS detection, EC57-style scoring, AF screening and the
//! detector benchmark (side by side with wfdb-python's XQRS).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use vigil_ecg::evaluate::{self, evaluate_af, evaluate_beats, list_records};
use vigil_ecg::hrv::{self, rr_intervals};
use vigil_ecg::score::{self, AfScore, BeatScore, Reference};
use vigil_ecg::wfdb::Record;
use vigil_ecg::{QrsDetector, detect};
use vigil_ecg::{af, quality};

/// Where the shared MIT-BIH records live, relative to the workspace root.
const DEFAULT_DIR: &str = "../shared/data/mitdb";
/// The reference-detector script the benchmark runs with `python3 -` (embedded, so the bench
/// works from any directory).
const XQRS_SCRIPT: &str = include_str!("../../../../scripts/ecg_xqrs.py");
/// Install line printed when wfdb-python is missing.
const PYTHON_INSTALL: &str = "python3 -m pip install wfdb";
/// Samples per `push` in the streaming benchmark: 0.1 s at 360 Hz, a gateway's packet.
const STREAM_CHUNK: usize = 36;
/// Timed repetitions per record; the fastest counts (the machine is shared).
const BENCH_REPEAT: usize = 5;

#[derive(Subcommand)]
pub enum Command {
    /// Print one detected R-peak sample index per line (nothing else on stdout). Beats inside
    /// segments of unusable signal quality are withheld (their count goes to stderr).
    Detect {
        /// WFDB record path without extension (e.g. ../shared/data/mitdb/100).
        record: PathBuf,
        /// Signal to analyse.
        #[arg(long, default_value_t = 0)]
        channel: usize,
        /// Print beats with times, RR intervals, HRV, signal quality and AF episodes as JSON.
        #[arg(long)]
        json: bool,
        /// Refuse a record whose checksum or initial value disagrees with its header (default:
        /// a warning on stderr, as the WFDB library does).
        #[arg(long)]
        strict: bool,
    },
    /// Score detections against reference annotations (AAMI EC57 / bxb: 150 ms window, from
    /// 5 minutes in, ventricular flutter excluded).
    Score(ScoreArgs),
    /// Score AF screening against `(AFIB` rhythm annotations (duration and episodes), or, with
    /// `--rr`, screen a list of RR intervals.
    Af(AfArgs),
}

#[derive(Args)]
pub struct AfArgs {
    #[command(flatten)]
    score: ScoreArgs,
    /// Screen RR intervals instead of records: one interval in ms per line (`-` for standard
    /// input; a chest strap's 1/1024 s units must be converted first). Prints one line per AF
    /// episode, `first,end`: 0-based indices into the list, `end` exclusive (interval k lies
    /// between beats k and k+1). With `--json`, the same with times: `start_ms` / `end_ms` are the
    /// cumulative sums of the intervals before beats `first` / `end` (also in seconds).
    #[arg(long, value_name = "FILE")]
    rr: Option<PathBuf>,
}

#[derive(Args)]
pub struct ScoreArgs {
    /// Directory of WFDB records with `.atr` reference annotations.
    #[arg(default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// Records to score (default: every record in DIR with a `.atr` file).
    records: Vec<String>,
    /// Signal to analyse.
    #[arg(long, default_value_t = 0)]
    channel: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Refuse records whose checksum or initial value disagrees with the header.
    #[arg(long)]
    strict: bool,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Directory of WFDB records with `.atr` reference annotations.
    #[arg(default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// Records to use (default: all in DIR).
    #[arg(long = "record")]
    records: Vec<String>,
    /// Skip the Python reference detector.
    #[arg(long)]
    no_python: bool,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Detect {
            record,
            channel,
            json,
            strict,
        } => detect_command(&record, channel, json, strict),
        Command::Score(args) => score_command(&args),
        Command::Af(AfArgs {
            rr: Some(path),
            score,
        }) => af_rr_command(&path, score.json),
        Command::Af(args) => af_command(&args.score),
    }
}

/// Prints a record's header mismatches on stderr, or refuses the record with `--strict`.
fn warn(record: &str, warnings: &[String], strict: bool) -> anyhow::Result<()> {
    if strict && let Some(first) = warnings.first() {
        anyhow::bail!("record {record}: {first} (--strict)");
    }
    for warning in warnings {
        eprintln!("warning: record {record}: {warning}");
    }
    Ok(())
}

/// The directory and record names to use. `vigil ecg score 108 203` (no DIR, but records of the
/// default directory) is read as records, not as a directory named `108`.
fn records_of(dir: &Path, records: &[String]) -> anyhow::Result<(PathBuf, Vec<String>)> {
    let default = Path::new(DEFAULT_DIR);
    let first = dir.to_string_lossy().into_owned();
    if !dir.is_dir() && default.join(format!("{first}.hea")).exists() {
        let mut names = vec![first];
        names.extend(records.iter().cloned());
        return Ok((default.to_path_buf(), names));
    }
    let names = if records.is_empty() {
        list_records(dir)?
    } else {
        records.to_vec()
    };
    anyhow::ensure!(
        !names.is_empty(),
        "no annotated WFDB records in {}",
        dir.display()
    );
    Ok((dir.to_path_buf(), names))
}

#[derive(Serialize)]
struct JsonBeat {
    sample: u64,
    time_s: f64,
    /// The interval from the previous beat, when both lie in usable signal.
    rr_ms: Option<f64>,
    search_back: bool,
}

#[derive(Serialize)]
struct JsonSpan {
    start: u64,
    end: u64,
    start_s: f64,
    end_s: f64,
}

fn detect_command(record: &Path, channel: usize, json: bool, strict: bool) -> anyhow::Result<()> {
    let detection = evaluate::detect_record(record, channel)?;
    warn(
        &record.display().to_string(),
        &detection.record.warnings,
        strict,
    )?;
    let fs = detection.record.sampling_frequency_hz();
    let signal = &detection.record.signals[channel];
    let peaks: Vec<u64> = detection.beats.iter().map(|beat| beat.sample).collect();
    let assessment = quality::assess(signal, fs, &peaks);
    let usable_rr = evaluate::usable_rr(&assessment, &peaks);
    let kept: Vec<&vigil_ecg::Beat> = detection
        .beats
        .iter()
        .filter(|beat| assessment.is_usable(beat.sample))
        .collect();
    let withheld = detection.beats.len() - kept.len();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if !json {
        for beat in &kept {
            writeln!(out, "{}", beat.sample)?;
        }
        if withheld > 0 {
            eprintln!(
                "{withheld} detections withheld in unusable segments ({:.1} s of {:.1} s)",
                assessment.unusable_samples() as f64 / fs,
                signal.len() as f64 / fs
            );
        }
        return Ok(out.flush()?);
    }
    // RR intervals, HRV and AF use only intervals whose two beats lie in usable signal. An
    // unusable interval stays in place as an implausible 0 ms, which HRV's normal mask drops
    // without pairing the intervals on either side of the gap.
    let rr = rr_intervals(&peaks, fs);
    let usable_intervals: Vec<hrv::RrInterval> = rr
        .iter()
        .zip(&usable_rr)
        .map(|(interval, &ok)| hrv::RrInterval {
            ms: if ok { interval.ms } else { 0.0 },
            ..*interval
        })
        .collect();
    let beats: Vec<JsonBeat> = detection
        .beats
        .iter()
        .enumerate()
        .filter(|(_, beat)| assessment.is_usable(beat.sample))
        .map(|(i, beat)| JsonBeat {
            sample: beat.sample,
            time_s: beat.sample as f64 / fs,
            rr_ms: i.checked_sub(1).filter(|&j| usable_rr[j]).map(|j| rr[j].ms),
            search_back: beat.search_back,
        })
        .collect();
    let span = |start: u64, end: u64| JsonSpan {
        start,
        end,
        start_s: start as f64 / fs,
        end_s: end as f64 / fs,
    };
    let unusable: Vec<JsonSpan> = assessment
        .unusable_intervals()
        .into_iter()
        .map(|(start, end)| span(start, end))
        .collect();
    let episodes: Vec<JsonSpan> = af::detect_episodes_usable(&peaks, fs, &usable_rr)
        .into_iter()
        .map(|episode| span(episode.start, episode.end))
        .collect();
    let value = serde_json::json!({
        "record": record.display().to_string(),
        "channel": channel,
        "sampling_hz": fs,
        "samples": detection.record.len(),
        "beats": beats,
        "hrv": hrv::hrv_stats(&usable_intervals),
        "af_episodes": episodes,
        "quality": {
            "segment_s": quality::SEGMENT_S,
            "unusable": unusable,
            "unusable_s": assessment.unusable_samples() as f64 / fs,
            "withheld_beats": withheld,
            "segments": assessment.segments,
        },
        "warnings": detection.record.warnings,
    });
    serde_json::to_writer_pretty(&mut out, &value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(out.flush()?)
}

/// Reads RR intervals in ms, one a line (blank lines skipped).
fn read_rr(path: &Path) -> anyhow::Result<Vec<f64>> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin().lock()).context("cannot read standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let ms: f64 = line
            .parse()
            .ok()
            .filter(|ms: &f64| ms.is_finite() && *ms > 0.0)
            .with_context(|| format!("line {}: {line:?} is not an RR interval in ms", index + 1))?;
        out.push(ms);
    }
    Ok(out)
}

fn af_rr_command(path: &Path, json: bool) -> anyhow::Result<()> {
    let rr = read_rr(path)?;
    // Implausible intervals (missed or extra beats) are left out of the screen, as unusable.
    let usable: Vec<bool> = rr
        .iter()
        .map(|ms| (hrv::RR_MIN_MS..=hrv::RR_MAX_MS).contains(ms))
        .collect();
    let rr_ms: Vec<u32> = rr
        .iter()
        .map(|ms| ms.round().min(f64::from(u32::MAX)) as u32)
        .collect();
    let episodes = af::rr_episodes(&rr_ms, &usable);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if !json {
        for (first, end) in &episodes {
            writeln!(out, "{first},{end}")?;
        }
        return Ok(out.flush()?);
    }
    // Beat k is at the sum of the intervals before it (beat 0 at 0 ms), in the input's own
    // units so the times add up exactly to what a device sent.
    let mut beat_ms = Vec::with_capacity(rr.len() + 1);
    beat_ms.push(0.0);
    for ms in &rr {
        let last = beat_ms.last().copied().unwrap_or(0.0);
        beat_ms.push(last + ms);
    }
    let list: Vec<serde_json::Value> = episodes
        .iter()
        .map(|&(first, end)| {
            serde_json::json!({
                "first": first,
                "end": end,
                "start_ms": beat_ms[first],
                "end_ms": beat_ms[end],
                "duration_ms": beat_ms[end] - beat_ms[first],
                "start_s": beat_ms[first] / 1000.0,
                "end_s": beat_ms[end] / 1000.0,
                "duration_s": (beat_ms[end] - beat_ms[first]) / 1000.0,
            })
        })
        .collect();
    let value = serde_json::json!({
        "intervals": rr.len(),
        "excluded_intervals": usable.iter().filter(|ok| !**ok).count(),
        "method": "Petrenas, Marozas & Sornmo 2015 (8-interval window, gamma 30 ms, alpha 0.02, delta 2e-4, eta 0.725), zero-phase averagers over the whole series",
        "episodes": list,
    });
    serde_json::to_writer_pretty(&mut out, &value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(out.flush()?)
}

fn score_command(args: &ScoreArgs) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut gross = BeatScore::default();
    let (dir, names) = records_of(&args.dir, &args.records)?;
    for name in names {
        let evaluation = evaluate_beats(&dir.join(&name), args.channel)?;
        warn(&name, &evaluation.warnings, args.strict)?;
        gross += evaluation.score;
        rows.push(evaluation);
    }
    if args.json {
        let value = serde_json::json!({
            "records": rows,
            "gross": gross,
            "gross_se_pct": gross.sensitivity_pct(),
            "gross_ppv_pct": gross.positive_predictivity_pct(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "{:>7} {:>7} {:>6} {:>6} {:>8} {:>8}",
        "record", "TP", "FP", "FN", "Se%", "+P%"
    );
    for row in &rows {
        print_beat_row(&row.record, &row.score);
    }
    print_beat_row("gross", &gross);
    Ok(())
}

fn print_beat_row(name: &str, s: &BeatScore) {
    println!(
        "{:>7} {:>7} {:>6} {:>6} {:>8.2} {:>8.2}",
        name,
        s.true_positives,
        s.false_positives,
        s.false_negatives,
        s.sensitivity_pct(),
        s.positive_predictivity_pct()
    );
}

fn af_command(args: &ScoreArgs) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut gross = AfScore::default();
    let mut af_records = AfScore::default();
    let (dir, names) = records_of(&args.dir, &args.records)?;
    for name in names {
        let evaluation = evaluate_af(&dir.join(&name), args.channel)?;
        warn(&name, &evaluation.warnings, args.strict)?;
        gross += evaluation.score;
        if evaluation.score.af_samples > 0 {
            af_records += evaluation.score;
        }
        rows.push(evaluation);
    }
    if args.json {
        let summary = |s: &AfScore| {
            serde_json::json!({
                "counts": s,
                "duration_se_pct": s.duration_sensitivity_pct(),
                "duration_sp_pct": s.duration_specificity_pct(),
                "episode_se_pct": s.episode_sensitivity_pct(),
                "episode_ppv_pct": s.episode_positive_predictivity_pct(),
            })
        };
        let value = serde_json::json!({
            "records": rows,
            "records_with_af": summary(&af_records),
            "gross": summary(&gross),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "{:>13} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6}",
        "record", "AF min", "dur Se%", "dur Sp%", "ep Se%", "ep +P%", "ep det"
    );
    let minutes =
        |row: &evaluate::AfEvaluation| row.score.af_samples as f64 / row.sampling_hz / 60.0;
    for row in &rows {
        print_af_row(&row.record, &row.score, minutes(row));
    }
    let total_minutes: f64 = rows.iter().map(minutes).sum();
    print_af_row("records w/ AF", &af_records, total_minutes);
    print_af_row("gross", &gross, total_minutes);
    Ok(())
}

fn print_af_row(name: &str, s: &AfScore, af_minutes: f64) {
    println!(
        "{:>13} {:>8.1} {:>8.2} {:>8.2} {:>8.1} {:>6.1} {:>6}",
        name,
        af_minutes,
        s.duration_sensitivity_pct(),
        s.duration_specificity_pct(),
        s.episode_sensitivity_pct(),
        s.episode_positive_predictivity_pct(),
        s.detections
    );
}

/// One record's benchmark figures.
struct BenchRow {
    name: String,
    samples: usize,
    reference: Reference,
    fs: f64,
    rust: BeatScore,
    batch_s: f64,
    stream_s: f64,
    python: Option<(BeatScore, f64)>,
}

fn score_peaks(reference: &Reference, peaks: &[u64], fs: f64) -> BeatScore {
    let window = (score::MATCH_WINDOW_S * fs).round() as u64;
    let start = (score::SCORING_START_S * fs).round() as u64;
    score::score_beats(reference, peaks, window, start)
}

pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let (dir, names) = records_of(&args.dir, &args.records)?;
    let mut rows = Vec::new();
    let mut state_bytes = 0;
    for name in &names {
        let path = dir.join(name);
        let record = Record::open(&path)?;
        let fs = record.sampling_frequency_hz();
        let signal = record.signals.first().context("record without signals")?;
        let reference = evaluate::reference(&path, record.len())?;
        let (mut batch_s, mut stream_s) = (f64::INFINITY, f64::INFINITY);
        let mut beats = Vec::new();
        for _ in 0..BENCH_REPEAT {
            let started = Instant::now();
            beats = detect(signal, fs)?;
            batch_s = batch_s.min(started.elapsed().as_secs_f64());

            let started = Instant::now();
            let mut detector = QrsDetector::new(fs)?;
            let mut streamed = Vec::new();
            for chunk in signal.chunks(STREAM_CHUNK) {
                detector.push(chunk, &mut streamed);
            }
            detector.finish(&mut streamed);
            stream_s = stream_s.min(started.elapsed().as_secs_f64());
            state_bytes = detector.state_bytes();
            anyhow::ensure!(
                streamed == beats,
                "record {name}: streaming and batch beats differ"
            );
        }
        let peaks: Vec<u64> = beats.iter().map(|beat| beat.sample).collect();
        let rust = score_peaks(&reference, &peaks, fs);
        rows.push(BenchRow {
            name: name.clone(),
            samples: record.len(),
            reference,
            fs,
            rust,
            batch_s,
            stream_s,
            python: None,
        });
    }

    let python_status = if args.no_python {
        "skipped".to_string()
    } else {
        match run_xqrs(&dir, &names) {
            Ok(results) => {
                for (row, (peaks, seconds)) in rows.iter_mut().zip(results) {
                    row.python = Some((score_peaks(&row.reference, &peaks, row.fs), seconds));
                }
                "xqrs".to_string()
            }
            Err(error) => {
                eprintln!("Python reference detector unavailable: {error:#}");
                eprintln!("  install it with: {PYTHON_INSTALL}");
                "missing".to_string()
            }
        }
    };

    println!(
        "{:>7} {:>8} | {:>7} {:>7} {:>8} {:>8} | {:>7} {:>7} {:>9}",
        "record", "samples", "Se%", "+P%", "batch ms", "strm ms", "xqrs Se", "xqrs +P", "xqrs ms"
    );
    let (mut rust, mut python) = (BeatScore::default(), BeatScore::default());
    let (mut samples, mut batch_s, mut stream_s, mut python_s) = (0usize, 0.0, 0.0, 0.0);
    for row in &rows {
        rust += row.rust;
        samples += row.samples;
        batch_s += row.batch_s;
        stream_s += row.stream_s;
        let python_cells = match row.python {
            Some((score, seconds)) => {
                python += score;
                python_s += seconds;
                format!(
                    "{:>7.2} {:>7.2} {:>9.1}",
                    score.sensitivity_pct(),
                    score.positive_predictivity_pct(),
                    seconds * 1e3
                )
            }
            None => format!("{:>7} {:>7} {:>9}", "-", "-", "-"),
        };
        println!(
            "{:>7} {:>8} | {:>7.2} {:>7.2} {:>8.2} {:>8.2} | {}",
            row.name,
            row.samples,
            row.rust.sensitivity_pct(),
            row.rust.positive_predictivity_pct(),
            row.batch_s * 1e3,
            row.stream_s * 1e3,
            python_cells
        );
    }
    let has_python = rows.iter().any(|row| row.python.is_some());
    println!(
        "{:>7} {:>8} | {:>7.3} {:>7.3} {:>8.1} {:>8.1} | {}",
        "gross",
        samples,
        rust.sensitivity_pct(),
        rust.positive_predictivity_pct(),
        batch_s * 1e3,
        stream_s * 1e3,
        if has_python {
            format!(
                "{:>7.3} {:>7.3} {:>9.0}",
                python.sensitivity_pct(),
                python.positive_predictivity_pct(),
                python_s * 1e3
            )
        } else {
            format!("{:>7} {:>7} {:>9}", "-", "-", "-")
        }
    );
    let batch_msps = samples as f64 / batch_s / 1e6;
    let stream_msps = samples as f64 / stream_s / 1e6;
    println!();
    println!(
        "batch:     {batch_msps:.1} M samples/s (one core, fastest of {BENCH_REPEAT} runs per record)"
    );
    println!(
        "streaming: {stream_msps:.1} M samples/s in chunks of {STREAM_CHUNK} samples; beats identical to batch"
    );
    println!(
        "state:     {state_bytes} bytes per stream at {} Hz",
        rows.first().map_or(0.0, |row| row.fs)
    );
    if has_python {
        println!(
            "xqrs:      {:.2} M samples/s; vigil batch is {:.0}x faster",
            samples as f64 / python_s / 1e6,
            python_s / batch_s
        );
    } else {
        println!("xqrs:      {python_status} (install: {PYTHON_INSTALL})");
    }
    let mut line = format!(
        "ecg_bench records={} samples={samples} batch_msps={batch_msps:.1} stream_msps={stream_msps:.1} \
         state_bytes={state_bytes} se_pct={:.3} ppv_pct={:.3} python={python_status}",
        rows.len(),
        rust.sensitivity_pct(),
        rust.positive_predictivity_pct(),
    );
    if has_python {
        line.push_str(&format!(
            " python_se_pct={:.3} python_ppv_pct={:.3} python_s={python_s:.2}",
            python.sensitivity_pct(),
            python.positive_predictivity_pct()
        ));
    }
    println!("{line}");
    Ok(())
}

/// Runs the embedded XQRS script on `names`; per record, the peaks and the detection time.
fn run_xqrs(dir: &Path, names: &[String]) -> anyhow::Result<Vec<(Vec<u64>, f64)>> {
    #[derive(serde::Deserialize)]
    struct Line {
        record: String,
        seconds: f64,
        peaks: Vec<u64>,
    }
    let mut child = Process::new("python3")
        .arg("-")
        .arg(dir)
        .args(names)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot start python3")?;
    child
        .stdin
        .take()
        .context("python3 stdin")?
        .write_all(XQRS_SCRIPT.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("no message");
        anyhow::bail!("python3 failed ({}): {last}", output.status);
    }
    let mut results = Vec::with_capacity(names.len());
    for (line, name) in String::from_utf8_lossy(&output.stdout).lines().zip(names) {
        let parsed: Line =
            serde_json::from_str(line).context("unexpected output from the XQRS script")?;
        anyhow::ensure!(
            parsed.record == *name,
            "XQRS script answered for {} instead of {name}",
            parsed.record
        );
        results.push((parsed.peaks, parsed.seconds));
    }
    anyhow::ensure!(
        results.len() == names.len(),
        "XQRS script stopped after {} records",
        results.len()
    );
    Ok(results)
}
