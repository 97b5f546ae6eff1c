//! Durable state of the statistics service (SQLite): the deployment's server keys, so
//! that a restarted service keeps the collective key its pending queries were asked under, and
//! every tracked query with the querier's secret and its phase (submitted, verifying with the
//! evidence received, or decided with the result), so that a node restart loses neither a
//! doctor's pending query nor its result.
//!
//! The file holds secrets (the servers' key shares of this in-process deployment, the queriers'
//! ElGamal keys): it is created readable by its owner only. A real deployment keeps each share
//! on its own server; the single-process service plays every server and so keeps them all.
//!
//! Writes are one SQLite transaction each (WAL, `synchronous = FULL`): a phase is either the old
//! one or the new one after a crash. Every row is a canonical encoding read back through
//! [`Canonical`], so a damaged row is a typed error, never a panic.

use std::path::Path;
use std::sync::Mutex;

use curve25519_dalek::scalar::Scalar;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};
use vigil_privstats::elgamal::KeyPair;
use vigil_privstats::encoding::{Canonical, Reader, Writer};
// Stored rows are canonical encodings: reading one fails as the protocol's decoding does.
use vigil_privstats::error::{Error as CodecError, Result as CodecResult};
use vigil_privstats::keys::{CollectiveKey, ServerKey};
use vigil_privstats::querier::Aggregates;
use vigil_privstats::query::{BINS_MAX, Query};
use vigil_privstats::server::{KeySwitchShare, ServerAggregate};

/// Servers of a stored deployment at most (a limit on what a row may claim).
const SERVERS_STORED_MAX: usize = vigil_privstats::keys::SERVERS_MAX;
/// Longest rejection reason or failed-check name stored.
const TEXT_BYTES_MAX: usize = 4096;
/// Failed checks stored per rejection at most.
const FAILED_MAX: usize = 4 * vigil_privstats::query::DPS_MAX + 256;

/// A query whose answers are in, waiting for the verifying nodes' verdicts: what the
/// service tracks and what the store keeps alike.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Verifying {
    pub aggregates: Vec<ServerAggregate>,
    pub shares: Vec<KeySwitchShare>,
    pub evidence: [u8; 32],
    /// Height at which the verdicts were submitted.
    pub since: u64,
    /// Height at which the quorum was first seen.
    pub quorum_at: Option<u64>,
}

/// A stored query's phase (the service's phase, with a decided status reduced to what the
/// statistic is recomputed from).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum StoredPhase {
    Submitted,
    Verifying(Verifying),
    Accepted {
        aggregates: Aggregates,
        verdicts: u64,
    },
    Rejected {
        reason: String,
        failed: Vec<String>,
    },
}

/// A stored query.
pub(crate) struct StoredQuery {
    pub id: [u8; 32],
    pub query: Query,
    pub keypair: KeyPair,
    pub phase: StoredPhase,
}

/// A list of at most one item per server.
fn read_per_server<T: Canonical>(
    r: &mut Reader<'_>,
    too_many: &'static str,
) -> CodecResult<Vec<T>> {
    let n = r.seq_len()?;
    if n > SERVERS_STORED_MAX {
        return Err(CodecError::Decode(too_many));
    }
    (0..n).map(|_| T::read(r)).collect()
}

fn text(w: &mut Writer, s: &str) {
    let mut cut = s.len().min(TEXT_BYTES_MAX);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    w.bytes(&s.as_bytes()[..cut]);
}

fn read_text(r: &mut Reader<'_>) -> CodecResult<String> {
    let b = r.bytes()?;
    if b.len() > TEXT_BYTES_MAX {
        return Err(CodecError::Decode("stored text too long"));
    }
    String::from_utf8(b.to_vec()).map_err(|_| CodecError::Decode("stored text is not UTF-8"))
}

fn u128_write(w: &mut Writer, v: u128) {
    w.u64((v >> 64) as u64).u64(v as u64);
}

fn u128_read(r: &mut Reader<'_>) -> CodecResult<u128> {
    let hi = r.u64()?;
    let lo = r.u64()?;
    Ok((u128::from(hi) << 64) | u128::from(lo))
}

