//! Sigma protocols made non-interactive with merlin transcripts (Fiat–Shamir), composed from
//! curve25519-dalek group operations. One versioned domain separator per protocol.
//!
//! # Soundness notes
//!
//! All three protocols are instances of the generic proof of knowledge of a preimage of a group
//! homomorphism φ: Z_ℓ^w → 𝔾^s (Maurer, "Unifying zero-knowledge proofs of knowledge", 2009;
//! Camenisch–Stadler notation). The prover sends T = φ(k) for random k, gets challenge e, answers
//! z = k + e·w; the verifier checks φ(z) = T + e·Y. Special soundness: from two accepting
//! transcripts (T, e, z), (T, e', z') with e ≠ e', w* = (z − z')/(e − e') satisfies φ(w*) = Y,
//! because φ is a homomorphism and ℓ is prime. Honest-verifier zero knowledge: pick z, e at random
//! and set T = φ(z) − e·Y. Fiat–Shamir turns this into a NIZK in the random-oracle model provided
//! the challenge hashes the *whole statement* (every public point, the protocol's version tag and
//! the context it is used in) together with T; otherwise the proof could be replayed or the
//! statement chosen after the challenge (Bernhard–Pereira–Warinschi, "How not to prove yourself",
//! 2012). Each protocol below says what its transcript binds.
//!
//! * [`DlogProof`] — statement A, witness a with A = a·G (Schnorr 1991). Used by DKG dealers for
//!   their constant term, binding the ceremony id and the dealer index, so a dealer cannot copy
//!   another's commitment (rogue-key) and the proof cannot be replayed in another ceremony.
//! * [`WellFormedProof`] — statement (G, X, (K_i, C_i)_i), witnesses (r_i, m_i) with
//!   K_i = r_i·G and C_i = m_i·G + r_i·X, i.e. φ(r, m) = (r·G, m·G + r·X). Extraction yields the
//!   same r in both equations, so K_i carries the randomness of C_i and the ciphertext decrypts to
//!   m_i. Combined with the Bulletproof on C_i (an argument of knowledge of an opening (v, γ) of
//!   C_i with v in range), the binding of Pedersen commitments under the discrete-log assumption
//!   (nobody knows log_G X, it is shared among the servers) gives v = m_i and γ = r_i.
//!   *Version 2 proves all of a response's n ciphertexts with one proof*: the transcript first
//!   binds the query id, the DP id, the collective key X and every (K_i, C_i), then yields ρ, and
//!   the proof is the protocol above for the single pair (K*, C*) = Σ ρ^i·(K_i, C_i) with witness
//!   (Σ ρ^i r_i, Σ ρ^i m_i) (the challenge e is drawn after T1, T2 on the same transcript).
//!   Why it still covers every ciphertext: write K_i = a_i·G (a_i exists, G generates the group)
//!   and take γ_i from the Bulletproof's extracted opening of C_i. Extraction gives (r*, m*) with
//!   K* = r*·G, so r* = Σ ρ^i a_i, and C* = m*·G + r*·X, so by binding r* = Σ ρ^i γ_i. Hence
//!   Σ ρ^i (a_i − γ_i) = 0: a polynomial of degree < n in ρ, fixed before ρ is drawn (ρ hashes
//!   every K_i, C_i), which is the zero polynomial except with probability n/ℓ per random-oracle
//!   query (Schwartz–Zippel). So a_i = γ_i for every i: each K_i carries its C_i's randomness.
//!   This is the usual random-linear-combination batching of sigma statements (the small-
//!   exponents test of Bellare–Garay–Rabin 1998, with Fiat–Shamir weights). n ≤ 64
//!   ([`WELLFORMED_CIPHERTEXTS_MAX`]), so the error stays below 2^-246. Version 1 sent one
//!   (T1, T2, z_r, z_m) per ciphertext: 28× the size and twice the verifier's points.
//! * [`KeySwitchProof`] — statement (G, Y, X_j, (K_d, K'_d, C'_d)_d), witnesses (x_j, (v_d)_d)
//!   with X_j = x_j·G, K'_d = v_d·G, C'_d = v_d·Y − x_j·K_d. This is a Chaum–Pedersen
//!   discrete-log-equality proof (the same x_j in X_j and in C'_d) extended with the re-encryption
//!   randomness. The transcript binds the query id, the server index, Y, X_j and every K_d, K'_d,
//!   C'_d, so a share cannot be moved to another aggregate, query or server.
//! * [`DleqProof`] — statement (G, P, (B_i, K_i)_i), witness s with P = s·G and K_i = s·B_i
//!   (Chaum–Pedersen over several bases). A DKG receiver uses it to publish the Diffie–Hellman
//!   values of an encrypted share with proof that they are the ones its key determines, so anyone
//!   can open the share and judge the complaint. The transcript binds the context (ceremony,
//!   dealer, receiver), P and every (B_i, K_i). Stored in (e, z) form: the verifier recomputes
//!   T = z·G − e·P, T_i = z·B_i − e·K_i and checks that e hashes them.
//!
//! Batch verification: the verification equations of many proofs are checked at once as one
//! random linear combination (independent uniform weights ρ); if any equation fails, the combined
//! check fails except with probability 1/ℓ per failed equation (Bellare–Garay–Rabin 1998, small
//! exponents test, here with full-size exponents). On failure the callers re-verify one by one to
//! name the culprit.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT as G;
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE as G_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, MultiscalarMul, VartimeMultiscalarMul};
use merlin::Transcript;
use rand_core::{CryptoRng, RngCore};

