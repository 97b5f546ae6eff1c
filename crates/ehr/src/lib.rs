//! Vigil's electronic health record: every accepted reading stored as a FHIR R4 Observation,
//! encrypted with its person's data key, in SQLite; batches of records anchored on the ledger
//! by a Merkle root; erasure by destroying the person's data key.
//!
//! ```
//! use vigil_ehr::{Ehr, Identity, SecretKey};
//! use vigil_core::{Metric, PersonId, Reading, Value};
//!
//! let mut ehr = Ehr::open_in_memory(SecretKey::random()).unwrap();
//! let person = PersonId::random();
//! ehr.register_person(person, &Identity { name: "A. Person".into(), ..Identity::default() }).unwrap();
//! let reading = Reading {
//!     device: "thermo-01".parse().unwrap(),
//!     metric: Metric::BodyTemperature,
//!     time_ms: 1_700_000_000_000,
//!     value: Value::Scalar(3_820),
//! };
//! ehr.append(person, &[reading]).unwrap();
//! let anchor = ehr.seal_batch().unwrap().expect("one record to anchor");
//! // ... the node submits `anchor` to the ledger; later an auditor checks the store against it:
//! let report = ehr.verify(&[anchor]).unwrap();
//! assert!(report.is_intact());
//! ```
//!
//! What the ledger sees: per batch, the Merkle root of its records' leaves and their count.
//! A leaf hashes a record's ciphertext and metadata, not its plaintext, so verification needs
//! no key and stays green after a person is erased.

pub mod fhir;
mod seal;

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use vigil_core::{DeviceId, Digest, Metric, PersonId, Reading, TimestampMs, merkle};

pub use seal::SecretKey;

/// Unwrapped data keys kept in memory; beyond this the cache is emptied and refilled.
const KEY_CACHE_MAX: usize = 100_000;
/// A device's packs may arrive out of order by up to this many sequence numbers (a master
/// device re-sending its outbox after a network loss); older ones are refused, which bounds
/// what must be remembered to tell a replay from a late pack.
pub const REPLAY_WINDOW: u64 = 4_096;
/// Records returned by one read.
pub const READ_LIMIT_MAX: usize = 10_000;

const DATA_KEY_DOMAIN: &[u8] = b"vigil/ehr/data-key/v1";
const IDENTITY_DOMAIN: &[u8] = b"vigil/ehr/identity/v1";
const RECORD_DOMAIN: &[u8] = b"vigil/ehr/record/v1";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EhrError {
    #[error("health record database: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("person {0} is not registered in the health record")]
    UnknownPerson(PersonId),
    #[error("person {0} is already registered")]
    AlreadyRegistered(PersonId),
    #[error("person {0} was erased: their data key is destroyed")]
    Erased(PersonId),
    #[error(
        "stored data does not decrypt for person {0}: the record was altered or the master key is wrong"
    )]
    Undecryptable(PersonId),
    #[error("the access could not be logged on the ledger, so it was refused: {0}")]
    AccessNotLogged(String),
    #[error("pack {sequence} of device {device} was already accepted (replay)")]
    Replayed { device: DeviceId, sequence: u64 },
    #[error(
        "pack {sequence} of device {device} is older than the replay window (latest accepted: {highest})"
    )]
    TooOld {
        device: DeviceId,
        sequence: u64,
        highest: u64,
    },
    #[error("read limit {0} is over the maximum of {READ_LIMIT_MAX}")]
    LimitTooLarge(usize),
    #[error(
        "anchors must cover consecutive records from 1: anchor {index} starts at {first_seq}, expected {expected}"
    )]
    AnchorsNotContiguous {
        index: usize,
        first_seq: u64,
        expected: u64,
    },
}

/// A person's real identity. Stored only here, encrypted, and linked only by pseudonym.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub name: String,
    pub address: String,
    pub phone: String,
}

/// What the ledger records for one batch of records: which records (`first_seq`, `count`) and
/// the Merkle root over their leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub first_seq: u64,
    pub count: u64,
    pub root: Digest,
}

/// One device pack for [`Ehr::append_packs`]: whose readings, from which device, under which
/// of the device's sequence numbers.
#[derive(Debug, Clone, Copy)]
pub struct PackToStore<'a> {
    pub person: PersonId,
    pub device: &'a DeviceId,
    pub sequence: u64,
    pub readings: &'a [Reading],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    Identity,
    Records,
}

/// One read of a person's data, to be logged on the ledger before the data is released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEvent {
    /// Who read: the identity's public key or name as the node authenticates it.
    pub accessor: String,
    pub person: PersonId,
    pub kind: AccessKind,
    pub time_ms: TimestampMs,
}

