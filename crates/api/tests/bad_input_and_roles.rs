//! Issue 5's bad-input suite and route-by-route access control, against a node on four
//! validators: every refusal names its reason, nothing is stored, and the node keeps serving.

mod common;

use common::{free_port, http, http_raw, t0_ms, until};
use commonware_runtime::{Runner as _, Supervisor as _, tokio as cw_tokio};
use serde_json::json;
use vigil_core::senml::PackDraft;
use vigil_core::{DeviceId, DeviceKey, Metric, PersonId, Value};
use vigil_ledger::local::{LocalConfig, start_local};
use vigil_ledger::signer::Signer;
use vigil_ledger::sim::Keys;
use vigil_node::users::{Principal, Users};
use vigil_node::{MqttMode, NodeConfig};

/// A route, its body, and the status each token gets.
type Route<'a> = (
    &'a str,
    &'a str,
    Option<serde_json::Value>,
    &'a [(&'a str, u16)],
);

fn pack(key: &DeviceKey, device: &DeviceId, sequence: u64, centi: i32) -> Vec<u8> {
    let mut draft = PackDraft::new(device.clone(), sequence);
    draft.push(
        Metric::BodyTemperature,
        t0_ms() + sequence as i64 * 1_000,
        Value::Scalar(centi),
    );
    draft.sign(key).to_json()
}

