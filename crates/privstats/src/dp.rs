//! Data-provider side: a plaintext local answer, its digit encoding, and the encrypted response
//! with an aggregated range proof and a well-formedness proof.

use std::sync::OnceLock;

use bulletproofs::{BulletproofGens, PedersenGens, RangeProof};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT as G;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::traits::Identity;
use merlin::Transcript;
use rand_core::{CryptoRng, RngCore};

use crate::elgamal::{Ciphertext, compress_cts};
use crate::encoding::{Canonical, Reader, Writer, digest};
use crate::error::{Error, Result};
use crate::keys::{CollectiveKey, ServerId};
use crate::query::{DIGIT_BITS, DpId, Field, Query, ROWS_MAX, TOP_DIGIT_BITS_SMALL};
use crate::sigma::WellFormedProof;

/// Domain separator of the DPs' range proofs (Bulletproofs adds its own inside). Version 3:
/// the digits are split into several aggregated proofs, the 8-bit ones possibly padded with
/// public zeros ([`range_layout`]).
pub const RANGE_DOMAIN: &[u8] = b"vigil-privstats/range/v3";
/// Most digits in one response (Bulletproofs party capacity).
pub const DIGITS_MAX: usize = 64;
/// Threads one DP uses to prove its range proofs (a Raspberry Pi has 4 cores; this machine 2).
pub const PROVE_THREADS_DEFAULT: usize = 2;
/// Most threads one DP proves on (a limit on everything).
pub const PROVE_THREADS_MAX: usize = 8;

/// How a response's `digits` are split among aggregated range proofs: contiguous chunks whose
/// sizes are powers of two (Bulletproofs aggregation needs that), none larger than half the
/// digits rounded up, so that (1) no padding digit is ever proven — proving cost is linear in
/// the number of proven bits — and (2) two cores can prove two halves at once. A function of
/// the digit count alone, so the verifier derives the same layout and a prover cannot pick one.
///
/// 4 digits → 2+2; 7 → 4+2+1; 28 → 8+8+8+4.
pub fn range_chunks(digits: usize) -> Vec<std::ops::Range<usize>> {
    let prev_pow2 = |n: usize| if n == 0 { 0 } else { 1 << n.ilog2() };
    let cap = prev_pow2(digits.div_ceil(2)).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    while start < digits {
        let size = prev_pow2((digits - start).min(cap));
        out.push(start..start + size);
        start += size;
    }
    out
}

/// A padding slot of a range proof ([`range_layout`]): a public zero, committed as the identity
/// (value 0, blinding 0), so the verifier knows its commitment and it proves nothing about any
/// ciphertext.
pub const PAD: usize = usize::MAX;

/// The range proofs of an answer whose digits have the bit sizes `bits` (see
/// [`Query::digit_bits`]): for each size (16, then 8), the indices of the digits of that size,
/// split by [`range_chunks`]. Each entry is one aggregated proof: (bits, digit indices).
///
/// One exception, for the verifier: the 8-bit digits (top digits of counts and bins) form a
/// single proof padded with [`PAD`] slots to a power of two when that adds at most a quarter
/// more slots (13 top digits of the default histogram: one 16-party proof instead of 8 + 4 + 1).
/// Bulletproofs' verification costs less per bit the larger the aggregation (on this machine
/// 2.2 ms for 16 × 8 bits against 2.7 ms for 8 + 4 + 1), while proving costs 3 × 8 more bits.
pub fn range_layout(bits: &[usize]) -> Vec<(usize, Vec<usize>)> {
    let mut out = Vec::new();
    for width in [DIGIT_BITS, TOP_DIGIT_BITS_SMALL] {
        let idx: Vec<usize> = (0..bits.len()).filter(|&i| bits[i] == width).collect();
        let padded = idx.len().next_power_of_two();
        if width == TOP_DIGIT_BITS_SMALL
            && idx.len() > 1
            && padded != idx.len()
            && (padded - idx.len()) * 4 <= idx.len()
        {
            let mut part = idx;
            part.resize(padded, PAD);
            out.push((width, part));
            continue;
        }
        for part in range_chunks(idx.len()) {
            out.push((width, idx[part].to_vec()));
        }
    }
    out
}

