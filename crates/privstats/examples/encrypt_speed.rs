//! DP encryption + proofs, before and after the speed-up, measured in one binary:
//!
//! - before: one aggregated Bulletproof over the digits padded to a power of two, one thread
//!   (what `DpResponse` did up to the ledger wiring), plus encryption and the well-formedness proof;
//! - after: `DpResponse::create_with_threads` (no padding, power-of-two chunks, 1 or 2 threads).
//!
//! `cargo run --release -p vigil-privstats --example encrypt_speed [runs]` prints the median per
//! statistic and one `key=value` line.
//!
//! The "before" columns use today's digits, encryption and well-formedness proof: to compare
//! commits (e.g. the histogram's 28 → 26 digits and the combined well-formedness proof), build
//! this example at each commit and run the binaries alternately; the README records such runs.

use std::time::{Duration, Instant};

use bulletproofs::{BulletproofGens, PedersenGens, RangeProof};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT as G;
use merlin::Transcript;
use vigil_privstats::dp::{DpResponse, PlainAnswer};
use vigil_privstats::elgamal::Ciphertext;
use vigil_privstats::network::Network;
use vigil_privstats::query::{DIGIT_BITS, Metric, Query, Statistic};
use vigil_privstats::sigma::WellFormedProof;

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort_unstable();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(21);
    let mut rng = rand::thread_rng();
    let net = Network::new(2, 3, 1, &mut rng)?;
    let gens = BulletproofGens::new(DIGIT_BITS, 64);
    let mut line = Vec::new();
    println!(
        "{:>10} {:>7} {:>11} {:>11} {:>11} {:>13} {:>12}",
        "statistic",
        "digits",
        "before_ms",
        "after1_ms",
        "after2_ms",
        "verify_bef_ms",
        "verify_aft_ms"
    );
    for statistic in [Statistic::Mean, Statistic::Variance, Statistic::Histogram] {
        let edges = if statistic == Statistic::Histogram {
            Metric::Rr.default_edges()
        } else {
            vec![]
        };
        let query = Query {
            nonce: 1,
            querier: G,
            key_id: net.key.id(),
            metric: Metric::Rr,
            statistic,
            from_s: 0,
            to_s: 1,
            cohort: vec![],
            dps: vec![1],
            edges: edges.clone(),
        };
        let mut answer = PlainAnswer::default();
        for v in 300..1500u64 {
            answer.add_value(v, 250, &edges);
        }
        let digits = answer.digits(&query)?;
        let x = net.key.key;
        let (mut before, mut after1, mut after2) = (Vec::new(), Vec::new(), Vec::new());
        let (mut vbefore, mut vafter) = (Vec::new(), Vec::new());
        let bits = query.digit_bits();
        for _ in 0..runs {
            // Before: padded digits, one aggregated proof, one thread.
            let start = Instant::now();
            let mut padded = digits.clone();
            padded.resize(digits.len().next_power_of_two(), 0);
            let (cts, rands): (Vec<_>, Vec<_>) = padded
                .iter()
                .map(|m| Ciphertext::encrypt(&x, *m, &mut rng))
                .unzip();
            let mut tr = Transcript::new(b"before");
            let pc = PedersenGens {
                B: G,
                B_blinding: x,
            };
            let (proof, commitments) = RangeProof::prove_multiple_with_rng(
                &gens, &pc, &mut tr, &padded, &rands, DIGIT_BITS, &mut rng,
            )?;
            let _ = WellFormedProof::prove(b"before", &x, &cts, &padded, &rands, &mut rng);
            before.push(start.elapsed());
            let start = Instant::now();
            let mut tr = Transcript::new(b"before");
            proof.verify_multiple_with_rng(
                &gens,
                &pc,
                &mut tr,
                &commitments,
                DIGIT_BITS,
                &mut rng,
            )?;
            vbefore.push(start.elapsed());
            for (threads, out) in [(1, &mut after1), (2, &mut after2)] {
                let start = Instant::now();
                let r = DpResponse::create_with_threads(
                    &query, &net.key, 1, 1, &answer, threads, &mut rng,
                )?;
                out.push(start.elapsed());
                if threads == 2 {
                    let start = Instant::now();
                    if !r.verify_range(&net.key, &bits) {
                        return Err("range proofs do not verify".into());
                    }
                    vafter.push(start.elapsed());
                }
            }
        }
        let (b, a1, a2) = (median(before), median(after1), median(after2));
        let (vb, va) = (median(vbefore), median(vafter));
        println!(
            "{:>10} {:>7} {:>11.2} {:>11.2} {:>11.2} {:>13.2} {:>12.2}",
            format!("{statistic:?}").to_lowercase(),
            digits.len(),
            b,
            a1,
            a2,
            vb,
            va
        );
        let name = format!("{statistic:?}").to_lowercase();
        line.push(format!(
            "{name}_before_ms={b:.2} {name}_after_1t_ms={a1:.2} {name}_after_2t_ms={a2:.2} {name}_verify_range_before_ms={vb:.2} {name}_verify_range_after_ms={va:.2}"
        ));
    }
    let (vs, vp) = verify_many(&net, runs, &mut rng)?;
    println!(
        "verify 10 histogram responses on 2 threads, per DP: slices of DPs per thread then the \
         well-formedness batch (before) {vs:.2} ms, one pool of jobs (after, full verdict) {vp:.2} ms"
    );
    line.push(format!(
        "verify10_per_dp_slices_ms={vs:.2} verify10_per_dp_pool_ms={vp:.2}"
    ));
    println!("runs={runs} {}", line.join(" "));
    Ok(())
}

