//! Verifying nodes: check every DP's range and well-formedness proofs, recompute every server's
//! aggregation, verify every key-switch share, and produce a [`Verdict`] — a bitmap over named
//! checks — for the ledger.
//!
//! Batching: the well-formedness proofs of all DPs go into one multiscalar multiplication, and so
//! do all key-switch proofs (random linear combination; on failure each is re-checked to name
//! the culprit). Each DP's digits share one *aggregated* Bulletproof, which is the batching
//! Bulletproofs 5 exposes; proofs of different DPs are verified separately (bulletproofs 5 has
//! no public API to merge several proofs' verification equations, and we do not re-implement its
//! verifier). Instead every aggregated proof of every DP, the well-formedness batch, the
//! key-switch batch and the responses' audit digests form one pool of independent jobs spread
//! over threads, largest first ([`verify`]'s `threads`).

use std::collections::{BTreeMap, BTreeSet};

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};

use crate::dp::{DpResponse, RangeJob};
use crate::elgamal::{CompressedCts, compress_cts};
use crate::encoding::{Canonical, Reader, Writer, digest};
use crate::error::{Error, Result};
use crate::keys::{CollectiveKey, ServerId};
use crate::query::{DIGIT_BITS, DPS_MAX, DpId, Query};
use crate::server::{KeySwitchShare, ServerAggregate, keyswitch_context, sum_responses, total};
use crate::sigma::{WellFormedItem, WellFormedProof};

/// One named check of a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// The DP's response is for this query, from a DP the query names, once, with the right
    /// number of ciphertexts.
    Response(DpId),
    /// The DP's aggregated range proof.
    Range(DpId),
    /// The DP's well-formedness proof.
    WellFormed(DpId),
    /// The server's aggregate equals the recomputed sum of exactly the responses sent to it.
    Aggregate(ServerId),
    /// The server's key-switch share and proof (vacuously true for a server that sent none:
    /// [`Check::Threshold`] counts the valid ones).
    KeySwitch(ServerId),
    /// At least t valid key-switch shares.
    Threshold,
    /// Aggregates and shares come only from the key's servers, at most one of each per server.
    Servers,
}

impl Check {
    fn write(&self, w: &mut Writer) {
        let (tag, id) = match *self {
            Check::Response(d) => (1, d),
            Check::Range(d) => (2, d),
            Check::WellFormed(d) => (3, d),
            Check::Aggregate(s) => (4, s),
            Check::KeySwitch(s) => (5, s),
            Check::Threshold => (6, 0),
            Check::Servers => (7, 0),
        };
        w.u8(tag).u32(id);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(match (r.u8()?, r.u32()?) {
            (1, d) => Check::Response(d),
            (2, d) => Check::Range(d),
            (3, d) => Check::WellFormed(d),
            (4, s) => Check::Aggregate(s),
            (5, s) => Check::KeySwitch(s),
            (6, 0) => Check::Threshold,
            (7, 0) => Check::Servers,
            _ => return Err(Error::Decode("check tag")),
        })
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::Response(d) => write!(f, "response of DP {d}"),
            Check::Range(d) => write!(f, "range proof of DP {d}"),
            Check::WellFormed(d) => write!(f, "well-formedness proof of DP {d}"),
            Check::Aggregate(s) => write!(f, "aggregate of server {s}"),
            Check::KeySwitch(s) => write!(f, "key-switch proof of server {s}"),
            Check::Threshold => write!(f, "threshold of valid key-switch shares"),
            Check::Servers => write!(f, "evidence names only the key's servers, once each"),
        }
    }
}

/// A verifying node's verdict on one query. Its bitmap, all-good flag and result digest go on
/// the ledger as a `ProofVerdict` transaction, which the verifying node's ledger identity signs
/// like any transaction: the verdict itself carries no signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub query_id: [u8; 32],
    /// Index of the verifying node.
    pub verifier: u32,
    /// Digest of every DP response checked, in DP order (audit).
    pub responses_digest: [u8; 32],
    /// Digest of what the querier uses: the server aggregates and the key-switch shares.
    pub result_digest: [u8; 32],
    /// The checks, in a deterministic order.
    pub checks: Vec<Check>,
    /// Bit i set ⇔ check i passed.
    pub bitmap: Vec<u8>,
}

impl Verdict {
    pub fn passed(&self, i: usize) -> bool {
        self.bitmap
            .get(i / 8)
            .is_some_and(|b| b >> (i % 8) & 1 == 1)
    }

