use vigil_core::{Metric, PersonId, Reading, Value};

use super::*;

const T0_MS: i64 = 1_700_000_000_000;

#[derive(Default)]
struct MemoryLog {
    events: Vec<AccessEvent>,
    listings: Vec<ListingAccess>,
    refuse: bool,
}

impl AccessLog for MemoryLog {
    fn record(&mut self, event: &AccessEvent) -> Result<(), String> {
        if self.refuse {
            return Err("ledger unreachable".into());
        }
        self.events.push(event.clone());
        Ok(())
    }

    fn record_listing(&mut self, listing: &ListingAccess) -> Result<(), String> {
        if self.refuse {
            return Err("ledger unreachable".into());
        }
        self.listings.push(listing.clone());
        Ok(())
    }
}

fn temperature(centi: i32, offset_ms: i64) -> Reading {
    Reading {
        device: "thermo-01".parse().expect("valid"),
        metric: Metric::BodyTemperature,
        time_ms: T0_MS + offset_ms,
        value: Value::Scalar(centi),
    }
}

fn identity() -> Identity {
    Identity {
        name: "Somchai Jaidee".into(),
        address: "12 Sukhumvit Soi 4".into(),
        phone: "+66 81 234 5678".into(),
    }
}

fn store_with(readings: usize) -> (Ehr, PersonId) {
    let mut ehr = Ehr::open_in_memory(SecretKey::random()).expect("opens");
    let person = PersonId::random();
    ehr.register_person(person, &identity()).expect("registers");
    // One record per reading, so tests can name and tamper with each.
    for i in 0..readings {
        ehr.append(person, &[temperature(3_700 + i as i32, i as i64 * 1_000)])
            .expect("appends");
    }
    (ehr, person)
}

#[test]
fn reads_decrypt_observations_and_are_logged() {
    let (mut ehr, person) = store_with(5);
    let mut log = MemoryLog::default();
    let observations = ehr
        .read_observations(
            "doctor-7",
            person,
            (T0_MS + 1_000, T0_MS + 4_000),
            100,
            T0_MS + 9,
            &mut log,
        )
        .expect("reads");
    let values: Vec<_> = observations
        .iter()
        .map(|o| o["valueQuantity"]["value"].clone())
        .collect();
    assert_eq!(values, [37.01, 37.02, 37.03]);
    assert_eq!(
        log.events,
        [AccessEvent {
            accessor: "doctor-7".into(),
            person,
            kind: AccessKind::Records,
            time_ms: T0_MS + 9
        }]
    );
    assert_eq!(
        ehr.read_identity("cdcp-1", person, T0_MS, &mut log)
            .expect("reads"),
        identity()
    );
    assert_eq!(log.events.len(), 2);
}

#[test]
fn a_read_that_cannot_be_logged_is_refused() {
    let (mut ehr, person) = store_with(2);
    let mut log = MemoryLog {
        refuse: true,
        ..MemoryLog::default()
    };
    assert!(matches!(
        ehr.read_observations("x", person, (0, i64::MAX), 10, 0, &mut log),
        Err(EhrError::AccessNotLogged(_))
    ));
    assert!(matches!(
        ehr.read_identity("x", person, 0, &mut log),
        Err(EhrError::AccessNotLogged(_))
    ));
    assert!(matches!(
        ehr.read_observations(
            "x",
            person,
            (0, i64::MAX),
            READ_LIMIT_MAX + 1,
            0,
            &mut MemoryLog::default()
        ),
        Err(EhrError::LimitTooLarge(_))
    ));
}

#[test]
fn unknown_and_duplicate_people_are_errors() {
    let (mut ehr, person) = store_with(0);
    assert!(matches!(
        ehr.register_person(person, &identity()),
        Err(EhrError::AlreadyRegistered(_))
    ));
    let stranger = PersonId::random();
    assert!(matches!(
        ehr.append(stranger, &[temperature(3_700, 0)]),
        Err(EhrError::UnknownPerson(_))
    ));
    assert!(matches!(
        ehr.erase_person(stranger),
        Err(EhrError::UnknownPerson(_))
    ));
}

