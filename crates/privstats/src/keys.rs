//! The collective t-of-n ElGamal key: a joint-Feldman distributed key generation (Pedersen 1991,
//! "A threshold cryptosystem without a trusted party"; the GJKR 1999/2007 presentation with
//! complaints), where every server deals a Feldman VSS and the shares are summed.
//!
//! 1. Dealer i draws f_i(z) = a_i0 + a_i1·z + … + a_i,t−1·z^(t−1), publishes the commitments
//!    A_ik = a_ik·G and a Schnorr proof of knowledge of a_i0 (bound to the ceremony and to i), and
//!    sends s_ij = f_i(j) privately to server j.
//! 2. Server j checks s_ij·G = Σ_k j^k·A_ik (Feldman). A failing share yields a [`Complaint`]; the
//!    dealer answers by revealing s_ij publicly, anyone re-checks it ([`Dealing::verify_share`]),
//!    and a dealer whose revealed share still fails is disqualified.
//! 3. Over the qualified dealers Q: x_j = Σ_{i∈Q} s_ij, X = Σ_{i∈Q} A_i0, and the public
//!    verification key of server j is X_j = Σ_{i∈Q} Σ_k j^k·A_ik = x_j·G. The collective secret
//!    x = Σ a_i0 is never assembled; any t servers can act for it through Lagrange coefficients at 0.
//!
//! Soundness notes. Feldman's check is sound because the commitments fix f_i(j)·G for every j;
//! with t − 1 < n/2 corrupt servers the adversary learns t − 1 points of each honest polynomial
//! and nothing about Σ a_i0 (hiding under the discrete-log assumption only for the public key,
//! which is public anyway). Joint-Feldman lets a rushing adversary bias the distribution of X
//! (GJKR 1999); Gennaro et al. (2003, "Secure applications of Pedersen's DKG") show that the
//! resulting key is still secure for discrete-log based encryption and signatures, so we accept
//! the bias rather than adding the Pedersen-commitment round of GJKR. The proof of knowledge of
//! a_i0 stops a dealer from choosing A_i0 as a function of the others' (rogue-key), and binding
//! the dealer index stops copying another dealer's proof. Private channels between servers are
//! outside this crate (the ledger wiring must encrypt [`SecretShare`]s to the receiver).

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE as G_TABLE;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{Identity, VartimeMultiscalarMul};
use rand_core::{CryptoRng, RngCore};

use crate::encoding::{Canonical, Reader, Writer, digest};
use crate::error::{Error, Result};
use crate::sigma::{DlogProof, check_public_key};

/// A server's index: 1-based, it is also the server's evaluation point.
pub type ServerId = u32;

/// The most servers a key can have (a limit on everything).
pub const SERVERS_MAX: usize = 64;

/// Parameters of one key-generation ceremony.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DkgParams {
    /// Unique id of the ceremony (e.g. the hash of the ledger transaction that opens it).
    pub ceremony: [u8; 32],
    /// Any `threshold` servers can decrypt; fewer learn nothing.
    pub threshold: usize,
    /// Number of servers, with ids 1..=servers.
    pub servers: usize,
}

impl DkgParams {
    pub fn new(ceremony: [u8; 32], threshold: usize, servers: usize) -> Result<Self> {
        if servers == 0 || servers > SERVERS_MAX || threshold == 0 || threshold > servers {
            return Err(Error::Param(format!(
                "need 1 <= t <= n <= {SERVERS_MAX}, got t={threshold}, n={servers}"
            )));
        }
        Ok(Self {
            ceremony,
            threshold,
            servers,
        })
    }

    fn dealer_context(&self, dealer: ServerId) -> Vec<u8> {
        let mut w = Writer::new();
        w.fixed(&self.ceremony)
            .u32(self.threshold as u32)
            .u32(self.servers as u32)
            .u32(dealer);
        w.finish()
    }

    fn check_id(&self, id: ServerId) -> Result<()> {
        if id == 0 || id as usize > self.servers {
            return Err(Error::Param(format!(
                "server id {id} not in 1..={}",
                self.servers
            )));
        }
        Ok(())
    }
}