/// Bulletproofs generators for 16-bit values and up to 64 parties, built once.
pub(crate) fn bp_gens() -> &'static BulletproofGens {
    static GENS: OnceLock<BulletproofGens> = OnceLock::new();
    GENS.get_or_init(|| BulletproofGens::new(DIGIT_BITS, DIGITS_MAX))
}

/// Pedersen generators (B = G, B_blinding = X) under which C of a ciphertext is a commitment.
pub(crate) fn pc_gens(key: &RistrettoPoint) -> PedersenGens {
    PedersenGens {
        B: G,
        B_blinding: *key,
    }
}

/// A DP's plaintext answer for one query: exact integer aggregates over its rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlainAnswer {
    pub count: u64,
    pub sum: u64,
    pub sumsq: u64,
    /// One count per bin of the query's edges.
    pub bins: Vec<u64>,
}

impl PlainAnswer {
    /// Accumulates one row value.
    pub fn add_value(&mut self, v: u64, n: u64, edges: &[u32]) {
        self.count += n;
        self.sum += v * n;
        self.sumsq += v * v * n;
        if edges.len() >= 2 {
            if self.bins.len() != edges.len() - 1 {
                self.bins = vec![0; edges.len() - 1];
            }
            // Bin i is [e_i, e_{i+1}); values outside every bin count only in `count`.
            let i = edges.partition_point(|&e| u64::from(e) <= v);
            if i >= 1 && i < edges.len() {
                self.bins[i - 1] += n;
            }
        }
    }

    /// Splits the answer into the query's 16-bit digits (little-endian within each field);
    /// refuses an answer beyond the bounds the proofs enforce.
    pub fn digits(&self, query: &Query) -> Result<Vec<u64>> {
        if self.count > ROWS_MAX {
            return Err(Error::OutOfRange(format!(
                "{} rows, at most {ROWS_MAX}",
                self.count
            )));
        }
        let mut out = Vec::with_capacity(query.digits());
        for f in query.fields() {
            let v = match f {
                Field::Count => self.count,
                Field::Sum => self.sum,
                Field::SumSq => self.sumsq,
                Field::Bin(i) => self.bins.get(i).copied().unwrap_or(0),
            };
            let bits = f.digit_bits();
            let total: usize = bits.iter().sum();
            if v >> total != 0 {
                return Err(Error::OutOfRange(format!(
                    "{f:?} = {v} needs more than {total} bits"
                )));
            }
            out.extend(
                bits.iter()
                    .enumerate()
                    .map(|(k, b)| (v >> (DIGIT_BITS * k)) & ((1 << b) - 1)),
            );
        }
        Ok(out)
    }
}

/// What a DP sends: to its server for aggregation and, in parallel, to the verifying nodes.
#[derive(Clone, Debug)]
pub struct DpResponse {
    pub query_id: [u8; 32],
    pub dp: DpId,
    /// The server this DP sent its response to.
    pub server: ServerId,
    /// One ciphertext per digit.
    pub ciphertexts: Vec<Ciphertext>,
    /// One aggregated range proof per chunk of [`range_chunks`].
    pub range_proofs: Vec<RangeProof>,
    pub wellformed: WellFormedProof,
}

/// A random source usable through a trait object (the provers run on several threads).
trait RngCoreCrypto: RngCore + CryptoRng {}
impl<T: RngCore + CryptoRng> RngCoreCrypto for T {}

