//! Notifications beyond the dashboard, on real components: four validators over authenticated
//! p2p on loopback, the node with a webhook channel and an e-mail channel, a webhook receiver
//! and an SMTP sink on loopback (the ones `vigil-notify`'s tests use).
//!
//! A fever reading raises an alert; once finalized it reaches both: the webhook (which fails
//! once, then takes it) without the reading's value, signed with its secret; the e-mail
//! (deferred once, then taken) with the value, its channel being allowed health data. The
//! admin reads every attempt at `/api/notifications/deliveries`; an operator may not; the
//! metrics count the deliveries.

mod common;

#[path = "../../notify/tests/common/servers.rs"]
mod servers;

use std::time::Duration;

use common::{enroll_device, http, node_config, register_person, staff, t0_ms, until};
use commonware_runtime::{Runner as _, Supervisor as _, tokio as cw_tokio};
use serde_json::{Value as JsonValue, json};
use servers::{Receiver, Script, start_sink};
use vigil_core::senml::PackDraft;
use vigil_core::{AlertLevel, DeviceId, DeviceKey, Metric, Value};
use vigil_ledger::local::{LocalConfig, start_local};
use vigil_ledger::sim::Keys;
use vigil_node::MqttMode;
use vigil_node::users::Users;
use vigil_notify::backoff::Backoff;
use vigil_notify::config::{EmailChannel, SmtpServer, SmtpTls, WebhookChannel};
use vigil_notify::route::Route;
use vigil_notify::signature::{self, Secret};

const OPERATOR: &str = "operator-token-for-this-test";
const ADMIN: &str = "admin-token-for-this-test";

fn notify_config(receiver: &Receiver, smtp: std::net::SocketAddr) -> vigil_notify::NotifyConfig {
    let mut config = vigil_notify::NotifyConfig::empty();
    config.backoff =
        Backoff::new(4, Duration::from_millis(20), Duration::from_millis(100)).expect("valid");
    config.dashboard_url = Some("http://127.0.0.1:8080/".into());
    config.webhooks = vec![WebhookChannel {
        name: "hook".into(),
        url: receiver.url("/hook"),
        secret: secret(),
        route: Route::at_least(AlertLevel::Warning),
        allow_health_data: false,
    }];
    config.smtp = Some(SmtpServer {
        host: smtp.ip().to_string(),
        port: smtp.port(),
        tls: SmtpTls::None,
        from: "vigil@example.org".into(),
        credentials: None,
        hello_name: "node.test".into(),
        timeout: Duration::from_secs(5),
    });
    config.emails = vec![EmailChannel {
        name: "clinician".into(),
        to: "clinician@example.org".into(),
        route: Route::at_least(AlertLevel::Critical),
        allow_health_data: true,
    }];
    config
}

fn secret() -> Secret {
    Secret::new(b"a webhook secret of 32 bytes or more".to_vec()).expect("long enough")
}

fn fever_pack(device: &DeviceId, key: &DeviceKey, centi: i32) -> Vec<u8> {
    let mut draft = PackDraft::new(device.clone(), 1);
    draft.push(Metric::BodyTemperature, t0_ms(), Value::Scalar(centi));
    draft.sign(key).to_json()
}

