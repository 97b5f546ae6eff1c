//! Development evaluation of the AF screen: duration Se / Sp on the shared MIT-BIH records (as
//! `vigil ecg af` prints them) and the PhysioNet/CinC 2017 F1 scores on the shared validation
//! strips (`../shared/data/cinc2017`, or `$VIGIL_CINC2017`).
//!
//! `cargo run --release -p vigil-ecg --example af_eval`

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use vigil_ecg::evaluate::{StripClass, classify_record, evaluate_af, list_records, mitdb_dir};
use vigil_ecg::score::{self, AfScore};
use vigil_ecg::{af, evaluate, wfdb::Record};

type Boxed = Box<dyn std::error::Error>;

fn main() -> Result<(), Boxed> {
    if let Some(dir) = mitdb_dir(env!("CARGO_MANIFEST_DIR")) {
        mitdb(&dir)?;
    }
    let cinc = match std::env::var_os("VIGIL_CINC2017") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cinc2017"),
    };
    if cinc.is_dir() {
        cinc2017(&cinc)?;
    } else {
        eprintln!("SKIPPED: no CinC 2017 strips at {}", cinc.display());
    }
    Ok(())
}

fn mitdb(dir: &Path) -> Result<(), Boxed> {
    let (mut af_records, mut others) = (AfScore::default(), AfScore::default());
    let (mut af_reference, mut others_reference) = (AfScore::default(), AfScore::default());
    println!(
        "{:>7} {:>8} {:>8} {:>8}   on reference beats: {:>8} {:>8}",
        "record", "AF min", "dur Se%", "dur Sp%", "dur Se%", "dur Sp%"
    );
    for name in list_records(dir)? {
        let evaluation = evaluate_af(&dir.join(&name), 0)?;
        let s = evaluation.score;
        let r = on_reference_beats(&dir.join(&name))?;
        if s.af_samples > 0 {
            af_records += s;
            af_reference += r;
            println!(
                "{name:>7} {:>8.1} {:>8.2} {:>8.2}   {:>27.2} {:>8.2}",
                s.af_samples as f64 / evaluation.sampling_hz / 60.0,
                s.duration_sensitivity_pct(),
                s.duration_specificity_pct(),
                r.duration_sensitivity_pct(),
                r.duration_specificity_pct()
            );
        } else {
            others += s;
            others_reference += r;
            println!(
                "{name:>7} {:>8} {:>8} {:>8.2}   {:>27} {:>8.2}",
                "-",
                "-",
                s.duration_specificity_pct(),
                "-",
                r.duration_specificity_pct()
            );
        }
    }
    println!(
        "on the reference beats: records with AF: duration Se {:.2} % Sp {:.2} %; records without AF: Sp {:.2} %",
        af_reference.duration_sensitivity_pct(),
        af_reference.duration_specificity_pct(),
        others_reference.duration_specificity_pct()
    );
    println!(
        "records with AF: duration Se {:.2} % Sp {:.2} %; records without AF: Sp {:.2} %",
        af_records.duration_sensitivity_pct(),
        af_records.duration_specificity_pct(),
        others.duration_specificity_pct()
    );
    Ok(())
}

/// The AF screen on the record's reference beats (the `.atr` beat labels): what the method
/// does without detection errors.
fn on_reference_beats(record: &Path) -> Result<AfScore, Boxed> {
    let data = Record::open(record)?;
    let fs = data.sampling_frequency_hz();
    let len = data.len() as u64;
    let reference = evaluate::reference(record, data.len())?;
    let episodes = af::detect_episodes(&reference.beats, fs);
    let intervals: Vec<(u64, u64)> = episodes.iter().map(|e| (e.start, e.end)).collect();
    let start = (score::SCORING_START_S * fs).round() as u64;
    Ok(score::score_af(
        &reference.atrial_fibrillation,
        &intervals,
        start,
        len,
    ))
}

fn cinc2017(dir: &Path) -> Result<(), Boxed> {
    let reference = std::fs::read_to_string(dir.join("REFERENCE.csv"))?;
    let labels = ["N", "A", "O", "~"];
    let mut confusion: HashMap<(&str, &str), usize> = HashMap::new();
    let mut warned = 0;
    for line in reference.lines().filter(|l| !l.trim().is_empty()) {
        let Some((name, truth)) = line.trim().split_once(',') else {
            continue;
        };
        let (class, warnings) = classify_record(&dir.join(name))?;
        warned += usize::from(!warnings.is_empty());
        let truth = labels.iter().copied().find(|l| *l == truth).unwrap_or("~");
        *confusion.entry((truth, class.label())).or_default() += 1;
    }
    let count = |t: &str, p: &str| confusion.get(&(t, p)).copied().unwrap_or(0);
    println!();
    println!(
        "CinC 2017 validation strips: rows truth, columns ours ({warned} with header warnings)"
    );
    println!("     {:>5} {:>5} {:>5} {:>5}", "N", "A", "O", "~");
    for t in labels {
        println!(
            "{t:>4} {:>5} {:>5} {:>5} {:>5}",
            count(t, "N"),
            count(t, "A"),
            count(t, "O"),
            count(t, "~")
        );
    }
    // The challenge's F1 per class: 2 · correct / (truth total + predicted total).
    let f1 = |c: &str| {
        let truth: usize = labels.iter().map(|p| count(c, p)).sum();
        let predicted: usize = labels.iter().map(|t| count(t, c)).sum();
        2.0 * count(c, c) as f64 / (truth + predicted).max(1) as f64
    };
    let (n, a, o) = (f1("N"), f1("A"), f1("O"));
    println!(
        "F1 N {n:.3}  A {a:.3}  O {o:.3}  mean(N, A, O) {:.3}",
        (n + a + o) / 3.0
    );
    let _ = StripClass::Normal;
    Ok(())
}