/// The transcript of range proof `index` over the digits `part`, each of `bits` bits: binds the
/// DP's context and the chunk, so proofs cannot be swapped between chunks or responses.
fn range_transcript(context: &[u8], index: usize, bits: usize, part: &[usize]) -> Transcript {
    let mut tr = Transcript::new(RANGE_DOMAIN);
    tr.append_message(b"context", context);
    tr.append_u64(b"chunk", index as u64);
    tr.append_u64(b"bits", bits as u64);
    tr.append_u64(b"len", part.len() as u64);
    for &j in part {
        tr.append_u64(b"digit", j as u64);
    }
    tr
}

/// One aggregated range proof of a response with everything its verification needs.
pub(crate) struct RangeJob<'a> {
    proof: &'a RangeProof,
    transcript: Transcript,
    commitments: Vec<CompressedRistretto>,
    bits: usize,
    pc: PedersenGens,
}

impl RangeJob<'_> {
    /// Relative cost (proven bits), to schedule the largest first.
    pub(crate) fn weight(&self) -> usize {
        self.bits * self.commitments.len()
    }

    /// Bulletproofs 5's verifier, unchanged.
    pub(crate) fn verify(mut self) -> bool {
        self.proof
            .verify_multiple_with_rng(
                bp_gens(),
                &self.pc,
                &mut self.transcript,
                &self.commitments,
                self.bits,
                &mut rand_core::OsRng,
            )
            .is_ok()
    }
}

/// Context bound into a DP's proofs: query, collective key, DP.
pub(crate) fn dp_context(query_id: &[u8; 32], key_id: &[u8; 32], dp: DpId) -> Vec<u8> {
    let mut w = Writer::new();
    w.fixed(query_id).fixed(key_id).u32(dp);
    w.finish()
}

impl DpResponse {
    /// Encrypts an honest answer.
    pub fn create<R: RngCore + CryptoRng>(
        query: &Query,
        key: &CollectiveKey,
        dp: DpId,
        server: ServerId,
        answer: &PlainAnswer,
        rng: &mut R,
    ) -> Result<Self> {
        let digits = answer.digits(query)?;
        Self::encrypt_digits(query, key, dp, server, &digits, PROVE_THREADS_DEFAULT, rng)
    }

    /// [`DpResponse::create`] proving on `threads` threads.
    pub fn create_with_threads<R: RngCore + CryptoRng>(
        query: &Query,
        key: &CollectiveKey,
        dp: DpId,
        server: ServerId,
        answer: &PlainAnswer,
        threads: usize,
        rng: &mut R,
    ) -> Result<Self> {
        let digits = answer.digits(query)?;
        Self::encrypt_digits(query, key, dp, server, &digits, threads, rng)
    }

