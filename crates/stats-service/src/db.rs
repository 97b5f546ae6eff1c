//! A data provider's local database (SQLite): raw rows of (time, patient pseudonym, HR, RR) and
//! hourly pre-aggregated buckets, so a query over any window reads at most two partial hours of
//! raw rows plus one bucket row per (hour, patient) — never a rescan of every row.
//!
//! * `bucket_moments(metric, hour, patient, n, sum, sumsq)` answers count / sum / mean /
//!   variance.
//! * `bucket_values(metric, hour, patient, value, n)` — the exact value distribution per hour —
//!   answers histograms over *any* integer bin edges (hence quantiles and min/max) exactly.
//!
//! Also: a generator of realistic synthetic data (circadian HR, RR consistent with HR with normal
//! variability, some patients with AF-like irregular RR), and an importer for beat series from
//! the `ecg` crate's output (RR intervals in ms).

use std::collections::HashSet;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, params};

use crate::error::{Error, Result};
use vigil_privstats::dp::PlainAnswer;
use vigil_privstats::query::{Metric, ROWS_MAX};

/// Seconds per bucket.
pub const BUCKET_S: i64 = 3600;
/// Rows inserted per transaction by the importer (a limit on everything).
pub const INSERT_BATCH_ROWS: usize = 50_000;

/// One row of the DP's database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Unix seconds, ≥ 0.
    pub t: i64,
    pub patient: String,
    /// Heart rate, bpm (< 256).
    pub hr: u16,
    /// RR interval, ms (< 4096).
    pub rr: u16,
}

/// A DP's local database.
pub struct DpDatabase {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rows (t INTEGER NOT NULL, patient TEXT NOT NULL, hr INTEGER NOT NULL, rr INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS rows_t ON rows(t);
CREATE TABLE IF NOT EXISTS bucket_moments (metric INTEGER NOT NULL, hour INTEGER NOT NULL, patient TEXT NOT NULL,
    n INTEGER NOT NULL, sum INTEGER NOT NULL, sumsq INTEGER NOT NULL, PRIMARY KEY (metric, hour, patient)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bucket_values (metric INTEGER NOT NULL, hour INTEGER NOT NULL, patient TEXT NOT NULL,
    value INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (metric, hour, patient, value)) WITHOUT ROWID;
";

fn column(metric: Metric) -> &'static str {
    match metric {
        Metric::Hr => "hr",
        Metric::Rr => "rr",
    }
}

fn metric_code(metric: Metric) -> i64 {
    match metric {
        Metric::Hr => 1,
        Metric::Rr => 2,
    }
}

impl DpDatabase {
    pub fn open(path: &Path) -> Result<Self> {
        Self::init(Connection::open(path)?)
    }

    pub fn open_in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self> {
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }

    /// Number of raw rows.
    pub fn rows(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM rows", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Inserts rows (validated) and folds them into the buckets. Returns the rows inserted.
    pub fn insert(&mut self, rows: impl IntoIterator<Item = Row>) -> Result<usize> {
        let mut total = 0;
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let tx = self.conn.transaction()?;
            let mut n = 0;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT INTO rows (t, patient, hr, rr) VALUES (?1, ?2, ?3, ?4)",
                )?;
                let mut mom = tx.prepare_cached(
                    "INSERT INTO bucket_moments VALUES (?1, ?2, ?3, 1, ?4, ?4 * ?4)
                     ON CONFLICT DO UPDATE SET n = n + 1, sum = sum + excluded.sum, sumsq = sumsq + excluded.sumsq",
                )?;
                let mut val = tx.prepare_cached(
                    "INSERT INTO bucket_values VALUES (?1, ?2, ?3, ?4, 1) ON CONFLICT DO UPDATE SET n = n + 1",
                )?;
                for row in rows.by_ref().take(INSERT_BATCH_ROWS) {
                    if row.t < 0
                        || u64::from(row.hr) >= Metric::Hr.value_bound()
                        || u64::from(row.rr) >= Metric::Rr.value_bound()
                    {
                        return Err(Error::OutOfRange(format!("row {row:?}")));
                    }
                    ins.execute(params![row.t, row.patient, row.hr, row.rr])?;
                    let hour = row.t / BUCKET_S;
                    for (m, v) in [(Metric::Hr, row.hr), (Metric::Rr, row.rr)] {
                        mom.execute(params![metric_code(m), hour, row.patient, v])?;
                        val.execute(params![metric_code(m), hour, row.patient, v])?;
                    }
                    n += 1;
                }
            }
            tx.commit()?;
            total += n;
        }
        Ok(total)
    }

