//! Every operation of the served OpenAPI document that needs a token, tried by a stranger (no
//! token), with a token nobody was given, and as staff who hold no role: the first two get 401
//! with `WWW-Authenticate`; the third gets 403, or, for a write whose placeholder body is
//! refused first, another refusal (never a success), and on the one route open to any
//! authenticated caller its own answer. The operations are read from the document the node serves, so a
//! route added to it is tried here without editing this test.

mod common;

use common::{free_port, http_challenge, node_config, register_person, staff};
use commonware_runtime::{Runner as _, Supervisor as _, tokio as cw_tokio};
use vigil_ledger::local::{LocalConfig, start_local};
use vigil_ledger::sim::Keys;
use vigil_node::MqttMode;
use vigil_node::users::Users;

/// Well-formed values for the document's path parameters, so a refusal is about the caller,
/// not the path.
fn concrete(path: &str, person: &str) -> String {
    path.replace("{person}", person)
        .replace("{device}", "oxi-1")
        .replace("{instance}", &"ab".repeat(32))
        .replace("{alert}", &"cd".repeat(32))
        .replace("{height}", "1")
        .replace("{seq}", "1")
        .replace("{id}", &"ef".repeat(32))
}

#[test]
fn every_operation_refuses_strangers_and_staff_without_a_role() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = cw_tokio::Config::new().with_storage_directory(dir.path().join("ledger"));
    let data_dir = dir.path().join("node");
    cw_tokio::Runner::new(runtime).start(|context| async move {
        let cluster = start_local(context.child("ledger"), LocalConfig::new(Keys::new(4, 1))).await;
        let mut users = Users::default();
        users.insert("op", staff("operator", cluster.keys.operator.clone()));
        let no_roles = commonware_cryptography::Signer::from_seed(91);
        users.insert("nobody", staff("no-roles", no_roles));
        let mqtt = MqttMode::Embedded(free_port());
        let config = node_config(data_dir, mqtt, cluster.keys.gateways[0].clone(), users);
        let (node, api) = vigil_api::start(cluster.ledgers[0].clone(), config, common::LOOPBACK)
            .await
            .expect("node starts");
        let person = register_person(api, "op", "M. Matrix", node.ledger()).await;
        let person = person.to_string();
        let (status, document) = common::http(api, "GET", "/api/openapi.json", None, None).await;
        assert_eq!(status, 200);
        // Without a tile server the map is a plane and the dashboard's images come from the
        // node alone.
        let (status, map) = common::http(api, "GET", "/api/map/config", Some("op"), None).await;
        assert_eq!(
            (status, &map["tiles"]),
            (200, &serde_json::Value::Null),
            "{map}"
        );
        let (status, _, policy) = common::get_headers(api, "/").await;
        assert_eq!(status, 200);
        assert_eq!(
            policy,
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
        );

        let mut tried = 0;
        let mut wrong = Vec::new();
        let paths = document["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("an operation map") {
                let needs_token = operation["security"]
                    .as_array()
                    .is_some_and(|schemes| !schemes.is_empty());
                if !needs_token {
                    continue;
                }
                tried += 1;
                let mut target = concrete(path, &person);
                let needs_person = operation["parameters"].as_array().is_some_and(|ps| {
                    ps.iter().any(|p| {
                        p["in"] == "query" && p["name"] == "person" && p["required"] == true
                    })
                });
                if needs_person {
                    target = format!("{target}?person={person}");
                }
                for token in [None, Some("no-such-token")] {
                    let (status, challenged) = http_challenge(api, method, &target, token).await;
                    if status != 401 || !challenged {
                        wrong.push(format!(
                            "{method} {path} with {token:?}: {status}, challenge {challenged}"
                        ));
                    }
                }
                let (status, _) = http_challenge(api, method, &target, Some("nobody")).await;
                // A write's body may be refused before its signer meets the ledger's permission
                // table (the body `{}` is not a valid one): any refusal but 401 is right there,
                // since nothing is written; everything else must be refused for the role.
                let open_to_all = operation["x-roles"] == "any authenticated caller";
                let has_body = !operation["requestBody"].is_null();
                let expected = if open_to_all {
                    (200..300).contains(&status)
                } else if has_body {
                    (400..500).contains(&status) && status != 401
                } else {
                    status == 403
                };
                if !expected {
                    wrong.push(format!("{method} {path} as staff without a role: {status}"));
                }
            }
        }
        assert!(
            tried >= 25,
            "only {tried} operations need a token in the document"
        );
        assert!(
            wrong.is_empty(),
            "{} refusals wrong:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        cluster.shutdown();
    });
}
