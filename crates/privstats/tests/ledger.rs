//! Queries through a real ledger: 4 validators on tokio over loopback (`start_local`). The query
//! is a doctor's transaction, the verdicts are the verifying nodes' transactions, and the
//! querier decides only on finalized verdicts.

use commonware_cryptography::Signer as _;
use commonware_cryptography::ed25519::PrivateKey;
use commonware_runtime::{Runner as _, Supervisor as _, tokio};
use vigil_ledger::local::{LocalConfig, start_local};
use vigil_ledger::node::Ledger;
use vigil_ledger::sim::Keys;
use vigil_ledger::tx::{Role, TxBody};
use vigil_privstats::ledger::{
    DataSource, Databases, Fault, KeySubmitter, QueryRequest, QueryStatus, StatsConfig,
    StatsService, Submitter,
};
use vigil_privstats::query::{Metric, Query, Statistic};
use vigil_privstats::runner::{DATA_SPAN_S, DATA_START_S};

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

/// The plaintext (count, sum, sumsq) over every DP, from the same databases.
fn plaintext(data: &Databases, query: &Query) -> (u128, u128, u128) {
    data.dps().iter().fold((0, 0, 0), |(c, s, q), dp| {
        let a = data.answer(*dp, query).expect("answer");
        (
            c + u128::from(a.count),
            s + u128::from(a.sum),
            q + u128::from(a.sumsq),
        )
    })
}

async fn grant_doctor(ledger: &Ledger, admin: &KeySubmitter) -> KeySubmitter {
    let doctor = KeySubmitter::new(PrivateKey::from_seed(4242));
    admin
        .submit(
            ledger,
            TxBody::GrantRole {
                identity: doctor.identity(),
                role: Role::Doctor,
            },
        )
        .expect("grant");
    doctor
}

async fn service(
    ledger: &Ledger,
    admin: &KeySubmitter,
    config: StatsConfig,
    dps: u32,
) -> StatsService {
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
        let admin = KeySubmitter::new(cluster.keys.admin.clone());
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
                .with_state(|s| s.tables().queries.get(&id).cloned())
                .expect("query on the ledger");
            assert_eq!(record.querier, doctor.identity());
            assert_eq!((record.verdicts, record.valid_verdicts), (2, 2));
            let data = Databases::synthetic(3, ROWS).expect("databases");
            let (count, sum, sumsq) = plaintext(&data, &query);
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
        let data = Databases::synthetic(3, ROWS).expect("databases");
        let (count, sum, _) = plaintext(&data, &query);
        assert_eq!((aggregates.count, aggregates.sum), (count, sum));

        // A query from someone without the doctor role never reaches the ledger.
        let intruder = KeySubmitter::new(PrivateKey::from_seed(77));
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
        let admin = KeySubmitter::new(cluster.keys.admin.clone());
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
                .with_state(|s| s.tables().queries.get(&id).cloned())
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
