//! `vigil contracts eval` end to end, on the example files of crates/contracts/examples.

use std::path::PathBuf;
use std::process::{Command, Output};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contracts/examples")
}

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .output()
        .expect("run vigil")
}

fn eval(contracts: &str, readings: &str, json: bool) -> Output {
    let c = examples().join(contracts);
    let r = examples().join(readings);
    let mut args = vec![
        "contracts",
        "eval",
        "--contracts",
        c.to_str().expect("utf-8"),
        "--readings",
        r.to_str().expect("utf-8"),
    ];
    if json {
        args.push("--json");
    }
    vigil(&args)
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn reason_of<'a>(line: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    line["reason"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

fn level_of(line: &serde_json::Value, name: &str) -> Option<u64> {
    reason_of(line, name)["level"].as_u64()
}

#[test]
fn example_files_give_the_documented_levels() {
    let lines = json_lines(&eval("instances.toml", "readings.jsonl", true));
    // 17 reading and tick lines, and a SenML pack of two records.
    assert_eq!(lines.len(), 19);
    let levels: Vec<u64> = lines
        .iter()
        .map(|l| l["level"].as_u64().expect("level"))
        .collect();
    // Line 4 (39.0 °C) is critical once only: repeat = 2 keeps the level at warning. The RR line
    // (17) reports the rhythm instance, still at warning from the tachycardia of line 9.
    assert_eq!(
        levels,
        vec![0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 0, 2, 0, 1, 2, 0, 1, 0, 0]
    );
    // Temperature: two readings in a row to raise, then hysteresis.
    assert_eq!(level_of(&lines[1], "temperature"), Some(0));
    assert_eq!(level_of(&lines[2], "temperature"), Some(1));
    assert_eq!(
        reason_of(&lines[2], "temperature")["detail"]["band"],
        "warning-high"
    );
    assert_eq!(
        reason_of(&lines[2], "temperature")["alert"]["change"],
        "raised"
    );
    assert_eq!(
        level_of(&lines[4], "temperature"),
        Some(1),
        "3740 is held by the hysteresis"
    );
    // NEWS2 reaches 6 (medium): SpO2 93 % (2), RR 23 (2), HR 115 (2); the fever has cleared.
    assert_eq!(level_of(&lines[8], "news2"), Some(1));
    assert_eq!(reason_of(&lines[8], "news2")["detail"]["aggregate"], 6);
    // Geofence: out at +60 s (pending), confirmed after the 2-minute dwell, back home.
    assert_eq!(level_of(&lines[10], "geofence"), Some(0));
    assert_eq!(level_of(&lines[11], "geofence"), Some(2));
    assert_eq!(
        reason_of(&lines[11], "geofence")["detail"]["events"][0]["event"],
        "left"
    );
    assert_eq!(
        reason_of(&lines[12], "geofence")["detail"]["events"][0]["event"],
        "returned"
    );
    // No-signal: reminder to the person, then staff.
    assert_eq!(lines[13]["tick_ms"], 1_700_000_900_000u64);
    assert_eq!(level_of(&lines[13], "phone-alive"), Some(1));
    assert_eq!(reason_of(&lines[13], "phone-alive")["audience"], "person");
    assert_eq!(level_of(&lines[14], "phone-alive"), Some(2));
    // SenML pack records are evaluated one by one.
    assert_eq!(lines[17]["metric"], "body-temperature");
    assert_eq!(lines[17]["value"]["scalar"], 3710);
    // Offline readings are not device-signed: a raise they cause has no evidence a validator
    // would accept. The no-signal staff alert rests on an attestation, which has a digest.
    assert!(reason_of(&lines[3], "temperature")["evidence_digest"].is_null());
    assert!(
        reason_of(&lines[14], "phone-alive")["evidence_digest"]
            .as_str()
            .is_some_and(|d| d.len() == 64)
    );
}

#[test]
fn json_instance_files_are_equivalent() {
    let toml = json_lines(&eval("instances.toml", "readings.jsonl", true));
    let json = json_lines(&eval("instances.json", "readings.jsonl", true));
    assert_eq!(toml, json);
}

#[test]
fn the_table_has_a_header_and_a_row_per_reading() {
    let output = eval("instances.toml", "readings.jsonl", false);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(text.lines().count(), 20);
    assert!(text.lines().next().is_some_and(|h| h.contains("level")));
    assert!(text.contains("warning-high"));
}

#[test]
fn check_prints_addresses() {
    let c = examples().join("instances.toml");
    let output = vigil(&[
        "contracts",
        "check",
        "--contracts",
        c.to_str().expect("utf-8"),
    ]);
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 5);
}

