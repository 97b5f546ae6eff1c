//! The query (a ledger transaction from an authorised doctor) and the plaintext layout it implies.
//!
//! # Bounds (why every aggregate stays decryptable)
//!
//! Every field of a DP's answer is split into digits of 16 bits, little-endian; each digit is
//! encrypted on its own and proven in [0, 2^16) by aggregated Bulletproofs — except the top digit
//! of a count-like field, proven in [0, 2^8) because the field's bound allows it (proving cost is
//! linear in the bits proven: histograms get 25% cheaper). Per DP, with at most [`ROWS_MAX`] =
//! 2^19 rows and metric values below 2^12 (RR in ms; HR in bpm is below 2^8):
//!
//! | field | per-DP bound | digits (bits proven) |
//! |---|---|---|
//! | count, histogram bin | 2^19 | 2 (16 + 8 = 24) |
//! | sum | 2^19 · 2^12 = 2^31 | 2 (32) |
//! | sum of squares | 2^19 · 2^24 = 2^43 | 3 (48) |
//!
//! An aggregated digit over at most [`DPS_MAX`] = 1,024 DPs is below 1,024 · 2^16 = 2^26, which is
//! exactly the bound of the querier's baby-step giant-step table (2^17 baby steps × 2^9 giant
//! steps), so every aggregate digit decrypts; values are recomposed in exact integer arithmetic
//! (u128), so aggregates over 1,000 DPs × 302,400 rows (count < 2^29, sum < 2^40, sum of squares
//! < 2^52) come out exactly. A DP answer beyond these bounds is refused by the honest DP, and a
//! cheating DP's digit outside [0, 2^16) fails its range proof.
//! The range proofs bound each *field*; they do not prove that sum ≤ count · max (a linear
//! consistency proof, left for later: it costs one more 64-bit range proof per constraint).
//!
//! **No count field where the bins determine it** ([`Query::count_from_bins`]): a quantile, min
//! or max reads only the bins, and a histogram whose edges span the metric's whole range
//! [0, bound) has every row in exactly one bin, so the count is the sum of the bins. The DPs
//! then encrypt and prove only the bins (13 bins of the default RR histogram: 26 digits, 312
//! proven bits instead of 28 digits and 336 bits, before the padding of `dp::range_layout`), and the querier derives the count as the sum
//! of the decrypted bins. No bound changes: each bin keeps its own proven bound (< 2^24 per DP,
//! each digit decryptable after aggregation), and the derived count is an exact sum of exact
//! integers (< 31 · 2^34 over 1,024 DPs, far inside u128). What a DP could do before — claim a
//! count that disagrees with its bins — it simply cannot express any more.

use curve25519_dalek::ristretto::RistrettoPoint;

use crate::encoding::{Canonical, Reader, Writer, digest};
use crate::error::{Error, Result};

pub use crate::ids::DpId;

/// Bits per encrypted digit.
pub const DIGIT_BITS: usize = 16;
/// Rows a DP may aggregate in one answer.
pub const ROWS_MAX: u64 = 1 << 19;
/// DPs in one query.
pub const DPS_MAX: usize = 1024;
/// Histogram bins in one query (2 digits per bin + 2 for the count fit 64 digits).
pub const BINS_MAX: usize = 31;
/// Patients named in a cohort filter.
pub const COHORT_MAX: usize = 4096;

/// The measured quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Heart rate, beats per minute.
    Hr,
    /// RR interval, milliseconds.
    Rr,
}

impl Metric {
    /// Exclusive upper bound of a row's value.
    pub fn value_bound(self) -> u64 {
        match self {
            Metric::Hr => 1 << 8,
            Metric::Rr => 1 << 12,
        }
    }
    /// Default histogram edges (what a query that needs bins and names none is given).
    pub fn default_edges(self) -> Vec<u32> {
        match self {
            Metric::Rr => vec![
                0, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200, 1500, 2000, 4096,
            ],
            Metric::Hr => vec![0, 40, 50, 60, 70, 80, 90, 100, 110, 120, 140, 160, 256],
        }
    }
    fn tag(self) -> u8 {
        match self {
            Metric::Hr => 1,
            Metric::Rr => 2,
        }
    }
    fn from_tag(t: u8) -> Result<Self> {
        match t {
            1 => Ok(Metric::Hr),
            2 => Ok(Metric::Rr),
            _ => Err(Error::Decode("metric tag")),
        }
    }
}

impl std::str::FromStr for Metric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "hr" => Ok(Metric::Hr),
            "rr" => Ok(Metric::Rr),
            _ => Err(Error::Param(format!("unknown metric {s:?} (hr|rr)"))),
        }
    }
}

/// The name [`Metric::from_str`](std::str::FromStr) reads.
impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Metric::Hr => "hr",
            Metric::Rr => "rr",
        })
    }
}

