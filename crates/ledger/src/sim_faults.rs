//! Fault simulations on lossy links: every link drops a tenth of its messages and jitters
//! its latency, each scenario runs `sim_harness::CI_SEEDS` seeds (`VIGIL_SIM_SEED=N` runs seed N only),
//! and [`soak`] runs every scenario over `VIGIL_SOAK_SEEDS` seeds and names each failing seed.
//!
//! Scenarios: lossy links alone, one-way link cuts, a validator that can send but not
//! receive, a 2–2 partition healed in the middle of a view (progress must resume within a
//! bounded number of views), and three Byzantine leaders (a forged transaction, a wrong state
//! root, two proposals for one view). A Byzantine test fails unless the faulty validator led
//! views that honest peers judged (counted in the cluster's [`ProposerLog`]) and, for invalid
//! blocks, unless every such judgement refused the block for the named reason.
//!
//! Simulated time drives everything: timeouts are short and chains short (a few heights), so
//! a scenario costs a second or two of wall time, not the minutes its simulated clock shows.

use std::collections::HashSet;
use std::panic::catch_unwind;
use std::time::Duration;

use commonware_cryptography::{Signer as _, ed25519::PrivateKey, sha256::Digest};
use commonware_runtime::{Clock as _, deterministic};

use crate::fault::{Misbehaviour, ProposerLog};
use crate::sim::{Cluster, Keys};
use crate::sim_harness::{
    all_finalized_once, anchors, assert_agreement, finalized_ids, lossy, min_height, run_seed,
    seeds, submit, wait_height,
};
use crate::tx::{Tx, TxBody};

/// Seeds the soak runs when `VIGIL_SOAK_SEEDS` is not set.
const SOAK_SEEDS_DEFAULT: u64 = 50;
/// Simulated time a scenario waits for one condition.
const WAIT_MAX: Duration = Duration::from_secs(60);
/// Views the cluster may take, after a partition heals, to finalize [`HEAL_HEIGHTS`] blocks.
const HEAL_VIEWS_MAX: u64 = 12;
const HEAL_HEIGHTS: u64 = 3;
/// Validators in every scenario; the Byzantine one is validator 0.
const VALIDATORS: usize = 4;
const FAULTY: usize = 0;
const HONEST: [usize; 3] = [1, 2, 3];
const ALL: [usize; 4] = [0, 1, 2, 3];

/// Wait, in simulated time, until `done` holds; `what` names the condition in the failure.
async fn wait_until(cluster: &Cluster, what: &str, mut done: impl FnMut(&Cluster) -> bool) {
    let start = cluster.context().current();
    while !done(cluster) {
        let waited = cluster
            .context()
            .current()
            .duration_since(start)
            .unwrap_or_default();
        assert!(waited < WAIT_MAX, "{what}: not within {WAIT_MAX:?}");
        cluster.context().sleep(Duration::from_millis(100)).await;
    }
}

/// Heights finalized by validator `i`'s ledger (0 if not running).
fn height_of(cluster: &Cluster, i: usize) -> u64 {
    cluster.ledger(i).map_or(0, |l| l.finalized().0)
}

