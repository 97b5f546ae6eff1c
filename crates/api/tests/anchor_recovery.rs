//! The health record's anchors after a crash between sealing a batch and finalizing its
//! anchor, on real components (four validators over authenticated p2p on loopback, the node,
//! its SQLite record).
//!
//! The node is started on a record that a node left when it died right after sealing a batch:
//! the batch is sealed, its anchor never reached the ledger, and more records came after it.
//! The restarted node must anchor that batch as it was sealed, then the later records, so that
//! every record proves against the ledger; an anchor sent twice must count once; and a
//! transaction the mempool drops must not stall the node's later ones.

mod common;

use common::{t0_ms, until};
use commonware_cryptography::Signer as _;
use commonware_runtime::{Runner as _, Supervisor as _, tokio as cw_tokio};
use vigil_core::{Metric, PersonId, Reading, Value};
use vigil_ehr::{Ehr, Identity, SecretKey};
use vigil_ledger::local::{LocalConfig, start_local};
use vigil_ledger::node::SubmitError;
use vigil_ledger::signer::Signer;
use vigil_ledger::sim::Keys;
use vigil_ledger::state::Rejection;
use vigil_ledger::tx::TxBody;
use vigil_node::users::Users;
use vigil_node::{MqttMode, NodeConfig, ehr_path, ledger_anchors};

fn temperature(i: i64) -> Reading {
    Reading {
        device: "thermo-01".parse().expect("valid"),
        metric: Metric::BodyTemperature,
        time_ms: t0_ms() + i * 1_000,
        value: Value::Scalar(3_700),
    }
}

#[test]
fn a_batch_sealed_before_a_crash_is_anchored_after_the_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = cw_tokio::Config::new().with_storage_directory(dir.path().join("ledger"));
    let data_dir = dir.path().join("node");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let master = SecretKey::random();

    // What the node left: records 1..=3 sealed into a batch whose anchor was never submitted,
    // records 4..=5 stored after it.
    let sealed = {
        let mut ehr = Ehr::open(&ehr_path(&data_dir), master.clone()).expect("opens");
        let person = PersonId::random();
        ehr.register_person(person, &Identity::default())
            .expect("registers");
        for i in 0..3 {
            ehr.append(person, &[temperature(i)]).expect("stores");
        }
        let sealed = ehr.seal_batch().expect("seals").expect("a batch");
        for i in 3..5 {
            ehr.append(person, &[temperature(i)]).expect("stores");
        }
        sealed
    };
    assert_eq!((sealed.first_seq, sealed.count), (1, 3));

    cw_tokio::Runner::new(runtime).start(|context| async move {
        let cluster = start_local(context.child("ledger"), LocalConfig::new(Keys::new(4, 1))).await;
        let gateway_key = cluster.keys.gateways[0].clone();
        let config = NodeConfig {
            data_dir: data_dir.clone(),
            mqtt: MqttMode::Disabled,
            ehr_master_key: master,
            gateway: Signer::new(gateway_key.clone()),
            users: Users::default(),
            future_skew: vigil_node::FUTURE_SKEW_DEFAULT,
            map_tiles: None,
            notify: None,
        };
        let (node, _api) = vigil_api::start(cluster.ledgers[0].clone(), config, common::LOOPBACK)
            .await
            .expect("node starts");
        let ledger = node.ledger().clone();

        let report = until("every record anchored", || {
            let report = node.verify_ehr().ok()?;
            (report.anchored == 5 && report.pending == 0).then_some(report)
        })
        .await;
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.verified, 5);
        let gateway = gateway_key.public_key();
        let anchors = ledger_anchors(&ledger.snapshot(), &gateway);
        assert_eq!(
            anchors
                .iter()
                .map(|a| (a.first_seq, a.count))
                .collect::<Vec<_>>(),
            [(1, 3), (4, 2)]
        );
        assert_eq!(anchors[0].root, sealed.root, "the batch as it was sealed");

        // The first anchor again: refused, so nothing is counted twice.
        let twin = TxBody::EhrAnchor {
            first_seq: 1,
            root: sealed.root,
            count: 3,
            from_ms: sealed.from_ms,
            to_ms: sealed.to_ms,
        };
        let again = Signer::new(gateway_key.clone());
        assert!(matches!(
            again.submit_checked(&ledger, twin),
            Err(SubmitError::Rejected(Rejection::AnchorOutOfOrder {
                expected: 6,
                got: 1
            }))
        ));

        // Two copies of one anchor pending at once (as a node re-sending an anchor it thinks
        // lost while the first copy still circulates): one applies; the other keeps failing
        // and the mempool drops it, alone, remembering why. The identity's next transaction
        // must still finalize: nonces do not chain, so nothing waits behind the dropped one.
        let next = TxBody::EhrAnchor {
            first_seq: 6,
            root: [7; 32],
            count: 1,
            from_ms: t0_ms(),
            to_ms: t0_ms(),
        };
        let first = again.submit_tx(&ledger, next.clone()).expect("admitted");
        let second = again.submit_tx(&ledger, next).expect("admitted");
        assert_eq!(second.nonce(), first.nonce() + 1);
        until("the copy dropped", || {
            let applied = ledger.next_nonce(&gateway) > first.nonce();
            (applied && !ledger.is_pending(&second)).then_some(())
        })
        .await;
        let after = TxBody::EhrAnchor {
            first_seq: 7,
            root: [8; 32],
            count: 1,
            from_ms: t0_ms(),
            to_ms: t0_ms(),
        };
        let after = again.submit_tx(&ledger, after).expect("admitted");
        assert_eq!(
            after.nonce(),
            second.nonce() + 1,
            "a dropped transaction's nonce is never handed out again (a copy may be pending elsewhere)"
        );
        let dropped = ledger.dropped(&second.id()).expect("the copy's drop is remembered");
        assert!(
            dropped.reason.to_string().contains("anchor"),
            "{}",
            dropped.reason
        );
        until("the next anchor finalized", || {
            (ledger.snapshot().view().next_anchored_seq(&gateway) == 8).then_some(())
        })
        .await;
    });
}