/// The statistic asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Statistic {
    Count,
    Sum,
    Mean,
    Variance,
    StdDev,
    /// Bin counts over the query's edges.
    Histogram,
    /// The bin holding the q-quantile, q in per mille (0..=1000).
    Quantile(u16),
    /// The bin holding the smallest value (exact with unit-width bins).
    Min,
    /// The bin holding the largest value.
    Max,
}

impl Statistic {
    /// True for the statistics computed from bins (histogram, quantile, min, max).
    pub fn needs_bins(self) -> bool {
        matches!(
            self,
            Statistic::Histogram | Statistic::Quantile(_) | Statistic::Min | Statistic::Max
        )
    }
    fn tag(self) -> (u8, u16) {
        match self {
            Statistic::Count => (1, 0),
            Statistic::Sum => (2, 0),
            Statistic::Mean => (3, 0),
            Statistic::Variance => (4, 0),
            Statistic::StdDev => (5, 0),
            Statistic::Histogram => (6, 0),
            Statistic::Quantile(q) => (7, q),
            Statistic::Min => (8, 0),
            Statistic::Max => (9, 0),
        }
    }
    fn from_tag(t: u8, q: u16) -> Result<Self> {
        Ok(match (t, q) {
            (1, 0) => Statistic::Count,
            (2, 0) => Statistic::Sum,
            (3, 0) => Statistic::Mean,
            (4, 0) => Statistic::Variance,
            (5, 0) => Statistic::StdDev,
            (6, 0) => Statistic::Histogram,
            (7, q) if q <= 1000 => Statistic::Quantile(q),
            (8, 0) => Statistic::Min,
            (9, 0) => Statistic::Max,
            _ => return Err(Error::Decode("statistic tag")),
        })
    }
}

impl std::str::FromStr for Statistic {
    type Err = Error;
    /// `count|sum|mean|variance|std|histogram|min|max|median|pNN` (NN percent, e.g. p90).
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "count" => Statistic::Count,
            "sum" => Statistic::Sum,
            "mean" => Statistic::Mean,
            "variance" => Statistic::Variance,
            "std" | "stddev" => Statistic::StdDev,
            "histogram" => Statistic::Histogram,
            "min" => Statistic::Min,
            "max" => Statistic::Max,
            "median" => Statistic::Quantile(500),
            _ => match s.strip_prefix('p').and_then(|p| p.parse::<u16>().ok()) {
                Some(p) if p <= 100 => Statistic::Quantile(p * 10),
                _ => return Err(Error::Param(format!("unknown statistic {s:?}"))),
            },
        })
    }
}

/// The canonical name [`Statistic::from_str`](std::str::FromStr) reads: `std` (not its
/// alias `stddev`), `median` for the 50 % quantile, `pNN` for another (whole percent; a
/// quantile between whole percents shows rounded down).
impl std::fmt::Display for Statistic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Statistic::Count => f.write_str("count"),
            Statistic::Sum => f.write_str("sum"),
            Statistic::Mean => f.write_str("mean"),
            Statistic::Variance => f.write_str("variance"),
            Statistic::StdDev => f.write_str("std"),
            Statistic::Histogram => f.write_str("histogram"),
            Statistic::Min => f.write_str("min"),
            Statistic::Max => f.write_str("max"),
            Statistic::Quantile(500) => f.write_str("median"),
            Statistic::Quantile(q) => write!(f, "p{}", q / 10),
        }
    }
}

/// A field of the plaintext answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Count,
    Sum,
    SumSq,
    Bin(usize),
}

/// Bits proven for the top digit of a count-like field (count, bins): 16 + 8 ≥ 20 bits hold
/// [`ROWS_MAX`] = 2^19.
pub const TOP_DIGIT_BITS_SMALL: usize = 8;

impl Field {
    /// Bits proven for each digit, least significant first. Every digit but the last holds
    /// exactly [`DIGIT_BITS`] bits, so digit k has weight 2^(16·k).
    pub fn digit_bits(self) -> &'static [usize] {
        match self {
            Field::Count | Field::Bin(_) => &[DIGIT_BITS, TOP_DIGIT_BITS_SMALL],
            Field::Sum => &[DIGIT_BITS, DIGIT_BITS],
            Field::SumSq => &[DIGIT_BITS, DIGIT_BITS, DIGIT_BITS],
        }
    }

    /// Number of digits.
    pub fn digits(self) -> usize {
        self.digit_bits().len()
    }
}

/// A statistics query. Its canonical encoding is what the doctor signs on the ledger; its hash is
/// the query id bound into every proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Distinguishes otherwise identical queries.
    pub nonce: u64,
    /// The querier's ElGamal public key Y.
    pub querier: RistrettoPoint,
    /// Id of the collective key the DPs must encrypt under.
    pub key_id: [u8; 32],
    pub metric: Metric,
    pub statistic: Statistic,
    /// Window [from_s, to_s) in Unix seconds.
    pub from_s: i64,
    pub to_s: i64,
    /// Patient pseudonyms; empty means every patient of the DP.
    pub cohort: Vec<String>,
    /// The DPs asked, sorted, distinct.
    pub dps: Vec<DpId>,
    /// Histogram bin edges e_0 < … < e_B: bin i is [e_i, e_{i+1}). Empty unless the statistic
    /// needs bins.
    pub edges: Vec<u32>,
}

