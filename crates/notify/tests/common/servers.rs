//! A webhook receiver and an SMTP sink on loopback, for the tests of the channels (here and
//! in the node's API tests, which include this file by path). Both are minimal on purpose:
//! they read exactly what a sender must send, and answer as scripted.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A lock whatever a panicking holder left behind (the tests' assertions report it anyway).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One request as the receiver read it.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// How the receiver answers a path: the status of each request in turn (the last repeats);
/// `None` holds the connection open without ever answering.
pub type Script = HashMap<&'static str, Vec<Option<u16>>>;

pub struct Receiver {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    pub async fn start(script: Script) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("bound");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let script = Arc::new(script);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, script) = (seen.clone(), script.clone());
                tokio::spawn(async move { serve(stream, &seen, &script).await });
            }
        });
        Receiver { addr, requests }
    }

    pub fn url(&self, path: &str) -> reqwest::Url {
        format!("http://{}{path}", self.addr)
            .parse()
            .expect("a URL")
    }

    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        lock(&self.requests)
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

/// Reads one HTTP/1.1 request (headers, then `Content-Length` bytes) and answers it as the
/// script says, closing the connection.
async fn serve(mut stream: TcpStream, seen: &Mutex<Vec<Request>>, script: &Script) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buffer[header_end..header_end + length].to_vec();
    let index = {
        let mut seen = lock(seen);
        let index = seen.iter().filter(|r| r.path == path).count();
        seen.push(Request {
            path: path.clone(),
            headers,
            body,
        });
        index
    };
    let answers = script
        .get(path.as_str())
        .cloned()
        .unwrap_or(vec![Some(404)]);
    let answer = answers.get(index).or(answers.last()).copied().flatten();
    let Some(status) = answer else {
        // Never answers: the sender's timeout is its only way out.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return;
    };
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let response =
        format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A message the sink took: its envelope and its data.
#[derive(Clone, Debug)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

#[derive(Default)]
pub struct Sink {
    pub mails: Mutex<Vec<Mail>>,
    /// Recipients refused once already (451 on the first RCPT of each).
    pub deferred: Mutex<Vec<String>>,
}

impl Mail {
    /// The message as a reader sees it: header lines unfolded (RFC 5322 §2.2.3) and a
    /// quoted-printable body decoded (RFC 2045 §6.7: soft line breaks, `=XX` octets), so that
    /// a value split across encoded lines is still found, or still found absent.
    pub fn text(&self) -> String {
        let (head, body) = self.data.split_once("\n\n").unwrap_or((&self.data, ""));
        let head = head.replace("\n ", " ").replace("\n\t", " ");
        let quoted = head
            .to_ascii_lowercase()
            .contains("content-transfer-encoding: quoted-printable");
        let body = if quoted {
            decode_quoted_printable(body)
        } else {
            body.to_owned()
        };
        format!("{head}\n\n{body}")
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let mut bytes = Vec::new();
    let mut input = text.replace("=\n", "").into_bytes().into_iter().peekable();
    while let Some(byte) = input.next() {
        if byte != b'=' {
            bytes.push(byte);
            continue;
        }
        let high = input.next();
        let low = input.next();
        let hex = [high.unwrap_or(b'?'), low.unwrap_or(b'?')];
        match std::str::from_utf8(&hex)
            .ok()
            .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            Some(octet) => bytes.push(octet),
            // Not an escape: kept as sent, so that a test sees what went wrong.
            None => bytes.extend([b'='].into_iter().chain(high).chain(low)),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

impl Sink {
    /// The messages taken so far.
    pub fn taken(&self) -> Vec<Mail> {
        lock(&self.mails).clone()
    }
}

/// The recipient the sink refuses for good.
pub const UNKNOWN: &str = "nobody@example.org";

pub async fn start_sink() -> (SocketAddr, Arc<Sink>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("bound");
    let sink = Arc::new(Sink::default());
    let shared = sink.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let sink = shared.clone();
            tokio::spawn(async move {
                let _ = session(stream, &sink).await;
            });
        }
    });
    (addr, sink)
}

/// The address between `<` and `>` in an SMTP command's argument.
fn address(line: &str) -> String {
    line.split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}

async fn session(stream: TcpStream, sink: &Sink) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink.test ESMTP\r\n").await?;
    let mut from = String::new();
    let mut to = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let verb = line.get(..4).unwrap_or(&line).to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250-sink.test\r\n250 8BITMIME\r\n",
            "MAIL" => {
                from = address(&line);
                to.clear();
                b"250 2.1.0 OK\r\n"
            }
            "RCPT" => {
                let recipient = address(&line);
                let mut deferred = lock(&sink.deferred);
                if recipient == UNKNOWN {
                    b"550 5.1.1 no such mailbox\r\n"
                } else if !deferred.contains(&recipient) {
                    deferred.push(recipient);
                    b"451 4.3.0 try again later\r\n"
                } else {
                    to.push(recipient);
                    b"250 2.1.5 OK\r\n"
                }
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                while let Some(line) = lines.next_line().await? {
                    if line == "." {
                        break;
                    }
                    // RFC 5321 §4.5.2: a leading dot was doubled by the sender.
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                    data.push('\n');
                }
                lock(&sink.mails).push(Mail {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                });
                b"250 2.0.0 queued\r\n"
            }
            "RSET" | "NOOP" => b"250 2.0.0 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
    Ok(())
}
