//! The dashboard's routes (`crates/api/src/map.rs`, `ledger.rs`) on a node over four validators:
//! the map shows a person's last position, zone and alert level to operators only; a block
//! verifies (hash link, transaction root, signatures, certificate against the validator set);
//! a health record verifies against its ledger anchor; and each route refuses the roles it
//! does not admit.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{WAIT, enroll_device, free_port, http, http_raw, register_person, until};
use commonware_runtime::{Runner as _, Supervisor as _, tokio as cw_tokio};
use serde_json::json;
use vigil_core::senml::PackDraft;
use vigil_core::{DeviceId, DeviceKey, GeoFix, Metric, PersonId, Value};
use vigil_ledger::local::{LocalConfig, start_local};
use vigil_ledger::signer::Signer;
use vigil_ledger::sim::Keys;
use vigil_node::users::{Principal, Users};
use vigil_node::{MqttMode, NodeConfig, now_ms};

const HOME: (i32, i32) = (48_137_000, 11_575_000);
const TILES: &str = "http://127.0.0.1:9/tiles/{z}/{x}/{y}.png";
/// The dashboard's policy with [`TILES`]: its origin added to `img-src`, nothing else.
const POLICY: &str =
    "default-src 'self'; img-src 'self' data: http://127.0.0.1:9; frame-ancestors 'none'";

