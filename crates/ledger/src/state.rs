//! The state machine: deterministic application of transactions, roles and lifecycles.
//!
//! [`State`] is the finalized state. Blocks that are proposed or verified but not yet final are
//! executed into a [`Layer`] (the writes of one block) on top of the finalized state and the
//! layers of their unfinalized ancestors, so a fork costs only its own writes and nothing is
//! cloned. Finalizing a block merges its layer into [`State`].
//!
//! # State commitment
//!
//! Every block header carries `state_root`, chained over the writes each block makes:
//!
//! ```text
//! root(genesis) = H("vigil/ledger/state-genesis/v1", canonical genesis state)
//! root(h)       = H("vigil/ledger/state/v1", root(h-1), h, H(writes of block h, in order))
//! ```
//!
//! A write is `(table tag, canonical key, canonical value)`. Since the state after block `h` is a
//! function of the genesis state and the write sequences, equal roots mean equal states (under
//! SHA-256 collision resistance), and an implementation that diverges by one write is caught at
//! the next block. The root costs O(writes) per block, not O(state). It does not give
//! per-entry proofs of current state; inclusion proofs are per transaction (see
//! [`crate::block`]).

mod index;
mod query_spec;

#[cfg(test)]
pub(crate) use query_spec::spec_with_cohort;
pub use query_spec::{COHORT_MAX, COHORT_MIN, PSEUDONYM_BYTES_MAX, QuerySpecError, query_cohort};

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use commonware_cryptography::ed25519::PublicKey;
use index::Indexes;
use sha2::{Digest as _, Sha256};
use vigil_core::{AlertLevel, DeviceId, PersonId};

use crate::tx::{
    AlertId, Deployment, Hash, InstanceId, OrderKind, QueryId, Role, RoleSet, Tx, TxBody, TxKind,
};

/// Monitor kinds compiled into every node (`vigil_contracts::Kind` names). A deployment of any
/// other kind is rejected; the parameters are then checked by [`Deployment::contract_params`].
pub const CONTRACT_KINDS: &[&str] = &[
    vigil_contracts::Kind::Threshold.name(),
    vigil_contracts::Kind::News2.name(),
    vigil_contracts::Kind::Geofence.name(),
    vigil_contracts::Kind::NoSignal.name(),
    vigil_contracts::Kind::HeartRhythm.name(),
];
/// Orders recorded on one alert at most.
pub const ORDERS_PER_ALERT_MAX: usize = 32;

/// Why a transaction was rejected. Every rule of the state machine has its variant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    #[error("nonce {nonce} already used")]
    NonceUsed { nonce: u64 },
    #[error("nonce {nonce} expired: below the signer's floor {floor}")]
    NonceExpired { nonce: u64, floor: u64 },
    #[error("nonce {nonce} is out of range")]
    NonceOutOfRange { nonce: u64 },
    #[error("signer may not submit {kind:?}: needs one of {needed:?}")]
    Unauthorized {
        kind: TxKind,
        needed: &'static [Role],
    },
    #[error("identity already holds role {0:?}")]
    RoleAlreadyHeld(Role),
    #[error("identity does not hold role {0:?}")]
    RoleNotHeld(Role),
    #[error("the last admin cannot lose the admin role")]
    LastAdmin,
    #[error("person is already registered")]
    PersonExists,
    #[error("unknown person")]
    UnknownPerson,
    #[error("device id is already enrolled (or was, and was revoked)")]
    DeviceExists,
    #[error("unknown device")]
    UnknownDevice,
    #[error("device is revoked")]
    DeviceRevoked,
    #[error("device public key is not a valid Ed25519 point")]
    InvalidDeviceKey,
    #[error("device is enrolled for another person")]
    DevicePersonMismatch,
    #[error("unknown contract kind {0:?}")]
    UnknownContractKind(String),
    #[error("contract parameters: {0}")]
    ContractParams(crate::tx::ParamsError),
    #[error("contract instance already exists")]
    InstanceExists,
    #[error("unknown contract instance")]
    UnknownInstance,
    #[error("contract instance is terminated")]
    InstanceTerminated,
    #[error("a replacement must watch the same person")]
    ReplaceAcrossPersons,
    #[error("level 0 (ok) is not an alert")]
    AlertLevelOk,
    #[error(
        "the alert does not follow the instance's latest (reading time {last_ms} ms, same or higher level): a replay or a late copy"
    )]
    AlertNotNewer { last_ms: i64 },
    #[error("unknown alert")]
    UnknownAlert,
    #[error("alert is resolved")]
    AlertResolved,
    #[error("alert is not open (already acknowledged)")]
    AlertNotOpen,
    #[error("alert already carries {ORDERS_PER_ALERT_MAX} orders")]
    TooManyOrders,
    #[error("an EHR anchor covers at least one entry")]
    EmptyAnchor,
    #[error("anchor time range is reversed")]
    AnchorTimeRange,
    #[error("this gateway's next anchor must start at record {expected}, not {got}")]
    AnchorOutOfOrder { expected: u64, got: u64 },
    #[error("a statistics query needs a non-empty specification")]
    EmptyQuery,
    #[error("statistics query: {0}")]
    QuerySpec(QuerySpecError),
    #[error("unknown statistics query")]
    UnknownQuery,
    #[error("this verifying node already gave a verdict on the query")]
    DuplicateVerdict,
    #[error("the verdict's all_valid ({all_valid}) contradicts its bitmap")]
    VerdictSummaryMismatch { all_valid: bool },
    #[error("this verifying node was not assigned the query (it became one after the query)")]
    VerifierNotAssigned,
    #[error("a statistics key needs non-empty bytes")]
    EmptyStatsKey,
    #[error("this statistics key is already published")]
    StatsKeyExists,
    #[error("{0}")]
    EscalationPolicy(crate::tx::PolicyError),
    #[error("no escalation policy is in force")]
    NoEscalationPolicy,
    #[error("escalation step {step} is due at block time {due_ms} ms, the block is at {now_ms} ms")]
    EscalationNotDue { step: u8, due_ms: i64, now_ms: i64 },
    #[error("the alert's next escalation step is {expected}, not {got}")]
    EscalationOutOfOrder { expected: u8, got: u8 },
    #[error("the policy allows {steps_max} escalation steps")]
    EscalationExhausted { steps_max: u8 },
}

