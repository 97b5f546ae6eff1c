//! Queries through a real ledger: 4 validators on tokio over loopback (`start_local`). The query
//! is a doctor's transaction, the verdicts are the verifying nodes' transactions, and the
//! querier decides only on finalized verdicts.

use commonware_cryptography::Signer as _;
use commonware_cryptography::ed25519::PrivateKey;
use commonware_runtime::{Runner as _, Supervisor as _, tokio};
use vigil_ledger::local::{LocalConfig, start_local};
use vigil_ledger::node::Ledger;
use vigil_ledger::signer::Signer;
use vigil_ledger::sim::Keys;
use vigil_ledger::tx::{Role, TxBody};
use vigil_privstats::query::{Metric, Query, Statistic};
use vigil_stats_service::db::{GeneratorConfig, generate};
use vigil_stats_service::fault::Fault;
use vigil_stats_service::ledger::{
    Databases, QueryRequest, QueryStatus, StatsConfig, StatsService,
};
use vigil_stats_service::runner::{DATA_SPAN_S, DATA_START_S};

/// Finalized blocks one query may take before the test fails.
const BLOCKS_MAX: u64 = 400;
const ROWS: usize = 2_000;

fn runtime(name: &str) -> (tokio::Runner, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("vigil-privstats-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    (
        tokio::Runner::new(
            tokio::Config::new()
                .with_worker_threads(2)
                .with_storage_directory(&dir),
        ),
        dir,
    )
}

fn request(statistic: Statistic) -> QueryRequest {
    QueryRequest {
        statistic,
        metric: Metric::Rr,
        from_s: DATA_START_S,
        to_s: DATA_START_S + DATA_SPAN_S,
        dps: vec![],
        edges: vec![],
        cohort: vec![],
    }
}

/// The plaintext (count, sum, sumsq) over the `dps` synthetic DPs (as `Databases::synthetic`
/// fills them), computed without the DP code: the generator's rows are regenerated and scanned
/// here, so a bug in a DP's answer (its buckets, its window, its cohort) cannot hide behind a
/// comparison of that answer with itself.
fn plaintext(dps: u32, query: &Query) -> (u128, u128, u128) {
    (1..=dps)
        .filter(|dp| query.dps.is_empty() || query.dps.contains(dp))
        .flat_map(|dp| {
            let config = GeneratorConfig {
                rows: ROWS,
                seed: u64::from(dp),
                prefix: format!("dp{dp}-p"),
                start_s: DATA_START_S,
                ..Default::default()
            };
            generate(&config).collect::<Vec<_>>()
        })
        .filter(|row| row.t >= query.from_s && row.t < query.to_s)
        .filter(|row| query.cohort.is_empty() || query.cohort.contains(&row.patient))
        .map(|row| {
            u128::from(match query.metric {
                Metric::Hr => row.hr,
                Metric::Rr => row.rr,
            })
        })
        .fold((0, 0, 0), |(c, s, q), v| (c + 1, s + v, q + v * v))
}

async fn grant_doctor(ledger: &Ledger, admin: &Signer) -> Signer {
    let doctor = Signer::new(PrivateKey::from_seed(4242));
    admin
        .submit(
            ledger,
            TxBody::GrantRole {
                identity: doctor.public().clone(),
                role: Role::Doctor,
            },
        )
        .expect("grant");
    doctor
}

async fn service(ledger: &Ledger, admin: &Signer, config: StatsConfig, dps: u32) -> StatsService {
    let service = StatsService::setup(
        ledger.clone(),
        admin,
        config,
        Box::new(Databases::synthetic(dps, ROWS).expect("databases")),
    )
    .expect("setup");
    service.wait_ready(admin, BLOCKS_MAX).await.expect("ready");
    service
}

