//! What the deterministic simulations share: lossy cluster settings, seeds and a runner that
//! names a failing seed, submission and waiting helpers, and the strict agreement check
//! (same block digests and state roots on every honest validator at every height). Both
//! `sim_tests` and `sim_faults` use it; neither uses the other.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::time::Duration;

use commonware_cryptography::sha256::Digest;
use commonware_p2p::simulated::Link;
use commonware_runtime::{Clock as _, Runner as _, Supervisor as _, deterministic};

use crate::node::Timing;
use crate::sim::{Cluster, ClusterConfig, Keys};
use crate::tx::{Tx, TxBody, TxId};

/// Seeds each scenario runs in CI.
pub(crate) const CI_SEEDS: u64 = 3;
/// Simulated time after which a run is a failure (a stall that should not happen).
const SIM_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a helper waits for a condition, in simulated time.
const WAIT_MAX: Duration = Duration::from_secs(120);

/// Links that lose 10 % of messages, 20 ms ± 10 ms; timeouts a few round trips long.
pub(crate) fn lossy() -> ClusterConfig {
    ClusterConfig {
        link: Link {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            success_rate: commonware_utils::probability!(0.9),
        },
        timing: Timing {
            leader_timeout: Duration::from_millis(300),
            certification_timeout: Duration::from_millis(600),
            timeout_retry: Duration::from_millis(500),
            skip_timeout: Duration::from_millis(900),
            fetch_timeout: Duration::from_millis(500),
        },
        ..ClusterConfig::default()
    }
}

/// Seeds to run: `VIGIL_SIM_SEED` alone if set, else `base .. base + CI_SEEDS`.
pub(crate) fn seeds(base: u64) -> Vec<u64> {
    match std::env::var("VIGIL_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => (base..base + CI_SEEDS).collect(),
    }
}

/// Run `scenario` once on the deterministic runtime; a failure names its seed.
pub(crate) fn run_seed<F, Fut>(name: &str, seed: u64, scenario: F)
where
    F: FnOnce(deterministic::Context) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let config = deterministic::Config::new()
        .with_seed(seed)
        .with_timeout(Some(SIM_TIMEOUT));
    let result = catch_unwind(AssertUnwindSafe(|| {
        deterministic::Runner::new(config).start(scenario);
    }));
    if let Err(panic) = result {
        eprintln!(
            "simulation {name} failed at seed {seed}; reproduce with \
             VIGIL_SIM_SEED={seed} cargo nextest run -p vigil-ledger {name}"
        );
        resume_unwind(panic);
    }
}

/// Check that the validators `honest` hold one chain: the same block digest and the same
/// state root at every height up to the lowest of their finalized heights, none diverged,
/// and each one's own state after its tip equals the root its tip block commits to.
/// Fails when there is nothing to compare (no validator, no finalized height). Returns the
/// common height.
pub(crate) async fn assert_agreement(cluster: &Cluster, honest: &[usize]) -> u64 {
    assert!(!honest.is_empty(), "agreement checked over no validator");
    let ledgers: Vec<_> = honest
        .iter()
        .map(|&i| {
            let ledger = cluster
                .ledger(i)
                .unwrap_or_else(|| panic!("validator {i} is not running"));
            assert_eq!(ledger.diverged(), None, "validator {i} diverged");
            (i, ledger)
        })
        .collect();
    let height = ledgers
        .iter()
        .map(|(_, l)| l.finalized().0)
        .min()
        .unwrap_or(0);
    assert!(height > 0, "no finalized height to compare");
    for h in 1..=height {
        let mut reference: Option<(usize, Digest, [u8; 32])> = None;
        for (i, ledger) in &ledgers {
            let block = ledger
                .block(h)
                .await
                .unwrap_or_else(|| panic!("validator {i} has no block {h}"));
            let mine = (block.digest(), block.header().state_root);
            match reference {
                None => reference = Some((*i, mine.0, mine.1)),
                Some((j, digest, root)) => {
                    assert_eq!(
                        mine.0, digest,
                        "validators {j} and {i}: blocks differ at {h}"
                    );
                    assert_eq!(mine.1, root, "validators {j} and {i}: roots differ at {h}");
                }
            }
        }
    }
    for (i, ledger) in &ledgers {
        let snapshot = ledger.snapshot();
        let tip = ledger
            .block(snapshot.height())
            .await
            .unwrap_or_else(|| panic!("validator {i} has no tip block"));
        assert_eq!(
            snapshot.root(),
            tip.header().state_root,
            "validator {i}'s state is not the one its tip commits to"
        );
    }
    height
}