use crate::elgamal::Ciphertext;
use crate::encoding::{Canonical, Reader, Writer};
use crate::error::{Error, Result};

/// Domain separator of the DKG dealer's Schnorr proof.
pub const DLOG_DOMAIN: &[u8] = b"vigil-privstats/dkg-dlog/v1";
/// Domain separator of the ciphertext well-formedness proof.
pub const WELLFORMED_DOMAIN: &[u8] = b"vigil-privstats/wellformed/v2";
/// Domain separator of the key-switch proof.
pub const KEYSWITCH_DOMAIN: &[u8] = b"vigil-privstats/keyswitch/v1";
/// Domain separator of the DKG complaint's discrete-log-equality proof.
pub const DLEQ_DOMAIN: &[u8] = b"vigil-privstats/dkg-dleq/v1";

pub(crate) trait TranscriptExt {
    fn point(&mut self, label: &'static [u8], p: &RistrettoPoint);
    fn u64(&mut self, label: &'static [u8], v: u64);
    fn challenge(&mut self, label: &'static [u8]) -> Scalar;
}

impl TranscriptExt for Transcript {
    fn point(&mut self, label: &'static [u8], p: &RistrettoPoint) {
        self.append_message(label, p.compress().as_bytes());
    }
    fn u64(&mut self, label: &'static [u8], v: u64) {
        self.append_u64(label, v);
    }
    fn challenge(&mut self, label: &'static [u8]) -> Scalar {
        let mut wide = [0u8; 64];
        self.challenge_bytes(label, &mut wide);
        Scalar::from_bytes_mod_order_wide(&wide)
    }
}

/// Runs a vartime multiscalar multiplication and tells whether it is the identity.
fn msm_is_identity(scalars: Vec<Scalar>, points: Vec<RistrettoPoint>) -> bool {
    debug_assert_eq!(scalars.len(), points.len());
    RistrettoPoint::vartime_multiscalar_mul(scalars, points).is_identity()
}

// ---------------------------------------------------------------------------------------------

/// Schnorr proof of knowledge of a with A = a·G.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DlogProof {
    t: RistrettoPoint,
    z: Scalar,
}

impl DlogProof {
    fn challenge(context: &[u8], a: &RistrettoPoint, t: &RistrettoPoint) -> Scalar {
        let mut tr = Transcript::new(DLOG_DOMAIN);
        tr.append_message(b"context", context);
        tr.point(b"A", a);
        tr.point(b"T", t);
        tr.challenge(b"e")
    }

    pub fn prove<R: RngCore + CryptoRng>(context: &[u8], a: &Scalar, rng: &mut R) -> Self {
        let k = Scalar::random(rng);
        let t = &k * G_TABLE;
        let e = Self::challenge(context, &(a * G_TABLE), &t);
        Self { t, z: k + e * a }
    }

    pub fn verify(&self, context: &[u8], a: &RistrettoPoint) -> bool {
        if a.is_identity() {
            return false;
        }
        let e = Self::challenge(context, a, &self.t);
        &self.z * G_TABLE == self.t + e * a
    }
}

impl Canonical for DlogProof {
    fn write(&self, w: &mut Writer) {
        w.point(&self.t).scalar(&self.z);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            t: r.point()?,
            z: r.scalar()?,
        })
    }
}