#[test]
fn sealed_batches_verify_and_later_records_are_pending() {
    let (mut ehr, person) = store_with(7);
    let first = ehr.seal_batch().expect("seals").expect("a batch");
    assert_eq!((first.first_seq, first.count), (1, 7));
    ehr.append(person, &[temperature(3_800, 10_000)])
        .expect("appends");
    let second = ehr.seal_batch().expect("seals").expect("a batch");
    assert_eq!((second.first_seq, second.count), (8, 1));
    assert_eq!(ehr.seal_batch().expect("seals"), None);
    ehr.append(person, &[temperature(3_810, 11_000)])
        .expect("appends");

    let report = ehr.verify(&[first, second]).expect("verifies");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (report.anchored, report.verified, report.pending),
        (8, 8, 1)
    );
    assert_eq!(ehr.sealed_anchors().expect("reads"), [first, second]);
    // An anchor list with a hole is a caller error, not a verdict on the store.
    assert!(matches!(
        ehr.verify(&[second]),
        Err(EhrError::AnchorsNotContiguous { .. })
    ));
}

#[test]
fn altered_missing_and_extra_records_are_named() {
    let (mut ehr, person) = store_with(9);
    let anchor = ehr.seal_batch().expect("seals").expect("a batch");

    // Flip one byte of record 3's ciphertext, move record 5 to another time, drop record 8.
    ehr.db
        .execute(
            "UPDATE records SET ciphertext = CAST(ciphertext AS BLOB) || x'00' WHERE seq = 3",
            [],
        )
        .expect("tampers");
    ehr.db
        .execute("UPDATE records SET time_ms = time_ms + 1 WHERE seq = 5", [])
        .expect("tampers");
    ehr.db
        .execute("DELETE FROM records WHERE seq = 8", [])
        .expect("tampers");
    let report = ehr.verify(&[anchor]).expect("verifies");
    assert_eq!(report.altered, [3, 5]);
    assert_eq!(report.missing, [8]);
    assert_eq!(report.verified, 6);
    assert!(!report.is_intact());

    // A record smuggled in behind the store's back, under a sequence number it never assigned.
    ehr.append(person, &[temperature(3_700, 99_000)])
        .expect("appends");
    ehr.db
        .execute(
            "INSERT INTO records SELECT seq + 50, person, device, time_ms, until_ms, readings, nonce, ciphertext
             FROM records WHERE seq = 10",
            [],
        )
        .expect("tampers");
    let report = ehr.verify(&[anchor]).expect("verifies");
    assert_eq!((report.extra, report.pending), (vec![60], 1));
}

#[test]
fn leaves_kept_at_writing_equal_those_read_back_and_prove_each_record() {
    let (mut ehr, person) = store_with(6);
    ehr.append(person, &[temperature(3_900, 60_000)])
        .expect("appends");
    // Kept in memory since the writes, not read back.
    let anchor = ehr.seal_batch().expect("seals").expect("a batch");
    assert_eq!((anchor.from_ms, anchor.to_ms), (T0_MS, T0_MS + 60_000));
    let read_back: Vec<Digest> = load_leaves(&ehr.db, 1, 7)
        .expect("reads")
        .into_iter()
        .map(|(_, leaf)| leaf)
        .collect();
    assert_eq!(merkle::root(&read_back), anchor.root);

    // A store reopened mid-batch reads the unsealed leaves back instead.
    ehr.append(person, &[temperature(3_910, 61_000)])
        .expect("appends");
    ehr.unsealed = None;
    ehr.append(person, &[temperature(3_920, 62_000)])
        .expect("appends");
    let second = ehr.seal_batch().expect("seals").expect("a batch");
    assert_eq!((second.first_seq, second.count), (8, 2));
    assert_eq!(
        (second.from_ms, second.to_ms),
        (T0_MS + 61_000, T0_MS + 62_000)
    );
    assert_eq!(ehr.sealed_anchors_from(8).expect("reads"), [second]);
    assert!(ehr.verify(&[anchor, second]).expect("verifies").is_intact());

    // Every record's proof checks against its anchor, and an altered neighbour leaves a
    // record's proof intact while its own fails.
    ehr.db
        .execute("UPDATE records SET time_ms = time_ms + 1 WHERE seq = 4", [])
        .expect("tampers");
    for seq in 1..=7 {
        let proof = ehr.record_proof(seq).expect("reads").expect("a record");
        assert_eq!(proof.batch, Some((1, 7)));
        let proven = merkle::root_from_proof(&proof.leaf, seq as usize - 1, 7, &proof.path);
        assert_eq!(proven == Some(anchor.root), seq != 4, "record {seq}");
    }
    assert_eq!(
        ehr.verify(&[anchor, second]).expect("verifies").altered,
        [4]
    );
}