    /// The checks that failed.
    pub fn failures(&self) -> Vec<Check> {
        self.checks
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.passed(*i))
            .map(|(_, c)| *c)
            .collect()
    }

    pub fn all_good(&self) -> bool {
        !self.checks.is_empty() && self.failures().is_empty()
    }

    /// The checks of every verdict on `query` under a key of `servers` servers, in bitmap
    /// order: for each DP the query names, its response, range and well-formedness proofs; for
    /// each server 1..=n, its aggregate and key switch; then [`Check::Servers`] and
    /// [`Check::Threshold`]. A function of the query alone, so a bitmap recorded on the ledger
    /// (without the list) can be read back by anyone who has the query.
    pub fn expected_checks(query: &Query, servers: usize) -> Vec<Check> {
        let mut checks = Vec::with_capacity(3 * query.dps.len() + 2 * servers + 2);
        for &d in &query.dps {
            checks.extend([Check::Response(d), Check::Range(d), Check::WellFormed(d)]);
        }
        for s in 1..=servers as ServerId {
            checks.extend([Check::Aggregate(s), Check::KeySwitch(s)]);
        }
        checks.extend([Check::Servers, Check::Threshold]);
        checks
    }

    /// The failed checks named by a bitmap read from the ledger, or an error if the bitmap
    /// does not fit the query (wrong length, or bits set beyond the last check).
    pub fn failures_in_bitmap(query: &Query, servers: usize, bitmap: &[u8]) -> Result<Vec<Check>> {
        let checks = Self::expected_checks(query, servers);
        if bitmap.len() != checks.len().div_ceil(8)
            || (checks.len()..bitmap.len() * 8).any(|i| bitmap[i / 8] >> (i % 8) & 1 == 1)
        {
            return Err(Error::Decode("verdict bitmap does not fit the query"));
        }
        Ok(checks
            .into_iter()
            .enumerate()
            .filter(|(i, _)| bitmap[i / 8] >> (i % 8) & 1 == 0)
            .map(|(_, c)| c)
            .collect())
    }
}

impl Canonical for Verdict {
    fn write(&self, w: &mut Writer) {
        w.fixed(&self.query_id)
            .u32(self.verifier)
            .fixed(&self.responses_digest)
            .fixed(&self.result_digest);
        w.seq_len(self.checks.len());
        for c in &self.checks {
            c.write(w);
        }
        w.bytes(&self.bitmap);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let query_id = r.fixed()?;
        let verifier = r.u32()?;
        let responses_digest = r.fixed()?;
        let result_digest = r.fixed()?;
        let n = r.seq_len()?;
        if n > 4 * DPS_MAX + 256 {
            return Err(Error::Decode("too many checks"));
        }
        let checks = (0..n).map(|_| Check::read(r)).collect::<Result<Vec<_>>>()?;
        let bitmap = r.bytes()?.to_vec();
        if bitmap.len() != n.div_ceil(8) {
            return Err(Error::Decode("bitmap length"));
        }
        Ok(Self {
            query_id,
            verifier,
            responses_digest,
            result_digest,
            checks,
            bitmap,
        })
    }
}

/// Digest of the server aggregates and key-switch shares, sorted by server: what a verdict
/// vouches for and what the querier decrypts.
pub fn result_digest(
    query_id: &[u8; 32],
    aggregates: &[ServerAggregate],
    shares: &[KeySwitchShare],
) -> [u8; 32] {
    let mut w = Writer::new();
    w.fixed(query_id);
    let mut a: Vec<_> = aggregates.iter().collect();
    a.sort_by_key(|a| a.server);
    w.seq_len(a.len());
    for x in a {
        x.write(&mut w);
    }
    let mut s: Vec<_> = shares.iter().collect();
    s.sort_by_key(|s| s.server);
    w.seq_len(s.len());
    for x in s {
        x.write(&mut w);
    }
    digest(b"vigil-privstats/result/v1", &w.finish())
}

/// What a verifying node receives for one query.
pub struct Evidence<'a> {
    pub query: &'a Query,
    pub key: &'a CollectiveKey,
    /// Responses as the DPs sent them to the verifying nodes.
    pub responses: &'a [DpResponse],
    pub aggregates: &'a [ServerAggregate],
    pub shares: &'a [KeySwitchShare],
}

/// Worker threads for range-proof verification (a limit on everything).
pub const VERIFY_THREADS_MAX: usize = 8;

