//! State-machine tests: every permission rule and every rejection.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use commonware_cryptography::{Signer as _, ed25519::PrivateKey};
use vigil_core::{AlertLevel, DeviceId, DeviceKey, PersonId};

use crate::state::{
    AlertStatus, Layer, QuerySpecError, Rejection, State, View, execute_block, spec_with_cohort,
};
use crate::tx::{
    Deployment, EscalationPolicy, OrderKind, ParamsError, Role, Tx, TxBody, TxId, TxKind,
    tests::sample_bodies,
};

const CHAIN: [u8; 32] = [42; 32];

/// Valid threshold parameters, distinct for each `n`.
fn threshold(n: u8) -> vigil_contracts::Params {
    vigil_contracts::Params::Threshold(vigil_contracts::ThresholdParams::seed(
        vigil_core::Metric::BodyTemperature,
        3500,
        3800 + i32::from(n),
        50,
    ))
}

/// The ledger encoding of [`threshold`].
fn threshold_bytes(n: u8) -> Bytes {
    Deployment::new(
        PersonId::from_bytes([0; 16]),
        "x".parse().expect("id"),
        &threshold(n),
    )
    .params
}

/// A ledger state plus the keys that act on it; applies one transaction per block.
struct World {
    state: State,
    nonces: HashMap<Vec<u8>, u64>,
    admin: PrivateKey,
    operator: PrivateKey,
    gateway: PrivateKey,
    doctor: PrivateKey,
    auditor: PrivateKey,
    verifier: PrivateKey,
    nobody: PrivateKey,
    /// The time of the next block: the only clock the state machine reads.
    time_ms: i64,
}

impl World {
    fn new() -> World {
        let admin = PrivateKey::from_seed(1);
        let world = World {
            state: State::genesis(CHAIN, &[(admin.public_key(), Role::Admin)]),
            nonces: HashMap::new(),
            admin,
            operator: PrivateKey::from_seed(2),
            gateway: PrivateKey::from_seed(3),
            doctor: PrivateKey::from_seed(4),
            auditor: PrivateKey::from_seed(5),
            verifier: PrivateKey::from_seed(6),
            nobody: PrivateKey::from_seed(7),
            time_ms: 1_000_000,
        };
        let mut world = world;
        for (key, role) in [
            (world.operator.clone(), Role::CdcpOperator),
            (world.gateway.clone(), Role::Gateway),
            (world.doctor.clone(), Role::Doctor),
            (world.auditor.clone(), Role::Auditor),
            (world.verifier.clone(), Role::VerifyingNode),
        ] {
            let admin = world.admin.clone();
            world
                .run(
                    &admin,
                    TxBody::GrantRole {
                        identity: key.public_key(),
                        role,
                    },
                )
                .expect("grant");
        }
        world
    }

    fn sign(&mut self, key: &PrivateKey, body: TxBody) -> Tx {
        let nonce = self.nonces.entry(key.public_key().to_vec()).or_insert(0);
        Tx::sign(key, &CHAIN, *nonce, body)
    }

    /// Apply one transaction as its own block; on success the signer's nonce advances.
    fn run(&mut self, key: &PrivateKey, body: TxBody) -> Result<TxId, Rejection> {
        let tx = self.sign(key, body);
        self.submit(&tx)
    }

    fn submit(&mut self, tx: &Tx) -> Result<TxId, Rejection> {
        assert!(tx.verify_signature(&CHAIN));
        let layer = execute_block(
            &self.state,
            &[],
            self.state.height() + 1,
            self.time_ms,
            std::slice::from_ref(tx),
        )
        .map_err(|(_, r)| r)?;
        self.state.merge(&layer);
        *self.nonces.entry(tx.signer().to_vec()).or_insert(0) = tx.nonce() + 1;
        Ok(tx.id())
    }

    fn view(&self) -> View<'_> {
        self.state.view()
    }

    /// A registered person with an enrolled device and a deployed threshold instance.
    fn monitored(&mut self, n: u8) -> (PersonId, DeviceId, Deployment) {
        let person = PersonId::from_bytes([n; 16]);
        let device: DeviceId = format!("thermo-{n}").parse().expect("valid");
        let operator = self.operator.clone();
        self.run(&operator, TxBody::RegisterPerson { person })
            .expect("register");
        self.run(
            &operator,
            TxBody::EnrollDevice {
                person,
                device: device.clone(),
                public_key: DeviceKey::from_seed([n; 32]).public().to_bytes(),
            },
        )
        .expect("enroll");
        let deployment = Deployment::new(person, device.clone(), &threshold(n));
        self.run(
            &operator,
            TxBody::DeployInstance {
                deployment: deployment.clone(),
            },
        )
        .expect("deploy");
        (person, device, deployment)
    }

    /// A critical alert on the instance, on a reading later than its last alert's.
    fn alert(&mut self, deployment: &Deployment) -> TxId {
        let gateway = self.gateway.clone();
        let reading_time_ms = self
            .view()
            .last_alerts(&deployment.instance_id())
            .map_or(1_000, |last| last.reading_time_ms + 1);
        self.run(
            &gateway,
            TxBody::Alert {
                instance: deployment.instance_id(),
                level: AlertLevel::Critical,
                reading_time_ms,
                evidence: [9; 32],
            },
        )
        .expect("alert")
    }
}

