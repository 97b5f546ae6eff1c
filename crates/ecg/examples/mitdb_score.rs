//! Development helper: score every record of a directory (default: the shared MIT-BIH folder).
//! `cargo run --release -p vigil-ecg --example mitdb_score [DIR]`

use vigil_ecg::evaluate::{evaluate_beats, list_records, mitdb_dir};
use vigil_ecg::score::BeatScore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = match std::env::args().nth(1) {
        Some(dir) => dir.into(),
        None => match mitdb_dir(env!("CARGO_MANIFEST_DIR")) {
            Some(dir) => dir,
            None => return Ok(()),
        },
    };
    let mut gross = BeatScore::default();
    for name in list_records(&dir)? {
        let evaluation = evaluate_beats(&dir.join(&name), 0)?;
        let s = evaluation.score;
        println!(
            "{name:>6} TP {:>6} FP {:>5} FN {:>5} Se {:>7.2} +P {:>7.2}  {:.2} ms",
            s.true_positives,
            s.false_positives,
            s.false_negatives,
            s.sensitivity_pct(),
            s.positive_predictivity_pct(),
            evaluation.detect_s * 1e3
        );
        gross += s;
    }
    println!(
        " gross TP {:>6} FP {:>5} FN {:>5} Se {:>7.3} +P {:>7.3}",
        gross.true_positives,
        gross.false_positives,
        gross.false_negatives,
        gross.sensitivity_pct(),
        gross.positive_predictivity_pct()
    );
    Ok(())
}
