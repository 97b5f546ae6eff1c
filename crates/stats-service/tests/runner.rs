//! The one-process runner over generated databases: results match the databases' plaintext.

use vigil_privstats::network::Network;
use vigil_privstats::query::{Metric, Statistic};
use vigil_stats_service::runner;

#[test]
fn runner_over_generated_databases_matches_plaintext() {
    let dir = std::env::temp_dir().join(format!("vigil-privstats-runner-{}", std::process::id()));
    let rows = 3_000;
    let mut rng = rand::thread_rng();
    let mut net = Network::new(2, 3, 2, &mut rng).expect("network");
    net.offline = vec![3];
    let (querier, _) = runner::default_querier();
    let dbs: Vec<_> = (1..=3)
        .map(|dp| runner::open_or_generate(&dir, dp, rows).expect("db").0)
        .collect();
    for statistic in [Statistic::Variance, Statistic::Histogram] {
        let q = runner::make_query(&net, &querier, statistic, Metric::Hr, vec![1, 2, 3]);
        let (m, from, to, edges) = (q.metric, q.from_s, q.to_s, q.edges.clone());
        let out = runner::run(
            &net,
            &querier,
            &q,
            &mut |dp| dbs[dp as usize - 1].answer(m, from, to, &[], &edges),
            2,
        )
        .expect("run");
        let plain: Vec<_> = dbs
            .iter()
            .map(|d| d.answer(m, from, to, &[], &edges).expect("answer"))
            .collect();
        assert_eq!(
            out.aggregates.count,
            plain.iter().map(|a| u128::from(a.count)).sum::<u128>()
        );
        assert_eq!(out.aggregates.count, 9_000);
        if statistic == Statistic::Variance {
            assert_eq!(
                out.aggregates.sumsq,
                plain.iter().map(|a| u128::from(a.sumsq)).sum::<u128>()
            );
        } else {
            let bins: Vec<u128> = (0..edges.len() - 1)
                .map(|i| plain.iter().map(|a| u128::from(a.bins[i])).sum())
                .collect();
            assert_eq!(out.aggregates.bins, bins);
        }
        assert!(out.verdicts.iter().all(|v| v.all_good()));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