#[test]
fn permission_table_is_enforced_for_every_kind() {
    // For every kind: a signer holding none of the allowed roles is rejected as Unauthorized
    // (before any lifecycle check), and a signer holding one is not.
    for body in sample_bodies() {
        let kind = body.kind();
        let mut world = World::new();
        let nobody = world.nobody.clone();
        let tx = world.sign(&nobody, body.clone());
        assert_eq!(
            world.view().check(&tx),
            Err(Rejection::Unauthorized {
                kind,
                needed: kind.allowed_roles()
            }),
            "{kind:?}"
        );
        // Every role outside the allowed set is refused too.
        for role in Role::ALL {
            if kind.allowed_roles().contains(&role) {
                continue;
            }
            let mut world = World::new();
            let holder = PrivateKey::from_seed(100 + role.code() as u64);
            let admin = world.admin.clone();
            world
                .run(
                    &admin,
                    TxBody::GrantRole {
                        identity: holder.public_key(),
                        role,
                    },
                )
                .expect("grant");
            let tx = world.sign(&holder, body.clone());
            assert!(
                matches!(world.view().check(&tx), Err(Rejection::Unauthorized { .. })),
                "{kind:?} by {role:?}"
            );
        }
        for role in kind.allowed_roles() {
            let mut world = World::new();
            let holder = PrivateKey::from_seed(200 + role.code() as u64);
            let admin = world.admin.clone();
            if *role != Role::Admin {
                world
                    .run(
                        &admin,
                        TxBody::GrantRole {
                            identity: holder.public_key(),
                            role: *role,
                        },
                    )
                    .expect("grant");
            }
            let key = if *role == Role::Admin { admin } else { holder };
            let tx = world.sign(&key, body.clone());
            assert!(
                !matches!(world.view().check(&tx), Err(Rejection::Unauthorized { .. })),
                "{kind:?} by {role:?}"
            );
        }
    }
    assert_eq!(TxKind::ALL.len(), sample_bodies().len());
}

fn register(world: &mut World, nonce: u64, n: u8) -> Result<TxId, Rejection> {
    let operator = world.operator.clone();
    let tx = Tx::sign(
        &operator,
        &CHAIN,
        nonce,
        TxBody::RegisterPerson {
            person: PersonId::from_bytes([n; 16]),
        },
    );
    world.submit(&tx)
}

#[test]
fn nonces_are_used_once_and_holes_never_block() {
    let mut world = World::new();
    let operator = world.operator.clone();
    let tx = world.sign(
        &operator,
        TxBody::RegisterPerson {
            person: PersonId::from_bytes([1; 16]),
        },
    );
    world.submit(&tx).expect("first time");
    assert_eq!(world.submit(&tx), Err(Rejection::NonceUsed { nonce: 0 }));
    // A nonce ahead leaves a hole (a dropped transaction's) that blocks nothing...
    register(&mut world, 5, 2).expect("ahead of a hole");
    assert_eq!(world.view().next_nonce(&operator.public_key()), 6);
    assert_eq!(
        register(&mut world, 5, 3),
        Err(Rejection::NonceUsed { nonce: 5 })
    );
    // ...and stays usable once, until the window moves past it.
    register(&mut world, 2, 4).expect("a hole is usable");
    assert_eq!(
        register(&mut world, 2, 5),
        Err(Rejection::NonceUsed { nonce: 2 })
    );
    let far = 5 + crate::state::NONCE_WINDOW + 10;
    register(&mut world, far, 6).expect("far ahead");
    let floor = far + 1 - crate::state::NONCE_WINDOW;
    assert_eq!(
        register(&mut world, 3, 7),
        Err(Rejection::NonceExpired { nonce: 3, floor })
    );
    register(&mut world, floor, 8).expect("the floor itself is still usable");
    assert_eq!(
        register(&mut world, floor, 9),
        Err(Rejection::NonceUsed { nonce: floor })
    );
    assert_eq!(
        register(&mut world, u64::MAX, 10),
        Err(Rejection::NonceOutOfRange { nonce: u64::MAX })
    );
}

/// The window against a plain model (a set of used nonces), over jumps that cross word
/// boundaries and the window's size.
#[test]
fn nonce_window_agrees_with_a_set_of_used_nonces() {
    let mut window = crate::state::NonceWindow::default();
    let mut used = std::collections::BTreeSet::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..5000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let top = used.last().map_or(0, |t: &u64| t + 1);
        // Mostly near the top, sometimes far ahead or far behind.
        let nonce = match x % 10 {
            0 => top + (x >> 8) % 3000,
            1 => top.saturating_sub((x >> 8) % 3000),
            _ => (top + (x >> 8) % 70).saturating_sub(60),
        };
        let floor = top.saturating_sub(crate::state::NONCE_WINDOW);
        let expected = if nonce < floor {
            Err(Rejection::NonceExpired { nonce, floor })
        } else if used.contains(&nonce) {
            Err(Rejection::NonceUsed { nonce })
        } else {
            Ok(())
        };
        assert_eq!(window.check(nonce), expected, "nonce {nonce}, top {top}");
        if expected.is_ok() {
            window = window.with_used(nonce);
            used.insert(nonce);
        }
        assert_eq!(window.next(), used.last().map_or(0, |t| t + 1));
    }
}

/// Which nonces were used is part of the state commitment, not only the highest.
#[test]
fn the_nonce_window_is_committed_in_the_state_root() {
    let roots: Vec<_> = [[0u64, 2], [1, 2]]
        .iter()
        .map(|nonces| {
            let mut world = World::new();
            for (i, nonce) in nonces.iter().enumerate() {
                register(&mut world, *nonce, i as u8).expect("applies");
            }
            (world.state.root(), world.state.full_digest())
        })
        .collect();
    assert_ne!(roots[0].0, roots[1].0);
    assert_ne!(roots[0].1, roots[1].1);
}

#[test]
fn roles_grant_revoke_and_last_admin() {
    let mut world = World::new();
    let admin = world.admin.clone();
    let doctor = world.doctor.public_key();
    assert_eq!(
        world.run(
            &admin,
            TxBody::GrantRole {
                identity: doctor.clone(),
                role: Role::Doctor
            }
        ),
        Err(Rejection::RoleAlreadyHeld(Role::Doctor))
    );
    world
        .run(
            &admin,
            TxBody::RevokeRole {
                identity: doctor.clone(),
                role: Role::Doctor,
            },
        )
        .expect("revoke");
    assert_eq!(
        world.run(
            &admin,
            TxBody::RevokeRole {
                identity: doctor.clone(),
                role: Role::Doctor
            }
        ),
        Err(Rejection::RoleNotHeld(Role::Doctor))
    );
    // The revoked doctor can no longer query.
    let key = world.doctor.clone();
    assert!(matches!(
        world.run(
            &key,
            TxBody::StatsQuery {
                spec: Bytes::from_static(b"q")
            }
        ),
        Err(Rejection::Unauthorized { .. })
    ));
    assert_eq!(
        world.run(
            &admin,
            TxBody::RevokeRole {
                identity: admin.public_key(),
                role: Role::Admin
            }
        ),
        Err(Rejection::LastAdmin)
    );
    // With a second admin, the first may step down.
    world
        .run(
            &admin,
            TxBody::GrantRole {
                identity: doctor.clone(),
                role: Role::Admin,
            },
        )
        .expect("second admin");
    world
        .run(
            &admin,
            TxBody::RevokeRole {
                identity: admin.public_key(),
                role: Role::Admin,
            },
        )
        .expect("step down");
    assert!(!world.view().has_role(&admin.public_key(), Role::Admin));
}