#[test]
fn bad_input_is_refused_with_its_reason_and_roles_are_enforced_route_by_route() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = cw_tokio::Config::new().with_storage_directory(dir.path().join("ledger"));
    let data_dir = dir.path().join("node");
    cw_tokio::Runner::new(runtime).start(|context| async move {
        let cluster = start_local(context.child("ledger"), LocalConfig::new(Keys::new(4, 1))).await;
        let mut users = Users::default();
        let staff = |name: &str, key| Principal::Staff { name: name.into(), signer: Signer::new(key).into() };
        users.insert("op", staff("operator", cluster.keys.operator.clone()));
        users.insert("admin", staff("admin", cluster.keys.admin.clone()));
        users.insert("nobody", staff("no-roles", commonware_cryptography::Signer::from_seed(77)));
        let config = NodeConfig {
            data_dir: data_dir.clone(),
            mqtt: MqttMode::Embedded(free_port()),
            ehr_master_key: vigil_ehr::SecretKey::random(),
            gateway: Signer::new(cluster.keys.gateways[0].clone()),
            users,
            future_skew: vigil_node::FUTURE_SKEW_DEFAULT,
            map_tiles: None,
            notify: None,
        };
        let (node, api) = vigil_api::start(cluster.ledgers[0].clone(), config, common::LOOPBACK).await.expect("node starts");
        let ledger = node.ledger().clone();

        let (_, created) = http(api, "POST", "/api/people", Some("op"), Some(json!({"name": "C. Test"}))).await;
        let person: PersonId = created["person"].as_str().expect("pseudonym").parse().expect("valid");
        node.add_user("patient", Principal::Patient { name: "patient".into(), person });
        node.add_user("stranger", Principal::Patient { name: "stranger".into(), person: PersonId::random() });
        until("registered", || ledger.snapshot().person(&person).map(|_| ())).await;
        let device: DeviceId = "thermo-9".parse().expect("valid");
        let revoked: DeviceId = "thermo-old".parse().expect("valid");
        let key = DeviceKey::from_seed([5; 32]);
        for d in [&device, &revoked] {
            let body = json!({"person": person, "device": d, "public_key": key.public().to_string()});
            assert_eq!(http(api, "POST", "/api/devices", Some("op"), Some(body)).await.0, 202);
        }
        until("enrolled", || (ledger.snapshot().device_count() == 2).then_some(())).await;
        assert_eq!(http(api, "DELETE", &format!("/api/devices/{revoked}"), Some("op"), None).await.0, 202);
        until("revoked", || {
            ledger.snapshot().device(&revoked).is_some_and(|d| !d.active).then_some(())
        })
        .await;

        let path = format!("/api/packs/{person}");
        let good = pack(&key, &device, 1, 3_700);
        let (status, reply) = http_raw(api, "POST", &path, None, "application/senml+json", good.clone()).await;
        assert_eq!((status, reply["accepted"].as_bool()), (200, Some(true)), "{reply}");

        let forged = pack(&DeviceKey::from_seed([6; 32]), &device, 2, 3_700);
        let stranger_device = pack(&key, &"thermo-x".parse().expect("valid"), 1, 3_700);
        let wrong_unit = format!(
            r#"[{{"bn":"{device}:","bt":1700000000,"seq_":3,"sig_":"AAAA","n":"body-temperature","u":"beat/min","v":37}}]"#
        )
        .into_bytes();
        let nan_cbor = {
            use ciborium::Value as Cbor;
            let record = Cbor::Map(vec![
                (Cbor::Integer((-2).into()), Cbor::Text(format!("{device}:"))),
                (Cbor::Integer((-3).into()), Cbor::Float(1.7e9)),
                (Cbor::Integer(0.into()), Cbor::Text("body-temperature".into())),
                (Cbor::Integer(1.into()), Cbor::Text("Cel".into())),
                (Cbor::Integer(2.into()), Cbor::Float(f64::NAN)),
            ]);
            let mut bytes = Vec::new();
            ciborium::ser::into_writer(&Cbor::Array(vec![record]), &mut bytes).expect("encodes");
            bytes
        };
        let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
            ("replayed sequence number", good.clone(), 409, "replayed"),
            ("forged signature", forged, 401, "bad_signature"),
            ("unknown device", stranger_device, 403, "unknown_device"),
            ("revoked device", pack(&key, &revoked, 1, 3_700), 403, "revoked_device"),
            ("malformed JSON", b"[{\"bn\":".to_vec(), 422, "malformed"),
            ("malformed CBOR", vec![0x9f, 0x01, 0xff, 0xff], 422, "malformed"),
            ("wrong unit", wrong_unit, 422, "invalid_reading"),
            ("NaN", nan_cbor, 422, "invalid_reading"),
            ("implausible value", pack(&key, &device, 4, 4_800), 422, "invalid_reading"),
        ];
        for (what, body, status, code) in cases {
            let (got, reply) = http_raw(api, "POST", &path, None, "application/senml+json", body).await;
            assert_eq!(got, status, "{what}: {reply}");
            assert_eq!(reply["error"]["reason"], code, "{what}: {reply}");
            assert!(!reply["error"]["message"].as_str().unwrap_or("").is_empty(), "{what}");
        }
        // A pack for another person's topic is refused too.
        let elsewhere = format!("/api/packs/{}", PersonId::random());
        let (got, reply) = http_raw(api, "POST", &elsewhere, None, "application/senml+json", pack(&key, &device, 9, 3_700)).await;
        assert_eq!((got, reply["error"]["reason"].as_str()), (403, Some("wrong_person")));
        // 10 MB is refused before it is read: 413, or the connection closed under the client
        // while it was still sending (0); never read and judged. The node still serves after it
        // (checked below).
        let (got, _) = http_raw(api, "POST", &path, None, "application/senml+json", vec![b'['; 10 << 20]).await;
        assert!(got == 413 || got == 0, "10 MB body: {got}");

        // Nothing refused was stored: one record, and the node still serves.
        let report = node.verify_ehr().expect("verifies");
        assert_eq!(report.anchored + report.pending, 1, "{report:?}");
        assert_eq!(http(api, "GET", "/api/health", None, None).await.0, 200);
        let metrics = node.metrics_text();
        assert!(metrics.contains("vigil_packs_rejected_total{reason=\"bad_signature\"} 1"), "{metrics}");

        // Route by route: who may call what.
        let readings = format!("/api/people/{person}/readings");
        let identity = format!("/api/people/{person}/identity");
        let instances = format!("/api/instances?person={person}");
        let alert = format!("/api/alerts/{}/acknowledge", "00".repeat(32));
        let routes: Vec<Route> = vec![
            ("GET", "/api/people", None, &[("op", 200), ("admin", 200), ("nobody", 403), ("patient", 403)]),
            ("POST", "/api/people", Some(json!({"name": "X"})), &[("nobody", 403), ("patient", 403)]),
            ("GET", &readings, None, &[("op", 200), ("patient", 200), ("stranger", 403), ("admin", 403), ("nobody", 403)]),
            ("GET", &identity, None, &[("op", 200), ("patient", 403), ("admin", 403), ("nobody", 403)]),
            ("GET", &instances, None, &[("op", 200), ("admin", 200), ("nobody", 403), ("patient", 200), ("stranger", 403)]),
            ("POST", "/api/devices", Some(json!({"person": person, "device": "d-2", "public_key": key.public().to_string()})), &[("admin", 403), ("nobody", 403), ("patient", 403)]),
            ("POST", "/api/instances", Some(json!({"person": person, "device": device, "params": {"kind": "threshold", "metric": "body-temperature", "warning_above": 3750}})), &[("admin", 403), ("nobody", 403), ("patient", 403)]),
            ("GET", "/api/alerts", None, &[("op", 200), ("admin", 200), ("nobody", 403), ("patient", 200)]),
            ("POST", &alert, None, &[("admin", 403), ("nobody", 403), ("patient", 403), ("op", 409)]),
            ("GET", "/api/ledger/blocks", None, &[("op", 200), ("admin", 200), ("nobody", 403), ("patient", 403)]),
            ("GET", "/api/me", None, &[("op", 200), ("patient", 200)]),
        ];
        for (method, route, body, expectations) in routes {
            assert_eq!(http(api, method, route, None, body.clone()).await.0, 401, "{method} {route} without a token");
            for (token, status) in expectations.iter() {
                let (got, reply) = http(api, method, route, Some(token), body.clone()).await;
                assert_eq!(got, *status, "{method} {route} as {token}: {reply}");
            }
        }
        // Reads of identity and records were logged on the ledger, by who read them.
        until("accesses logged", || (ledger.snapshot().access_count() >= 2).then_some(())).await;
        cluster.shutdown();
    });
}