/// Lifecycle of an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum AlertStatus {
    Open = 0,
    Acknowledged = 1,
    Resolved = 2,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 3] = [
        AlertStatus::Open,
        AlertStatus::Acknowledged,
        AlertStatus::Resolved,
    ];

    /// The status's name in the API and the live stream; [`std::str::FromStr`] reads it back.
    pub const fn name(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
        }
    }
}

vigil_core::named_enum!(AlertStatus by name, error crate::tx::UnknownName = |text| {
    crate::tx::UnknownName::new("alert status", text)
});

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonRecord {
    pub registered_height: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    pub person: PersonId,
    pub public_key: [u8; 32],
    pub active: bool,
}

/// The latest alert an instance raised: a later alert must follow it in (reading time, level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastAlert {
    pub reading_time_ms: i64,
    pub level: AlertLevel,
}

impl Canon for LastAlert {
    fn canon(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.reading_time_ms.to_be_bytes());
        out.push(self.level.code());
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceRecord {
    pub deployment: Deployment,
    pub active: bool,
    pub deployed_height: u64,
    pub replaced_by: Option<InstanceId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRecord {
    pub kind: OrderKind,
    pub note: Option<Hash>,
    pub by: PublicKey,
    pub height: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertRecord {
    pub instance: InstanceId,
    pub person: PersonId,
    pub level: AlertLevel,
    pub reading_time_ms: i64,
    pub evidence: Hash,
    pub raised_by: PublicKey,
    pub raised_height: u64,
    /// The time of the block that finalized the alert (its proposer's clock, certified by
    /// consensus): escalation is timed from here.
    pub raised_ms: i64,
    /// Escalation steps taken so far ([`crate::tx::TxBody::Escalate`]).
    pub escalations: u8,
    pub status: AlertStatus,
    pub orders: Vec<OrderRecord>,
    pub resolution_note: Option<Hash>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnchorRecord {
    /// The first health record covered; the signer's anchors cover consecutive records.
    pub first_seq: u64,
    pub root: Hash,
    pub count: u32,
    pub from_ms: i64,
    pub to_ms: i64,
    pub by: PublicKey,
    pub height: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRecord {
    pub who: PublicKey,
    pub person: PersonId,
    pub record: Hash,
    pub height: u64,
}

/// One listing's read of alert reasons ([`crate::tx::TxBody::ReasonsAccess`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReasonsAccessRecord {
    pub who: PublicKey,
    pub alerts: u32,
    pub record: Hash,
    pub height: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryRecord {
    pub querier: PublicKey,
    pub spec_digest: Hash,
    /// The specification itself (at most [`crate::tx::QUERY_SPEC_BYTES_MAX`] bytes), so that
    /// verifying nodes and auditors read the query from the ledger.
    pub spec: Bytes,
    pub height: u64,
    pub verdicts: u32,
    pub valid_verdicts: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictRecord {
    pub all_valid: bool,
    /// One bit per check, as submitted (at most [`crate::tx::VERDICT_BITMAP_BYTES_MAX`]).
    pub bitmap: Bytes,
    /// Digest of the evidence the verdict vouches for.
    pub evidence: Hash,
    pub height: u64,
}

/// A published collective statistics key, addressed by the digest of its bytes
/// ([`stats_key_id`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsKeyRecord {
    pub key: Bytes,
    pub by: PublicKey,
    pub height: u64,
}

/// Address of a published statistics key: the digest of its bytes.
pub fn stats_key_id(key: &[u8]) -> Hash {
    vigil_core::digest("vigil/ledger/stats-key/v1", &[key])
}

macro_rules! tables {
    ($( $field:ident / $put:ident : $key:ty => $value:ty = $tag:literal ),* $(,)?) => {
        /// One set of tables: the whole finalized state, or the writes of one block.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Tables {
            $( pub $field: BTreeMap<$key, $value>, )*
        }

        /// The whole finalized state, in persistent maps: cloning it (for each published
        /// [`crate::finalized::Finalized`] snapshot) shares every node, and merging a block
        /// copies only the paths to the entries it writes.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub(crate) struct StateTables {
            $( pub(crate) $field: imbl::OrdMap<$key, $value>, )*
        }

        impl StateTables {
            fn merge_from(&mut self, other: &Tables) {
                $( for (k, v) in &other.$field { self.$field.insert(k.clone(), v.clone()); } )*
            }

            fn from_tables(tables: Tables) -> StateTables {
                StateTables { $( $field: tables.$field.into_iter().collect(), )* }
            }

            fn write_canonical(&self, out: &mut Vec<u8>) {
                $(
                    for (k, v) in &self.$field {
                        out.push($tag);
                        k.canon(out);
                        v.canon(out);
                    }
                )*
            }
        }

        impl Tables {

            /// Number of entries over all tables.
            pub fn len(&self) -> usize {
                0 $( + self.$field.len() )*
            }

            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            fn write_canonical(&self, out: &mut Vec<u8>) {
                $(
                    for (k, v) in &self.$field {
                        out.push($tag);
                        k.canon(out);
                        v.canon(out);
                    }
                )*
            }
        }

        /// Reads through the layers (newest first), then the finalized state.
        impl<'a> View<'a> {
            $(
                pub fn $field(&self, key: &$key) -> Option<&$value> {
                    if let Some(v) = self.current.tables.$field.get(key) {
                        return Some(v);
                    }
                    for layer in self.below.iter().rev() {
                        if let Some(v) = layer.tables.$field.get(key) {
                            return Some(v);
                        }
                    }
                    self.base.tables.$field.get(key)
                }
            )*
        }

        /// Writes go to the current layer and into the write-set digest.
        impl<'a> View<'a> {
            $(
                fn $put(&mut self) -> PutHandle<'_, $key, $value> {
                    PutHandle { map: &mut self.current.tables.$field, writes: &mut self.writes, tag: $tag }
                }
            )*
        }
    };
}

struct PutHandle<'a, K, V> {
    map: &'a mut BTreeMap<K, V>,
    writes: &'a mut Sha256,
    tag: u8,
}

impl<K: Ord + Canon, V: Canon> PutHandle<'_, K, V> {
    fn put(self, key: K, value: V) {
        let mut buf = Vec::with_capacity(128);
        buf.push(self.tag);
        key.canon(&mut buf);
        value.canon(&mut buf);
        self.writes.update((buf.len() as u32).to_be_bytes());
        self.writes.update(&buf);
        self.map.insert(key, value);
    }
}

