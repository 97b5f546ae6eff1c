//! Transactions: what an identity may ask the ledger to record.
//!
//! A [`Tx`] is `(signer, nonce, body)` plus an Ed25519 signature by `signer` over
//! `chain_id || unsigned encoding`, under the namespace [`TX_NAMESPACE`]. The chain id binds a
//! signature to one ledger, the namespace to this purpose, and the nonce (the signer's next
//! expected sequence number, see [`crate::state`]) makes every transaction applicable at most once.
//!
//! Encoding is canonical: fixed-width big-endian integers, one-byte tags, length-prefixed byte
//! strings with named upper bounds. Decoding re-encodes and compares, so a byte string decodes
//! only if it is the one encoding of its value.
//!
//! No health values and no names ever appear here: people are pseudonyms, alerts carry a level and
//! an evidence digest, free text lives off-chain and is referenced by digest.

use bytes::{Buf as _, BufMut, Bytes};
use commonware_codec::{Buf, EncodeSize, Error as CodecError, Read, ReadExt, Write};
use commonware_cryptography::{
    Signer as _, Verifier as _,
    ed25519::{PrivateKey, PublicKey, Signature},
};
use vigil_core::{AlertLevel, DeviceId, PersonId};

/// Namespace of transaction signatures (see the module docs).
pub const TX_NAMESPACE: &[u8] = b"_VIGIL_LEDGER_TX_V1";
/// Largest encoded transaction accepted anywhere (mempool, block, decoder).
pub const TX_BYTES_MAX: usize = 4096;
/// Largest contract parameter blob (thresholds, geofence polygons, ...).
pub const CONTRACT_PARAMS_BYTES_MAX: usize = 2048;
/// Largest contract kind name.
pub const CONTRACT_KIND_BYTES_MAX: usize = 32;
/// Largest opaque statistics-query specification.
pub const QUERY_SPEC_BYTES_MAX: usize = 1024;
/// Largest verdict bitmap (one bit per verified proof).
pub const VERDICT_BITMAP_BYTES_MAX: usize = 1024;
/// Largest published collective statistics key (its Feldman commitments included).
pub const STATS_KEY_BYTES_MAX: usize = 3072;

/// A 32-byte SHA-256 digest.
pub type Hash = [u8; 32];

/// Digest of a transaction's unsigned encoding: its identity on the ledger. Alerts, queries and
/// contract deployments are addressed by it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxId(pub Hash);

impl std::fmt::Display for TxId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for TxId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TxId({})", &hex::encode(self.0)[..16])
    }
}

/// Identifier of an alert: the id of the transaction that raised it.
pub type AlertId = TxId;
/// Identifier of a statistics query: the id of the transaction that submitted it.
pub type QueryId = TxId;

/// Identifier of a contract instance: the digest of its canonical deployment
/// (see [`Deployment::instance_id`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(pub Hash);

impl std::fmt::Display for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InstanceId({})", &hex::encode(self.0)[..16])
    }
}

/// What an identity is allowed to do. An identity may hold several roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Role {
    Admin = 0,
    CdcpOperator = 1,
    Doctor = 2,
    Auditor = 3,
    Gateway = 4,
    Validator = 5,
    VerifyingNode = 6,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::CdcpOperator,
        Role::Doctor,
        Role::Auditor,
        Role::Gateway,
        Role::Validator,
        Role::VerifyingNode,
    ];

    pub const fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(code as usize).copied()
    }

    pub const fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::CdcpOperator => "cdcp-operator",
            Role::Doctor => "doctor",
            Role::Auditor => "auditor",
            Role::Gateway => "gateway",
            Role::Validator => "validator",
            Role::VerifyingNode => "verifying-node",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// A set of roles, as a bitmask over [`Role::code`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RoleSet(pub u8);

impl RoleSet {
    pub const EMPTY: RoleSet = RoleSet(0);

    pub const fn contains(self, role: Role) -> bool {
        self.0 & (1 << role as u8) != 0
    }

    pub const fn with(self, role: Role) -> RoleSet {
        RoleSet(self.0 | (1 << role as u8))
    }

