//! Fault test with real processes in a 4-validator consortium: four `vigil node` processes
//! on loopback, the first also running the node service (HTTP, embedded MQTT, health record),
//! while two devices publish: `vigil device` over MQTT with its durable outbox (normal
//! readings), and a thermometer this test drives over HTTP whose readings go in and out of a
//! fever, so that its threshold contract raises alerts throughout. During the run a plain
//! validator is killed with SIGKILL and restarted, then the validator that runs the node is.
//!
//! Afterwards: every reading of both devices is in the health record once; every fever raised
//! an alert that was finalized, none twice for the same reading, each re-derived by the
//! validators from the device's signed readings; all four validators reached the same height;
//! and, killed once more with SIGKILL, every validator's store passes `vigil ledger verify` (with every block it reported finalized).
//!
//! Every wait is bounded; everything listens on 127.0.0.1.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Proc, Proxy, WAIT, free_port, http, keygen, private_key_hex, tempfile_dir, until};
use vigil_core::senml::PackDraft;
use vigil_core::{DeviceId, DeviceKey, Metric, TimestampMs};

const VALIDATORS: usize = 4;
/// Packs `vigil device` generates over MQTT (one normal temperature reading each).
const MQTT_PACKS: u64 = 120;
const MQTT_RATE_PER_S: u64 = 8;
/// Packs the test's own thermometer sends over HTTP, in episodes: `NORMAL` packs at 36.80 °C,
/// then `FEVER` at 39.00 °C (above the contract's critical band, 38.50 °C).
const HTTP_PACKS: u64 = 96;
const NORMAL: u64 = 4;
const FEVER: u64 = 4;
const HTTP_PERIOD: Duration = Duration::from_millis(160);
const NORMAL_CENTI: i32 = 3680;
const FEVER_CENTI: i32 = 3900;

/// One validator's directory: its key, its configuration and its data.
struct Validator {
    dir: PathBuf,
    process: Option<Proc>,
}

impl Validator {
    fn start(&mut self) {
        self.process = Some(support::start_node(&self.dir));
    }

    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }
}

/// Four validators (the first with the node service) in `dir/v0` … `dir/v3`, not started.
/// Returns them, the node's API and MQTT addresses and the gateway's public key.
fn consortium(dir: &Path) -> (Vec<Validator>, SocketAddr, SocketAddr, String) {
    let api = free_port();
    let mqtt = free_port();
    let mut validators = Vec::new();
    let mut genesis = String::from("label = \"cluster-restart-test\"\n");
    for i in 0..VALIDATORS {
        let vdir = dir.join(format!("v{i}"));
        std::fs::create_dir_all(&vdir).expect("validator dir");
        let public = keygen(&vdir.join("validator.key"));
        let p2p = free_port();
        genesis.push_str(&format!(
            "[[validators]]\npublic_key = \"{public}\"\naddress = \"{p2p}\"\n"
        ));
        validators.push(Validator {
            dir: vdir,
            process: None,
        });
    }
    let service = &validators[0].dir;
    let admin = keygen(&service.join("admin.key"));
    let operator = keygen(&service.join("op.key"));
    let gateway = keygen(&service.join("gw.key"));
    genesis.push_str(&format!(
        "[[roles]]\npublic_key = \"{admin}\"\nrole = \"admin\"\n\
         [[roles]]\npublic_key = \"{operator}\"\nrole = \"cdcp-operator\"\n\
         [[roles]]\npublic_key = \"{gateway}\"\nrole = \"gateway\"\n"
    ));
    std::fs::write(
        service.join("users.toml"),
        format!(
            "[[user]]\nname = \"operator\"\ntoken_sha256 = \"{}\"\nidentity_key = \"{}\"\n",
            hex::encode(vigil_node::users::token_digest(support::TOKEN)),
            private_key_hex(&service.join("op.key"))
        ),
    )
    .expect("users");
    for (i, validator) in validators.iter().enumerate() {
        std::fs::write(validator.dir.join("genesis.toml"), &genesis).expect("genesis");
        let mut config = String::from(
            "key_file = \"validator.key\"\ngenesis = \"genesis.toml\"\ndata_dir = \"data\"\n",
        );
        if i == 0 {
            config.push_str(&format!(
                "[service]\nhttp_listen = \"{api}\"\ngateway_key_file = \"gw.key\"\n\
                 ehr_key_file = \"ehr.key\"\nusers_file = \"users.toml\"\n\
                 [service.mqtt]\nmode = \"embedded\"\nlisten = \"{mqtt}\"\n"
            ));
        }
        std::fs::write(validator.dir.join("node.toml"), config).expect("node config");
    }
    (validators, api, mqtt, gateway)
}

