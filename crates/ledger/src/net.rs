//! One validator over real sockets: `commonware-p2p` authenticated *lookup* networking (a fixed
//! peer set with known addresses, as suits a consortium), encrypted and mutually authenticated
//! by the validators' Ed25519 keys.
//!
//! Used by the in-process tokio cluster ([`crate::local`]) and by `vigil node`. Generic over the
//! runtime: production is `commonware_runtime::tokio`.

use std::net::SocketAddr;
use std::time::Duration;

use commonware_cryptography::{ChaCha20Poly1305, Signer as _, ed25519::PublicKey};
use commonware_p2p::{Address, AddressableManager as _, authenticated::lookup};
use commonware_runtime::{Clock, Handle, Metrics, Network, Quota, Resolver, Spawner, Storage};
use commonware_stream::{
    cups::{self, Cups},
    sake::{self, Sake},
};
use commonware_utils::{NZU32, NZUsize, ordered::Map};
use rand_core::CryptoRng;

use crate::node::{self, Channels, Ledger, MESSAGE_BYTES_MAX, ValidatorConfig, channel};

/// Namespace of the p2p handshake (distinct from the consensus and transaction namespaces).
pub const P2P_NAMESPACE: &[u8] = b"_VIGIL_LEDGER_P2P_V1";
/// Internal mailbox of the p2p actors.
const P2P_MAILBOX: usize = 4096;

/// Per-peer message rates. Bounded so the network's per-channel mailboxes (sized from the
/// burst) stay small; far above what the protocol needs on each channel.
const VOTES_QUOTA: Quota = Quota::per_second(NZU32!(2_000));
const CERTIFICATES_QUOTA: Quota = Quota::per_second(NZU32!(2_000));
const RESOLVER_QUOTA: Quota = Quota::per_second(NZU32!(1_000));
const BACKFILL_QUOTA: Quota = Quota::per_second(NZU32!(1_000));
const BLOCKS_QUOTA: Quota = Quota::per_second(NZU32!(256));
const TXS_QUOTA: Quota = Quota::per_second(NZU32!(256));

/// A validator's network identity and address.
#[derive(Clone, Debug)]
pub struct PeerAddress {
    pub key: PublicKey,
    pub address: SocketAddr,
}

/// Where one validator listens and who its peers are (every validator, itself included).
#[derive(Clone, Debug)]
pub struct NetConfig {
    pub listen: SocketAddr,
    pub peers: Vec<PeerAddress>,
}

/// A validator running over authenticated p2p.
pub struct NetworkedValidator {
    pub ledger: Ledger,
    /// The p2p network's root task.
    pub network: Handle<()>,
}

/// Start one validator over authenticated lookup p2p.
///
/// # Panics
/// If the validator's key is not in the genesis validator set, or `net.peers` is empty.
pub async fn start<E>(context: E, config: ValidatorConfig, net: NetConfig) -> NetworkedValidator
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics + Network + Resolver,
{
    assert!(!net.peers.is_empty(), "a validator needs a peer set");
    let signer = config.key.clone();
    let handshake = Cups::<_, ChaCha20Poly1305>::new(
        Sake {
            signer,
            synchrony_bound: Duration::from_secs(5),
            max_handshake_age: Duration::from_secs(10),
            version: sake::Version::V1,
        },
        cups::Version::V1,
    );
    let mut p2p = lookup::Config::local(
        handshake,
        P2P_NAMESPACE,
        net.listen,
        NZUsize!(net.peers.len().max(1)),
        MESSAGE_BYTES_MAX,
        NZUsize!(P2P_MAILBOX),
    );
    p2p.dial_frequency = Duration::from_millis(200);
    p2p.peer_connection_cooldown = Duration::from_millis(250);
    p2p.tracked_peer_sets = NZUsize!(1);
    let (mut network, mut oracle) = lookup::Network::new(context.child("p2p"), p2p);
    let peers: Map<PublicKey, Address> = net
        .peers
        .iter()
        .map(|p| (p.key.clone(), Address::Symmetric(p.address)))
        .collect::<Vec<_>>()
        .try_into()
        .expect("distinct validator keys");
    let _ = oracle.track(0, peers);
    let channels = Channels {
        votes: network.register(channel::VOTES, VOTES_QUOTA),
        certificates: network.register(channel::CERTIFICATES, CERTIFICATES_QUOTA),
        resolver: network.register(channel::RESOLVER, RESOLVER_QUOTA),
        backfill: network.register(channel::BACKFILL, BACKFILL_QUOTA),
        blocks: network.register(channel::BLOCKS, BLOCKS_QUOTA),
        txs: network.register(channel::TXS, TXS_QUOTA),
    };
    let network = network.start();
    let me = config.key.public_key();
    tracing::info!(%me, listen = %net.listen, peers = net.peers.len(), "p2p started");
    let ledger = node::start(
        context.child("validator"),
        config,
        channels,
        oracle.clone(),
        oracle,
    )
    .await;
    NetworkedValidator { ledger, network }
}