/// Where reads are logged. The node's implementation submits a ledger transaction; a read is
/// refused if logging fails, so no read goes unrecorded.
pub trait AccessLog {
    fn record(&mut self, event: &AccessEvent) -> Result<(), String>;
}

/// What `verify` found. Problems are listed per record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Records covered by the anchors given.
    pub anchored: u64,
    /// Anchored records present and proven against their anchor.
    pub verified: u64,
    /// Records stored after the last anchor given, waiting for the next one.
    pub pending: u64,
    pub altered: Vec<u64>,
    pub missing: Vec<u64>,
    /// Records under sequence numbers the store never assigned (written behind its back).
    pub extra: Vec<u64>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.altered.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }
}

/// One record's leaf and audit path ([`Ehr::record_proof`]); `path` is empty until the
/// record's batch is sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordProof {
    pub seq: u64,
    pub person: PersonId,
    pub time_ms: TimestampMs,
    pub leaf: Digest,
    pub path: Vec<Digest>,
    /// The sealed batch holding the record: its first sequence number and size (`None` until
    /// the batch is sealed). The ledger's anchor of that batch has the same size and root.
    pub batch: Option<(u64, u64)>,
}

/// The health record store.
pub struct Ehr {
    db: Connection,
    master: SecretKey,
    keys: HashMap<PersonId, SecretKey>,
    /// Leaves of the records stored since the last seal, as they were written; `None` when not
    /// known (a fresh open, a failed transaction), and then read back from the database.
    unsealed: Option<Unsealed>,
}

/// The leaves of records `first_seq..first_seq + leaves.len()`, all stored, none sealed.
struct Unsealed {
    first_seq: u64,
    leaves: Vec<Digest>,
}

impl Ehr {
    pub fn open(path: &Path, master: SecretKey) -> Result<Self, EhrError> {
        Self::init(Connection::open(path)?, master)
    }

    pub fn open_in_memory(master: SecretKey) -> Result<Self, EhrError> {
        Self::init(Connection::open_in_memory()?, master)
    }