/// A dealer's public message: Feldman commitments and a proof of knowledge of the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dealing {
    pub dealer: ServerId,
    /// A_k = a_k·G for k = 0..t.
    pub commitments: Vec<RistrettoPoint>,
    pub proof: DlogProof,
}

/// A share sent privately from a dealer to a receiver (revealed only to answer a complaint).
#[derive(Clone, Debug)]
pub struct SecretShare {
    pub dealer: ServerId,
    pub receiver: ServerId,
    pub value: Scalar,
}

/// A receiver's public complaint that a dealer's share failed the Feldman check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Complaint {
    pub dealer: ServerId,
    pub receiver: ServerId,
}

/// Evaluates Σ_k j^k·A_k (variable time: public data).
fn eval_commitments(commitments: &[RistrettoPoint], j: ServerId) -> RistrettoPoint {
    let x = Scalar::from(u64::from(j));
    let mut pow = Scalar::ONE;
    let powers: Vec<Scalar> = commitments
        .iter()
        .map(|_| {
            let p = pow;
            pow *= x;
            p
        })
        .collect();
    RistrettoPoint::vartime_multiscalar_mul(powers, commitments)
}

/// Dealer side of step 1.
pub fn deal<R: RngCore + CryptoRng>(
    params: &DkgParams,
    dealer: ServerId,
    rng: &mut R,
) -> Result<(Dealing, Vec<SecretShare>)> {
    params.check_id(dealer)?;
    let coeffs: Vec<Scalar> = (0..params.threshold)
        .map(|_| Scalar::random(&mut *rng))
        .collect();
    let commitments = coeffs.iter().map(|a| a * G_TABLE).collect();
    let proof = DlogProof::prove(&params.dealer_context(dealer), &coeffs[0], rng);
    let shares = (1..=params.servers as ServerId)
        .map(|j| {
            let x = Scalar::from(u64::from(j));
            // Horner evaluation of f(j).
            let value = coeffs.iter().rev().fold(Scalar::ZERO, |acc, a| acc * x + a);
            SecretShare {
                dealer,
                receiver: j,
                value,
            }
        })
        .collect();
    Ok((
        Dealing {
            dealer,
            commitments,
            proof,
        },
        shares,
    ))
}

impl Dealing {
    /// Checks the public part: right degree, no identity constant term, valid proof of knowledge.
    pub fn verify_public(&self, params: &DkgParams) -> Result<()> {
        params.check_id(self.dealer)?;
        if self.commitments.len() != params.threshold
            || !self
                .proof
                .verify(&params.dealer_context(self.dealer), &self.commitments[0])
        {
            return Err(Error::BadDealing(self.dealer));
        }
        Ok(())
    }

    /// Feldman check of one share (by its receiver, or by anyone for a revealed share).
    pub fn verify_share(&self, share: &SecretShare) -> Result<()> {
        if share.dealer != self.dealer
            || &share.value * G_TABLE != eval_commitments(&self.commitments, share.receiver)
        {
            return Err(Error::BadShare {
                dealer: self.dealer,
                receiver: share.receiver,
            });
        }
        Ok(())
    }
}

impl Canonical for Dealing {
    fn write(&self, w: &mut Writer) {
        w.u32(self.dealer).seq_len(self.commitments.len());
        for a in &self.commitments {
            w.point(a);
        }
        self.proof.write(w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let dealer = r.u32()?;
        let n = r.seq_len()?;
        if n > SERVERS_MAX {
            return Err(Error::Decode("too many commitments"));
        }
        let commitments = (0..n).map(|_| r.point()).collect::<Result<_>>()?;
        Ok(Self {
            dealer,
            commitments,
            proof: DlogProof::read(r)?,
        })
    }
}

/// One receiver's view of the ceremony (step 2): collects dealings and shares, files complaints.
pub struct KeyGenReceiver {
    params: DkgParams,
    me: ServerId,
    accepted: Vec<(Dealing, Scalar)>,
    complaints: Vec<Complaint>,
}

impl KeyGenReceiver {
    pub fn new(params: DkgParams, me: ServerId) -> Result<Self> {
        params.check_id(me)?;
        Ok(Self {
            params,
            me,
            accepted: Vec::new(),
            complaints: Vec::new(),
        })
    }