#[test]
fn people_and_devices_lifecycle() {
    let mut world = World::new();
    let operator = world.operator.clone();
    let person = PersonId::from_bytes([1; 16]);
    let device: DeviceId = "ox-1".parse().expect("valid");
    let public_key = DeviceKey::from_seed([1; 32]).public().to_bytes();
    assert_eq!(
        world.run(
            &operator,
            TxBody::EnrollDevice {
                person,
                device: device.clone(),
                public_key
            }
        ),
        Err(Rejection::UnknownPerson)
    );
    world
        .run(&operator, TxBody::RegisterPerson { person })
        .expect("register");
    assert_eq!(
        world.run(&operator, TxBody::RegisterPerson { person }),
        Err(Rejection::PersonExists)
    );
    // A y-coordinate with no point on the curve: not a valid key.
    let bad_key = (2u8..=255)
        .map(|y| {
            let mut bytes = [0u8; 32];
            bytes[0] = y;
            bytes
        })
        .find(|bytes| vigil_core::DevicePublicKey::from_bytes(bytes).is_err())
        .expect("some small y is off the curve");
    assert_eq!(
        world.run(
            &operator,
            TxBody::EnrollDevice {
                person,
                device: device.clone(),
                public_key: bad_key
            }
        ),
        Err(Rejection::InvalidDeviceKey)
    );
    world
        .run(
            &operator,
            TxBody::EnrollDevice {
                person,
                device: device.clone(),
                public_key,
            },
        )
        .expect("enroll");
    assert_eq!(
        world.run(
            &operator,
            TxBody::EnrollDevice {
                person,
                device: device.clone(),
                public_key
            }
        ),
        Err(Rejection::DeviceExists)
    );
    assert_eq!(
        world.run(
            &operator,
            TxBody::RevokeDevice {
                device: "other".parse().expect("valid")
            }
        ),
        Err(Rejection::UnknownDevice)
    );
    world
        .run(
            &operator,
            TxBody::RevokeDevice {
                device: device.clone(),
            },
        )
        .expect("revoke");
    assert_eq!(
        world.run(
            &operator,
            TxBody::RevokeDevice {
                device: device.clone()
            }
        ),
        Err(Rejection::DeviceRevoked)
    );
    // Revocation is permanent for the id.
    assert_eq!(
        world.run(
            &operator,
            TxBody::EnrollDevice {
                person,
                device,
                public_key
            }
        ),
        Err(Rejection::DeviceExists)
    );
}

#[test]
fn contract_instances_lifecycle() {
    let mut world = World::new();
    let operator = world.operator.clone();
    let (person, device, deployment) = world.monitored(1);
    assert_eq!(
        world.run(
            &operator,
            TxBody::DeployInstance {
                deployment: deployment.clone()
            }
        ),
        Err(Rejection::InstanceExists)
    );
    let mut unknown_kind = deployment.clone();
    unknown_kind.kind = "astrology".into();
    assert_eq!(
        world.run(
            &operator,
            TxBody::DeployInstance {
                deployment: unknown_kind
            }
        ),
        Err(Rejection::UnknownContractKind("astrology".into()))
    );
    // Parameters: JSON of vigil_contracts::Params, canonical, of the declared kind, valid.
    let params_rejections = [
        (Bytes::from_static(b"not json"), "json"),
        (
            Bytes::from(
                String::from_utf8(threshold_bytes(203).to_vec())
                    .expect("utf8")
                    .replacen('{', "{ ", 1),
            ),
            "canonical",
        ),
        (
            Bytes::from(
                serde_json::to_vec(&vigil_contracts::Params::Threshold(
                    vigil_contracts::ThresholdParams::seed(
                        vigil_core::Metric::BodyTemperature,
                        3800,
                        3500,
                        50,
                    ),
                ))
                .expect("json"),
            ),
            "invalid",
        ),
    ];
    for (params, why) in params_rejections {
        let mut bad = deployment.clone();
        bad.params = params;
        let result = world.run(&operator, TxBody::DeployInstance { deployment: bad });
        let expected = match why {
            "json" => matches!(result, Err(Rejection::ContractParams(ParamsError::Json(_)))),
            "canonical" => result == Err(Rejection::ContractParams(ParamsError::NotCanonical)),
            _ => matches!(
                result,
                Err(Rejection::ContractParams(ParamsError::Invalid(_)))
            ),
        };
        assert!(expected, "{why}: {result:?}");
    }
    let mut wrong_kind = deployment.clone();
    wrong_kind.kind = "news2".into();
    assert_eq!(
        world.run(
            &operator,
            TxBody::DeployInstance {
                deployment: wrong_kind
            }
        ),
        Err(Rejection::ContractParams(ParamsError::KindMismatch {
            declared: "news2".into(),
            params: "threshold",
        }))
    );
    let mut stranger = deployment.clone();
    stranger.person = PersonId::from_bytes([99; 16]);
    assert_eq!(
        world.run(
            &operator,
            TxBody::DeployInstance {
                deployment: stranger
            }
        ),
        Err(Rejection::UnknownPerson)
    );
    let mut no_device = deployment.clone();
    no_device.device = "ghost".parse().expect("valid");
    assert_eq!(
        world.run(
            &operator,
            TxBody::DeployInstance {
                deployment: no_device
            }
        ),
        Err(Rejection::UnknownDevice)
    );
    // Someone else's device.
    let (other_person, _, _) = world.monitored(2);
    let mut mismatched = deployment.clone();
    mismatched.person = other_person;
    mismatched.params = threshold_bytes(200);
    assert_eq!(
        world.run(
            &operator,
            TxBody::DeployInstance {
                deployment: mismatched
            }
        ),
        Err(Rejection::DevicePersonMismatch)
    );
    // Replace: same person only; the old one ends, the new one starts.
    let mut replacement = deployment.clone();
    replacement.params = threshold_bytes(201);
    let mut cross = replacement.clone();
    cross.person = other_person;
    assert_eq!(
        world.run(
            &operator,
            TxBody::ReplaceInstance {
                old: deployment.instance_id(),
                new: cross
            }
        ),
        Err(Rejection::ReplaceAcrossPersons)
    );
    world
        .run(
            &operator,
            TxBody::ReplaceInstance {
                old: deployment.instance_id(),
                new: replacement.clone(),
            },
        )
        .expect("replace");
    let view = world.view();
    let old = view.instances(&deployment.instance_id()).expect("kept");
    assert!(!old.active);
    assert_eq!(old.replaced_by, Some(replacement.instance_id()));
    assert!(
        view.instances(&replacement.instance_id())
            .expect("new")
            .active
    );
    // One person's replacement leaves another's instance alone.
    assert_eq!(
        world.run(
            &operator,
            TxBody::TerminateInstance {
                instance: deployment.instance_id()
            }
        ),
        Err(Rejection::InstanceTerminated)
    );
    assert_eq!(
        world.run(
            &operator,
            TxBody::TerminateInstance {
                instance: crate::tx::InstanceId([0; 32])
            }
        ),
        Err(Rejection::UnknownInstance)
    );
    world
        .run(
            &operator,
            TxBody::TerminateInstance {
                instance: replacement.instance_id(),
            },
        )
        .expect("terminate");
    // Revoked device: no more deployments on it.
    world
        .run(
            &operator,
            TxBody::RevokeDevice {
                device: device.clone(),
            },
        )
        .expect("revoke");
    let mut after = deployment.clone();
    after.params = threshold_bytes(202);
    assert_eq!(
        world.run(&operator, TxBody::DeployInstance { deployment: after }),
        Err(Rejection::DeviceRevoked)
    );
    let _ = person;
}

