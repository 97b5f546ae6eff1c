//! The collective t-of-n ElGamal key: a joint-Feldman distributed key generation (Pedersen 1991,
//! "A threshold cryptosystem without a trusted party"; the GJKR 1999/2007 presentation with
//! complaints), where every server deals a Feldman VSS and the shares are summed.
//!
//! 1. Dealer i draws f_i(z) = a_i0 + a_i1·z + … + a_i,t−1·z^(t−1), publishes the commitments
//!    A_ik = a_ik·G, every share s_ij = f_i(j) encrypted to server j ([`EncryptedShare`]), and a
//!    Schnorr proof of knowledge of a_i0 bound to the ceremony, to i and to the encrypted shares.
//! 2. Server j opens its share and checks s_ij·G = Σ_k j^k·A_ik (Feldman). A share that does not
//!    open or fails yields a [`Complaint`] carrying j's Diffie–Hellman values with a DLEQ proof,
//!    so anyone can open the share and judge ([`Complaint::verify`]); the dealer may also answer
//!    by revealing s_ij publicly ([`Dealing::verify_share`]), and a dealer whose share still
//!    fails is disqualified.
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
//! the dealer index stops copying another dealer's proof.
//!
//! Private channel. Each server has a long-term encryption key pair (p_j, P_j = p_j·G), published
//! in the [`DkgParams`] and in the [`CollectiveKey`]. Dealer i encrypts s_ij with a fresh
//! ephemeral e: E = e·G, k = SHA-256(domain ‖ context ‖ E ‖ e·P_j ‖ p_i·P_j) and
//! ChaCha20-Poly1305 under k (zero nonce: k is used once) with the context and E as associated
//! data; the context binds ceremony, t, n, every encryption key, dealer and receiver. The
//! ephemeral term gives confidentiality against everyone but j (CDH in Ristretto255), the static
//! term p_i·P_j authenticates the dealer to j (only i and j can compute it), the AEAD makes any
//! change in transit fail, and the encrypted shares are hashed into the dealer's proof of
//! knowledge, so nobody (j included) can substitute another ciphertext without a_i0. A complaint
//! reveals e·P_j and p_i·P_j = p_j·E, p_j·P_i with a Chaum–Pedersen proof against P_j: anyone
//! recomputes k and opens the published ciphertext; the dealer is at fault iff it does not open
//! to a scalar that passes Feldman's check. Revealing them exposes this one share and the
//! static i–j term (used only in this ceremony's context), never p_j.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE as G_TABLE;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{Identity, VartimeMultiscalarMul};
use rand_core::{CryptoRng, RngCore};

use crate::encoding::{Canonical, Reader, Writer, digest};
use crate::error::{Error, Result};
use crate::sigma::{DleqProof, DlogProof, check_public_key};

pub use crate::ids::ServerId;

/// The most servers a key can have (a limit on everything).
pub const SERVERS_MAX: usize = 64;

/// Domain separator of the key derivation for encrypted shares.
pub const SHARE_KDF_DOMAIN: &[u8] = b"vigil-privstats/dkg-share-kdf/v1";
/// Domain separator of the digest of a dealer's encrypted shares (bound into its proof).
pub const SHARES_DIGEST_DOMAIN: &[u8] = b"vigil-privstats/dkg-shares/v1";

/// Bytes of an encrypted share: a 32-byte scalar and a 16-byte Poly1305 tag.
pub const SEALED_SHARE_LEN: usize = 48;

/// A server's long-term key pair for receiving DKG shares (the public part is published).
#[derive(Clone)]
pub struct EncryptionKeyPair {
    secret: Scalar,
    pub public: RistrettoPoint,
}

impl EncryptionKeyPair {
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let secret = Scalar::random(rng);
        Self {
            secret,
            public: &secret * G_TABLE,
        }
    }
}

impl std::fmt::Debug for EncryptionKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptionKeyPair({:?}, ..)", self.public.compress())
    }
}

