//! The ingestion path for a batch of packs: admission (parse, enrolled device, signature) off
//! every lock and in parallel, then one health-record transaction for the whole batch, then
//! the contracts.
//!
//! Why batches: per pack, the costs that do not shrink with the pack are a signature check
//! and a SQLite commit. Signatures are checked on several threads at once, and one commit
//! covers every pack of the batch, so a node keeps up with many devices on few cores. Each
//! pack still gets its own answer, and exactly-once holds per pack: the health record checks
//! each pack's sequence number inside the batch's transaction (a replay within the same batch
//! is refused like any other).

use std::num::NonZeroUsize;
use std::sync::LazyLock;
use std::time::Instant;

use lru::LruCache;
use parking_lot::Mutex;
use vigil_core::{DeviceId, DevicePublicKey, PersonId};
use vigil_ehr::{EhrError, PackToStore};
use vigil_gateway::{
    Admitted, DeviceDirectory, EnrolledDevice, Horizon, Rejected, Rejection, Reply,
};
use vigil_ledger::node::Ledger;

use crate::Node;
use crate::metrics::TransportLabel;

/// Packs admitted on one thread before the batch is split across threads: below this,
/// starting threads costs more than it saves.
const PARALLEL_ADMIT_MIN: usize = 16;
/// Threads that check signatures for one batch, at most.
const ADMIT_THREADS_MAX: usize = 8;
/// Packs stored in one health-record transaction, at most; a larger batch is cut into several
/// so that the record's lock is never held for long.
pub const INGEST_BATCH_MAX: usize = 512;

/// Decompressed device keys kept, at most; beyond this the least recently used is forgotten.
const DEVICE_KEYS_MAX: NonZeroUsize = NonZeroUsize::new(100_000).expect("not zero");

/// Device public keys already decompressed, by their bytes. Decompressing an Ed25519 point is a
/// square root, a fifth of a signature check, and the same few keys sign every pack. Keyed by
/// the key's bytes, not the device, so a re-enrolled device can never get a stale key; the
/// ledger's finalized state still decides, on every pack, whether the device is enrolled.
static DEVICE_KEYS: LazyLock<Mutex<LruCache<[u8; 32], DevicePublicKey>>> =
    LazyLock::new(|| Mutex::new(LruCache::new(DEVICE_KEYS_MAX)));

/// Enrolled devices as the ledger's finalized state records them.
struct LedgerDirectory<'a>(&'a Ledger);

impl DeviceDirectory for LedgerDirectory<'_> {
    fn device(&self, id: &DeviceId) -> Option<EnrolledDevice> {
        let (person, bytes, active) = {
            let snapshot = self.0.snapshot();
            let record = snapshot.device(id)?;
            (record.person, record.public_key, record.active)
        };
        let cached = DEVICE_KEYS.lock().get(&bytes).copied();
        let key = match cached {
            Some(key) => key,
            None => {
                let key = DevicePublicKey::from_bytes(&bytes).ok()?;
                DEVICE_KEYS.lock().put(bytes, key);
                key
            }
        };
        Some(EnrolledDevice {
            person,
            key,
            revoked: !active,
        })
    }
}

/// [`LedgerDirectory`] owning its ledger handle, for the broker's CONNECT checks.
pub(crate) struct SharedLedgerDirectory(pub(crate) Ledger);

impl DeviceDirectory for SharedLedgerDirectory {
    fn device(&self, id: &DeviceId) -> Option<EnrolledDevice> {
        LedgerDirectory(&self.0).device(id)
    }
}

/// One pack as it arrived: the person its topic or URL names, and its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    pub person: Option<PersonId>,
    pub bytes: &'a [u8],
}