/// A verifying node over 10 DPs' histogram responses on 2 threads, per DP: the former scheduling
/// (each thread a contiguous slice of DPs, `verify_range` per DP, then the well-formedness batch
/// on one thread; the rest of the verdict not timed) against `verify::verify` (one pool of jobs,
/// the whole verdict timed), interleaved.
fn verify_many(
    net: &Network,
    runs: usize,
    rng: &mut rand::rngs::ThreadRng,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let edges = Metric::Rr.default_edges();
    let dps: Vec<u32> = (1..=10).collect();
    let query = Query {
        nonce: 2,
        querier: G,
        key_id: net.key.id(),
        metric: Metric::Rr,
        statistic: Statistic::Histogram,
        from_s: 0,
        to_s: 1,
        cohort: vec![],
        dps: dps.clone(),
        edges: edges.clone(),
    };
    let mut answer = PlainAnswer::default();
    for v in 300..1500u64 {
        answer.add_value(v, 250, &edges);
    }
    let answers: Vec<(u32, PlainAnswer)> = dps.iter().map(|&d| (d, answer.clone())).collect();
    let responses = net.respond(&query, &answers, rng)?;
    let aggregates = net.aggregate(&query, &responses)?;
    let shares = net.key_switch(&query, &aggregates, rng);
    let bits = query.digit_bits();
    let key_id = net.key.id();
    let ev = vigil_privstats::verify::Evidence {
        query: &query,
        key: &net.key,
        responses: &responses,
        aggregates: &aggregates,
        shares: &shares,
    };
    let (mut slices, mut pool) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let start = Instant::now();
        let refs: Vec<&DpResponse> = responses.iter().collect();
        let ok: Vec<bool> = std::thread::scope(|scope| {
            let handles: Vec<_> = refs
                .chunks(refs.len().div_ceil(2))
                .map(|part| {
                    let bits = &bits;
                    scope.spawn(move || {
                        part.iter()
                            .map(|r| r.verify_range(&net.key, bits))
                            .collect::<Vec<bool>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let items: Vec<(&WellFormedProof, Vec<u8>, &[Ciphertext])> = responses
            .iter()
            .map(|r| (&r.wellformed, r.context(&key_id), r.ciphertexts.as_slice()))
            .collect();
        let wf = WellFormedProof::verify_batch(&net.key.key, &items);
        slices.push(start.elapsed());
        if !ok.iter().chain(&wf).all(|b| *b) {
            return Err("slices: a proof does not verify".into());
        }
        let start = Instant::now();
        let verdict = vigil_privstats::verify::verify(&ev, 1, 2);
        pool.push(start.elapsed());
        if !verdict.all_good() {
            return Err("pool: verdict not all good".into());
        }
    }
    Ok((median(slices) / 10.0, median(pool) / 10.0))
}
