//! What the process-level fault tests share: `vigil` processes that die with the test, an
//! HTTP client that opens a new connection per request (a restarted node is never asked on a
//! connection to the old one), a TCP proxy that can cut every connection at once, and bounded
//! waits. Everything listens on 127.0.0.1.

#![allow(dead_code)] // each test binary uses its own part

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
/// Any single wait of this test, at most.
pub const WAIT: Duration = Duration::from_secs(90);
pub const TOKEN: &str = "operator-token-of-the-restart-test";

pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// A child process killed (SIGKILL) when dropped, so a failing test leaves nothing running.
pub struct Proc(pub Child);

impl Proc {
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn vigil(args: &[&str]) -> Output {
    Command::new(VIGIL).args(args).output().expect("vigil runs")
}

pub fn keygen(path: &Path) -> String {
    let out = vigil(&["keygen", "--out", path.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "keygen: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn start_node(dir: &Path) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("node.log"))
        .expect("log file");
    let child = Command::new(VIGIL)
        .args(["node", "--status-every-s", "1", "--config"])
        .arg(dir.join("node.toml"))
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("vigil node starts");
    Proc(child)
}

/// One request: the status and the JSON body, or `None` if the node is not reachable. A new
/// connection each time, so a restarted node is never asked on a connection to the old one.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .ok()?;
    let method = reqwest::Method::from_bytes(method.as_bytes()).ok()?;
    let response = client
        .request(method, format!("http://{addr}{path}"))
        .bearer_auth(TOKEN)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.map(|b| b.to_string()).unwrap_or_default())
        .send()
        .ok()?;
    let status = response.status().as_u16();
    let json = serde_json::from_slice(&response.bytes().ok()?).unwrap_or(Value::Null);
    Some((status, json))
}

pub fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// Forwards 127.0.0.1 connections to `target`; `cut` closes every open connection at once.
pub struct Proxy {
    pub addr: SocketAddr,
    open: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
        let addr = listener.local_addr().expect("address");
        listener.set_nonblocking(true).expect("non-blocking");
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (conns, stopped) = (open.clone(), stop.clone());
        thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) else {
                    continue; // the node is down: the device sees its connection closed
                };
                for stream in [&client, &server] {
                    if let Ok(clone) = stream.try_clone() {
                        conns.lock().expect("lock").push(clone);
                    }
                }
                for (mut from, mut to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { addr, open, stop }
    }

    pub fn cut(&self) {
        for stream in self.open.lock().expect("lock").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
    }
}

pub fn private_key_hex(key_file: &Path) -> String {
    let text = std::fs::read_to_string(key_file).expect("key file");
    let table: toml::Table = toml::from_str(&text).expect("key file is TOML");
    table["private_key"]
        .as_str()
        .expect("private_key")
        .to_owned()
}

/// A fresh directory under the system's temporary directory.
pub fn tempfile_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("vigil-restart-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `POST /api/packs/{person}` with a signed pack: the status and the JSON reply, or `None` if
/// the node is not reachable.
pub fn post_pack(addr: SocketAddr, person: &str, pack: &[u8]) -> Option<(u16, Value)> {
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .ok()?;
    let response = client
        .post(format!("http://{addr}/api/packs/{person}"))
        .header(reqwest::header::CONTENT_TYPE, "application/senml+json")
        .body(pack.to_vec())
        .send()
        .ok()?;
    let status = response.status().as_u16();
    let json = serde_json::from_slice(&response.bytes().ok()?).unwrap_or(Value::Null);
    Some((status, json))
}
