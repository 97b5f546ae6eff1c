//! End-to-end protocol tests: exactness against plaintext, cheating caught, threshold.

use proptest::prelude::*;
use vigil_privstats::dp::{DpResponse, PlainAnswer};
use vigil_privstats::elgamal::{Ciphertext, KeyPair};
use vigil_privstats::encoding::Canonical;
use vigil_privstats::keys::{DkgParams, EncryptionKeyPair, KeyGenReceiver, deal};
use vigil_privstats::network::Network;
use vigil_privstats::querier::{Aggregates, DecryptionTable, Querier, StatResult};
use vigil_privstats::query::{DpId, Metric, Query, Statistic};
use vigil_privstats::verify::{Check, Verdict};
use vigil_privstats::{Error, ServerId};

fn rng() -> rand::rngs::ThreadRng {
    rand::thread_rng()
}

fn querier() -> Querier {
    // 2^12 · 2^9 = 2^21: enough for the small test data.
    Querier::new(KeyPair::generate(&mut rng()), DecryptionTable::new(12, 9))
}

fn query(
    net: &Network,
    q: &Querier,
    statistic: Statistic,
    dps: Vec<DpId>,
    edges: Vec<u32>,
) -> Query {
    Query {
        nonce: 7,
        querier: q.keypair.public,
        key_id: net.key.id(),
        metric: Metric::Rr,
        statistic,
        from_s: 0,
        to_s: 86_400,
        cohort: vec![],
        dps,
        edges,
    }
}

fn answers(values: &[Vec<u16>], edges: &[u32]) -> Vec<(DpId, PlainAnswer)> {
    values
        .iter()
        .enumerate()
        .map(|(i, vs)| {
            let mut a = PlainAnswer {
                bins: vec![0; edges.len().saturating_sub(1)],
                ..Default::default()
            };
            for v in vs {
                a.add_value(u64::from(*v), 1, edges);
            }
            (i as DpId + 1, a)
        })
        .collect()
}

struct Run {
    responses: Vec<DpResponse>,
    aggregates: Vec<vigil_privstats::server::ServerAggregate>,
    shares: Vec<vigil_privstats::server::KeySwitchShare>,
}

fn run(net: &Network, q: &Query, a: &[(DpId, PlainAnswer)]) -> Run {
    let mut r = rng();
    let responses = net.respond(q, a, &mut r).expect("respond");
    let aggregates = net.aggregate(q, &responses).expect("aggregate");
    let shares = net.key_switch(q, &aggregates, &mut r);
    Run {
        responses,
        aggregates,
        shares,
    }
}

fn verdicts(net: &Network, q: &Query, run: &Run) -> Vec<Verdict> {
    net.verify(q, &run.responses, &run.aggregates, &run.shares)
}

fn failures(v: &[Verdict]) -> Vec<Check> {
    v[0].failures()
}

