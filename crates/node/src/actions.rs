//! Operators' actions followed until the ledger settles them: every action the API answered
//! 202 is either seen finalized or reported failed, with the mempool's reason, to the staff
//! member who asked (`GET /api/actions`), so nothing is lost silently after a 202.
//!
//! "Not pending any more" is not "failed": the ledger publishes a block's snapshot before its
//! transactions leave the mempool, and this node applies the block a moment later. A missing
//! action is judged failed only once the node has applied every block up to the height the
//! ledger had when the action was first found missing.

use std::num::NonZeroUsize;

use lru::LruCache;
use serde::Serialize;
use vigil_core::TimestampMs;
use vigil_ledger::tx::{Tx, TxId};

/// Actions remembered (pending and settled); beyond this the oldest settled ones go first.
const ACTIONS_MAX: NonZeroUsize = NonZeroUsize::new(10_000).expect("not zero");
/// Actions one caller is shown at most, newest first.
pub const ACTIONS_LISTED_MAX: usize = 100;

/// Where an action stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum ActionState {
    Pending,
    Finalized { height: u64 },
    Failed { reason: String },
}

/// One action as its author sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionStatus {
    pub tx: String,
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    pub submitted_ms: TimestampMs,
    #[serde(flatten)]
    pub state: ActionState,
}

struct Tracked {
    who: String,
    tx: Tx,
    status: ActionStatus,
    /// The ledger's finalized height when the action was first found missing from the
    /// mempool without having been seen finalized.
    missing_since: Option<u64>,
}

pub(crate) struct Actions {
    tracked: LruCache<TxId, Tracked>,
}

impl Default for Actions {
    fn default() -> Self {
        Actions {
            tracked: LruCache::new(ACTIONS_MAX),
        }
    }
}

impl Actions {
    pub(crate) fn track(
        &mut self,
        who: &str,
        action: &'static str,
        alert: Option<String>,
        tx: Tx,
        now_ms: TimestampMs,
    ) {
        let status = ActionStatus {
            tx: hex::encode(tx.id().0),
            action,
            alert,
            submitted_ms: now_ms,
            state: ActionState::Pending,
        };
        self.tracked.put(
            tx.id(),
            Tracked {
                who: who.to_owned(),
                tx,
                status,
                missing_since: None,
            },
        );
    }

    /// A finalized block: settles the actions among its transactions. Nothing is looked up
    /// while no action is followed (the usual case on a busy chain).
    pub(crate) fn finalized_block(&mut self, txs: &[Tx], height: u64) {
        if self.tracked.is_empty() {
            return;
        }
        for tx in txs {
            if let Some(tracked) = self.tracked.peek_mut(&tx.id()) {
                tracked.status.state = ActionState::Finalized { height };
            }
        }
    }

    /// The pending actions to look at: their transactions, and whether each is already known
    /// missing (and since which ledger height).
    pub(crate) fn pending(&mut self) -> Vec<(TxId, Tx, Option<u64>)> {
        self.tracked
            .iter()
            .filter(|(_, t)| t.status.state == ActionState::Pending)
            .map(|(id, t)| (*id, t.tx.clone(), t.missing_since))
            .collect()
    }

    pub(crate) fn missing(&mut self, id: &TxId, since: u64) {
        if let Some(tracked) = self.tracked.peek_mut(id) {
            tracked.missing_since.get_or_insert(since);
        }
    }

    pub(crate) fn failed(&mut self, id: &TxId, reason: String) {
        if let Some(tracked) = self.tracked.peek_mut(id)
            && tracked.status.state == ActionState::Pending
        {
            tracked.status.state = ActionState::Failed { reason };
        }
    }

    /// `who`'s actions, newest first, at most [`ACTIONS_LISTED_MAX`].
    pub(crate) fn of(&mut self, who: &str) -> Vec<ActionStatus> {
        let mut mine: Vec<ActionStatus> = self
            .tracked
            .iter()
            .filter(|(_, t)| t.who == who)
            .map(|(_, t)| t.status.clone())
            .collect();
        mine.sort_by_key(|s| std::cmp::Reverse(s.submitted_ms));
        mine.truncate(ACTIONS_LISTED_MAX);
        mine
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::{Signer as _, ed25519::PrivateKey};
    use vigil_ledger::tx::TxBody;

    fn tx(nonce: u64) -> Tx {
        Tx::sign(
            &PrivateKey::from_seed(1),
            &[0; 32],
            nonce,
            TxBody::Acknowledge {
                alert: TxId([nonce as u8; 32]),
            },
        )
    }

    #[test]
    fn each_action_is_settled_once_and_shown_to_its_author_only() {
        let mut actions = Actions::default();
        let (first, second) = (tx(1), tx(2));
        actions.track("ana", "acknowledge", None, first.clone(), 10);
        actions.track("ana", "resolve", None, second.clone(), 20);
        actions.track("ben", "acknowledge", None, tx(3), 30);
        assert_eq!(actions.pending().len(), 3);
        actions.finalized_block(std::slice::from_ref(&first), 7);
        actions.failed(&second.id(), "alert is resolved".into());
        // A failure reported later does not undo a finalization.
        actions.failed(&first.id(), "late".into());
        let ana = actions.of("ana");
        assert_eq!(ana.len(), 2);
        assert_eq!(ana[0].action, "resolve");
        assert_eq!(
            ana[0].state,
            ActionState::Failed {
                reason: "alert is resolved".into()
            }
        );
        assert_eq!(ana[1].state, ActionState::Finalized { height: 7 });
        assert_eq!(actions.of("ben").len(), 1);
        assert_eq!(actions.pending().len(), 1);
    }
}