/// Which byte string a value contributes to the state commitment.
trait Canon {
    fn canon(&self, out: &mut Vec<u8>);
}

impl Canon for PublicKey {
    fn canon(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_ref());
    }
}
impl Canon for u64 {
    fn canon(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
}
impl Canon for RoleSet {
    fn canon(&self, out: &mut Vec<u8>) {
        out.push(self.0);
    }
}
impl Canon for PersonId {
    fn canon(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}
impl Canon for DeviceId {
    fn canon(&self, out: &mut Vec<u8>) {
        out.push(self.as_str().len() as u8);
        out.extend_from_slice(self.as_str().as_bytes());
    }
}
impl Canon for InstanceId {
    fn canon(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}
impl Canon for crate::tx::TxId {
    fn canon(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}
impl Canon for (QueryId, PublicKey) {
    fn canon(&self, out: &mut Vec<u8>) {
        self.0.canon(out);
        self.1.canon(out);
    }
}
impl Canon for Option<Hash> {
    fn canon(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(h) => {
                out.push(1);
                out.extend_from_slice(h);
            }
        }
    }
}
impl Canon for PersonRecord {
    fn canon(&self, out: &mut Vec<u8>) {
        self.registered_height.canon(out);
    }
}
impl Canon for DeviceRecord {
    fn canon(&self, out: &mut Vec<u8>) {
        self.person.canon(out);
        out.extend_from_slice(&self.public_key);
        out.push(self.active as u8);
    }
}
impl Canon for InstanceRecord {
    fn canon(&self, out: &mut Vec<u8>) {
        use commonware_codec::Write as _;
        self.deployment.write(out);
        out.push(self.active as u8);
        self.deployed_height.canon(out);
        self.replaced_by.map(|i| i.0).canon(out);
    }
}
impl Canon for AlertRecord {
    fn canon(&self, out: &mut Vec<u8>) {
        self.instance.canon(out);
        self.person.canon(out);
        out.push(self.level.code());
        out.extend_from_slice(&self.reading_time_ms.to_be_bytes());
        out.extend_from_slice(&self.evidence);
        self.raised_by.canon(out);
        self.raised_height.canon(out);
        out.extend_from_slice(&self.raised_ms.to_be_bytes());
        out.push(self.escalations);
        out.push(self.status as u8);
        out.extend_from_slice(&(self.orders.len() as u32).to_be_bytes());
        for order in &self.orders {
            out.push(order.kind as u8);
            order.note.canon(out);
            order.by.canon(out);
            order.height.canon(out);
        }
        self.resolution_note.canon(out);
    }
}
impl Canon for crate::tx::EscalationPolicy {
    fn canon(&self, out: &mut Vec<u8>) {
        commonware_codec::Write::write(self, out);
    }
}
impl Canon for ReasonsAccessRecord {
    fn canon(&self, out: &mut Vec<u8>) {
        self.who.canon(out);
        out.extend_from_slice(&self.alerts.to_be_bytes());
        out.extend_from_slice(&self.record);
        self.height.canon(out);
    }
}
impl Canon for AnchorRecord {
    fn canon(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.first_seq.to_be_bytes());
        out.extend_from_slice(&self.root);
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&self.from_ms.to_be_bytes());
        out.extend_from_slice(&self.to_ms.to_be_bytes());
        self.by.canon(out);
        self.height.canon(out);
    }
}
impl Canon for AccessRecord {
    fn canon(&self, out: &mut Vec<u8>) {
        self.who.canon(out);
        self.person.canon(out);
        out.extend_from_slice(&self.record);
        self.height.canon(out);
    }
}
impl Canon for Bytes {
    fn canon(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.len() as u32).to_be_bytes());
        out.extend_from_slice(self);
    }
}
impl Canon for [u8; 32] {
    fn canon(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}
impl Canon for StatsKeyRecord {
    fn canon(&self, out: &mut Vec<u8>) {
        self.key.canon(out);
        self.by.canon(out);
        self.height.canon(out);
    }
}
impl Canon for QueryRecord {
    fn canon(&self, out: &mut Vec<u8>) {
        self.querier.canon(out);
        out.extend_from_slice(&self.spec_digest);
        self.spec.canon(out);
        self.height.canon(out);
        out.extend_from_slice(&self.verdicts.to_be_bytes());
        out.extend_from_slice(&self.valid_verdicts.to_be_bytes());
    }
}
impl Canon for VerdictRecord {
    fn canon(&self, out: &mut Vec<u8>) {
        out.push(self.all_valid as u8);
        self.bitmap.canon(out);
        out.extend_from_slice(&self.evidence);
        self.height.canon(out);
    }
}

/// Nonces a signer may still use once, below its highest: the anti-replay window.
pub const NONCE_WINDOW: u64 = 1024;
const NONCE_WORDS: usize = (NONCE_WINDOW / 64) as usize;

/// Which of a signer's nonces are spent: every nonce at or above `next` is free, every nonce
/// below `floor()` is spent (expired), and in between one bit per nonce says whether it was
/// used.
///
/// Why not strictly chained nonces: with a chain, a transaction that fails (a double-clicked
/// acknowledgement) blocks every later one of its signer, and the mempool must drop them all.
/// With the window, a failed transaction leaves a hole that never blocks anything; replay
/// protection holds because a nonce is accepted once (its bit, or the floor, remembers it).
/// A signer that leaves a nonce unused for [`NONCE_WINDOW`] later nonces loses it (expired).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NonceWindow {
    /// One above the highest nonce used (0: none yet).
    next: u64,
    /// Bit `d` (word `d / 64`, bit `d % 64`) is set when nonce `next - 1 - d` was used.
    used: [u64; NONCE_WORDS],
}