impl Canonical for StoredPhase {
    fn write(&self, w: &mut Writer) {
        match self {
            StoredPhase::Submitted => {
                w.u8(1);
            }
            StoredPhase::Verifying(Verifying {
                aggregates,
                shares,
                evidence,
                since,
                quorum_at,
            }) => {
                w.u8(2).seq_len(aggregates.len());
                for a in aggregates {
                    a.write(w);
                }
                w.seq_len(shares.len());
                for s in shares {
                    s.write(w);
                }
                w.fixed(evidence).u64(*since);
                match quorum_at {
                    Some(h) => w.u8(1).u64(*h),
                    None => w.u8(0),
                };
            }
            StoredPhase::Accepted {
                aggregates,
                verdicts,
            } => {
                w.u8(3);
                u128_write(w, aggregates.count);
                u128_write(w, aggregates.sum);
                u128_write(w, aggregates.sumsq);
                w.seq_len(aggregates.bins.len());
                for b in &aggregates.bins {
                    u128_write(w, *b);
                }
                w.u64(*verdicts);
            }
            StoredPhase::Rejected { reason, failed } => {
                w.u8(4);
                text(w, reason);
                let failed = &failed[..failed.len().min(FAILED_MAX)];
                w.seq_len(failed.len());
                for f in failed {
                    text(w, f);
                }
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> CodecResult<Self> {
        Ok(match r.u8()? {
            1 => StoredPhase::Submitted,
            2 => {
                let aggregates = read_per_server(r, "too many stored aggregates")?;
                let shares = read_per_server(r, "too many stored shares")?;
                let evidence = r.fixed()?;
                let since = r.u64()?;
                let quorum_at = match r.u8()? {
                    0 => None,
                    1 => Some(r.u64()?),
                    _ => return Err(CodecError::Decode("stored quorum height")),
                };
                StoredPhase::Verifying(Verifying {
                    aggregates,
                    shares,
                    evidence,
                    since,
                    quorum_at,
                })
            }
            3 => {
                let count = u128_read(r)?;
                let sum = u128_read(r)?;
                let sumsq = u128_read(r)?;
                let n = r.seq_len()?;
                if n > BINS_MAX {
                    return Err(CodecError::Decode("too many stored bins"));
                }
                let bins = (0..n).map(|_| u128_read(r)).collect::<CodecResult<_>>()?;
                StoredPhase::Accepted {
                    aggregates: Aggregates {
                        count,
                        sum,
                        sumsq,
                        bins,
                    },
                    verdicts: r.u64()?,
                }
            }
            4 => {
                let reason = read_text(r)?;
                let n = r.seq_len()?;
                if n > FAILED_MAX {
                    return Err(CodecError::Decode("too many stored failed checks"));
                }
                let failed = (0..n).map(|_| read_text(r)).collect::<CodecResult<_>>()?;
                StoredPhase::Rejected { reason, failed }
            }
            _ => return Err(CodecError::Decode("stored phase tag")),
        })
    }
}

fn server_key_write(w: &mut Writer, k: &ServerKey) {
    w.u32(k.id).scalar(k.share());
}

/// The durable store.
pub struct QueryStore {
    conn: Mutex<Connection>,
}

impl QueryStore {
    /// Opens (creating if missing, readable by its owner only) the store at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Param(format!("{}: {e}", dir.display())))?;
        }
        if !path.exists() {
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
            o.open(path)
                .map_err(|e| Error::Param(format!("{}: {e}", path.display())))?;
        }
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS deployment (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 collective BLOB NOT NULL,
                 servers BLOB NOT NULL
             );
             CREATE TABLE IF NOT EXISTS queries (
                 id BLOB PRIMARY KEY,
                 seq INTEGER NOT NULL,
                 query BLOB NOT NULL,
                 secret BLOB NOT NULL,
                 phase BLOB NOT NULL
             );",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The stored server keys (all sharing one collective key), if any.
    pub(crate) fn servers(&self) -> Result<Option<Vec<ServerKey>>> {
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .conn()
            .query_row(
                "SELECT collective, servers FROM deployment WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((collective, servers)) = row else {
            return Ok(None);
        };
        let collective = CollectiveKey::from_bytes(&collective)?;
        let mut r = Reader::new(&servers);
        let n = r.seq_len()?;
        if n == 0 || n > SERVERS_STORED_MAX {
            return Err(CodecError::Decode("stored server count").into());
        }
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            let id = r.u32()?;
            let share = r.scalar()?;
            keys.push(ServerKey::from_share(id, share, collective.clone()));
        }
        r.end()?;
        Ok(Some(keys))
    }

    /// Stores the deployment's server keys (replacing any).
    pub(crate) fn save_servers(&self, keys: &[&ServerKey]) -> Result<()> {
        let collective = keys
            .first()
            .map(|k| k.collective.to_bytes())
            .ok_or_else(|| Error::Param("no server keys to store".into()))?;
        let mut w = Writer::new();
        w.seq_len(keys.len());
        for k in keys {
            server_key_write(&mut w, k);
        }
        self.conn().execute(
            "INSERT OR REPLACE INTO deployment (id, collective, servers) VALUES (1, ?1, ?2)",
            params![collective, w.finish()],
        )?;
        Ok(())
    }

    /// Stores a newly submitted query (after the ones already stored).
    pub(crate) fn insert(&self, id: &[u8; 32], query: &Query, keypair: &KeyPair) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR REPLACE INTO queries (id, seq, query, secret, phase)
             VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM queries), ?2, ?3, ?4)",
            params![
                id.as_slice(),
                query.to_bytes(),
                keypair.secret_bytes().as_slice(),
                StoredPhase::Submitted.to_bytes()
            ],
        )?;
        Ok(())
    }

    /// Records a query's new phase.
    pub(crate) fn set_phase(&self, id: &[u8; 32], phase: &StoredPhase) -> Result<()> {
        self.conn().execute(
            "UPDATE queries SET phase = ?2 WHERE id = ?1",
            params![id.as_slice(), phase.to_bytes()],
        )?;
        Ok(())
    }

    /// Forgets a query.
    pub(crate) fn remove(&self, id: &[u8; 32]) -> Result<()> {
        self.conn()
            .execute("DELETE FROM queries WHERE id = ?1", params![id.as_slice()])?;
        Ok(())
    }

    /// Every stored query, oldest first, at most `max` (the newest ones).
    pub(crate) fn queries(&self, max: usize) -> Result<Vec<StoredQuery>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, query, secret, phase FROM
               (SELECT id, seq, query, secret, phase FROM queries ORDER BY seq DESC LIMIT ?1)
             ORDER BY seq ASC",
        )?;
        let rows = stmt.query_map(params![max as i64], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, query, secret, phase) = row?;
            let id: [u8; 32] = id
                .try_into()
                .map_err(|_| CodecError::Decode("stored query id"))?;
            let secret: [u8; 32] = secret
                .try_into()
                .map_err(|_| CodecError::Decode("stored querier secret"))?;
            let secret = Option::<Scalar>::from(Scalar::from_canonical_bytes(secret))
                .ok_or(CodecError::Decode("stored querier secret"))?;
            out.push(StoredQuery {
                id,
                query: Query::from_bytes(&query)?,
                keypair: KeyPair::from_secret(secret),
                phase: StoredPhase::from_bytes(&phase)?,
            });
        }
        Ok(out)
    }
}
