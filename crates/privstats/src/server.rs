//! Aggregation servers: homomorphic sums of their DPs' ciphertexts, cross-server sum, and key
//! switching of the total to the querier's key with a proof.
//!
//! Key switching (after Drynx/UnLynx, made threshold): for the total (K_d, C_d) = (r·G, m·G + r·X)
//! server j publishes (K'_jd, C'_jd) = (v·G, v·Y − x_j·K_d) with fresh v and a
//! [`KeySwitchProof`]. Any t shares from a set S combine with Lagrange coefficients λ_j:
//! K' = Σ λ_j·K'_jd, C' = C_d + Σ λ_j·C'_jd = m·G + (Σ λ_j v_j)·Y, because Σ λ_j·x_j = x.
//! The shares do not depend on S, so the combiner may use any t valid ones.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE as G_TABLE;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand_core::{CryptoRng, RngCore};

use crate::dp::DpResponse;
use crate::elgamal::Ciphertext;
use crate::encoding::{Canonical, Reader, Writer, digest};
use crate::error::{Error, Result};
use crate::keys::{ServerId, ServerKey, lagrange_at_zero};
use crate::query::{DPS_MAX, DpId, Query};
use crate::sigma::{KeySwitchProof, KeySwitchStatement};

/// A server's claimed sum of the responses it received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAggregate {
    pub query_id: [u8; 32],
    pub server: ServerId,
    /// DPs included, sorted.
    pub dps: Vec<DpId>,
    /// One ciphertext per meaningful digit (padding digits are not aggregated).
    pub sum: Vec<Ciphertext>,
}

/// Sums the first `digits` ciphertexts of each response.
pub fn sum_responses<'a>(
    digits: usize,
    responses: impl IntoIterator<Item = &'a DpResponse>,
) -> Vec<Ciphertext> {
    let mut sum = vec![Ciphertext::zero(); digits];
    for r in responses {
        for (acc, ct) in sum.iter_mut().zip(&r.ciphertexts) {
            *acc += *ct;
        }
    }
    sum
}

/// Sums the servers' aggregates into the collective total.
pub fn total(digits: usize, aggregates: &[ServerAggregate]) -> Vec<Ciphertext> {
    let mut sum = vec![Ciphertext::zero(); digits];
    for a in aggregates {
        for (acc, ct) in sum.iter_mut().zip(&a.sum) {
            *acc += *ct;
        }
    }
    sum
}

impl Canonical for ServerAggregate {
    fn write(&self, w: &mut Writer) {
        w.fixed(&self.query_id)
            .u32(self.server)
            .seq_len(self.dps.len());
        for d in &self.dps {
            w.u32(*d);
        }
        w.seq_len(self.sum.len());
        for ct in &self.sum {
            ct.write(w);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let query_id = r.fixed()?;
        let server = r.u32()?;
        let n = r.seq_len()?;
        if n > DPS_MAX {
            return Err(Error::Decode("too many dps"));
        }
        let dps = (0..n).map(|_| r.u32()).collect::<Result<_>>()?;
        let n = r.seq_len()?;
        let sum = (0..n).map(|_| Ciphertext::read(r)).collect::<Result<_>>()?;
        Ok(Self {
            query_id,
            server,
            dps,
            sum,
        })
    }
}

/// One server's key-switch share of the total, with its proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySwitchShare {
    pub query_id: [u8; 32],
    pub server: ServerId,
    /// (K'_d, C'_d) per digit.
    pub share: Vec<Ciphertext>,
    pub proof: KeySwitchProof,
}

pub(crate) fn keyswitch_context(
    query_id: &[u8; 32],
    key_id: &[u8; 32],
    server: ServerId,
) -> Vec<u8> {
    let mut w = Writer::new();
    w.fixed(query_id).fixed(key_id).u32(server);
    w.finish()
}