#[test]
fn alert_lifecycle_and_orders_only_on_unresolved_alerts() {
    let mut world = World::new();
    let operator = world.operator.clone();
    let gateway = world.gateway.clone();
    let (_, device, deployment) = world.monitored(1);
    assert_eq!(
        world.run(
            &gateway,
            TxBody::Alert {
                instance: deployment.instance_id(),
                level: AlertLevel::Ok,
                reading_time_ms: 0,
                evidence: [0; 32]
            }
        ),
        Err(Rejection::AlertLevelOk)
    );
    assert_eq!(
        world.run(
            &gateway,
            TxBody::Alert {
                instance: crate::tx::InstanceId([1; 32]),
                level: AlertLevel::Warning,
                reading_time_ms: 0,
                evidence: [0; 32]
            }
        ),
        Err(Rejection::UnknownInstance)
    );
    let alert = world.alert(&deployment);
    assert_eq!(
        world.view().alerts(&alert).expect("recorded").status,
        AlertStatus::Open
    );
    let unknown = TxId([0; 32]);
    assert_eq!(
        world.run(&operator, TxBody::Acknowledge { alert: unknown }),
        Err(Rejection::UnknownAlert)
    );
    assert_eq!(
        world.run(
            &operator,
            TxBody::Order {
                alert: unknown,
                kind: OrderKind::Call,
                note: None
            }
        ),
        Err(Rejection::UnknownAlert)
    );
    assert_eq!(
        world.run(
            &operator,
            TxBody::Resolve {
                alert: unknown,
                note: None
            }
        ),
        Err(Rejection::UnknownAlert)
    );
    world
        .run(&operator, TxBody::Acknowledge { alert })
        .expect("ack");
    assert_eq!(
        world.run(&operator, TxBody::Acknowledge { alert }),
        Err(Rejection::AlertNotOpen)
    );
    world
        .run(
            &operator,
            TxBody::Order {
                alert,
                kind: OrderKind::ReturnToQuarantineArea,
                note: Some([3; 32]),
            },
        )
        .expect("order");
    for _ in 1..crate::state::ORDERS_PER_ALERT_MAX {
        world
            .run(
                &operator,
                TxBody::Order {
                    alert,
                    kind: OrderKind::Call,
                    note: None,
                },
            )
            .expect("order");
    }
    assert_eq!(
        world.run(
            &operator,
            TxBody::Order {
                alert,
                kind: OrderKind::Call,
                note: None
            }
        ),
        Err(Rejection::TooManyOrders)
    );
    world
        .run(&operator, TxBody::Resolve { alert, note: None })
        .expect("resolve");
    assert_eq!(
        world.run(
            &operator,
            TxBody::Order {
                alert,
                kind: OrderKind::HospitalTransfer,
                note: None
            }
        ),
        Err(Rejection::AlertResolved)
    );
    assert_eq!(
        world.run(&operator, TxBody::Resolve { alert, note: None }),
        Err(Rejection::AlertResolved)
    );
    assert_eq!(
        world.run(&operator, TxBody::Acknowledge { alert }),
        Err(Rejection::AlertResolved)
    );
    // Terminated instance and revoked device raise nothing.
    let (_, _, second) = world.monitored(2);
    world
        .run(
            &operator,
            TxBody::TerminateInstance {
                instance: second.instance_id(),
            },
        )
        .expect("terminate");
    assert_eq!(
        world.run(
            &gateway,
            TxBody::Alert {
                instance: second.instance_id(),
                level: AlertLevel::Warning,
                reading_time_ms: 0,
                evidence: [0; 32]
            }
        ),
        Err(Rejection::InstanceTerminated)
    );
    world
        .run(&operator, TxBody::RevokeDevice { device })
        .expect("revoke");
    assert_eq!(
        world.run(
            &gateway,
            TxBody::Alert {
                instance: deployment.instance_id(),
                level: AlertLevel::Warning,
                reading_time_ms: 0,
                evidence: [0; 32]
            }
        ),
        Err(Rejection::DeviceRevoked)
    );
}

