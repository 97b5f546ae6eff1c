//! `vigil ecg af --rr` end to end: RR intervals from a file and from standard input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn vigil_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vigil");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("vigil output")
}

/// 300 regular intervals, 400 AF-like ones (500–800 ms in random order), 300 regular.
fn series() -> String {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut out = String::new();
    for k in 0..1000 {
        let ms = if (300..700).contains(&k) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            500 + state % 300
        } else {
            800 + (k % 4) * 5
        };
        out.push_str(&format!("{ms}\n"));
    }
    out
}

#[test]
fn af_from_rr_on_stdin_prints_first_end_lines() {
    let output = vigil_stdin(&["ecg", "af", "--rr", "-"], &series());
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let episodes: Vec<(usize, usize)> = stdout
        .lines()
        .map(|line| {
            let (first, end) = line.split_once(',').expect("first,end");
            (first.parse().expect("first"), end.parse().expect("end"))
        })
        .collect();
    assert_eq!(episodes.len(), 1, "{stdout}");
    let (first, end) = episodes[0];
    assert!(
        first.abs_diff(300) <= 64 && end.abs_diff(700) <= 64,
        "{stdout}"
    );
}

#[test]
fn af_from_rr_file_as_json_has_times_and_bad_lines_are_refused() {
    let path = std::env::temp_dir().join(format!("vigil-ecg-rr-{}.txt", std::process::id()));
    std::fs::write(&path, series()).expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["ecg", "af", "--json", "--rr", path.to_str().expect("utf-8")])
        .output()
        .expect("run vigil");
    let _ = std::fs::remove_file(&path);
    assert!(output.status.success(), "{output:?}");
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(value["intervals"], 1000);
    let episode = &value["episodes"][0];
    let start_s = episode["start_s"].as_f64().expect("start_s");
    assert!((200.0..300.0).contains(&start_s), "{episode}");
    // Times are the cumulative sums of the input intervals before the episode's beats.
    let intervals: Vec<f64> = series()
        .lines()
        .map(|l| l.trim().parse().expect("series is numeric"))
        .collect();
    let first = episode["first"].as_u64().expect("first") as usize;
    let end = episode["end"].as_u64().expect("end") as usize;
    let sum = |n: usize| intervals[..n].iter().sum::<f64>();
    let start_ms = episode["start_ms"].as_f64().expect("start_ms");
    let end_ms = episode["end_ms"].as_f64().expect("end_ms");
    assert!((start_ms - sum(first)).abs() < 1e-6, "{episode}");
    assert!((end_ms - sum(end)).abs() < 1e-6, "{episode}");
    // The text form lists the same episodes.
    let text = vigil_stdin(&["ecg", "af", "--rr", "-"], &series());
    let listed: Vec<String> = value["episodes"]
        .as_array()
        .expect("episodes")
        .iter()
        .map(|e| format!("{},{}", e["first"], e["end"]))
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&text.stdout)
            .lines()
            .collect::<Vec<_>>(),
        listed
    );
    let refused = vigil_stdin(&["ecg", "af", "--rr", "-"], "800\nabc\n");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("line 2"));
    // Zero, negative, non-finite and unit-suffixed values are refused with their line, never a
    // panic; blank lines are skipped but counted.
    for (input, line) in [
        ("800\n0\n", "line 2"),
        ("800\n\n-5\n", "line 3"),
        ("inf\n", "line 1"),
        ("800\n810 ms\n", "line 2"),
    ] {
        let refused = vigil_stdin(&["ecg", "af", "--rr", "-"], input);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{input:?}: {stderr}");
        assert!(stderr.contains(line), "{input:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{input:?}: {stderr}");
    }
}
