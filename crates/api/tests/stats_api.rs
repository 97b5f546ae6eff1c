//! The doctors' private-statistics API against a node on four validators: a query is a ledger
//! transaction, its status is pending until the verifying nodes' verdicts are finalized, then the
//! verified result; only doctors may ask, and only the asking doctor reads the result.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, http};
use commonware_runtime::{Runner as _, Supervisor as _, tokio as cw_tokio};
use serde_json::{Value, json};
use vigil_ledger::local::{LocalConfig, start_local};
use vigil_ledger::signer::Signer;
use vigil_ledger::sim::Keys;
use vigil_ledger::tx::{Role, TxBody};
use vigil_node::users::{Principal, Users};
use vigil_node::{MqttMode, NodeConfig};
use vigil_stats_service::ledger::StatsService;

/// A query's wall-clock bound.
const QUERY_WAIT: Duration = Duration::from_secs(90);

#[test]
fn doctor_queries_are_on_the_ledger_and_answered_only_after_verdicts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = cw_tokio::Config::new().with_storage_directory(dir.path().join("ledger"));
    let data_dir = dir.path().join("node");
    cw_tokio::Runner::new(runtime).start(|context| async move {
        let cluster = start_local(context.child("ledger"), LocalConfig::new(Keys::new(4, 1))).await;
        let doctor = std::sync::Arc::new(Signer::new(commonware_cryptography::Signer::from_seed(
            4040,
        )));
        let other_doctor = std::sync::Arc::new(Signer::new(
            commonware_cryptography::Signer::from_seed(4041),
        ));
        let admin = std::sync::Arc::new(Signer::new(cluster.keys.admin.clone()));
        let mut users = Users::default();
        let staff = |name: &str, signer| Principal::Staff {
            name: name.into(),
            signer,
        };
        users.insert("doc", staff("doctor", doctor.clone()));
        users.insert("doc2", staff("doctor 2", other_doctor.clone()));
        users.insert(
            "op",
            staff(
                "operator",
                Signer::new(cluster.keys.operator.clone()).into(),
            ),
        );
        let config = NodeConfig {
            data_dir,
            mqtt: MqttMode::Embedded(free_port()),
            ehr_master_key: vigil_ehr::SecretKey::random(),
            gateway: Signer::new(cluster.keys.gateways[0].clone()),
            users,
            future_skew: vigil_node::FUTURE_SKEW_DEFAULT,
            map_tiles: None,
            notify: None,
        };
        let (node, api) = vigil_api::start(cluster.ledgers[0].clone(), config, common::LOOPBACK)
            .await
            .expect("node starts");

        // Before the doctor role is granted: refused.
        assert_eq!(
            http(api, "GET", "/api/queries", Some("doc"), None).await.0,
            403
        );
        for d in [&doctor, &other_doctor] {
            admin
                .submit(
                    node.ledger(),
                    TxBody::GrantRole {
                        identity: d.public().clone(),
                        role: Role::Doctor,
                    },
                )
                .expect("grant");
        }
        vigil_node::stats::start_demo_stats(&node, admin.clone(), 3, 2_000)
            .await
            .expect("stats start");
        let ledger = node.ledger().clone();
        // Nonces do not chain: the grants may be finalized after the statistics setup's later
        // transactions, so the test waits for them as a client would.
        for d in [&doctor, &other_doctor] {
            StatsService::wait_for_role(&ledger, d.public(), Role::Doctor, 400)
                .await
                .expect("the doctor's role is finalized");
        }

        // Only doctors.
        let body = json!({"stat": "mean", "metric": "rr"});
        assert_eq!(
            http(api, "POST", "/api/queries", Some("op"), Some(body.clone()))
                .await
                .0,
            403
        );
        assert_eq!(
            http(api, "POST", "/api/queries", None, Some(body.clone()))
                .await
                .0,
            401
        );
        // Bad requests name their reason.
        let (status, reply) = http(
            api,
            "POST",
            "/api/queries",
            Some("doc"),
            Some(json!({"stat": "modal", "metric": "rr"})),
        )
        .await;
        assert_eq!(status, 400, "{reply}");
        let (status, _) = http(
            api,
            "POST",
            "/api/queries",
            Some("doc"),
            Some(json!({"stat": "mean", "metric": "rr", "dps": [99]})),
        )
        .await;
        assert_eq!(status, 400);

        for (body, stat) in [
            (json!({"stat": "mean", "metric": "rr"}), "mean"),
            (
                json!({"stat": "histogram", "metric": "hr", "bins": [0, 60, 80, 100, 256]}),
                "histogram",
            ),
        ] {
            let (status, submitted) =
                http(api, "POST", "/api/queries", Some("doc"), Some(body)).await;
            assert_eq!(status, 202, "{submitted}");
            assert_eq!(submitted["status"], "pending");
            assert_eq!(submitted["stat"], stat);
            let id = submitted["id"].as_str().expect("id").to_owned();
            let path = format!("/api/queries/{id}");
            // Another doctor may not read it.
            assert_eq!(http(api, "GET", &path, Some("doc2"), None).await.0, 403);
            let deadline = Instant::now() + QUERY_WAIT;
            let done: Value = loop {
                let (status, reply) = http(api, "GET", &path, Some("doc"), None).await;
                assert_eq!(status, 200, "{reply}");
                if reply["status"] != "pending" {
                    break reply;
                }
                assert!(Instant::now() < deadline, "query still pending: {reply}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            assert_eq!(done["status"], "accepted", "{done}");
            assert_eq!(done["verdicts"], 2, "{done}");
            assert_eq!(done["result"]["count"], 6_000, "{done}");
            if stat == "mean" {
                let value = done["result"]["value"].as_f64().expect("mean");
                assert!((300.0..2000.0).contains(&value), "{done}");
            } else {
                let bins: u64 = done["result"]["value"]
                    .as_array()
                    .expect("bins")
                    .iter()
                    .filter_map(Value::as_u64)
                    .sum();
                assert_eq!(
                    bins + done["result"]["outside"].as_u64().expect("outside"),
                    6_000,
                    "{done}"
                );
            }
            // The query and its verdicts are finalized ledger records, by this doctor.
            let mut raw = [0u8; 32];
            hex::decode_to_slice(&id, &mut raw).expect("hex id");
            let record = ledger
                .snapshot()
                .query(&vigil_ledger::tx::TxId(raw))
                .cloned()
                .expect("query recorded");
            assert_eq!(&record.querier, doctor.public());
            assert_eq!((record.verdicts, record.valid_verdicts), (2, 2));
        }
        let (status, listing) = http(api, "GET", "/api/queries", Some("doc"), None).await;
        assert_eq!(status, 200);
        assert_eq!(listing["dps"], json!([1, 2, 3]));
        assert_eq!(
            listing["queries"].as_array().map(Vec::len),
            Some(2),
            "{listing}"
        );
        let (_, others) = http(api, "GET", "/api/queries", Some("doc2"), None).await;
        assert_eq!(others["queries"].as_array().map(Vec::len), Some(0));
        assert_eq!(
            http(api, "GET", "/api/queries/zz", Some("doc"), None)
                .await
                .0,
            400
        );
        cluster.shutdown();
    });
}

/// A node restarted on the same ledger and statistics store (`start_demo_stats_stored`) still
/// shows a doctor's decided query, with its result, to that doctor only: the service brings the
/// query back from SQLite and the node finds its owner in the ledger's record.
#[test]
fn a_restarted_node_still_shows_a_doctors_result() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = cw_tokio::Config::new().with_storage_directory(dir.path().join("ledger"));
    let store = dir.path().join("stats.sqlite");
    let root = dir.path().to_path_buf();
    cw_tokio::Runner::new(runtime).start(|context| async move {
        let cluster = start_local(context.child("ledger"), LocalConfig::new(Keys::new(4, 2))).await;
        let doctor = || {
            std::sync::Arc::new(Signer::new(commonware_cryptography::Signer::from_seed(
                4040,
            )))
        };
        let other = || {
            std::sync::Arc::new(Signer::new(commonware_cryptography::Signer::from_seed(
                4041,
            )))
        };
        let admin = std::sync::Arc::new(Signer::new(cluster.keys.admin.clone()));
        let config = |name: &str, gateway: usize| {
            let mut users = Users::default();
            let staff = |name: &str, signer| Principal::Staff {
                name: name.into(),
                signer,
            };
            users.insert("doc", staff("doctor", doctor()));
            users.insert("doc2", staff("doctor 2", other()));
            NodeConfig {
                data_dir: root.join(name),
                mqtt: MqttMode::Embedded(free_port()),
                ehr_master_key: vigil_ehr::SecretKey::random(),
                gateway: Signer::new(cluster.keys.gateways[gateway].clone()),
                users,
                future_skew: vigil_node::FUTURE_SKEW_DEFAULT,
                map_tiles: None,
                notify: None,
            }
        };
        // The first node runs on a tokio runtime of its own, so that the restart stops it for
        // real: shutting that runtime down ends its HTTP server, its ledger follower and its
        // statistics service before the second node starts.
        let first_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("the first node's runtime");
        let (ledger, first_config) = (cluster.ledgers[0].clone(), config("first", 0));
        let (first, api) = first_runtime
            .spawn(async move { vigil_api::start(ledger, first_config, common::LOOPBACK).await })
            .await
            .expect("join")
            .expect("node starts");
        for d in [doctor(), other()] {
            admin
                .submit(
                    first.ledger(),
                    TxBody::GrantRole {
                        identity: d.public().clone(),
                        role: Role::Doctor,
                    },
                )
                .expect("grant");
        }
        for d in [doctor(), other()] {
            StatsService::wait_for_role(first.ledger(), d.public(), Role::Doctor, 400)
                .await
                .expect("the doctor's role is finalized");
        }
        let (node, stats_admin, first_store) = (first.clone(), admin.clone(), store.clone());
        first_runtime
            .spawn(async move {
                vigil_node::stats::start_demo_stats_stored(
                    &node,
                    stats_admin,
                    3,
                    2_000,
                    Some(first_store),
                )
                .await
            })
            .await
            .expect("join")
            .expect("stats start");
        let body = json!({"stat": "variance", "metric": "hr"});
        let (status, submitted) = http(api, "POST", "/api/queries", Some("doc"), Some(body)).await;
        assert_eq!(status, 202, "{submitted}");
        let path = format!("/api/queries/{}", submitted["id"].as_str().expect("id"));
        let deadline = Instant::now() + QUERY_WAIT;
        let done: Value = loop {
            let (_, reply) = http(api, "GET", &path, Some("doc"), None).await;
            if reply["status"] != "pending" {
                break reply;
            }
            assert!(Instant::now() < deadline, "query still pending: {reply}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(done["status"], "accepted", "{done}");

        // The restart: the first node stops (its runtime is shut down and its API no longer
        // answers), then a new node with its own data directory and memory starts on the same
        // ledger and statistics store.
        drop(first);
        first_runtime.shutdown_background();
        let stopped_by = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(api).await.is_ok() {
            assert!(Instant::now() < stopped_by, "the first node still answers");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (second, api2) = vigil_api::start(
            cluster.ledgers[0].clone(),
            config("second", 1),
            common::LOOPBACK,
        )
        .await
        .expect("node restarts");
        vigil_node::stats::start_demo_stats_stored(&second, admin.clone(), 3, 2_000, Some(store))
            .await
            .expect("stats restart");
        let (status, again) = http(api2, "GET", &path, Some("doc"), None).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again, done, "the result survives the restart");
        assert_eq!(http(api2, "GET", &path, Some("doc2"), None).await.0, 403);
        let (_, listing) = http(api2, "GET", "/api/queries", Some("doc"), None).await;
        assert_eq!(
            listing["queries"].as_array().map(Vec::len),
            Some(1),
            "{listing}"
        );
        let (_, others) = http(api2, "GET", "/api/queries", Some("doc2"), None).await;
        assert_eq!(others["queries"].as_array().map(Vec::len), Some(0));
        cluster.shutdown();
    });
}