#[test]
fn anchors_access_log_queries_and_verdicts() {
    let mut world = World::new();
    let gateway = world.gateway.clone();
    let doctor = world.doctor.clone();
    let auditor = world.auditor.clone();
    let verifier = world.verifier.clone();
    let anchor = |first_seq, count, from_ms, to_ms| TxBody::EhrAnchor {
        first_seq,
        root: [1; 32],
        count,
        from_ms,
        to_ms,
    };
    assert_eq!(
        world.run(&gateway, anchor(1, 0, 0, 1)),
        Err(Rejection::EmptyAnchor)
    );
    assert_eq!(
        world.run(&gateway, anchor(1, 3, 5, 1)),
        Err(Rejection::AnchorTimeRange)
    );
    // Anchors cover consecutive records: a gap or a repeat is refused, so an anchor sent twice
    // (re-submitted after a crash) is counted once.
    assert_eq!(
        world.run(&gateway, anchor(2, 3, 0, 1)),
        Err(Rejection::AnchorOutOfOrder {
            expected: 1,
            got: 2
        })
    );
    world.run(&gateway, anchor(1, 3, 0, 1)).expect("anchor");
    assert_eq!(
        world.run(&gateway, anchor(1, 3, 0, 1)),
        Err(Rejection::AnchorOutOfOrder {
            expected: 4,
            got: 1
        })
    );
    world.run(&gateway, anchor(4, 4, 1, 2)).expect("anchor");
    assert_eq!(world.view().anchors(&1).expect("second").count, 4);
    assert_eq!(world.view().anchors(&1).expect("second").first_seq, 4);
    assert_eq!(world.view().next_anchored_seq(&gateway.public_key()), 8);

    let (person, _, _) = world.monitored(1);
    assert_eq!(
        world.run(
            &auditor,
            TxBody::EhrAccess {
                person: PersonId::from_bytes([77; 16]),
                record: [0; 32]
            }
        ),
        Err(Rejection::UnknownPerson)
    );
    world
        .run(
            &auditor,
            TxBody::EhrAccess {
                person,
                record: [2; 32],
            },
        )
        .expect("logged");
    assert_eq!(
        world.view().accesses(&0).expect("logged").who,
        auditor.public_key()
    );

    assert_eq!(
        world.run(&doctor, TxBody::StatsQuery { spec: Bytes::new() }),
        Err(Rejection::EmptyQuery)
    );
    let query = world
        .run(
            &doctor,
            TxBody::StatsQuery {
                spec: spec_with_cohort(&[], 1),
            },
        )
        .expect("query");
    let verdict = |query| TxBody::ProofVerdict {
        query,
        bitmap: Bytes::from_static(&[1]),
        all_valid: true,
        evidence: [9; 32],
    };
    assert_eq!(
        world.run(&verifier, verdict(TxId([5; 32]))),
        Err(Rejection::UnknownQuery)
    );
    world.run(&verifier, verdict(query)).expect("verdict");
    assert_eq!(
        world.run(&verifier, verdict(query)),
        Err(Rejection::DuplicateVerdict)
    );
    let record = world.view().queries(&query).expect("query").clone();
    assert_eq!((record.verdicts, record.valid_verdicts), (1, 1));
    assert_eq!(record.spec, spec_with_cohort(&[], 1));
    let verdict = world
        .view()
        .verdicts(&(query, verifier.public_key()))
        .expect("verdict")
        .clone();
    assert_eq!(
        (verdict.bitmap, verdict.evidence),
        (Bytes::from_static(&[1]), [9; 32])
    );
}

/// Regression (issue 14): the state machine stored a verdict's `all_valid` as claimed.
#[test]
fn a_verdict_summary_must_agree_with_its_bitmap() {
    let mut world = World::new();
    let doctor = world.doctor.clone();
    let verifier = world.verifier.clone();
    let query = world
        .run(
            &doctor,
            TxBody::StatsQuery {
                spec: spec_with_cohort(&[], 1),
            },
        )
        .expect("query");
    let verdict = |bitmap: &'static [u8], all_valid| TxBody::ProofVerdict {
        query,
        bitmap: Bytes::from_static(bitmap),
        all_valid,
        evidence: [9; 32],
    };
    // Claimed valid, but a check failed (a zero below a one), none passed, or nothing at all.
    for bitmap in [&[0b1011][..], &[0xff, 0b0101], &[0], &[0xff, 0], &[]] {
        assert_eq!(
            world.run(&verifier, verdict(bitmap, true)),
            Err(Rejection::VerdictSummaryMismatch { all_valid: true }),
            "{bitmap:?}"
        );
    }
    // Claimed invalid, but every check passed.
    assert_eq!(
        world.run(&verifier, verdict(&[0xff, 0xff], false)),
        Err(Rejection::VerdictSummaryMismatch { all_valid: false })
    );
    let record = world.view().queries(&query).expect("query").clone();
    assert_eq!(record.verdicts, 0, "a refused verdict leaves no trace");
    world
        .run(&verifier, verdict(&[0xff, 0b0111], true))
        .expect("all of 11 checks passed");
}

