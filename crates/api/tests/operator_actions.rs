//! No silent loss (issue 14), on real components: four validators over authenticated p2p on
//! loopback, the node and its HTTP API.
//!
//! An operator acknowledges an alert, acknowledges it again at once (a double click), orders a
//! hospital transfer and resolves it: the second acknowledgement is refused at once (409), and
//! the order and the resolution end finalized. Then a gateway alert raised right after a
//! transaction of the same gateway identity that can never apply is finalized all the same.
//! Each operator sees every action they were answered 202 for end finalized or failed, with the
//! ledger's reason (two operators acknowledging at once: one of them is told it failed). The
//! alert listing names what fired from the health record, and an alert nobody acknowledges is
//! escalated by the district's policy on the ledger, on block time.

mod common;

use common::{
    enroll_device, event_stream, http, next_event, node_config, register_person, staff, t0_ms,
    until,
};
use commonware_runtime::{Runner as _, Supervisor as _, tokio as cw_tokio};
use serde_json::json;
use vigil_core::senml::PackDraft;
use vigil_core::{DeviceId, DeviceKey, Metric, Value};
use vigil_ledger::local::{LocalConfig, start_local};
use vigil_ledger::signer::Signer;
use vigil_ledger::sim::Keys;
use vigil_ledger::state::AlertStatus;
use vigil_ledger::tx::{OrderKind, TxBody, TxId};
use vigil_node::MqttMode;
use vigil_node::users::Users;

const OPERATOR: &str = "operator-token-for-this-test";
const SECOND_OPERATOR: &str = "second-operator-token-for-this-test";

fn fever_pack(device: &DeviceId, key: &DeviceKey, sequence: u64, centi: i32) -> Vec<u8> {
    let mut draft = PackDraft::new(device.clone(), sequence);
    draft.push(
        Metric::BodyTemperature,
        t0_ms() + sequence as i64 * 60_000,
        Value::Scalar(centi),
    );
    draft.sign(key).to_json()
}

fn alert_id(text: &str) -> TxId {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes).expect("an alert id");
    TxId(bytes)
}