/// Parameters of one key-generation ceremony.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DkgParams {
    /// Unique id of the ceremony (e.g. the hash of the ledger transaction that opens it).
    pub ceremony: [u8; 32],
    /// Any `threshold` servers can decrypt; fewer learn nothing.
    pub threshold: usize,
    /// Number of servers, with ids 1..=servers.
    pub servers: usize,
    /// P_j, the encryption key of server j, at index j − 1.
    pub encryption_keys: Vec<RistrettoPoint>,
}

impl DkgParams {
    pub fn new(
        ceremony: [u8; 32],
        threshold: usize,
        servers: usize,
        encryption_keys: Vec<RistrettoPoint>,
    ) -> Result<Self> {
        if servers == 0 || servers > SERVERS_MAX || threshold == 0 || threshold > servers {
            return Err(Error::Param(format!(
                "need 1 <= t <= n <= {SERVERS_MAX}, got t={threshold}, n={servers}"
            )));
        }
        if encryption_keys.len() != servers {
            return Err(Error::Param(format!(
                "{} encryption keys for {servers} servers",
                encryption_keys.len()
            )));
        }
        for p in &encryption_keys {
            check_public_key(p, "server encryption key")?;
        }
        Ok(Self {
            ceremony,
            threshold,
            servers,
            encryption_keys,
        })
    }

    fn dealer_context(&self, dealer: ServerId) -> Vec<u8> {
        let mut w = Writer::new();
        w.fixed(&self.ceremony)
            .u32(self.threshold as u32)
            .u32(self.servers as u32);
        for p in &self.encryption_keys {
            w.point(p);
        }
        w.u32(dealer);
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

    fn encryption_key(&self, id: ServerId) -> Result<RistrettoPoint> {
        self.check_id(id)?;
        self.encryption_keys
            .get(id as usize - 1)
            .copied()
            .ok_or_else(|| Error::Param(format!("no encryption key for server {id}")))
    }

    /// Context of the share from `dealer` to `receiver` (KDF input, AEAD associated data, DLEQ).
    fn share_context(&self, dealer: ServerId, receiver: ServerId) -> Vec<u8> {
        let mut ctx = self.dealer_context(dealer);
        ctx.extend_from_slice(&receiver.to_be_bytes());
        ctx
    }
}

/// A share encrypted by its dealer to its receiver, published in the [`Dealing`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedShare {
    pub receiver: ServerId,
    /// E = e·G.
    pub ephemeral: RistrettoPoint,
    pub sealed: [u8; SEALED_SHARE_LEN],
}

impl Canonical for EncryptedShare {
    fn write(&self, w: &mut Writer) {
        w.u32(self.receiver)
            .point(&self.ephemeral)
            .fixed(&self.sealed);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            receiver: r.u32()?,
            ephemeral: r.point()?,
            sealed: r.fixed()?,
        })
    }
}

/// The AEAD key from the two Diffie–Hellman values (see the module notes).
fn share_cipher(
    context: &[u8],
    ephemeral: &RistrettoPoint,
    dh_ephemeral: &RistrettoPoint,
    dh_static: &RistrettoPoint,
) -> ChaCha20Poly1305 {
    let mut w = Writer::new();
    w.bytes(context)
        .point(ephemeral)
        .point(dh_ephemeral)
        .point(dh_static);
    let key = digest(SHARE_KDF_DOMAIN, &w.finish());
    ChaCha20Poly1305::new(&key.into())
}

fn share_aad(context: &[u8], ephemeral: &RistrettoPoint) -> Vec<u8> {
    let mut w = Writer::new();
    w.bytes(context).point(ephemeral);
    w.finish()
}

/// Opens a sealed share; `None` if it was altered, is for someone else, or is not a scalar.
fn open_share(
    context: &[u8],
    share: &EncryptedShare,
    dh_ephemeral: &RistrettoPoint,
    dh_static: &RistrettoPoint,
) -> Option<Scalar> {
    let cipher = share_cipher(context, &share.ephemeral, dh_ephemeral, dh_static);
    let plain = cipher
        .decrypt(
            &Nonce::default(),
            Payload {
                msg: &share.sealed,
                aad: &share_aad(context, &share.ephemeral),
            },
        )
        .ok()?;
    let bytes: [u8; 32] = plain.as_slice().try_into().ok()?;
    Option::from(Scalar::from_canonical_bytes(bytes))
}