/// Regression (issue 14): a verdict from a verifying node granted its role after the query was
/// recorded is refused; the state knows no finer assignment (see ARCHITECTURE.md).
#[test]
fn a_verdict_from_a_verifier_not_assigned_the_query_is_refused() {
    let mut world = World::new();
    let admin = world.admin.clone();
    let doctor = world.doctor.clone();
    let verifier = world.verifier.clone();
    let query = world
        .run(
            &doctor,
            TxBody::StatsQuery {
                spec: spec_with_cohort(&[], 1),
            },
        )
        .expect("query");
    let late = PrivateKey::from_seed(77);
    world
        .run(
            &admin,
            TxBody::GrantRole {
                identity: late.public_key(),
                role: Role::VerifyingNode,
            },
        )
        .expect("grant");
    let verdict = TxBody::ProofVerdict {
        query,
        bitmap: Bytes::from_static(&[1]),
        all_valid: true,
        evidence: [9; 32],
    };
    assert_eq!(
        world.run(&late, verdict.clone()),
        Err(Rejection::VerifierNotAssigned)
    );
    world
        .run(&verifier, verdict)
        .expect("assigned before the query");
    // A later query is the late verifier's too.
    let next = world
        .run(
            &doctor,
            TxBody::StatsQuery {
                spec: spec_with_cohort(&[], 2),
            },
        )
        .expect("query");
    world
        .run(
            &late,
            TxBody::ProofVerdict {
                query: next,
                bitmap: Bytes::from_static(&[1]),
                all_valid: true,
                evidence: [9; 32],
            },
        )
        .expect("assigned");
}

/// Issue 13: the ledger refused no cohort, so one person's statistic could be asked for.
#[test]
fn statistics_queries_need_a_well_formed_cohort_of_enough_people() {
    let mut world = World::new();
    let doctor = world.doctor.clone();
    let names: Vec<String> = (0..crate::state::COHORT_MIN)
        .map(|i| format!("dp1-p{i}"))
        .collect();
    let enough: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut query = |spec| world.run(&doctor, TxBody::StatsQuery { spec });
    let refused = |error| Err(Rejection::QuerySpec(error));
    assert_eq!(
        query(spec_with_cohort(&enough[..1], 1)),
        refused(QuerySpecError::CohortTooSmall { size: 1 })
    );
    let short = &enough[..crate::state::COHORT_MIN - 1];
    assert_eq!(
        query(spec_with_cohort(short, 1)),
        refused(QuerySpecError::CohortTooSmall { size: short.len() })
    );
    // Ten entries but one person twice is still nine people.
    let mut repeated = short.to_vec();
    repeated.push(short[0]);
    assert_eq!(
        query(spec_with_cohort(&repeated, 1)),
        refused(QuerySpecError::DuplicatePseudonym(short.len()))
    );
    let mut garbage = short.to_vec();
    garbage.push("p1; DROP TABLE rows");
    assert_eq!(
        query(spec_with_cohort(&garbage, 1)),
        refused(QuerySpecError::BadPseudonym(short.len()))
    );
    assert_eq!(
        query(Bytes::from_static(b"mean rr 2020")),
        refused(QuerySpecError::Truncated)
    );
    let cut = spec_with_cohort(&enough, 1);
    assert_eq!(
        query(cut.slice(..cut.len() - 12)),
        refused(QuerySpecError::Truncated)
    );
    query(spec_with_cohort(&enough, 1)).expect("a cohort of enough people");
    query(spec_with_cohort(&[], 2)).expect("every patient");
}

#[test]
fn stats_keys_are_published_once_by_the_admin() {
    let mut world = World::new();
    let admin = world.admin.clone();
    let doctor = world.doctor.clone();
    let key = Bytes::from_static(b"collective key bytes");
    assert_eq!(
        world.run(&admin, TxBody::StatsKey { key: Bytes::new() }),
        Err(Rejection::EmptyStatsKey)
    );
    assert!(matches!(
        world.run(&doctor, TxBody::StatsKey { key: key.clone() }),
        Err(Rejection::Unauthorized { .. })
    ));
    world
        .run(&admin, TxBody::StatsKey { key: key.clone() })
        .expect("published");
    let record = world
        .view()
        .stats_keys(&crate::state::stats_key_id(&key))
        .expect("recorded")
        .clone();
    assert_eq!((record.key, record.by), (key.clone(), admin.public_key()));
    assert_eq!(
        world.run(&admin, TxBody::StatsKey { key }),
        Err(Rejection::StatsKeyExists)
    );
}

#[test]
fn a_rejected_transaction_leaves_no_trace_and_blocks_are_all_or_nothing() {
    let mut world = World::new();
    let operator = world.operator.clone();
    let before = (world.state.root(), world.state.full_digest());
    let good = world.sign(
        &operator,
        TxBody::RegisterPerson {
            person: PersonId::from_bytes([1; 16]),
        },
    );
    let bad = Tx::sign(
        &operator,
        &CHAIN,
        1,
        TxBody::Acknowledge {
            alert: TxId([0; 32]),
        },
    );
    let result = execute_block(&world.state, &[], world.state.height() + 1, 0, &[good, bad]);
    assert_eq!(result.err(), Some((1, Rejection::UnknownAlert)));
    assert_eq!((world.state.root(), world.state.full_digest()), before);
}

#[test]
fn layers_stack_and_roots_are_deterministic() {
    // Execute two blocks as layers (unfinalized), then merge; compare with direct execution.
    let world = World::new();
    let operator = world.operator.clone();
    let nonce = 0;
    let tx1 = Tx::sign(
        &operator,
        &CHAIN,
        nonce,
        TxBody::RegisterPerson {
            person: PersonId::from_bytes([1; 16]),
        },
    );
    let tx2 = Tx::sign(
        &operator,
        &CHAIN,
        nonce + 1,
        TxBody::RegisterPerson {
            person: PersonId::from_bytes([2; 16]),
        },
    );
    let h = world.state.height();
    let l1 = Arc::new(
        execute_block(&world.state, &[], h + 1, 0, std::slice::from_ref(&tx1)).expect("b1"),
    );
    // The second block sees the first through its layer: registering person 1 again fails.
    let dup = Tx::sign(
        &operator,
        &CHAIN,
        nonce + 1,
        TxBody::RegisterPerson {
            person: PersonId::from_bytes([1; 16]),
        },
    );
    assert_eq!(
        execute_block(&world.state, std::slice::from_ref(&l1), h + 2, 0, &[dup]).err(),
        Some((0, Rejection::PersonExists))
    );
    let l2: Layer = execute_block(
        &world.state,
        std::slice::from_ref(&l1),
        h + 2,
        0,
        std::slice::from_ref(&tx2),
    )
    .expect("b2");
    let mut merged = world.state.clone();
    merged.merge(&l1);
    merged.merge(&l2);

    let mut direct = World::new().state;
    let d1 = execute_block(&direct, &[], h + 1, 0, &[tx1]).expect("d1");
    direct.merge(&d1);
    let d2 = execute_block(&direct, &[], h + 2, 0, &[tx2]).expect("d2");
    direct.merge(&d2);
    assert_eq!(merged.root(), direct.root());
    assert_eq!(merged.full_digest(), direct.full_digest());
    assert_ne!(merged.root(), world.state.root());
}