    /// The exact local answer for a metric over [from_s, to_s), optionally restricted to a cohort
    /// of pseudonyms, with histogram bins over `edges` (empty: no bins).
    pub fn answer(
        &self,
        metric: Metric,
        from_s: i64,
        to_s: i64,
        cohort: &[String],
        edges: &[u32],
    ) -> Result<PlainAnswer> {
        let keep: HashSet<&str> = cohort.iter().map(String::as_str).collect();
        let wanted = |p: &str| keep.is_empty() || keep.contains(p);
        let mut ans = PlainAnswer {
            bins: vec![0; edges.len().saturating_sub(1)],
            ..Default::default()
        };
        let first_full = (from_s.max(0) + BUCKET_S - 1) / BUCKET_S;
        let end_full = to_s.max(0) / BUCKET_S;
        let raw = |lo: i64, hi: i64, ans: &mut PlainAnswer| -> Result<()> {
            if lo >= hi {
                return Ok(());
            }
            let sql = format!(
                "SELECT patient, {} FROM rows WHERE t >= ?1 AND t < ?2",
                column(metric)
            );
            let mut st = self.conn.prepare_cached(&sql)?;
            let mut q = st.query(params![lo, hi])?;
            while let Some(r) = q.next()? {
                let p: String = r.get(0)?;
                if wanted(&p) {
                    ans.add_value(r.get::<_, i64>(1)? as u64, 1, edges);
                }
            }
            Ok(())
        };
        if first_full >= end_full {
            raw(from_s, to_s, &mut ans)?;
        } else {
            raw(from_s, first_full * BUCKET_S, &mut ans)?;
            raw(end_full * BUCKET_S, to_s, &mut ans)?;
            let code = metric_code(metric);
            if edges.is_empty() {
                let mut st = self.conn.prepare_cached(
                    "SELECT patient, SUM(n), SUM(sum), SUM(sumsq) FROM bucket_moments
                     WHERE metric = ?1 AND hour >= ?2 AND hour < ?3 GROUP BY patient",
                )?;
                let mut q = st.query(params![code, first_full, end_full])?;
                while let Some(r) = q.next()? {
                    if wanted(&r.get::<_, String>(0)?) {
                        ans.count += r.get::<_, i64>(1)? as u64;
                        ans.sum += r.get::<_, i64>(2)? as u64;
                        ans.sumsq += r.get::<_, i64>(3)? as u64;
                    }
                }
            } else {
                let mut st = self.conn.prepare_cached(
                    "SELECT patient, value, SUM(n) FROM bucket_values
                     WHERE metric = ?1 AND hour >= ?2 AND hour < ?3 GROUP BY patient, value",
                )?;
                let mut q = st.query(params![code, first_full, end_full])?;
                while let Some(r) = q.next()? {
                    if wanted(&r.get::<_, String>(0)?) {
                        ans.add_value(
                            r.get::<_, i64>(1)? as u64,
                            r.get::<_, i64>(2)? as u64,
                            edges,
                        );
                    }
                }
            }
        }
        if ans.count > ROWS_MAX {
            return Err(Error::OutOfRange(format!(
                "{} rows in the window, at most {ROWS_MAX}",
                ans.count
            )));
        }
        Ok(ans)
    }