impl Query {
    /// Checks the bounds; call before anything else.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Param(m));
        if self.from_s >= self.to_s {
            return bad("empty time window".into());
        }
        if self.dps.is_empty()
            || self.dps.len() > DPS_MAX
            || self.dps.windows(2).any(|w| w[0] >= w[1])
        {
            return bad(format!("dps must be 1..={DPS_MAX} sorted distinct ids"));
        }
        if self.cohort.len() > COHORT_MAX {
            return bad(format!("cohort larger than {COHORT_MAX}"));
        }
        if self.statistic.needs_bins() {
            let bins = self.edges.len().saturating_sub(1);
            if bins == 0 || bins > BINS_MAX || self.edges.windows(2).any(|w| w[0] >= w[1]) {
                return bad(format!(
                    "need 2..={} strictly increasing edges",
                    BINS_MAX + 1
                ));
            }
            if u64::from(*self.edges.last().expect("non-empty")) > self.metric.value_bound() {
                return bad("edge beyond the metric's range".into());
            }
        } else if !self.edges.is_empty() {
            return bad("edges given for a statistic without bins".into());
        }
        Ok(())
    }

    /// True when the count is not encrypted but derived as the sum of the bins (see the module
    /// notes): a quantile, min or max reads only the bins, and a histogram whose edges cover the
    /// metric's whole range [0, bound) has no value outside every bin (a DP's database refuses
    /// rows beyond the bound), so its count *is* the sum of its bins.
    pub fn count_from_bins(&self) -> bool {
        match self.statistic {
            Statistic::Quantile(_) | Statistic::Min | Statistic::Max => true,
            Statistic::Histogram => {
                self.edges.first() == Some(&0)
                    && self
                        .edges
                        .last()
                        .is_some_and(|&e| u64::from(e) == self.metric.value_bound())
            }
            _ => false,
        }
    }

    /// The fields every DP encrypts, in order.
    pub fn fields(&self) -> Vec<Field> {
        match self.statistic {
            Statistic::Count => vec![Field::Count],
            Statistic::Sum | Statistic::Mean => vec![Field::Count, Field::Sum],
            Statistic::Variance | Statistic::StdDev => vec![Field::Count, Field::Sum, Field::SumSq],
            _ => (!self.count_from_bins())
                .then_some(Field::Count)
                .into_iter()
                .chain((0..self.edges.len().saturating_sub(1)).map(Field::Bin))
                .collect(),
        }
    }

    /// Number of digits.
    pub fn digits(&self) -> usize {
        self.fields().iter().map(|f| f.digits()).sum()
    }

    /// Bits proven for every digit of an answer, in order.
    pub fn digit_bits(&self) -> Vec<usize> {
        self.fields()
            .iter()
            .flat_map(|f| f.digit_bits().iter().copied())
            .collect()
    }

    pub fn id(&self) -> [u8; 32] {
        digest(b"vigil-privstats/query/v1", &self.to_bytes())
    }
}

impl Canonical for Query {
    fn write(&self, w: &mut Writer) {
        let (t, q) = self.statistic.tag();
        w.u64(self.nonce)
            .point(&self.querier)
            .fixed(&self.key_id)
            .u8(self.metric.tag())
            .u8(t)
            .u32(u32::from(q));
        w.i64(self.from_s).i64(self.to_s).seq_len(self.cohort.len());
        for p in &self.cohort {
            w.bytes(p.as_bytes());
        }
        w.seq_len(self.dps.len());
        for d in &self.dps {
            w.u32(*d);
        }
        w.seq_len(self.edges.len());
        for e in &self.edges {
            w.u32(*e);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let nonce = r.u64()?;
        let querier = r.point()?;
        let key_id = r.fixed()?;
        let metric = Metric::from_tag(r.u8()?)?;
        let t = r.u8()?;
        let q = u16::try_from(r.u32()?).map_err(|_| Error::Decode("quantile"))?;
        let statistic = Statistic::from_tag(t, q)?;
        let (from_s, to_s) = (r.i64()?, r.i64()?);
        let n = r.seq_len()?;
        let cohort = (0..n)
            .map(|_| String::from_utf8(r.bytes()?.to_vec()).map_err(|_| Error::Decode("utf-8")))
            .collect::<Result<_>>()?;
        let n = r.seq_len()?;
        let dps = (0..n).map(|_| r.u32()).collect::<Result<_>>()?;
        let n = r.seq_len()?;
        let edges = (0..n).map(|_| r.u32()).collect::<Result<_>>()?;
        let q = Self {
            nonce,
            querier,
            key_id,
            metric,
            statistic,
            from_s,
            to_s,
            cohort,
            dps,
            edges,
        };
        q.validate()
            .map_err(|_| Error::Decode("query out of bounds"))?;
        Ok(q)
    }
}
