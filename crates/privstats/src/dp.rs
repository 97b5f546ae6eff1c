//! Data-provider side: a plaintext local answer, its digit encoding, and the encrypted response
//! with an aggregated range proof and a well-formedness proof.

use std::sync::OnceLock;

use bulletproofs::{BulletproofGens, PedersenGens, RangeProof};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT as G;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use merlin::Transcript;
use rand_core::{CryptoRng, RngCore};

use crate::elgamal::Ciphertext;
use crate::encoding::{Canonical, Reader, Writer, digest};
use crate::error::{Error, Result};
use crate::keys::{CollectiveKey, ServerId};
use crate::query::{DIGIT_BITS, DpId, Field, Query, ROWS_MAX};
use crate::sigma::WellFormedProof;

/// Domain separator of the DPs' range proofs (Bulletproofs adds its own inside).
pub const RANGE_DOMAIN: &[u8] = b"vigil-privstats/range/v1";
/// Most digits in one response (Bulletproofs party capacity).
pub const DIGITS_MAX: usize = 64;

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

    /// Splits the answer into the query's 16-bit digits (little-endian within each field),
    /// padded with zeros; refuses an answer beyond the bounds the proofs enforce.
    pub fn digits(&self, query: &Query) -> Result<Vec<u64>> {
        if self.count > ROWS_MAX {
            return Err(Error::OutOfRange(format!(
                "{} rows, at most {ROWS_MAX}",
                self.count
            )));
        }
        let mut out = Vec::with_capacity(query.padded_digits());
        for f in query.fields() {
            let v = match f {
                Field::Count => self.count,
                Field::Sum => self.sum,
                Field::SumSq => self.sumsq,
                Field::Bin(i) => self.bins.get(i).copied().unwrap_or(0),
            };
            let n = f.digits();
            if v >> (DIGIT_BITS * n) != 0 {
                return Err(Error::OutOfRange(format!(
                    "{f:?} = {v} needs more than {n} digits"
                )));
            }
            out.extend((0..n).map(|k| (v >> (DIGIT_BITS * k)) & 0xffff));
        }
        out.resize(query.padded_digits(), 0);
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
    /// One ciphertext per padded digit.
    pub ciphertexts: Vec<Ciphertext>,
    pub range_proof: RangeProof,
    pub wellformed: WellFormedProof,
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
        Self::encrypt_digits(query, key, dp, server, &digits, rng)
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
        rng: &mut R,
    ) -> Result<Self> {
        if digits.len() != query.padded_digits() || digits.len() > DIGITS_MAX {
            return Err(Error::Param(format!(
                "{} digits, query needs {}",
                digits.len(),
                query.padded_digits()
            )));
        }
        if key.id() != query.key_id {
            return Err(Error::Param("query names another collective key".into()));
        }
        let x = key.key;
        let query_id = query.id();
        let context = dp_context(&query_id, &query.key_id, dp);
        let (ciphertexts, rands): (Vec<_>, Vec<_>) = digits
            .iter()
            .map(|m| Ciphertext::encrypt(&x, *m, &mut *rng))
            .unzip();
        let mut tr = Transcript::new(RANGE_DOMAIN);
        tr.append_message(b"context", &context);
        let (range_proof, commitments) = RangeProof::prove_multiple_with_rng(
            bp_gens(),
            &pc_gens(&x),
            &mut tr,
            digits,
            &rands,
            DIGIT_BITS,
            &mut *rng,
        )
        .map_err(|e| Error::Param(format!("range proof: {e}")))?;
        debug_assert!(
            commitments
                .iter()
                .zip(&ciphertexts)
                .all(|(v, ct)| *v == ct.c.compress())
        );
        let wellformed = WellFormedProof::prove(&context, &x, &ciphertexts, digits, &rands, rng);
        Ok(Self {
            query_id,
            dp,
            server,
            ciphertexts,
            range_proof,
            wellformed,
        })
    }

    pub(crate) fn context(&self, key_id: &[u8; 32]) -> Vec<u8> {
        dp_context(&self.query_id, key_id, self.dp)
    }

    /// Verifies the range proof (variable time; public data).
    pub fn verify_range(&self, key: &CollectiveKey) -> bool {
        let n = self.ciphertexts.len();
        if n == 0 || !n.is_power_of_two() || n > DIGITS_MAX {
            return false;
        }
        let commitments: Vec<CompressedRistretto> =
            self.ciphertexts.iter().map(|ct| ct.c.compress()).collect();
        let mut tr = Transcript::new(RANGE_DOMAIN);
        tr.append_message(b"context", &self.context(&key.id()));
        self.range_proof
            .verify_multiple_with_rng(
                bp_gens(),
                &pc_gens(&key.key),
                &mut tr,
                &commitments,
                DIGIT_BITS,
                &mut rand_core::OsRng,
            )
            .is_ok()
    }

    /// Verifies the well-formedness proof alone (the verifier batches it instead).
    pub fn verify_wellformed(&self, key: &CollectiveKey) -> bool {
        self.wellformed
            .verify(&self.context(&key.id()), &key.key, &self.ciphertexts)
    }

    pub fn digest(&self) -> [u8; 32] {
        digest(b"vigil-privstats/dp-response/v1", &self.to_bytes())
    }
}

impl Canonical for DpResponse {
    fn write(&self, w: &mut Writer) {
        w.fixed(&self.query_id)
            .u32(self.dp)
            .u32(self.server)
            .seq_len(self.ciphertexts.len());
        for ct in &self.ciphertexts {
            ct.write(w);
        }
        w.bytes(&self.range_proof.to_bytes());
        self.wellformed.write(w);
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
        let range_proof =
            RangeProof::from_bytes(r.bytes()?).map_err(|_| Error::Decode("range proof"))?;
        let wellformed = WellFormedProof::read(r)?;
        Ok(Self {
            query_id,
            dp,
            server,
            ciphertexts,
            range_proof,
            wellformed,
        })
    }
}