fn plain(values: &[Vec<u16>], edges: &[u32]) -> Aggregates {
    let all: Vec<u128> = values.iter().flatten().map(|v| u128::from(*v)).collect();
    let bins = edges
        .windows(2)
        .map(|w| {
            all.iter()
                .filter(|&&v| v >= u128::from(w[0]) && v < u128::from(w[1]))
                .count() as u128
        })
        .collect();
    Aggregates {
        count: all.len() as u128,
        sum: all.iter().sum(),
        sumsq: all.iter().map(|v| v * v).sum(),
        bins: if edges.is_empty() { vec![] } else { bins },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// Every statistic equals the plaintext computation exactly.
    #[test]
    fn results_equal_plaintext(
        values in prop::collection::vec(prop::collection::vec(200u16..2500, 0..40), 1..4),
    ) {
        let mut r = rng();
        let net = Network::new(2, 3, 1, &mut r).expect("network");
        let q = querier();
        let edges: Vec<u32> = vec![0, 400, 600, 800, 1000, 1500, 4096];
        // Every statistic on every generated data set: each of the 9 runs in every case.
        for stat in 0usize..9 {
            let statistic = [Statistic::Count, Statistic::Sum, Statistic::Mean, Statistic::Variance, Statistic::StdDev,
                Statistic::Histogram, Statistic::Quantile(500), Statistic::Min, Statistic::Max][stat];
            let needs_bins = stat >= 5;
            let e = if needs_bins { edges.clone() } else { vec![] };
            let dps = (1..=values.len() as DpId).collect();
            let query = query(&net, &q, statistic, dps, e.clone());
            let a = answers(&values, &e);
            let run = run(&net, &query, &a);
            let v = verdicts(&net, &query, &run);
            let (agg, stat) = q.result(&query, &net.key, &run.aggregates, &run.shares, &v, 1).expect("accepted");
            let p = plain(&values, &e);
            prop_assert_eq!(agg.count, p.count);
            match statistic {
                Statistic::Count => {}
                Statistic::Sum | Statistic::Mean => prop_assert_eq!(agg.sum, p.sum),
                Statistic::Variance | Statistic::StdDev => {
                    prop_assert_eq!((agg.sum, agg.sumsq), (p.sum, p.sumsq));
                }
                _ => prop_assert_eq!(&agg.bins, &p.bins),
            }
            let all: Vec<u32> = values.iter().flatten().map(|v| u32::from(*v)).collect();
            match stat {
                StatResult::Mean { sum, count, .. } => prop_assert_eq!((sum, count), (p.sum, p.count)),
                StatResult::Variance { numerator, .. } => prop_assert_eq!(numerator, p.count * p.sumsq - p.sum * p.sum),
                StatResult::Min(bin) => {
                    let m = all.iter().min();
                    prop_assert_eq!(bin.is_some(), m.is_some());
                    if let (Some((lo, hi)), Some(m)) = (bin, m) { prop_assert!(lo <= *m && *m < hi); }
                }
                StatResult::Max(bin) => {
                    if let (Some((lo, hi)), Some(m)) = (bin, all.iter().max()) { prop_assert!(lo <= *m && *m < hi); }
                }
                StatResult::Quantile { bin, .. } => {
                    let mut s = all.clone();
                    s.sort_unstable();
                    if let Some((lo, hi)) = bin {
                        let median = s[s.len().div_ceil(2) - 1];
                        prop_assert!(lo <= median && median < hi, "median {} not in [{}, {})", median, lo, hi);
                    } else {
                        prop_assert!(s.is_empty());
                    }
                }
                _ => {}
            }
        }
    }
}

fn setup(statistic: Statistic) -> (Network, Querier, Query, Vec<(DpId, PlainAnswer)>) {
    let net = Network::new(2, 3, 2, &mut rng()).expect("network");
    let q = querier();
    let values = vec![
        vec![700, 800, 900],
        vec![600, 1200],
        vec![1000],
        vec![850, 860],
    ];
    let query = query(&net, &q, statistic, vec![1, 2, 3, 4], vec![]);
    let a = answers(&values, &[]);
    (net, q, query, a)
}

#[test]
fn honest_run_is_accepted_by_all_verifiers() {
    let (net, q, query, a) = setup(Statistic::Variance);
    let run = run(&net, &query, &a);
    let v = verdicts(&net, &query, &run);
    assert!(v.iter().all(Verdict::all_good));
    let (agg, _) = q
        .result(&query, &net.key, &run.aggregates, &run.shares, &v, 2)
        .expect("accepted");
    assert_eq!((agg.count, agg.sum), (8, 6910));
    // Verdicts round-trip through their canonical encoding.
    assert_eq!(Verdict::from_bytes(&v[0].to_bytes()).expect("decode"), v[0]);
}

#[test]
fn dp_encrypting_out_of_range_value_is_caught() {
    let (net, q, query, a) = setup(Statistic::Mean);
    let mut run = run(&net, &query, &a);
    // DP 2 claims a count digit of 2^16 + 5 (what a DP would do to inflate its weight).
    let mut digits = a[1].1.digits(&query).expect("digits");
    digits[0] = (1 << 16) + 5;
    let bad = DpResponse::encrypt_digits(
        &query,
        &net.key,
        2,
        run.responses[1].server,
        &digits,
        1,
        &mut rng(),
    );
    // Bulletproofs may refuse to prove it at all; if it proves, the proof must not verify.
    if let Ok(bad) = bad {
        run.responses[1] = bad;
        run.aggregates = net.aggregate(&query, &run.responses).expect("aggregate");
        run.shares = net.key_switch(&query, &run.aggregates, &mut rng());
        let v = verdicts(&net, &query, &run);
        assert_eq!(failures(&v), vec![Check::Range(2)]);
        let err = q
            .result(&query, &net.key, &run.aggregates, &run.shares, &v, 1)
            .expect_err("rejected");
        assert!(err.to_string().contains("range proof of DP 2"), "{err}");
    }
    // An honest DP refuses outright.
    let mut huge = PlainAnswer::default();
    huge.add_value(4000, 600_000, &[]);
    assert!(matches!(
        DpResponse::create(&query, &net.key, 1, 1, &huge, &mut rng()),
        Err(Error::OutOfRange(_))
    ));
}

#[test]
fn malformed_ciphertext_is_caught() {
    let (net, q, query, a) = setup(Statistic::Mean);
    let mut run = run(&net, &query, &a);
    // DP 3 replaces K of one ciphertext: C still commits to an in-range value (the range proof
    // passes) but the ciphertext no longer decrypts to it.
    let r = &mut run.responses[2];
    r.ciphertexts[1].k += curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
    run.aggregates = net.aggregate(&query, &run.responses).expect("aggregate");
    run.shares = net.key_switch(&query, &run.aggregates, &mut rng());
    let v = verdicts(&net, &query, &run);
    assert_eq!(failures(&v), vec![Check::WellFormed(3)]);
    assert!(
        q.result(&query, &net.key, &run.aggregates, &run.shares, &v, 1)
            .is_err()
    );
}

#[test]
fn server_dropping_a_dp_is_caught() {
    let (net, q, query, a) = setup(Statistic::Mean);
    let mut run = run(&net, &query, &a);
    let victim = run.responses[0].clone();
    let s = victim.server;
    let agg = run
        .aggregates
        .iter_mut()
        .find(|x| x.server == s)
        .expect("server aggregate");
    let kept: Vec<&DpResponse> = run
        .responses
        .iter()
        .filter(|r| r.server == s && r.dp != victim.dp)
        .collect();
    *agg = net.servers[s as usize - 1]
        .aggregate(&query, &kept)
        .expect("aggregate");
    run.shares = net.key_switch(&query, &run.aggregates, &mut rng());
    let v = verdicts(&net, &query, &run);
    assert_eq!(failures(&v), vec![Check::Aggregate(s)]);
    assert!(
        q.result(&query, &net.key, &run.aggregates, &run.shares, &v, 1)
            .is_err()
    );
}

#[test]
fn server_altering_a_ciphertext_is_caught() {
    let (net, q, query, a) = setup(Statistic::Mean);
    let mut run = run(&net, &query, &a);
    // Server adds an encryption of 1,000 to the sum digit (and key-switches its altered total).
    let x = net.key.key;
    run.aggregates[0].sum[2] += Ciphertext::encrypt(&x, 1000, &mut rng()).0;
    run.shares = net.key_switch(&query, &run.aggregates, &mut rng());
    let s = run.aggregates[0].server;
    let v = verdicts(&net, &query, &run);
    assert_eq!(failures(&v), vec![Check::Aggregate(s)]);
    assert!(
        q.result(&query, &net.key, &run.aggregates, &run.shares, &v, 1)
            .is_err()
    );
}

#[test]
fn wrong_key_switch_share_is_caught() {
    let (net, q, query, a) = setup(Statistic::Mean);
    let mut run = run(&net, &query, &a);
    run.shares[1].share[0].c += curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
    let bad = run.shares[1].server;
    let v = verdicts(&net, &query, &run);
    assert_eq!(failures(&v), vec![Check::KeySwitch(bad)]);
    let err = q
        .result(&query, &net.key, &run.aggregates, &run.shares, &v, 1)
        .expect_err("rejected");
    assert!(
        err.to_string()
            .contains(&format!("key-switch proof of server {bad}")),
        "{err}"
    );
}

#[test]
fn one_of_three_servers_offline_still_correct() {
    for down in 1..=3 as ServerId {
        let (mut net, q, query, a) = setup(Statistic::Variance);
        net.offline = vec![down];
        let run = run(&net, &query, &a);
        assert_eq!(run.shares.len(), 2);
        assert!(run.responses.iter().all(|r| r.server != down));
        let v = verdicts(&net, &query, &run);
        let (agg, _) = q
            .result(&query, &net.key, &run.aggregates, &run.shares, &v, 2)
            .expect("accepted");
        assert_eq!((agg.count, agg.sum, agg.sumsq), (8, 6910, 6_202_100));
    }
}

#[test]
fn two_of_three_servers_offline_is_below_threshold() {
    let (mut net, q, query, a) = setup(Statistic::Mean);
    net.offline = vec![1, 3];
    let run = run(&net, &query, &a);
    let v = verdicts(&net, &query, &run);
    assert_eq!(failures(&v), vec![Check::Threshold]);
    assert!(
        q.result(&query, &net.key, &run.aggregates, &run.shares, &v, 1)
            .is_err()
    );
    assert!(matches!(
        q.decrypt(&query, &net.key, &run.aggregates, &run.shares),
        Err(Error::BelowThreshold { .. })
    ));
}

#[test]
fn replayed_response_for_another_query_is_caught() {
    let (net, _q, query, a) = setup(Statistic::Mean);
    let other = Query {
        nonce: 8,
        ..query.clone()
    };
    let mut run = run(&net, &query, &a);
    let mut replay = net.respond(&other, &a[..1], &mut rng()).expect("respond");
    replay[0].query_id = query.id();
    run.responses[0] = replay.remove(0);
    run.aggregates = net.aggregate(&query, &run.responses).expect("aggregate");
    run.shares = net.key_switch(&query, &run.aggregates, &mut rng());
    let v = verdicts(&net, &query, &run);
    let f = failures(&v);
    assert!(
        f.contains(&Check::Range(1)) && f.contains(&Check::WellFormed(1)),
        "{f:?}"
    );
}

#[test]
fn beyond_table_is_an_error_never_zero() {
    let t = DecryptionTable::new(4, 2);
    let g = curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
    let p = |m: u64| curve25519_dalek::scalar::Scalar::from(m) * g;
    assert_eq!(
        t.decrypt_batch(&[p(0), p(1), p(63), p(17)])
            .expect("in range"),
        vec![0, 1, 63, 17]
    );
    assert!(matches!(
        t.decrypt_batch(&[p(5), p(64)]),
        Err(Error::Undecryptable {
            index: 1,
            bound: 64
        })
    ));
}

#[test]
fn dkg_shares_travel_encrypted_tampering_is_refused_and_reveal_resolves() {
    let mut r = rng();
    let enc: Vec<EncryptionKeyPair> = (0..3)
        .map(|_| EncryptionKeyPair::generate(&mut r))
        .collect();
    let params =
        DkgParams::new([9; 32], 2, 3, enc.iter().map(|k| k.public).collect()).expect("params");
    let dealt: Vec<_> = (1..=3)
        .map(|i: ServerId| deal(&params, i, &enc[i as usize - 1], &mut r).expect("deal"))
        .collect();
    // No share appears in clear in what a dealer publishes.
    for (d, clear) in &dealt {
        let bytes = d.to_bytes();
        for s in clear {
            assert!(!bytes.windows(32).any(|w| w == s.value.as_bytes()));
        }
    }
    // A receiver needs its own published key pair.
    assert!(KeyGenReceiver::new(params.clone(), 2, enc[2].clone()).is_err());
    let mut rx = KeyGenReceiver::new(params.clone(), 2, enc[1].clone()).expect("receiver");
    // Altered in transit (ciphertext, ephemeral key or receiver): refused, nothing accepted.
    let mut tampered = dealt[0].0.clone();
    tampered.shares[1].sealed[0] ^= 1;
    assert!(matches!(
        rx.receive(&tampered, &mut r),
        Err(Error::BadDealing(1))
    ));
    let mut tampered = dealt[0].0.clone();
    tampered.shares[1].ephemeral = tampered.shares[2].ephemeral;
    assert!(matches!(
        rx.receive(&tampered, &mut r),
        Err(Error::BadDealing(1))
    ));
    let mut tampered = dealt[0].0.clone();
    tampered.shares.swap(1, 2);
    assert!(matches!(
        rx.receive(&tampered, &mut r),
        Err(Error::BadDealing(1))
    ));
    // The genuine dealings open and pass.
    for (d, _) in &dealt {
        assert!(rx.receive(d, &mut r).expect("ok").is_none());
    }
    // A dealer may still reveal a share publicly; anyone can check it.
    rx.resolve(&dealt[0].0, &dealt[0].1[1])
        .expect("valid reveal");
    let mut wrong = dealt[0].1[1].clone();
    wrong.value += curve25519_dalek::scalar::Scalar::ONE;
    assert!(matches!(
        dealt[0].0.verify_share(&wrong),
        Err(Error::BadShare {
            dealer: 1,
            receiver: 2
        })
    ));
    let qualified: Vec<_> = dealt.iter().map(|(d, _)| d.clone()).collect();
    let key = rx.finish(&qualified).expect("key");
    key.collective.verify().expect("publishable key verifies");
    assert_eq!(
        key.collective.encryption_keys,
        enc.iter().map(|k| k.public).collect::<Vec<_>>()
    );
    let decoded = vigil_privstats::keys::CollectiveKey::from_bytes(&key.collective.to_bytes())
        .expect("decode");
    assert_eq!(decoded, key.collective);
    // A dealing whose proof of knowledge is for another dealer index is rejected.
    let mut stolen = dealt[2].0.clone();
    stolen.dealer = 1;
    assert!(matches!(
        stolen.verify_public(&params),
        Err(Error::BadDealing(1))
    ));
}

#[test]
fn wire_types_round_trip() {
    let (net, _q, query, a) = setup(Statistic::Histogram);
    let _ = a;
    let query = Query {
        edges: vec![300, 600, 900, 4096],
        ..query
    };
    assert_eq!(Query::from_bytes(&query.to_bytes()).expect("decode"), query);
    let a = answers(&[vec![500, 700]], &query.edges);
    let resp = net
        .respond(
            &Query {
                dps: vec![1],
                ..query.clone()
            },
            &a,
            &mut rng(),
        )
        .expect("respond");
    let back = DpResponse::from_bytes(&resp[0].to_bytes()).expect("decode");
    assert_eq!(back.to_bytes(), resp[0].to_bytes());
    assert!(DpResponse::from_bytes(&resp[0].to_bytes()[1..]).is_err());
}

#[test]
fn range_proofs_verified_as_a_pool_of_jobs_fail_per_dp() {
    for threads in [1, 2, 3] {
        let mut net = Network::new(2, 3, 1, &mut rng()).expect("network");
        net.verify_threads = threads;
        let q = querier();
        let edges = vec![300, 500, 700, 900, 1100, 1300, 4096];
        let query = query(&net, &q, Statistic::Histogram, vec![1, 2, 3], edges.clone());
        let values = vec![vec![700, 800, 900], vec![600, 1200], vec![1000, 310]];
        let a = answers(&values, &edges);
        let mut run = run(&net, &query, &a);
        assert!(
            run.responses[0].range_proofs.len() >= 2,
            "several proofs per DP"
        );
        assert!(verdicts(&net, &query, &run)[0].all_good());
        // One proof of DP 1 exchanged with DP 2's: both fail their range check, nothing else.
        let p1 = run.responses[0].range_proofs[1].clone();
        let p2 = run.responses[1].range_proofs[1].clone();
        run.responses[0].range_proofs[1] = p2;
        run.responses[1].range_proofs[1] = p1;
        assert_eq!(
            failures(&verdicts(&net, &query, &run)),
            vec![Check::Range(1), Check::Range(2)]
        );
        // A missing proof fails too.
        let mut run2 = self::run(&net, &query, &a);
        run2.responses[2].range_proofs.pop();
        assert_eq!(
            failures(&verdicts(&net, &query, &run2)),
            vec![Check::Range(3)]
        );
    }
}

/// The well-formedness proof covers all of a response's ciphertexts with one combined
/// statement: altering the K of any single ciphertext, or swapping the K of two, is caught
/// (regression guard for the v2 combined proof, which must not check only the sum of the Ks).
#[test]
fn combined_wellformedness_proof_catches_any_single_bad_ciphertext() {
    let net = Network::new(2, 3, 1, &mut rng()).expect("network");
    let q = querier();
    let edges = vec![0, 600, 800, 1000, 4096];
    let query = query(&net, &q, Statistic::Histogram, vec![1, 2], edges.clone());
    let a = answers(&[vec![700, 900, 1200], vec![650]], &edges);
    let honest = run(&net, &query, &a);
    assert!(honest.responses[0].verify_wellformed(&net.key));
    let n = honest.responses[0].ciphertexts.len();
    for i in [0, n / 2, n - 1] {
        let mut r = honest.responses[0].clone();
        r.ciphertexts[i].k += curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
        assert!(
            !r.verify_wellformed(&net.key),
            "altered K of ciphertext {i}"
        );
    }
    let mut r = honest.responses[0].clone();
    let (k0, k1) = (r.ciphertexts[0].k, r.ciphertexts[1].k);
    r.ciphertexts[0].k = k1;
    r.ciphertexts[1].k = k0;
    assert!(!r.verify_wellformed(&net.key), "swapped Ks");
    // Moving G from one K to another keeps the plain sum of the Ks: still caught.
    let mut r = honest.responses[0].clone();
    r.ciphertexts[0].k += curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
    r.ciphertexts[1].k -= curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
    assert!(!r.verify_wellformed(&net.key), "balanced change of two Ks");
    // A proof does not transfer to another DP's ciphertexts.
    let mut r = honest.responses[0].clone();
    r.wellformed = honest.responses[1].wellformed.clone();
    assert!(!r.verify_wellformed(&net.key));
}

/// A histogram whose edges span the metric's range sends only its bins (the count is their sum);
/// with edges that leave values outside, the count is encrypted and "outside" is exact.
#[test]
fn histogram_count_is_derived_only_when_the_bins_cover_the_range() {
    let net = Network::new(2, 3, 1, &mut rng()).expect("network");
    let q = querier();
    let values = vec![vec![250, 700, 900, 1200, 3000], vec![650, 2500]];
    for (edges, count_sent) in [
        (vec![0, 600, 800, 1000, 4096], false),
        (vec![500, 800, 1000, 2000], true),
    ] {
        let query = query(&net, &q, Statistic::Histogram, vec![1, 2], edges.clone());
        assert_eq!(query.count_from_bins(), !count_sent);
        let bins = edges.len() - 1;
        assert_eq!(query.digits(), 2 * (bins + usize::from(count_sent)));
        let a = answers(&values, &edges);
        let run = run(&net, &query, &a);
        let v = verdicts(&net, &query, &run);
        let (agg, stat) = q
            .result(&query, &net.key, &run.aggregates, &run.shares, &v, 1)
            .expect("accepted");
        assert_eq!(agg.count, 7);
        let p = plain(&values, &edges);
        assert_eq!(agg.bins, p.bins);
        let StatResult::Histogram { outside, .. } = stat else {
            panic!("not a histogram: {stat:?}");
        };
        assert_eq!(outside, if count_sent { 3 } else { 0 });
    }
}

/// A DP may claim, within its proven bounds, a count below the sum of its bins, or a sum whose
/// square exceeds count · sumsq (the proofs bound each field, not the relations between them):
/// the querier's statistic saturates instead of overflowing (no panic, no wrapped huge value).
/// One DP answering `query` with exactly these digits, through aggregation, key switching,
/// verification and the querier's decision.
fn answer_one(
    net: &Network,
    q: &Querier,
    query: &Query,
    digits: &[u64],
) -> (Aggregates, StatResult) {
    let r = DpResponse::encrypt_digits(
        query,
        &net.key,
        1,
        net.route(1).expect("route"),
        digits,
        1,
        &mut rng(),
    )
    .expect("encrypt");
    let aggregates = net
        .aggregate(query, std::slice::from_ref(&r))
        .expect("aggregate");
    let shares = net.key_switch(query, &aggregates, &mut rng());
    let v = net.verify(query, std::slice::from_ref(&r), &aggregates, &shares);
    q.result(query, &net.key, &aggregates, &shares, &v, 1)
        .expect("in range, so accepted")
}

#[test]
fn inconsistent_fields_within_bounds_do_not_overflow_the_statistic() {
    let net = Network::new(2, 3, 1, &mut rng()).expect("network");
    let q = querier();
    // Partial edges: the count is sent. Digits: count (2), then 2 bins (2 each).
    let edges = vec![500, 800, 1000];
    let query = query(&net, &q, Statistic::Histogram, vec![1], edges);
    let (agg, stat) = answer_one(&net, &q, &query, &[0, 0, 7, 0, 9, 0]);
    assert_eq!((agg.count, agg.bins.clone()), (0, vec![7, 9]));
    assert!(matches!(stat, StatResult::Histogram { outside: 0, .. }));

    // Variance: count 1, sum 100, sumsq 0.
    let query = query_variance(&net, &q);
    let (_, stat) = answer_one(&net, &q, &query, &[1, 0, 100, 0, 0, 0, 0]);
    assert!(
        matches!(stat, StatResult::Variance { numerator: 0, .. }),
        "{stat:?}"
    );
}

fn query_variance(net: &Network, q: &Querier) -> Query {
    query(net, q, Statistic::Variance, vec![1], vec![])
}

/// The top digits of a full-range histogram share one Bulletproof padded with public zeros
/// (range_layout): a top digit out of [0, 2^8) still fails it, and so does a proof moved to a
/// response whose padding layout differs.
#[test]
fn padded_top_digit_proof_catches_an_out_of_range_top_digit() {
    use vigil_privstats::dp::{PAD, range_layout};
    let net = Network::new(2, 3, 1, &mut rng()).expect("network");
    let q = querier();
    let edges = Metric::Rr.default_edges();
    let query = query(&net, &q, Statistic::Histogram, vec![1], edges);
    let bits = query.digit_bits();
    let layout = range_layout(&bits);
    assert!(
        layout
            .iter()
            .any(|(b, part)| *b == 8 && part.contains(&PAD)),
        "{layout:?}"
    );
    let mut digits = vec![3u64; query.digits()];
    let honest = DpResponse::encrypt_digits(&query, &net.key, 1, 2, &digits, 2, &mut rng())
        .expect("encrypt");
    assert!(honest.verify_range(&net.key, &bits));
    // The last digit is a top digit (8 bits): 256 is out of its range.
    let last = digits.len() - 1;
    assert_eq!(bits[last], 8);
    digits[last] = 256;
    match DpResponse::encrypt_digits(&query, &net.key, 1, 2, &digits, 2, &mut rng()) {
        Ok(r) => assert!(!r.verify_range(&net.key, &bits)),
        Err(e) => assert!(matches!(e, Error::OutOfRange(_)), "{e}"),
    }
}
