//! A whole consortium inside one process, on the tokio runtime, in real time: for `vigil demo`,
//! the node's integration tests and the loopback bench.
//!
//! Every validator is a full [`crate::net`] validator (authenticated p2p over 127.0.0.1 sockets,
//! its own storage partitions); only the process is shared. Storage lives under the tokio
//! runtime's storage directory, so a cluster started again on the same directory with the same
//! keys resumes from its finalized blocks.
//!
//! ```rust,ignore
//! use commonware_runtime::{Runner as _, tokio};
//! use vigil_ledger::{local::{LocalConfig, start_local}, sim::Keys};
//!
//! let runtime = tokio::Config::new().with_storage_directory("/var/lib/vigil-demo");
//! tokio::Runner::new(runtime).start(|mut context| async move {
//!     let cluster = start_local(context.child("cluster"), LocalConfig::new(Keys::new(4, 8))).await;
//!     let ledger = &cluster.ledgers[0];
//!     let nonce = ledger.next_nonce(&cluster.keys.operator.public_key());
//!     let tx = Tx::sign(&cluster.keys.operator, &ledger.chain_id(), nonce, body);
//!     ledger.submit(&mut context, tx)?;   // the tokio context is a CryptoRng (OS entropy)
//! });
//! ```

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use commonware_cryptography::Signer as _;
use commonware_runtime::{Handle, Supervisor as _, tokio};

use crate::app::BlockLimits;
use crate::net::{self, NetConfig, PeerAddress};
use crate::node::{Genesis, Ledger, Timing, ValidatorConfig};
use crate::sim::Keys;

/// Validators of a local cluster at most (ports, threads, memory).
pub const LOCAL_VALIDATORS_MAX: usize = 16;

/// Shape of an in-process cluster.
pub struct LocalConfig {
    /// Validator keys, plus the admin, operator and gateway identities the genesis grants roles
    /// to. [`Keys::new`] derives them from fixed seeds (fine for a demo and tests, never for a
    /// real deployment).
    pub keys: Keys,
    /// The genesis; [`LocalConfig::new`] takes `keys.genesis()`.
    pub genesis: Genesis,
    /// Storage partitions of validator `i` are named `{partition_prefix}-{i}-…`.
    pub partition_prefix: String,
    /// Validator `i` listens on `127.0.0.1:{base_port + i}`; 0 picks free ports.
    pub base_port: u16,
    pub timing: Timing,
    pub limits: BlockLimits,
}

impl LocalConfig {
    pub fn new(keys: Keys) -> LocalConfig {
        LocalConfig {
            genesis: keys.genesis(),
            keys,
            partition_prefix: "ledger".into(),
            base_port: 0,
            timing: Timing::default(),
            limits: BlockLimits::default(),
        }
    }
}

/// A running in-process cluster.
pub struct LocalCluster {
    /// One handle per validator, in the order of `keys.validators`.
    pub ledgers: Vec<Ledger>,
    pub genesis: Genesis,
    pub keys: Keys,
    pub addresses: Vec<SocketAddr>,
    handles: Vec<Handle<()>>,
}

impl LocalCluster {
    /// Stop every validator's network (consensus then stalls; storage stays consistent).
    pub fn shutdown(&self) {
        for h in &self.handles {
            h.abort();
        }
    }
}