    /// Imports a beat series (the `ecg` crate's RR intervals, ms) for one patient starting at
    /// `start_s`: one row per beat at its time, HR = 60,000 / RR. Only usable intervals are
    /// stored: `usable[k]` false (the ECG's signal quality marked interval `k` unusable) skips
    /// it, as do intervals beyond the metric bounds (RR < 235 ms or ≥ 4096 ms, artefacts); both
    /// are counted in the second number, and time still advances over them. `usable` must be
    /// as long as `rr_ms`.
    pub fn import_beats(
        &mut self,
        patient: &str,
        start_s: i64,
        rr_ms: &[u32],
        usable: &[bool],
    ) -> Result<(usize, usize)> {
        if usable.len() != rr_ms.len() {
            return Err(Error::OutOfRange(format!(
                "{} usability flags for {} intervals",
                usable.len(),
                rr_ms.len()
            )));
        }
        let mut t_ms = start_s * 1000;
        let mut skipped = 0;
        let mut rows = Vec::with_capacity(rr_ms.len());
        for (&rr, &ok) in rr_ms.iter().zip(usable) {
            t_ms += i64::from(rr);
            let hr = 60_000 / rr.max(1);
            if !ok || rr >= 4096 || hr >= 256 {
                skipped += 1;
                continue;
            }
            rows.push(Row {
                t: t_ms / 1000,
                patient: patient.to_owned(),
                hr: hr as u16,
                rr: rr as u16,
            });
        }
        Ok((self.insert(rows)?, skipped))
    }
}

/// Parameters of the synthetic generator.
#[derive(Clone, Debug)]
pub struct GeneratorConfig {
    /// Total rows (302,400 by default: 5 patients × one row per 10 s for 7 days).
    pub rows: usize,
    pub patients: usize,
    pub start_s: i64,
    pub step_s: i64,
    /// Every `af_every`-th patient has AF-like irregular RR (0: nobody).
    pub af_every: usize,
    pub seed: u64,
    /// Prefix of the pseudonyms.
    pub prefix: String,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            rows: 302_400,
            patients: 5,
            start_s: 1_700_006_400,
            step_s: 10,
            af_every: 4,
            seed: 1,
            prefix: "p".into(),
        }
    }
}

fn gauss(rng: &mut StdRng) -> f64 {
    // Box–Muller.
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Generates rows: patient-major, one row per `step_s`. Heart rate follows a circadian cosine
/// (lowest around 04:00) around a per-patient base, plus a slow AR(1) activity term; the RR
/// interval of the row is one beat's interval: 60,000 / HR with ~3% beat-to-beat variability
/// (sinus rhythm) or uniformly ±35% (AF-like, with a higher base rate).
pub fn generate(cfg: &GeneratorConfig) -> impl Iterator<Item = Row> + '_ {
    let per_patient = cfg.rows.div_ceil(cfg.patients.max(1));
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    (0..cfg.rows).scan((usize::MAX, 0.0f64, 0.0f64, false), move |state, i| {
        let p = i / per_patient;
        let k = i % per_patient;
        if state.0 != p {
            let af = cfg.af_every > 0 && p % cfg.af_every == cfg.af_every - 1;
            let base = if af {
                rng.gen_range(85.0..105.0)
            } else {
                rng.gen_range(58.0..80.0)
            };
            *state = (p, base, 0.0, af);
        }
        let (_, base, ar, af) = *state;
        let t = cfg.start_s + k as i64 * cfg.step_s;
        let day_phase = ((t % 86_400) as f64 / 86_400.0 - 16.0 / 24.0) * std::f64::consts::TAU;
        let ar = 0.98 * ar + 1.2 * gauss(&mut rng);
        state.2 = ar;
        let hr = (base + 9.0 * day_phase.cos() + ar).clamp(35.0, 200.0);
        let mean_rr = 60_000.0 / hr;
        let rr = if af {
            mean_rr * rng.gen_range(0.65..1.35)
        } else {
            mean_rr * (1.0 + 0.03 * gauss(&mut rng))
        };
        Some(Row {
            t,
            patient: format!("{}{p}", cfg.prefix),
            hr: hr.round() as u16,
            rr: rr.round().clamp(250.0, 4095.0) as u16,
        })
    })
}