    pub const fn without(self, role: Role) -> RoleSet {
        RoleSet(self.0 & !(1 << role as u8))
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn roles(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

/// A contract instance as deployed: the monitor kind compiled into every node, its canonical
/// parameter bytes, and the (person, device) it watches.
///
/// The parameters are opaque here: `vigil-contracts` defines and validates them. The ledger
/// addresses an instance by [`Deployment::instance_id`], the digest of this canonical encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    pub person: PersonId,
    pub device: DeviceId,
    /// Monitor kind, e.g. `threshold`, `news2`, `geofence`, `no-signal`, `heart-rhythm`.
    pub kind: String,
    /// Canonical parameter bytes of the kind (thresholds, zones, dwell time, ...).
    pub params: Bytes,
}

impl Deployment {
    /// A deployment of `params` (from `vigil-contracts`) on one device of one person: `kind` is
    /// the parameters' kind name and `params` their serde JSON encoding, the only encoding
    /// the state machine accepts (see [`Deployment::contract_params`]).
    pub fn new(person: PersonId, device: DeviceId, params: &vigil_contracts::Params) -> Deployment {
        Deployment {
            person,
            device,
            kind: params.kind().name().to_owned(),
            params: Bytes::from(encode_params(params)),
        }
    }

    /// The contract parameters carried by this deployment, checked: JSON of
    /// `vigil_contracts::Params` in its canonical form (exactly what `serde_json::to_vec`
    /// produces, so one set of parameters has one encoding and one instance address), of the
    /// declared kind, and valid for that kind (`Params::validate`).
    pub fn contract_params(&self) -> Result<vigil_contracts::Params, ParamsError> {
        let params: vigil_contracts::Params =
            serde_json::from_slice(&self.params).map_err(|e| ParamsError::Json(e.to_string()))?;
        if encode_params(&params) != self.params.as_ref() {
            return Err(ParamsError::NotCanonical);
        }
        let kind = params.kind().name();
        if kind != self.kind {
            return Err(ParamsError::KindMismatch {
                declared: self.kind.clone(),
                params: kind,
            });
        }
        params
            .validate()
            .map_err(|e| ParamsError::Invalid(e.to_string()))?;
        Ok(params)
    }

    /// Digest of the canonical deployment: the instance's address.
    pub fn instance_id(&self) -> InstanceId {
        let mut buf = Vec::with_capacity(self.encode_size());
        self.write(&mut buf);
        InstanceId(vigil_core::digest("vigil/ledger/instance/v1", &[&buf]))
    }
}

fn encode_params(params: &vigil_contracts::Params) -> Vec<u8> {
    serde_json::to_vec(params).expect("contract parameters serialize")
}

/// Why a deployment's parameters were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    #[error("parameters are not JSON of vigil_contracts::Params: {0}")]
    Json(String),
    #[error("parameters are not in canonical form (serde_json::to_vec of the parsed value)")]
    NotCanonical,
    #[error("deployment declares kind {declared:?} but its parameters are {params:?}")]
    KindMismatch {
        declared: String,
        params: &'static str,
    },
    #[error("invalid parameters: {0}")]
    Invalid(String),
}

/// Typed order issued by CDCP staff on an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum OrderKind {
    HospitalTransfer = 0,
    ReturnToQuarantineArea = 1,
    Call = 2,
}

/// A name that no variant of `kind` answers to (the `FromStr` of the API's enums).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {name:?}")]
pub struct UnknownName {
    pub kind: &'static str,
    pub name: String,
}

impl UnknownName {
    pub(crate) fn new(kind: &'static str, name: &str) -> Self {
        UnknownName {
            kind,
            name: name.to_owned(),
        }
    }
}

impl OrderKind {
    pub const ALL: [OrderKind; 3] = [
        OrderKind::HospitalTransfer,
        OrderKind::ReturnToQuarantineArea,
        OrderKind::Call,
    ];

    /// The order's name in the API; [`std::str::FromStr`] reads it back.
    pub const fn name(self) -> &'static str {
        match self {
            OrderKind::HospitalTransfer => "hospital-transfer",
            OrderKind::ReturnToQuarantineArea => "return-to-quarantine-area",
            OrderKind::Call => "call",
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::HospitalTransfer),
            1 => Some(Self::ReturnToQuarantineArea),
            2 => Some(Self::Call),
            _ => None,
        }
    }
}

vigil_core::named_enum!(OrderKind by name, error UnknownName = |text| {
    UnknownName::new("order", text)
});

/// How an alert nobody acknowledges is followed up, district-wide: its person is reminded
/// `remind_after_s` after the alert (0: never) and again every `repeat_s`; it is escalated
/// (step 1) `escalate_after_s` after the alert and again (steps 2, 3, …) every `repeat_s`,
/// at most `steps_max` times. With `raise_level`, each escalation raises a warning to
/// critical. Times are seconds of block time (the proposers' clocks that consensus certified)
/// since the block that finalized the alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicy {
    pub remind_after_s: u32,
    pub escalate_after_s: u32,
    pub repeat_s: u32,
    pub steps_max: u8,
    pub raise_level: bool,
}

/// Bounds of an [`EscalationPolicy`]: often enough to matter, never a flood of transactions.
pub const ESCALATION_AFTER_S_MIN: u32 = 10;
pub const ESCALATION_AFTER_S_MAX: u32 = 7 * 24 * 3600;
pub const ESCALATION_STEPS_MAX: u8 = 10;