    /// Takes a dealer's public dealing and the private share it sent this server.
    /// A dealing with a bad public part is an error (everyone sees it; the dealer is out);
    /// a bad private share becomes a complaint to publish.
    pub fn receive(&mut self, dealing: &Dealing, share: &SecretShare) -> Result<Option<Complaint>> {
        dealing.verify_public(&self.params)?;
        if share.receiver != self.me {
            return Err(Error::Param(format!(
                "share for server {} delivered to {}",
                share.receiver, self.me
            )));
        }
        if self
            .accepted
            .iter()
            .any(|(d, _)| d.dealer == dealing.dealer)
        {
            return Err(Error::Param(format!(
                "second dealing from dealer {}",
                dealing.dealer
            )));
        }
        match dealing.verify_share(share) {
            Ok(()) => {
                self.accepted.push((dealing.clone(), share.value));
                Ok(None)
            }
            Err(_) => {
                let c = Complaint {
                    dealer: dealing.dealer,
                    receiver: self.me,
                };
                self.complaints.push(c);
                Ok(Some(c))
            }
        }
    }

    /// Accepts a share that the dealer revealed publicly to answer our complaint, if it is valid.
    pub fn resolve(&mut self, dealing: &Dealing, revealed: &SecretShare) -> Result<()> {
        dealing.verify_share(revealed)?;
        self.complaints.retain(|c| c.dealer != dealing.dealer);
        self.accepted.push((dealing.clone(), revealed.value));
        Ok(())
    }

    /// Step 3 over the qualified dealers (every server must use the same set: it comes from the
    /// ledger). Fails if this server lacks a valid share from a qualified dealer.
    pub fn finish(self, qualified: &[Dealing]) -> Result<ServerKey> {
        let collective = CollectiveKey::from_dealings(&self.params, qualified)?;
        let mut share = Scalar::ZERO;
        for d in qualified {
            let (_, s) = self
                .accepted
                .iter()
                .find(|(a, _)| a == d)
                .ok_or(Error::BadShare {
                    dealer: d.dealer,
                    receiver: self.me,
                })?;
            share += s;
        }
        let vk = collective.verification_key(self.me)?;
        assert_eq!(
            &share * G_TABLE,
            vk,
            "summed share must match the published verification key"
        );
        Ok(ServerKey {
            id: self.me,
            share,
            collective,
        })
    }
}

/// The publishable result of key generation: goes on the ledger. Anyone can re-derive the key
/// and the verification keys from the dealings ([`CollectiveKey::verify`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectiveKey {
    pub ceremony: [u8; 32],
    pub threshold: usize,
    pub servers: usize,
    /// Qualified dealings, sorted by dealer.
    pub dealings: Vec<Dealing>,
    /// X = Σ A_i0.
    pub key: RistrettoPoint,
    /// X_j for j = 1..=servers.
    pub verification_keys: Vec<RistrettoPoint>,
}

impl CollectiveKey {
    /// Derives the collective key from the qualified dealings.
    pub fn from_dealings(params: &DkgParams, qualified: &[Dealing]) -> Result<Self> {
        if qualified.len() < params.threshold {
            return Err(Error::Param(format!(
                "{} qualified dealers, need at least t = {}",
                qualified.len(),
                params.threshold
            )));
        }
        let mut dealings = qualified.to_vec();
        dealings.sort_by_key(|d| d.dealer);
        if dealings.windows(2).any(|w| w[0].dealer == w[1].dealer) {
            return Err(Error::Param("duplicate dealer".into()));
        }
        for d in &dealings {
            d.verify_public(params)?;
        }
        let key = dealings
            .iter()
            .fold(RistrettoPoint::identity(), |acc, d| acc + d.commitments[0]);
        check_public_key(&key, "collective key")?;
        let verification_keys = (1..=params.servers as ServerId)
            .map(|j| {
                dealings.iter().fold(RistrettoPoint::identity(), |acc, d| {
                    acc + eval_commitments(&d.commitments, j)
                })
            })
            .collect();
        Ok(Self {
            ceremony: params.ceremony,
            threshold: params.threshold,
            servers: params.servers,
            dealings,
            key,
            verification_keys,
        })
    }