// ---------------------------------------------------------------------------------------------

/// Proof that log_G(P) = log_{B_i}(K_i) for every i.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DleqProof {
    e: Scalar,
    z: Scalar,
}

impl DleqProof {
    fn challenge(
        context: &[u8],
        p: &RistrettoPoint,
        pairs: &[(RistrettoPoint, RistrettoPoint)],
        t: &RistrettoPoint,
        ts: &[RistrettoPoint],
    ) -> Scalar {
        let mut tr = Transcript::new(DLEQ_DOMAIN);
        tr.append_message(b"context", context);
        tr.point(b"P", p);
        tr.u64(b"n", pairs.len() as u64);
        for ((b, k), ti) in pairs.iter().zip(ts) {
            tr.point(b"B", b);
            tr.point(b"K", k);
            tr.point(b"Ti", ti);
        }
        tr.point(b"T", t);
        tr.challenge(b"e")
    }

    /// Proves P = s·G and K_i = s·B_i for `pairs` = (B_i, K_i).
    pub fn prove<R: RngCore + CryptoRng>(
        context: &[u8],
        s: &Scalar,
        pairs: &[(RistrettoPoint, RistrettoPoint)],
        rng: &mut R,
    ) -> Self {
        let k = Scalar::random(rng);
        let t = &k * G_TABLE;
        let ts: Vec<RistrettoPoint> = pairs.iter().map(|(b, _)| k * b).collect();
        let e = Self::challenge(context, &(s * G_TABLE), pairs, &t, &ts);
        Self { e, z: k + e * s }
    }

    pub fn verify(
        &self,
        context: &[u8],
        p: &RistrettoPoint,
        pairs: &[(RistrettoPoint, RistrettoPoint)],
    ) -> bool {
        if p.is_identity() || pairs.iter().any(|(b, _)| b.is_identity()) {
            return false;
        }
        let t = RistrettoPoint::vartime_multiscalar_mul([self.z, -self.e], [G, *p]);
        let ts: Vec<RistrettoPoint> = pairs
            .iter()
            .map(|(b, k)| RistrettoPoint::vartime_multiscalar_mul([self.z, -self.e], [*b, *k]))
            .collect();
        Self::challenge(context, p, pairs, &t, &ts) == self.e
    }
}

impl Canonical for DleqProof {
    fn write(&self, w: &mut Writer) {
        w.scalar(&self.e).scalar(&self.z);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            e: r.scalar()?,
            z: r.scalar()?,
        })
    }
}

// ---------------------------------------------------------------------------------------------

/// Proof that every ciphertext (K_i, C_i) of a response is (r_i·G, m_i·G + r_i·X), for all i at
/// once: one sigma proof on the combination Σ ρ^i·(K_i, C_i), ρ hashed from every ciphertext
/// (soundness in the module notes). Constant size: 2 points and 2 scalars.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WellFormedProof {
    /// T1 = k_r·G, T2 = k_m·G + k_r·X.
    commitment: (RistrettoPoint, RistrettoPoint),
    /// z_r = k_r + e·Σ ρ^i r_i, z_m = k_m + e·Σ ρ^i m_i.
    response: (Scalar, Scalar),
}

/// Most ciphertexts one well-formedness proof covers (the soundness error grows with it).
pub const WELLFORMED_CIPHERTEXTS_MAX: usize = 64;

impl WellFormedProof {
    /// The statement's transcript: context, X and every (K_i, C_i), given compressed
    /// ([`crate::elgamal::compress_cts`]).
    fn transcript(
        context: &[u8],
        key: &RistrettoPoint,
        cc: &[(CompressedRistretto, CompressedRistretto)],
    ) -> Transcript {
        let mut tr = Transcript::new(WELLFORMED_DOMAIN);
        tr.append_message(b"context", context);
        tr.point(b"X", key);
        tr.u64(b"n", cc.len() as u64);
        for (k, c) in cc {
            tr.append_message(b"K", k.as_bytes());
            tr.append_message(b"C", c.as_bytes());
        }
        tr
    }

