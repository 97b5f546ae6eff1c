//! Helpers shared by the node's integration tests: a raw HTTP/1.1 client and waits with a
//! bound.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::sync::mpsc;
use vigil_core::{DeviceId, DevicePublicKey, PersonId};
use vigil_ledger::node::Ledger;

/// Any free port on 127.0.0.1, for the API's listener.
pub const LOOPBACK: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);
pub const WAIT: Duration = Duration::from_secs(40);
pub const T0_MS: i64 = 1_700_000_000_000;

pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// One HTTP/1.1 request with a JSON body and `Connection: close`; returns the status and the
/// JSON body of the response.
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

/// One HTTP/1.1 request with any body.
pub async fn http_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("writes");
    // The server may answer (413) and close before reading a huge body: that is fine.
    let _ = stream.write_all(&body).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

/// Server-sent events of the alert stream, as parsed JSON.
pub async fn event_stream(addr: SocketAddr, token: &str) -> mpsc::Receiver<Value> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let request = format!(
        "GET /api/alerts/stream HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("writes");
    let (sender, receiver) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(data) = line.strip_prefix("data: ")
                && let Ok(event) = serde_json::from_str::<Value>(data)
                && sender.send(event).await.is_err()
            {
                return;
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
        ledger
            .with_state(|s| s.tables().persons.contains_key(&person))
            .then_some(())
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
        ledger
            .with_state(|s| s.tables().devices.contains_key(device))
            .then_some(())
    })
    .await;
}