impl NonceWindow {
    /// One above the highest nonce used: a signer sending in order uses this one next.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// The lowest nonce still usable: everything below is expired.
    pub fn floor(&self) -> u64 {
        self.next.saturating_sub(NONCE_WINDOW)
    }

    /// Whether `nonce` may be used now (without using it).
    pub fn check(&self, nonce: u64) -> Result<(), Rejection> {
        if nonce == u64::MAX {
            // `next` would overflow: the window could not remember it.
            return Err(Rejection::NonceOutOfRange { nonce });
        }
        if nonce >= self.next {
            return Ok(());
        }
        if nonce < self.floor() {
            return Err(Rejection::NonceExpired {
                nonce,
                floor: self.floor(),
            });
        }
        if self.bit(self.next - 1 - nonce) {
            return Err(Rejection::NonceUsed { nonce });
        }
        Ok(())
    }

    /// The window after `nonce` is used; `check(nonce)` must have passed.
    pub(crate) fn with_used(&self, nonce: u64) -> NonceWindow {
        let mut window = self.clone();
        if nonce >= window.next {
            window.shift(nonce + 1 - window.next);
            window.next = nonce + 1;
        }
        let distance = window.next - 1 - nonce;
        window.used[(distance / 64) as usize] |= 1 << (distance % 64);
        window
    }

    fn bit(&self, distance: u64) -> bool {
        distance < NONCE_WINDOW && self.used[(distance / 64) as usize] & (1 << (distance % 64)) != 0
    }

    /// Move every bit `by` distances further (the top nonce rose by `by`).
    fn shift(&mut self, by: u64) {
        if by >= NONCE_WINDOW {
            self.used = [0; NONCE_WORDS];
            return;
        }
        let words = (by / 64) as usize;
        let bits = (by % 64) as u32;
        for i in (0..NONCE_WORDS).rev() {
            let from = i.checked_sub(words);
            let low = from.map_or(0, |j| self.used[j]);
            let carry = from
                .and_then(|j| j.checked_sub(1))
                .map_or(0, |j| self.used[j]);
            self.used[i] = if bits == 0 {
                low
            } else {
                (low << bits) | (carry >> (64 - bits))
            };
        }
    }
}

impl Canon for NonceWindow {
    fn canon(&self, out: &mut Vec<u8>) {
        self.next.canon(out);
        for word in &self.used {
            word.canon(out);
        }
    }
}

tables! {
    roles / put_role: PublicKey => RoleSet = 1,
    nonces / put_nonce_entry: PublicKey => NonceWindow = 2,
    persons / put_person: PersonId => PersonRecord = 3,
    devices / put_device: DeviceId => DeviceRecord = 4,
    instances / put_instance: InstanceId => InstanceRecord = 5,
    alerts / put_alert: AlertId => AlertRecord = 6,
    anchors / put_anchor: u64 => AnchorRecord = 7,
    accesses / put_access: u64 => AccessRecord = 8,
    queries / put_query: QueryId => QueryRecord = 9,
    verdicts / put_verdict: (QueryId, PublicKey) => VerdictRecord = 10,
    counters / put_counter: u64 => u64 = 11,
    stats_keys / put_stats_key: Hash => StatsKeyRecord = 12,
    next_anchored / put_next_anchored: PublicKey => u64 = 13,
    verifier_since / put_verifier_since: PublicKey => u64 = 14,
    last_alerts / put_last_alert: InstanceId => LastAlert = 15,
    escalation_policies / put_escalation_policy: u64 => crate::tx::EscalationPolicy = 16,
    reasons_accesses / put_reasons_access: u64 => ReasonsAccessRecord = 17,
}

/// The key of the district-wide policy in `escalation_policies` (one today; the table leaves
/// room for per-district ones).
const POLICY_DISTRICT: u64 = 0;

// Keys of the `counters` table.
const COUNTER_ADMINS: u64 = 0;
const COUNTER_ANCHORS: u64 = 1;
const COUNTER_ACCESSES: u64 = 2;
const COUNTER_REASONS_ACCESSES: u64 = 3;

/// The writes of one executed block.
#[derive(Clone, Debug, Default)]
pub struct Layer {
    pub tables: Tables,
    pub height: u64,
    pub root: Hash,
    /// The block's time ([`View::at_time`]); not in the state root (the header carries it).
    pub time_ms: i64,
}

/// The finalized state of the ledger: the tables the state root commits to, and the indexes
/// readers need (never committed to: they are functions of the tables).
///
/// Cloning is cheap (persistent maps share their nodes): each finalized block publishes a clone
/// as part of its [`crate::finalized::Finalized`] snapshot.
#[derive(Clone, Debug)]
pub struct State {
    chain_id: Hash,
    height: u64,
    root: Hash,
    /// The time of the last merged block (0 until one is merged after a start).
    time_ms: i64,
    tables: StateTables,
    index: Indexes,
}

impl State {
    /// The genesis state: initial roles only.
    pub fn genesis(chain_id: Hash, roles: &[(PublicKey, Role)]) -> State {
        let mut tables = Tables::default();
        let mut admins = 0u64;
        for (identity, role) in roles {
            let set = tables.roles.entry(identity.clone()).or_default();
            if !set.contains(*role) && *role == Role::Admin {
                admins += 1;
            }
            *set = set.with(*role);
        }
        tables.counters.insert(COUNTER_ADMINS, admins);
        let mut canonical = Vec::new();
        canonical.extend_from_slice(&chain_id);
        tables.write_canonical(&mut canonical);
        let root = vigil_core::digest("vigil/ledger/state-genesis/v1", &[&canonical]);
        State {
            chain_id,
            height: 0,
            root,
            time_ms: 0,
            tables: StateTables::from_tables(tables),
            index: Indexes::default(),
        }
    }