#[test]
fn reads_are_checked_against_the_readers_roles() {
    use crate::read::{Answer, Query, ReadError, read};
    let mut world = World::new();
    let (person, _, deployment) = world.monitored(1);
    let alert = world.alert(&deployment);
    let operator = world.operator.public_key();
    let gateway = world.gateway.public_key();
    let auditor = world.auditor.public_key();
    let nobody = world.nobody.public_key();
    let state = &world.state;
    let by_person = Query::AlertsByPerson(person);
    match read(state, &operator, &by_person) {
        Ok(Answer::Alerts(alerts)) => assert_eq!(alerts[0].0, alert),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        read(state, &gateway, &by_person),
        Err(ReadError::Forbidden(_))
    ));
    assert!(matches!(
        read(state, &nobody, &by_person),
        Err(ReadError::Forbidden(_))
    ));
    assert!(matches!(
        read(state, &gateway, &Query::InstancesByPerson(person)),
        Ok(Answer::Instances(i)) if i.len() == 1
    ));
    assert!(matches!(
        read(state, &operator, &Query::Accesses { from: 0 }),
        Err(ReadError::Forbidden(_))
    ));
    assert!(read(state, &auditor, &Query::Accesses { from: 0 }).is_ok());
    assert!(matches!(
        read(state, &auditor, &Query::AlertsByTime { from_ms: 0, to_ms: 1_001 }),
        Ok(Answer::Alerts(a)) if a.len() == 1
    ));
    assert!(matches!(
        read(state, &auditor, &Query::AlertsByTime { from_ms: 1_001, to_ms: 2_000 }),
        Ok(Answer::Alerts(a)) if a.is_empty()
    ));
}

/// The indexes answer exactly what a scan of the tables would, through an alert's whole
/// lifecycle, a device's revocation, an instance's replacement, anchors and verdicts; and a
/// state cloned before those blocks (a published snapshot) is unchanged by them.
#[test]
fn indexes_agree_with_scans_and_earlier_snapshots_stay_unchanged() {
    let mut world = World::new();
    let operator = world.operator.clone();
    let gateway = world.gateway.clone();
    let doctor = world.doctor.clone();
    let verifier = world.verifier.clone();
    let (ana, thermo, first) = world.monitored(1);
    let (bo, _, second) = world.monitored(2);
    let before = world.state.clone();
    let open = world.alert(&first);
    let acked = world.alert(&second);
    let resolved = world.alert(&first);
    world
        .run(&operator, TxBody::Acknowledge { alert: acked })
        .expect("ack");
    world
        .run(
            &operator,
            TxBody::Resolve {
                alert: resolved,
                note: None,
            },
        )
        .expect("resolve");
    world
        .run(&operator, TxBody::RevokeDevice { device: thermo })
        .expect("revoke");
    world
        .run(
            &gateway,
            TxBody::EhrAnchor {
                first_seq: 1,
                root: [1; 32],
                count: 2,
                from_ms: 0,
                to_ms: 1,
            },
        )
        .expect("anchor");
    let query = world
        .run(
            &doctor,
            TxBody::StatsQuery {
                spec: spec_with_cohort(&[], 3),
            },
        )
        .expect("query");
    world
        .run(
            &verifier,
            TxBody::ProofVerdict {
                query,
                bitmap: Bytes::from_static(&[1]),
                all_valid: true,
                evidence: [9; 32],
            },
        )
        .expect("verdict");

    let state = &world.state;
    let ids = |it: &mut dyn Iterator<Item = (&TxId, &crate::state::AlertRecord)>| {
        it.map(|(id, _)| *id).collect::<Vec<_>>()
    };
    for person in [ana, bo] {
        let scanned: Vec<TxId> = state
            .tables()
            .alerts
            .iter()
            .filter(|(_, a)| a.person == person)
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(ids(&mut state.alerts_of(&person)), scanned);
        let devices: Vec<_> = state
            .devices_of(&person)
            .map(|(d, r)| (d.clone(), r.clone()))
            .collect();
        let scanned: Vec<_> = state
            .devices()
            .filter(|(_, r)| r.person == person)
            .map(|(d, r)| (d.clone(), r.clone()))
            .collect();
        assert_eq!(devices, scanned);
        assert_eq!(state.instances_of(&person).count(), 1);
    }
    for status in [
        AlertStatus::Open,
        AlertStatus::Acknowledged,
        AlertStatus::Resolved,
    ] {
        let scanned: Vec<TxId> = state
            .tables()
            .alerts
            .iter()
            .filter(|(_, a)| a.status == status)
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(
            ids(&mut state.alerts_with_status(status)),
            scanned,
            "{status:?}"
        );
    }
    let mut unresolved = ids(&mut state.unresolved_alerts());
    unresolved.sort();
    let mut want = vec![open, acked];
    want.sort();
    assert_eq!(unresolved, want);
    assert!(state.devices_of(&ana).all(|(_, d)| !d.active));
    let anchors: Vec<u64> = state
        .anchors_by(&gateway.public_key())
        .map(|a| a.first_seq)
        .collect();
    assert_eq!(anchors, [1]);
    assert_eq!(
        state.anchor_by(&gateway.public_key(), 1).map(|a| a.count),
        Some(2)
    );
    assert!(state.anchors_by(&operator.public_key()).next().is_none());
    let verdicts: Vec<_> = state
        .verdicts_on(&query)
        .map(|(who, _)| who.clone())
        .collect();
    assert_eq!(verdicts, [verifier.public_key()]);

    // The state before the alerts is untouched.
    assert_eq!(before.alert_count(), 0);
    assert!(before.unresolved_alerts().next().is_none());
    assert_eq!(before.devices_of(&ana).filter(|(_, d)| d.active).count(), 1);
    assert!(before.anchors_by(&gateway.public_key()).next().is_none());
    assert_ne!(before.full_digest(), state.full_digest());
}