#[test]
fn reads_pick_observations_by_time_across_overlapping_records() {
    let (mut ehr, person) = store_with(0);
    let a = [0, 20_000, 40_000].map(|t| temperature(3_700, t));
    let b = [10_000, 30_000].map(|t| temperature(3_800, t));
    assert_eq!(ehr.append(person, &a).expect("appends"), 1);
    assert_eq!(ehr.append(person, &b).expect("appends"), 2);
    let mut read = |window: (i64, i64), limit| -> Vec<String> {
        ehr.read_observations("x", person, window, limit, 0, &mut MemoryLog::default())
            .expect("reads")
            .iter()
            .map(|o| o["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let window = (T0_MS + 5_000, T0_MS + 35_000);
    assert_eq!(read(window, 10), ["2-0", "1-1", "2-1"]);
    assert_eq!(read(window, 2), ["2-0", "1-1"]);
    assert_eq!(read((T0_MS, T0_MS + 1), 10), ["1-0"]);
    // A window between readings of a record that spans it holds none.
    assert!(read((T0_MS + 41_000, i64::MAX), 10).is_empty());
    assert!(read((T0_MS + 1, T0_MS + 9_999), 10).is_empty());
}

#[test]
fn erasure_makes_data_unreadable_and_leaves_verification_green() {
    let (mut ehr, person) = store_with(4);
    let anchor = ehr.seal_batch().expect("seals").expect("a batch");
    ehr.erase_person(person).expect("erases");
    ehr.erase_person(person).expect("erasing twice is fine");
    let mut log = MemoryLog::default();
    assert!(matches!(
        ehr.read_observations("x", person, (0, i64::MAX), 10, 0, &mut log),
        Err(EhrError::Erased(_))
    ));
    assert!(matches!(
        ehr.read_identity("x", person, 0, &mut log),
        Err(EhrError::Erased(_))
    ));
    assert!(matches!(
        ehr.append(person, &[temperature(3_700, 0)]),
        Err(EhrError::Erased(_))
    ));
    assert!(log.events.is_empty());
    assert!(ehr.verify(&[anchor]).expect("verifies").is_intact());
}

#[test]
fn the_file_holds_no_plaintext_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ehr.sqlite");
    let master = SecretKey::random();
    let person = PersonId::random();
    {
        let mut ehr = Ehr::open(&path, master.clone()).expect("opens");
        ehr.register_person(person, &identity()).expect("registers");
        ehr.append(person, &[temperature(3_912, 0)])
            .expect("appends");
        ehr.seal_batch().expect("seals");
    }
    let mut ehr = Ehr::open(&path, master.clone()).expect("reopens");
    ehr.append(person, &[temperature(3_913, 1_000)])
        .expect("appends");
    let anchors = ehr.sealed_anchors().expect("reads");
    let report = ehr.verify(&anchors).expect("verifies");
    assert_eq!((report.verified, report.pending), (1, 1));
    let observations = ehr
        .read_observations("x", person, (0, i64::MAX), 10, 0, &mut MemoryLog::default())
        .expect("reads");
    assert_eq!(observations.len(), 2);
    assert_eq!(observations[1]["id"], "2-0");
    drop(ehr);

    let mut bytes = std::fs::read(&path).expect("reads file");
    if let Ok(wal) = std::fs::read(dir.path().join("ehr.sqlite-wal")) {
        bytes.extend(wal);
    }
    for secret in [
        "Somchai",
        "Sukhumvit",
        "+66 81",
        "39.12",
        "8310-5",
        "Observation",
    ] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret:?} stored in clear"
        );
    }

    // The wrong master key opens nothing.
    let mut wrong = Ehr::open(&path, SecretKey::random()).expect("opens");
    assert!(matches!(
        wrong.read_identity("x", person, 0, &mut MemoryLog::default()),
        Err(EhrError::Undecryptable(_))
    ));
}