fn person_has_active_device(api: SocketAddr, person: &str, device: &str) -> Option<()> {
    let (_, people) = http(api, "GET", "/api/people", None)?;
    people["people"]
        .as_array()?
        .iter()
        .find(|p| p["person"] == person)?["devices"]
        .as_array()?
        .iter()
        .any(|d| d["device"] == device && d["active"] == true)
        .then_some(())
}

fn enroll(api: SocketAddr, person: &str, device: &str, public_key: &str) {
    let body = json!({"person": person, "device": device, "public_key": public_key});
    let (status, reply) = http(api, "POST", "/api/devices", Some(body)).expect("enrolls");
    assert_eq!(status, 202, "{reply}");
    until(&format!("{device} on the ledger"), || {
        person_has_active_device(api, person, device)
    });
}

/// The fever of pack `index` (0-based) of the HTTP thermometer.
fn is_fever(index: u64) -> bool {
    index % (NORMAL + FEVER) >= NORMAL
}

/// What the HTTP thermometer sent: each pack's reading time, once the node answered it.
#[derive(Default)]
struct Sent {
    times: std::sync::Mutex<Vec<(u64, TimestampMs)>>,
    answered: AtomicU64,
}

/// Sends `HTTP_PACKS` signed packs one after the other, each until the node answers it
/// (stored: 200; already stored before a crash: 409 `replayed`), as a device's outbox does.
fn drive_thermometer(
    api: SocketAddr,
    person: String,
    device: DeviceId,
    key: DeviceKey,
    sent: Arc<Sent>,
    stop: Arc<AtomicBool>,
) {
    for index in 0..HTTP_PACKS {
        let time = support::now_ms();
        let centi = if is_fever(index) {
            FEVER_CENTI
        } else {
            NORMAL_CENTI
        };
        let mut draft = PackDraft::new(device.clone(), index + 1);
        draft.push(
            Metric::BodyTemperature,
            time,
            vigil_core::Value::Scalar(centi),
        );
        let pack = draft.sign(&key).to_json();
        let deadline = Instant::now() + WAIT;
        loop {
            if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                return;
            }
            match support::post_pack(api, &person, &pack) {
                Some((200, _)) => break,
                Some((409, reply)) if reply["error"]["reason"] == "replayed" => break,
                Some((status, reply)) if status < 500 => {
                    panic!("pack {index} refused for good: {status} {reply}")
                }
                _ => thread::sleep(Duration::from_millis(200)),
            }
        }
        sent.times.lock().expect("lock").push((index, time));
        sent.answered.fetch_add(1, Ordering::SeqCst);
        thread::sleep(HTTP_PERIOD);
    }
}