/// Why an escalation policy is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("escalation policy: {0}")]
pub struct PolicyError(pub &'static str);

impl EscalationPolicy {
    /// The policy's own bounds, checked by the state machine before it is recorded.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let range = ESCALATION_AFTER_S_MIN..=ESCALATION_AFTER_S_MAX;
        if !range.contains(&self.escalate_after_s) {
            return Err(PolicyError("escalate_after_s is outside 10 s ..= 7 days"));
        }
        if self.remind_after_s != 0 && !range.contains(&self.remind_after_s) {
            return Err(PolicyError(
                "remind_after_s is 0 (never) or within 10 s ..= 7 days",
            ));
        }
        if self.steps_max == 0 || self.steps_max > ESCALATION_STEPS_MAX {
            return Err(PolicyError("steps_max is within 1 ..= 10"));
        }
        if (self.steps_max > 1 || self.remind_after_s != 0) && !range.contains(&self.repeat_s) {
            return Err(PolicyError("repeat_s is within 10 s ..= 7 days"));
        }
        Ok(())
    }

    /// Block time (ms after the alert's finalization) from which escalation `step` is due.
    pub fn step_due_ms(&self, step: u8) -> i64 {
        let repeats = i64::from(step.saturating_sub(1));
        (i64::from(self.escalate_after_s) + repeats * i64::from(self.repeat_s)) * 1000
    }

    /// How many reminders are due `elapsed_ms` after the alert: the person's topic gets one
    /// more each time this grows (at most `steps_max`, like the escalations).
    pub fn reminders_due(&self, elapsed_ms: i64) -> u8 {
        if self.remind_after_s == 0 || elapsed_ms < i64::from(self.remind_after_s) * 1000 {
            return 0;
        }
        let since = elapsed_ms - i64::from(self.remind_after_s) * 1000;
        let repeat_ms = i64::from(self.repeat_s.max(1)) * 1000;
        let count = 1 + since / repeat_ms;
        count.min(i64::from(self.steps_max)) as u8
    }
}

impl Write for EscalationPolicy {
    fn write(&self, buf: &mut impl BufMut) {
        self.remind_after_s.write(buf);
        self.escalate_after_s.write(buf);
        self.repeat_s.write(buf);
        self.steps_max.write(buf);
        self.raise_level.write(buf);
    }
}

impl EncodeSize for EscalationPolicy {
    fn encode_size(&self) -> usize {
        4 + 4 + 4 + 1 + 1
    }
}

impl Read for EscalationPolicy {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(EscalationPolicy {
            remind_after_s: u32::read(buf)?,
            escalate_after_s: u32::read(buf)?,
            repeat_s: u32::read(buf)?,
            steps_max: u8::read(buf)?,
            raise_level: bool::read(buf)?,
        })
    }
}

/// The body of a transaction: one action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxBody {
    /// Give `identity` a role. Admin only.
    GrantRole { identity: PublicKey, role: Role },
    /// Take a role from `identity`. Admin only; the last admin cannot be removed.
    RevokeRole { identity: PublicKey, role: Role },
    /// Register a pseudonym. The real identity lives only in the EHR.
    RegisterPerson { person: PersonId },
    /// Bind a device and its Ed25519 public key to a registered person.
    EnrollDevice {
        person: PersonId,
        device: DeviceId,
        public_key: [u8; 32],
    },
    /// Revoke a device: its readings are no longer accepted. Permanent for that device id.
    RevokeDevice { device: DeviceId },
    /// Deploy a contract instance on a (person, device).
    DeployInstance { deployment: Deployment },
    /// Terminate an active instance.
    TerminateInstance { instance: InstanceId },
    /// Terminate `old` and deploy `new` atomically, for the same person.
    ReplaceInstance { old: InstanceId, new: Deployment },
    /// An instance raised a warning or critical level. No health values: the evidence (the
    /// reading) is in the EHR, referenced by digest, and re-executable against the instance.
    Alert {
        instance: InstanceId,
        level: AlertLevel,
        reading_time_ms: i64,
        evidence: Hash,
    },
    /// Staff have seen an open alert.
    Acknowledge { alert: AlertId },
    /// Staff order an action on an alert that is not resolved; free text only by digest.
    Order {
        alert: AlertId,
        kind: OrderKind,
        note: Option<Hash>,
    },
    /// Close an alert.
    Resolve { alert: AlertId, note: Option<Hash> },
    /// Merkle root over the `count` health records from `first_seq`, which must follow the
    /// signer's previous anchor, so each record is anchored exactly once and an anchor
    /// re-submitted after a crash can never be counted twice.
    EhrAnchor {
        first_seq: u64,
        root: Hash,
        count: u32,
        from_ms: i64,
        to_ms: i64,
    },
    /// The signer read `person`'s EHR; `record` is the digest of what was read.
    EhrAccess { person: PersonId, record: Hash },
    /// The signer read the reasons (health data, kept in the EHR) of `alerts` alerts in one
    /// listing: one access record per listing rather than one per row. `record` is the digest
    /// of the accessor, the listed alert ids and the time; the node's EHR keeps the rows.
    ReasonsAccess { alerts: u32, record: Hash },
    /// The district's escalation policy for unacknowledged alerts, replacing the previous one.
    SetEscalationPolicy { policy: EscalationPolicy },
    /// Step `step` (from 1) of an open alert's escalation, due by the policy and the block's
    /// time (never a local clock): the state machine refuses a step that is early, out of
    /// order, beyond the policy, or for an alert that is no longer open.
    Escalate { alert: AlertId, step: u8 },
    /// A statistics query: the canonical encoding of a `vigil_privstats::query::Query`
    /// (opaque here; the verifying nodes decode it).
    StatsQuery { spec: Bytes },
    /// A verifying node's verdict on a query's proofs: one bit per proof in the order the
    /// statistics crate defines for the query, the summary, and the digest of the evidence it
    /// vouches for (what the querier decrypts must hash to it).
    ProofVerdict {
        query: QueryId,
        bitmap: Bytes,
        all_valid: bool,
        evidence: Hash,
    },
    /// Publish a collective statistics key: the canonical encoding of a
    /// `vigil_privstats::keys::CollectiveKey` (the key, every dealer's Feldman commitments and
    /// proof, the servers' verification keys). Anyone re-derives and checks it from the bytes.
    StatsKey { key: Bytes },
}