#[test]
fn each_pack_is_stored_exactly_once_even_out_of_order() {
    let (mut ehr, person) = store_with(0);
    let device: vigil_core::DeviceId = "thermo-01".parse().expect("valid");
    let pack = [temperature(3_700, 0)];
    assert_eq!(ehr.append_pack(person, &device, 10, &pack).expect("new"), 1);
    assert!(matches!(
        ehr.append_pack(person, &device, 10, &pack),
        Err(EhrError::Replayed { .. })
    ));
    // A late pack inside the window is new; the same again is a replay.
    assert_eq!(
        ehr.append_pack(person, &device, 9, &pack)
            .expect("late but new"),
        2
    );
    assert!(matches!(
        ehr.append_pack(person, &device, 9, &pack),
        Err(EhrError::Replayed { .. })
    ));
    // Another device's numbering is independent.
    let other: vigil_core::DeviceId = "oxi-01".parse().expect("valid");
    assert_eq!(
        ehr.append_pack(person, &other, 10, &pack)
            .expect("other device"),
        3
    );
    // Far ahead, then something older than the window.
    ehr.append_pack(person, &device, 10 + REPLAY_WINDOW, &pack)
        .expect("new");
    assert!(matches!(
        ehr.append_pack(person, &device, 10, &pack),
        Err(EhrError::TooOld { .. })
    ));
    // The oldest sequence still inside the window, never seen: accepted once.
    assert_eq!(
        ehr.append_pack(person, &device, 11, &pack)
            .expect("inside the window"),
        5
    );
    assert!(matches!(
        ehr.append_pack(person, &device, 11, &pack),
        Err(EhrError::Replayed { .. })
    ));
    // Nothing refused was stored.
    let stored: u64 = ehr
        .db
        .query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))
        .expect("counts");
    assert_eq!(stored, 5);
}

#[test]
fn a_batch_stores_each_new_pack_once_and_refused_packs_change_nothing() {
    let (mut ehr, person) = store_with(0);
    let stranger = PersonId::from_bytes([0xee; 16]);
    let device: vigil_core::DeviceId = "thermo-01".parse().expect("valid");
    let two = [temperature(3_700, 0), temperature(3_710, 1_000)];
    let one = [temperature(3_720, 2_000)];
    fn pack<'a>(
        person: PersonId,
        device: &'a vigil_core::DeviceId,
        sequence: u64,
        readings: &'a [Reading],
    ) -> PackToStore<'a> {
        PackToStore {
            person,
            device,
            sequence,
            readings,
        }
    }
    let results = ehr
        .append_packs(&[
            pack(person, &device, 1, &two),
            // The same sequence number again within the batch: a replay.
            pack(person, &device, 1, &one),
            pack(stranger, &device, 7, &one),
            pack(person, &device, 2, &one),
        ])
        .expect("the database works");
    assert_eq!(results.len(), 4);
    assert_eq!(results[0].as_ref().expect("new"), &1);
    assert!(matches!(results[1], Err(EhrError::Replayed { .. })));
    assert!(matches!(results[2], Err(EhrError::UnknownPerson(_))));
    assert_eq!(results[3].as_ref().expect("new"), &2);
    // Re-sending the whole batch stores nothing more.
    let again = ehr
        .append_packs(&[
            pack(person, &device, 1, &two),
            pack(person, &device, 2, &one),
        ])
        .expect("the database works");
    assert!(
        again
            .iter()
            .all(|r| matches!(r, Err(EhrError::Replayed { .. })))
    );
    let anchor = ehr.seal_batch().expect("seals").expect("two records");
    assert_eq!((anchor.first_seq, anchor.count), (1, 2));
    assert!(ehr.verify(&[anchor]).expect("verifies").is_intact());
}

/// Issue 13: a sequence number beyond SQLite's integers made the whole batch fail (`out of
/// range integral type conversion`); now it is refused alone and the rest is stored.
#[test]
fn a_sequence_number_beyond_storage_is_refused_alone() {
    let (mut ehr, person) = store_with(0);
    let device: vigil_core::DeviceId = "thermo-01".parse().expect("valid");
    let one = [temperature(3_720, 0)];
    let pack = |sequence| PackToStore {
        person,
        device: &device,
        sequence,
        readings: &one,
    };
    let results = ehr
        .append_packs(&[pack(1), pack(1 << 63), pack(2), pack(u64::MAX)])
        .expect("the database works");
    assert_eq!(results[0].as_ref().expect("stored"), &1);
    assert!(matches!(
        results[1],
        Err(EhrError::SequenceOutOfRange { sequence, .. }) if sequence == 1 << 63
    ));
    assert_eq!(results[2].as_ref().expect("stored"), &2);
    assert!(matches!(
        results[3],
        Err(EhrError::SequenceOutOfRange { .. })
    ));
    assert!(
        ehr.record_proof(1 << 63)
            .expect("no database error")
            .is_none()
    );
    assert!(
        ehr.record_proof(u64::MAX)
            .expect("no database error")
            .is_none()
    );
    assert!(ehr.record_proof(1).expect("reads").is_some());
}

