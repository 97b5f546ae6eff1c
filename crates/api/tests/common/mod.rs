//! Helpers shared by the node's integration tests: HTTP requests and the alert stream through
//! the workspace's one HTTP client (reqwest), and waits with a bound.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use vigil_core::{DeviceId, DevicePublicKey, PersonId};
use vigil_ledger::node::Ledger;
use vigil_ledger::signer::Signer;
use vigil_node::users::{Principal, Users};
use vigil_node::{MqttMode, NodeConfig};

/// Any free port on 127.0.0.1, for the API's listener.
pub const LOOPBACK: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);
pub const WAIT: Duration = Duration::from_secs(40);
/// The tests' first reading time: an hour ago, fixed for the whole test binary. Readings must
/// be recent: an alert resting on a reading more than 24 h before the block is refused as stale
/// (`vigil_ledger::evidence::READING_AGE_MAX_MS`), and one beyond the node's clock plus its skew
/// as from the future; an hour leaves room for tests that step minutes ahead.
pub fn t0_ms() -> i64 {
    static T0: std::sync::LazyLock<i64> =
        std::sync::LazyLock::new(|| vigil_node::now_ms() - 3_600_000);
    *T0
}

pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// A staff member signing with `key`.
pub fn staff(name: &str, key: commonware_cryptography::ed25519::PrivateKey) -> Principal {
    Principal::Staff {
        name: name.into(),
        signer: Signer::new(key).into(),
    }
}

/// A node's configuration: `users`, the gateway key `gateway`, a fresh health-record key and
/// the default clock skew for readings.
pub fn node_config(
    data_dir: std::path::PathBuf,
    mqtt: MqttMode,
    gateway: commonware_cryptography::ed25519::PrivateKey,
    users: Users,
) -> NodeConfig {
    NodeConfig {
        data_dir,
        mqtt,
        ehr_master_key: vigil_ehr::SecretKey::random(),
        gateway: Signer::new(gateway),
        users,
        future_skew: vigil_node::FUTURE_SKEW_DEFAULT,
        map_tiles: None,
        notify: None,
    }
}

/// One request with a JSON body; returns the status and the JSON body of the response
/// (`null` if it is not JSON).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default().into_bytes();
    http_raw(addr, method, path, token, "application/json", body).await
}

/// One request with any body. Each request on a connection of its own, as a client seen for
/// the first time. Status 0 if the exchange failed: a server that refuses a huge body by its
/// length answers and closes at once, and the client may then fail writing the body before it
/// reads the answer.
pub async fn http_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let Some(response) = send(addr, method, path, token, content_type, body).await else {
        return (0, Value::Null);
    };
    let status = response.status().as_u16();
    let json =
        serde_json::from_slice(&response.bytes().await.unwrap_or_default()).unwrap_or(Value::Null);
    (status, json)
}

/// One request with the JSON body `{}`: its status and whether it carried `WWW-Authenticate`.
pub async fn http_challenge(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, bool) {
    let body = b"{}".to_vec();
    let response = send(addr, method, path, token, "application/json", body)
        .await
        .expect("the node answers");
    let challenged = response
        .headers()
        .contains_key(reqwest::header::WWW_AUTHENTICATE);
    (response.status().as_u16(), challenged)
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> Option<reqwest::Response> {
    let method =
        reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("an HTTP method");
    let mut request = client()
        .request(method, format!("http://{addr}{path}"))
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.ok()
}

/// `GET path` without a token: the status and the `Content-Type` and
/// `Content-Security-Policy` headers (empty when absent).
pub async fn get_headers(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let response = send(addr, "GET", path, None, "text/plain", Vec::new())
        .await
        .expect("the node answers");
    let header = |name: reqwest::header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    (
        response.status().as_u16(),
        header(reqwest::header::CONTENT_TYPE),
        header(reqwest::header::CONTENT_SECURITY_POLICY),
    )
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("an HTTP client")
}

/// Server-sent events of the alert stream, as parsed JSON.
pub async fn event_stream(addr: SocketAddr, token: &str) -> mpsc::Receiver<Value> {
    let mut response = client()
        .get(format!("http://{addr}/api/alerts/stream"))
        .bearer_auth(token)
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .send()
        .await
        .expect("the alert stream opens");
    let (sender, receiver) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut buffer = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                if let Some(data) = line.trim_end().strip_prefix("data: ")
                    && let Ok(event) = serde_json::from_str::<Value>(data)
                    && sender.send(event).await.is_err()
                {
                    return;
                }
            }
        }
    });
    receiver
}

pub async fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn next_event(
    events: &mut mpsc::Receiver<Value>,
    what: &str,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("stream open");
        if matches(&event) {
            return event;
        }
    }
}

/// Registers a person through the API as `token` (the registration is accepted, 202) and waits
/// until the ledger has finalized it.
pub async fn register_person(
    api: SocketAddr,
    token: &str,
    name: &str,
    ledger: &Ledger,
) -> PersonId {
    let (status, created) = http(
        api,
        "POST",
        "/api/people",
        Some(token),
        Some(json!({ "name": name })),
    )
    .await;
    assert_eq!(status, 202, "{created}");
    let person: PersonId = created["person"]
        .as_str()
        .expect("a pseudonym")
        .parse()
        .expect("valid");
    until("the person registered", || {
        ledger.snapshot().person(&person).map(|_| ())
    })
    .await;
    person
}

/// Enrolls `device` with `key` for `person` through the API as `token` (202) and waits until
/// the ledger has finalized the enrollment.
pub async fn enroll_device(
    api: SocketAddr,
    token: &str,
    person: PersonId,
    device: &DeviceId,
    key: &DevicePublicKey,
    ledger: &Ledger,
) {
    let body = json!({"person": person, "device": device, "public_key": key.to_string()});
    let (status, answer) = http(api, "POST", "/api/devices", Some(token), Some(body)).await;
    assert_eq!(status, 202, "{answer}");
    until("the device enrolled", || {
        ledger.snapshot().device(device).map(|_| ())
    })
    .await;
}