/// A dealer's public message: Feldman commitments, the encrypted shares and a proof of
/// knowledge of the secret that also binds the encrypted shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dealing {
    pub dealer: ServerId,
    /// A_k = a_k·G for k = 0..t.
    pub commitments: Vec<RistrettoPoint>,
    /// The share of server j, encrypted to it, at index j − 1.
    pub shares: Vec<EncryptedShare>,
    pub proof: DlogProof,
}

/// A share in clear: the dealer keeps them to reveal one publicly if a complaint asks for it.
#[derive(Clone, Debug)]
pub struct SecretShare {
    pub dealer: ServerId,
    pub receiver: ServerId,
    pub value: Scalar,
}

/// A receiver's public complaint that a dealer's share does not open or fails the Feldman
/// check, with the Diffie–Hellman values that let anyone open it and a proof that they are right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Complaint {
    pub dealer: ServerId,
    pub receiver: ServerId,
    /// p_j·E (= e·P_j).
    pub dh_ephemeral: RistrettoPoint,
    /// p_j·P_i (= p_i·P_j).
    pub dh_static: RistrettoPoint,
    pub proof: DleqProof,
}

impl Complaint {
    /// Judges the complaint against the published dealing: `Ok` if it holds (the dealer is at
    /// fault: its share for the receiver does not open or fails Feldman's check),
    /// [`Error::BadComplaint`] if the proof is wrong or the share is in fact good.
    pub fn verify(&self, params: &DkgParams, dealing: &Dealing) -> Result<()> {
        let bad = Error::BadComplaint {
            dealer: self.dealer,
            receiver: self.receiver,
        };
        dealing.verify_public(params)?;
        if dealing.dealer != self.dealer || self.dealer == self.receiver {
            return Err(bad);
        }
        let receiver_key = params.encryption_key(self.receiver)?;
        let dealer_key = params.encryption_key(self.dealer)?;
        let share = dealing
            .shares
            .get(self.receiver as usize - 1)
            .ok_or(Error::BadDealing(self.dealer))?;
        let ctx = params.share_context(self.dealer, self.receiver);
        let pairs = [
            (share.ephemeral, self.dh_ephemeral),
            (dealer_key, self.dh_static),
        ];
        if !self.proof.verify(&ctx, &receiver_key, &pairs) {
            return Err(bad);
        }
        match open_share(&ctx, share, &self.dh_ephemeral, &self.dh_static) {
            None => Ok(()),
            Some(value) => {
                let revealed = SecretShare {
                    dealer: self.dealer,
                    receiver: self.receiver,
                    value,
                };
                match dealing.verify_share(&revealed) {
                    Ok(()) => Err(bad),
                    Err(_) => Ok(()),
                }
            }
        }
    }
}

impl Canonical for Complaint {
    fn write(&self, w: &mut Writer) {
        w.u32(self.dealer)
            .u32(self.receiver)
            .point(&self.dh_ephemeral)
            .point(&self.dh_static);
        self.proof.write(w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            dealer: r.u32()?,
            receiver: r.u32()?,
            dh_ephemeral: r.point()?,
            dh_static: r.point()?,
            proof: DleqProof::read(r)?,
        })
    }
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

fn shares_digest(shares: &[EncryptedShare]) -> [u8; 32] {
    let mut w = Writer::new();
    w.seq_len(shares.len());
    for s in shares {
        s.write(&mut w);
    }
    digest(SHARES_DIGEST_DOMAIN, &w.finish())
}

fn proof_context(params: &DkgParams, dealer: ServerId, shares: &[EncryptedShare]) -> Vec<u8> {
    let mut ctx = params.dealer_context(dealer);
    ctx.extend_from_slice(&shares_digest(shares));
    ctx
}

/// Dealer side of step 1: `me` is the dealer's own encryption key pair.
pub fn deal<R: RngCore + CryptoRng>(
    params: &DkgParams,
    dealer: ServerId,
    me: &EncryptionKeyPair,
    rng: &mut R,
) -> Result<(Dealing, Vec<SecretShare>)> {
    deal_with(params, dealer, me, rng, |_, v| v)
}