/// The kind of a transaction body, for permission tables and statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxKind {
    GrantRole,
    RevokeRole,
    RegisterPerson,
    EnrollDevice,
    RevokeDevice,
    DeployInstance,
    TerminateInstance,
    ReplaceInstance,
    Alert,
    Acknowledge,
    Order,
    Resolve,
    EhrAnchor,
    EhrAccess,
    StatsQuery,
    ProofVerdict,
    StatsKey,
    ReasonsAccess,
    SetEscalationPolicy,
    Escalate,
}

impl TxKind {
    pub const ALL: [TxKind; 20] = [
        TxKind::GrantRole,
        TxKind::RevokeRole,
        TxKind::RegisterPerson,
        TxKind::EnrollDevice,
        TxKind::RevokeDevice,
        TxKind::DeployInstance,
        TxKind::TerminateInstance,
        TxKind::ReplaceInstance,
        TxKind::Alert,
        TxKind::Acknowledge,
        TxKind::Order,
        TxKind::Resolve,
        TxKind::EhrAnchor,
        TxKind::EhrAccess,
        TxKind::StatsQuery,
        TxKind::ProofVerdict,
        TxKind::StatsKey,
        TxKind::ReasonsAccess,
        TxKind::SetEscalationPolicy,
        TxKind::Escalate,
    ];

    /// The permission table: which roles may sign a transaction of this kind. One place, so
    /// that it can be read, reviewed and tested as a whole.
    pub const fn allowed_roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            TxKind::GrantRole | TxKind::RevokeRole => &[Admin],
            TxKind::RegisterPerson => &[CdcpOperator],
            TxKind::EnrollDevice | TxKind::RevokeDevice => &[CdcpOperator, Gateway],
            TxKind::DeployInstance | TxKind::TerminateInstance | TxKind::ReplaceInstance => {
                &[CdcpOperator]
            }
            TxKind::Alert => &[Gateway],
            TxKind::Acknowledge | TxKind::Order | TxKind::Resolve => &[CdcpOperator],
            TxKind::EhrAnchor => &[Gateway],
            // A gateway logs the reads that a person makes of their own record.
            TxKind::EhrAccess => &[CdcpOperator, Doctor, Auditor, Gateway],
            TxKind::StatsQuery => &[Doctor],
            TxKind::ProofVerdict => &[VerifyingNode],
            // The consortium's admin publishes the outcome of the servers' key generation;
            // the bytes carry their own proofs, so publishing grants no power to forge.
            TxKind::StatsKey => &[Admin],
            TxKind::ReasonsAccess => &[CdcpOperator, Doctor, Auditor, Admin],
            TxKind::SetEscalationPolicy => &[CdcpOperator],
            // The node that raised an alert escalates it when the policy says it is due.
            TxKind::Escalate => &[Gateway],
        }
    }

    pub const fn tag(self) -> u8 {
        self as u8
    }
}

impl TxBody {
    pub const fn kind(&self) -> TxKind {
        match self {
            TxBody::GrantRole { .. } => TxKind::GrantRole,
            TxBody::RevokeRole { .. } => TxKind::RevokeRole,
            TxBody::RegisterPerson { .. } => TxKind::RegisterPerson,
            TxBody::EnrollDevice { .. } => TxKind::EnrollDevice,
            TxBody::RevokeDevice { .. } => TxKind::RevokeDevice,
            TxBody::DeployInstance { .. } => TxKind::DeployInstance,
            TxBody::TerminateInstance { .. } => TxKind::TerminateInstance,
            TxBody::ReplaceInstance { .. } => TxKind::ReplaceInstance,
            TxBody::Alert { .. } => TxKind::Alert,
            TxBody::Acknowledge { .. } => TxKind::Acknowledge,
            TxBody::Order { .. } => TxKind::Order,
            TxBody::Resolve { .. } => TxKind::Resolve,
            TxBody::EhrAnchor { .. } => TxKind::EhrAnchor,
            TxBody::EhrAccess { .. } => TxKind::EhrAccess,
            TxBody::StatsQuery { .. } => TxKind::StatsQuery,
            TxBody::ProofVerdict { .. } => TxKind::ProofVerdict,
            TxBody::StatsKey { .. } => TxKind::StatsKey,
            TxBody::ReasonsAccess { .. } => TxKind::ReasonsAccess,
            TxBody::SetEscalationPolicy { .. } => TxKind::SetEscalationPolicy,
            TxBody::Escalate { .. } => TxKind::Escalate,
        }
    }
}

/// Why a byte string is not a transaction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TxDecodeError {
    #[error("transaction is {0} bytes, more than {TX_BYTES_MAX}")]
    TooLarge(usize),
    #[error("malformed transaction: {0}")]
    Codec(#[from] CodecError),
    #[error("transaction encoding is not canonical")]
    NotCanonical,
}