/// Issue 13: the health record and its write-ahead log were created world-readable (0644).
#[cfg(unix)]
#[test]
fn the_record_and_its_log_are_created_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ehr.sqlite");
    let mut ehr = Ehr::open(&path, SecretKey::random()).expect("opens");
    let person = PersonId::random();
    ehr.register_person(person, &identity()).expect("registers");
    for file in ["ehr.sqlite", "ehr.sqlite-wal", "ehr.sqlite-shm"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file} has mode {:o}", mode & 0o777);
    }
}

mod alert_reasons {
    use super::*;

    fn reason(value: i32) -> serde_json::Value {
        serde_json::json!({"kind": "threshold", "metric": "body-temperature", "value": value,
            "text": format!("body temperature {value}")})
    }

    #[test]
    fn reasons_survive_a_reopen_and_are_released_after_one_logged_listing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ehr.sqlite");
        let master = SecretKey::random();
        let (first, second) = (PersonId::random(), PersonId::random());
        {
            let mut ehr = Ehr::open(&path, master.clone()).expect("open");
            ehr.register_person(first, &identity()).expect("register");
            ehr.register_person(second, &identity()).expect("register");
            let stored = ehr
                .store_alert_reasons(&[
                    (first, [1; 32], reason(3850)),
                    (second, [2; 32], reason(3910)),
                    // Stored once: a block seen twice writes nothing new.
                    (first, [1; 32], reason(9999)),
                    // Nobody registered: skipped alone.
                    (PersonId::random(), [3; 32], reason(1)),
                ])
                .expect("store");
            assert_eq!(stored, 2);
        }
        let mut ehr = Ehr::open(&path, master).expect("reopen");
        let mut log = MemoryLog::default();
        let asked = [([1; 32], first), ([2; 32], second), ([4; 32], first)];
        let found = ehr
            .read_alert_reasons("operator", &asked, T0_MS, &mut log)
            .expect("read");
        assert_eq!(found.len(), 2);
        assert_eq!(found[&[1; 32]], reason(3850));
        assert_eq!(found[&[2; 32]], reason(3910));
        assert_eq!(log.listings.len(), 1, "one access for the whole listing");
        assert_eq!(log.listings[0].alerts, vec![[1; 32], [2; 32]]);
        assert!(log.events.is_empty());
    }

    #[test]
    fn a_reason_is_not_released_under_another_person_or_unlogged_or_after_erasure() {
        let mut ehr = Ehr::open_in_memory(SecretKey::random()).expect("open");
        let (person, other) = (PersonId::random(), PersonId::random());
        ehr.register_person(person, &identity()).expect("register");
        ehr.register_person(other, &identity()).expect("register");
        ehr.store_alert_reasons(&[(person, [1; 32], reason(3850))])
            .expect("store");
        let mut log = MemoryLog::default();
        let wrong = ehr
            .read_alert_reasons("operator", &[([1; 32], other)], T0_MS, &mut log)
            .expect("read");
        assert!(wrong.is_empty());
        assert!(log.listings.is_empty(), "nothing released, nothing logged");

        let mut refusing = MemoryLog {
            refuse: true,
            ..MemoryLog::default()
        };
        assert!(matches!(
            ehr.read_alert_reasons("operator", &[([1; 32], person)], T0_MS, &mut refusing),
            Err(EhrError::AccessNotLogged(_))
        ));

        ehr.erase_person(person).expect("erase");
        let erased = ehr
            .read_alert_reasons("operator", &[([1; 32], person)], T0_MS, &mut log)
            .expect("read");
        assert!(erased.is_empty());

        let too_many = vec![([0; 32], person); REASONS_PER_LISTING_MAX + 1];
        assert!(matches!(
            ehr.read_alert_reasons("operator", &too_many, T0_MS, &mut log),
            Err(EhrError::ListingTooLarge(_))
        ));
    }
}
