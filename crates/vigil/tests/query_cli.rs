//! `vigil query` end to end: the command starts a local consortium, signs the doctor's query as a
//! ledger transaction, has the verifying nodes' verdicts finalized, and prints the result only
//! once they accept it. The result must equal the plaintext over the same DP databases.

use std::process::Command;

use vigil_privstats::query::Metric;
use vigil_stats_service::runner::{DATA_START_S, open_or_generate};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
const ROWS: usize = 2_000;

fn field(line: &str, key: &str) -> u128 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[test]
fn query_goes_through_the_ledger_and_prints_the_exact_result() {
    let dir = std::env::temp_dir().join(format!("vigil-query-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
    let (from, to) = (DATA_START_S, DATA_START_S + 1_200);
    let out = Command::new(VIGIL)
        .args([
            "query", "--stat", "variance", "--metric", "hr", "--dps", "3,1",
        ])
        .args(["--from", &from.to_string(), "--to", &to.to_string()])
        .args(["--rows", &ROWS.to_string(), "--verifiers", "2"])
        .arg("--data")
        .arg(&data)
        .arg("--ledger-dir")
        .arg(dir.join("ledger"))
        .output()
        .expect("run vigil");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Decided on the ledger: both verifying nodes' valid verdicts finalized.
    assert!(stdout.contains("2 verdicts, 2 valid"), "{stdout}");
    assert!(
        stdout.contains("accepted on 2 finalized all-valid verdicts"),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("count="))
        .expect("a count line");
    let (mut count, mut sum, mut sumsq) = (0u128, 0u128, 0u128);
    for dp in [1, 3] {
        let (db, fresh) = open_or_generate(&data, dp, ROWS).expect("database");
        assert!(!fresh, "the command generated DP {dp}'s database");
        let a = db.answer(Metric::Hr, from, to, &[], &[]).expect("answer");
        count += u128::from(a.count);
        sum += u128::from(a.sum);
        sumsq += u128::from(a.sumsq);
    }
    assert!(count > 0 && count < 2 * ROWS as u128, "a partial window");
    assert_eq!(
        (
            field(line, "count"),
            field(line, "sum"),
            field(line, "sumsq")
        ),
        (count, sum, sumsq)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn query_refuses_bad_flags_before_starting_anything() {
    let out = Command::new(VIGIL)
        .args(["query", "--stat", "mode", "--data", "/nonexistent/vigil"])
        .output()
        .expect("run vigil");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown statistic"));
}