#[test]
fn an_instance_alerts_only_on_later_readings_or_higher_levels() {
    // A replayed evidence (same reading time, same level) or an older reading raises nothing;
    // the same reading may escalate, a later one may raise again.
    let mut world = World::new();
    let gateway = world.gateway.clone();
    let (_, _, deployment) = world.monitored(1);
    let alert = |level, reading_time_ms| TxBody::Alert {
        instance: deployment.instance_id(),
        level,
        reading_time_ms,
        evidence: [7; 32],
    };
    world
        .run(&gateway, alert(AlertLevel::Warning, 5_000))
        .expect("first");
    for (level, time) in [
        (AlertLevel::Warning, 5_000),
        (AlertLevel::Critical, 4_999),
        (AlertLevel::Warning, 1_000),
    ] {
        assert_eq!(
            world.run(&gateway, alert(level, time)),
            Err(Rejection::AlertNotNewer { last_ms: 5_000 }),
            "{level:?} at {time}"
        );
    }
    world
        .run(&gateway, alert(AlertLevel::Critical, 5_000))
        .expect("escalation on the same reading");
    world
        .run(&gateway, alert(AlertLevel::Warning, 5_001))
        .expect("a later reading");
}

/// Escalation is timed by block time from the block that finalized the alert; a step that is
/// early, skipped, repeated, beyond the policy, or for an acknowledged alert is refused.
#[test]
fn escalation_follows_the_policy_and_block_time_only() {
    let mut world = World::new();
    let (operator, gateway) = (world.operator.clone(), world.gateway.clone());
    let (_, _, deployment) = world.monitored(1);
    let policy = EscalationPolicy {
        remind_after_s: 60,
        escalate_after_s: 300,
        repeat_s: 120,
        steps_max: 2,
        raise_level: true,
    };
    let alert = world.alert(&deployment);
    assert_eq!(
        world.run(&gateway, TxBody::Escalate { alert, step: 1 }),
        Err(Rejection::NoEscalationPolicy)
    );
    let refused = EscalationPolicy {
        escalate_after_s: 1,
        ..policy
    };
    assert!(matches!(
        world.run(&operator, TxBody::SetEscalationPolicy { policy: refused }),
        Err(Rejection::EscalationPolicy(_))
    ));
    assert_eq!(
        world.run(&gateway, TxBody::SetEscalationPolicy { policy }),
        Err(Rejection::Unauthorized {
            kind: TxKind::SetEscalationPolicy,
            needed: TxKind::SetEscalationPolicy.allowed_roles(),
        })
    );
    world
        .run(&operator, TxBody::SetEscalationPolicy { policy })
        .expect("policy");
    let raised_ms = world.view().alerts(&alert).expect("alert").raised_ms;
    assert_eq!(raised_ms, 1_000_000);
    world.time_ms = raised_ms + 299_999;
    assert_eq!(
        world.run(&gateway, TxBody::Escalate { alert, step: 1 }),
        Err(Rejection::EscalationNotDue {
            step: 1,
            due_ms: raised_ms + 300_000,
            now_ms: raised_ms + 299_999
        })
    );
    world.time_ms = raised_ms + 300_000;
    assert_eq!(
        world.run(&gateway, TxBody::Escalate { alert, step: 2 }),
        Err(Rejection::EscalationOutOfOrder {
            expected: 1,
            got: 2
        })
    );
    world
        .run(&gateway, TxBody::Escalate { alert, step: 1 })
        .expect("step 1 is due");
    assert_eq!(
        world.run(&gateway, TxBody::Escalate { alert, step: 1 }),
        Err(Rejection::EscalationOutOfOrder {
            expected: 2,
            got: 1
        })
    );
    // Step 2 is due one repeat later; there is no step 3.
    world.time_ms = raised_ms + 420_000;
    world
        .run(&gateway, TxBody::Escalate { alert, step: 2 })
        .expect("step 2 is due");
    world.time_ms = raised_ms + 10_000_000;
    assert_eq!(
        world.run(&gateway, TxBody::Escalate { alert, step: 3 }),
        Err(Rejection::EscalationExhausted { steps_max: 2 })
    );
    let record = world.view().alerts(&alert).cloned().expect("alert");
    assert_eq!(
        (record.escalations, record.level),
        (2, AlertLevel::Critical)
    );

    // An acknowledged alert is not escalated.
    let second = world.alert(&deployment);
    world.time_ms += 300_000;
    world
        .run(&operator, TxBody::Acknowledge { alert: second })
        .expect("ack");
    assert_eq!(
        world.run(
            &gateway,
            TxBody::Escalate {
                alert: second,
                step: 1
            }
        ),
        Err(Rejection::AlertNotOpen)
    );
}

#[test]
fn policy_reminders_and_steps_are_counted_from_the_alert() {
    let policy = EscalationPolicy {
        remind_after_s: 60,
        escalate_after_s: 300,
        repeat_s: 120,
        steps_max: 3,
        raise_level: false,
    };
    assert_eq!(policy.step_due_ms(1), 300_000);
    assert_eq!(policy.step_due_ms(3), 540_000);
    let reminders: Vec<u8> = [0, 59_999, 60_000, 179_999, 180_000, 10_000_000]
        .map(|ms| policy.reminders_due(ms))
        .to_vec();
    assert_eq!(reminders, [0, 0, 1, 1, 2, 3]);
    let never = EscalationPolicy {
        remind_after_s: 0,
        ..policy
    };
    assert_eq!(never.reminders_due(10_000_000), 0);
}