/// [`deal`] with a hook on each share before it is encrypted (tests of a cheating dealer).
fn deal_with<R: RngCore + CryptoRng>(
    params: &DkgParams,
    dealer: ServerId,
    me: &EncryptionKeyPair,
    rng: &mut R,
    corrupt: impl Fn(ServerId, Scalar) -> Scalar,
) -> Result<(Dealing, Vec<SecretShare>)> {
    if params.encryption_key(dealer)? != me.public {
        return Err(Error::Param(format!(
            "dealer {dealer}'s encryption key is not the published one"
        )));
    }
    let coeffs: Vec<Scalar> = (0..params.threshold)
        .map(|_| Scalar::random(&mut *rng))
        .collect();
    let commitments = coeffs.iter().map(|a| a * G_TABLE).collect();
    let mut clear = Vec::with_capacity(params.servers);
    let mut shares = Vec::with_capacity(params.servers);
    for j in 1..=params.servers as ServerId {
        let x = Scalar::from(u64::from(j));
        // Horner evaluation of f(j).
        let value = coeffs.iter().rev().fold(Scalar::ZERO, |acc, a| acc * x + a);
        let sent = corrupt(j, value);
        let receiver_key = params.encryption_key(j)?;
        let e = Scalar::random(&mut *rng);
        let ephemeral = &e * G_TABLE;
        let ctx = params.share_context(dealer, j);
        let cipher = share_cipher(
            &ctx,
            &ephemeral,
            &(e * receiver_key),
            &(me.secret * receiver_key),
        );
        let sealed = cipher
            .encrypt(
                &Nonce::default(),
                Payload {
                    msg: sent.as_bytes(),
                    aad: &share_aad(&ctx, &ephemeral),
                },
            )
            .map_err(|_| Error::Param("share encryption failed".into()))?;
        let sealed: [u8; SEALED_SHARE_LEN] = sealed
            .as_slice()
            .try_into()
            .map_err(|_| Error::Param("sealed share length".into()))?;
        shares.push(EncryptedShare {
            receiver: j,
            ephemeral,
            sealed,
        });
        clear.push(SecretShare {
            dealer,
            receiver: j,
            value,
        });
    }
    let proof = DlogProof::prove(&proof_context(params, dealer, &shares), &coeffs[0], rng);
    Ok((
        Dealing {
            dealer,
            commitments,
            shares,
            proof,
        },
        clear,
    ))
}

impl Dealing {
    /// Checks the public part: right degree, one encrypted share per server in order, valid
    /// proof of knowledge over all of it.
    pub fn verify_public(&self, params: &DkgParams) -> Result<()> {
        params.check_id(self.dealer)?;
        if self.commitments.len() != params.threshold
            || self.shares.len() != params.servers
            || self
                .shares
                .iter()
                .zip(1..)
                .any(|(s, j): (&EncryptedShare, ServerId)| s.receiver != j)
            || !self.proof.verify(
                &proof_context(params, self.dealer, &self.shares),
                &self.commitments[0],
            )
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
        w.seq_len(self.shares.len());
        for s in &self.shares {
            s.write(w);
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
        let m = r.seq_len()?;
        if m > SERVERS_MAX {
            return Err(Error::Decode("too many encrypted shares"));
        }
        let shares = (0..m)
            .map(|_| EncryptedShare::read(r))
            .collect::<Result<_>>()?;
        Ok(Self {
            dealer,
            commitments,
            shares,
            proof: DlogProof::read(r)?,
        })
    }
}

/// One receiver's view of the ceremony (step 2): opens its shares, files complaints.
pub struct KeyGenReceiver {
    params: DkgParams,
    me: ServerId,
    keys: EncryptionKeyPair,
    accepted: Vec<(Dealing, Scalar)>,
    complaints: Vec<Complaint>,
}

impl KeyGenReceiver {
    /// `keys` is this server's encryption key pair, whose public part the params publish.
    pub fn new(params: DkgParams, me: ServerId, keys: EncryptionKeyPair) -> Result<Self> {
        if params.encryption_key(me)? != keys.public {
            return Err(Error::Param(format!(
                "server {me}'s encryption key is not the published one"
            )));
        }
        Ok(Self {
            params,
            me,
            keys,
            accepted: Vec::new(),
            complaints: Vec::new(),
        })
    }

