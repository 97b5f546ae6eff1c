//! Vigil's electronic health record: every accepted reading stored as a FHIR R4 Observation,
//! encrypted with its person's data key, in SQLite; batches of records anchored on the ledger
//! by a Merkle root; erasure by destroying the person's data key.
//!
//! A record is one device pack: a FHIR `collection` Bundle of the pack's Observations,
//! compressed, then sealed. Why not a record per reading: per reading, a row, an index entry, an
//! AEAD call, a leaf hash and some 700 bytes of JSON cost more than everything else ingestion
//! does; a pack's Observations share most of their text, so its Bundle compresses about tenfold.
//! The pack is also the unit a device signs and the node answers, so it is the natural unit to
//! prove: `verify` names the altered pack.
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
//! let record = ehr.append(person, &[reading]).unwrap();
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
mod reasons;
mod seal;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::Path;

use lru::LruCache;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use vigil_core::{DeviceId, Digest, PersonId, Reading, TimestampMs, merkle};

pub use reasons::{ListingAccess, REASON_BYTES_MAX, REASONS_PER_LISTING_MAX};
pub use seal::SecretKey;

/// Unwrapped data keys kept in memory; beyond this the least recently used is forgotten.
const KEY_CACHE_MAX: NonZeroUsize = NonZeroUsize::new(100_000).expect("not zero");
/// A device's packs may arrive out of order by up to this many sequence numbers (a master
/// device re-sending its outbox after a network loss); older ones are refused, which bounds
/// what must be remembered to tell a replay from a late pack.
pub const REPLAY_WINDOW: u64 = 4_096;
/// Observations returned by one read.
pub const READ_LIMIT_MAX: usize = 10_000;
/// zstd level for records: the fastest, which already shrinks a pack's Bundle about tenfold.
const COMPRESSION_LEVEL: i32 = 1;
/// Bytes a decompressed Observation may take, at most (a typical one is about 700); bounds
/// what a record may decompress to.
const OBSERVATION_BYTES_MAX: usize = 4_096;
/// The layout of the records table this code writes. Stores of earlier layouts are refused
/// rather than misread.
const FORMAT: i64 = 2;

const DATA_KEY_DOMAIN: &[u8] = b"vigil/ehr/data-key/v1";
const IDENTITY_DOMAIN: &[u8] = b"vigil/ehr/identity/v1";
const RECORD_DOMAIN: &[u8] = b"vigil/ehr/record/v1";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EhrError {
    #[error("health record database: {0}")]
    Database(#[from] rusqlite::Error),
    #[error(
        "the health record database has format {found}, this node reads format {FORMAT}: start it on a new data directory"
    )]
    UnsupportedFormat { found: i64 },
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
    #[error("a record holds at least one reading")]
    EmptyRecord,
    #[error(
        "pack {sequence} of device {device}: sequence numbers are stored as SQLite integers, at most {}",
        i64::MAX
    )]
    SequenceOutOfRange { device: DeviceId, sequence: u64 },
    #[error("creating the health record {path}: {detail}")]
    Create {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error("could not start the checkpoint thread: {0}")]
    Checkpoint(String),
    #[error("record compression: {0}")]
    Compression(String),
    #[error("read limit {0} is over the maximum of {READ_LIMIT_MAX}")]
    LimitTooLarge(usize),
    #[error("a listing releases the reasons of at most {REASONS_PER_LISTING_MAX} alerts, not {0}")]
    ListingTooLarge(usize),
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

/// What the ledger records for one batch of records: which records (`first_seq`, `count`), the
/// Merkle root over their leaves, and the span of their readings' effective times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub first_seq: u64,
    pub count: u64,
    pub root: Digest,
    pub from_ms: TimestampMs,
    pub to_ms: TimestampMs,
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
    /// A listing that released many alerts' reasons at once: one logged access for all.
    fn record_listing(&mut self, listing: &ListingAccess) -> Result<(), String>;
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
    keys: LruCache<PersonId, SecretKey>,
    /// Leaves of the records stored since the last seal, as they were written; `None` when not
    /// known (a fresh open, a failed transaction), and then read back from the database.
    unsealed: Option<Unsealed>,
    compressor: zstd::bulk::Compressor<'static>,
    /// Background checkpoints of a file-backed store (`None` in memory).
    checkpointer: Option<Checkpointer>,
}

