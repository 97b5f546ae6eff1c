//! Exponential ElGamal on Ristretto255: Enc_X(m; r) = (K, C) = (r·G, m·G + r·X).
//!
//! C is a Pedersen commitment to m under generators (G, X), which is what lets Bulletproofs
//! range proofs (with `PedersenGens { B: G, B_blinding: X }`) speak about the plaintext directly.

use std::ops::{Add, AddAssign};
use std::sync::{Arc, Mutex};

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE as G_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoBasepointTable, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use rand_core::{CryptoRng, RngCore};

use crate::encoding::{Canonical, Reader, Writer};
use crate::error::Result;

/// An exponential-ElGamal ciphertext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ciphertext {
    /// r·G.
    pub k: RistrettoPoint,
    /// m·G + r·X.
    pub c: RistrettoPoint,
}

impl Ciphertext {
    /// The encryption of 0 with randomness 0: the neutral element of homomorphic addition.
    pub fn zero() -> Self {
        Self {
            k: RistrettoPoint::identity(),
            c: RistrettoPoint::identity(),
        }
    }

    /// Encrypts `m` under `key` with the given randomness.
    pub fn encrypt_with(key: &RistrettoPoint, m: u64, r: &Scalar) -> Self {
        Self {
            k: r * G_TABLE,
            c: &Scalar::from(m) * G_TABLE + r * key,
        }
    }

    /// [`Ciphertext::encrypt_with`] with a precomputed table of the key ([`key_table`]):
    /// r·X as a fixed-base multiplication, about 3× faster than a variable-base one. Constant
    /// time, like the rest of encryption.
    pub fn encrypt_with_table(key: &RistrettoBasepointTable, m: u64, r: &Scalar) -> Self {
        Self {
            k: r * G_TABLE,
            c: &Scalar::from(m) * G_TABLE + r * key,
        }
    }

    /// Encrypts `m` under `key` with fresh randomness; returns the randomness too (the prover
    /// needs it for the proofs).
    pub fn encrypt<R: RngCore + CryptoRng>(
        key: &RistrettoPoint,
        m: u64,
        rng: &mut R,
    ) -> (Self, Scalar) {
        let r = Scalar::random(rng);
        (Self::encrypt_with(key, m, &r), r)
    }

    /// Byte size of the canonical encoding.
    pub const ENCODED_LEN: usize = 64;
}

impl Add for Ciphertext {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            k: self.k + o.k,
            c: self.c + o.c,
        }
    }
}

impl AddAssign for Ciphertext {
    fn add_assign(&mut self, o: Self) {
        self.k += o.k;
        self.c += o.c;
    }
}

impl Canonical for Ciphertext {
    fn write(&self, w: &mut Writer) {
        w.point(&self.k).point(&self.c);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            k: r.point()?,
            c: r.point()?,
        })
    }
}

/// A response's ciphertexts compressed once, (K_i, C_i) in order: its well-formedness
/// transcript, its range proofs' commitments and its digest all read these bytes, and a
/// compression costs a field inversion.
pub(crate) type CompressedCts = Vec<(CompressedRistretto, CompressedRistretto)>;

/// Compresses every ciphertext of `cts`.
pub(crate) fn compress_cts(cts: &[Ciphertext]) -> CompressedCts {
    cts.iter()
        .map(|ct| (ct.k.compress(), ct.c.compress()))
        .collect()
}

/// A precomputed table of `key` for fixed-base multiplication (what a DP encrypts under for
/// every query), built once per key: the last key's table is kept.
pub fn key_table(key: &RistrettoPoint) -> Arc<RistrettoBasepointTable> {
    static LAST: Mutex<Option<(CompressedRistretto, Arc<RistrettoBasepointTable>)>> =
        Mutex::new(None);
    let id = key.compress();
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match last.as_ref() {
        Some((k, t)) if *k == id => t.clone(),
        _ => {
            let t = Arc::new(RistrettoBasepointTable::create(key));
            *last = Some((id, t.clone()));
            t
        }
    }
}

/// A plain ElGamal key pair (the querier's).
pub struct KeyPair {
    secret: Scalar,
    /// y·G.
    pub public: RistrettoPoint,
}

impl KeyPair {
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let secret = Scalar::random(rng);
        Self {
            public: &secret * G_TABLE,
            secret,
        }
    }

    /// The key pair of a stored secret ([`KeyPair::secret_bytes`]).
    pub fn from_secret(secret: Scalar) -> Self {
        Self {
            public: &secret * G_TABLE,
            secret,
        }
    }

    /// The secret, for the service's durable store only.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes()
    }

    /// m·G = C − y·K for a ciphertext under this key.
    pub fn decrypt_to_point(&self, ct: &Ciphertext) -> RistrettoPoint {
        ct.c - self.secret * ct.k
    }
}
