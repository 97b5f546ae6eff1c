//! Test-only instrumentation of validators (compiled under `cfg(test)` only): a proposer that
//! breaks the rules, the [`ProposerLog`] every validator of a simulated cluster writes its
//! proposals and verdicts to, and [`Tap`], the vote sender through which an equivocating
//! leader sends one proposal to one peer and another to the rest.
//!
//! The log is what lets a Byzantine test fail when its subject did not happen: a faulty
//! validator that never led a view, or whose blocks no honest validator judged, leaves no
//! entry, and the test asserts on the entries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use commonware_actor::{Feedback, Unreliable};
use commonware_codec::{Decode as _, Encode as _};
use commonware_consensus::simplex::{
    scheme::ed25519::Scheme,
    types::{Notarize, Proposal, Vote},
};
use commonware_cryptography::{ed25519::PublicKey, sha256::Digest};
use commonware_p2p::{CheckedSender, LimitedSender, Recipients, Sender};
use commonware_runtime::{IoBuf, IoBufs};
use commonware_utils::sync::Mutex;

use crate::block::Block;
use crate::tx::Tx;

/// How a faulty proposer breaks the rules when it leads.
#[derive(Clone, Debug)]
pub enum Misbehaviour {
    /// Append this transaction to every block without applying it (the state root then
    /// ignores it): honest validators must refuse the block.
    InjectTx(Box<Tx>),
    /// Propose the honest block with one bit of its state root flipped.
    WrongStateRoot,
    /// Build a second valid block for the same view (one millisecond later, so another
    /// digest) and, through [`Tap`], send its proposal to one peer and the first to the rest.
    Equivocate,
    /// Propose the honest block stamped this far ahead of the proposer's clock (a clock set
    /// forward, to make readings from the future look recent or escalations come due early):
    /// honest validators must refuse it beyond [`crate::app::BLOCK_AHEAD_MAX_MS`].
    TimeAhead(u64),
}

/// A validator's instrumentation: its index in the cluster, the shared log, and the rule it
/// breaks when it leads (`None` for an honest validator, which only writes the log).
#[derive(Clone, Debug)]
pub struct ProposerFault {
    pub validator: usize,
    pub log: ProposerLog,
    pub misbehaviour: Option<Misbehaviour>,
}

/// A block a validator proposed while leading `view`.
#[derive(Clone, Debug)]
pub struct Proposed {
    pub validator: usize,
    pub view: u64,
    pub height: u64,
    pub digest: Digest,
}

/// A validator's judgement of a block proposed by `leader` in `view`.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub validator: usize,
    pub leader: PublicKey,
    pub view: u64,
    pub digest: Digest,
    /// Why the block was refused; `None` if it was accepted.
    pub refused: Option<String>,
}

/// One equivocation that left the faulty leader: `first` to every peer but `victim`,
/// `second` to `victim`, both signed for `view`.
#[derive(Clone, Debug)]
pub struct Equivocation {
    pub view: u64,
    pub first: Digest,
    pub second: Digest,
    pub victim: PublicKey,
}

#[derive(Default, Debug)]
struct Entries {
    proposed: Vec<Proposed>,
    verdicts: Vec<Verdict>,
    /// Second blocks built by an equivocating proposer, by the digest of the first.
    alternatives: HashMap<Digest, Block>,
    equivocations: Vec<Equivocation>,
}

/// What every validator of a cluster proposed and judged (shared by all of them).
#[derive(Clone, Default, Debug)]
pub struct ProposerLog(Arc<Mutex<Entries>>);

impl ProposerLog {
    pub(crate) fn proposed(&self, entry: Proposed) {
        self.0.lock().proposed.push(entry);
    }

    pub(crate) fn judged(&self, verdict: Verdict) {
        self.0.lock().verdicts.push(verdict);
    }

    pub(crate) fn alternative(&self, first: Digest, second: Block) {
        self.0.lock().alternatives.insert(first, second);
    }

    fn take_alternative(&self, first: &Digest) -> Option<Block> {
        self.0.lock().alternatives.remove(first)
    }

    fn equivocated(&self, equivocation: Equivocation) {
        self.0.lock().equivocations.push(equivocation);
    }

    /// Blocks proposed by `validator`.
    pub fn proposals_by(&self, validator: usize) -> Vec<Proposed> {
        let entries = self.0.lock();
        entries
            .proposed
            .iter()
            .filter(|p| p.validator == validator)
            .cloned()
            .collect()
    }

    /// Judgements of blocks led by `leader`.
    pub fn verdicts_on(&self, leader: &PublicKey) -> Vec<Verdict> {
        let entries = self.0.lock();
        entries
            .verdicts
            .iter()
            .filter(|v| &v.leader == leader)
            .cloned()
            .collect()
    }

    pub fn equivocations(&self) -> Vec<Equivocation> {
        self.0.lock().equivocations.clone()
    }

    /// The highest view any validator proposed in or judged.
    pub fn max_view(&self) -> u64 {
        let entries = self.0.lock();
        let proposed = entries.proposed.iter().map(|p| p.view);
        let judged = entries.verdicts.iter().map(|v| v.view);
        proposed.chain(judged).max().unwrap_or(0)
    }
}

