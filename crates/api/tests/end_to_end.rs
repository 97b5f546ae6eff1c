//! The monitoring path end to end, on real components: four validators on the tokio runtime
//! over authenticated p2p on loopback, the node with its embedded MQTT broker and HTTP API,
//! a master device's outbox publishing over MQTT.
//!
//! Enroll a person with a thermometer and a phone, a temperature threshold and a home
//! geofence; publish readings that cross the band and leave home; see the finalized alerts on
//! the operators' event stream and on the person's MQTT topic; acknowledge and resolve them;
//! check the health record against its anchors; tamper with one record and see it caught.

mod common;

use std::time::{Duration, Instant};

use common::{WAIT, event_stream, free_port, http, next_event, register_person, t0_ms, until};
use commonware_runtime::{Runner as _, Supervisor as _, tokio as cw_tokio};
use rumqttc::{Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use vigil_core::{DeviceId, DeviceKey, GeoFix, Metric, PersonId, Value as Reading};
use vigil_gateway::outbox::{DeviceCredential, Outbox, Uploader};
use vigil_ledger::local::{LocalConfig, start_local};
use vigil_ledger::signer::Signer;
use vigil_ledger::sim::Keys;
use vigil_node::users::{Principal, Users};
use vigil_node::{MqttMode, NodeConfig};

#[test]
fn readings_to_finalized_alerts_to_resolution_with_a_verified_health_record() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = cw_tokio::Config::new().with_storage_directory(dir.path().join("ledger"));
    let data_dir = dir.path().join("node");
    cw_tokio::Runner::new(runtime).start(|context| async move {
        let cluster = start_local(context.child("ledger"), LocalConfig::new(Keys::new(4, 1))).await;
        let operator_token = "operator-token-for-this-test";
        let mut users = Users::default();
        users.insert(
            operator_token,
            Principal::Staff {
                name: "operator".into(),
                signer: Signer::new(cluster.keys.operator.clone()).into(),
            },
        );
        let mqtt_addr = free_port();
        let config = NodeConfig {
            data_dir: data_dir.clone(),
            mqtt: MqttMode::Embedded(mqtt_addr),
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
        let op = Some(operator_token);

        // Nobody without a token; a patient of someone else is refused below.
        assert_eq!(http(api, "GET", "/api/alerts", None, None).await.0, 401);
        assert_eq!(
            http(api, "GET", "/api/alerts", Some("wrong"), None).await.0,
            401
        );

        let ledger = node.ledger().clone();
        let person = register_person(api, operator_token, "Ana Souza", &ledger).await;

        let thermo: DeviceId = "thermo-01".parse().expect("valid");
        let phone: DeviceId = "phone-01".parse().expect("valid");
        let thermo_key = DeviceKey::from_seed([1; 32]);
        let phone_key = DeviceKey::from_seed([2; 32]);
        for (device, key) in [(&thermo, &thermo_key), (&phone, &phone_key)] {
            let body =
                json!({"person": person, "device": device, "public_key": key.public().to_string()});
            let (status, reply) = http(api, "POST", "/api/devices", op, Some(body)).await;
            assert_eq!(status, 202, "{reply}");
        }
        until("both devices enrolled", || {
            (ledger.snapshot().device_count() == 2).then_some(())
        })
        .await;

        let threshold = json!({"kind": "threshold", "metric": "body-temperature",
            "warning_above": 3750, "critical_above": 3850});
        let geofence = json!({"kind": "geofence", "dwell_ms": 1000, "zones": [{"name": "home",
            "rule": "keep-inside", "level": 2,
            "circle": {"lat_udeg": 48137000, "lon_udeg": 11575000, "radius_m": 60}}]});
        for (device, params) in [(&thermo, threshold), (&phone, geofence)] {
            let body = json!({"person": person, "device": device, "params": params});
            let (status, reply) = http(api, "POST", "/api/instances", op, Some(body)).await;
            assert_eq!(status, 202, "{reply}");
        }
        // A deployment with invalid parameters never reaches the ledger.
        let bad = json!({"person": person, "device": thermo, "params": {"kind": "threshold",
            "metric": "body-temperature", "warning_above": 3900, "critical_above": 3800}});
        assert_eq!(
            http(api, "POST", "/api/instances", op, Some(bad)).await.0,
            400
        );
        let (_, listed) = http(
            api,
            "GET",
            &format!("/api/instances?person={person}"),
            op,
            None,
        )
        .await;
        until("both instances deployed", || {
            (ledger.snapshot().instance_count() == 2).then_some(())
        })
        .await;
        drop(listed);

        let mut events = event_stream(api, operator_token).await;
        let patient_token = "patient-token-for-this-test";
        node.add_user(
            patient_token,
            Principal::Patient {
                name: "Ana".into(),
                person,
            },
        );
        let other_token = "another-patient";
        node.add_user(
            other_token,
            Principal::Patient {
                name: "Bo".into(),
                person: PersonId::random(),
            },
        );

        // The person's master device logs in as the phone and listens on its alert topic,
        // taking only what the node signed.
        let node_key = node.message_public_key();
        let (pushed_tx, mut pushed) = mpsc::channel::<Value>(64);
        let alert_topic = vigil_gateway::topic::alerts(person);
        let login = vigil_gateway::auth::device_login(
            &DeviceKey::from_seed([2; 32]),
            person,
            &phone,
            "ana-phone-alerts",
            vigil_node::now_ms(),
        );
        std::thread::spawn(move || {
            let mut options = MqttOptions::new("ana-phone-alerts", "127.0.0.1", mqtt_addr.port());
            options
                .set_keep_alive(Duration::from_secs(5))
                .set_credentials(login.username, login.password);
            let (client, mut connection) = rumqttc::Client::new(options, 64);
            let _ = client.subscribe(alert_topic, QoS::AtLeastOnce);
            let deadline = Instant::now() + 3 * WAIT;
            while Instant::now() < deadline {
                if let Ok(Ok(Event::Incoming(Packet::Publish(publish)))) =
                    connection.recv_timeout(Duration::from_millis(100))
                    && let Ok(value) = node_key.open_alert(&publish.topic, &publish.payload)
                    && pushed_tx.blocking_send(value).is_err()
                {
                    return;
                }
            }
        });

        // Readings: a normal temperature, then a fever; at home, then 1 km away twice.
        // Staff log in to the broker with their API token; a patient's token is refused (the
        // broker could not keep a patient to their own topics).
        let logins = [
            ("operator", operator_token, true),
            ("patient", patient_token, false),
            ("operator", "not-a-token", false),
        ];
        for (name, token, welcome) in logins {
            let accepted = tokio::task::spawn_blocking(move || {
                let mut options = MqttOptions::new("staff-console", "127.0.0.1", mqtt_addr.port());
                options
                    .set_keep_alive(Duration::from_secs(5))
                    .set_credentials(format!("service:{name}"), token);
                let (_client, mut connection) = rumqttc::Client::new(options, 4);
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
                    match connection.recv_timeout(Duration::from_millis(100)) {
                        Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return true,
                        Ok(Err(_)) => return false,
                        _ => {}
                    }
                }
                false
            })
            .await
            .expect("login ran");
            assert_eq!(accepted, welcome, "service:{name} with {token}");
        }

        // Even an enrolled device's valid login under the node's ingestion link's client id is
        // refused at CONNECT (it used to take the link over and stop ingestion).
        let login = vigil_gateway::auth::device_login(
            &DeviceKey::from_seed([2; 32]),
            person,
            &phone,
            "vigil-ingest",
            vigil_node::now_ms(),
        );
        let took_over = tokio::task::spawn_blocking(move || {
            let mut options = MqttOptions::new("vigil-ingest", "127.0.0.1", mqtt_addr.port());
            options
                .set_keep_alive(Duration::from_secs(5))
                .set_credentials(login.username, login.password);
            let (_client, mut connection) = rumqttc::Client::new(options, 4);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                match connection.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return true,
                    Ok(Err(_)) => return false,
                    _ => {}
                }
            }
            false
        })
        .await
        .expect("impostor ran");
        assert!(
            !took_over,
            "a network client got the node's client id vigil-ingest"
        );

        let outbox_path = dir.path().join("outbox.sqlite");
        let credential = DeviceCredential {
            person,
            device: phone.clone(),
            key: DeviceKey::from_seed([2; 32]),
        };
        let sent = tokio::task::spawn_blocking(move || {
            let mut outbox = Outbox::open(&outbox_path).expect("opens");
            for (i, centi) in [3_690, 3_905].into_iter().enumerate() {
                outbox
                    .enqueue(
                        person,
                        &thermo_key,
                        |d| {
                            d.push(
                                Metric::BodyTemperature,
                                t0_ms() + i as i64 * 60_000,
                                Reading::Scalar(centi),
                            );
                        },
                        &thermo,
                    )
                    .expect("enqueues");
            }
            for (i, lat_udeg) in [48_137_000, 48_146_000, 48_146_100].into_iter().enumerate() {
                let fix = GeoFix {
                    lat_udeg,
                    lon_udeg: 11_575_000,
                    accuracy_m: 10,
                };
                outbox
                    .enqueue(
                        person,
                        &phone_key,
                        |d| {
                            d.push(
                                Metric::Position,
                                t0_ms() + i as i64 * 5_000,
                                Reading::Position(fix),
                            );
                        },
                        &phone,
                    )
                    .expect("enqueues");
            }
            let mut uploader = Uploader::connect(
                "127.0.0.1",
                mqtt_addr.port(),
                "ana-phone",
                credential,
                node_key,
            );
            uploader
                .flush(&mut outbox, Instant::now() + WAIT, Duration::from_secs(2))
                .expect("flushes")
        })
        .await
        .expect("uploader ran");
        assert_eq!(
            (sent.delivered, sent.refused, sent.remaining),
            (5, 0, 0),
            "{sent:?}"
        );

        let fever = next_event(&mut events, "the fever alert", |e| {
            e["type"] == "alert" && e["level"] == 2 && e["reason"]["kind"] == "threshold"
        })
        .await;
        let left_home = next_event(&mut events, "the geofence alert", |e| {
            e["type"] == "alert" && e["reason"]["kind"] == "geofence"
        })
        .await;
        for alert in [&fever, &left_home] {
            assert_eq!(alert["person"], json!(person));
        }
        // The person's device got both, without the reasons (which name values).
        let mut on_topic = Vec::new();
        while on_topic.len() < 2 {
            let event = tokio::time::timeout(WAIT, pushed.recv())
                .await
                .expect("pushed in time")
                .expect("open");
            if event["type"] == "alert" {
                assert!(event.get("reason").is_none());
                on_topic.push(event["id"].clone());
            }
        }
        assert!(on_topic.contains(&fever["id"]) && on_topic.contains(&left_home["id"]));

        // The patient sees their own alerts; another patient sees none of them and cannot read
        // the first one's record.
        let (status, own) = http(api, "GET", "/api/alerts", Some(patient_token), None).await;
        assert_eq!(
            (status, own["alerts"].as_array().map(Vec::len)),
            (200, Some(2))
        );
        let (status, none) = http(api, "GET", "/api/alerts", Some(other_token), None).await;
        assert_eq!(
            (status, none["alerts"].as_array().map(Vec::len)),
            (200, Some(0))
        );
        let readings_path = format!("/api/people/{person}/readings");
        assert_eq!(
            http(api, "GET", &readings_path, Some(other_token), None)
                .await
                .0,
            403
        );
        let (status, mine) = http(api, "GET", &readings_path, Some(patient_token), None).await;
        assert_eq!(status, 200, "{mine}");
        assert_eq!(mine["observations"].as_array().map(Vec::len), Some(5));
        // Patients cannot act on the ledger.
        let ack_path = format!(
            "/api/alerts/{}/acknowledge",
            fever["id"].as_str().expect("id")
        );
        assert_eq!(
            http(api, "POST", &ack_path, Some(patient_token), None)
                .await
                .0,
            403
        );

        for alert in [&fever, &left_home] {
            let id = alert["id"].as_str().expect("id");
            let (status, reply) = http(
                api,
                "POST",
                &format!("/api/alerts/{id}/acknowledge"),
                op,
                None,
            )
            .await;
            assert_eq!(status, 202, "{reply}");
            next_event(&mut events, "the acknowledgement", |e| {
                e["type"] == "alert-status" && e["id"] == id && e["status"] == "acknowledged"
            })
            .await;
            let order = json!({"kind": "call", "note": "phoned at 10:02"});
            assert_eq!(
                http(
                    api,
                    "POST",
                    &format!("/api/alerts/{id}/order"),
                    op,
                    Some(order)
                )
                .await
                .0,
                202
            );
            let (status, reply) = http(
                api,
                "POST",
                &format!("/api/alerts/{id}/resolve"),
                op,
                Some(json!({})),
            )
            .await;
            assert_eq!(status, 202, "{reply}");
            next_event(&mut events, "the resolution", |e| {
                e["type"] == "alert-status" && e["id"] == id && e["status"] == "resolved"
            })
            .await;
        }
        // Resolving twice is refused by the ledger with its reason.
        let id = fever["id"].as_str().expect("id");
        assert_eq!(
            http(api, "POST", &format!("/api/alerts/{id}/resolve"), op, None)
                .await
                .0,
            409
        );

        // Every stored record is anchored on the ledger and proven against its anchor.
        let report = until("all records anchored", || {
            let report = node.verify_ehr().expect("verifies");
            (report.verified == 5 && report.pending == 0).then_some(report)
        })
        .await;
        assert!(report.is_intact(), "{report:?}");

        // The validators agree on the chain.
        let tip = ledger.finalized().0;
        until("every validator past the tip", || {
            cluster
                .ledgers
                .iter()
                .all(|l| l.finalized().0 >= tip)
                .then_some(())
        })
        .await;

        let metrics = http(api, "GET", "/api/health", None, None).await;
        assert_eq!(metrics.0, 200);

        // One altered byte in one stored record is found.
        let db = rusqlite::Connection::open(data_dir.join("ehr.sqlite")).expect("opens");
        db.execute(
            "UPDATE records SET ciphertext = x'00' || ciphertext WHERE seq = 2",
            [],
        )
        .expect("tampers");
        let report = node.verify_ehr().expect("verifies");
        assert_eq!(report.altered, [2]);
        cluster.shutdown();
    });
}
