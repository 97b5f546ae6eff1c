//! The querier: accepts a result only with a quorum of all-good verdicts over exactly the data
//! it decrypts, combines t key-switch shares, decrypts with a batched baby-step giant-step table,
//! and computes the statistic in exact integer arithmetic.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE as G_TABLE;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;

use crate::elgamal::KeyPair;
use crate::error::{Error, Result};
use crate::keys::CollectiveKey;
use crate::query::{DIGIT_BITS, Field, Query, Statistic};
use crate::server::{KeySwitchShare, ServerAggregate, combine, total};
use crate::verify::{Check, Verdict, result_digest};

/// Default baby steps (2^17 entries, 2 MiB) and giant steps (2^9): values below 2^26 decrypt.
pub const BABY_BITS: u32 = 17;
pub const GIANT_BITS: u32 = 9;

/// A baby-step table for discrete logs of m·G with 0 ≤ m < baby · giant.
///
/// Entries are the first 8 bytes of the encoding of 2·j·G for j < baby, sorted; giant steps
/// compress 2·(P − i·baby·G) for all pending points at once with
/// `RistrettoPoint::double_and_compress_batch` (one field inversion per batch), which is why the
/// table stores doubled points (doubling is a bijection in a prime-order group). A prefix match is
/// confirmed by one scalar multiplication, so prefix collisions cannot produce a wrong value.
/// Variable time: only ever applied to the querier's own results.
pub struct DecryptionTable {
    baby: u64,
    giant: u64,
    entries: Vec<(u64, u32)>,
    step: RistrettoPoint,
}

fn prefix(bytes: &[u8; 32]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

impl DecryptionTable {
    /// Builds the table: `baby_bits` ≤ 24 bounds memory at 2^baby_bits · 16 bytes.
    pub fn new(baby_bits: u32, giant_bits: u32) -> Self {
        assert!(
            (1..=24).contains(&baby_bits) && giant_bits <= 24,
            "table bounds"
        );
        let baby = 1u64 << baby_bits;
        let mut entries = Vec::with_capacity(baby as usize);
        let chunk = 4096u64;
        let mut p = RistrettoPoint::default();
        let mut j = 0u64;
        while j < baby {
            let n = chunk.min(baby - j);
            let mut pts = Vec::with_capacity(n as usize);
            for _ in 0..n {
                pts.push(p);
                p += curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
            }
            for (i, c) in RistrettoPoint::double_and_compress_batch(&pts)
                .iter()
                .enumerate()
            {
                entries.push((prefix(c.as_bytes()), (j + i as u64) as u32));
            }
            j += n;
        }
        entries.sort_unstable();
        Self {
            baby,
            giant: 1 << giant_bits,
            entries,
            step: p,
        }
    }

    /// Exclusive bound of decryptable values.
    pub fn bound(&self) -> u64 {
        self.baby * self.giant
    }

    /// Memory held by the table, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<(u64, u32)>()
    }

    /// Discrete logs of all points at once. A point beyond the bound is an error naming it.
    pub fn decrypt_batch(&self, points: &[RistrettoPoint]) -> Result<Vec<u64>> {
        let mut out: Vec<Option<u64>> = vec![None; points.len()];
        let mut pending: Vec<(usize, RistrettoPoint)> =
            points.iter().copied().enumerate().collect();
        for i in 0..self.giant {
            if pending.is_empty() {
                break;
            }
            let pts: Vec<RistrettoPoint> = pending.iter().map(|(_, p)| *p).collect();
            let compressed = RistrettoPoint::double_and_compress_batch(&pts);
            let mut next = Vec::with_capacity(pending.len());
            for ((idx, p), c) in pending.into_iter().zip(compressed) {
                match self.lookup(prefix(c.as_bytes()), i, &points[idx]) {
                    Some(v) => out[idx] = Some(v),
                    None => next.push((idx, p - self.step)),
                }
            }
            pending = next;
        }
        if let Some((idx, _)) = pending.first() {
            return Err(Error::Undecryptable {
                index: *idx,
                bound: self.bound(),
            });
        }
        Ok(out.into_iter().map(|v| v.expect("all resolved")).collect())
    }

    fn lookup(&self, key: u64, giant_step: u64, original: &RistrettoPoint) -> Option<u64> {
        let start = self.entries.partition_point(|(k, _)| *k < key);
        self.entries[start..]
            .iter()
            .take_while(|(k, _)| *k == key)
            .find_map(|(_, j)| {
                let m = giant_step * self.baby + u64::from(*j);
                (&Scalar::from(m) * G_TABLE == *original).then_some(m)
            })
    }
}