    pub fn chain_id(&self) -> &Hash {
        &self.chain_id
    }
    /// Height of the last block merged into this state (0 = genesis).
    pub fn height(&self) -> u64 {
        self.height
    }
    /// State commitment at [`State::height`].
    pub fn root(&self) -> Hash {
        self.root
    }
    /// The time of the last merged block, as its header states (ms since the epoch).
    pub fn time_ms(&self) -> i64 {
        self.time_ms
    }
    /// The raw tables: for the ledger's own execution and reads only. Other crates read through
    /// the lookups in [`crate::finalized`] and the role-checked [`crate::read`].
    pub(crate) fn tables(&self) -> &StateTables {
        &self.tables
    }
    pub(crate) fn index(&self) -> &Indexes {
        &self.index
    }

    /// A read-only view of the finalized state (no layers).
    pub fn view(&self) -> View<'_> {
        View::new(self, &[], self.height + 1)
    }

    /// Merge the layer of the next block. Panics if the layer is not for the next height: the
    /// caller keeps blocks in order (an out-of-order merge is a bug, not an input error).
    pub fn merge(&mut self, layer: &Layer) {
        assert_eq!(
            layer.height,
            self.height + 1,
            "layers merge in height order"
        );
        self.index.update(&self.tables, &layer.tables);
        self.tables.merge_from(&layer.tables);
        self.height = layer.height;
        self.root = layer.root;
        self.time_ms = layer.time_ms;
    }

    /// Canonical digest of the whole state (O(state)): for audits and tests, not per block.
    pub fn full_digest(&self) -> Hash {
        let mut canonical = Vec::new();
        canonical.extend_from_slice(&self.chain_id);
        self.tables.write_canonical(&mut canonical);
        vigil_core::digest("vigil/ledger/state-full/v1", &[&canonical])
    }
}

/// Reads through layers onto the finalized state, and executes transactions into a new layer.
pub struct View<'a> {
    base: &'a State,
    below: &'a [Arc<Layer>],
    current: Layer,
    writes: Sha256,
}

