//! A cluster of validators on commonware's deterministic runtime and simulated network: for the
//! fault tests and `vigil bench ledger`. Everything (clock, network, disk, scheduling) is
//! driven by one seed, so a failing run is reproduced by its seed.

use std::time::Duration;

use commonware_cryptography::{
    Signer as _,
    ed25519::{PrivateKey, PublicKey},
};
use commonware_p2p::simulated::{self, Link, Network, Oracle};
use commonware_runtime::{Handle, Quota, Spawner as _, Supervisor as _, deterministic};
use commonware_utils::{NZU32, NZUsize, channel::oneshot};

use crate::app::BlockLimits;
#[cfg(test)]
use crate::app::ProposerFault;
#[cfg(test)]
use crate::fault::{EquivocationPlan, Misbehaviour, ProposerLog, Tap};
use crate::node::{
    self, Channels, Genesis, Ledger, MESSAGE_BYTES_MAX, Timing, ValidatorConfig, channel,
};
use crate::tx::Role;

/// Message rate allowed per peer and channel: far above what a validator sends (a few votes
/// per view, a gossip batch every 20 ms), the simulator is not where we test rate limiting.
/// Not higher: a receiver reports one burst per peer as its capacity, and consensus
/// preallocates a queue that long (at 1,000,000/s, 480 MB per validator).
const CHANNEL_QUOTA: Quota = Quota::per_second(NZU32!(10_000));

/// Shape of a simulated cluster.
#[derive(Clone)]
pub struct ClusterConfig {
    pub validators: usize,
    pub link: Link,
    pub timing: Timing,
    pub limits: BlockLimits,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            validators: 4,
            link: Link {
                latency: Duration::from_millis(20),
                jitter: Duration::from_millis(5),
                success_rate: commonware_utils::probability!(1.0),
            },
            timing: Timing::default(),
            limits: BlockLimits::default(),
        }
    }
}

/// Identities of the test consortium: validators, one admin, and operator/gateway keys that
/// the genesis grants roles to.
pub struct Keys {
    pub validators: Vec<PrivateKey>,
    pub admin: PrivateKey,
    pub operator: PrivateKey,
    pub gateways: Vec<PrivateKey>,
}

impl Keys {
    pub fn new(validators: usize, gateways: usize) -> Keys {
        Keys {
            validators: (0..validators as u64).map(PrivateKey::from_seed).collect(),
            admin: PrivateKey::from_seed(1000),
            operator: PrivateKey::from_seed(1001),
            gateways: (0..gateways as u64)
                .map(|i| PrivateKey::from_seed(2000 + i))
                .collect(),
        }
    }

    pub fn genesis(&self) -> Genesis {
        let mut roles = vec![
            (self.admin.public_key(), Role::Admin),
            (self.operator.public_key(), Role::CdcpOperator),
        ];
        roles.extend(
            self.gateways
                .iter()
                .map(|g| (g.public_key(), Role::Gateway)),
        );
        Genesis::new(
            self.validators.iter().map(|k| k.public_key()).collect(),
            &roles,
            "vigil-sim",
        )
    }
}

#[cfg(test)]
type SimSender = simulated::Sender<PublicKey, deterministic::Context>;
#[cfg(test)]
type SimReceiver = simulated::Receiver<PublicKey>;
/// Positions of the vote and block channels in the registration order of `start_with`.
#[cfg(test)]
const VOTES_INDEX: usize = 0;
#[cfg(test)]
const BLOCKS_INDEX: usize = 4;

struct Running {
    handle: Handle<()>,
    ledger: Ledger,
}

/// A running simulated cluster.
pub struct Cluster {
    context: deterministic::Context,
    oracle: Oracle<PublicKey, deterministic::Context>,
    pub keys: Keys,
    pub genesis: Genesis,
    config: ClusterConfig,
    nodes: Vec<Option<Running>>,
    restarts: usize,
    /// What every validator proposed and judged (tests only).
    #[cfg(test)]
    pub log: ProposerLog,
}