fn failure(contracts_text: Option<&str>, readings_text: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "vigil-contracts-cli-{}-{}",
        std::process::id(),
        readings_text.len()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let contracts = match contracts_text {
        Some(text) => {
            let path = dir.join("bad.toml");
            std::fs::write(&path, text).expect("write");
            path
        }
        None => examples().join("instances.toml"),
    };
    let readings = dir.join("readings.jsonl");
    std::fs::write(&readings, readings_text).expect("write");
    let output = vigil(&[
        "contracts",
        "eval",
        "--contracts",
        contracts.to_str().expect("utf-8"),
        "--readings",
        readings.to_str().expect("utf-8"),
    ]);
    assert!(!output.status.success(), "must fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_readings_name_file_line_and_field() {
    let ok = r#"{"device": "thermo-01", "metric": "body-temperature", "time_ms": 1, "value": {"scalar": 3700}}"#;
    let err = failure(
        None,
        &format!(
            "{ok}\n{{\"device\": \"thermo-01\", \"metric\": \"body-temperature\", \"time_ms\": 2, \"value\": {{\"scalar\": 9000}}}}\n"
        ),
    );
    assert!(
        err.contains("readings.jsonl:2:") && err.contains("\"value\""),
        "{err}"
    );
    let err = failure(
        None,
        r#"{"device": "thermo-01", "metric": "body-temp", "time_ms": 1, "value": {"scalar": 3700}}"#,
    );
    assert!(err.contains(":1:") && err.contains("body-temp"), "{err}");
    let err = failure(
        None,
        r#"{"device": "unknown-9", "metric": "body-temperature", "time_ms": 1, "value": {"scalar": 3700}}"#,
    );
    assert!(err.contains("no person for device unknown-9"), "{err}");
    let err = failure(
        None,
        r#"{"device": "thermo-01", "metric": "position", "time_ms": 1, "value": {"scalar": 3}}"#,
    );
    assert!(err.contains("position"), "{err}");
    let err = failure(None, "not json");
    assert!(err.contains(":1: invalid JSON"), "{err}");
    let err = failure(
        None,
        r#"[{"bn":"thermo-01:","bt":1700000000,"n":"body-temperature","u":"Cel","v":"x"}]"#,
    );
    assert!(err.contains(":1: SenML pack"), "{err}");
    let err = failure(None, "{\"tick_ms\": 10}\n{\"tick_ms\": 5}\n");
    assert!(err.contains(":2:") && err.contains("before"), "{err}");
}

#[test]
fn bad_instance_files_name_the_instance_and_field() {
    let person = "0123456789abcdef0123456789abcdef";
    let err = failure(
        Some(&format!(
            "[[instance]]\nperson = \"{person}\"\n[instance.params]\nkind = \"threshold\"\nmetric = \"heart-rate\"\nwarning_below = 600\ncritical_below = 700\n"
        )),
        "",
    );
    assert!(
        err.contains("instance[0]") && err.contains("critical_below"),
        "{err}"
    );
    let err = failure(
        Some(&format!(
            "[[instance]]\nperson = \"{person}\"\n[instance.params]\nkind = \"geofence\"\n[[instance.params.zones]]\nname = \"z\"\npolygon = [[0, 0], [0, 10]]\n"
        )),
        "",
    );
    assert!(err.contains("zones[0].polygon"), "{err}");
    let err = failure(
        Some(&format!(
            "[[instance]]\nperson = \"{person}\"\ncolour = 1\n"
        )),
        "",
    );
    assert!(err.contains("colour"), "{err}");
    let err = failure(Some("[[instance]]\nperson = \"nope\"\n"), "");
    assert!(err.contains("pseudonym"), "{err}");
}
