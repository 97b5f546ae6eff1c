//! Development evaluation of the AF screen: duration Se / Sp on the shared MIT-BIH records (as
//! `vigil ecg af` prints them) and the PhysioNet/CinC 2017 F1 scores on the shared validation
//! strips (`../shared/data/cinc2017`, or `$VIGIL_CINC2017`).
//!
//! `cargo run --release -p vigil-ecg --example af_eval`

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use vigil_ecg::evaluate::{StripClass, classify_record, evaluate_af, list_records, mitdb_dir};
use vigil_ecg::score::AfScore;

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
    println!(
        "{:>7} {:>8} {:>8} {:>8}",
        "record", "AF min", "dur Se%", "dur Sp%"
    );
    for name in list_records(dir)? {
        let evaluation = evaluate_af(&dir.join(&name), 0)?;
        let s = evaluation.score;
        if s.af_samples > 0 {
            af_records += s;
            println!(
                "{name:>7} {:>8.1} {:>8.2} {:>8.2}",
                s.af_samples as f64 / evaluation.sampling_hz / 60.0,
                s.duration_sensitivity_pct(),
                s.duration_specificity_pct()
            );
        } else {
            others += s;
            if s.duration_specificity_pct() < 100.0 {
                println!(
                    "{name:>7} {:>8} {:>8} {:>8.2}",
                    "-",
                    "-",
                    s.duration_specificity_pct()
                );
            }
        }
    }
    println!(
        "records with AF: duration Se {:.2} % Sp {:.2} %; records without AF: Sp {:.2} %",
        af_records.duration_sensitivity_pct(),
        af_records.duration_specificity_pct(),
        others.duration_specificity_pct()
    );
    Ok(())
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