    /// Encrypts the given digits *without* checking their range: what a cheating DP can do. An
    /// honest caller goes through [`DpResponse::create`]. Proves in [0, 2^16) anyway; a digit out
    /// of range yields a proof that does not verify.
    pub fn encrypt_digits<R: RngCore + CryptoRng>(
        query: &Query,
        key: &CollectiveKey,
        dp: DpId,
        server: ServerId,
        digits: &[u64],
        threads: usize,
        rng: &mut R,
    ) -> Result<Self> {
        if digits.len() != query.digits() || digits.is_empty() || digits.len() > DIGITS_MAX {
            return Err(Error::Param(format!(
                "{} digits, query needs {}",
                digits.len(),
                query.digits()
            )));
        }
        if key.id() != query.key_id {
            return Err(Error::Param("query names another collective key".into()));
        }
        let x = key.key;
        let query_id = query.id();
        let context = dp_context(&query_id, &query.key_id, dp);
        let table = crate::elgamal::key_table(&x);
        let (ciphertexts, rands): (Vec<_>, Vec<_>) = digits
            .iter()
            .map(|m| {
                let r = curve25519_dalek::scalar::Scalar::random(&mut *rng);
                (Ciphertext::encrypt_with_table(&table, *m, &r), r)
            })
            .unzip();
        let chunks = range_layout(&query.digit_bits());
        let prove = |i: usize, mut rng: &mut dyn RngCoreCrypto| -> Result<RangeProof> {
            let (bits, part) = &chunks[i];
            let mut tr = range_transcript(&context, i, *bits, part);
            let values: Vec<u64> = part
                .iter()
                .map(|&j| if j == PAD { 0 } else { digits[j] })
                .collect();
            let blindings: Vec<_> = part
                .iter()
                .map(|&j| {
                    if j == PAD {
                        curve25519_dalek::scalar::Scalar::ZERO
                    } else {
                        rands[j]
                    }
                })
                .collect();
            let (proof, commitments) = RangeProof::prove_multiple_with_rng(
                bp_gens(),
                &pc_gens(&x),
                &mut tr,
                &values,
                &blindings,
                *bits,
                &mut rng,
            )
            .map_err(|e| Error::OutOfRange(format!("range proof: {e}")))?;
            debug_assert!(commitments.iter().zip(part).all(|(v, &j)| if j == PAD {
                *v == CompressedRistretto::identity()
            } else {
                *v == ciphertexts[j].c.compress()
            }));
            Ok(proof)
        };
        let threads = threads.clamp(1, PROVE_THREADS_MAX).min(chunks.len());
        let range_proofs: Vec<RangeProof> = if threads <= 1 {
            (0..chunks.len())
                .map(|i| prove(i, &mut *rng))
                .collect::<Result<_>>()?
        } else {
            // Longest-processing-time-first on the bits each proof covers.
            let mut order: Vec<usize> = (0..chunks.len()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse(chunks[i].0 * chunks[i].1.len()));
            let mut loads = vec![(0usize, Vec::new()); threads];
            for i in order {
                let t = (0..threads).min_by_key(|&t| loads[t].0).unwrap_or(0);
                loads[t].0 += chunks[i].0 * chunks[i].1.len();
                loads[t].1.push(i);
            }
            let prove = &prove;
            let mut proofs: Vec<Option<RangeProof>> = vec![None; chunks.len()];
            let results: Vec<Vec<(usize, Result<RangeProof>)>> = std::thread::scope(|scope| {
                let handles: Vec<_> = loads
                    .into_iter()
                    .map(|(_, mine)| {
                        scope.spawn(move || {
                            let mut rng = rand::thread_rng();
                            mine.into_iter()
                                .map(|i| (i, prove(i, &mut rng)))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            vec![(
                                usize::MAX,
                                Err(Error::Param("prover thread panicked".into())),
                            )]
                        })
                    })
                    .collect()
            });
            for (i, r) in results.into_iter().flatten() {
                let proof = r?;
                if let Some(slot) = proofs.get_mut(i) {
                    *slot = Some(proof);
                }
            }
            proofs
                .into_iter()
                .map(|p| p.ok_or_else(|| Error::Param("missing range proof".into())))
                .collect::<Result<_>>()?
        };
        let wellformed = WellFormedProof::prove(&context, &x, &ciphertexts, digits, &rands, rng);
        Ok(Self {
            query_id,
            dp,
            server,
            ciphertexts,
            range_proofs,
            wellformed,
        })
    }

    /// Context bound into this response's proofs under the collective key `key_id`.
    pub fn context(&self, key_id: &[u8; 32]) -> Vec<u8> {
        dp_context(&self.query_id, key_id, self.dp)
    }

    /// Verifies the range proofs for digits of the sizes `bits` ([`Query::digit_bits`];
    /// variable time, public data).
    pub fn verify_range(&self, key: &CollectiveKey, bits: &[usize]) -> bool {
        let cc = compress_cts(&self.ciphertexts);
        self.range_jobs(&key.id(), &key.key, bits, &cc)
            .is_some_and(|jobs| jobs.into_iter().all(RangeJob::verify))
    }