impl Cluster {
    /// Build the network and links; validators are started with [`Cluster::start_all`].
    pub async fn new(
        context: deterministic::Context,
        config: ClusterConfig,
        keys: Keys,
    ) -> Cluster {
        let genesis = keys.genesis();
        let peers: Vec<PublicKey> = keys.validators.iter().map(|k| k.public_key()).collect();
        let (network, mut oracle) = Network::new_with_peers(
            context.child("network"),
            simulated::Config {
                max_size: MESSAGE_BYTES_MAX,
                max_peers_per_set: NZUsize!(peers.len().max(1)),
                disconnect_on_block: true,
                tracked_peer_sets: NZUsize!(1),
            },
            peers.clone(),
        )
        .await;
        network.start();
        for a in &peers {
            for b in &peers {
                if a != b {
                    oracle
                        .add_link(a.clone(), b.clone(), config.link.clone())
                        .await
                        .expect("link peers");
                }
            }
        }
        let _ = &mut oracle;
        let nodes = (0..peers.len()).map(|_| None).collect();
        Cluster {
            context,
            oracle,
            keys,
            genesis,
            config,
            nodes,
            restarts: 0,
            #[cfg(test)]
            log: ProposerLog::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn context(&self) -> &deterministic::Context {
        &self.context
    }

    pub async fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i).await;
        }
    }

    /// Start (or restart, from its storage) validator `i`.
    pub async fn start(&mut self, i: usize) {
        self.start_with(i, |_| {}).await;
    }

    /// Start validator `i` as a proposer that breaks the rules when it leads.
    #[cfg(test)]
    pub async fn start_faulty(&mut self, i: usize, misbehaviour: Misbehaviour) {
        let fault = ProposerFault {
            validator: i,
            log: self.log.clone(),
            misbehaviour: Some(misbehaviour),
        };
        self.start_with(i, |config| config.fault = Some(fault))
            .await;
    }

    async fn start_with(&mut self, i: usize, adjust: impl FnOnce(&mut ValidatorConfig)) {
        assert!(self.nodes[i].is_none(), "validator {i} is running");
        let key = self.keys.validators[i].clone();
        let me = key.public_key();
        let control = self.oracle.control(me.clone());
        let mut registered = Vec::new();
        for ch in [
            channel::VOTES,
            channel::CERTIFICATES,
            channel::RESOLVER,
            channel::BACKFILL,
            channel::BLOCKS,
            channel::TXS,
        ] {
            registered.push(control.register(ch, CHANNEL_QUOTA).await.expect("register"));
        }
        let mut config = ValidatorConfig {
            key,
            genesis: self.genesis.clone(),
            partition_prefix: format!("validator-{i}"),
            timing: self.config.timing.clone(),
            limits: self.config.limits.clone(),
            // Every validator writes the log; `start_faulty` adds a misbehaviour.
            #[cfg(test)]
            fault: Some(ProposerFault {
                validator: i,
                log: self.log.clone(),
                misbehaviour: None,
            }),
        };
        adjust(&mut config);
        #[cfg(test)]
        let registered = self.tap(i, &config, registered);
        let mut it = registered.into_iter();
        let mut next = || it.next().expect("six channels");
        let channels = Channels {
            votes: next(),
            certificates: next(),
            resolver: next(),
            backfill: next(),
            blocks: next(),
            txs: next(),
        };
        let peer_provider = self.oracle.manager();
        let blocker = control;
        let (sender, receiver) = oneshot::channel();
        self.restarts += 1;
        let handle = self
            .context
            .child("validator")
            .with_attribute("index", i)
            .with_attribute("incarnation", self.restarts)
            .spawn(move |context| async move {
                let ledger = node::start(context, config, channels, peer_provider, blocker).await;
                let _ = sender.send(ledger);
                futures::future::pending::<()>().await;
            });
        let ledger = receiver.await.expect("validator started");
        self.nodes[i] = Some(Running { handle, ledger });
    }

    /// Wrap validator `i`'s senders in [`Tap`]s; an equivocator's vote sender gets the plan
    /// (and a sender on the block channel) that splits its proposals.
    #[cfg(test)]
    fn tap(
        &self,
        i: usize,
        config: &ValidatorConfig,
        registered: Vec<(SimSender, SimReceiver)>,
    ) -> Vec<(Tap<SimSender>, SimReceiver)> {
        let equivocates = config
            .fault
            .as_ref()
            .is_some_and(|f| matches!(f.misbehaviour, Some(Misbehaviour::Equivocate)));
        let blocks = registered[BLOCKS_INDEX].0.clone();
        registered
            .into_iter()
            .enumerate()
            .map(|(index, (sender, receiver))| {
                if !equivocates || index != VOTES_INDEX {
                    return (Tap::plain(sender), receiver);
                }
                let validators: Vec<PublicKey> = self.peers();
                let plan = EquivocationPlan {
                    scheme: commonware_consensus::simplex::scheme::ed25519::Scheme::signer(
                        node::CONSENSUS_NAMESPACE,
                        self.genesis.validators.clone(),
                        config.key.clone(),
                    )
                    .expect("the equivocator is a validator"),
                    me: config.key.public_key(),
                    // The next validator gets the second proposal; the others the first.
                    victim: validators[(i + 1) % validators.len()].clone(),
                    validators,
                    blocks: commonware_utils::sync::Mutex::new(blocks.clone()),
                    log: self.log.clone(),
                };
                (Tap::equivocating(sender, plan), receiver)
            })
            .collect()
    }

    fn peers(&self) -> Vec<PublicKey> {
        self.keys
            .validators
            .iter()
            .map(|k| k.public_key())
            .collect()
    }

    /// Crash validator `i`: every task it runs is aborted; its storage stays.
    pub async fn crash(&mut self, i: usize) {
        if let Some(running) = self.nodes[i].take() {
            running.handle.abort();
            let _ = running.handle.await;
        }
    }

    pub fn ledger(&self, i: usize) -> Option<&Ledger> {
        self.nodes[i].as_ref().map(|r| &r.ledger)
    }

    /// Running validators.
    pub fn live(&self) -> impl Iterator<Item = (usize, &Ledger)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|r| (i, &r.ledger)))
    }

    /// Cut the link from `from` to `to` only: `to` stops hearing `from`, `from` still hears `to`.
    pub async fn cut(&mut self, from: usize, to: usize) {
        let peers = self.peers();
        let _ = self
            .oracle
            .remove_link(peers[from].clone(), peers[to].clone())
            .await;
    }

    /// Cut every link between `group` and the rest.
    pub async fn partition(&mut self, group: &[usize]) {
        let peers = self.peers();
        for (i, a) in peers.iter().enumerate() {
            for (j, b) in peers.iter().enumerate() {
                if group.contains(&i) != group.contains(&j) {
                    let _ = self.oracle.remove_link(a.clone(), b.clone()).await;
                }
            }
        }
    }

    /// Restore every link.
    pub async fn heal(&mut self) {
        let peers = self.peers();
        for a in &peers {
            for b in &peers {
                if a != b {
                    let _ = self
                        .oracle
                        .add_link(a.clone(), b.clone(), self.config.link.clone())
                        .await;
                }
            }
        }
    }
}