#[test]
fn a_double_acknowledgement_is_refused_at_once_and_nothing_after_it_is_lost() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = cw_tokio::Config::new().with_storage_directory(dir.path().join("ledger"));
    let data_dir = dir.path().join("node");
    cw_tokio::Runner::new(runtime).start(|context| async move {
        let cluster = start_local(context.child("ledger"), LocalConfig::new(Keys::new(4, 1))).await;
        let mut users = Users::default();
        users.insert(OPERATOR, staff("operator", cluster.keys.operator.clone()));
        let second_key: commonware_cryptography::ed25519::PrivateKey =
            commonware_cryptography::Signer::from_seed(4242);
        users.insert(
            SECOND_OPERATOR,
            staff("second-operator", second_key.clone()),
        );
        let gateway = cluster.keys.gateways[0].clone();
        let config = node_config(data_dir, MqttMode::Disabled, gateway, users);
        let (node, api) = vigil_api::start(cluster.ledgers[0].clone(), config, common::LOOPBACK)
            .await
            .expect("node starts");
        let ledger = node.ledger().clone();
        let op = Some(OPERATOR);
        let person = register_person(api, OPERATOR, "Ana Souza", &ledger).await;
        let thermo: DeviceId = "thermo-01".parse().expect("valid");
        let key = DeviceKey::from_seed([1; 32]);
        enroll_device(api, OPERATOR, person, &thermo, &key.public(), &ledger).await;
        let threshold = json!({"kind": "threshold", "metric": "body-temperature",
            "warning_above": 3750, "critical_above": 3850});
        let body = json!({"person": person, "device": thermo, "params": threshold});
        let (status, reply) = http(api, "POST", "/api/instances", op, Some(body)).await;
        assert_eq!(status, 202, "{reply}");
        until("the instance deployed", || {
            (ledger.snapshot().instance_count() == 1).then_some(())
        })
        .await;
        let mut events = event_stream(api, OPERATOR).await;

        let reply = node.ingest(Some(person), &fever_pack(&thermo, &key, 1, 3_920), "http");
        assert!(reply.accepted && reply.stored == 1, "{reply:?}");
        let alert = next_event(&mut events, "the fever alert", |e| e["type"] == "alert").await;
        let id = alert["id"].as_str().expect("id").to_owned();

        // The operator's sequence, each request at once after the previous answer.
        let path = |action: &str| format!("/api/alerts/{id}/{action}");
        let (status, reply) = http(api, "POST", &path("acknowledge"), op, None).await;
        assert_eq!(status, 202, "{reply}");
        let (status, reply) = http(api, "POST", &path("acknowledge"), op, None).await;
        assert_eq!(status, 409, "the second acknowledgement: {reply}");
        assert!(
            reply["message"]
                .as_str()
                .is_some_and(|m| m.contains("already acknowledged")),
            "{reply}"
        );
        let order = json!({"kind": "hospital-transfer", "note": "ambulance 12"});
        let (status, reply) = http(api, "POST", &path("order"), op, Some(order)).await;
        assert_eq!(status, 202, "{reply}");
        let (status, reply) = http(api, "POST", &path("resolve"), op, None).await;
        assert_eq!(status, 202, "{reply}");

        let id = alert_id(&id);
        let record = until("the order and the resolution finalized", || {
            let record = ledger.snapshot().alert(&id).cloned()?;
            (record.status == AlertStatus::Resolved).then_some(record)
        })
        .await;
        let orders: Vec<OrderKind> = record.orders.iter().map(|o| o.kind).collect();
        assert_eq!(orders, vec![OrderKind::HospitalTransfer]);
        // Every action the operator was answered 202 for is reported finalized.
        let actions = settled_actions(api, OPERATOR, "the operator's actions finalized", |all| {
            all.iter().all(|a| a["status"] == "finalized")
        })
        .await;
        let names: Vec<&str> = actions
            .iter()
            .filter_map(|a| a["action"].as_str())
            .collect();
        assert_eq!(names, ["resolve", "order", "acknowledge"], "{actions:?}");
        // The listing says what fired, from the health record (one access for the listing).
        let accesses = ledger.snapshot().reasons_access_count();
        let (status, listing) = http(api, "GET", "/api/alerts?status=resolved", op, None).await;
        assert_eq!(status, 200, "{listing}");
        let listed = &listing["alerts"][0];
        assert_eq!(listed["reason"]["kind"], "threshold", "{listing}");
        assert_eq!(
            listed["reason"]["text"], "body temperature 39.20 °C (critical high)",
            "{listing}"
        );
        until("the listing's one access record", || {
            (ledger.snapshot().reasons_access_count() == accesses + 1).then_some(())
        })
        .await;
        // A patient's own listing never carries a reason.
        node.add_user(
            "patient-token",
            vigil_node::users::Principal::Patient {
                name: "patient".into(),
                person,
            },
        );
        let (status, own) = http(api, "GET", "/api/alerts", Some("patient-token"), None).await;
        assert_eq!(status, 200, "{own}");
        let own = own["alerts"].as_array().expect("alerts");
        assert!(
            !own.is_empty() && own.iter().all(|a| a.get("reason").is_none()),
            "{own:?}"
        );
        let (_, quiet) = http(
            api,
            "GET",
            "/api/alerts?status=resolved&reasons=false",
            op,
            None,
        )
        .await;
        assert!(quiet["alerts"][0].get("reason").is_none(), "{quiet}");
        // Once resolved, the finalized state refuses further actions at once too.
        let (status, reply) = http(api, "POST", &path_for(&id, "acknowledge"), op, None).await;
        assert_eq!(status, 409, "{reply}");

        // The gateway identity's transaction that can never apply (an anchor starting far past
        // its records), then a fever alert signed by the same identity: the failing one is
        // dropped alone, the alert is finalized.
        let gateway = Signer::new(cluster.keys.gateways[0].clone());
        let failing = gateway
            .submit_tx(
                &ledger,
                TxBody::EhrAnchor {
                    first_seq: 1_000_000,
                    root: [7; 32],
                    count: 1,
                    from_ms: t0_ms(),
                    to_ms: t0_ms(),
                },
            )
            .expect("admitted; it fails only when applied");
        let reply = node.ingest(Some(person), &fever_pack(&thermo, &key, 2, 3_950), "http");
        assert!(reply.accepted && reply.stored == 1, "{reply:?}");
        let second = next_event(
            &mut events,
            "the alert next to a failing transaction",
            |e| e["type"] == "alert" && e["reading_time_ms"] == t0_ms() + 2 * 60_000,
        )
        .await;
        assert!(
            ledger
                .snapshot()
                .alert(&alert_id(second["id"].as_str().expect("id")))
                .is_some()
        );
        let dropped = until("the failing transaction dropped, with its reason", || {
            ledger.dropped(&failing.id())
        })
        .await;
        assert!(
            dropped.reason.to_string().contains("anchor"),
            "{}",
            dropped.reason
        );

        // Two operators acknowledge the same alert at once: neither sees the other's pending
        // transaction, both are answered 202, and the one that loses is told why.
        let admin = Signer::new(cluster.keys.admin.clone());
        admin
            .submit(
                &ledger,
                TxBody::GrantRole {
                    identity: commonware_cryptography::Signer::public_key(&second_key),
                    role: vigil_ledger::tx::Role::CdcpOperator,
                },
            )
            .expect("grant");
        until("the second operator's role", || {
            ledger
                .snapshot()
                .view()
                .has_role(
                    &commonware_cryptography::Signer::public_key(&second_key),
                    vigil_ledger::tx::Role::CdcpOperator,
                )
                .then_some(())
        })
        .await;
        let second_path = format!(
            "/api/alerts/{}/acknowledge",
            second["id"].as_str().expect("id")
        );
        let ((first_status, _), (second_status, reply)) = tokio::join!(
            http(api, "POST", &second_path, op, None),
            http(api, "POST", &second_path, Some(SECOND_OPERATOR), None)
        );
        assert_eq!((first_status, second_status), (202, 202), "{reply}");
        let mut outcomes = Vec::new();
        for token in [OPERATOR, SECOND_OPERATOR] {
            let actions = settled_actions(api, token, "an acknowledgement settled", |all| {
                all.first()
                    .is_some_and(|latest| latest["status"] != "pending")
            })
            .await;
            outcomes.push(actions[0].clone());
        }
        let statuses: Vec<&str> = outcomes
            .iter()
            .filter_map(|a| a["status"].as_str())
            .collect();
        assert!(
            statuses.contains(&"finalized") && statuses.contains(&"failed"),
            "{outcomes:?}"
        );
        let failed = outcomes
            .iter()
            .find(|a| a["status"] == "failed")
            .expect("failed");
        assert!(
            failed["reason"]
                .as_str()
                .is_some_and(|r| r.contains("not open")),
            "{failed}"
        );

        // Resolved, the instance raises again on the next reading above its bands.
        let resolve_path = format!("/api/alerts/{}/resolve", second["id"].as_str().expect("id"));
        let (status, reply) = http(api, "POST", &resolve_path, op, None).await;
        assert_eq!(status, 202, "{reply}");
        let second_id = alert_id(second["id"].as_str().expect("id"));
        until("the second alert resolved", || {
            let record = ledger.snapshot().alert(&second_id).cloned()?;
            (record.status == AlertStatus::Resolved).then_some(())
        })
        .await;

        // An alert nobody acknowledges is escalated once the policy's delay has passed in
        // block time, and made critical.
        let policy = json!({"remind_after_s": 0, "escalate_after_s": 10, "repeat_s": 10,
            "steps_max": 1, "raise_level": true});
        let (status, reply) = http(api, "PUT", "/api/escalation-policy", op, Some(policy)).await;
        assert_eq!(status, 202, "{reply}");
        let bad = json!({"remind_after_s": 0, "escalate_after_s": 1, "repeat_s": 10,
            "steps_max": 1, "raise_level": true});
        let (status, reply) = http(api, "PUT", "/api/escalation-policy", op, Some(bad)).await;
        assert_eq!(status, 400, "{reply}");
        let reply = node.ingest(Some(person), &fever_pack(&thermo, &key, 3, 3_800), "http");
        assert!(reply.accepted && reply.stored == 1, "{reply:?}");
        let third = next_event(&mut events, "the warning alert", |e| {
            e["type"] == "alert" && e["reading_time_ms"] == t0_ms() + 3 * 60_000
        })
        .await;
        let escalated = next_event(&mut events, "its escalation", |e| {
            e["type"] == "alert-escalated" && e["id"] == third["id"]
        })
        .await;
        assert_eq!(
            (escalated["step"].as_u64(), escalated["level"].as_u64()),
            (Some(1), Some(2))
        );
        let record = ledger
            .snapshot()
            .alert(&alert_id(third["id"].as_str().expect("id")))
            .cloned()
            .expect("alert");
        let escalated_at = ledger.snapshot().state().time_ms();
        assert!(
            escalated_at - record.raised_ms >= 10_000,
            "escalated on block time"
        );
        assert_eq!(record.escalations, 1);
        cluster.shutdown();
    });
}

/// The caller's actions, newest first (`GET /api/actions`), once `settled` holds of them.
async fn settled_actions(
    api: std::net::SocketAddr,
    token: &str,
    what: &str,
    settled: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + common::WAIT;
    loop {
        let (status, reply) = http(api, "GET", "/api/actions", Some(token), None).await;
        assert_eq!(status, 200, "{reply}");
        let actions = reply["actions"].as_array().cloned().unwrap_or_default();
        if settled(&actions) {
            return actions;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn path_for(id: &TxId, action: &str) -> String {
    format!("/api/alerts/{}/{action}", hex::encode(id.0))
}