/// Verifies everything and returns the verdict, its checks in [`Verdict::expected_checks`]
/// order. `threads` bounds the parallelism of range-proof verification.
///
/// Absence is judged where it matters: a DP the query names that sent nothing fails its
/// response check (the result would not be over the DPs asked); a server that sent nothing
/// passes its aggregate check if no DP was routed to it and its key-switch check (any t valid
/// shares suffice, and [`Check::Threshold`] counts them), so one server down does not reject.
pub fn verify(ev: &Evidence<'_>, verifier: u32, threads: usize) -> Verdict {
    let query = ev.query;
    let query_id = query.id();
    let key_id = ev.key.id();
    let digits = query.digits();
    let servers = ev.key.servers;
    let known = |s: ServerId| s >= 1 && s as usize <= servers;
    let mut results: BTreeMap<Check, bool> = BTreeMap::new();
    let key_ok = ev.key.verify().is_ok() && key_id == query.key_id;

    // 1. Responses of the DPs asked: admissibility, then range proofs (threads) and
    //    well-formedness (one batch). Responses from DPs not asked are ignored (and a server
    //    that adds one fails its aggregate check).
    let asked: BTreeSet<DpId> = query.dps.iter().copied().collect();
    let mut by_dp: BTreeMap<DpId, &DpResponse> = BTreeMap::new();
    let mut duplicate: BTreeSet<DpId> = BTreeSet::new();
    for r in ev.responses.iter().filter(|r| asked.contains(&r.dp)) {
        if by_dp.insert(r.dp, r).is_some() {
            duplicate.insert(r.dp);
        }
    }
    let admissible: Vec<&DpResponse> = by_dp
        .values()
        .copied()
        .filter(|r| {
            key_ok
                && r.query_id == query_id
                && !duplicate.contains(&r.dp)
                && r.ciphertexts.len() == digits
                && known(r.server)
        })
        .collect();
    for r in &admissible {
        results.insert(Check::Response(r.dp), true);
    }
    let bits = query.digit_bits();
    // Every received response's ciphertexts compressed once, on the verifier's threads: the
    // well-formedness transcripts, the range proofs' commitments and the digests read them.
    let by_dp_list: Vec<&DpResponse> = by_dp.values().copied().collect();
    let compressed = compress_all(&by_dp_list, threads);
    let cc_of: BTreeMap<DpId, &[(CompressedRistretto, CompressedRistretto)]> = by_dp_list
        .iter()
        .zip(&compressed)
        .map(|(r, cc)| (r.dp, cc.as_slice()))
        .collect();
    let admissible_cc: Vec<&[(CompressedRistretto, CompressedRistretto)]> = admissible
        .iter()
        .map(|r| cc_of.get(&r.dp).copied().unwrap_or(&[]))
        .collect();
    let contexts: Vec<Vec<u8>> = admissible.iter().map(|r| r.context(&key_id)).collect();
    let items: Vec<WellFormedItem<'_>> = admissible
        .iter()
        .zip(&contexts)
        .zip(&admissible_cc)
        .map(|((r, c), cc)| (&r.wellformed, c.as_slice(), r.ciphertexts.as_slice(), *cc))
        .collect();
    // The key-switch statements (against the total of the aggregates, what the querier
    // combines) are ready now: their batch joins the same pool as the DPs' proofs.
    let tot = total(digits, ev.aggregates);
    let k: Vec<RistrettoPoint> = tot.iter().map(|ct| ct.k).collect();
    let contexts: Vec<Vec<u8>> = ev
        .shares
        .iter()
        .map(|s| keyswitch_context(&query_id, &key_id, s.server))
        .collect();
    let vks: Vec<Option<RistrettoPoint>> = ev
        .shares
        .iter()
        .map(|s| ev.key.verification_key(s.server).ok())
        .collect();
    let mut ks_batch = Vec::new();
    let mut batch_servers = Vec::new();
    let mut bad_shares = BTreeSet::new();
    let mut counted = BTreeSet::new();
    for ((s, ctx), vk) in ev.shares.iter().zip(&contexts).zip(&vks) {
        let admissible =
            s.query_id == query_id && s.share.len() == digits && counted.insert(s.server);
        match vk {
            Some(vk) if admissible => {
                ks_batch.push((&s.proof, s.statement(ctx, &query.querier, vk, &k)));
                batch_servers.push(s.server);
            }
            _ => {
                bad_shares.insert(s.server);
            }
        }
    }
    let pooled = verify_proofs(
        &Responses {
            admissible: &admissible,
            admissible_cc: &admissible_cc,
            all: &by_dp_list,
            all_cc: &compressed,
        },
        &items,
        &ks_batch,
        ev.key,
        &key_id,
        &bits,
        threads,
    );
    let (range_ok, wf_ok) = (pooled.range, pooled.wellformed);
    for ((r, range), wf) in admissible.iter().zip(range_ok).zip(wf_ok) {
        results.insert(Check::Range(r.dp), range);
        results.insert(Check::WellFormed(r.dp), wf);
    }

    // 2. Only the key's servers, once each.
    let mut agg_seen = BTreeSet::new();
    let mut share_seen = BTreeSet::new();
    let servers_ok = ev
        .aggregates
        .iter()
        .all(|a| known(a.server) && agg_seen.insert(a.server))
        && ev
            .shares
            .iter()
            .all(|s| known(s.server) && share_seen.insert(s.server));
    results.insert(Check::Servers, servers_ok);

    // 3. Aggregation: each server's claim equals the sum of exactly the responses sent to it.
    for s in 1..=servers as ServerId {
        let claims: Vec<&ServerAggregate> =
            ev.aggregates.iter().filter(|a| a.server == s).collect();
        let sent: Vec<&DpResponse> = by_dp.values().copied().filter(|r| r.server == s).collect();
        let ok = match claims.as_slice() {
            [] => sent.is_empty(),
            [a] => {
                let dps: Vec<DpId> = sent.iter().map(|r| r.dp).collect();
                a.query_id == query_id
                    && a.dps == dps
                    && a.sum.len() == digits
                    && a.sum == sum_responses(digits, sent.iter().copied())
            }
            _ => false,
        };
        results.insert(Check::Aggregate(s), ok);
    }

    // 4. Key switching (verified in the pool above).
    let ks_ok = pooled.keyswitch;
    let mut valid = BTreeSet::new();
    for (s, ok) in batch_servers.into_iter().zip(ks_ok) {
        if ok {
            valid.insert(s);
        } else {
            bad_shares.insert(s);
        }
    }
    for s in 1..=servers as ServerId {
        results.insert(Check::KeySwitch(s), !bad_shares.contains(&s));
    }
    results.insert(
        Check::Threshold,
        valid.difference(&bad_shares).count() >= ev.key.threshold,
    );

    let mut w = Writer::new();
    for d in &pooled.digests {
        w.fixed(d);
    }
    let responses_digest = digest(b"vigil-privstats/responses/v1", &w.finish());
    let checks = Verdict::expected_checks(query, servers);
    let mut bitmap = vec![0u8; checks.len().div_ceil(8)];
    for (i, c) in checks.iter().enumerate() {
        if results.get(c).copied().unwrap_or(false) {
            bitmap[i / 8] |= 1 << (i % 8);
        }
    }
    Verdict {
        query_id,
        verifier,
        responses_digest,
        result_digest: result_digest(&query_id, ev.aggregates, ev.shares),
        checks,
        bitmap,
    }
}