    /// Takes a dealer's published dealing and opens the share it encrypted to this server.
    /// A dealing with a bad public part (including an encrypted share altered in transit: the
    /// dealer's proof binds them) is an error; a share that does not open or fails Feldman's
    /// check becomes a complaint to publish, which anyone can verify ([`Complaint::verify`]).
    pub fn receive<R: RngCore + CryptoRng>(
        &mut self,
        dealing: &Dealing,
        rng: &mut R,
    ) -> Result<Option<Complaint>> {
        dealing.verify_public(&self.params)?;
        if self
            .accepted
            .iter()
            .any(|(d, _)| d.dealer == dealing.dealer)
            || self.complaints.iter().any(|c| c.dealer == dealing.dealer)
        {
            return Err(Error::Param(format!(
                "second dealing from dealer {}",
                dealing.dealer
            )));
        }
        let share = dealing
            .shares
            .get(self.me as usize - 1)
            .ok_or(Error::BadDealing(dealing.dealer))?;
        let dealer_key = self.params.encryption_key(dealing.dealer)?;
        let ctx = self.params.share_context(dealing.dealer, self.me);
        let dh_ephemeral = self.keys.secret * share.ephemeral;
        let dh_static = self.keys.secret * dealer_key;
        let opened = open_share(&ctx, share, &dh_ephemeral, &dh_static).and_then(|value| {
            let s = SecretShare {
                dealer: dealing.dealer,
                receiver: self.me,
                value,
            };
            dealing.verify_share(&s).ok().map(|()| value)
        });
        match opened {
            Some(value) => {
                self.accepted.push((dealing.clone(), value));
                Ok(None)
            }
            None => {
                let pairs = [(share.ephemeral, dh_ephemeral), (dealer_key, dh_static)];
                let c = Complaint {
                    dealer: dealing.dealer,
                    receiver: self.me,
                    dh_ephemeral,
                    dh_static,
                    proof: DleqProof::prove(&ctx, &self.keys.secret, &pairs, rng),
                };
                self.complaints.push(c.clone());
                Ok(Some(c))
            }
        }
    }