    /// The weights 1, ρ, ρ², … of the combination, ρ hashed from the whole statement.
    fn weights(tr: &mut Transcript, n: usize) -> Vec<Scalar> {
        let rho = tr.challenge(b"rho");
        let mut out = Vec::with_capacity(n);
        let mut w = Scalar::ONE;
        for _ in 0..n {
            out.push(w);
            w *= rho;
        }
        out
    }

    fn challenge(tr: &mut Transcript, commitment: &(RistrettoPoint, RistrettoPoint)) -> Scalar {
        tr.point(b"T1", &commitment.0);
        tr.point(b"T2", &commitment.1);
        tr.challenge(b"e")
    }

    /// Proves well-formedness of `cts[i] = Enc_key(values[i]; rands[i])`.
    pub fn prove<R: RngCore + CryptoRng>(
        context: &[u8],
        key: &RistrettoPoint,
        cts: &[Ciphertext],
        values: &[u64],
        rands: &[Scalar],
        rng: &mut R,
    ) -> Self {
        assert!(cts.len() == values.len() && cts.len() == rands.len());
        let mut tr = Self::transcript(context, key, &crate::elgamal::compress_cts(cts));
        let w = Self::weights(&mut tr, cts.len());
        let r: Scalar = w.iter().zip(rands).map(|(w, r)| w * r).sum();
        let m: Scalar = w
            .iter()
            .zip(values)
            .map(|(w, v)| w * Scalar::from(*v))
            .sum();
        let (kr, km) = (Scalar::random(&mut *rng), Scalar::random(&mut *rng));
        let commitment = (
            &kr * G_TABLE,
            RistrettoPoint::multiscalar_mul([km, kr], [G, *key]),
        );
        let e = Self::challenge(&mut tr, &commitment);
        Self {
            commitment,
            response: (kr + e * r, km + e * m),
        }
    }

    /// Appends this proof's verification equations, weighted by fresh random scalars, to a batch.
    #[allow(clippy::too_many_arguments)]
    fn push_batch<R: RngCore + CryptoRng>(
        &self,
        context: &[u8],
        key: &RistrettoPoint,
        cts: &[Ciphertext],
        cc: &[(CompressedRistretto, CompressedRistretto)],
        batch: &mut Batch,
        rng: &mut R,
    ) -> bool {
        if cts.is_empty() || cts.len() > WELLFORMED_CIPHERTEXTS_MAX || cc.len() != cts.len() {
            return false;
        }
        if cts.iter().any(|ct| ct.k.is_identity()) {
            return false;
        }
        let mut tr = Self::transcript(context, key, cc);
        let w = Self::weights(&mut tr, cts.len());
        let e = Self::challenge(&mut tr, &self.commitment);
        let ((t1, t2), (zr, zm)) = (self.commitment, self.response);
        let (p1, p2) = (Scalar::random(&mut *rng), Scalar::random(&mut *rng));
        // p1·(z_r·G − T1 − e·Σ ρ^i K_i) + p2·(z_m·G + z_r·X − T2 − e·Σ ρ^i C_i) = 0
        batch.g += p1 * zr + p2 * zm;
        batch.x += p2 * zr;
        batch.push(-p1, t1);
        batch.push(-p2, t2);
        let (e1, e2) = (-p1 * e, -p2 * e);
        for (ct, w) in cts.iter().zip(&w) {
            batch.push(e1 * w, ct.k);
            batch.push(e2 * w, ct.c);
        }
        true
    }

    /// Verifies one proof.
    pub fn verify(&self, context: &[u8], key: &RistrettoPoint, cts: &[Ciphertext]) -> bool {
        let mut rng = rand_core::OsRng;
        let mut batch = Batch::default();
        let cc = crate::elgamal::compress_cts(cts);
        self.push_batch(context, key, cts, &cc, &mut batch, &mut rng) && batch.check(key)
    }

    /// Verifies many proofs under one key with one multiscalar multiplication; on failure
    /// verifies them one by one. Returns one boolean per item.
    pub fn verify_batch(
        key: &RistrettoPoint,
        items: &[(&WellFormedProof, Vec<u8>, &[Ciphertext])],
    ) -> Vec<bool> {
        let compressed: Vec<_> = items
            .iter()
            .map(|(_, _, cts)| crate::elgamal::compress_cts(cts))
            .collect();
        let items: Vec<WellFormedItem<'_>> = items
            .iter()
            .zip(&compressed)
            .map(|((p, ctx, cts), cc)| (*p, ctx.as_slice(), *cts, cc.as_slice()))
            .collect();
        Self::verify_batch_compressed(key, &items)
    }