impl<'a> View<'a> {
    /// A view over `base` and the unfinalized `below` layers (oldest first), executing the
    /// block at `height`.
    pub fn new(base: &'a State, below: &'a [Arc<Layer>], height: u64) -> View<'a> {
        View {
            base,
            below,
            current: Layer {
                tables: Tables::default(),
                height,
                root: [0; 32],
                // Until the block's own time is set, the newest time known below it.
                time_ms: below.last().map_or(base.time_ms, |l| l.time_ms),
            },
            writes: Sha256::new(),
        }
    }

    pub fn chain_id(&self) -> &Hash {
        &self.base.chain_id
    }

    /// The time of the block being executed (its header's `timestamp_ms`): the only clock the
    /// state machine reads. A view that is not executing a block keeps the newest block time.
    pub fn at_time(mut self, time_ms: i64) -> View<'a> {
        self.current.time_ms = time_ms;
        self
    }

    /// The escalation policy in force, if any.
    pub fn escalation_policy(&self) -> Option<crate::tx::EscalationPolicy> {
        self.escalation_policies(&POLICY_DISTRICT).copied()
    }

    /// State commitment below the block being executed.
    pub fn parent_root(&self) -> Hash {
        self.below.last().map_or(self.base.root, |l| l.root)
    }

    pub fn role_set(&self, identity: &PublicKey) -> RoleSet {
        self.roles(identity).copied().unwrap_or_default()
    }

    pub fn has_role(&self, identity: &PublicKey, role: Role) -> bool {
        self.role_set(identity).contains(role)
    }

    /// One above the signer's highest used nonce: the nonce a signer sending in order uses
    /// next (lower unused nonces within the window stay usable, see [`NonceWindow`]).
    pub fn next_nonce(&self, signer: &PublicKey) -> u64 {
        self.nonces(signer).map_or(0, NonceWindow::next)
    }

    /// The signer's anti-replay window.
    pub fn nonce_window(&self, signer: &PublicKey) -> NonceWindow {
        self.nonces(signer).cloned().unwrap_or_default()
    }

    /// Whether the signer may use `nonce` now.
    pub fn check_nonce(&self, signer: &PublicKey, nonce: u64) -> Result<(), Rejection> {
        match self.nonces(signer) {
            Some(window) => window.check(nonce),
            None => NonceWindow::default().check(nonce),
        }
    }

    /// The first health record the gateway's next anchor must cover (records count from 1).
    pub fn next_anchored_seq(&self, gateway: &PublicKey) -> u64 {
        self.next_anchored(gateway).copied().unwrap_or(1)
    }

    fn counter(&self, key: u64) -> u64 {
        self.counters(&key).copied().unwrap_or(0)
    }

    /// Check `tx` against the state without changing anything.
    pub fn check(&self, tx: &Tx) -> Result<(), Rejection> {
        self.plan(tx).map(|_| ())
    }

    /// Apply `tx` (its signature already checked) or reject it, leaving the view unchanged.
    pub fn apply(&mut self, tx: &Tx) -> Result<(), Rejection> {
        let writes = self.plan(tx)?;
        let height = self.current.height;
        let signer = tx.signer().clone();
        let window = self.nonce_window(&signer).with_used(tx.nonce());
        self.put_nonce(signer, window);
        for write in writes {
            self.perform(write, height);
        }
        Ok(())
    }

    /// Finish the block: its layer with the chained state root.
    pub fn finish(self) -> Layer {
        let parent_root = self.parent_root();
        let writes: [u8; 32] = self.writes.finalize().into();
        let mut layer = self.current;
        layer.root = vigil_core::digest(
            "vigil/ledger/state/v1",
            &[&parent_root, &layer.height.to_be_bytes(), &writes],
        );
        layer
    }

    fn put_nonce(&mut self, signer: PublicKey, window: NonceWindow) {
        self.put_nonce_entry().put(signer, window);
    }

    /// Validate `tx` completely and return the writes it makes; nothing is written here, so a
    /// rejected transaction leaves no trace.
    fn plan(&self, tx: &Tx) -> Result<Vec<Write>, Rejection> {
        self.check_nonce(tx.signer(), tx.nonce())?;
        let kind = tx.kind();
        let roles = self.role_set(tx.signer());
        let needed = kind.allowed_roles();
        if !needed.iter().any(|r| roles.contains(*r)) {
            return Err(Rejection::Unauthorized { kind, needed });
        }
        let signer = tx.signer().clone();
        let mut writes = Vec::with_capacity(2);
        match tx.body() {
            TxBody::GrantRole { identity, role } => {
                let set = self.role_set(identity);
                if set.contains(*role) {
                    return Err(Rejection::RoleAlreadyHeld(*role));
                }
                writes.push(Write::Role(identity.clone(), set.with(*role)));
                if *role == Role::VerifyingNode {
                    writes.push(Write::VerifierSince(identity.clone(), self.current.height));
                }
                if *role == Role::Admin {
                    writes.push(Write::Counter(
                        COUNTER_ADMINS,
                        self.counter(COUNTER_ADMINS) + 1,
                    ));
                }
            }
            TxBody::RevokeRole { identity, role } => {
                let set = self.role_set(identity);
                if !set.contains(*role) {
                    return Err(Rejection::RoleNotHeld(*role));
                }
                if *role == Role::Admin {
                    let admins = self.counter(COUNTER_ADMINS);
                    if admins <= 1 {
                        return Err(Rejection::LastAdmin);
                    }
                    writes.push(Write::Counter(COUNTER_ADMINS, admins - 1));
                }
                writes.push(Write::Role(identity.clone(), set.without(*role)));
            }
            TxBody::RegisterPerson { person } => {
                if self.persons(person).is_some() {
                    return Err(Rejection::PersonExists);
                }
                writes.push(Write::Person(*person));
            }
            TxBody::EnrollDevice {
                person,
                device,
                public_key,
            } => {
                if self.persons(person).is_none() {
                    return Err(Rejection::UnknownPerson);
                }
                if self.devices(device).is_some() {
                    return Err(Rejection::DeviceExists);
                }
                if vigil_core::DevicePublicKey::for_enrollment(public_key).is_err() {
                    return Err(Rejection::InvalidDeviceKey);
                }
                writes.push(Write::Device(
                    device.clone(),
                    DeviceRecord {
                        person: *person,
                        public_key: *public_key,
                        active: true,
                    },
                ));
            }
            TxBody::RevokeDevice { device } => {
                let record = self.devices(device).ok_or(Rejection::UnknownDevice)?;
                if !record.active {
                    return Err(Rejection::DeviceRevoked);
                }
                let mut record = record.clone();
                record.active = false;
                writes.push(Write::Device(device.clone(), record));
            }
            TxBody::DeployInstance { deployment } => {
                self.check_deployment(deployment)?;
                writes.push(Write::Deploy(deployment.clone()));
            }
            TxBody::TerminateInstance { instance } => {
                let record = self.active_instance(instance)?;
                let mut record = record.clone();
                record.active = false;
                writes.push(Write::Instance(*instance, record));
            }
            TxBody::ReplaceInstance { old, new } => {
                let record = self.active_instance(old)?;
                if record.deployment.person != new.person {
                    return Err(Rejection::ReplaceAcrossPersons);
                }
                self.check_deployment(new)?;
                let mut record = record.clone();
                record.active = false;
                record.replaced_by = Some(new.instance_id());
                writes.push(Write::Instance(*old, record));
                writes.push(Write::Deploy(new.clone()));
            }
            TxBody::Alert {
                instance,
                level,
                reading_time_ms,
                evidence,
            } => {
                if *level == AlertLevel::Ok {
                    return Err(Rejection::AlertLevelOk);
                }
                let record = self.active_instance(instance)?;
                let device = self
                    .devices(&record.deployment.device)
                    .ok_or(Rejection::UnknownDevice)?;
                if !device.active {
                    return Err(Rejection::DeviceRevoked);
                }
                // A replayed alert (the same signed readings in a new transaction) or an old
                // one submitted late never follows the instance's latest: alerts of an
                // instance rise strictly in (reading time, level).
                let claim = LastAlert {
                    reading_time_ms: *reading_time_ms,
                    level: *level,
                };
                if let Some(last) = self.last_alerts(instance)
                    && (last.reading_time_ms, last.level) >= (claim.reading_time_ms, claim.level)
                {
                    return Err(Rejection::AlertNotNewer {
                        last_ms: last.reading_time_ms,
                    });
                }
                writes.push(Write::LastAlert(*instance, claim));
                writes.push(Write::Alert(
                    tx.id(),
                    AlertRecord {
                        instance: *instance,
                        person: record.deployment.person,
                        level: *level,
                        reading_time_ms: *reading_time_ms,
                        evidence: *evidence,
                        raised_by: signer,
                        raised_height: self.current.height,
                        raised_ms: self.current.time_ms,
                        escalations: 0,
                        status: AlertStatus::Open,
                        orders: Vec::new(),
                        resolution_note: None,
                    },
                ));
            }
            TxBody::Acknowledge { alert } => {
                let record = self.alerts(alert).ok_or(Rejection::UnknownAlert)?;
                match record.status {
                    AlertStatus::Open => {}
                    AlertStatus::Acknowledged => return Err(Rejection::AlertNotOpen),
                    AlertStatus::Resolved => return Err(Rejection::AlertResolved),
                }
                let mut record = record.clone();
                record.status = AlertStatus::Acknowledged;
                writes.push(Write::Alert(*alert, record));
            }
            TxBody::SetEscalationPolicy { policy } => {
                policy.validate().map_err(Rejection::EscalationPolicy)?;
                writes.push(Write::EscalationPolicy(POLICY_DISTRICT, *policy));
            }
            TxBody::Escalate { alert, step } => {
                let record = self.alerts(alert).ok_or(Rejection::UnknownAlert)?;
                match record.status {
                    AlertStatus::Open => {}
                    AlertStatus::Acknowledged => return Err(Rejection::AlertNotOpen),
                    AlertStatus::Resolved => return Err(Rejection::AlertResolved),
                }
                let policy = self
                    .escalation_policy()
                    .ok_or(Rejection::NoEscalationPolicy)?;
                let expected = record.escalations.saturating_add(1);
                if *step != expected {
                    return Err(Rejection::EscalationOutOfOrder {
                        expected,
                        got: *step,
                    });
                }
                if *step > policy.steps_max {
                    return Err(Rejection::EscalationExhausted {
                        steps_max: policy.steps_max,
                    });
                }
                let due_ms = record.raised_ms.saturating_add(policy.step_due_ms(*step));
                if self.current.time_ms < due_ms {
                    return Err(Rejection::EscalationNotDue {
                        step: *step,
                        due_ms,
                        now_ms: self.current.time_ms,
                    });
                }
                let mut record = record.clone();
                record.escalations = *step;
                if policy.raise_level {
                    record.level = AlertLevel::Critical;
                }
                writes.push(Write::Alert(*alert, record));
            }
            TxBody::ReasonsAccess { alerts, record } => {
                // One record per listing, under the listing's digest: it names no person
                // (there are many), and the node's EHR keeps the rows the digest covers.
                let seq = self.counter(COUNTER_REASONS_ACCESSES);
                writes.push(Write::ReasonsAccess(
                    seq,
                    ReasonsAccessRecord {
                        who: signer,
                        alerts: *alerts,
                        record: *record,
                        height: self.current.height,
                    },
                ));
                writes.push(Write::Counter(COUNTER_REASONS_ACCESSES, seq + 1));
            }
            TxBody::Order { alert, kind, note } => {
                let record = self.alerts(alert).ok_or(Rejection::UnknownAlert)?;
                if record.status == AlertStatus::Resolved {
                    return Err(Rejection::AlertResolved);
                }
                if record.orders.len() >= ORDERS_PER_ALERT_MAX {
                    return Err(Rejection::TooManyOrders);
                }
                let mut record = record.clone();
                record.orders.push(OrderRecord {
                    kind: *kind,
                    note: *note,
                    by: signer,
                    height: self.current.height,
                });
                writes.push(Write::Alert(*alert, record));
            }
            TxBody::Resolve { alert, note } => {
                let record = self.alerts(alert).ok_or(Rejection::UnknownAlert)?;
                if record.status == AlertStatus::Resolved {
                    return Err(Rejection::AlertResolved);
                }
                let mut record = record.clone();
                record.status = AlertStatus::Resolved;
                record.resolution_note = *note;
                writes.push(Write::Alert(*alert, record));
            }
            TxBody::EhrAnchor {
                first_seq,
                root,
                count,
                from_ms,
                to_ms,
            } => {
                if *count == 0 {
                    return Err(Rejection::EmptyAnchor);
                }
                if from_ms > to_ms {
                    return Err(Rejection::AnchorTimeRange);
                }
                let expected = self.next_anchored_seq(&signer);
                if *first_seq != expected {
                    return Err(Rejection::AnchorOutOfOrder {
                        expected,
                        got: *first_seq,
                    });
                }
                writes.push(Write::NextAnchored(
                    signer.clone(),
                    expected + u64::from(*count),
                ));
                let seq = self.counter(COUNTER_ANCHORS);
                writes.push(Write::Anchor(
                    seq,
                    AnchorRecord {
                        first_seq: *first_seq,
                        root: *root,
                        count: *count,
                        from_ms: *from_ms,
                        to_ms: *to_ms,
                        by: signer,
                        height: self.current.height,
                    },
                ));
                writes.push(Write::Counter(COUNTER_ANCHORS, seq + 1));
            }
            TxBody::EhrAccess { person, record } => {
                if self.persons(person).is_none() {
                    return Err(Rejection::UnknownPerson);
                }
                let seq = self.counter(COUNTER_ACCESSES);
                writes.push(Write::Access(
                    seq,
                    AccessRecord {
                        who: signer,
                        person: *person,
                        record: *record,
                        height: self.current.height,
                    },
                ));
                writes.push(Write::Counter(COUNTER_ACCESSES, seq + 1));
            }
            TxBody::StatsQuery { spec } => {
                if spec.is_empty() {
                    return Err(Rejection::EmptyQuery);
                }
                query_cohort(spec).map_err(Rejection::QuerySpec)?;
                writes.push(Write::Query(
                    tx.id(),
                    QueryRecord {
                        querier: signer,
                        spec_digest: vigil_core::digest("vigil/ledger/query-spec/v1", &[spec]),
                        spec: spec.clone(),
                        height: self.current.height,
                        verdicts: 0,
                        valid_verdicts: 0,
                    },
                ));
            }
            TxBody::ProofVerdict {
                query,
                bitmap,
                all_valid,
                evidence,
            } => {
                let record = self.queries(query).ok_or(Rejection::UnknownQuery)?;
                if self
                    .verifier_since(&signer)
                    .is_some_and(|h| *h > record.height)
                {
                    return Err(Rejection::VerifierNotAssigned);
                }
                if !verdict_summary_fits(bitmap, *all_valid) {
                    return Err(Rejection::VerdictSummaryMismatch {
                        all_valid: *all_valid,
                    });
                }
                let key = (*query, signer);
                if self.verdicts(&key).is_some() {
                    return Err(Rejection::DuplicateVerdict);
                }
                let mut record = record.clone();
                record.verdicts += 1;
                record.valid_verdicts += *all_valid as u32;
                writes.push(Write::Query(*query, record));
                writes.push(Write::Verdict(
                    key,
                    VerdictRecord {
                        all_valid: *all_valid,
                        bitmap: bitmap.clone(),
                        evidence: *evidence,
                        height: self.current.height,
                    },
                ));
            }
            TxBody::StatsKey { key } => {
                if key.is_empty() {
                    return Err(Rejection::EmptyStatsKey);
                }
                let id = stats_key_id(key);
                if self.stats_keys(&id).is_some() {
                    return Err(Rejection::StatsKeyExists);
                }
                writes.push(Write::StatsKey(
                    id,
                    StatsKeyRecord {
                        key: key.clone(),
                        by: signer,
                        height: self.current.height,
                    },
                ));
            }
        }
        Ok(writes)
    }

    fn check_deployment(&self, deployment: &Deployment) -> Result<(), Rejection> {
        if !CONTRACT_KINDS.contains(&deployment.kind.as_str()) {
            return Err(Rejection::UnknownContractKind(deployment.kind.clone()));
        }
        deployment
            .contract_params()
            .map_err(Rejection::ContractParams)?;
        if self.persons(&deployment.person).is_none() {
            return Err(Rejection::UnknownPerson);
        }
        let device = self
            .devices(&deployment.device)
            .ok_or(Rejection::UnknownDevice)?;
        if !device.active {
            return Err(Rejection::DeviceRevoked);
        }
        if device.person != deployment.person {
            return Err(Rejection::DevicePersonMismatch);
        }
        if self.instances(&deployment.instance_id()).is_some() {
            return Err(Rejection::InstanceExists);
        }
        Ok(())
    }

    fn active_instance(&self, instance: &InstanceId) -> Result<&InstanceRecord, Rejection> {
        let record = self.instances(instance).ok_or(Rejection::UnknownInstance)?;
        if !record.active {
            return Err(Rejection::InstanceTerminated);
        }
        Ok(record)
    }

    fn perform(&mut self, write: Write, height: u64) {
        match write {
            Write::Role(k, v) => self.put_role().put(k, v),
            Write::Counter(k, v) => self.put_counter().put(k, v),
            Write::Person(p) => self.put_person().put(
                p,
                PersonRecord {
                    registered_height: height,
                },
            ),
            Write::Device(k, v) => self.put_device().put(k, v),
            Write::Deploy(deployment) => {
                let id = deployment.instance_id();
                self.put_instance().put(
                    id,
                    InstanceRecord {
                        deployment,
                        active: true,
                        deployed_height: height,
                        replaced_by: None,
                    },
                )
            }
            Write::Instance(k, v) => self.put_instance().put(k, v),
            Write::Alert(k, v) => self.put_alert().put(k, v),
            Write::Anchor(k, v) => self.put_anchor().put(k, v),
            Write::NextAnchored(k, v) => self.put_next_anchored().put(k, v),
            Write::Access(k, v) => self.put_access().put(k, v),
            Write::Query(k, v) => self.put_query().put(k, v),
            Write::Verdict(k, v) => self.put_verdict().put(k, v),
            Write::StatsKey(k, v) => self.put_stats_key().put(k, v),
            Write::VerifierSince(k, v) => self.put_verifier_since().put(k, v),
            Write::LastAlert(k, v) => self.put_last_alert().put(k, v),
            Write::EscalationPolicy(k, v) => self.put_escalation_policy().put(k, v),
            Write::ReasonsAccess(k, v) => self.put_reasons_access().put(k, v),
        }
    }
}