/// A signed transaction. Immutable: its canonical bytes and id are computed once.
#[derive(Clone)]
pub struct Tx {
    signer: PublicKey,
    nonce: u64,
    body: TxBody,
    signature: Signature,
    /// Canonical encoding of the whole signed transaction.
    bytes: Bytes,
    /// Length of the unsigned prefix of `bytes` (signer, nonce, body).
    unsigned_len: usize,
    id: TxId,
}

impl PartialEq for Tx {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl Eq for Tx {}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("id", &self.id)
            .field("signer", &self.signer)
            .field("nonce", &self.nonce)
            .field("body", &self.body)
            .finish()
    }
}

impl Tx {
    /// Sign `body` as `key` with sequence number `nonce` for the ledger `chain_id`.
    pub fn sign(key: &PrivateKey, chain_id: &Hash, nonce: u64, body: TxBody) -> Tx {
        let signer = key.public_key();
        let mut buf = Vec::with_capacity(128);
        signer.write(&mut buf);
        nonce.write(&mut buf);
        write_body(&body, &mut buf);
        let unsigned_len = buf.len();
        let signature = key.sign(TX_NAMESPACE, &signed_message(chain_id, &buf));
        signature.write(&mut buf);
        let id = tx_id(&buf[..unsigned_len]);
        Tx {
            signer,
            nonce,
            body,
            signature,
            bytes: Bytes::from(buf),
            unsigned_len,
            id,
        }
    }

    /// Decode a transaction from its canonical bytes. The signature is *not* checked here:
    /// see [`Tx::verify_signature`] and [`verify_batch`].
    pub fn decode(bytes: Bytes) -> Result<Tx, TxDecodeError> {
        if bytes.len() > TX_BYTES_MAX {
            return Err(TxDecodeError::TooLarge(bytes.len()));
        }
        let mut reader = bytes.clone();
        let signer = crate::keycache::read_public_key(&mut reader)?;
        let nonce = u64::read(&mut reader)?;
        let body = read_body(&mut reader)?;
        let unsigned_len = bytes.len() - reader.remaining();
        let signature = Signature::read(&mut reader)?;
        if reader.has_remaining() {
            return Err(CodecError::ExtraData(reader.remaining()).into());
        }
        // Canonical: the decoded value must re-encode to exactly these bytes.
        let mut again = Vec::with_capacity(bytes.len());
        signer.write(&mut again);
        nonce.write(&mut again);
        write_body(&body, &mut again);
        signature.write(&mut again);
        if again != bytes.as_ref() {
            return Err(TxDecodeError::NotCanonical);
        }
        let id = tx_id(&bytes[..unsigned_len]);
        Ok(Tx {
            signer,
            nonce,
            body,
            signature,
            bytes,
            unsigned_len,
            id,
        })
    }

    pub fn id(&self) -> TxId {
        self.id
    }
    pub fn signer(&self) -> &PublicKey {
        &self.signer
    }
    pub fn nonce(&self) -> u64 {
        self.nonce
    }
    pub fn body(&self) -> &TxBody {
        &self.body
    }
    pub fn kind(&self) -> TxKind {
        self.body.kind()
    }
    /// The canonical bytes of the signed transaction.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Check the signature against the signer for the ledger `chain_id`.
    pub fn verify_signature(&self, chain_id: &Hash) -> bool {
        let message = signed_message(chain_id, &self.bytes[..self.unsigned_len]);
        self.signer.verify(TX_NAMESPACE, &message, &self.signature)
    }
}

/// Verify many transactions' signatures at once (Ed25519 batch verification, with randomness
/// from `rng`). Returns the indices of the transactions whose signature is invalid: empty when
/// all are valid. A failed batch falls back to one-by-one checks to name the culprits.
pub fn verify_batch<R: rand_core::CryptoRng>(
    rng: &mut R,
    chain_id: &Hash,
    txs: &[&Tx],
) -> Vec<usize> {
    use commonware_cryptography::{BatchEntry, BatchVerifier as _};
    if txs.is_empty() {
        return Vec::new();
    }
    let messages: Vec<Vec<u8>> = txs
        .iter()
        .map(|tx| signed_message(chain_id, &tx.bytes[..tx.unsigned_len]))
        .collect();
    let ok = PublicKey::verify_batch(
        rng,
        &messages,
        |i, message| BatchEntry {
            namespace: TX_NAMESPACE,
            message,
            public_key: &txs[i].signer,
            signature: &txs[i].signature,
        },
        &commonware_parallel::Sequential,
    );
    if ok {
        return Vec::new();
    }
    txs.iter()
        .enumerate()
        .filter(|(_, tx)| !tx.verify_signature(chain_id))
        .map(|(i, _)| i)
        .collect()
}

fn signed_message(chain_id: &Hash, unsigned: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(32 + unsigned.len());
    message.extend_from_slice(chain_id);
    message.extend_from_slice(unsigned);
    message
}

fn tx_id(unsigned: &[u8]) -> TxId {
    TxId(vigil_core::digest("vigil/ledger/tx/v1", &[unsigned]))
}

// ---- canonical encoding -------------------------------------------------------------------

fn write_bytes(v: &[u8], buf: &mut impl BufMut) {
    (v.len() as u32).write(buf);
    buf.put_slice(v);
}