async fn started(context: deterministic::Context) -> Cluster {
    let mut cluster = Cluster::new(context, lossy(), Keys::new(VALIDATORS, 2)).await;
    cluster.start_all().await;
    cluster
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

async fn lossy_links(context: deterministic::Context) {
    let cluster = started(context).await;
    let txs = anchors(&cluster.keys, &cluster.genesis.chain_id, 0, 10);
    submit(&cluster, &txs);
    all_finalized_once(&cluster, &txs).await;
    wait_height(&cluster, 5).await;
    assert_agreement(&cluster, &ALL).await;
}

/// 0→1 and 2→3 are cut, 1→0 and 3→2 stay open: every validator still hears a quorum.
async fn one_way_cuts(context: deterministic::Context) {
    let mut cluster = started(context).await;
    wait_height(&cluster, 1).await;
    cluster.cut(0, 1).await;
    cluster.cut(2, 3).await;
    let txs = anchors(&cluster.keys, &cluster.genesis.chain_id, 0, 10);
    submit(&cluster, &txs);
    all_finalized_once(&cluster, &txs).await;
    let h = min_height(&cluster);
    wait_height(&cluster, h + 3).await;
    assert_agreement(&cluster, &ALL).await;
}

/// Validator 3 sends to everyone but hears no one: the other three finalize without it, it
/// finalizes nothing, and it catches up once it hears them again.
async fn send_only_validator(context: deterministic::Context) {
    let mut cluster = started(context).await;
    wait_height(&cluster, 1).await;
    for from in 0..3 {
        cluster.cut(from, 3).await;
    }
    // Messages already on the wire land; after that validator 3 learns nothing.
    cluster.context().sleep(Duration::from_secs(1)).await;
    let deaf = height_of(&cluster, 3);
    let txs = anchors(&cluster.keys, &cluster.genesis.chain_id, 0, 10);
    submit(&cluster, &txs);
    let target = deaf + 4;
    wait_until(&cluster, "the three that hear each other finalize", |c| {
        [0, 1, 2].iter().all(|&i| height_of(c, i) >= target)
    })
    .await;
    assert_eq!(height_of(&cluster, 3), deaf, "validator 3 finalized deaf");
    assert_agreement(&cluster, &[0, 1, 2]).await;
    cluster.heal().await;
    wait_until(&cluster, "validator 3 catches up", |c| {
        height_of(c, 3) >= target
    })
    .await;
    all_finalized_once(&cluster, &txs).await;
    assert_agreement(&cluster, &ALL).await;
}

/// A 2–2 partition, healed at an instant that is no timeout boundary (mid-view): nothing is
/// finalized while it lasts, and afterwards `HEAL_HEIGHTS` blocks follow within
/// `HEAL_VIEWS_MAX` views.
async fn partition_healed_mid_view(context: deterministic::Context) {
    let mut cluster = started(context).await;
    wait_height(&cluster, 2).await;
    cluster.partition(&[0, 1]).await;
    let txs = anchors(&cluster.keys, &cluster.genesis.chain_id, 0, 10);
    submit(&cluster, &txs);
    cluster.context().sleep(Duration::from_millis(700)).await;
    let stalled = cluster
        .live()
        .map(|(_, l)| l.finalized().0)
        .max()
        .unwrap_or(0);
    cluster.context().sleep(Duration::from_millis(2_345)).await;
    let during = cluster
        .live()
        .map(|(_, l)| l.finalized().0)
        .max()
        .unwrap_or(0);
    assert_eq!(during, stalled, "a side without a quorum finalized");
    let view_at_heal = cluster.log.max_view();
    cluster.heal().await;
    wait_height(&cluster, stalled + HEAL_HEIGHTS).await;
    let views = cluster.log.max_view().saturating_sub(view_at_heal);
    eprintln!("partition healed: {HEAL_HEIGHTS} blocks in {views} views");
    assert!(
        views <= HEAL_VIEWS_MAX,
        "{views} views to finalize {HEAL_HEIGHTS} blocks after healing"
    );
    all_finalized_once(&cluster, &txs).await;
    assert_agreement(&cluster, &ALL).await;
}

/// Validator 0 breaks `misbehaviour` whenever it leads; the others are honest. Runs until
/// the honest validators have finalized a few blocks and judged `judged_min` blocks led by
/// validator 0 (so it fails if validator 0 never led a view a peer saw), then checks that
/// validator 0 logged proposals and that the honest validators agree.
async fn byzantine(
    context: deterministic::Context,
    misbehaviour: Misbehaviour,
    judged_min: usize,
) -> (Cluster, ProposerLog) {
    let mut cluster = Cluster::new(context, lossy(), Keys::new(VALIDATORS, 2)).await;
    cluster.start_faulty(FAULTY, misbehaviour).await;
    for i in HONEST {
        cluster.start(i).await;
    }
    let txs = anchors(&cluster.keys, &cluster.genesis.chain_id, 0, 10);
    submit(&cluster, &txs);
    let log = cluster.log.clone();
    wait_until(
        &cluster,
        "honest peers judge blocks the faulty validator led",
        |c| peer_verdicts(&log).len() >= judged_min && min_height(c) >= 5,
    )
    .await;
    all_finalized_once(&cluster, &txs).await;
    assert!(
        !log.proposals_by(FAULTY).is_empty(),
        "the faulty validator never led a view"
    );
    assert_agreement(&cluster, &HONEST).await;
    (cluster, log)
}

/// Honest validators' judgements of blocks the faulty validator led.
fn peer_verdicts(log: &ProposerLog) -> Vec<crate::fault::Verdict> {
    let faulty = Keys::new(VALIDATORS, 0).validators[FAULTY].public_key();
    log.verdicts_on(&faulty)
        .into_iter()
        .filter(|v| v.validator != FAULTY)
        .collect()
}

/// Every judgement of a block led by the faulty validator refused it, at least one for
/// `reason`, and no honest validator finalized one of its blocks.
async fn refused_everywhere(cluster: &Cluster, log: &ProposerLog, reason: &str) {
    let proposed: HashSet<Digest> = log.proposals_by(FAULTY).iter().map(|p| p.digest).collect();
    let verdicts = peer_verdicts(log);
    assert!(
        !verdicts.is_empty(),
        "no block the faulty validator led was judged"
    );
    for verdict in &verdicts {
        assert!(
            proposed.contains(&verdict.digest),
            "validator {} judged a block of view {} the faulty leader did not log",
            verdict.validator,
            verdict.view
        );
        assert!(
            verdict.refused.is_some(),
            "validator {} accepted the invalid block of view {}",
            verdict.validator,
            verdict.view
        );
    }
    // A lost message can make a block unjudgeable (its parent unknown); at least one
    // refusal must name the fault itself.
    let reasons: Vec<&str> = verdicts
        .iter()
        .filter_map(|v| v.refused.as_deref())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains(reason)),
        "no refusal for {reason}: {reasons:?}"
    );
    for i in HONEST {
        let ledger = cluster.ledger(i).expect("running");
        for h in 1..=ledger.finalized().0 {
            let block = ledger.block(h).await.expect("stored");
            assert!(
                !proposed.contains(&block.digest()),
                "validator {i} finalized the faulty leader's block at {h}"
            );
        }
    }
}

