//! Fault test with real processes: `vigil node` (a validator running the node service with its
//! embedded MQTT broker) and `vigil device` (a master device with its durable outbox). While
//! the device publishes, its connection is cut, then the node is killed with SIGKILL and
//! restarted from its data directory. The device's outbox re-sends until every pack is
//! answered; afterwards the health record holds each reading exactly once.
//!
//! Separate processes, because only a process boundary gives a real crash: no destructor, no
//! flush, the embedded broker's threads gone mid-write. Every wait is bounded; everything
//! listens on 127.0.0.1.

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    Proc, Proxy, TOKEN, VIGIL, WAIT, free_port, http, keygen, private_key_hex, start_node,
    tempfile_dir, until,
};

/// Packs the device generates (one temperature reading each) and how fast.
const PACKS: u64 = 150;
const RATE_PER_S: u64 = 30;

/// A node (one validator with the node service) in `dir`, with a person and an enrolled
/// thermometer `thermo-1` whose key is `dir/device.key`. Returns the node, its API and MQTT
/// addresses, the person's pseudonym and the gateway's public key (what the node signs its
/// replies to devices with).
fn node_with_enrolled_device(dir: &Path) -> (Proc, SocketAddr, SocketAddr, String, String) {
    let p2p = free_port();
    let api = free_port();
    let mqtt = free_port();

    let validator = keygen(&dir.join("v0.key"));
    let admin = keygen(&dir.join("admin.key"));
    let operator = keygen(&dir.join("op.key"));
    let gateway = keygen(&dir.join("gw.key"));
    let device_public = keygen(&dir.join("device.key"));
    std::fs::write(
        dir.join("genesis.toml"),
        format!(
            "label = \"restart-test\"\n\
             [[validators]]\npublic_key = \"{validator}\"\naddress = \"{p2p}\"\n\
             [[roles]]\npublic_key = \"{admin}\"\nrole = \"admin\"\n\
             [[roles]]\npublic_key = \"{operator}\"\nrole = \"cdcp-operator\"\n\
             [[roles]]\npublic_key = \"{gateway}\"\nrole = \"gateway\"\n"
        ),
    )
    .expect("genesis");
    std::fs::write(
        dir.join("users.toml"),
        format!(
            "[[user]]\nname = \"operator\"\ntoken_sha256 = \"{}\"\nidentity_key = \"{}\"\n",
            hex::encode(vigil_node::users::token_digest(TOKEN)),
            private_key_hex(&dir.join("op.key"))
        ),
    )
    .expect("users");
    std::fs::write(
        dir.join("node.toml"),
        format!(
            "key_file = \"v0.key\"\ngenesis = \"genesis.toml\"\ndata_dir = \"data\"\n\
             [service]\nhttp_listen = \"{api}\"\ngateway_key_file = \"gw.key\"\n\
             ehr_key_file = \"ehr.key\"\nusers_file = \"users.toml\"\n\
             [service.mqtt]\nmode = \"embedded\"\nlisten = \"{mqtt}\"\n"
        ),
    )
    .expect("node config");

    let node = start_node(dir);
    until("the node's API", || {
        http(api, "GET", "/api/health", None).filter(|(s, _)| *s == 200)
    });
    let (status, created) = http(
        api,
        "POST",
        "/api/people",
        Some(json!({"name": "F. Restart"})),
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
    let (status, _) = http(
        api,
        "POST",
        "/api/devices",
        Some(json!({"person": person, "device": "thermo-1", "public_key": device_public})),
    )
    .expect("enrolls");
    assert_eq!(status, 202);
    until("the device on the ledger", || {
        let (_, people) = http(api, "GET", "/api/people", None)?;
        people["people"]
            .as_array()?
            .iter()
            .find(|p| p["person"] == person.as_str())?["devices"]
            .as_array()?
            .iter()
            .any(|d| d["device"] == "thermo-1" && d["active"] == true)
            .then_some(())
    });

    (node, api, mqtt, person, gateway)
}

#[test]
fn node_killed_and_restarted_while_a_device_publishes_stores_every_reading_once() {
    let dir = tempfile_dir();
    let (mut node, api, mqtt, person, node_key) = node_with_enrolled_device(&dir);

    // The device reaches the broker through a proxy this test can cut.
    let proxy = Proxy::start(mqtt);
    let device = Command::new(VIGIL)
        .args([
            "device",
            "--mqtt",
            &proxy.addr.to_string(),
            "--node-key",
            &node_key,
            "--person",
            &person,
        ])
        .args(["--device", "thermo-1", "--kind", "thermometer"])
        .arg("--device-key")
        .arg(dir.join("device.key"))
        .arg("--outbox")
        .arg(dir.join("outbox.sqlite"))
        .args([
            "--rate",
            &RATE_PER_S.to_string(),
            "--count",
            &PACKS.to_string(),
        ])
        .args(["--drain-s", "80", "--resend-s", "1"])
        .stdout(std::fs::File::create(dir.join("device.out")).expect("log file"))
        .stderr(std::fs::File::create(dir.join("device.err")).expect("log file"))
        .spawn()
        .expect("vigil device starts");
    let mut device = Proc(device);

    // While it publishes: cut its connection, then crash the node and bring it back.
    thread::sleep(Duration::from_millis(1_200));
    proxy.cut();
    thread::sleep(Duration::from_millis(800));
    node.kill();
    proxy.cut();
    thread::sleep(Duration::from_millis(1_500));
    let _node = start_node(&dir);
    until("the restarted node's API", || {
        http(api, "GET", "/api/health", None).filter(|(s, _)| *s == 200)
    });

    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = device.0.try_wait().expect("waits") {
            break status;
        }
        assert!(Instant::now() < deadline, "the device never finished");
        thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(dir.join("device.out")).unwrap_or_default();
    let stderr = std::fs::read_to_string(dir.join("device.err")).unwrap_or_default();
    assert!(status.success(), "device failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("refused=0 remaining=0"),
        "device:\n{stdout}\n{stderr}"
    );

    // Exactly once: as many records as packs, no two for the same reading.
    let path = format!("/api/people/{person}/readings?limit=1000");
    let (status, body) = http(api, "GET", &path, None).expect("reads");
    assert_eq!(status, 200, "{body}");
    let observations = body["observations"].as_array().expect("observations");
    let times: HashSet<&str> = observations
        .iter()
        .filter_map(|o| o["effectiveDateTime"].as_str())
        .collect();
    let log = std::fs::read_to_string(dir.join("node.log")).unwrap_or_default();
    assert_eq!(
        observations.len() as u64,
        PACKS,
        "records stored; device:\n{stdout}\nnode log:\n{log}"
    );
    assert_eq!(times.len() as u64, PACKS, "a reading stored twice");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `vigil device` over HTTP, run twice on one outbox (a phone app restarted): the second run
/// continues the sequence numbers, and the node stores every reading of both runs once.
#[test]
fn device_over_http_continues_across_runs_and_every_reading_is_stored_once() {
    let dir = tempfile_dir();
    let (_node, api, _mqtt, person, _) = node_with_enrolled_device(&dir);
    const PER_RUN: u64 = 12;
    for run in 0..2 {
        let out = Command::new(VIGIL)
            .args(["device", "--node", &api.to_string(), "--person", &person])
            .args(["--device", "thermo-1", "--device-key"])
            .arg(dir.join("device.key"))
            .arg("--outbox")
            .arg(dir.join("outbox.sqlite"))
            .args([
                "--rate",
                "50",
                "--count",
                &PER_RUN.to_string(),
                "--drain-s",
                "30",
            ])
            .output()
            .expect("vigil device runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "run {run}: {out:?}");
        assert!(
            stdout.contains(&format!(
                "first pack of this run: sequence {}",
                run * PER_RUN + 1
            )),
            "run {run}: {stdout}"
        );
        assert!(
            stdout.contains("refused=0 remaining=0"),
            "run {run}: {stdout}"
        );
    }
    let path = format!("/api/people/{person}/readings?limit=1000");
    let (status, body) = http(api, "GET", &path, None).expect("reads");
    assert_eq!(status, 200, "{body}");
    let observations = body["observations"].as_array().expect("observations");
    let times: HashSet<&str> = observations
        .iter()
        .filter_map(|o| o["effectiveDateTime"].as_str())
        .collect();
    assert_eq!(observations.len() as u64, 2 * PER_RUN);
    assert_eq!(times.len() as u64, 2 * PER_RUN, "a reading stored twice");
    let _ = std::fs::remove_dir_all(&dir);
}