/// One GET with the `Authorization` value given as is; the status, headers and JSON body.
async fn get_with(
    addr: std::net::SocketAddr,
    path: &str,
    authorization: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let mut request = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if let Some(value) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    let response = request.send().await.expect("the node answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    // The event stream never ends: its body is not read.
    let body = if path.starts_with("/api/alerts/stream") {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&response.bytes().await.unwrap_or_default())
            .unwrap_or(serde_json::Value::Null)
    };
    (status, headers, body)
}

fn pack_at(key: &DeviceKey, device: &DeviceId, sequence: u64, time_ms: i64) -> Vec<u8> {
    let mut draft = PackDraft::new(device.clone(), sequence);
    draft.push(Metric::BodyTemperature, time_ms, Value::Scalar(3_700));
    draft.sign(key).to_json()
}

/// Identities in the health record's file, read behind the node's back.
fn identities_stored(data_dir: &std::path::Path) -> i64 {
    let db = rusqlite::Connection::open_with_flags(
        vigil_node::ehr_path(data_dir),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("the record opens");
    db.query_row("SELECT COUNT(*) FROM identities", [], |row| row.get(0))
        .expect("counts")
}

/// Issue 13, "bad input that gets through": each refused alone, with its reason, changing
/// nothing; and the edges of authentication (`?token=`, the scheme's case, `WWW-Authenticate`,
/// caching headers).
#[test]
fn issue_13_each_bad_input_is_refused_alone_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = cw_tokio::Config::new().with_storage_directory(dir.path().join("ledger"));
    let data_dir = dir.path().join("node");
    cw_tokio::Runner::new(runtime).start(|context| async move {
        let cluster = start_local(context.child("ledger"), LocalConfig::new(Keys::new(4, 1))).await;
        let mut users = Users::default();
        users.insert(
            "op",
            common::staff("operator", cluster.keys.operator.clone()),
        );
        users.insert("admin", common::staff("admin", cluster.keys.admin.clone()));
        let gateway = cluster.keys.gateways[0].clone();
        let config = common::node_config(data_dir.clone(), MqttMode::Disabled, gateway, users);
        let (node, api) = vigil_api::start(cluster.ledgers[0].clone(), config, common::LOOPBACK)
            .await
            .expect("node starts");
        let ledger = node.ledger().clone();
        let person = common::register_person(api, "op", "C. Test", &ledger).await;
        node.add_user(
            "patient",
            Principal::Patient {
                name: "patient".into(),
                person,
            },
        );
        let device: DeviceId = "thermo-9".parse().expect("valid");
        let key = DeviceKey::from_seed([5; 32]);
        common::enroll_device(api, "op", person, &device, &key.public(), &ledger).await;

        // A sequence number beyond the stored range, in a batch of good packs: refused alone,
        // with a final reason (never "send again"); the others are stored.
        let packs = [
            pack_at(&key, &device, 1, t0_ms()),
            pack_at(&key, &device, 1 << 63, t0_ms()),
            pack_at(&key, &device, 2, t0_ms() + 1_000),
            pack_at(&key, &device, 3, t0_ms() + 2_000),
        ];
        let incoming: Vec<_> = packs
            .iter()
            .map(|bytes| vigil_node::ingest::Incoming {
                person: Some(person),
                bytes,
            })
            .collect();
        let replies = node.ingest_batch(&incoming, "test");
        let accepted: Vec<bool> = replies.iter().map(|r| r.accepted).collect();
        assert_eq!(accepted, [true, false, true, true], "{replies:?}");
        let refusal = replies[1].error.as_ref().expect("a reason");
        assert_eq!(
            refusal.reason,
            vigil_gateway::Rejection::SequenceOutOfRange,
            "{refusal}"
        );
        assert!(refusal.reason.is_final());
        let path = format!("/api/packs/{person}");
        let json = "application/senml+json";
        let (status, reply) = http_raw(
            api,
            "POST",
            &path,
            None,
            json,
            pack_at(&key, &device, u64::MAX, t0_ms()),
        )
        .await;
        assert_eq!(
            (status, reply["error"]["reason"].as_str()),
            (422, Some("sequence_out_of_range")),
            "{reply}"
        );

        // A reading stamped beyond the node's clock plus the skew: refused; within it: stored.
        let now = vigil_node::now_ms();
        let (status, reply) = http_raw(
            api,
            "POST",
            &path,
            None,
            json,
            pack_at(&key, &device, 10, now + 600_000),
        )
        .await;
        assert_eq!(
            (status, reply["error"]["reason"].as_str()),
            (422, Some("future_reading")),
            "{reply}"
        );
        let (status, reply) = http_raw(
            api,
            "POST",
            &path,
            None,
            json,
            pack_at(&key, &device, 11, now + 60_000),
        )
        .await;
        assert_eq!(status, 200, "{reply}");
        let report = node.verify_ehr().expect("verifies");
        assert_eq!(report.anchored + report.pending, 4, "{report:?}");

        // Path numbers out of range: a JSON error, never 500.
        for (route, want) in [
            ("/api/ehr/records/9223372036854775808/verify", 404),
            ("/api/ehr/records/18446744073709551616/verify", 400),
            ("/api/ehr/records/-1/verify", 400),
            ("/api/ledger/blocks/9223372036854775808", 404),
            ("/api/ledger/blocks/99999999999999999999/verify", 400),
        ] {
            let (status, body) = http(api, "GET", route, Some("op"), None).await;
            assert_eq!(status, want, "{route}: {body}");
            assert!(body["error"].is_string(), "{route}: {body}");
        }

        // Weak and non-canonical device keys: refused at enrollment, nothing enrolled.
        let identity_point = format!("01{}", "00".repeat(31));
        let non_canonical = (2..=18u8)
            .map(|y| {
                let mut bytes = [0xff; 32];
                bytes[0] = 0xed + y;
                bytes[31] = 0x7f;
                bytes
            })
            .find(|bytes| vigil_core::DevicePublicKey::from_bytes(bytes).is_ok())
            .map(hex::encode)
            .expect("a point with a small y");
        for (name, public_key) in [("weak", identity_point), ("non-canonical", non_canonical)] {
            let body =
                json!({"person": person, "device": format!("d-{name}"), "public_key": public_key});
            let (status, answer) = http(api, "POST", "/api/devices", Some("op"), Some(body)).await;
            assert_eq!(status, 400, "{name}: {answer}");
            assert!(
                answer["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("public_key"),
                "{name}: {answer}"
            );
        }

        // A refused registration writes nothing: no identity left behind.
        assert_eq!(identities_stored(&data_dir), 1);
        let (status, answer) = http(
            api,
            "POST",
            "/api/people",
            Some("admin"),
            Some(json!({"name": "X"})),
        )
        .await;
        assert_eq!(status, 403, "{answer}");
        assert_eq!(
            identities_stored(&data_dir),
            1,
            "the refused registration left an identity"
        );

        // `?token=` only on the event stream; the scheme in any case; 401 names the scheme.
        let (status, headers, _) = get_with(api, "/api/people?token=op", None).await;
        assert_eq!(status, 401);
        let challenge = headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(challenge.starts_with("Bearer"), "{headers:?}");
        let (status, _, _) = get_with(api, "/api/alerts/stream?token=op", None).await;
        assert_eq!(status, 200);
        for scheme in ["bearer", "BEARER", "Bearer"] {
            let (status, _, body) =
                get_with(api, "/api/people", Some(&format!("{scheme} op"))).await;
            assert_eq!(status, 200, "{scheme}: {body}");
        }
        // Health data and identities are not kept by caches; no answer is content-sniffed.
        let readings = format!("/api/people/{person}/readings");
        for (route, token) in [
            (readings.as_str(), "Bearer patient"),
            (&format!("/api/people/{person}/identity"), "Bearer op"),
            ("/api/people", "Bearer op"),
        ] {
            let (status, headers, body) = get_with(api, route, Some(token)).await;
            assert_eq!(status, 200, "{route}: {body}");
            assert_eq!(
                headers.get("cache-control").map(|v| v.as_bytes()),
                Some(&b"no-store"[..]),
                "{route}"
            );
            assert_eq!(
                headers.get("x-content-type-options").map(|v| v.as_bytes()),
                Some(&b"nosniff"[..]),
                "{route}"
            );
        }

        // A bounded `limit` on readings.
        let (status, body) = http(
            api,
            "GET",
            &format!("{readings}?limit=1001"),
            Some("patient"),
            None,
        )
        .await;
        assert_eq!(status, 400, "{body}");
        let (status, body) = http(
            api,
            "GET",
            &format!("{readings}?limit=1000"),
            Some("patient"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["observations"].as_array().map(Vec::len),
            Some(4),
            "{body}"
        );
        // A per-caller allowance on health-record requests: a flood is answered 429 with
        // Retry-After, and another caller is still served.
        let mut limited = None;
        for _ in 0..(2 * vigil_api::shared::EHR_REQUESTS_BURST) {
            let (status, headers, _) = get_with(
                api,
                &format!("{readings}?limit=1001"),
                Some("Bearer patient"),
            )
            .await;
            if status == 429 {
                limited = headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                break;
            }
            assert_eq!(status, 400);
        }
        let retry_after: u64 = limited
            .expect("a flood is limited")
            .parse()
            .expect("whole seconds");
        assert!(retry_after >= 1);
        assert_eq!(get_with(api, &readings, Some("Bearer op")).await.0, 200);
        cluster.shutdown();
    });
}
