//! The finalized view: after each finalized block the ledger publishes one immutable
//! [`Finalized`] snapshot (the block and the state after it, with its indexes) on a
//! latest-value channel. Readers never take the consensus lock and can never be
//! disconnected: a slow reader simply sees a later snapshot. A reader that must see every
//! block ([`Follower`]) fetches the heights it skipped from the finalized block store.

use std::ops::Deref;
use std::sync::Arc;

use commonware_consensus::marshal::{Identifier, core::Mailbox, standard::Standard};
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_consensus::types::Height;
use tokio::sync::watch;
use tracing::warn;

use crate::block::Block;
use crate::state::State;

/// The validator's finalized block store (marshal's archive, behind its mailbox).
pub(crate) type BlockStore = Mailbox<Scheme, Standard<Block>>;

/// The finalized block at `height`, from the store.
pub(crate) async fn stored_block(store: &BlockStore, height: u64) -> Option<Arc<Block>> {
    store
        .get_block(Identifier::Height(Height::new(height)))
        .await
        .map(|b| b.inner_shared())
}

/// One finalized height: its block and the state after it. Derefs to [`State`], whose lookups
/// (by key or through an index) are the read API of the finalized state.
#[derive(Clone, Debug)]
pub struct Finalized {
    block: Arc<Block>,
    state: State,
}

impl Finalized {
    pub(crate) fn new(block: Arc<Block>, state: State) -> Finalized {
        Finalized { block, state }
    }

    /// The block this snapshot is the state after (the genesis block at height 0).
    pub fn block(&self) -> &Arc<Block> {
        &self.block
    }

    pub fn state(&self) -> &State {
        &self.state
    }
}

impl Deref for Finalized {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}

/// The receiving side of the finalized view: always holds the latest snapshot.
pub type Snapshots = watch::Receiver<Arc<Finalized>>;

/// The publishing side, owned by the validator's chain.
pub(crate) struct Publisher {
    sender: watch::Sender<Arc<Finalized>>,
}

impl Publisher {
    pub(crate) fn new(genesis: Finalized) -> Publisher {
        Publisher {
            sender: watch::Sender::new(Arc::new(genesis)),
        }
    }

    /// Replaces the latest snapshot; never waits for, nor drops, any reader.
    pub(crate) fn publish(&self, snapshot: Finalized) {
        self.sender.send_replace(Arc::new(snapshot));
    }

    pub(crate) fn subscribe(&self) -> Snapshots {
        self.sender.subscribe()
    }
}

/// One block delivered to a [`Follower`], with the latest snapshot when it was delivered (at
/// the block's height or later: a follower that fell behind reads older blocks against the
/// newest state).
#[derive(Clone, Debug)]
pub struct Followed {
    pub block: Arc<Block>,
    pub latest: Arc<Finalized>,
}

/// Every finalized block from a height on, in order, however slowly it is read: blocks the
/// latest-value channel skipped are fetched from the validator's finalized block store.
pub struct Follower {
    store: BlockStore,
    snapshots: Snapshots,
    next: u64,
}

impl Follower {
    pub(crate) fn new(store: BlockStore, snapshots: Snapshots, next: u64) -> Follower {
        Follower {
            store,
            snapshots,
            next: next.max(1),
        }
    }

    /// The height [`Follower::next`] delivers next.
    pub fn next_height(&self) -> u64 {
        self.next
    }

    /// The next finalized block. Waits for it if it is not finalized yet; `None` only once the
    /// validator's chain is gone (its tasks and every `Ledger` handle dropped).
    pub async fn next(&mut self) -> Option<Followed> {
        loop {
            let latest = self.snapshots.borrow_and_update().clone();
            if latest.height() >= self.next {
                let block = if latest.height() == self.next {
                    Some(latest.block().clone())
                } else {
                    stored_block(&self.store, self.next).await
                };
                match block {
                    Some(block) if block.height() == self.next => {
                        self.next += 1;
                        return Some(Followed { block, latest });
                    }
                    // Applied but not readable from storage: a storage fault. Retry when the
                    // next block lands rather than skip a block.
                    _ => warn!(height = self.next, "finalized block missing from storage"),
                }
            }
            self.snapshots.changed().await.ok()?;
        }
    }
}