impl Node {
    /// The whole ingestion path for a batch of packs; one answer per pack, in order. Never
    /// panics on any input, always answers; a refused pack stores nothing and leaves the other
    /// packs of the batch alone.
    pub fn ingest_batch(&self, packs: &[Incoming<'_>], transport: &'static str) -> Vec<Reply> {
        let mut replies = Vec::with_capacity(packs.len());
        for chunk in packs.chunks(INGEST_BATCH_MAX) {
            replies.extend(self.ingest_chunk(chunk, transport));
        }
        replies
    }

    fn ingest_chunk(&self, packs: &[Incoming<'_>], transport: &'static str) -> Vec<Reply> {
        let received = Instant::now();
        let admitted = self.admit_all(packs);
        let to_store: Vec<PackToStore<'_>> = admitted
            .iter()
            .filter_map(|a| a.as_ref().ok())
            .map(|a| PackToStore {
                person: a.person,
                device: &a.pack.device,
                sequence: a.pack.sequence,
                readings: &a.pack.readings,
            })
            .collect();
        let stored = if to_store.is_empty() {
            Ok(Vec::new())
        } else {
            self.ehr.lock().append_packs(&to_store)
        };
        // On a database failure the whole batch was rolled back: every admitted pack is
        // answered `unavailable`, so its device sends it again.
        let (mut stored, failure) = match stored {
            Ok(results) => (results.into_iter(), None),
            Err(error) => {
                tracing::error!(%error, "health record batch failed");
                (Vec::new().into_iter(), Some(error.to_string()))
            }
        };
        drop(to_store);
        let mut accepted = Vec::new();
        let mut replies = Vec::with_capacity(packs.len());
        for (incoming, admitted) in packs.iter().zip(admitted) {
            let admitted = match admitted {
                Ok(admitted) => admitted,
                Err(error) => {
                    self.metrics.reject(error.reason);
                    replies.push(Reply::rejected(
                        vigil_gateway::admit::peek_sequence(incoming.bytes),
                        error,
                    ));
                    continue;
                }
            };
            let sequence = admitted.pack.sequence;
            match stored.next() {
                Some(Ok(_records)) => {
                    replies.push(Reply::accepted(sequence, admitted.pack.readings.len()));
                    accepted.push(admitted);
                }
                Some(Err(error)) => {
                    let reason = refusal_reason(&error);
                    self.metrics.reject(reason);
                    replies.push(Reply::rejected(
                        Some(sequence),
                        Rejected::new(reason, error.to_string()),
                    ));
                }
                // The batch failed (`append_packs` otherwise answers every pack it is given).
                None => {
                    self.metrics.reject(Rejection::Unavailable);
                    let message = failure
                        .as_deref()
                        .unwrap_or("no answer from the health record");
                    replies.push(Reply::rejected(
                        Some(sequence),
                        Rejected::new(Rejection::Unavailable, message),
                    ));
                }
            }
        }
        let readings: usize = accepted.iter().map(|a| a.pack.readings.len()).sum();
        if readings > 0 {
            self.metrics
                .readings_accepted
                .get_or_create(&TransportLabel { transport })
                .inc_by(readings as u64);
        }
        // Contracts see each person's readings in arrival order, after they are stored.
        let drafts = {
            let mut monitor = self.monitor.lock();
            let drafts = accepted
                .into_iter()
                .flat_map(|a| monitor.evaluate(a.person, &std::sync::Arc::new(a.pack)))
                .collect::<Vec<_>>();
            self.metrics
                .alerts_unsupported
                .inc_by(monitor.take_unsupported());
            drafts
        };
        for draft in drafts {
            self.submit_alert(draft, received);
        }
        replies
    }

    /// Admits every pack, on several threads when the batch is large enough to pay for them;
    /// each thread checks its packs' signatures in one batch. The clock is read once, here:
    /// readings later than it plus the configured skew are refused.
    fn admit_all(&self, packs: &[Incoming<'_>]) -> Vec<Result<Admitted, Rejected>> {
        let directory = LedgerDirectory(&self.ledger);
        let horizon = Horizon::new(crate::now_ms(), self.future_skew);
        let admit = |part: &[Incoming<'_>]| {
            vigil_gateway::admit_all(
                &directory,
                part.iter().map(|p| (p.bytes, p.person)),
                horizon,
            )
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(ADMIT_THREADS_MAX);
        if packs.len() < PARALLEL_ADMIT_MIN || threads < 2 {
            return admit(packs);
        }
        let chunk = packs.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let workers: Vec<_> = packs
                .chunks(chunk)
                .map(|part| scope.spawn(move || admit(part)))
                .collect();
            workers
                .into_iter()
                .zip(packs.chunks(chunk))
                .flat_map(|(worker, part)| {
                    // Admission never panics; should a worker die anyway, its packs are
                    // answered `unavailable` and re-sent, rather than taking the node down.
                    worker.join().unwrap_or_else(|_| {
                        part.iter()
                            .map(|_| {
                                Err(Rejected::new(
                                    Rejection::Unavailable,
                                    "admission failed; send again",
                                ))
                            })
                            .collect()
                    })
                })
                .collect()
        })
    }
}

/// The rejection a device is answered for a pack the health record refused. Only a failure of
/// the node's own (a pack the record could not store for reasons of its own) is `unavailable`,
/// "send again"; a pack refused for what it is gets a final answer, or its device would re-send
/// it forever.
fn refusal_reason(error: &EhrError) -> Rejection {
    match error {
        EhrError::Replayed { .. } => Rejection::Replayed,
        EhrError::TooOld { .. } => Rejection::TooOld,
        EhrError::SequenceOutOfRange { .. } => Rejection::SequenceOutOfRange,
        EhrError::EmptyRecord => Rejection::InvalidReading,
        EhrError::UnknownPerson(_) | EhrError::Erased(_) => Rejection::UnknownDevice,
        _ => Rejection::Unavailable,
    }
}