fn height_of(validator: &Validator) -> u64 {
    // `--status-every-s 1` prints `height=N` on each status line.
    validator
        .log()
        .rsplit("height=")
        .next()
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[test]
fn validator_and_node_killed_mid_run_lose_no_reading_and_no_alert_and_every_store_verifies() {
    let dir = tempfile_dir();
    let (mut validators, api, mqtt, node_key) = consortium(&dir);
    for validator in &mut validators {
        validator.start();
    }
    until("the node's API", || {
        http(api, "GET", "/api/health", None).filter(|(s, _)| *s == 200)
    });

    // A person with two thermometers: one `vigil device` over MQTT, one driven by this test.
    let (status, created) = http(
        api,
        "POST",
        "/api/people",
        Some(json!({"name": "K. Cluster"})),
    )
    .expect("registers");
    assert!(status < 300, "{status} {created}");
    let person = created["person"].as_str().expect("pseudonym").to_owned();
    until("the person on the ledger", || {
        let (_, people) = http(api, "GET", "/api/people", None)?;
        people["people"]
            .as_array()?
            .iter()
            .any(|p| p["person"] == person.as_str())
            .then_some(())
    });
    let mqtt_public = keygen(&dir.join("thermo-1.key"));
    enroll(api, &person, "thermo-1", &mqtt_public);
    let http_key = DeviceKey::generate();
    let http_device: DeviceId = "thermo-2".parse().expect("device id");
    enroll(api, &person, "thermo-2", &http_key.public().to_string());
    let threshold = json!({"person": person, "device": "thermo-2", "params": {"kind": "threshold",
        "metric": "body-temperature", "warning_above": 3750, "critical_above": 3850}});
    let (status, reply) =
        http(api, "POST", "/api/instances", Some(threshold)).expect("deploys the contract");
    assert_eq!(status, 202, "{reply}");
    let instance = until("the contract on the ledger", || {
        let (_, listed) = http(api, "GET", &format!("/api/instances?person={person}"), None)?;
        listed["instances"]
            .as_array()?
            .iter()
            .find(|i| i["device"] == "thermo-2")?["instance"]
            .as_str()
            .map(str::to_owned)
    });

    // Both devices publish.
    let proxy = Proxy::start(mqtt);
    let mut mqtt_device = Proc(
        Command::new(support::VIGIL)
            .args(["device", "--mqtt", &proxy.addr.to_string()])
            .args(["--node-key", &node_key, "--person", &person])
            .args(["--device", "thermo-1", "--kind", "thermometer"])
            .arg("--device-key")
            .arg(dir.join("thermo-1.key"))
            .arg("--outbox")
            .arg(dir.join("outbox.sqlite"))
            .args(["--rate", &MQTT_RATE_PER_S.to_string()])
            .args(["--count", &MQTT_PACKS.to_string()])
            .args(["--drain-s", "80", "--resend-s", "1"])
            .stdout(std::fs::File::create(dir.join("device.out")).expect("log file"))
            .stderr(std::fs::File::create(dir.join("device.err")).expect("log file"))
            .spawn()
            .expect("vigil device starts"),
    );
    let sent = Arc::new(Sent::default());
    let stop = Arc::new(AtomicBool::new(false));
    let thermometer = {
        let (person, sent, stop) = (person.clone(), sent.clone(), stop.clone());
        thread::spawn(move || drive_thermometer(api, person, http_device, http_key, sent, stop))
    };

    // While they publish: a plain validator crashes and comes back, then the one that runs
    // the node. Each crash waits for readings to have flowed since the last.
    let answered_past = |n: u64| {
        until(&format!("{n} packs answered"), || {
            (sent.answered.load(Ordering::SeqCst) >= n).then_some(())
        })
    };
    answered_past(12);
    validators[2].kill();
    thread::sleep(Duration::from_millis(1_500));
    validators[2].start();
    answered_past(36);
    validators[0].kill();
    proxy.cut();
    thread::sleep(Duration::from_millis(1_500));
    validators[0].start();
    until("the restarted node's API", || {
        http(api, "GET", "/api/health", None).filter(|(s, _)| *s == 200)
    });

    let deadline = Instant::now() + WAIT;
    let device_status = loop {
        if let Some(status) = mqtt_device.0.try_wait().expect("waits") {
            break status;
        }
        assert!(Instant::now() < deadline, "the MQTT device never finished");
        thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(dir.join("device.out")).unwrap_or_default();
    let stderr = std::fs::read_to_string(dir.join("device.err")).unwrap_or_default();
    assert!(
        device_status.success(),
        "device failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("refused=0 remaining=0"),
        "device:\n{stdout}\n{stderr}"
    );
    thermometer.join().expect("the thermometer thread");
    assert_eq!(
        sent.answered.load(Ordering::SeqCst),
        HTTP_PACKS,
        "the HTTP thermometer's packs answered"
    );

    // Every reading of both devices stored once.
    let path = format!("/api/people/{person}/readings?limit=1000");
    let (status, body) = http(api, "GET", &path, None).expect("reads");
    assert_eq!(status, 200, "{body}");
    let observations = body["observations"].as_array().expect("observations");
    let mut per_device: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for observation in observations {
        let device = observation["device"]["identifier"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let time = observation["effectiveDateTime"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        per_device.entry(device).or_default().insert(time);
    }
    let node_log = validators[0].log();
    assert_eq!(
        observations.len() as u64,
        MQTT_PACKS + HTTP_PACKS,
        "records stored (a reading lost or stored twice); node log:\n{node_log}"
    );
    assert_eq!(
        per_device.get("thermo-1").map_or(0, HashSet::len) as u64,
        MQTT_PACKS
    );
    assert_eq!(
        per_device.get("thermo-2").map_or(0, HashSet::len) as u64,
        HTTP_PACKS
    );

    // Every fever raised one finalized alert, from one of its own readings.
    let times = sent.times.lock().expect("lock").clone();
    let episodes: Vec<(TimestampMs, TimestampMs)> = times
        .chunks((NORMAL + FEVER) as usize)
        .filter_map(|episode| {
            let fever: Vec<TimestampMs> = episode
                .iter()
                .filter(|(index, _)| is_fever(*index))
                .map(|(_, time)| *time)
                .collect();
            Some((*fever.first()?, *fever.last()?))
        })
        .collect();
    let list_alerts = || -> Option<Vec<Value>> {
        let (_, listed) = http(api, "GET", "/api/alerts?reasons=false&limit=1000", None)?;
        Some(
            listed["alerts"]
                .as_array()?
                .iter()
                .filter(|a| a["instance"] == instance.as_str())
                .cloned()
                .collect(),
        )
    };
    let uncovered = |alerts: &[Value]| -> Vec<(TimestampMs, TimestampMs)> {
        episodes
            .iter()
            .filter(|(first, last)| {
                !alerts.iter().any(|a| {
                    a["reading_time_ms"]
                        .as_i64()
                        .is_some_and(|t| t >= *first && t <= *last)
                })
            })
            .copied()
            .collect()
    };
    let deadline = Instant::now() + WAIT;
    let alerts = loop {
        let alerts = list_alerts().unwrap_or_default();
        let missing = uncovered(&alerts);
        if missing.is_empty() {
            break alerts;
        }
        if Instant::now() > deadline {
            let times: Vec<Value> = alerts
                .iter()
                .map(|a| a["reading_time_ms"].clone())
                .collect();
            panic!(
                "fevers with no finalized alert: {missing:?}\nalerts at {times:?}\n\
                 node log:\n{}",
                validators[0].log()
            );
        }
        thread::sleep(Duration::from_millis(200));
    };
    let reading_times: HashSet<i64> = alerts
        .iter()
        .filter_map(|a| a["reading_time_ms"].as_i64())
        .collect();
    assert_eq!(
        reading_times.len(),
        alerts.len(),
        "an alert finalized twice for one reading: {alerts:#?}"
    );
    // The node's contract state is in memory: a crash in the middle of a fever may raise it
    // once more after the restart (a new alert for an ongoing fever), never more.
    assert!(
        alerts.len() <= episodes.len() + 1,
        "{} alerts for {} fevers: {alerts:#?}",
        alerts.len(),
        episodes.len()
    );
    eprintln!(
        "{} alerts for {} fevers; {} packs over HTTP, {} over MQTT",
        alerts.len(),
        episodes.len(),
        HTTP_PACKS,
        MQTT_PACKS
    );
    for alert in &alerts {
        assert_eq!(alert["basis"], "device-signed", "{alert}");
        assert_eq!(alert["level"], 2, "{alert}");
        let t = alert["reading_time_ms"].as_i64().unwrap_or(-1);
        assert!(
            episodes
                .iter()
                .any(|(first, last)| t >= *first && t <= *last),
            "an alert for a normal reading: {alert}"
        );
    }

    // All four validators at one height, then crashed, and every store verifies.
    let top = until("the node's height", || {
        let (_, ledger) = http(api, "GET", "/api/ledger/blocks?limit=1", None)?;
        ledger["tip"].as_u64()
    });
    until("every validator at the node's height", || {
        validators.iter().all(|v| height_of(v) >= top).then_some(())
    });
    eprintln!("every validator at height {top} or above");
    for validator in &mut validators {
        validator.kill();
    }
    for (i, validator) in validators.iter().enumerate() {
        let out = Command::new(support::VIGIL)
            .args(["ledger", "verify"])
            .arg(validator.dir.join("data"))
            .output()
            .expect("vigil ledger verify runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "validator {i}'s store fails verification:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Every block the validator reported finalized is still stored after the SIGKILL; a
        // crash between a block and its certificate may leave the last few uncertified.
        let field = |key: &str| -> u64 {
            stdout
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
                .unwrap_or_else(|| panic!("{key} in:\n{stdout}"))
        };
        let (blocks, certified) = (field("blocks"), field("certified_height"));
        assert!(
            blocks >= top,
            "validator {i} stores {blocks} blocks, reported {top}"
        );
        eprintln!("validator {i}: {blocks} blocks verified, certified to {certified}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