async fn byzantine_forged_tx(context: deterministic::Context) {
    // Signed correctly, but by nobody with the gateway role.
    let intruder = PrivateKey::from_seed(666);
    let genesis = Keys::new(VALIDATORS, 2).genesis();
    let forged = Tx::sign(
        &intruder,
        &genesis.chain_id,
        0,
        TxBody::EhrAnchor {
            first_seq: 1,
            root: [6; 32],
            count: 1,
            from_ms: 0,
            to_ms: 1,
        },
    );
    let (cluster, log) =
        byzantine(context, Misbehaviour::InjectTx(Box::new(forged.clone())), 2).await;
    refused_everywhere(&cluster, &log, "rejected").await;
    for i in HONEST {
        let ids = finalized_ids(&cluster, i).await;
        assert!(
            !ids.contains(&forged.id()),
            "validator {i} finalized the forged tx"
        );
    }
}

/// An alert no validator holds evidence for, injected by the faulty leader (as a gateway
/// colluding with it would): every honest validator refuses the block for that reason.
async fn byzantine_alert_without_evidence(context: deterministic::Context) {
    let keys = Keys::new(VALIDATORS, 2);
    let genesis = keys.genesis();
    let invented = Tx::sign(
        &keys.gateways[0],
        &genesis.chain_id,
        1_000_000,
        TxBody::Alert {
            instance: crate::tx::InstanceId([5; 32]),
            level: vigil_core::AlertLevel::Critical,
            reading_time_ms: 1_000,
            evidence: [7; 32],
        },
    );
    let (cluster, log) = byzantine(
        context,
        Misbehaviour::InjectTx(Box::new(invented.clone())),
        2,
    )
    .await;
    refused_everywhere(&cluster, &log, "no evidence for the alert").await;
    for i in HONEST {
        let ids = finalized_ids(&cluster, i).await;
        assert!(
            !ids.contains(&invented.id()),
            "validator {i} finalized the invented alert"
        );
    }
}

async fn byzantine_wrong_state_root(context: deterministic::Context) {
    let (cluster, log) = byzantine(context, Misbehaviour::WrongStateRoot, 2).await;
    refused_everywhere(&cluster, &log, "state root does not match").await;
}