/// `count` EHR anchors per gateway, nonces from `first`.
pub(crate) fn anchors(keys: &Keys, chain_id: &[u8; 32], first: u64, count: u64) -> Vec<Tx> {
    let mut txs = Vec::new();
    for gateway in &keys.gateways {
        for nonce in first..first + count {
            txs.push(Tx::sign(
                gateway,
                chain_id,
                nonce,
                TxBody::EhrAnchor {
                    // Anchor `k` covers `1 + k` records, following the ones before it.
                    first_seq: 1 + nonce + nonce * nonce.saturating_sub(1) / 2,
                    root: [nonce as u8; 32],
                    count: 1 + nonce as u32,
                    from_ms: nonce as i64,
                    to_ms: nonce as i64 + 1,
                },
            ));
        }
    }
    txs
}

/// Submit to every running validator, as a client that does not trust one node would.
pub(crate) fn submit(cluster: &Cluster, txs: &[Tx]) {
    let mut rng = cluster.context().child("client");
    for (_, ledger) in cluster.live() {
        for result in ledger.submit_many(&mut rng, txs.to_vec()) {
            match result {
                Ok(_) | Err(crate::node::SubmitError::Admit(_)) => {}
                Err(e) => panic!("submission refused: {e}"),
            }
        }
    }
}

pub(crate) fn min_height(cluster: &Cluster) -> u64 {
    cluster
        .live()
        .map(|(_, l)| l.finalized().0)
        .min()
        .unwrap_or(0)
}

pub(crate) async fn wait_height(cluster: &Cluster, target: u64) {
    let start = cluster.context().current();
    while min_height(cluster) < target {
        let waited = cluster
            .context()
            .current()
            .duration_since(start)
            .unwrap_or_default();
        assert!(
            waited < WAIT_MAX,
            "no progress to height {target}: at {}",
            min_height(cluster)
        );
        cluster.context().sleep(Duration::from_millis(100)).await;
    }
}

/// Transaction ids finalized by validator `i`, in order, from its stored blocks.
pub(crate) async fn finalized_ids(cluster: &Cluster, i: usize) -> Vec<TxId> {
    let ledger = cluster.ledger(i).expect("running");
    let (height, _) = ledger.finalized();
    let mut ids = Vec::new();
    for h in 1..=height {
        let block = ledger.block(h).await.expect("stored block");
        ids.extend(block.txs().iter().map(Tx::id));
    }
    ids
}

/// Wait until every running validator has finalized all of `txs`, then check that each was
/// finalized exactly once and that all validators hold the same chain.
pub(crate) async fn all_finalized_once(cluster: &Cluster, txs: &[Tx]) {
    let want: HashSet<TxId> = txs.iter().map(Tx::id).collect();
    let start = cluster.context().current();
    loop {
        let mut done = true;
        for (i, _) in cluster.live() {
            let ids = finalized_ids(cluster, i).await;
            let unique: HashSet<TxId> = ids.iter().copied().collect();
            assert_eq!(
                unique.len(),
                ids.len(),
                "validator {i} finalized a duplicate"
            );
            if !want.is_subset(&unique) {
                done = false;
            }
        }
        if done {
            break;
        }
        let waited = cluster
            .context()
            .current()
            .duration_since(start)
            .unwrap_or_default();
        assert!(waited < WAIT_MAX, "transactions not finalized in time");
        cluster.context().sleep(Duration::from_millis(200)).await;
    }
    // Same blocks and state roots at every common height.
    let live: Vec<usize> = cluster.live().map(|(i, _)| i).collect();
    assert_agreement(cluster, &live).await;
}