/// An honest query is accepted only after its verdicts are finalized, and equals the plaintext;
/// with one of three servers offline (t = 2) the result is still exact.
#[test]
fn honest_query_is_accepted_after_finalized_verdicts_and_survives_a_server_down() {
    let (runner, dir) = runtime("honest");
    runner.start(|context| async move {
        let cluster = start_local(context.child("ledger"), LocalConfig::new(Keys::new(4, 1))).await;
        let ledger = cluster.ledgers[0].clone();
        let admin = Signer::new(cluster.keys.admin.clone());
        let doctor = grant_doctor(&ledger, &admin).await;
        let stats = service(&ledger, &admin, StatsConfig::demo(2), 3).await;

        for statistic in [Statistic::Variance, Statistic::Histogram] {
            let (id, status) = stats
                .run_query(&doctor, &request(statistic), BLOCKS_MAX)
                .await
                .expect("decided");
            let query = stats.query(&id).expect("tracked");
            let QueryStatus::Accepted {
                aggregates,
                verdicts,
                ..
            } = status
            else {
                panic!("{statistic:?} rejected: {status:?}");
            };
            assert_eq!(verdicts, 2);
            // The decision rests on finalized ledger records: the query (by the doctor) and
            // both verdicts, all valid.
            let record = ledger
                .snapshot()
                .query(&id)
                .cloned()
                .expect("query on the ledger");
            assert_eq!(record.querier, doctor.public().clone());
            assert_eq!((record.verdicts, record.valid_verdicts), (2, 2));
            let (count, sum, sumsq) = plaintext(3, &query);
            assert_eq!(aggregates.count, count);
            assert_eq!(aggregates.count, 3 * ROWS as u128);
            if statistic == Statistic::Variance {
                assert_eq!((aggregates.sum, aggregates.sumsq), (sum, sumsq));
            } else {
                assert_eq!(aggregates.bins.iter().sum::<u128>(), count);
            }
        }

        // One of three servers down: a second deployment (its own key) on the same ledger.
        let mut config = StatsConfig::demo(2);
        config.offline = vec![3];
        let degraded = service(&ledger, &admin, config, 3).await;
        let (id, status) = degraded
            .run_query(&doctor, &request(Statistic::Mean), BLOCKS_MAX)
            .await
            .expect("decided");
        let QueryStatus::Accepted { aggregates, .. } = status else {
            panic!("rejected with a server down: {status:?}");
        };
        let query = degraded.query(&id).expect("tracked");
        let (count, sum, _) = plaintext(3, &query);
        assert_eq!((aggregates.count, aggregates.sum), (count, sum));

        // A query from someone without the doctor role never reaches the ledger.
        let intruder = Signer::new(PrivateKey::from_seed(77));
        assert!(
            stats
                .submit_query(&intruder, &request(Statistic::Mean))
                .is_err()
        );
        cluster.shutdown();
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each way of cheating is caught: the finalized verdicts name the failed proof and the querier
/// rejects the result.
#[test]
fn every_cheat_is_named_by_the_verdicts_and_rejected() {
    let (runner, dir) = runtime("cheats");
    runner.start(|context| async move {
        let cluster = start_local(context.child("ledger"), LocalConfig::new(Keys::new(4, 1))).await;
        let ledger = cluster.ledgers[0].clone();
        let admin = Signer::new(cluster.keys.admin.clone());
        let doctor = grant_doctor(&ledger, &admin).await;
        let stats = service(&ledger, &admin, StatsConfig::demo(2), 3).await;
        // DP d sends to server d mod 3 + 1: DP 1 → server 2.
        let cases = [
            (Fault::DpOutOfRange(2), "range proof of DP 2"),
            (
                Fault::MalformedCiphertext(3),
                "well-formedness proof of DP 3",
            ),
            (Fault::ServerDropsDp(1), "aggregate of server 2"),
            (Fault::ServerAltersDp(1), "aggregate of server 2"),
            (Fault::WrongKeySwitch(3), "key-switch proof of server 3"),
        ];
        for (fault, named) in cases {
            stats.inject(fault.clone());
            let (id, status) = stats
                .run_query(&doctor, &request(Statistic::Mean), BLOCKS_MAX)
                .await
                .expect("decided");
            let QueryStatus::Rejected { reason, failed } = status else {
                panic!("{fault:?} accepted: {status:?}");
            };
            assert!(
                failed.iter().any(|f| f == named),
                "{fault:?}: {reason}; failed {failed:?}"
            );
            // The refusal is on the ledger: finalized verdicts that are not all valid.
            let record = ledger
                .snapshot()
                .query(&id)
                .cloned()
                .expect("query on the ledger");
            assert!(
                record.verdicts >= 1 && record.valid_verdicts == 0,
                "{fault:?}"
            );
        }
        cluster.shutdown();
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// A restart (a new service on the same store and ledger; nothing else survives) keeps the
/// deployment's collective key, a decided query's result, a query still waiting for the ledger
/// to finalize it and a query waiting for its verdicts; both pending ones then finish and equal
/// the plaintext.
#[test]
fn pending_and_decided_queries_survive_a_restart() {
    use vigil_stats_service::ledger::Stage;
    use vigil_stats_service::store::QueryStore;

    let (runner, dir) = runtime("restart");
    let store_path = dir.join("stats.sqlite");
    runner.start(|context| async move {
        let cluster = start_local(context.child("ledger"), LocalConfig::new(Keys::new(4, 1))).await;
        let ledger = cluster.ledgers[0].clone();
        let admin = Signer::new(cluster.keys.admin.clone());
        let doctor = grant_doctor(&ledger, &admin).await;
        let open = || {
            StatsService::setup_with_store(
                ledger.clone(),
                &admin,
                StatsConfig::demo(2),
                Box::new(Databases::synthetic(3, ROWS).expect("databases")),
                Some(QueryStore::open(&store_path).expect("store")),
            )
            .expect("setup")
        };
        let first = open();
        first.wait_ready(&admin, BLOCKS_MAX).await.expect("ready");
        let key_id = first.key().id();
        let (decided, decided_status) = first
            .run_query(&doctor, &request(Statistic::Variance), BLOCKS_MAX)
            .await
            .expect("decided");
        assert!(matches!(decided_status, QueryStatus::Accepted { .. }));

        // One query that reaches the verifying stage (answered, verdicts submitted, not yet
        // finalized), one only submitted.
        let verifying = first
            .submit_query(&doctor, &request(Statistic::Mean))
            .expect("submit");
        let mut blocks = ledger.follow(ledger.snapshot().height() + 1);
        for _ in 0..BLOCKS_MAX {
            blocks.next().await.expect("blocks");
            first.step();
            if matches!(
                first.status(&verifying),
                Some(QueryStatus::Pending {
                    stage: Stage::Verifying,
                    ..
                })
            ) {
                break;
            }
        }
        let submitted = first
            .submit_query(&doctor, &request(Statistic::Histogram))
            .expect("submit");
        assert!(matches!(
            first.status(&verifying),
            Some(QueryStatus::Pending {
                stage: Stage::Verifying,
                ..
            })
        ));
        assert!(first.store_error().is_none());
        drop(first);

        let second = open();
        assert_eq!(
            second.key().id(),
            key_id,
            "the restart kept the collective key"
        );
        assert!(second.ready());
        assert_eq!(second.tracked(), vec![decided, verifying, submitted]);
        assert_eq!(second.status(&decided), Some(decided_status));
        for (id, stat) in [
            (verifying, Statistic::Mean),
            (submitted, Statistic::Histogram),
        ] {
            let mut status = second.status(&id).expect("tracked");
            for _ in 0..BLOCKS_MAX {
                if !matches!(status, QueryStatus::Pending { .. }) {
                    break;
                }
                blocks.next().await.expect("blocks");
                second.step();
                status = second.status(&id).expect("tracked");
            }
            let QueryStatus::Accepted { aggregates, .. } = status else {
                panic!("{stat:?} after the restart: {status:?}");
            };
            let query = second.query(&id).expect("tracked");
            assert_eq!(query.statistic, stat);
            let (count, sum, _) = plaintext(3, &query);
            assert_eq!(aggregates.count, count);
            if stat == Statistic::Mean {
                assert_eq!(aggregates.sum, sum);
            }
        }
        // Decided after the restart, and stored: a third start still has both results.
        let (a, b) = (second.status(&verifying), second.status(&submitted));
        drop(second);
        let third = open();
        assert_eq!((third.status(&verifying), third.status(&submitted)), (a, b));
        cluster.shutdown();
    });
    let _ = std::fs::remove_dir_all(&dir);
}