    /// Accepts a share that the dealer revealed publicly to answer our complaint, if it is valid.
    pub fn resolve(&mut self, dealing: &Dealing, revealed: &SecretShare) -> Result<()> {
        if revealed.receiver != self.me {
            return Err(Error::Param(format!(
                "share for server {} revealed to {}",
                revealed.receiver, self.me
            )));
        }
        dealing.verify_public(&self.params)?;
        dealing.verify_share(revealed)?;
        self.complaints.retain(|c| c.dealer != dealing.dealer);
        self.accepted.retain(|(d, _)| d.dealer != dealing.dealer);
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
        // Holds by construction (every accepted share passed Feldman's check).
        if &share * G_TABLE != vk {
            return Err(Error::Param(
                "summed share does not match the published verification key".into(),
            ));
        }
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
    /// P_j, the servers' encryption keys for the ceremony's private shares.
    pub encryption_keys: Vec<RistrettoPoint>,
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
            encryption_keys: params.encryption_keys.clone(),
            dealings,
            key,
            verification_keys,
        })
    }

    /// Re-derives everything from the dealings and compares.
    pub fn verify(&self) -> Result<()> {
        let params = DkgParams::new(
            self.ceremony,
            self.threshold,
            self.servers,
            self.encryption_keys.clone(),
        )?;
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
            .seq_len(self.encryption_keys.len());
        for p in &self.encryption_keys {
            w.point(p);
        }
        w.seq_len(self.dealings.len());
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
        let e = r.seq_len()?;
        if e > SERVERS_MAX {
            return Err(Error::Decode("too many encryption keys"));
        }
        let encryption_keys = (0..e).map(|_| r.point()).collect::<Result<_>>()?;
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
            encryption_keys,
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
    /// A server's key from its stored share (the durable store of a service that plays every
    /// server). Not checked here: `Network::from_server_keys` checks it against the key.
    pub fn from_share(id: ServerId, share: Scalar, collective: CollectiveKey) -> Self {
        Self {
            id,
            share,
            collective,
        }
    }

    /// The secret share, for that durable store only.
    pub fn share(&self) -> &Scalar {
        &self.share
    }

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

/// Runs a whole honest ceremony in one process (tests, demo, bench): `keys[j − 1]` is server
/// j's encryption key pair, whose public parts `params` publish. Every share travels encrypted.
pub fn run_dkg<R: RngCore + CryptoRng>(
    params: &DkgParams,
    keys: &[EncryptionKeyPair],
    rng: &mut R,
) -> Result<Vec<ServerKey>> {
    if keys.len() != params.servers {
        return Err(Error::Param(format!(
            "{} encryption key pairs for {} servers",
            keys.len(),
            params.servers
        )));
    }
    let dealings = (1..=params.servers as ServerId)
        .zip(keys)
        .map(|(i, k)| deal(params, i, k, rng).map(|(d, _)| d))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for (j, k) in (1..=params.servers as ServerId).zip(keys) {
        let mut rx = KeyGenReceiver::new(params.clone(), j, k.clone())?;
        for d in &dealings {
            if let Some(c) = rx.receive(d, rng)? {
                return Err(Error::BadShare {
                    dealer: c.dealer,
                    receiver: c.receiver,
                });
            }
        }
        out.push(rx.finish(&dealings)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::Canonical;

    fn setup(t: usize, n: usize) -> (DkgParams, Vec<EncryptionKeyPair>, rand::rngs::ThreadRng) {
        let mut rng = rand::thread_rng();
        let enc: Vec<EncryptionKeyPair> = (0..n)
            .map(|_| EncryptionKeyPair::generate(&mut rng))
            .collect();
        let params =
            DkgParams::new([7; 32], t, n, enc.iter().map(|k| k.public).collect()).expect("params");
        (params, enc, rng)
    }

    #[test]
    fn honest_run_gives_a_t_of_n_key() {
        let (params, enc, mut rng) = setup(2, 3);
        let keys = run_dkg(&params, &enc, &mut rng).expect("dkg");
        let ck = &keys[0].collective;
        ck.verify().expect("verifies");
        assert!(keys.iter().all(|k| &k.collective == ck));
        let sum = ck
            .dealings
            .iter()
            .fold(RistrettoPoint::identity(), |acc, d| acc + d.commitments[0]);
        assert_eq!(ck.key, sum);
        for k in &keys {
            assert_eq!(k.verification_key(), ck.verification_key(k.id).expect("vk"));
        }
        // Any t shares reconstruct x·G = X; Lagrange at 0.
        for ids in [[1u32, 2], [1, 3], [2, 3]] {
            let x: Scalar = ids
                .iter()
                .map(|&j| lagrange_at_zero(&ids, j) * keys[j as usize - 1].share)
                .sum();
            assert_eq!(&x * G_TABLE, ck.key);
        }
    }

    #[test]
    fn a_share_for_another_server_cannot_be_opened() {
        let (params, enc, mut rng) = setup(2, 3);
        let (d, clear) = deal(&params, 1, &enc[0], &mut rng).expect("deal");
        let for2 = &d.shares[1];
        let ctx = params.share_context(1, 2);
        // Server 2 opens it.
        let opened = open_share(
            &ctx,
            for2,
            &(enc[1].secret * for2.ephemeral),
            &(enc[1].secret * enc[0].public),
        );
        assert_eq!(opened, Some(clear[1].value));
        // Server 3, with its own key, cannot (whatever context it tries).
        for c in [params.share_context(1, 2), params.share_context(1, 3)] {
            assert_eq!(
                open_share(
                    &c,
                    for2,
                    &(enc[2].secret * for2.ephemeral),
                    &(enc[2].secret * enc[0].public),
                ),
                None
            );
        }
        // Nor can anyone who knows only the static term (not the ephemeral one).
        assert_eq!(
            open_share(
                &ctx,
                for2,
                &(enc[2].secret * for2.ephemeral),
                &(enc[1].secret * enc[0].public),
            ),
            None
        );
        // Another dealer's key does not authenticate the share.
        assert_eq!(
            open_share(
                &ctx,
                for2,
                &(enc[1].secret * for2.ephemeral),
                &(enc[1].secret * enc[2].public),
            ),
            None
        );
    }

    #[test]
    fn a_bad_share_gives_a_complaint_anyone_can_verify() {
        let (params, enc, mut rng) = setup(2, 3);
        let (bad, clear) = deal_with(&params, 1, &enc[0], &mut rng, |j, v| {
            if j == 2 { v + Scalar::ONE } else { v }
        })
        .expect("deal");
        let (good, _) = deal(&params, 3, &enc[2], &mut rng).expect("deal");
        let mut rx = KeyGenReceiver::new(params.clone(), 2, enc[1].clone()).expect("rx");
        let c = rx
            .receive(&bad, &mut rng)
            .expect("public ok")
            .expect("complaint");
        assert_eq!((c.dealer, c.receiver), (1, 2));
        c.verify(&params, &bad).expect("complaint holds");
        let decoded = Complaint::from_bytes(&c.to_bytes()).expect("decode");
        assert_eq!(decoded, c);
        // The other receivers' shares from the same dealer are fine.
        let mut rx3 = KeyGenReceiver::new(params.clone(), 3, enc[2].clone()).expect("rx");
        assert!(rx3.receive(&bad, &mut rng).expect("ok").is_none());
        // A complaint with a wrong DH value, or against another dealing, or against a good
        // share (with honest DH values and a valid proof) does not hold.
        let mut forged = c.clone();
        forged.dh_ephemeral += G_TABLE.basepoint();
        assert!(matches!(
            forged.verify(&params, &bad),
            Err(Error::BadComplaint { .. })
        ));
        assert!(c.verify(&params, &good).is_err());
        let share = &good.shares[1];
        let ctx = params.share_context(3, 2);
        let (dh_e, dh_s) = (
            enc[1].secret * share.ephemeral,
            enc[1].secret * enc[2].public,
        );
        let false_claim = Complaint {
            dealer: 3,
            receiver: 2,
            dh_ephemeral: dh_e,
            dh_static: dh_s,
            proof: DleqProof::prove(
                &ctx,
                &enc[1].secret,
                &[(share.ephemeral, dh_e), (enc[2].public, dh_s)],
                &mut rng,
            ),
        };
        assert!(matches!(
            false_claim.verify(&params, &good),
            Err(Error::BadComplaint {
                dealer: 3,
                receiver: 2
            })
        ));
        // A second copy of the bad dealing is refused; a valid public reveal resolves.
        assert!(rx.receive(&bad, &mut rng).is_err());
        rx.resolve(&bad, &clear[1]).expect("reveal");
        assert!(rx.receive(&good, &mut rng).expect("ok").is_none());
        let (d2, _) = deal(&params, 2, &enc[1], &mut rng).expect("deal");
        assert!(rx.receive(&d2, &mut rng).expect("ok").is_none());
        let key = rx.finish(&[bad, d2, good]).expect("finish");
        key.collective.verify().expect("verifies");
    }

    #[test]
    fn malformed_inputs_are_errors_not_panics() {
        let (params, enc, mut rng) = setup(2, 3);
        assert!(DkgParams::new([0; 32], 2, 3, vec![]).is_err());
        assert!(DkgParams::new([0; 32], 2, 2, vec![RistrettoPoint::identity(); 2]).is_err());
        assert!(deal(&params, 1, &enc[1], &mut rng).is_err());
        assert!(deal(&params, 4, &enc[0], &mut rng).is_err());
        let (d, _) = deal(&params, 1, &enc[0], &mut rng).expect("deal");
        let mut short = d.clone();
        short.shares.pop();
        assert!(short.verify_public(&params).is_err());
        let mut rx = KeyGenReceiver::new(params.clone(), 2, enc[1].clone()).expect("rx");
        assert!(rx.receive(&short, &mut rng).is_err());
        let bytes = d.to_bytes();
        for cut in 0..bytes.len() {
            assert!(Dealing::from_bytes(&bytes[..cut]).is_err());
        }
        assert_eq!(Dealing::from_bytes(&bytes).expect("decode"), d);
    }
}
