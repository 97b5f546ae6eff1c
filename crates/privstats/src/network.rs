//! An in-process deployment: n servers holding a t-of-n key, DPs routed to online servers,
//! verifying nodes, and a querier. Each step is a method so tests can tamper between steps.

use rand_core::{CryptoRng, RngCore};

use crate::dp::{DpResponse, PlainAnswer};
use crate::error::{Error, Result};
use crate::keys::{CollectiveKey, DkgParams, EncryptionKeyPair, ServerId, run_dkg};
use crate::query::{DpId, Query};
use crate::server::{KeySwitchShare, Server, ServerAggregate, total};
use crate::verify::{Evidence, Verdict, verify};

/// Servers, their collective key and the verifying nodes.
pub struct Network {
    pub servers: Vec<Server>,
    pub key: CollectiveKey,
    /// Servers that are down (they neither aggregate nor key-switch).
    pub offline: Vec<ServerId>,
    /// Number of verifying nodes.
    pub verifiers: u32,
    /// Threads each verifying node uses for range proofs.
    pub verify_threads: usize,
}

impl Network {
    /// Runs the DKG among `servers` servers with threshold `threshold`.
    pub fn new<R: RngCore + CryptoRng>(
        threshold: usize,
        servers: usize,
        verifiers: u32,
        rng: &mut R,
    ) -> Result<Self> {
        let mut ceremony = [0u8; 32];
        rng.fill_bytes(&mut ceremony);
        // Each server's long-term key pair for receiving its DKG shares encrypted.
        let encryption: Vec<EncryptionKeyPair> = (0..servers.min(crate::keys::SERVERS_MAX))
            .map(|_| EncryptionKeyPair::generate(rng))
            .collect();
        let params = DkgParams::new(
            ceremony,
            threshold,
            servers,
            encryption.iter().map(|k| k.public).collect(),
        )?;
        let keys = run_dkg(&params, &encryption, rng)?;
        let key = keys
            .first()
            .map(|k| k.collective.clone())
            .ok_or_else(|| Error::Param("no servers".into()))?;
        Ok(Self {
            servers: keys.into_iter().map(Server::new).collect(),
            key,
            offline: Vec::new(),
            verifiers,
            verify_threads: 1,
        })
    }

    /// A deployment from its servers' stored keys (all under one collective key, which is
    /// re-verified against its dealings and each server's share against its verification key).
    pub fn from_server_keys(keys: Vec<crate::keys::ServerKey>, verifiers: u32) -> Result<Self> {
        let key = keys
            .first()
            .map(|k| k.collective.clone())
            .ok_or_else(|| Error::Param("no servers".into()))?;
        key.verify()?;
        for k in &keys {
            if k.collective != key || key.verification_key(k.id)? != k.verification_key() {
                return Err(Error::Param(format!(
                    "stored share of server {} does not match the collective key",
                    k.id
                )));
            }
        }
        Ok(Self {
            servers: keys.into_iter().map(Server::new).collect(),
            key,
            offline: Vec::new(),
            verifiers,
            verify_threads: 1,
        })
    }

    fn online(&self) -> impl Iterator<Item = &Server> {
        self.servers
            .iter()
            .filter(|s| !self.offline.contains(&s.id()))
    }

    /// The server a DP sends to: its home server (dp mod n) or the next online one.
    pub fn route(&self, dp: DpId) -> Result<ServerId> {
        let n = self.servers.len() as u32;
        (0..n)
            .map(|k| (dp + k) % n + 1)
            .find(|s| !self.offline.contains(s))
            .ok_or_else(|| Error::Param("every server is offline".into()))
    }

    /// Each DP encrypts its answer and proves it.
    pub fn respond<R: RngCore + CryptoRng>(
        &self,
        query: &Query,
        answers: &[(DpId, PlainAnswer)],
        rng: &mut R,
    ) -> Result<Vec<DpResponse>> {
        answers
            .iter()
            .map(|(dp, a)| DpResponse::create(query, &self.key, *dp, self.route(*dp)?, a, rng))
            .collect()
    }

    /// Each online server sums the responses routed to it.
    pub fn aggregate(
        &self,
        query: &Query,
        responses: &[DpResponse],
    ) -> Result<Vec<ServerAggregate>> {
        self.online()
            .map(|s| {
                let mine: Vec<&DpResponse> =
                    responses.iter().filter(|r| r.server == s.id()).collect();
                s.aggregate(query, &mine)
            })
            .collect()
    }

    /// Every online server key-switches the cross-server total.
    pub fn key_switch<R: RngCore + CryptoRng>(
        &self,
        query: &Query,
        aggregates: &[ServerAggregate],
        rng: &mut R,
    ) -> Vec<KeySwitchShare> {
        let tot = total(query.digits(), aggregates);
        self.online()
            .map(|s| s.key_switch(query, &tot, rng))
            .collect()
    }

    /// Every verifying node verifies and signs (signing is the ledger's job) a verdict.
    pub fn verify(
        &self,
        query: &Query,
        responses: &[DpResponse],
        aggregates: &[ServerAggregate],
        shares: &[KeySwitchShare],
    ) -> Vec<Verdict> {
        let ev = Evidence {
            query,
            key: &self.key,
            responses,
            aggregates,
            shares,
        };
        (1..=self.verifiers)
            .map(|v| verify(&ev, v, self.verify_threads))
            .collect()
    }
}