/// Free ports on 127.0.0.1, held open together so they are distinct, then released.
fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// Start every validator of `config.keys` in this process.
///
/// # Panics
/// If there are more than [`LOCAL_VALIDATORS_MAX`] validators, no free ports, or the keys do
/// not match the genesis validator set.
pub async fn start_local(context: tokio::Context, config: LocalConfig) -> LocalCluster {
    let n = config.keys.validators.len();
    assert!(
        (1..=LOCAL_VALIDATORS_MAX).contains(&n),
        "1..={LOCAL_VALIDATORS_MAX} validators"
    );
    let ports: Vec<u16> = if config.base_port == 0 {
        free_ports(n).expect("free ports on 127.0.0.1")
    } else {
        (0..n as u16).map(|i| config.base_port + i).collect()
    };
    let addresses: Vec<SocketAddr> = ports
        .iter()
        .map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, *p)))
        .collect();
    let peers: Vec<PeerAddress> = config
        .keys
        .validators
        .iter()
        .zip(&addresses)
        .map(|(k, a)| PeerAddress {
            key: k.public_key(),
            address: *a,
        })
        .collect();
    let mut ledgers = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for (i, key) in config.keys.validators.iter().enumerate() {
        let validator = ValidatorConfig {
            key: key.clone(),
            genesis: config.genesis.clone(),
            partition_prefix: format!("{}-{i}", config.partition_prefix),
            timing: config.timing.clone(),
            limits: config.limits.clone(),
            #[cfg(test)]
            fault: None,
        };
        let net = NetConfig {
            listen: addresses[i],
            peers: peers.clone(),
        };
        let running = net::start(
            context.child("validator").with_attribute("index", i),
            validator,
            net,
        )
        .await;
        ledgers.push(running.ledger);
        handles.push(running.network);
    }
    LocalCluster {
        ledgers,
        genesis: config.genesis,
        keys: config.keys,
        addresses,
        handles,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use commonware_runtime::{Clock as _, Runner as _};
    use futures::FutureExt as _;
    use vigil_core::PersonId;

    use super::*;
    use crate::tx::{Tx, TxBody};

    /// Wall-clock bound of each phase of the smoke test.
    const PHASE_TIMEOUT: Duration = Duration::from_secs(30);

    fn runtime(dir: &std::path::Path) -> tokio::Runner {
        tokio::Runner::new(
            tokio::Config::new()
                .with_worker_threads(2)
                .with_storage_directory(dir),
        )
    }

    /// Four validators on tokio over loopback finalize a transaction within seconds, and a
    /// cluster restarted on the same directory resumes from its finalized state.
    #[test]
    fn four_validators_on_tokio_finalize_and_resume() {
        let dir = std::env::temp_dir().join(format!("vigil-ledger-local-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let person = PersonId::from_bytes([9; 16]);

        let height = runtime(&dir).start(|mut context| async move {
            let cluster = start_local(context.child("cluster"), LocalConfig::new(Keys::new(4, 1))).await;
            let ledger = cluster.ledgers[0].clone();
            let operator = &cluster.keys.operator;
            let mut finalized = cluster.ledgers[3].follow(1);
            let tx = Tx::sign(
                operator,
                &ledger.chain_id(),
                ledger.next_nonce(&operator.public_key()),
                TxBody::RegisterPerson { person },
            );
            let id = ledger.submit(&mut context, tx).expect("admitted");
            // Wait until every validator has applied the block, not only the one observed:
            // the restart below expects it in every validator's store.
            let wait = async {
                let mut height = None;
                while let Some(followed) = finalized.next().await {
                    if followed.block.txs().iter().any(|t| t.id() == id) {
                        height = Some(followed.block.height());
                        break;
                    }
                }
                let Some(height) = height else {
                    panic!("subscription ended");
                };
                while cluster.ledgers.iter().any(|l| l.finalized().0 < height) {
                    context.sleep(Duration::from_millis(20)).await;
                }
                height
            };
            futures::select! {
                h = wait.fuse() => h,
                _ = context.sleep(PHASE_TIMEOUT).fuse() => panic!("not finalized within {PHASE_TIMEOUT:?}"),
            }
        });
        assert!(height >= 1);

        let resumed = runtime(&dir).start(|context| async move {
            let cluster =
                start_local(context.child("cluster"), LocalConfig::new(Keys::new(4, 1))).await;
            let operator = cluster.keys.operator.public_key();
            // The state was rebuilt from storage before the validators reconnected.
            for ledger in &cluster.ledgers {
                assert_eq!(ledger.next_nonce(&operator), 1);
            }
            // And the restarted cluster keeps finalizing.
            let wait = async {
                loop {
                    if cluster.ledgers.iter().all(|l| l.finalized().0 > height) {
                        return cluster.ledgers[0].finalized().0;
                    }
                    context.sleep(Duration::from_millis(50)).await;
                }
            };
            futures::select! {
                h = wait.fuse() => h,
                _ = context.sleep(PHASE_TIMEOUT).fuse() => panic!("no progress after restart"),
            }
        });
        assert!(resumed > height);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