    /// Re-derives everything from the dealings and compares.
    pub fn verify(&self) -> Result<()> {
        let params = DkgParams::new(self.ceremony, self.threshold, self.servers)?;
        if &Self::from_dealings(&params, &self.dealings)? != self {
            return Err(Error::Param(
                "collective key does not match its dealings".into(),
            ));
        }
        Ok(())
    }

    pub fn verification_key(&self, j: ServerId) -> Result<RistrettoPoint> {
        j.checked_sub(1)
            .and_then(|i| self.verification_keys.get(i as usize))
            .copied()
            .ok_or_else(|| Error::Param(format!("no server {j}")))
    }

    /// Identifier of this key (hash of its canonical encoding), bound into every proof.
    pub fn id(&self) -> [u8; 32] {
        digest(b"vigil-privstats/collective-key/v1", &self.to_bytes())
    }
}

impl Canonical for CollectiveKey {
    fn write(&self, w: &mut Writer) {
        w.fixed(&self.ceremony)
            .u32(self.threshold as u32)
            .u32(self.servers as u32)
            .seq_len(self.dealings.len());
        for d in &self.dealings {
            d.write(w);
        }
        w.point(&self.key).seq_len(self.verification_keys.len());
        for v in &self.verification_keys {
            w.point(v);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let ceremony = r.fixed()?;
        let threshold = r.u32()? as usize;
        let servers = r.u32()? as usize;
        let n = r.seq_len()?;
        if n > SERVERS_MAX {
            return Err(Error::Decode("too many dealings"));
        }
        let dealings = (0..n).map(|_| Dealing::read(r)).collect::<Result<_>>()?;
        let key = r.point()?;
        let m = r.seq_len()?;
        if m > SERVERS_MAX {
            return Err(Error::Decode("too many verification keys"));
        }
        let verification_keys = (0..m).map(|_| r.point()).collect::<Result<_>>()?;
        Ok(Self {
            ceremony,
            threshold,
            servers,
            dealings,
            key,
            verification_keys,
        })
    }
}

/// A server's secret share x_j of the collective key, with the public key material.
pub struct ServerKey {
    pub id: ServerId,
    pub(crate) share: Scalar,
    pub collective: CollectiveKey,
}

impl ServerKey {
    /// x_j·G, equal to the published verification key.
    pub fn verification_key(&self) -> RistrettoPoint {
        &self.share * G_TABLE
    }
}

/// Lagrange coefficient at 0 of server `j` within the set `ids`: Π_{k≠j} k / (k − j).
pub fn lagrange_at_zero(ids: &[ServerId], j: ServerId) -> Scalar {
    let xj = Scalar::from(u64::from(j));
    let (mut num, mut den) = (Scalar::ONE, Scalar::ONE);
    for &k in ids.iter().filter(|&&k| k != j) {
        let xk = Scalar::from(u64::from(k));
        num *= xk;
        den *= xk - xj;
    }
    num * den.invert()
}

/// Runs a whole honest ceremony in one process (tests, demo, bench).
pub fn run_dkg<R: RngCore + CryptoRng>(params: &DkgParams, rng: &mut R) -> Result<Vec<ServerKey>> {
    let mut dealings = Vec::new();
    let mut shares = Vec::new();
    for i in 1..=params.servers as ServerId {
        let (d, s) = deal(params, i, rng)?;
        dealings.push(d);
        shares.push(s);
    }
    let mut keys = Vec::new();
    for j in 1..=params.servers as ServerId {
        let mut rx = KeyGenReceiver::new(*params, j)?;
        for (d, s) in dealings.iter().zip(&shares) {
            if let Some(c) = rx.receive(d, &s[j as usize - 1])? {
                return Err(Error::BadShare {
                    dealer: c.dealer,
                    receiver: c.receiver,
                });
            }
        }
        keys.push(rx.finish(&dealings)?);
    }
    Ok(keys)
}