fn read_bytes(buf: &mut impl Buf, max: usize) -> Result<Bytes, CodecError> {
    let len = u32::read(buf)? as usize;
    if len > max {
        return Err(CodecError::InvalidLength(len));
    }
    if buf.remaining() < len {
        return Err(CodecError::EndOfBuffer);
    }
    Ok(buf.copy_to_bytes(len))
}

fn write_opt_hash(v: &Option<Hash>, buf: &mut impl BufMut) {
    match v {
        None => 0u8.write(buf),
        Some(h) => {
            1u8.write(buf);
            buf.put_slice(h);
        }
    }
}

fn read_opt_hash(buf: &mut impl Buf) -> Result<Option<Hash>, CodecError> {
    match u8::read(buf)? {
        0 => Ok(None),
        1 => Ok(Some(<[u8; 32]>::read(buf)?)),
        _ => Err(CodecError::Invalid("Option", "tag is not 0 or 1")),
    }
}

fn read_person(buf: &mut impl Buf) -> Result<PersonId, CodecError> {
    Ok(PersonId::from_bytes(<[u8; 16]>::read(buf)?))
}

fn read_device(buf: &mut impl Buf) -> Result<DeviceId, CodecError> {
    let raw = read_bytes(buf, DeviceId::LEN_MAX)?;
    let text = std::str::from_utf8(&raw).map_err(|_| CodecError::Invalid("DeviceId", "utf-8"))?;
    text.parse()
        .map_err(|_| CodecError::Invalid("DeviceId", "characters"))
}

fn read_role(buf: &mut impl Buf) -> Result<Role, CodecError> {
    Role::from_code(u8::read(buf)?).ok_or(CodecError::Invalid("Role", "unknown code"))
}

impl Write for Deployment {
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_slice(self.person.as_bytes());
        write_bytes(self.device.as_str().as_bytes(), buf);
        write_bytes(self.kind.as_bytes(), buf);
        write_bytes(&self.params, buf);
    }
}

impl EncodeSize for Deployment {
    fn encode_size(&self) -> usize {
        16 + 4 + self.device.as_str().len() + 4 + self.kind.len() + 4 + self.params.len()
    }
}

impl Read for Deployment {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let person = read_person(buf)?;
        let device = read_device(buf)?;
        let kind = read_bytes(buf, CONTRACT_KIND_BYTES_MAX)?;
        let kind = std::str::from_utf8(&kind)
            .map_err(|_| CodecError::Invalid("Deployment", "kind is not utf-8"))?
            .to_owned();
        let params = read_bytes(buf, CONTRACT_PARAMS_BYTES_MAX)?;
        Ok(Deployment {
            person,
            device,
            kind,
            params,
        })
    }
}

fn write_body(body: &TxBody, buf: &mut impl BufMut) {
    body.kind().tag().write(buf);
    match body {
        TxBody::GrantRole { identity, role } | TxBody::RevokeRole { identity, role } => {
            identity.write(buf);
            role.code().write(buf);
        }
        TxBody::RegisterPerson { person } => buf.put_slice(person.as_bytes()),
        TxBody::EnrollDevice {
            person,
            device,
            public_key,
        } => {
            buf.put_slice(person.as_bytes());
            write_bytes(device.as_str().as_bytes(), buf);
            buf.put_slice(public_key);
        }
        TxBody::RevokeDevice { device } => write_bytes(device.as_str().as_bytes(), buf),
        TxBody::DeployInstance { deployment } => deployment.write(buf),
        TxBody::TerminateInstance { instance } => buf.put_slice(&instance.0),
        TxBody::ReplaceInstance { old, new } => {
            buf.put_slice(&old.0);
            new.write(buf);
        }
        TxBody::Alert {
            instance,
            level,
            reading_time_ms,
            evidence,
        } => {
            buf.put_slice(&instance.0);
            level.code().write(buf);
            reading_time_ms.write(buf);
            buf.put_slice(evidence);
        }
        TxBody::Acknowledge { alert } => buf.put_slice(&alert.0),
        TxBody::Order { alert, kind, note } => {
            buf.put_slice(&alert.0);
            (*kind as u8).write(buf);
            write_opt_hash(note, buf);
        }
        TxBody::Resolve { alert, note } => {
            buf.put_slice(&alert.0);
            write_opt_hash(note, buf);
        }
        TxBody::EhrAnchor {
            first_seq,
            root,
            count,
            from_ms,
            to_ms,
        } => {
            first_seq.write(buf);
            buf.put_slice(root);
            count.write(buf);
            from_ms.write(buf);
            to_ms.write(buf);
        }
        TxBody::EhrAccess { person, record } => {
            buf.put_slice(person.as_bytes());
            buf.put_slice(record);
        }
        TxBody::StatsQuery { spec } => write_bytes(spec, buf),
        TxBody::ProofVerdict {
            query,
            bitmap,
            all_valid,
            evidence,
        } => {
            buf.put_slice(&query.0);
            write_bytes(bitmap, buf);
            all_valid.write(buf);
            buf.put_slice(evidence);
        }
        TxBody::StatsKey { key } => write_bytes(key, buf),
        TxBody::ReasonsAccess { alerts, record } => {
            alerts.write(buf);
            buf.put_slice(record);
        }
        TxBody::SetEscalationPolicy { policy } => policy.write(buf),
        TxBody::Escalate { alert, step } => {
            buf.put_slice(&alert.0);
            step.write(buf);
        }
    }
}