/// The attempts of `channel` in an answer of the deliveries route, oldest first, as
/// (attempt, status).
fn attempts(answer: &JsonValue, channel: &str) -> Vec<(u64, String)> {
    let mut rows: Vec<(u64, String)> = answer["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["channel"] == channel)
        .map(|d| {
            (
                d["attempt"].as_u64().unwrap_or_default(),
                d["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    rows.reverse();
    rows
}

#[test]
fn a_finalized_alert_reaches_the_webhook_and_the_mailbox_and_the_admin_sees_each_attempt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = cw_tokio::Config::new().with_storage_directory(dir.path().join("ledger"));
    let data_dir = dir.path().join("node");
    cw_tokio::Runner::new(runtime).start(|context| async move {
        let cluster = start_local(context.child("ledger"), LocalConfig::new(Keys::new(4, 1))).await;
        let receiver = Receiver::start(Script::from([("/hook", vec![Some(503), Some(200)])])).await;
        let (smtp, sink) = start_sink().await;
        let mut users = Users::default();
        users.insert(OPERATOR, staff("operator", cluster.keys.operator.clone()));
        users.insert(ADMIN, staff("admin", cluster.keys.admin.clone()));
        let gateway = cluster.keys.gateways[0].clone();
        let mut config = node_config(data_dir.clone(), MqttMode::Disabled, gateway, users);
        config.notify = Some(notify_config(&receiver, smtp));
        let (node, api) = vigil_api::start(cluster.ledgers[0].clone(), config, common::LOOPBACK)
            .await
            .expect("node starts");
        let ledger = node.ledger().clone();

        // Before any alert: the channels are listed, the log is empty.
        let (status, answer) =
            http(api, "GET", "/api/notifications/deliveries", Some(ADMIN), None).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["configured"], true);
        assert_eq!(
            answer["channels"],
            json!([
                {"name": "hook", "kind": "webhook", "min_level": "warning", "allow_health_data": false},
                {"name": "clinician", "kind": "email", "min_level": "critical", "allow_health_data": true},
            ])
        );
        assert_eq!(answer["deliveries"], json!([]));

        let person = register_person(api, OPERATOR, "Ana Souza", &ledger).await;
        let thermo: DeviceId = "thermo-01".parse().expect("valid");
        let key = DeviceKey::from_seed([1; 32]);
        enroll_device(api, OPERATOR, person, &thermo, &key.public(), &ledger).await;
        let threshold = json!({"kind": "threshold", "metric": "body-temperature",
            "warning_above": 3750, "critical_above": 3850});
        let body = json!({"person": person, "device": thermo, "params": threshold});
        let (status, reply) = http(api, "POST", "/api/instances", Some(OPERATOR), Some(body)).await;
        assert_eq!(status, 202, "{reply}");
        until("the instance deployed", || {
            (ledger.snapshot().instance_count() == 1).then_some(())
        })
        .await;

        let reply = node.ingest(Some(person), &fever_pack(&thermo, &key, 3_920), "http");
        assert!(reply.accepted && reply.stored == 1, "{reply:?}");

        // The webhook: failed once (503), then taken; signed, without the value.
        let requests = until("the webhook's retry", || {
            let requests = receiver.requests_to("/hook");
            (requests.len() == 2).then_some(requests)
        })
        .await;
        let now_s = vigil_node::now_ms() as u64 / 1000;
        for request in &requests {
            let header = &request.headers["vigil-signature"];
            assert_eq!(
                signature::verify(&secret(), header, &request.body, now_s, 60),
                Ok(())
            );
            let text = String::from_utf8(request.body.clone()).expect("utf-8");
            assert!(!text.contains("\"value\""), "no value: {text}");
            assert!(!text.contains("body-temperature"), "no metric: {text}");
            assert!(!text.contains("\"reason\""), "no reason: {text}");
            let body: JsonValue = serde_json::from_str(&text).expect("JSON");
            assert_eq!(body["person"], person.to_string());
            assert_eq!(body["level"], 2);
            assert_eq!(body["kind"], "threshold");
            assert_eq!(body["basis"], "device-signed");
            assert_eq!(body["reading_time_ms"], t0_ms());
            assert_eq!(body["dashboard"], format!("http://127.0.0.1:8080/#person/{person}"));
            assert_eq!(request.headers["vigil-event-id"], body["id"].as_str().expect("id"));
        }
        let alert_id = requests[0].headers["vigil-event-id"].clone();
        let mut id = [0u8; 32];
        hex::decode_to_slice(&alert_id, &mut id).expect("an alert id");
        let finalized = ledger.snapshot().alert(&vigil_ledger::tx::TxId(id)).cloned();
        assert!(finalized.is_some(), "the webhook names the finalized alert");

        // The e-mail: deferred once (451), then taken; with the value, as allowed.
        let mail = until("the e-mail", || sink.taken().into_iter().next()).await;
        assert_eq!(mail.to, ["clinician@example.org"]);
        assert!(mail.data.contains("\"value\": 3920"), "{}", mail.data);
        assert!(mail.data.contains(&alert_id));

        // The admin sees every attempt; others may not look.
        let deadline = std::time::Instant::now() + common::WAIT;
        let deliveries = loop {
            let (status, answer) =
                http(api, "GET", "/api/notifications/deliveries", Some(ADMIN), None).await;
            assert_eq!(status, 200, "{answer}");
            if answer["deliveries"].as_array().is_some_and(|d| d.len() >= 4) {
                break answer;
            }
            assert!(std::time::Instant::now() < deadline, "four attempts logged: {answer}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        for channel in ["hook", "clinician"] {
            assert_eq!(
                attempts(&deliveries, channel),
                [(1, "retrying".to_owned()), (2, "delivered".to_owned())],
                "{channel}: {deliveries}"
            );
        }
        assert!(
            deliveries["deliveries"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|d| d["event_id"] == alert_id.as_str() && d["event"] == "alert")
        );
        let (status, page) = http(
            api,
            "GET",
            "/api/notifications/deliveries?channel=hook&status=delivered&limit=1",
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(page["deliveries"].as_array().map(Vec::len), Some(1));
        assert!(page["next_before"].is_u64(), "{page}");
        let path = "/api/notifications/deliveries";
        assert_eq!(http(api, "GET", path, Some(OPERATOR), None).await.0, 403);
        assert_eq!(http(api, "GET", path, None, None).await.0, 401);
        let bad = "/api/notifications/deliveries?status=lost";
        assert_eq!(http(api, "GET", bad, Some(ADMIN), None).await.0, 400);

        let metrics = node.metrics_text();
        for line in [
            "vigil_notifications_delivered_total{channel=\"hook\"} 1",
            "vigil_notifications_retried_total{channel=\"hook\"} 1",
            "vigil_notifications_delivered_total{channel=\"clinician\"} 1",
            "vigil_notifications_failed_total{channel=\"hook\"} 0",
        ] {
            assert!(metrics.contains(line), "{line} in\n{metrics}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let log = vigil_node::notify::log_path(&data_dir);
            let mode = std::fs::metadata(&log).expect("the log exists").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        cluster.shutdown();
    });
}