    /// [`WellFormedProof::verify_batch`] with every item's ciphertexts already compressed.
    pub(crate) fn verify_batch_compressed(
        key: &RistrettoPoint,
        items: &[WellFormedItem<'_>],
    ) -> Vec<bool> {
        let mut rng = rand_core::OsRng;
        let mut batch = Batch::default();
        let mut structurally_ok = true;
        for (proof, context, cts, cc) in items {
            structurally_ok &= proof.push_batch(context, key, cts, cc, &mut batch, &mut rng);
        }
        if structurally_ok && batch.check(key) {
            return vec![true; items.len()];
        }
        items
            .iter()
            .map(|(proof, context, cts, cc)| {
                let mut batch = Batch::default();
                proof.push_batch(context, key, cts, cc, &mut batch, &mut rng) && batch.check(key)
            })
            .collect()
    }
}

/// One well-formedness proof to verify: the proof, its context, the ciphertexts and their
/// compressed form.
pub(crate) type WellFormedItem<'a> = (
    &'a WellFormedProof,
    &'a [u8],
    &'a [Ciphertext],
    &'a [(CompressedRistretto, CompressedRistretto)],
);

impl Canonical for WellFormedProof {
    fn write(&self, w: &mut Writer) {
        w.point(&self.commitment.0)
            .point(&self.commitment.1)
            .scalar(&self.response.0)
            .scalar(&self.response.1);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            commitment: (r.point()?, r.point()?),
            response: (r.scalar()?, r.scalar()?),
        })
    }
}

/// A random linear combination of verification equations, checked with one MSM.
#[derive(Default)]
struct Batch {
    g: Scalar,
    x: Scalar,
    scalars: Vec<Scalar>,
    points: Vec<RistrettoPoint>,
}

impl Batch {
    fn push(&mut self, s: Scalar, p: RistrettoPoint) {
        self.scalars.push(s);
        self.points.push(p);
    }
    /// `x` is the second fixed generator of the equations (X for well-formedness, Y for
    /// key switching).
    fn check(mut self, x: &RistrettoPoint) -> bool {
        self.scalars.push(self.g);
        self.points.push(G);
        self.scalars.push(self.x);
        self.points.push(*x);
        msm_is_identity(self.scalars, self.points)
    }
}

// ---------------------------------------------------------------------------------------------

/// Proof that a key-switch share (K'_d, C'_d)_d = (v_d·G, v_d·Y − x_j·K_d)_d uses the x_j behind
/// the server's public verification key X_j = x_j·G.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySwitchProof {
    /// b·G.
    t_x: RistrettoPoint,
    /// (a_d·G, a_d·Y − b·K_d) per ciphertext.
    commitments: Vec<(RistrettoPoint, RistrettoPoint)>,
    /// z_b = b + e·x_j.
    z_x: Scalar,
    /// z_a,d = a_d + e·v_d.
    z_v: Vec<Scalar>,
}

/// Public statement of a key-switch share.
pub struct KeySwitchStatement<'a> {
    pub context: &'a [u8],
    pub querier: &'a RistrettoPoint,
    pub verification_key: &'a RistrettoPoint,
    /// The K components of the aggregate being switched.
    pub k: &'a [RistrettoPoint],
    /// The share: (K'_d, C'_d).
    pub share: &'a [Ciphertext],
}

impl KeySwitchProof {
    fn challenge(
        st: &KeySwitchStatement<'_>,
        t_x: &RistrettoPoint,
        commitments: &[(RistrettoPoint, RistrettoPoint)],
    ) -> Scalar {
        let mut tr = Transcript::new(KEYSWITCH_DOMAIN);
        tr.append_message(b"context", st.context);
        tr.point(b"Y", st.querier);
        tr.point(b"Xj", st.verification_key);
        tr.u64(b"n", st.k.len() as u64);
        for (k, s) in st.k.iter().zip(st.share) {
            tr.point(b"K", k);
            tr.point(b"K'", &s.k);
            tr.point(b"C'", &s.c);
        }
        tr.point(b"Tx", t_x);
        for (t1, t3) in commitments {
            tr.point(b"T1", t1);
            tr.point(b"T3", t3);
        }
        tr.challenge(b"e")
    }