    fn init(db: Connection, master: SecretKey) -> Result<Self, EhrError> {
        // WAL for concurrent readers; secure_delete so an erased key's bytes are overwritten in
        // the file rather than left in a free page.
        //
        // Durability: in WAL mode with `synchronous = NORMAL` a commit is written to the log
        // before `append_packs` returns (so before the device is answered) but not fsynced; the
        // log is fsynced at each checkpoint. An acknowledged pack therefore survives a crash of
        // the node process (SIGKILL included) but may be lost if the machine loses power
        // before the next checkpoint; the device has then dropped it from its outbox. `FULL`
        // would close that gap at the price of one fsync per batch. The larger checkpoint
        // interval and page cache write each hot page (the person index, recent rows) to the
        // database file once per checkpoint rather than once per batch.
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA wal_autocheckpoint = 16384;
             PRAGMA journal_size_limit = 134217728;
             PRAGMA cache_size = -65536;
             PRAGMA secure_delete = ON;
             CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT OR IGNORE INTO meta VALUES ('next_seq', 1), ('sealed_through', 0);
             CREATE TABLE IF NOT EXISTS data_keys (
                 person BLOB PRIMARY KEY, nonce BLOB NOT NULL, wrapped BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS identities (
                 person BLOB PRIMARY KEY, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS records (
                 seq INTEGER PRIMARY KEY, person BLOB NOT NULL, device TEXT NOT NULL,
                 metric INTEGER NOT NULL, time_ms INTEGER NOT NULL,
                 nonce BLOB NOT NULL, ciphertext BLOB NOT NULL, proof BLOB);
             CREATE INDEX IF NOT EXISTS records_by_person ON records (person, time_ms);
             CREATE TABLE IF NOT EXISTS accepted_packs (
                 device TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (device, seq))
                 WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS device_highest (
                 device TEXT PRIMARY KEY, seq INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS record_proofs (
                 seq INTEGER PRIMARY KEY, path BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS batch_leaves (
                 first_seq INTEGER PRIMARY KEY, leaves BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS anchors (
                 first_seq INTEGER PRIMARY KEY, count INTEGER NOT NULL, root BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS access_log (
                 accessor TEXT NOT NULL, person BLOB NOT NULL, kind TEXT NOT NULL,
                 time_ms INTEGER NOT NULL);",
        )?;
        Ok(Self {
            db,
            master,
            keys: HashMap::new(),
            unsealed: None,
        })
    }

    /// Creates the person's data key and stores their identity encrypted under it.
    pub fn register_person(
        &mut self,
        person: PersonId,
        identity: &Identity,
    ) -> Result<(), EhrError> {
        let known: bool = self.db.query_row(
            "SELECT EXISTS (SELECT 1 FROM identities WHERE person = ?1)",
            [person.as_bytes()],
            |row| row.get(0),
        )?;
        if known {
            return Err(EhrError::AlreadyRegistered(person));
        }
        let data_key = SecretKey::random();
        let (key_nonce, wrapped) = seal::seal(
            &self.master,
            &aad(DATA_KEY_DOMAIN, person, &[]),
            &data_key.0,
        );
        let plaintext = serde_json::to_vec(identity).unwrap_or_default();
        let (nonce, ciphertext) =
            seal::seal(&data_key, &aad(IDENTITY_DOMAIN, person, &[]), &plaintext);
        let tx = self.db.transaction()?;
        tx.execute(
            "INSERT INTO data_keys VALUES (?1, ?2, ?3)",
            params![person.as_bytes(), key_nonce, wrapped],
        )?;
        tx.execute(
            "INSERT INTO identities VALUES (?1, ?2, ?3)",
            params![person.as_bytes(), nonce, ciphertext],
        )?;
        tx.commit()?;
        self.keys.insert(person, data_key);
        Ok(())
    }

    fn data_key(&mut self, person: PersonId) -> Result<SecretKey, EhrError> {
        if let Some(key) = self.keys.get(&person) {
            return Ok(key.clone());
        }
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .db
            .query_row(
                "SELECT nonce, wrapped FROM data_keys WHERE person = ?1",
                [person.as_bytes()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((nonce, wrapped)) = row else {
            let registered: bool = self.db.query_row(
                "SELECT EXISTS (SELECT 1 FROM identities WHERE person = ?1)",
                [person.as_bytes()],
                |row| row.get(0),
            )?;
            return Err(if registered {
                EhrError::Erased(person)
            } else {
                EhrError::UnknownPerson(person)
            });
        };
        let bytes = seal::open(
            &self.master,
            &nonce,
            &aad(DATA_KEY_DOMAIN, person, &[]),
            &wrapped,
        )
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or(EhrError::Undecryptable(person))?;
        if self.keys.len() >= KEY_CACHE_MAX {
            self.keys.clear();
        }
        let key = SecretKey::from_bytes(bytes);
        self.keys.insert(person, key.clone());
        Ok(key)
    }

    /// Stores readings of one person as encrypted Observations, all or none. Returns their
    /// sequence numbers in the store.
    pub fn append(&mut self, person: PersonId, readings: &[Reading]) -> Result<Vec<u64>, EhrError> {
        let cipher = seal::cipher(&self.data_key(person)?);
        let tx = self.db.transaction()?;
        let first = next_seq(&tx)?;
        let mut writer = RecordWriter::new(&tx, first, readings.len())?;
        for (reading, nonce) in readings.iter().zip(seal::nonces(readings.len())) {
            writer.write(&cipher, &nonce, person, reading)?;
        }
        let (next, leaves) = writer.finish()?;
        tx.commit()?;
        self.remember_unsealed(first, leaves);
        Ok((first..next).collect())
    }

    /// Stores the readings of a device's pack exactly once: the pack's sequence number is
    /// recorded in the same transaction as its readings, so a pack re-sent after a crash or a
    /// lost acknowledgement is refused as a replay, never stored twice.
    pub fn append_pack(
        &mut self,
        person: PersonId,
        device: &DeviceId,
        sequence: u64,
        readings: &[Reading],
    ) -> Result<Vec<u64>, EhrError> {
        let pack = PackToStore {
            person,
            device,
            sequence,
            readings,
        };
        let mut results = self.append_packs(&[pack])?;
        match results.pop() {
            Some(stored) => stored.map(Iterator::collect),
            // `append_packs` answers every pack it is given.
            None => Ok(Vec::new()),
        }
    }

    /// Stores many devices' packs in one SQLite transaction, each exactly once, as
    /// [`Ehr::append_pack`] does for one. Returns one answer per pack, in order: the record
    /// sequence numbers it was stored under, or why it was refused (replay, too old, unknown
    /// or erased person); a refused pack stores nothing and does not affect the others.
    /// The outer error means the database failed and the whole batch was rolled back.
    ///
    /// Why batches: a commit costs far more than an insert, so ingestion commits one batch of
    /// packs at a time (the node groups what arrived together).
    pub fn append_packs(
        &mut self,
        packs: &[PackToStore<'_>],
    ) -> Result<Vec<Result<Range<u64>, EhrError>>, EhrError> {
        let mut keys = Vec::with_capacity(packs.len());
        for pack in packs {
            keys.push(match self.data_key(pack.person) {
                Ok(key) => Ok(seal::cipher(&key)),
                Err(EhrError::Database(error)) => return Err(EhrError::Database(error)),
                Err(refused) => Err(refused),
            });
        }
        let readings_total = packs.iter().map(|p| p.readings.len()).sum();
        let mut nonces = seal::nonces(readings_total).into_iter();
        let tx = self.db.transaction()?;
        let first = next_seq(&tx)?;
        let mut results = Vec::with_capacity(packs.len());
        let mut writer = RecordWriter::new(&tx, first, readings_total)?;
        for (pack, cipher) in packs.iter().zip(keys) {
            let cipher = match cipher {
                Ok(cipher) => cipher,
                Err(refused) => {
                    results.push(Err(refused));
                    continue;
                }
            };
            match accept_sequence(&tx, pack.device, pack.sequence) {
                Ok(()) => {}
                Err(EhrError::Database(error)) => return Err(EhrError::Database(error)),
                Err(refused) => {
                    results.push(Err(refused));
                    continue;
                }
            }
            let pack_first = writer.next;
            for reading in pack.readings {
                // As many nonces were drawn as there are readings in all the packs.
                let nonce = nonces.next().unwrap_or_else(|| seal::nonces(1)[0]);
                writer.write(&cipher, &nonce, pack.person, reading)?;
            }
            results.push(Ok(pack_first..writer.next));
        }
        let (_, leaves) = writer.finish()?;
        tx.commit()?;
        self.remember_unsealed(first, leaves);
        Ok(results)
    }

    /// Keeps the leaves of records just committed, if they follow those already kept.
    fn remember_unsealed(&mut self, first: u64, leaves: Vec<Digest>) {
        match &mut self.unsealed {
            Some(unsealed) if unsealed.first_seq + unsealed.leaves.len() as u64 == first => {
                unsealed.leaves.extend(leaves);
            }
            _ => self.unsealed = None,
        }
    }

    /// Closes the batch of records stored since the last anchor: computes their Merkle root,
    /// stores the batch's leaves (from which any record's inclusion proof is derived), and
    /// returns the anchor to submit to the ledger. `None` when nothing was stored since.
    ///
    /// The leaves are those computed when the records were written, kept in memory since: a
    /// seal reads no record back, and one row per batch replaces a proof row per record.
    pub fn seal_batch(&mut self) -> Result<Option<Anchor>, EhrError> {
        let unsealed = self.unsealed.take();
        let tx = self.db.transaction()?;
        let sealed: u64 = tx.query_row(
            "SELECT value FROM meta WHERE name = 'sealed_through'",
            [],
            |r| r.get(0),
        )?;
        let next = next_seq(&tx)?;
        let first_seq = sealed + 1;
        if next <= first_seq {
            drop(tx);
            self.unsealed = Some(Unsealed {
                first_seq,
                leaves: Vec::new(),
            });
            return Ok(None);
        }
        let leaves = match unsealed {
            Some(kept)
                if kept.first_seq == first_seq && kept.leaves.len() as u64 == next - first_seq =>
            {
                kept.leaves
            }
            _ => load_leaves(&tx, first_seq, next - 1)?
                .into_iter()
                .map(|(_, leaf)| leaf)
                .collect(),
        };
        // Records are only ever appended in this range, so every sequence number is present.
        debug_assert_eq!(leaves.len() as u64, next - first_seq);
        let anchor = Anchor {
            first_seq,
            count: leaves.len() as u64,
            root: merkle::root(&leaves),
        };
        tx.execute(
            "INSERT INTO batch_leaves VALUES (?1, ?2)",
            params![first_seq, leaves.concat()],
        )?;
        tx.execute(
            "INSERT INTO anchors VALUES (?1, ?2, ?3)",
            params![anchor.first_seq, anchor.count, anchor.root],
        )?;
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE name = 'sealed_through'",
            [next - 1],
        )?;
        tx.commit()?;
        self.unsealed = Some(Unsealed {
            first_seq: next,
            leaves: Vec::new(),
        });
        Ok(Some(anchor))
    }

    /// The anchors this store sealed, in order.
    pub fn sealed_anchors(&self) -> Result<Vec<Anchor>, EhrError> {
        let mut query = self
            .db
            .prepare("SELECT first_seq, count, root FROM anchors ORDER BY first_seq")?;
        let anchors = query.query_map([], |row| {
            let root: Vec<u8> = row.get(2)?;
            Ok(Anchor {
                first_seq: row.get(0)?,
                count: row.get(1)?,
                root: root.try_into().unwrap_or([0; 32]),
            })
        })?;
        Ok(anchors.collect::<Result<_, _>>()?)
    }

    /// Checks every stored record against the anchors recorded on the ledger, which must cover
    /// consecutive records from the first. Needs no data key, so erased people still verify.
    pub fn verify(&self, anchors: &[Anchor]) -> Result<VerifyReport, EhrError> {
        let mut report = VerifyReport::default();
        let mut expected = 1;
        for (index, anchor) in anchors.iter().enumerate() {
            if anchor.first_seq != expected {
                return Err(EhrError::AnchorsNotContiguous {
                    index,
                    first_seq: anchor.first_seq,
                    expected,
                });
            }
            expected = anchor.first_seq.saturating_add(anchor.count);
            self.verify_batch(anchor, &mut report)?;
        }
        // Records after the last anchor are pending (a coming block anchors them), unless the
        // store never assigned their sequence number: then they were written behind its back.
        let next: u64 =
            self.db
                .query_row("SELECT value FROM meta WHERE name = 'next_seq'", [], |r| {
                    r.get(0)
                })?;
        let mut later = self
            .db
            .prepare("SELECT seq FROM records WHERE seq >= ?1 ORDER BY seq")?;
        for seq in later.query_map([expected], |row| row.get::<_, u64>(0))? {
            let seq = seq?;
            if seq >= next {
                report.extra.push(seq);
            } else {
                report.pending += 1;
            }
        }
        Ok(report)
    }

    /// One record's leaf and inclusion proof, to check that single record against the ledger's
    /// anchor of its batch (RFC 6962 audit path). Needs no data key and reveals no value: the
    /// leaf hashes the ciphertext. The leaf is recomputed from the stored row and the path from
    /// the leaves stored when the batch was sealed, so an altered record fails its proof while
    /// an altered neighbour does not. `None` if no record has this sequence number.
    pub fn record_proof(&self, seq: u64) -> Result<Option<RecordProof>, EhrError> {
        let Some((_, leaf)) = load_leaves(&self.db, seq, seq)?.pop() else {
            return Ok(None);
        };
        let (person, time_ms): (Vec<u8>, i64) = self.db.query_row(
            "SELECT person, time_ms FROM records WHERE seq = ?1",
            [seq],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let person = <[u8; 16]>::try_from(person.as_slice())
            .map(PersonId::from_bytes)
            .map_err(|_| EhrError::Undecryptable(PersonId::from_bytes([0; 16])))?;
        let batch: Option<(u64, u64)> = self
            .db
            .query_row(
                "SELECT first_seq, count FROM anchors WHERE first_seq <= ?1
                 ORDER BY first_seq DESC LIMIT 1",
                [seq],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?
            .filter(|(first, count): &(u64, u64)| seq < first.saturating_add(*count));
        let path = match batch {
            Some((first, _)) => self.sealed_path(seq, first)?,
            None => Vec::new(),
        };
        Ok(Some(RecordProof {
            seq,
            person,
            time_ms,
            leaf,
            path,
            batch,
        }))
    }

    /// The audit path of record `seq` in the sealed batch `first..first + count`.
    fn sealed_path(&self, seq: u64, first: u64) -> Result<Vec<Digest>, EhrError> {
        if let Some(leaves) = self.batch_leaves(first)? {
            return Ok(merkle::inclusion_proof(&leaves, (seq - first) as usize).unwrap_or_default());
        }
        Ok(legacy_path(&self.db, seq)?.unwrap_or_default())
    }

    /// The leaves stored when the batch starting at `first` was sealed.
    fn batch_leaves(&self, first: u64) -> Result<Option<Vec<Digest>>, EhrError> {
        let blob: Option<Vec<u8>> = self
            .db
            .prepare_cached("SELECT leaves FROM batch_leaves WHERE first_seq = ?1")?
            .query_row([first], |row| row.get(0))
            .optional()?;
        Ok(blob.map(|blob| digests(&blob)))
    }

    fn verify_batch(&self, anchor: &Anchor, report: &mut VerifyReport) -> Result<(), EhrError> {
        let last = anchor.first_seq + anchor.count.saturating_sub(1);
        report.anchored += anchor.count;
        let rows = load_leaves(&self.db, anchor.first_seq, last)?;
        let complete = rows.len() as u64 == anchor.count;
        let leaves: Vec<Digest> = rows.iter().map(|(_, leaf)| *leaf).collect();
        if complete && merkle::root(&leaves) == anchor.root {
            report.verified += anchor.count;
            return Ok(());
        }
        // Something differs: find which records. The leaves stored at sealing are trusted
        // only if they give the anchored root; a record whose leaf cannot be shown to be in the
        // anchored tree is reported altered.
        let present: HashMap<u64, Digest> = rows.into_iter().collect();
        let sealed = self
            .batch_leaves(anchor.first_seq)?
            .filter(|sealed| sealed.len() as u64 == anchor.count)
            .filter(|sealed| merkle::root(sealed) == anchor.root);
        for seq in anchor.first_seq..=last {
            let Some(leaf) = present.get(&seq) else {
                report.missing.push(seq);
                continue;
            };
            let index = (seq - anchor.first_seq) as usize;
            let proven = match &sealed {
                Some(sealed) => sealed[index] == *leaf,
                // Stores sealed before batches kept their leaves hold a path per record.
                None => legacy_path(&self.db, seq)?.is_some_and(|path| {
                    merkle::root_from_proof(leaf, index, anchor.count as usize, &path)
                        == Some(anchor.root)
                }),
            };
            if proven {
                report.verified += 1;
            } else {
                report.altered.push(seq);
            }
        }
        Ok(())
    }

    /// A person's identity, released only once the access is logged.
    pub fn read_identity(
        &mut self,
        accessor: &str,
        person: PersonId,
        time_ms: TimestampMs,
        log: &mut dyn AccessLog,
    ) -> Result<Identity, EhrError> {
        let key = self.data_key(person)?;
        let (nonce, ciphertext): (Vec<u8>, Vec<u8>) = self
            .db
            .query_row(
                "SELECT nonce, ciphertext FROM identities WHERE person = ?1",
                [person.as_bytes()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?
            .ok_or(EhrError::UnknownPerson(person))?;
        let plaintext = seal::open(
            &key,
            &nonce,
            &aad(IDENTITY_DOMAIN, person, &[]),
            &ciphertext,
        )
        .ok_or(EhrError::Undecryptable(person))?;
        let identity =
            serde_json::from_slice(&plaintext).map_err(|_| EhrError::Undecryptable(person))?;
        self.log_access(accessor, person, AccessKind::Identity, time_ms, log)?;
        Ok(identity)
    }

    /// A person's Observations with effective time in `[from_ms, to_ms)`, oldest first, at most
    /// `limit`; released only once the access is logged.
    pub fn read_observations(
        &mut self,
        accessor: &str,
        person: PersonId,
        (from_ms, to_ms): (TimestampMs, TimestampMs),
        limit: usize,
        time_ms: TimestampMs,
        log: &mut dyn AccessLog,
    ) -> Result<Vec<serde_json::Value>, EhrError> {
        if limit > READ_LIMIT_MAX {
            return Err(EhrError::LimitTooLarge(limit));
        }
        let key = self.data_key(person)?;
        let mut query = self.db.prepare_cached(
            "SELECT seq, metric, time_ms, nonce, ciphertext FROM records
             WHERE person = ?1 AND time_ms >= ?2 AND time_ms < ?3 ORDER BY time_ms, seq LIMIT ?4",
        )?;
        let rows = query.query_map(
            params![person.as_bytes(), from_ms, to_ms, limit as i64],
            |row| {
                Ok((
                    row.get::<_, u64>(0)?,
                    row.get::<_, u8>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                    row.get::<_, Vec<u8>>(4)?,
                ))
            },
        )?;
        let mut observations = Vec::new();
        for row in rows {
            let (seq, metric, time, nonce, ciphertext) = row?;
            let metric = Metric::ALL
                .into_iter()
                .find(|m| m.code() == metric)
                .ok_or(EhrError::Undecryptable(person))?;
            let plaintext = seal::open(
                &key,
                &nonce,
                &record_aad(seq, person, metric, time),
                &ciphertext,
            )
            .ok_or(EhrError::Undecryptable(person))?;
            observations.push(
                serde_json::from_slice(&plaintext).map_err(|_| EhrError::Undecryptable(person))?,
            );
        }
        drop(query);
        self.log_access(accessor, person, AccessKind::Records, time_ms, log)?;
        Ok(observations)
    }

    fn log_access(
        &mut self,
        accessor: &str,
        person: PersonId,
        kind: AccessKind,
        time_ms: TimestampMs,
        log: &mut dyn AccessLog,
    ) -> Result<(), EhrError> {
        let event = AccessEvent {
            accessor: accessor.to_owned(),
            person,
            kind,
            time_ms,
        };
        log.record(&event).map_err(EhrError::AccessNotLogged)?;
        let kind = match kind {
            AccessKind::Identity => "identity",
            AccessKind::Records => "records",
        };
        self.db.execute(
            "INSERT INTO access_log VALUES (?1, ?2, ?3, ?4)",
            params![accessor, person.as_bytes(), kind, time_ms],
        )?;
        Ok(())
    }

    /// Destroys the person's data key: their identity and records become unreadable for good,
    /// while their ciphertexts, and so every anchor, still verify.
    pub fn erase_person(&mut self, person: PersonId) -> Result<(), EhrError> {
        let deleted = self.db.execute(
            "DELETE FROM data_keys WHERE person = ?1",
            [person.as_bytes()],
        )?;
        self.keys.remove(&person);
        if deleted == 0 {
            // Erasing twice is fine; erasing someone never registered is a mistake.
            let registered: bool = self.db.query_row(
                "SELECT EXISTS (SELECT 1 FROM identities WHERE person = ?1)",
                [person.as_bytes()],
                |row| row.get(0),
            )?;
            if !registered {
                return Err(EhrError::UnknownPerson(person));
            }
        }
        // Push the overwritten pages out of the write-ahead log too.
        self.db
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

fn next_seq(tx: &rusqlite::Transaction<'_>) -> Result<u64, EhrError> {
    Ok(tx
        .prepare_cached("SELECT value FROM meta WHERE name = 'next_seq'")?
        .query_row([], |r| r.get(0))?)
}

/// Writes records under consecutive sequence numbers inside one transaction, keeping each
/// record's leaf (the same as [`load_leaves`] computes from the stored row).
struct RecordWriter<'t> {
    tx: &'t rusqlite::Transaction<'t>,
    insert: rusqlite::CachedStatement<'t>,
    next: u64,
    plaintext: Vec<u8>,
    aad: Vec<u8>,
    leaves: Vec<Digest>,
}

impl<'t> RecordWriter<'t> {
    fn new(
        tx: &'t rusqlite::Transaction<'t>,
        first: u64,
        capacity: usize,
    ) -> Result<Self, EhrError> {
        Ok(Self {
            tx,
            insert: tx.prepare_cached(
                "INSERT INTO records (seq, person, device, metric, time_ms, nonce, ciphertext)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?,
            next: first,
            plaintext: Vec::with_capacity(fhir::OBSERVATION_BYTES_TYPICAL),
            aad: Vec::with_capacity(RECORD_AAD_LEN),
            leaves: Vec::with_capacity(capacity),
        })
    }

    fn write(
        &mut self,
        cipher: &seal::Cipher,
        nonce: &[u8; seal::NONCE_LEN],
        person: PersonId,
        reading: &Reading,
    ) -> Result<(), EhrError> {
        let seq = self.next;
        self.plaintext.clear();
        fhir::write_observation(&mut self.plaintext, seq, person, reading);
        record_aad_into(&mut self.aad, seq, person, reading.metric, reading.time_ms);
        seal::seal_in_place(cipher, nonce, &self.aad, &mut self.plaintext);
        let columns = [
            ValueRef::Blob(person.as_bytes()),
            ValueRef::Text(reading.device.as_str().as_bytes()),
            ValueRef::Integer(i64::from(reading.metric.code())),
            ValueRef::Integer(reading.time_ms),
            ValueRef::Blob(nonce),
            ValueRef::Blob(&self.plaintext),
        ];
        self.insert.execute(params![
            seq,
            person.as_bytes(),
            reading.device.as_str(),
            reading.metric.code(),
            reading.time_ms,
            nonce,
            self.plaintext
        ])?;
        self.leaves.push(record_leaf(seq, &columns));
        self.next += 1;
        Ok(())
    }

    /// Records the next sequence number; returns it with the leaves written.
    fn finish(self) -> Result<(u64, Vec<Digest>), EhrError> {
        self.tx
            .prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'next_seq'")?
            .execute([self.next])?;
        Ok((self.next, self.leaves))
    }
}

/// Records a device's pack sequence number inside `tx`, or refuses it: a replay of a pack in the
/// window, or a pack older than the window. Keeps only the window's sequence numbers.
fn accept_sequence(
    tx: &rusqlite::Transaction<'_>,
    device: &DeviceId,
    sequence: u64,
) -> Result<(), EhrError> {
    let highest: Option<u64> = tx
        .prepare_cached("SELECT seq FROM device_highest WHERE device = ?1")?
        .query_row([device.as_str()], |row| row.get(0))
        .optional()?;
    if let Some(highest) = highest
        && sequence.saturating_add(REPLAY_WINDOW) <= highest
    {
        return Err(EhrError::TooOld {
            device: device.clone(),
            sequence,
            highest,
        });
    }
    let inserted = tx
        .prepare_cached("INSERT OR IGNORE INTO accepted_packs VALUES (?1, ?2)")?
        .execute(params![device.as_str(), sequence])?;
    if inserted == 0 {
        return Err(EhrError::Replayed {
            device: device.clone(),
            sequence,
        });
    }
    if highest.is_none_or(|highest| sequence > highest) {
        tx.prepare_cached("INSERT OR REPLACE INTO device_highest VALUES (?1, ?2)")?
            .execute(params![device.as_str(), sequence])?;
        // Forget what the window no longer needs. Written as a range on the primary key
        // (`seq <= cutoff`, not `seq + window <= sequence`) so SQLite seeks instead of scanning
        // the device's whole window on every pack.
        if let Some(cutoff) = sequence.checked_sub(REPLAY_WINDOW) {
            tx.prepare_cached("DELETE FROM accepted_packs WHERE device = ?1 AND seq <= ?2")?
                .execute(params![device.as_str(), cutoff])?;
        }
    }
    Ok(())
}

fn aad(domain: &[u8], person: PersonId, rest: &[u8]) -> Vec<u8> {
    [domain, person.as_bytes(), rest].concat()
}

/// Bytes of a record's associated data.
const RECORD_AAD_LEN: usize = RECORD_DOMAIN.len() + 16 + 8 + 1 + 8;

/// Binds a record's ciphertext to its row: moving it to another sequence number, person,
/// metric or time makes it fail to decrypt.
fn record_aad(seq: u64, person: PersonId, metric: Metric, time_ms: TimestampMs) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_AAD_LEN);
    record_aad_into(&mut out, seq, person, metric, time_ms);
    out
}

/// [`record_aad`] into a reused buffer (ingestion writes one per reading).
fn record_aad_into(
    out: &mut Vec<u8>,
    seq: u64,
    person: PersonId,
    metric: Metric,
    time_ms: TimestampMs,
) {
    out.clear();
    out.extend_from_slice(RECORD_DOMAIN);
    out.extend_from_slice(person.as_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.push(metric.code());
    out.extend_from_slice(&time_ms.to_be_bytes());
}

/// Leaves of records `first..=last` that are present, in order.
fn load_leaves(db: &Connection, first: u64, last: u64) -> Result<Vec<(u64, Digest)>, EhrError> {
    let mut query = db.prepare_cached(
        "SELECT seq, person, device, metric, time_ms, nonce, ciphertext FROM records
         WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
    )?;
    let rows = query.query_map([first, last], |row| {
        let seq: u64 = row.get(0)?;
        let columns = [
            row.get_ref(1)?,
            row.get_ref(2)?,
            row.get_ref(3)?,
            row.get_ref(4)?,
            row.get_ref(5)?,
            row.get_ref(6)?,
        ];
        Ok((seq, record_leaf(seq, &columns)))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A record's leaf: its sequence number and every stored column (person, device, metric,
/// time, nonce, ciphertext) with its storage type, so any change to a stored byte changes it,
/// and a tampered column of an unexpected type is reported altered rather than failing the
/// whole verification.
fn record_leaf(seq: u64, columns: &[ValueRef<'_>; 6]) -> Digest {
    let mut content = Vec::with_capacity(384);
    for column in columns {
        match *column {
            ValueRef::Null => content.push(0),
            ValueRef::Integer(i) => {
                content.push(1);
                content.extend_from_slice(&i.to_be_bytes());
            }
            ValueRef::Real(f) => {
                content.push(2);
                content.extend_from_slice(&f.to_bits().to_be_bytes());
            }
            ValueRef::Text(bytes) => push_bytes(&mut content, 3, bytes),
            ValueRef::Blob(bytes) => push_bytes(&mut content, 4, bytes),
        }
    }
    let digest = vigil_core::digest("vigil/ehr/leaf/v1", &[&seq.to_be_bytes(), &content]);
    merkle::leaf_hash(&digest)
}

/// A record's audit path as stores sealed before batches kept their leaves recorded it: in
/// its own table, or earlier in the record's row.
fn legacy_path(db: &Connection, seq: u64) -> Result<Option<Vec<Digest>>, EhrError> {
    let path: Option<Vec<u8>> = db
        .prepare_cached(
            "SELECT COALESCE((SELECT path FROM record_proofs WHERE seq = ?1),
                             (SELECT proof FROM records WHERE seq = ?1))",
        )?
        .query_row([seq], |row| row.get(0))
        .optional()?
        .flatten();
    Ok(path.map(|path| digests(&path)))
}

/// 32-byte digests laid end to end.
fn digests(bytes: &[u8]) -> Vec<Digest> {
    bytes
        .chunks_exact(32)
        .map(|chunk| chunk.try_into().unwrap_or([0; 32]))
        .collect()
}

fn push_bytes(content: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    content.push(tag);
    content.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    content.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests;