    /// The response's range proofs as independent checks, one per aggregated proof, so a
    /// verifier can spread them over threads: the response passes iff its layout fits
    /// (`Some`) and every job verifies. `key_id` and `key` are the collective key's id and X.
    /// `cc` is [`compress_cts`] of the response's ciphertexts.
    pub(crate) fn range_jobs(
        &self,
        key_id: &[u8; 32],
        key: &RistrettoPoint,
        bits: &[usize],
        cc: &[(CompressedRistretto, CompressedRistretto)],
    ) -> Option<Vec<RangeJob<'_>>> {
        let n = self.ciphertexts.len();
        let chunks = range_layout(bits);
        if n == 0
            || n > DIGITS_MAX
            || n != bits.len()
            || cc.len() != n
            || chunks
                .iter()
                .map(|(_, p)| p.iter().filter(|&&j| j != PAD).count())
                .sum::<usize>()
                != n
            || self.range_proofs.len() != chunks.len()
        {
            return None;
        }
        let commitments: Vec<CompressedRistretto> = cc.iter().map(|(_, c)| *c).collect();
        let context = self.context(key_id);
        let pc = pc_gens(key);
        Some(
            chunks
                .iter()
                .zip(&self.range_proofs)
                .enumerate()
                .map(|(i, ((bits, part), proof))| RangeJob {
                    proof,
                    transcript: range_transcript(&context, i, *bits, part),
                    commitments: part
                        .iter()
                        .map(|&j| {
                            if j == PAD {
                                CompressedRistretto::identity()
                            } else {
                                commitments[j]
                            }
                        })
                        .collect(),
                    bits: *bits,
                    pc,
                })
                .collect(),
        )
    }

    /// Verifies the well-formedness proof alone (the verifier batches it instead).
    pub fn verify_wellformed(&self, key: &CollectiveKey) -> bool {
        self.wellformed
            .verify(&self.context(&key.id()), &key.key, &self.ciphertexts)
    }

    pub fn digest(&self) -> [u8; 32] {
        self.digest_with(&compress_cts(&self.ciphertexts))
    }

    /// [`DpResponse::digest`] with the ciphertexts already compressed ([`compress_cts`]).
    pub(crate) fn digest_with(
        &self,
        cc: &[(CompressedRistretto, CompressedRistretto)],
    ) -> [u8; 32] {
        let mut w = Writer::new();
        self.write_with(&mut w, cc);
        digest(b"vigil-privstats/dp-response/v1", &w.finish())
    }

    /// The canonical encoding, reading the ciphertexts from `cc` (their compressed form).
    fn write_with(&self, w: &mut Writer, cc: &[(CompressedRistretto, CompressedRistretto)]) {
        debug_assert_eq!(cc.len(), self.ciphertexts.len());
        w.fixed(&self.query_id)
            .u32(self.dp)
            .u32(self.server)
            .seq_len(cc.len());
        for (k, c) in cc {
            w.fixed(k.as_bytes()).fixed(c.as_bytes());
        }
        w.seq_len(self.range_proofs.len());
        for p in &self.range_proofs {
            w.bytes(&p.to_bytes());
        }
        self.wellformed.write(w);
    }
}

impl Canonical for DpResponse {
    fn write(&self, w: &mut Writer) {
        self.write_with(w, &compress_cts(&self.ciphertexts));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let query_id = r.fixed()?;
        let dp = r.u32()?;
        let server = r.u32()?;
        let n = r.seq_len()?;
        if n > DIGITS_MAX {
            return Err(Error::Decode("too many ciphertexts"));
        }
        let ciphertexts = (0..n).map(|_| Ciphertext::read(r)).collect::<Result<_>>()?;
        let m = r.seq_len()?;
        if m > DIGITS_MAX {
            return Err(Error::Decode("too many range proofs"));
        }
        let range_proofs = (0..m)
            .map(|_| RangeProof::from_bytes(r.bytes()?).map_err(|_| Error::Decode("range proof")))
            .collect::<Result<_>>()?;
        let wellformed = WellFormedProof::read(r)?;
        Ok(Self {
            query_id,
            dp,
            server,
            ciphertexts,
            range_proofs,
            wellformed,
        })
    }
}
