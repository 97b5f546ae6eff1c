//! What the `vigil bench` commands share: four validators, one node with its embedded MQTT
//! broker and its HTTP API, all in this process on 127.0.0.1 under a scratch directory, a
//! staff token of the CDCP operator, and the alert stream read back as the people alerted.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use commonware_runtime::{Runner as _, Supervisor as _, tokio as cw_tokio};
use tokio::sync::mpsc;
use vigil_core::PersonId;
use vigil_ledger::local::{LocalConfig, start_local};
use vigil_ledger::signer::Signer;
use vigil_ledger::sim::Keys;
use vigil_node::users::{Principal, Users};
use vigil_node::{MqttMode, Node, NodeConfig};

/// A started node, as a bench drives it.
pub struct BenchNode {
    pub node: Arc<Node>,
    /// The embedded broker, where devices publish.
    pub mqtt: SocketAddr,
    pub api: SocketAddr,
    /// A staff token of `operator`, which may read the alert stream.
    pub token: String,
    /// The CDCP operator; one signer for the API and the bench, so their nonces never collide.
    pub operator: Arc<Signer>,
}

/// Starts four validators and one node under a fresh `vigil-bench-{name}-*` directory, runs
/// `bench` on it, then stops the cluster and removes the directory (whatever `bench` returned).
pub fn on_bench_node<T, Fut>(
    name: &str,
    bench: impl FnOnce(BenchNode) -> Fut + Send + 'static,
) -> anyhow::Result<T>
where
    Fut: Future<Output = anyhow::Result<T>> + Send,
    T: Send + 'static,
{
    let dir = temp_dir(name)?;
    let runtime = cw_tokio::Config::new().with_storage_directory(dir.join("ledger"));
    let node_dir = dir.join("node");
    let result = cw_tokio::Runner::new(runtime).start(|context| async move {
        let cluster = start_local(context.child("ledger"), LocalConfig::new(Keys::new(4, 1))).await;
        let token = hex::encode(random_bytes()?);
        let operator = Arc::new(Signer::new(cluster.keys.operator.clone()));
        let mut users = Users::default();
        users.insert(
            &token,
            Principal::Staff {
                name: "bench-operator".into(),
                signer: Arc::clone(&operator),
            },
        );
        let mqtt = free_loopback_port()?;
        let config = NodeConfig {
            data_dir: node_dir,
            mqtt: MqttMode::Embedded(mqtt),
            ehr_master_key: vigil_ehr::SecretKey::random(),
            gateway: Signer::new(cluster.keys.gateways[0].clone()),
            users,
            future_skew: vigil_node::FUTURE_SKEW_DEFAULT,
            map_tiles: None,
            notify: None,
        };
        let loopback = ([127, 0, 0, 1], 0).into();
        let (node, api) = vigil_api::start(cluster.ledgers[0].clone(), config, loopback).await?;
        let result = bench(BenchNode {
            node,
            mqtt,
            api,
            token,
            operator,
        })
        .await;
        cluster.shutdown();
        result
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Opens the operators' alert stream (`GET /api/alerts/stream`) and yields the person of each
/// alert as it arrives.
pub async fn alerted_people(
    http: &reqwest::Client,
    api: SocketAddr,
    token: &str,
) -> anyhow::Result<mpsc::Receiver<PersonId>> {
    let mut response = http
        .get(format!("http://{api}/api/alerts/stream"))
        .bearer_auth(token)
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .send()
        .await
        .context("requesting the alert stream")?;
    anyhow::ensure!(
        response.status() == reqwest::StatusCode::OK,
        "the alert stream was refused: {}",
        response.status()
    );
    let (sender, receiver) = mpsc::channel(1024);
    tokio::spawn(async move {
        let mut buffer = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                if let Some(person) = alert_person(&line)
                    && sender.send(person).await.is_err()
                {
                    return;
                }
            }
        }
    });
    Ok(receiver)
}

/// The person of an alert event's `data:` line of the stream.
fn alert_person(line: &[u8]) -> Option<PersonId> {
    let data = std::str::from_utf8(line)
        .ok()?
        .trim_end()
        .strip_prefix("data: ")?;
    let event = serde_json::from_str::<serde_json::Value>(data).ok()?;
    if event["type"] != "alert" {
        return None;
    }
    event["person"].as_str()?.parse().ok()
}

/// The `p`th percentile of `sorted` (nearest rank); NaN when there is none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn random_bytes() -> anyhow::Result<[u8; 16]> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).context("random source")?;
    Ok(bytes)
}

/// A port on 127.0.0.1 that was free a moment ago, for the embedded broker.
fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1")?;
    Ok(listener.local_addr()?)
}

fn temp_dir(name: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "vigil-bench-{name}-{}",
        hex::encode(random_bytes()?)
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_alert_events_name_a_person() {
        let person = PersonId::random();
        let alert = format!("data: {{\"type\":\"alert\",\"person\":\"{person}\"}}\n");
        assert_eq!(alert_person(alert.as_bytes()), Some(person));
        let other = format!("data: {{\"type\":\"status\",\"person\":\"{person}\"}}\n");
        assert_eq!(alert_person(other.as_bytes()), None);
        assert_eq!(alert_person(b": keep-alive\n"), None);
        assert_eq!(alert_person(b"data: {not json\n"), None);
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&sorted, 50.0), 3.0);
        assert_eq!(percentile(&sorted, 99.0), 5.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