/// A leader whose clock runs ten minutes ahead: every block it leads is refused by the honest
/// validators (their clocks bound a block's time to 60 s ahead), none is finalized, and the
/// chain goes on under the honest leaders.
async fn byzantine_block_from_the_future(context: deterministic::Context) {
    let (cluster, log) = byzantine(context, Misbehaviour::TimeAhead(10 * 60_000), 2).await;
    refused_everywhere(&cluster, &log, "ahead of this validator's clock").await;
}

/// The equivocating leader's two blocks for one view are both valid; each peer judged the
/// one it was sent: the victim the second, the others the first. The honest chain stays one
/// (checked by `byzantine`), holding at most one of the two at any height.
async fn byzantine_equivocation(context: deterministic::Context) {
    let (cluster, log) = byzantine(context, Misbehaviour::Equivocate, 2).await;
    let log_ref = &log;
    wait_until(
        &cluster,
        "a peer judges each of two proposals of one view",
        |_| split_views(log_ref) > 0,
    )
    .await;
    let victim = (FAULTY + 1) % VALIDATORS;
    for equivocation in log.equivocations() {
        assert_ne!(equivocation.first, equivocation.second);
        assert_eq!(
            equivocation.victim,
            cluster.keys.validators[victim].public_key()
        );
    }
    for verdict in peer_verdicts(&log) {
        assert!(
            verdict.refused.is_none(),
            "validator {} refused a valid block: {:?}",
            verdict.validator,
            verdict.refused
        );
    }
    assert_agreement(&cluster, &HONEST).await;
}

/// Views in which the victim judged the second block and another peer the first.
fn split_views(log: &ProposerLog) -> usize {
    let verdicts = peer_verdicts(log);
    let victim = (FAULTY + 1) % VALIDATORS;
    log.equivocations()
        .iter()
        .filter(|e| {
            let judged = |digest: Digest, by_victim: bool| {
                verdicts.iter().any(|v| {
                    v.view == e.view && v.digest == digest && (v.validator == victim) == by_victim
                })
            };
            judged(e.second, true) && judged(e.first, false)
        })
        .count()
}

// ---------------------------------------------------------------------------------------
// Tests: each scenario over CI_SEEDS seeds; the soak over many.
// ---------------------------------------------------------------------------------------

type Scenario = fn(deterministic::Context) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

macro_rules! scenarios {
    ($($name:ident => $base:expr),* $(,)?) => {
        /// One test per scenario (named as it), over `CI_SEEDS` seeds from its base.
        mod ci {
            $(
                #[test]
                fn $name() {
                    for seed in super::seeds($base) {
                        super::run_seed(stringify!($name), seed, super::$name);
                    }
                }
            )*
        }
        /// Every scenario, by name, for the soak.
        const SCENARIOS: &[(&str, Scenario)] = &[
            $((stringify!($name), |c| Box::pin($name(c)))),*
        ];
    };
}

scenarios! {
    lossy_links => 100,
    one_way_cuts => 200,
    send_only_validator => 300,
    partition_healed_mid_view => 400,
    byzantine_forged_tx => 500,
    byzantine_alert_without_evidence => 550,
    byzantine_wrong_state_root => 600,
    byzantine_equivocation => 700,
    byzantine_block_from_the_future => 800,
}

/// Every scenario over `VIGIL_SOAK_SEEDS` seeds (from `VIGIL_SOAK_FROM`, default 10 000);
/// prints each failing scenario and seed, and fails if any did:
/// `VIGIL_SOAK_SEEDS=500 cargo nextest run -p vigil-ledger --run-ignored only soak`.
#[test]
#[ignore = "long: many seeds of every fault scenario"]
fn soak() {
    let count = env_u64("VIGIL_SOAK_SEEDS", SOAK_SEEDS_DEFAULT);
    let from = env_u64("VIGIL_SOAK_FROM", 10_000);
    let mut failures = Vec::new();
    for seed in from..from + count {
        for (name, scenario) in SCENARIOS {
            let scenario = *scenario;
            if catch_unwind(|| run_seed(name, seed, scenario)).is_err() {
                eprintln!("SOAK FAILURE: {name} seed {seed}");
                failures.push(format!("{name}@{seed}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "failing seeds: {}",
        failures.join(", ")
    );
    eprintln!("soak: {} scenarios x {count} seeds passed", SCENARIOS.len());
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