/// The responses a verifier checks, with their ciphertexts compressed.
struct Responses<'a> {
    /// The responses whose proofs are checked.
    admissible: &'a [&'a DpResponse],
    admissible_cc: &'a [&'a [(CompressedRistretto, CompressedRistretto)]],
    /// Every response received from a DP the query names (digested for the audit).
    all: &'a [&'a DpResponse],
    all_cc: &'a [CompressedCts],
}

/// [`compress_cts`] of every response, split over `threads` threads.
fn compress_all(responses: &[&DpResponse], threads: usize) -> Vec<CompressedCts> {
    let threads = threads
        .clamp(1, VERIFY_THREADS_MAX)
        .min(responses.len().max(1));
    if threads <= 1 {
        return responses
            .iter()
            .map(|r| compress_cts(&r.ciphertexts))
            .collect();
    }
    let part = responses.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = responses
            .chunks(part)
            .map(|rs| {
                scope.spawn(move || {
                    rs.iter()
                        .map(|r| compress_cts(&r.ciphertexts))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(responses.chunks(part))
            .flat_map(|(h, rs)| {
                // A panicked thread: compress its part here instead.
                h.join()
                    .unwrap_or_else(|_| rs.iter().map(|r| compress_cts(&r.ciphertexts)).collect())
            })
            .collect()
    })
}

/// What the pool of [`verify_proofs`] found.
struct Pooled {
    /// Per admissible response: every range proof verified.
    range: Vec<bool>,
    /// Per admissible response: its well-formedness proof.
    wellformed: Vec<bool>,
    /// Per key-switch share in the batch.
    keyswitch: Vec<bool>,
    /// Digest of every response received (DP order), for the verdict's audit digest.
    digests: Vec<[u8; 32]>,
}

/// Verifies every range proof of `responses`, the well-formedness batch `wf` and the key-switch
/// batch `ks`, and digests `all` responses, as one pool of jobs on `threads` threads (largest
/// first, each thread taking the next job when done): the Bulletproofs of different responses,
/// the several proofs of one response and the two sigma batches are independent checks, so a
/// response's range check is the AND of its jobs. Fails closed: a job that does not report (a
/// panicked thread) counts as failed.
fn verify_proofs(
    resp: &Responses<'_>,
    wf: &[WellFormedItem<'_>],
    ks: &[(
        &crate::sigma::KeySwitchProof,
        crate::sigma::KeySwitchStatement<'_>,
    )],
    key: &CollectiveKey,
    key_id: &[u8; 32],
    bits: &[usize],
    threads: usize,
) -> Pooled {
    enum Job<'a> {
        WellFormed,
        KeySwitch,
        Digests,
        Range(usize, Box<RangeJob<'a>>),
    }
    enum Out {
        Range(usize),
        WellFormed(Vec<bool>),
        KeySwitch(Vec<bool>),
        Digests(Vec<[u8; 32]>),
    }
    let (responses, all) = (resp.admissible, resp.all);
    let mut expected = vec![0usize; responses.len()];
    let mut layout_ok = vec![false; responses.len()];
    let mut jobs: Vec<(usize, Job<'_>)> = Vec::new();
    for (i, (r, cc)) in responses.iter().zip(resp.admissible_cc).enumerate() {
        if let Some(rj) = r.range_jobs(key_id, &key.key, bits, cc) {
            layout_ok[i] = true;
            expected[i] = rj.len();
            jobs.extend(
                rj.into_iter()
                    .map(|j| (j.weight(), Job::Range(i, Box::new(j)))),
            );
        }
    }
    // Rough weights in proven bits: the well-formedness batch costs about half a 16-bit
    // digit per ciphertext, a key-switch share about one and a half per digit, a digest a few
    // point compressions per ciphertext.
    let wf_weight = wf.iter().map(|(_, _, c, _)| c.len()).sum::<usize>() * DIGIT_BITS / 2;
    let ks_weight = ks.iter().map(|(_, st)| st.k.len()).sum::<usize>() * DIGIT_BITS * 3 / 2;
    let digest_weight = all.iter().map(|r| r.ciphertexts.len()).sum::<usize>() * 2;
    jobs.push((wf_weight, Job::WellFormed));
    jobs.push((ks_weight, Job::KeySwitch));
    jobs.push((digest_weight, Job::Digests));
    jobs.sort_by_key(|j| std::cmp::Reverse(j.0));
    let jobs: Vec<std::sync::Mutex<Option<Job<'_>>>> = jobs
        .into_iter()
        .map(|(_, j)| std::sync::Mutex::new(Some(j)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut out: Vec<Out> = Vec::new();
        loop {
            let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(slot) = jobs.get(k) else { break };
            let job = slot.lock().ok().and_then(|mut j| j.take());
            match job {
                Some(Job::Range(i, j)) => out.extend(j.verify().then_some(Out::Range(i))),
                Some(Job::WellFormed) => {
                    out.push(Out::WellFormed(WellFormedProof::verify_batch_compressed(
                        &key.key, wf,
                    )));
                }
                Some(Job::KeySwitch) => {
                    out.push(Out::KeySwitch(crate::sigma::KeySwitchProof::verify_batch(
                        ks,
                    )));
                }
                Some(Job::Digests) => {
                    out.push(Out::Digests(
                        all.iter()
                            .zip(resp.all_cc)
                            .map(|(r, cc)| r.digest_with(cc))
                            .collect(),
                    ));
                }
                None => {}
            }
        }
        out
    };
    let threads = threads.clamp(1, VERIFY_THREADS_MAX).min(jobs.len());
    let outputs: Vec<Vec<Out>> = if threads <= 1 {
        vec![work()]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        })
    };
    let mut passed = vec![0usize; responses.len()];
    let mut pooled = Pooled {
        range: Vec::new(),
        wellformed: vec![false; wf.len()],
        keyswitch: vec![false; ks.len()],
        // A missing digest job (a panicked thread) leaves an all-zero audit digest; the
        // checks themselves fail closed.
        digests: vec![[0u8; 32]; all.len()],
    };
    for o in outputs.into_iter().flatten() {
        match o {
            Out::Range(i) => passed[i] += 1,
            Out::WellFormed(w) if w.len() == wf.len() => pooled.wellformed = w,
            Out::KeySwitch(k) if k.len() == ks.len() => pooled.keyswitch = k,
            Out::Digests(d) if d.len() == all.len() => pooled.digests = d,
            _ => {}
        }
    }
    pooled.range = (0..responses.len())
        .map(|i| layout_ok[i] && passed[i] == expected[i])
        .collect();
    pooled
}
