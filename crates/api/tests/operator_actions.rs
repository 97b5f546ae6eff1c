//! No silent loss (issue 14), on real components: four validators over authenticated p2p on
//! loopback, the node and its HTTP API.
//!
//! An operator acknowledges an alert, acknowledges it again at once (a double click), orders a
//! hospital transfer and resolves it: the second acknowledgement is refused at once (409), and
//! the order and the resolution end finalized. Then a gateway alert raised right after a
//! transaction of the same gateway identity that can never apply is finalized all the same.

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
        cluster.shutdown();
    });
}

fn path_for(id: &TxId, action: &str) -> String {
    format!("/api/alerts/{}/{action}", hex::encode(id.0))
}