fn read_body(buf: &mut impl Buf) -> Result<TxBody, CodecError> {
    let tag = u8::read(buf)?;
    let kind = TxKind::ALL
        .get(tag as usize)
        .copied()
        .ok_or(CodecError::InvalidEnum(tag))?;
    let hash = |buf: &mut _| <[u8; 32]>::read(buf);
    Ok(match kind {
        TxKind::GrantRole => TxBody::GrantRole {
            identity: PublicKey::read(buf)?,
            role: read_role(buf)?,
        },
        TxKind::RevokeRole => TxBody::RevokeRole {
            identity: PublicKey::read(buf)?,
            role: read_role(buf)?,
        },
        TxKind::RegisterPerson => TxBody::RegisterPerson {
            person: read_person(buf)?,
        },
        TxKind::EnrollDevice => TxBody::EnrollDevice {
            person: read_person(buf)?,
            device: read_device(buf)?,
            public_key: hash(buf)?,
        },
        TxKind::RevokeDevice => TxBody::RevokeDevice {
            device: read_device(buf)?,
        },
        TxKind::DeployInstance => TxBody::DeployInstance {
            deployment: Deployment::read(buf)?,
        },
        TxKind::TerminateInstance => TxBody::TerminateInstance {
            instance: InstanceId(hash(buf)?),
        },
        TxKind::ReplaceInstance => TxBody::ReplaceInstance {
            old: InstanceId(hash(buf)?),
            new: Deployment::read(buf)?,
        },
        TxKind::Alert => TxBody::Alert {
            instance: InstanceId(hash(buf)?),
            level: AlertLevel::from_code(u8::read(buf)?)
                .ok_or(CodecError::Invalid("AlertLevel", "unknown code"))?,
            reading_time_ms: i64::read(buf)?,
            evidence: hash(buf)?,
        },
        TxKind::Acknowledge => TxBody::Acknowledge {
            alert: TxId(hash(buf)?),
        },
        TxKind::Order => TxBody::Order {
            alert: TxId(hash(buf)?),
            kind: OrderKind::from_code(u8::read(buf)?)
                .ok_or(CodecError::Invalid("OrderKind", "unknown code"))?,
            note: read_opt_hash(buf)?,
        },
        TxKind::Resolve => TxBody::Resolve {
            alert: TxId(hash(buf)?),
            note: read_opt_hash(buf)?,
        },
        TxKind::EhrAnchor => TxBody::EhrAnchor {
            first_seq: u64::read(buf)?,
            root: hash(buf)?,
            count: u32::read(buf)?,
            from_ms: i64::read(buf)?,
            to_ms: i64::read(buf)?,
        },
        TxKind::EhrAccess => TxBody::EhrAccess {
            person: read_person(buf)?,
            record: hash(buf)?,
        },
        TxKind::StatsQuery => TxBody::StatsQuery {
            spec: read_bytes(buf, QUERY_SPEC_BYTES_MAX)?,
        },
        TxKind::ProofVerdict => TxBody::ProofVerdict {
            query: TxId(hash(buf)?),
            bitmap: read_bytes(buf, VERDICT_BITMAP_BYTES_MAX)?,
            all_valid: bool::read(buf)?,
            evidence: hash(buf)?,
        },
        TxKind::StatsKey => TxBody::StatsKey {
            key: read_bytes(buf, STATS_KEY_BYTES_MAX)?,
        },
        TxKind::ReasonsAccess => TxBody::ReasonsAccess {
            alerts: u32::read(buf)?,
            record: hash(buf)?,
        },
        TxKind::SetEscalationPolicy => TxBody::SetEscalationPolicy {
            policy: EscalationPolicy::read(buf)?,
        },
        TxKind::Escalate => TxBody::Escalate {
            alert: TxId(hash(buf)?),
            step: u8::read(buf)?,
        },
    })
}

impl Write for Tx {
    fn write(&self, buf: &mut impl BufMut) {
        write_bytes(&self.bytes, buf);
    }
}

impl EncodeSize for Tx {
    fn encode_size(&self) -> usize {
        4 + self.bytes.len()
    }
}