/// What an equivocating leader's vote sender needs: its signing scheme, every validator,
/// the peer that gets the second proposal, and a sender on the block channel to give that
/// peer the second block.
pub struct EquivocationPlan<S> {
    pub scheme: Scheme,
    pub me: PublicKey,
    pub validators: Vec<PublicKey>,
    pub victim: PublicKey,
    pub blocks: Mutex<S>,
    pub log: ProposerLog,
}

/// A sender that passes everything through, except, when it carries an [`EquivocationPlan`],
/// the leader's own notarize vote for a block that has a second version: that vote goes to
/// every peer but the victim, and the victim gets the second block and a notarize vote for it.
pub struct Tap<S> {
    inner: S,
    plan: Option<Arc<EquivocationPlan<S>>>,
}

impl<S: Clone> Clone for Tap<S> {
    fn clone(&self) -> Self {
        Tap {
            inner: self.inner.clone(),
            plan: self.plan.clone(),
        }
    }
}

impl<S> Tap<S> {
    pub fn plain(inner: S) -> Tap<S> {
        Tap { inner, plan: None }
    }

    pub fn equivocating(inner: S, plan: EquivocationPlan<S>) -> Tap<S> {
        Tap {
            inner,
            plan: Some(Arc::new(plan)),
        }
    }
}

impl<S: Sender<PublicKey = PublicKey>> Tap<S> {
    /// Send `message`, splitting it if it is the notarize vote of a block with a second
    /// version. Returns the peers it was sent to.
    fn send_tapped(
        &mut self,
        recipients: Recipients<PublicKey>,
        message: IoBuf,
        priority: bool,
    ) -> Vec<PublicKey> {
        let Some(plan) = self.plan.clone() else {
            return self.inner.send(recipients, message, priority);
        };
        let split = match Vote::<Scheme, Digest>::decode_cfg(message.clone(), &()) {
            Ok(Vote::Notarize(notarize)) => plan
                .log
                .take_alternative(&notarize.proposal.payload)
                .map(|second| (notarize.proposal, second)),
            _ => None,
        };
        let Some((first, second)) = split else {
            return self.inner.send(recipients, message, priority);
        };
        let rest: Vec<PublicKey> = plan
            .validators
            .iter()
            .filter(|k| **k != plan.me && **k != plan.victim)
            .cloned()
            .collect();
        let mut sent = self.inner.send(Recipients::Some(rest), message, priority);
        let victim = Recipients::One(plan.victim.clone());
        plan.blocks
            .lock()
            .send(victim.clone(), second.encode(), true);
        let proposal = Proposal::new(first.round, first.parent, second.digest());
        let vote = Notarize::<Scheme, Digest>::sign(&plan.scheme, proposal)
            .expect("the equivocator is a signer");
        sent.extend(
            self.inner
                .send(victim, Vote::Notarize(vote).encode(), priority),
        );
        plan.log.equivocated(Equivocation {
            view: first.round.view().get(),
            first: first.payload,
            second: second.digest(),
            victim: plan.victim.clone(),
        });
        sent
    }
}

impl<S: Sender<PublicKey = PublicKey>> LimitedSender for Tap<S> {
    type PublicKey = PublicKey;
    type Checked<'a>
        = TapChecked<'a, S>
    where
        Self: 'a;

    fn check(
        &mut self,
        recipients: Recipients<PublicKey>,
    ) -> Result<Self::Checked<'_>, SystemTime> {
        if self.plan.is_none() {
            return Ok(TapChecked::Plain(self.inner.check(recipients)?));
        }
        // The split is decided by the message, which `check` does not see yet.
        Ok(TapChecked::Tapped {
            tap: self,
            recipients: Box::new(recipients),
        })
    }
}

/// [`Tap`]'s checked sender.
pub enum TapChecked<'a, S: Sender + 'a> {
    Plain(S::Checked<'a>),
    Tapped {
        tap: &'a mut Tap<S>,
        recipients: Box<Recipients<PublicKey>>,
    },
}

impl<'a, S: Sender<PublicKey = PublicKey> + 'a> CheckedSender for TapChecked<'a, S> {
    type PublicKey = PublicKey;

    fn recipients(&self) -> Vec<PublicKey> {
        match self {
            TapChecked::Plain(checked) => checked.recipients(),
            TapChecked::Tapped { recipients, tap } => match &**recipients {
                Recipients::All => tap.plan.as_ref().map_or_else(Vec::new, |plan| {
                    let me = &plan.me;
                    plan.validators
                        .iter()
                        .filter(|k| *k != me)
                        .cloned()
                        .collect()
                }),
                Recipients::Some(keys) => keys.clone(),
                Recipients::One(key) => vec![key.clone()],
            },
        }
    }

    fn send(self, message: impl Into<IoBufs> + Send, priority: bool) -> Unreliable<Feedback> {
        match self {
            TapChecked::Plain(checked) => checked.send(message, priority),
            TapChecked::Tapped { tap, recipients } => {
                let sent = tap.send_tapped(*recipients, message.into().coalesce(), priority);
                if sent.is_empty() {
                    Unreliable::Rejected
                } else {
                    Unreliable::new(Feedback::Ok)
                }
            }
        }
    }
}