    pub fn prove<R: RngCore + CryptoRng>(
        st: &KeySwitchStatement<'_>,
        x_j: &Scalar,
        v: &[Scalar],
        rng: &mut R,
    ) -> Self {
        assert!(st.k.len() == st.share.len() && st.k.len() == v.len());
        let b = Scalar::random(&mut *rng);
        let a: Vec<Scalar> = v.iter().map(|_| Scalar::random(&mut *rng)).collect();
        let t_x = &b * G_TABLE;
        let commitments: Vec<_> = a
            .iter()
            .zip(st.k)
            .map(|(a_d, k_d)| (a_d * G_TABLE, a_d * st.querier - b * k_d))
            .collect();
        let e = Self::challenge(st, &t_x, &commitments);
        Self {
            t_x,
            commitments,
            z_x: b + e * x_j,
            z_v: a.iter().zip(v).map(|(a_d, v_d)| a_d + e * v_d).collect(),
        }
    }

    fn push_batch<R: RngCore + CryptoRng>(
        &self,
        st: &KeySwitchStatement<'_>,
        batch: &mut Batch,
        rng: &mut R,
    ) -> bool {
        let n = st.k.len();
        if st.share.len() != n || self.commitments.len() != n || self.z_v.len() != n {
            return false;
        }
        let e = Self::challenge(st, &self.t_x, &self.commitments);
        // p0·(z_x·G − T_x − e·X_j) = 0
        let p0 = Scalar::random(&mut *rng);
        batch.g += p0 * self.z_x;
        batch.push(-p0, self.t_x);
        batch.push(-p0 * e, *st.verification_key);
        for (((t1, t3), z_v), (k_d, s)) in self
            .commitments
            .iter()
            .zip(&self.z_v)
            .zip(st.k.iter().zip(st.share))
        {
            let (p1, p2) = (Scalar::random(&mut *rng), Scalar::random(&mut *rng));
            // p1·(z_v·G − T1 − e·K') + p2·(z_v·Y − z_x·K − T3 − e·C') = 0
            batch.g += p1 * z_v;
            batch.x += p2 * z_v;
            batch.push(-p1, *t1);
            batch.push(-p1 * e, s.k);
            batch.push(-p2 * self.z_x, *k_d);
            batch.push(-p2, *t3);
            batch.push(-p2 * e, s.c);
        }
        true
    }

    pub fn verify(&self, st: &KeySwitchStatement<'_>) -> bool {
        let mut batch = Batch::default();
        self.push_batch(st, &mut batch, &mut rand_core::OsRng) && batch.check(st.querier)
    }

    /// Verifies many shares for the same querier key at once, falling back to one by one.
    pub fn verify_batch(items: &[(&KeySwitchProof, KeySwitchStatement<'_>)]) -> Vec<bool> {
        let Some((_, first)) = items.first() else {
            return Vec::new();
        };
        let querier = *first.querier;
        let mut batch = Batch::default();
        let mut ok = true;
        for (proof, st) in items {
            ok &= *st.querier == querier && proof.push_batch(st, &mut batch, &mut rand_core::OsRng);
        }
        if ok && batch.check(&querier) {
            return vec![true; items.len()];
        }
        items.iter().map(|(p, st)| p.verify(st)).collect()
    }
}

impl Canonical for KeySwitchProof {
    fn write(&self, w: &mut Writer) {
        w.point(&self.t_x)
            .scalar(&self.z_x)
            .seq_len(self.commitments.len());
        for ((t1, t3), z) in self.commitments.iter().zip(&self.z_v) {
            w.point(t1).point(t3).scalar(z);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let t_x = r.point()?;
        let z_x = r.scalar()?;
        let n = r.seq_len()?;
        let mut commitments = Vec::with_capacity(n);
        let mut z_v = Vec::with_capacity(n);
        for _ in 0..n {
            commitments.push((r.point()?, r.point()?));
            z_v.push(r.scalar()?);
        }
        Ok(Self {
            t_x,
            commitments,
            z_x,
            z_v,
        })
    }
}

/// Rejects the identity where a public key is expected.
pub(crate) fn check_public_key(p: &RistrettoPoint, what: &'static str) -> Result<()> {
    if p.is_identity() {
        return Err(Error::Param(format!("{what} is the identity point")));
    }
    Ok(())
}