/// One planned write of a transaction.
enum Write {
    Role(PublicKey, RoleSet),
    Counter(u64, u64),
    Person(PersonId),
    Device(DeviceId, DeviceRecord),
    Deploy(Deployment),
    Instance(InstanceId, InstanceRecord),
    Alert(AlertId, AlertRecord),
    Anchor(u64, AnchorRecord),
    NextAnchored(PublicKey, u64),
    Access(u64, AccessRecord),
    Query(QueryId, QueryRecord),
    Verdict((QueryId, PublicKey), VerdictRecord),
    StatsKey(Hash, StatsKeyRecord),
    VerifierSince(PublicKey, u64),
    LastAlert(InstanceId, LastAlert),
    EscalationPolicy(u64, crate::tx::EscalationPolicy),
    ReasonsAccess(u64, ReasonsAccessRecord),
}

/// Whether a verdict's `all_valid` agrees with its bitmap, as far as the ledger can tell
/// without the query's check count (a function of the collective key's server count, which
/// only the statistics protocol reads). Bit `i` set means check `i` passed, and the bits past
/// the last check are zero (`vigil_privstats::verify::Verdict`), so:
/// - an all-valid verdict has a non-empty bitmap whose set bits are a prefix ending in the
///   last byte (a zero below a one, or an empty last byte, is a failed check);
/// - a verdict that is not all-valid cannot have every bit set (then no check failed).
///
/// A failed verdict that looks like a shorter all-valid one is still caught by the querier,
/// which reads the bitmap against the query's exact checks.
fn verdict_summary_fits(bitmap: &[u8], all_valid: bool) -> bool {
    let every_bit_set = !bitmap.is_empty() && bitmap.iter().all(|b| *b == 0xff);
    if !all_valid {
        return !every_bit_set;
    }
    let Some((last, full)) = bitmap.split_last() else {
        return false;
    };
    // A prefix of ones: `last + 1` is a power of two, and `last` is not zero.
    full.iter().all(|b| *b == 0xff) && *last != 0 && (*last & last.wrapping_add(1)) == 0
}

/// Execute `txs` as the block at `height` over `base` and the unfinalized layers `below`.
/// Every transaction must apply: the first rejection is returned with its index.
pub fn execute_block(
    base: &State,
    below: &[Arc<Layer>],
    height: u64,
    time_ms: i64,
    txs: &[Tx],
) -> Result<Layer, (usize, Rejection)> {
    let mut view = View::new(base, below, height).at_time(time_ms);
    for (i, tx) in txs.iter().enumerate() {
        view.apply(tx).map_err(|r| (i, r))?;
    }
    Ok(view.finish())
}