/// Exact aggregates over every DP in the result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Aggregates {
    pub count: u128,
    pub sum: u128,
    pub sumsq: u128,
    pub bins: Vec<u128>,
}

/// The answer to a query.
#[derive(Clone, Debug, PartialEq)]
pub enum StatResult {
    Count(u128),
    Sum(u128),
    /// sum / count.
    Mean {
        sum: u128,
        count: u128,
        value: f64,
    },
    /// Population variance (count·sumsq − sum²) / count².
    Variance {
        numerator: u128,
        denominator: u128,
        value: f64,
    },
    StdDev(f64),
    Histogram {
        edges: Vec<u32>,
        bins: Vec<u128>,
        outside: u128,
    },
    /// The bin [lo, hi) holding the quantile; None if it falls outside every bin or no data.
    Quantile {
        per_mille: u16,
        bin: Option<(u32, u32)>,
    },
    Min(Option<(u32, u32)>),
    Max(Option<(u32, u32)>),
}

impl Aggregates {
    /// Computes the statistic the query asked for.
    pub fn statistic(&self, query: &Query) -> StatResult {
        let variance = || {
            // count·sumsq ≥ sum² for honest data (Cauchy–Schwarz); the proofs bound each field
            // but not this relation (module notes of `query`), so a lying DP may break it:
            // saturate instead of wrapping.
            let numerator = (self.count * self.sumsq).saturating_sub(self.sum * self.sum);
            let denominator = self.count * self.count;
            let value = if denominator == 0 {
                f64::NAN
            } else {
                numerator as f64 / denominator as f64
            };
            (numerator, denominator, value)
        };
        let e = &query.edges;
        let bin = |i: usize| (e[i], e[i + 1]);
        match query.statistic {
            Statistic::Count => StatResult::Count(self.count),
            Statistic::Sum => StatResult::Sum(self.sum),
            Statistic::Mean => StatResult::Mean {
                sum: self.sum,
                count: self.count,
                value: if self.count == 0 {
                    f64::NAN
                } else {
                    self.sum as f64 / self.count as f64
                },
            },
            Statistic::Variance => {
                let (numerator, denominator, value) = variance();
                StatResult::Variance {
                    numerator,
                    denominator,
                    value,
                }
            }
            Statistic::StdDev => StatResult::StdDev(variance().2.sqrt()),
            Statistic::Histogram => StatResult::Histogram {
                edges: e.clone(),
                bins: self.bins.clone(),
                // Σ bins ≤ count for honest data; unproven (see above), so saturate.
                outside: self.count.saturating_sub(self.bins.iter().sum::<u128>()),
            },
            Statistic::Min => StatResult::Min(self.bins.iter().position(|&b| b > 0).map(bin)),
            Statistic::Max => StatResult::Max(self.bins.iter().rposition(|&b| b > 0).map(bin)),
            Statistic::Quantile(q) => {
                // The smallest bin whose cumulative count reaches ceil(q·n/1000), n over the bins.
                let n: u128 = self.bins.iter().sum();
                let rank = (u128::from(q) * n).div_ceil(1000).max(1);
                let mut acc = 0;
                let pos = self.bins.iter().position(|&b| {
                    acc += b;
                    acc >= rank
                });
                StatResult::Quantile {
                    per_mille: q,
                    bin: if n == 0 { None } else { pos.map(bin) },
                }
            }
        }
    }
}