/// `GET path` as the operator until `done` holds (at most [`WAIT`]).
async fn poll(
    api: SocketAddr,
    path: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, value) = http(api, "GET", path, Some("op"), None).await;
        if done(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "GET {path}: still {value}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn map_and_verification_routes_answer_the_roles_they_admit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = cw_tokio::Config::new().with_storage_directory(dir.path().join("ledger"));
    let data_dir = dir.path().join("node");
    cw_tokio::Runner::new(runtime).start(|context| async move {
        let cluster = start_local(context.child("ledger"), LocalConfig::new(Keys::new(4, 1))).await;
        let mut users = Users::default();
        let staff = |name: &str, key| Principal::Staff {
            name: name.into(),
            signer: Signer::new(key).into(),
        };
        users.insert("op", staff("operator", cluster.keys.operator.clone()));
        users.insert("admin", staff("admin", cluster.keys.admin.clone()));
        users.insert(
            "nobody",
            staff("no-roles", commonware_cryptography::Signer::from_seed(78)),
        );
        let config = NodeConfig {
            data_dir: data_dir.clone(),
            mqtt: MqttMode::Embedded(free_port()),
            ehr_master_key: vigil_ehr::SecretKey::random(),
            gateway: Signer::new(cluster.keys.gateways[0].clone()),
            users,
            future_skew: vigil_node::FUTURE_SKEW_DEFAULT,
            map_tiles: Some(
                vigil_node::MapTiles::new(TILES, "© Test tiles contributors").expect("valid"),
            ),
            notify: None,
        };
        let (node, api) = vigil_api::start(cluster.ledgers[0].clone(), config, common::LOOPBACK)
            .await
            .expect("node starts");
        let ledger = node.ledger().clone();

        // The tile server: its template for every signed-in user, its origin (and no other) in
        // the policy of every dashboard file, the vendored map library among them.
        let (status, config) = http(api, "GET", "/api/map/config", Some("op"), None).await;
        assert_eq!(status, 200, "{config}");
        assert_eq!(
            config["tiles"],
            json!({"url": TILES, "attribution": "© Test tiles contributors", "max_zoom": 19})
        );
        assert_eq!(http(api, "GET", "/api/map/config", None, None).await.0, 401);
        for (path, content_type) in [
            ("/", "text/html; charset=utf-8"),
            ("/web/map.js", "text/javascript; charset=utf-8"),
            ("/web/mapview.js", "text/javascript; charset=utf-8"),
            (
                "/web/vendor/leaflet/leaflet.js",
                "text/javascript; charset=utf-8",
            ),
            ("/web/vendor/leaflet/leaflet.css", "text/css; charset=utf-8"),
        ] {
            let (status, served_as, policy) = common::get_headers(api, path).await;
            assert_eq!((status, served_as.as_str()), (200, content_type), "{path}");
            assert_eq!(policy, POLICY, "{path}");
        }
        assert_eq!(
            common::get_headers(api, "/web/vendor/leaflet/images/marker-icon.png")
                .await
                .0,
            404
        );

        let person = register_person(api, "op", "M. Map", &ledger).await;
        node.add_user(
            "patient",
            Principal::Patient {
                name: "patient".into(),
                person,
            },
        );
        node.add_user(
            "stranger",
            Principal::Patient {
                name: "stranger".into(),
                person: PersonId::random(),
            },
        );
        until("registered", || {
            ledger.snapshot().person(&person).is_some().then_some(())
        })
        .await;
        let phone: DeviceId = "phone-7".parse().expect("valid");
        let key = DeviceKey::from_seed([7; 32]);
        enroll_device(api, "op", person, &phone, &key.public(), &ledger).await;
        let geofence = json!({"kind": "geofence", "dwell_ms": 0, "zones": [{"name": "home",
            "rule": "keep-inside", "level": 2,
            "circle": {"lat_udeg": HOME.0, "lon_udeg": HOME.1, "radius_m": 50}}]});
        let body = json!({"person": person, "device": phone, "params": geofence});
        assert_eq!(
            http(api, "POST", "/api/instances", Some("op"), Some(body))
                .await
                .0,
            202
        );
        until("deployed", || {
            (ledger.snapshot().instance_count() > 0).then_some(())
        })
        .await;

        // Before any fix: the person is listed without a position, their zone is known.
        let (status, map) = http(api, "GET", "/api/map", Some("op"), None).await;
        assert_eq!(status, 200, "{map}");
        assert_eq!(map["people"][0]["person"], json!(person));
        assert!(map["people"][0].get("lat_udeg").is_none(), "{map}");
        let (_, zones) = http(api, "GET", "/api/map/zones", Some("op"), None).await;
        assert_eq!(zones["zones"][0]["name"], "home", "{zones}");
        assert_eq!(zones["zones"][0]["circle"]["radius_m"], 50, "{zones}");
        assert_eq!(zones["zones"][0]["person"], json!(person));

        // A fix 1 km north of home: the map shows it, and the alert it raises, once final.
        let away = GeoFix {
            lat_udeg: HOME.0 + 9_000,
            lon_udeg: HOME.1,
            accuracy_m: 10,
        };
        let mut draft = PackDraft::new(phone.clone(), 1);
        draft.push(Metric::Position, now_ms(), Value::Position(away));
        let path = format!("/api/packs/{person}");
        let (status, reply) = http_raw(
            api,
            "POST",
            &path,
            None,
            "application/senml+json",
            draft.sign(&key).to_json(),
        )
        .await;
        assert_eq!(status, 200, "{reply}");
        let placed = poll(api, "/api/map", |map| map["people"][0]["level"] == 2).await;
        assert_eq!(placed["people"][0]["lat_udeg"], away.lat_udeg, "{placed}");
        assert_eq!(placed["people"][0]["accuracy_m"], 10, "{placed}");

        // Block verification: every finalized block so far passes every check.
        let (tip, _) = ledger.finalized();
        let (status, verdict) = http(
            api,
            "GET",
            &format!("/api/ledger/blocks/{tip}/verify"),
            Some("op"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{verdict}");
        let certificate = verdict["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["check"] == "certificate")
            .cloned();
        // The node was not given the validator set: it says so rather than claim a verified certificate.
        assert_eq!(
            certificate.as_ref().map(|c| c["ok"].clone()),
            Some(json!(false)),
            "{verdict}"
        );
        node.set_genesis(cluster.genesis.clone());
        for height in 1..=tip {
            let (status, verdict) = http(
                api,
                "GET",
                &format!("/api/ledger/blocks/{height}/verify"),
                Some("op"),
                None,
            )
            .await;
            assert_eq!(status, 200, "{verdict}");
            assert_eq!(verdict["verified"], true, "block {height}: {verdict}");
        }
        assert_eq!(
            http(
                api,
                "GET",
                "/api/ledger/blocks/999999/verify",
                Some("op"),
                None
            )
            .await
            .0,
            404
        );
        assert_eq!(
            http(api, "GET", "/api/ledger/blocks/x/verify", Some("op"), None)
                .await
                .0,
            400
        );

        // The health record: record 1 (the fix) proves against its anchor once anchored.
        let record = poll(api, "/api/ehr/records/1/verify", |v| v["verified"] == true).await;
        assert_eq!(record["verified"], true, "{record}");
        assert_eq!(record["person"], json!(person));
        assert_eq!(
            http(
                api,
                "GET",
                "/api/ehr/records/1/verify",
                Some("patient"),
                None
            )
            .await
            .0,
            200
        );
        // A record altered on disk after it was anchored (one ciphertext byte flipped, as an
        // attacker with the file would) no longer verifies; restored, it verifies again.
        let flip_a_ciphertext_bit = || {
            let db = rusqlite::Connection::open(vigil_node::ehr_path(&data_dir)).expect("ehr");
            let mut ciphertext: Vec<u8> = db
                .query_row("SELECT ciphertext FROM records WHERE seq = 1", [], |r| {
                    r.get(0)
                })
                .expect("record 1");
            ciphertext[0] ^= 1;
            db.execute(
                "UPDATE records SET ciphertext = ?1 WHERE seq = 1",
                [&ciphertext],
            )
            .expect("update");
        };
        flip_a_ciphertext_bit();
        let (status, altered) =
            http(api, "GET", "/api/ehr/records/1/verify", Some("op"), None).await;
        assert_eq!(status, 200, "{altered}");
        assert_eq!(
            altered["verified"], false,
            "a tampered record verified: {altered}"
        );
        flip_a_ciphertext_bit(); // flipping the same bit again restores the stored bytes
        let restored = poll(api, "/api/ehr/records/1/verify", |v| v["verified"] == true).await;
        assert_eq!(restored["leaf"], record["leaf"], "{restored}");
        assert_eq!(
            http(
                api,
                "GET",
                "/api/ehr/records/424242/verify",
                Some("op"),
                None
            )
            .await
            .0,
            404
        );

        // Route by route: who may call what.
        let routes: [(&str, &[(&str, u16)]); 6] = [
            (
                "/api/map/config",
                &[
                    ("op", 200),
                    ("admin", 200),
                    ("nobody", 200),
                    ("patient", 200),
                ],
            ),
            (
                "/api/map",
                &[
                    ("op", 200),
                    ("admin", 200),
                    ("nobody", 403),
                    ("patient", 403),
                ],
            ),
            (
                "/api/map/zones",
                &[
                    ("op", 200),
                    ("admin", 200),
                    ("nobody", 403),
                    ("patient", 403),
                ],
            ),
            (
                "/api/ledger/blocks/1/verify",
                &[
                    ("op", 200),
                    ("admin", 200),
                    ("nobody", 403),
                    ("patient", 403),
                ],
            ),
            (
                "/api/ehr/records/1/verify",
                &[
                    ("op", 200),
                    ("admin", 200),
                    ("nobody", 403),
                    ("patient", 200),
                    ("stranger", 403),
                ],
            ),
            ("/api/ehr/records/1/verify?token=op", &[("nobody", 403)]),
        ];
        for (route, expectations) in routes {
            if !route.contains("token=") {
                assert_eq!(
                    http(api, "GET", route, None, None).await.0,
                    401,
                    "{route} without a token"
                );
            }
            for (token, status) in expectations {
                let (got, reply) = http(api, "GET", route, Some(token), None).await;
                assert_eq!(got, *status, "GET {route} as {token}: {reply}");
            }
        }
        cluster.shutdown();
    });
}