/// Copies the write-ahead log into the database from its own connection, off the writer's
/// path: a passive checkpoint never blocks the writer, and once it has copied the whole log
/// the writer's next transaction starts the log over (trimmed to `journal_size_limit`).
struct Checkpointer {
    /// Dropped with the store, which ends the thread.
    _stop: std::sync::mpsc::Sender<()>,
}

impl Checkpointer {
    const PERIOD: std::time::Duration = std::time::Duration::from_millis(500);

    fn start(path: &Path) -> Result<Self, EhrError> {
        let db = Connection::open(path)?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("ehr-checkpoint".into())
            .spawn(move || {
                use std::sync::mpsc::RecvTimeoutError;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(Self::PERIOD) {
                    // A failed checkpoint loses nothing: the log keeps every commit and the
                    // next one (or the next open) copies it.
                    let _ = db.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
                let _ = db.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            })
            .map_err(|error| EhrError::Checkpoint(error.to_string()))?;
        Ok(Self { _stop: stop })
    }
}

/// The leaves of records `first_seq..first_seq + leaves.len()`, all stored, none sealed, and
/// the span of their readings' times.
struct Unsealed {
    first_seq: u64,
    leaves: Vec<Digest>,
    span: Option<(TimestampMs, TimestampMs)>,
}

impl Ehr {
    /// Opens the record at `path`, creating it readable and writable by its owner only
    /// (0600, whatever the umask): SQLite creates the write-ahead log and its index (`-wal`,
    /// `-shm`) with the database file's permissions, so they are 0600 too.
    pub fn open(path: &Path, master: SecretKey) -> Result<Self, EhrError> {
        create_private(path).map_err(|e| EhrError::Create {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        let mut ehr = Self::init(Connection::open(path)?, master)?;
        // Checkpoints move to their own connection and thread: run inside a commit, as SQLite
        // does by default, each one copied the log into the database and fsynced it while the
        // node held the record's lock, stalling ingestion for its whole duration.
        ehr.db.pragma_update(None, "wal_autocheckpoint", 0)?;
        ehr.checkpointer = Some(Checkpointer::start(path)?);
        Ok(ehr)
    }

    pub fn open_in_memory(master: SecretKey) -> Result<Self, EhrError> {
        Self::init(Connection::open_in_memory()?, master)
    }

    fn init(db: Connection, master: SecretKey) -> Result<Self, EhrError> {
        // Another connection may write to the same file (the node reads through a second
        // handle, which logs each access): a statement waits for the write lock instead of
        // failing, and every transaction takes that lock when it begins (`Immediate`), so a
        // write can never find its read snapshot outdated (`SQLITE_BUSY_SNAPSHOT`).
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL for concurrent readers; secure_delete so an erased key's bytes are overwritten in
        // the file rather than left in a free page.
        //
        // Durability: in WAL mode with `synchronous = NORMAL` a commit is written to the log
        // before `append_packs` returns (so before the device is answered) but not fsynced; the
        // log is fsynced at each checkpoint. An acknowledged pack therefore survives a crash of
        // the node process (SIGKILL included) but may be lost if the machine loses power
        // before the next checkpoint; the device has then dropped it from its outbox. `FULL`
        // would close that gap at the price of one fsync per batch. A file-backed store
        // checkpoints from a background thread (`Checkpointer`); the page cache and the
        // checkpoint interval write each hot page (the person index, recent rows) to the
        // database file once per checkpoint rather than once per batch.
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA wal_autocheckpoint = 16384;
             PRAGMA journal_size_limit = 134217728;
             PRAGMA cache_size = -65536;
             PRAGMA secure_delete = ON;
             CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT OR IGNORE INTO meta
                 SELECT 'format', CASE WHEN EXISTS (SELECT 1 FROM meta) THEN 1 ELSE 2 END;
             INSERT OR IGNORE INTO meta VALUES ('next_seq', 1), ('sealed_through', 0);
             CREATE TABLE IF NOT EXISTS data_keys (
                 person BLOB PRIMARY KEY, nonce BLOB NOT NULL, wrapped BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS identities (
                 person BLOB PRIMARY KEY, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS records (
                 seq INTEGER PRIMARY KEY, person BLOB NOT NULL, device TEXT NOT NULL,
                 time_ms INTEGER NOT NULL, until_ms INTEGER NOT NULL,
                 readings INTEGER NOT NULL, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL);
             CREATE INDEX IF NOT EXISTS records_by_person ON records (person, time_ms);
             CREATE TABLE IF NOT EXISTS accepted_packs (
                 device TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (device, seq))
                 WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS device_highest (
                 device TEXT PRIMARY KEY, seq INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS batch_leaves (
                 first_seq INTEGER PRIMARY KEY, leaves BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS anchors (
                 first_seq INTEGER PRIMARY KEY, count INTEGER NOT NULL, root BLOB NOT NULL,
                 from_ms INTEGER NOT NULL, to_ms INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS alert_reasons (
                 alert BLOB PRIMARY KEY, person BLOB NOT NULL, nonce BLOB NOT NULL,
                 ciphertext BLOB NOT NULL) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS alert_reasons_by_person ON alert_reasons (person);
             CREATE TABLE IF NOT EXISTS access_log (
                 accessor TEXT NOT NULL, person BLOB NOT NULL, kind TEXT NOT NULL,
                 time_ms INTEGER NOT NULL);",
        )?;
        let format: i64 =
            db.query_row("SELECT value FROM meta WHERE name = 'format'", [], |r| {
                r.get(0)
            })?;
        if format != FORMAT {
            return Err(EhrError::UnsupportedFormat { found: format });
        }
        Ok(Self {
            db,
            master,
            keys: LruCache::new(KEY_CACHE_MAX),
            unsealed: None,
            compressor: zstd::bulk::Compressor::new(COMPRESSION_LEVEL)
                .map_err(|error| EhrError::Compression(error.to_string()))?,
            checkpointer: None,
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
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO data_keys VALUES (?1, ?2, ?3)",
            params![person.as_bytes(), key_nonce, wrapped],
        )?;
        tx.execute(
            "INSERT INTO identities VALUES (?1, ?2, ?3)",
            params![person.as_bytes(), nonce, ciphertext],
        )?;
        tx.commit()?;
        self.keys.put(person, data_key);
        Ok(())
    }

    /// Undoes [`Ehr::register_person`] for a registration the ledger refused: removes the
    /// person's data key and identity. Refused (`AlreadyRegistered`) once a record was stored
    /// for them: then the person is real and only [`Ehr::erase_person`] applies.
    pub fn unregister_person(&mut self, person: PersonId) -> Result<(), EhrError> {
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let has_records: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM records WHERE person = ?1)",
            [person.as_bytes()],
            |row| row.get(0),
        )?;
        if has_records {
            return Err(EhrError::AlreadyRegistered(person));
        }
        tx.execute(
            "DELETE FROM data_keys WHERE person = ?1",
            [person.as_bytes()],
        )?;
        tx.execute(
            "DELETE FROM identities WHERE person = ?1",
            [person.as_bytes()],
        )?;
        tx.commit()?;
        self.keys.pop(&person);
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
        let key = SecretKey::from_bytes(bytes);
        self.keys.put(person, key.clone());
        Ok(key)
    }

    /// Stores readings of one person, all from one device, as one record of encrypted
    /// Observations. Returns the record's sequence number in the store.
    pub fn append(&mut self, person: PersonId, readings: &[Reading]) -> Result<u64, EhrError> {
        let cipher = seal::cipher(&self.data_key(person)?);
        let nonce = seal::nonces(1)[0];
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let first = next_seq(&tx)?;
        let mut writer = RecordWriter::new(&tx, &mut self.compressor, first, 1)?;
        let seq = writer.write(&cipher, &nonce, person, readings)?;
        let written = writer.finish()?;
        tx.commit()?;
        self.remember_unsealed(first, written);
        Ok(seq)
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
    ) -> Result<u64, EhrError> {
        let pack = PackToStore {
            person,
            device,
            sequence,
            readings,
        };
        let mut results = self.append_packs(&[pack])?;
        // `append_packs` answers every pack it is given.
        results.pop().unwrap_or(Err(EhrError::Compression(
            "no answer for the pack".to_owned(),
        )))
    }

    /// Stores many devices' packs in one SQLite transaction, each exactly once, as
    /// [`Ehr::append_pack`] does for one. Returns one answer per pack, in order: the record
    /// sequence number it was stored under, or why it was refused (replay, too old, unknown
    /// or erased person); a refused pack stores nothing and does not affect the others.
    /// The outer error means the database failed and the whole batch was rolled back.
    ///
    /// Why batches: a commit costs far more than an insert, so ingestion commits one batch of
    /// packs at a time (the node groups what arrived together).
    pub fn append_packs(
        &mut self,
        packs: &[PackToStore<'_>],
    ) -> Result<Vec<Result<u64, EhrError>>, EhrError> {
        let mut keys = Vec::with_capacity(packs.len());
        for pack in packs {
            keys.push(match self.data_key(pack.person) {
                Ok(key) => Ok(seal::cipher(&key)),
                Err(EhrError::Database(error)) => return Err(EhrError::Database(error)),
                Err(refused) => Err(refused),
            });
        }
        let mut nonces = seal::nonces(packs.len()).into_iter();
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let first = next_seq(&tx)?;
        let mut results = Vec::with_capacity(packs.len());
        let mut writer = RecordWriter::new(&tx, &mut self.compressor, first, packs.len())?;
        for (pack, cipher) in packs.iter().zip(keys) {
            // As many nonces were drawn as there are packs.
            let nonce = nonces.next().unwrap_or_else(|| seal::nonces(1)[0]);
            let cipher = match cipher {
                Ok(cipher) => cipher,
                Err(refused) => {
                    results.push(Err(refused));
                    continue;
                }
            };
            if pack.readings.is_empty() {
                results.push(Err(EhrError::EmptyRecord));
                continue;
            }
            // Refused here, alone: bound into the batch's SQL it would fail the whole batch.
            if i64::try_from(pack.sequence).is_err() {
                results.push(Err(EhrError::SequenceOutOfRange {
                    device: pack.device.clone(),
                    sequence: pack.sequence,
                }));
                continue;
            }
            match accept_sequence(&tx, pack.device, pack.sequence) {
                Ok(()) => {}
                Err(EhrError::Database(error)) => return Err(EhrError::Database(error)),
                Err(refused) => {
                    results.push(Err(refused));
                    continue;
                }
            }
            results.push(Ok(writer.write(
                &cipher,
                &nonce,
                pack.person,
                pack.readings,
            )?));
        }
        let written = writer.finish()?;
        tx.commit()?;
        self.remember_unsealed(first, written);
        Ok(results)
    }

    /// Keeps the leaves of records just committed, if they follow those already kept.
    fn remember_unsealed(&mut self, first: u64, written: Written) {
        match &mut self.unsealed {
            Some(unsealed) if unsealed.first_seq + unsealed.leaves.len() as u64 == first => {
                unsealed.leaves.extend(written.leaves);
                unsealed.span = widen(unsealed.span, written.span);
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
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
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
                span: None,
            });
            return Ok(None);
        }
        let (leaves, span) = match unsealed {
            Some(kept)
                if kept.first_seq == first_seq && kept.leaves.len() as u64 == next - first_seq =>
            {
                (kept.leaves, kept.span)
            }
            _ => (
                load_leaves(&tx, first_seq, next - 1)?
                    .into_iter()
                    .map(|(_, leaf)| leaf)
                    .collect(),
                tx.query_row(
                    "SELECT MIN(time_ms), MAX(until_ms) FROM records WHERE seq BETWEEN ?1 AND ?2",
                    [first_seq, next - 1],
                    |row| Ok(row.get::<_, Option<i64>>(0)?.zip(row.get(1)?)),
                )?,
            ),
        };
        let (from_ms, to_ms) = span.unwrap_or_default();
        // Records are only ever appended in this range, so every sequence number is present.
        debug_assert_eq!(leaves.len() as u64, next - first_seq);
        let anchor = Anchor {
            first_seq,
            count: leaves.len() as u64,
            root: merkle::root(&leaves),
            from_ms,
            to_ms,
        };
        tx.execute(
            "INSERT INTO batch_leaves VALUES (?1, ?2)",
            params![first_seq, leaves.concat()],
        )?;
        tx.execute(
            "INSERT INTO anchors VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                anchor.first_seq,
                anchor.count,
                anchor.root,
                anchor.from_ms,
                anchor.to_ms
            ],
        )?;
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE name = 'sealed_through'",
            [next - 1],
        )?;
        tx.commit()?;
        self.unsealed = Some(Unsealed {
            first_seq: next,
            leaves: Vec::new(),
            span: None,
        });
        Ok(Some(anchor))
    }

    /// The anchors this store sealed, in order.
    pub fn sealed_anchors(&self) -> Result<Vec<Anchor>, EhrError> {
        self.sealed_anchors_from(1)
    }

    /// The anchors this store sealed for records from `first_seq` on, in order: those the node
    /// must still see on the ledger.
    pub fn sealed_anchors_from(&self, first_seq: u64) -> Result<Vec<Anchor>, EhrError> {
        let mut query = self.db.prepare_cached(
            "SELECT first_seq, count, root, from_ms, to_ms FROM anchors
             WHERE first_seq >= ?1 ORDER BY first_seq",
        )?;
        let anchors = query.query_map([first_seq], |row| {
            let root: Vec<u8> = row.get(2)?;
            Ok(Anchor {
                first_seq: row.get(0)?,
                count: row.get(1)?,
                root: root.try_into().unwrap_or([0; 32]),
                from_ms: row.get(3)?,
                to_ms: row.get(4)?,
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
        // Record numbers are SQLite integers: a larger one names no record.
        if i64::try_from(seq).is_err() {
            return Ok(None);
        }
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
        let leaves = self.batch_leaves(first)?.unwrap_or_default();
        Ok(merkle::inclusion_proof(&leaves, (seq - first) as usize).unwrap_or_default())
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
            if sealed.as_ref().is_some_and(|sealed| sealed[index] == *leaf) {
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

    /// A person's Observations with effective time in `[from_ms, to_ms)`, oldest first (ties
    /// in record order), at most `limit`; released only once the access is logged.
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
        // Records are found by the span of their readings and scanned by their earliest one;
        // once `limit` Observations are in hand, a record starting after the latest of them
        // can only hold later ones.
        let mut query = self.db.prepare_cached(
            "SELECT seq, time_ms, until_ms, readings, nonce, ciphertext FROM records
             WHERE person = ?1 AND time_ms < ?3 AND until_ms >= ?2 ORDER BY time_ms, seq",
        )?;
        let mut rows = query.query(params![person.as_bytes(), from_ms, to_ms])?;
        let mut found: Vec<(TimestampMs, u64, u32, serde_json::Value)> = Vec::new();
        while let Some(row) = rows.next()? {
            let seq: u64 = row.get(0)?;
            let span: (i64, i64) = (row.get(1)?, row.get(2)?);
            if limit > 0 && found.len() >= limit {
                // Keep the `limit` earliest (in no order, the latest of them last): linear,
                // where sorting on every record past the limit was not.
                found.select_nth_unstable_by_key(limit - 1, |(time, seq, index, _)| {
                    (*time, *seq, *index)
                });
                found.truncate(limit);
                if span.0 > found[limit - 1].0 {
                    break;
                }
            }
            let count: u32 = row.get(3)?;
            let nonce: Vec<u8> = row.get(4)?;
            let ciphertext: Vec<u8> = row.get(5)?;
            let bundle = open_record(&key, seq, person, span, count, &nonce, &ciphertext)
                .ok_or(EhrError::Undecryptable(person))?;
            let serde_json::Value::Object(mut bundle) = bundle else {
                return Err(EhrError::Undecryptable(person));
            };
            let Some(serde_json::Value::Array(entries)) = bundle.remove("entry") else {
                return Err(EhrError::Undecryptable(person));
            };
            for (index, mut entry) in entries.into_iter().enumerate() {
                let observation = entry["resource"].take();
                let effective = observation["effectiveDateTime"]
                    .as_str()
                    .and_then(fhir::parse_rfc3339_utc)
                    .ok_or(EhrError::Undecryptable(person))?;
                if (from_ms..to_ms).contains(&effective) {
                    found.push((effective, seq, index as u32, observation));
                }
            }
        }
        drop(rows);
        drop(query);
        found.sort_unstable_by_key(|(time, seq, index, _)| (*time, *seq, *index));
        found.truncate(limit);
        self.log_access(accessor, person, AccessKind::Records, time_ms, log)?;
        Ok(found
            .into_iter()
            .map(|(.., observation)| observation)
            .collect())
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
        // Unreadable without the key already; gone, so nothing of theirs is left to open.
        self.db.execute(
            "DELETE FROM alert_reasons WHERE person = ?1",
            [person.as_bytes()],
        )?;
        self.keys.pop(&person);
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

/// Creates an empty file at `path` with mode 0600 unless one exists (an empty file is an empty
/// SQLite database). An existing file keeps its permissions.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
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
    compressor: &'t mut zstd::bulk::Compressor<'static>,
    next: u64,
    bundle: Vec<u8>,
    sealed: Vec<u8>,
    aad: Vec<u8>,
    leaves: Vec<Digest>,
    span: Option<(TimestampMs, TimestampMs)>,
}

/// What a [`RecordWriter`] wrote: the leaves of its records and the span of their readings.
struct Written {
    leaves: Vec<Digest>,
    span: Option<(TimestampMs, TimestampMs)>,
}

fn widen(
    a: Option<(TimestampMs, TimestampMs)>,
    b: Option<(TimestampMs, TimestampMs)>,
) -> Option<(TimestampMs, TimestampMs)> {
    match (a, b) {
        (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
        (a, b) => a.or(b),
    }
}

impl<'t> RecordWriter<'t> {
    fn new(
        tx: &'t rusqlite::Transaction<'t>,
        compressor: &'t mut zstd::bulk::Compressor<'static>,
        first: u64,
        capacity: usize,
    ) -> Result<Self, EhrError> {
        Ok(Self {
            tx,
            insert: tx.prepare_cached(
                "INSERT INTO records
                 (seq, person, device, time_ms, until_ms, readings, nonce, ciphertext)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?,
            compressor,
            next: first,
            bundle: Vec::with_capacity(16 * fhir::OBSERVATION_BYTES_TYPICAL),
            sealed: Vec::with_capacity(4 * fhir::OBSERVATION_BYTES_TYPICAL),
            aad: Vec::with_capacity(RECORD_AAD_LEN),
            leaves: Vec::with_capacity(capacity),
            span: None,
        })
    }

    /// Stores `readings` (one device's, at least one) as the next record; returns its number.
    fn write(
        &mut self,
        cipher: &seal::Cipher,
        nonce: &[u8; seal::NONCE_LEN],
        person: PersonId,
        readings: &[Reading],
    ) -> Result<u64, EhrError> {
        let (Some(first), Ok(count)) = (readings.first(), u32::try_from(readings.len())) else {
            return Err(EhrError::EmptyRecord);
        };
        let seq = self.next;
        let span = readings.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| {
            (lo.min(r.time_ms), hi.max(r.time_ms))
        });
        self.bundle.clear();
        fhir::write_bundle(&mut self.bundle, seq, person, readings);
        self.sealed.clear();
        self.sealed
            .reserve(zstd::zstd_safe::compress_bound(self.bundle.len()));
        self.compressor
            .compress_to_buffer(&self.bundle, &mut self.sealed)
            .map_err(|error| EhrError::Compression(error.to_string()))?;
        record_aad_into(&mut self.aad, seq, person, span, count);
        seal::seal_in_place(cipher, nonce, &self.aad, &mut self.sealed);
        let device = first.device.as_str();
        let columns = [
            ValueRef::Blob(person.as_bytes()),
            ValueRef::Text(device.as_bytes()),
            ValueRef::Integer(span.0),
            ValueRef::Integer(span.1),
            ValueRef::Integer(i64::from(count)),
            ValueRef::Blob(nonce),
            ValueRef::Blob(&self.sealed),
        ];
        self.insert.execute(params![
            seq,
            person.as_bytes(),
            device,
            span.0,
            span.1,
            count,
            nonce,
            self.sealed
        ])?;
        self.leaves.push(record_leaf(seq, &columns));
        self.span = widen(self.span, Some(span));
        self.next += 1;
        Ok(seq)
    }

    /// Records the next sequence number; returns what was written.
    fn finish(self) -> Result<Written, EhrError> {
        self.tx
            .prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'next_seq'")?
            .execute([self.next])?;
        Ok(Written {
            leaves: self.leaves,
            span: self.span,
        })
    }
}

/// Decrypts and decompresses a record into its Bundle; `None` if anything was altered.
fn open_record(
    key: &SecretKey,
    seq: u64,
    person: PersonId,
    span: (TimestampMs, TimestampMs),
    count: u32,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Option<serde_json::Value> {
    let mut aad = Vec::with_capacity(RECORD_AAD_LEN);
    record_aad_into(&mut aad, seq, person, span, count);
    let compressed = seal::open(key, nonce, &aad, ciphertext)?;
    // Authentic here (the AEAD checked it), so the bound only guards against our own bugs.
    let capacity = (count as usize).saturating_mul(OBSERVATION_BYTES_MAX) + 256;
    let json = zstd::bulk::decompress(&compressed, capacity).ok()?;
    serde_json::from_slice(&json).ok()
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
const RECORD_AAD_LEN: usize = RECORD_DOMAIN.len() + 16 + 8 + 8 + 8 + 4;

/// Binds a record's ciphertext to its row: moving it to another sequence number or person, or
/// changing the span or count of its readings, makes it fail to decrypt.
fn record_aad_into(
    out: &mut Vec<u8>,
    seq: u64,
    person: PersonId,
    (from_ms, until_ms): (TimestampMs, TimestampMs),
    readings: u32,
) {
    out.clear();
    out.extend_from_slice(RECORD_DOMAIN);
    out.extend_from_slice(person.as_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&from_ms.to_be_bytes());
    out.extend_from_slice(&until_ms.to_be_bytes());
    out.extend_from_slice(&readings.to_be_bytes());
}

/// Leaves of records `first..=last` that are present, in order.
fn load_leaves(db: &Connection, first: u64, last: u64) -> Result<Vec<(u64, Digest)>, EhrError> {
    let mut query = db.prepare_cached(
        "SELECT seq, person, device, time_ms, until_ms, readings, nonce, ciphertext
         FROM records WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
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
            row.get_ref(7)?,
        ];
        Ok((seq, record_leaf(seq, &columns)))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A record's leaf: its sequence number and every stored column (person, device, span, count,
/// nonce, ciphertext) with its storage type, so any change to a stored byte changes it, and a
/// tampered column of an unexpected type is reported altered rather than failing the whole
/// verification.
fn record_leaf(seq: u64, columns: &[ValueRef<'_>; 7]) -> Digest {
    let mut content = Vec::with_capacity(1024);
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
    let digest = vigil_core::digest("vigil/ehr/leaf/v2", &[&seq.to_be_bytes(), &content]);
    merkle::leaf_hash(&digest)
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