/// Recomposes decrypted digit sums into field aggregates (exact).
pub fn recompose(query: &Query, digits: &[u64]) -> Aggregates {
    let mut agg = Aggregates::default();
    let mut it = digits.iter();
    for f in query.fields() {
        let v = (0..f.digits()).fold(0u128, |acc, k| {
            acc + (u128::from(*it.next().expect("digit")) << (DIGIT_BITS * k))
        });
        match f {
            Field::Count => agg.count = v,
            Field::Sum => agg.sum = v,
            Field::SumSq => agg.sumsq = v,
            Field::Bin(_) => agg.bins.push(v),
        }
    }
    if query.count_from_bins() {
        agg.count = agg.bins.iter().sum();
    }
    agg
}

/// The doctor's side.
pub struct Querier {
    pub keypair: KeyPair,
    pub table: DecryptionTable,
}

impl Querier {
    pub fn new(keypair: KeyPair, table: DecryptionTable) -> Self {
        Self { keypair, table }
    }

    /// Accepts the result only if `quorum` distinct verifying nodes returned all-good verdicts
    /// over exactly these aggregates and shares, then decrypts.
    pub fn result(
        &self,
        query: &Query,
        key: &CollectiveKey,
        aggregates: &[ServerAggregate],
        shares: &[KeySwitchShare],
        verdicts: &[Verdict],
        quorum: usize,
    ) -> Result<(Aggregates, StatResult)> {
        let query_id = query.id();
        let rd = result_digest(&query_id, aggregates, shares);
        let mut good = std::collections::BTreeSet::new();
        for v in verdicts.iter().filter(|v| v.query_id == query_id) {
            if v.result_digest != rd {
                return Err(Error::Rejected(format!(
                    "verifier {} vouched for other data",
                    v.verifier
                )));
            }
            if !v.all_good() {
                let failed: Vec<String> = v.failures().iter().map(Check::to_string).collect();
                return Err(Error::Rejected(format!(
                    "verifier {} failed: {}",
                    v.verifier,
                    failed.join(", ")
                )));
            }
            good.insert(v.verifier);
        }
        if good.len() < quorum.max(1) {
            return Err(Error::Rejected(format!(
                "{} all-good verdicts, quorum is {quorum}",
                good.len()
            )));
        }
        let agg = self.decrypt(query, key, aggregates, shares)?;
        let stat = agg.statistic(query);
        Ok((agg, stat))
    }

    /// Combines the first t shares and decrypts (no verdict check: use [`Querier::result`]).
    pub fn decrypt(
        &self,
        query: &Query,
        key: &CollectiveKey,
        aggregates: &[ServerAggregate],
        shares: &[KeySwitchShare],
    ) -> Result<Aggregates> {
        decrypt_with(&self.keypair, &self.table, query, key, aggregates, shares)
    }
}

/// Combines the first t shares (by server id) and decrypts with `keypair` and `table`. No
/// verdict check: the caller has applied its acceptance rule.
pub fn decrypt_with(
    keypair: &KeyPair,
    table: &DecryptionTable,
    query: &Query,
    key: &CollectiveKey,
    aggregates: &[ServerAggregate],
    shares: &[KeySwitchShare],
) -> Result<Aggregates> {
    let mut chosen: Vec<&KeySwitchShare> = shares.iter().collect();
    chosen.sort_by_key(|s| s.server);
    chosen.dedup_by_key(|s| s.server);
    if chosen.len() < key.threshold {
        return Err(Error::BelowThreshold {
            got: chosen.len(),
            threshold: key.threshold,
        });
    }
    chosen.truncate(key.threshold);
    let tot = total(query.digits(), aggregates);
    let switched = combine(&tot, &chosen);
    let points: Vec<RistrettoPoint> = switched
        .iter()
        .map(|ct| keypair.decrypt_to_point(ct))
        .collect();
    let digits = table.decrypt_batch(&points)?;
    Ok(recompose(query, &digits))
}