impl Read for Tx {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let bytes = read_bytes(buf, TX_BYTES_MAX)?;
        Tx::decode(bytes).map_err(|e| match e {
            TxDecodeError::Codec(e) => e,
            TxDecodeError::TooLarge(n) => CodecError::InvalidLength(n),
            TxDecodeError::NotCanonical => CodecError::Invalid("Tx", "not canonical"),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn key(seed: u64) -> PrivateKey {
        PrivateKey::from_seed(seed)
    }

    pub fn sample_bodies() -> Vec<TxBody> {
        let person = PersonId::from_bytes([7; 16]);
        let device: DeviceId = "thermo-01".parse().expect("valid id");
        let deployment = Deployment {
            person,
            device: device.clone(),
            kind: "threshold".into(),
            params: Bytes::from_static(b"\x01\x02"),
        };
        let alert = TxId([3; 32]);
        vec![
            TxBody::GrantRole {
                identity: key(9).public_key(),
                role: Role::Doctor,
            },
            TxBody::RevokeRole {
                identity: key(9).public_key(),
                role: Role::Doctor,
            },
            TxBody::RegisterPerson { person },
            TxBody::EnrollDevice {
                person,
                device: device.clone(),
                public_key: [5; 32],
            },
            TxBody::RevokeDevice { device },
            TxBody::DeployInstance {
                deployment: deployment.clone(),
            },
            TxBody::TerminateInstance {
                instance: deployment.instance_id(),
            },
            TxBody::ReplaceInstance {
                old: deployment.instance_id(),
                new: deployment.clone(),
            },
            TxBody::Alert {
                instance: deployment.instance_id(),
                level: AlertLevel::Critical,
                reading_time_ms: 1_700_000_000_000,
                evidence: [1; 32],
            },
            TxBody::Acknowledge { alert },
            TxBody::Order {
                alert,
                kind: OrderKind::HospitalTransfer,
                note: Some([2; 32]),
            },
            TxBody::Resolve { alert, note: None },
            TxBody::EhrAnchor {
                first_seq: 1,
                root: [4; 32],
                count: 10,
                from_ms: 1,
                to_ms: 2,
            },
            TxBody::EhrAccess {
                person,
                record: [6; 32],
            },
            TxBody::StatsQuery {
                spec: Bytes::from_static(b"mean rr"),
            },
            TxBody::ProofVerdict {
                query: alert,
                bitmap: Bytes::from_static(&[0xff]),
                all_valid: true,
                evidence: [8; 32],
            },
            TxBody::StatsKey {
                key: Bytes::from_static(b"collective key"),
            },
            TxBody::ReasonsAccess {
                alerts: 3,
                record: [9; 32],
            },
            TxBody::SetEscalationPolicy {
                policy: EscalationPolicy {
                    remind_after_s: 300,
                    escalate_after_s: 900,
                    repeat_s: 900,
                    steps_max: 3,
                    raise_level: true,
                },
            },
            TxBody::Escalate { alert, step: 1 },
        ]
    }

    #[test]
    fn every_kind_round_trips_and_verifies() {
        let chain = [1u8; 32];
        let bodies = sample_bodies();
        assert_eq!(bodies.len(), TxKind::ALL.len());
        for (i, body) in bodies.into_iter().enumerate() {
            let tx = Tx::sign(&key(1), &chain, i as u64, body.clone());
            let again = Tx::decode(tx.bytes().clone()).expect("round trip");
            assert_eq!(again.body(), &body);
            assert_eq!(again.id(), tx.id());
            assert!(again.verify_signature(&chain));
            assert!(!again.verify_signature(&[2u8; 32]), "other chain");
        }
    }

    #[test]
    fn tampered_or_trailing_bytes_are_rejected() {
        let chain = [1u8; 32];
        let tx = Tx::sign(
            &key(1),
            &chain,
            0,
            TxBody::RegisterPerson {
                person: PersonId::from_bytes([1; 16]),
            },
        );
        let mut bytes = tx.bytes().to_vec();
        bytes.push(0);
        assert!(Tx::decode(bytes.into()).is_err());
        let mut bytes = tx.bytes().to_vec();
        bytes[35] ^= 1; // inside the nonce
        let bad = Tx::decode(bytes.into()).expect("still decodes");
        assert!(!bad.verify_signature(&chain));
        assert!(Tx::decode(Bytes::from_static(&[0; 10])).is_err());
        assert!(Tx::decode(Bytes::from(vec![0; TX_BYTES_MAX + 1])).is_err());
    }

    #[test]
    fn unknown_tags_and_bad_option_tags_are_rejected() {
        let chain = [1u8; 32];
        let tx = Tx::sign(
            &key(1),
            &chain,
            0,
            TxBody::Resolve {
                alert: TxId([0; 32]),
                note: None,
            },
        );
        let mut bytes = tx.bytes().to_vec();
        bytes[40] = 99; // body tag
        assert!(Tx::decode(bytes.into()).is_err());
        let mut bytes = tx.bytes().to_vec();
        bytes[41 + 32] = 2; // option tag
        assert!(Tx::decode(bytes.into()).is_err());
    }

    #[test]
    fn batch_verification_names_the_bad_signature() {
        let chain = [1u8; 32];
        let txs: Vec<Tx> = (0..8)
            .map(|n| {
                Tx::sign(
                    &key(n),
                    &chain,
                    n,
                    TxBody::RegisterPerson {
                        person: PersonId::from_bytes([n as u8; 16]),
                    },
                )
            })
            .collect();
        let mut rng = commonware_utils::test_rng();
        let refs: Vec<&Tx> = txs.iter().collect();
        assert!(verify_batch(&mut rng, &chain, &refs).is_empty());
        let mut bytes = txs[5].bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let forged = Tx::decode(bytes.into()).expect("decodes");
        let mut refs: Vec<&Tx> = txs.iter().collect();
        refs[5] = &forged;
        assert_eq!(verify_batch(&mut rng, &chain, &refs), vec![5]);
    }
}