impl KeySwitchShare {
    /// The public statement this share proves, against the total's K components.
    pub fn statement<'a>(
        &'a self,
        context: &'a [u8],
        querier: &'a RistrettoPoint,
        verification_key: &'a RistrettoPoint,
        k: &'a [RistrettoPoint],
    ) -> KeySwitchStatement<'a> {
        KeySwitchStatement {
            context,
            querier,
            verification_key,
            k,
            share: &self.share,
        }
    }

    pub fn digest(&self) -> [u8; 32] {
        digest(b"vigil-privstats/keyswitch-share/v1", &self.to_bytes())
    }
}

impl Canonical for KeySwitchShare {
    fn write(&self, w: &mut Writer) {
        w.fixed(&self.query_id)
            .u32(self.server)
            .seq_len(self.share.len());
        for ct in &self.share {
            ct.write(w);
        }
        self.proof.write(w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let query_id = r.fixed()?;
        let server = r.u32()?;
        let n = r.seq_len()?;
        if n > crate::dp::DIGITS_MAX {
            return Err(Error::Decode("too many digits"));
        }
        let share = (0..n).map(|_| Ciphertext::read(r)).collect::<Result<_>>()?;
        Ok(Self {
            query_id,
            server,
            share,
            proof: KeySwitchProof::read(r)?,
        })
    }
}

/// An aggregation server.
pub struct Server {
    pub key: ServerKey,
}

impl Server {
    pub fn new(key: ServerKey) -> Self {
        Self { key }
    }

    pub fn id(&self) -> ServerId {
        self.key.id
    }

    /// Sums the responses this server received for `query` (one per DP; duplicates refused).
    pub fn aggregate(&self, query: &Query, responses: &[&DpResponse]) -> Result<ServerAggregate> {
        let query_id = query.id();
        let mut dps: Vec<DpId> = responses.iter().map(|r| r.dp).collect();
        dps.sort_unstable();
        if dps.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::Param("two responses from one DP".into()));
        }
        if let Some(r) = responses
            .iter()
            .find(|r| r.query_id != query_id || r.server != self.id())
        {
            return Err(Error::Param(format!(
                "response from DP {} is not for this query and server",
                r.dp
            )));
        }
        Ok(ServerAggregate {
            query_id,
            server: self.id(),
            dps,
            sum: sum_responses(query.digits(), responses.iter().copied()),
        })
    }

    /// Key-switches the collective total to the querier's key.
    pub fn key_switch<R: RngCore + CryptoRng>(
        &self,
        query: &Query,
        total: &[Ciphertext],
        rng: &mut R,
    ) -> KeySwitchShare {
        let query_id = query.id();
        let v: Vec<Scalar> = total.iter().map(|_| Scalar::random(&mut *rng)).collect();
        let share: Vec<Ciphertext> = total
            .iter()
            .zip(&v)
            .map(|(ct, v)| Ciphertext {
                k: v * G_TABLE,
                c: v * query.querier - self.key.share * ct.k,
            })
            .collect();
        let context = keyswitch_context(&query_id, &query.key_id, self.id());
        let k: Vec<RistrettoPoint> = total.iter().map(|ct| ct.k).collect();
        let vk = self.key.verification_key();
        let st = KeySwitchStatement {
            context: &context,
            querier: &query.querier,
            verification_key: &vk,
            k: &k,
            share: &share,
        };
        let proof = KeySwitchProof::prove(&st, &self.key.share, &v, rng);
        KeySwitchShare {
            query_id,
            server: self.id(),
            share,
            proof,
        }
    }
}

/// Combines t key-switch shares (already verified) into ciphertexts under the querier's key.
pub fn combine(total: &[Ciphertext], shares: &[&KeySwitchShare]) -> Vec<Ciphertext> {
    let ids: Vec<ServerId> = shares.iter().map(|s| s.server).collect();
    let mut out = total.to_vec();
    let mut k = vec![RistrettoPoint::default(); total.len()];
    for s in shares {
        let l = lagrange_at_zero(&ids, s.server);
        for (d, ct) in s.share.iter().enumerate() {
            k[d] += l * ct.k;
            out[d].c += l * ct.c;
        }
    }
    for (o, k) in out.iter_mut().zip(k) {
        o.k = k;
    }
    out
}
