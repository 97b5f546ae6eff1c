use proptest::prelude::*;

use super::*;
use crate::DeviceKey;

const T0_MS: i64 = 1_700_000_000_000;

fn device() -> DeviceId {
    "patch-01".parse().expect("valid device id")
}

fn sample_pack(key: &DeviceKey) -> SignedPack {
    let mut draft = PackDraft::new(device(), 42);
    draft
        .push(Metric::BodyTemperature, T0_MS, Value::Scalar(3_812))
        .push(Metric::HeartRate, T0_MS + 1_000, Value::Scalar(725))
        .push(Metric::RespirationRate, T0_MS + 1_000, Value::Scalar(160))
        .push(Metric::SpO2, T0_MS + 2_500, Value::Scalar(973))
        .push(Metric::SystolicBp, T0_MS + 3_000, Value::Scalar(118))
        .push(Metric::Consciousness, T0_MS + 3_000, Value::Scalar(0))
        .push(Metric::SupplementalOxygen, T0_MS + 3_000, Value::Scalar(1))
        .push(Metric::RrInterval, T0_MS + 3_100, Value::Scalar(812))
        .push(
            Metric::Position,
            T0_MS + 4_000,
            Value::Position(GeoFix {
                lat_udeg: 13_756_331,
                lon_udeg: 100_501_765,
                accuracy_m: 12,
            }),
        );
    draft.sign(key)
}

fn field_error(result: Result<UnverifiedPack, PackError>) -> (usize, &'static str, Problem) {
    match result {
        Err(PackError::Field {
            index,
            field,
            problem,
        }) => (index, field, problem),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn signed_pack_round_trips_through_json_and_cbor() {
    let key = DeviceKey::generate();
    let pack = sample_pack(&key);
    for (format, bytes) in [
        (Format::Json, pack.to_json()),
        (Format::Cbor, pack.to_cbor()),
    ] {
        let parsed = UnverifiedPack::parse(&bytes, format).expect("parses");
        assert_eq!(parsed.device(), &device());
        assert_eq!(parsed.sequence(), Some(42));
        let verified = parsed.verify(&key.public()).expect("verifies");
        assert_eq!(verified, pack, "{format}");
    }
}

#[test]
fn json_is_plain_senml() {
    let key = DeviceKey::from_seed([7; 32]);
    let json: serde_json::Value =
        serde_json::from_slice(&sample_pack(&key).to_json()).expect("valid JSON");
    assert_eq!(json[0]["bn"], "patch-01:");
    assert_eq!(json[0]["bt"], 1_700_000_000.0);
    assert_eq!(json[0]["n"], "body-temperature");
    assert_eq!(json[0]["u"], "Cel");
    assert_eq!(json[0]["v"], 38.12);
    assert_eq!(json[0]["seq_"], 42);
    assert_eq!(json[1]["u"], "beat/min");
    assert_eq!(json[1]["t"], 1.0);
}

#[test]
fn base_fields_resolve_per_rfc_8428() {
    let pack = br#"[
        {"bn":"patch-01:","bt":1700000000,"bu":"Cel","bv":36,"n":"body-temperature","v":1.5},
        {"n":"body-temperature","t":60,"v":2.25},
        {"n":"heart-rate","u":"beat/min","t":60,"v":-0.5,"bv":80},
        {"bt":1700000100,"n":"spo2","u":"%","v":15}
    ]"#;
    let readings = UnverifiedPack::from_json(pack)
        .expect("valid")
        .into_readings_unverified();
    let got: Vec<_> = readings
        .iter()
        .map(|r| (r.metric, r.time_ms, r.value))
        .collect();
    assert_eq!(
        got,
        [
            (Metric::BodyTemperature, T0_MS, Value::Scalar(3_750)),
            (
                Metric::BodyTemperature,
                T0_MS + 60_000,
                Value::Scalar(3_825)
            ),
            (Metric::HeartRate, T0_MS + 60_000, Value::Scalar(795)),
            (Metric::SpO2, T0_MS + 100_000, Value::Scalar(950)),
        ]
    );
}

#[test]
fn fahrenheit_is_converted_and_positions_merge() {
    let pack = br#"[
        {"bn":"phone-9:","bt":1700000000,"n":"body-temperature","u":"[degF]","v":100.4},
        {"n":"lat","u":"lat","t":5,"v":-33.865143},
        {"n":"lon","u":"lon","t":5,"v":151.2099},
        {"n":"accuracy","u":"m","t":5,"v":8}
    ]"#;
    let readings = UnverifiedPack::from_json(pack)
        .expect("valid")
        .into_readings_unverified();
    assert_eq!(readings[0].value, Value::Scalar(3_800));
    assert_eq!(
        readings[1].value,
        Value::Position(GeoFix {
            lat_udeg: -33_865_143,
            lon_udeg: 151_209_900,
            accuracy_m: 8
        })
    );
    assert_eq!(readings[1].time_ms, T0_MS + 5_000);
}

#[test]
fn field_errors_name_the_record_and_field() {
    let cases: &[(&str, usize, &str)] = &[
        (
            r#"[{"bn":"d:","bt":1700000000,"n":"body-temperature","u":"furlong","v":1}]"#,
            0,
            "u",
        ),
        (
            r#"[{"bn":"d:","bt":1700000000,"n":"heart-rate","u":"Cel","v":80}]"#,
            0,
            "u",
        ),
        (
            r#"[{"bn":"d:","bt":1700000000,"n":"heart-rate","v":80}]"#,
            0,
            "u",
        ),
        (
            r#"[{"bn":"d:","n":"heart-rate","u":"beat/min","v":80}]"#,
            0,
            "t",
        ),
        (
            r#"[{"bn":"d:","t":12,"n":"heart-rate","u":"beat/min","v":80}]"#,
            0,
            "t",
        ),
        (
            r#"[{"bn":"d:","bt":1700000000,"n":"heart-rate","u":"beat/min"}]"#,
            0,
            "v",
        ),
        (
            r#"[{"bn":"d:","bt":1700000000,"n":"body-temperature","u":"Cel","v":24.99}]"#,
            0,
            "v",
        ),
        (
            r#"[{"bn":"d:","bt":1700000000,"n":"body-temperature","u":"Cel","v":45.01}]"#,
            0,
            "v",
        ),
        (
            r#"[{"bn":"d:","bt":1700000000,"n":"spo2","u":"%","v":100.1}]"#,
            0,
            "v",
        ),
        (
            r#"[{"bn":"d:","bt":1700000000,"n":"consciousness","v":1.5}]"#,
            0,
            "v",
        ),
        (
            r#"[{"bn":"d:","bt":1700000000,"n":"mood","u":"%","v":1}]"#,
            0,
            "n",
        ),
        (
            r#"[{"bn":"d","bt":1700000000,"n":"spo2","u":"%","v":99}]"#,
            0,
            "n",
        ),
        (
            r#"[{"bn":"d d:","bt":1700000000,"n":"spo2","u":"%","v":99}]"#,
            0,
            "bn",
        ),
        (
            r#"[{"bn":"d:","bt":1700000000,"n":"spo2","u":"%","v":99},{"bn":"e:","n":"spo2","u":"%","v":99}]"#,
            1,
            "bn",
        ),
        (
            r#"[{"bn":"d:","bt":1700000000,"n":"spo2","u":"%","v":99},{"seq_":3,"n":"spo2","u":"%","v":99}]"#,
            1,
            "seq_",
        ),
        (
            r#"[{"bn":"d:","bt":1700000000,"n":"lat","u":"lat","v":1}]"#,
            0,
            "n",
        ),
        (
            r#"[{"bn":"d:","bt":1700000000,"n":"spo2","u":"%","vs":"99"}]"#,
            0,
            "n",
        ),
        (
            r#"[{"bn":"d:","bt":1700000000,"n":"spo2","u":"%","v":99,"crit_":1}]"#,
            0,
            "n",
        ),
        (
            r#"[{"bn":"d:","bt":1700000000,"n":"spo2","u":"%","v":99,"sig_":"AAAA"}]"#,
            0,
            "sig_",
        ),
        (
            r#"[{"bn":"d:","bt":1700000000,"n":"heart-rate","u":"beat/min","vb":true}]"#,
            0,
            "vb",
        ),
        (
            r#"[{"bn":"d:","bt":1e12,"n":"spo2","u":"%","v":99}]"#,
            0,
            "t",
        ),
    ];
    for (json, index, field) in cases {
        let (got_index, got_field, problem) =
            field_error(UnverifiedPack::from_json(json.as_bytes()));
        assert_eq!(
            (got_index, got_field),
            (*index, *field),
            "{json}: {problem}"
        );
    }
}

#[test]
fn wrong_and_unknown_units_are_told_apart() {
    let wrong = br#"[{"bn":"d:","bt":1700000000,"n":"heart-rate","u":"Cel","v":80}]"#;
    assert!(matches!(
        field_error(UnverifiedPack::from_json(wrong)).2,
        Problem::WrongUnit { .. }
    ));
    let unknown = br#"[{"bn":"d:","bt":1700000000,"n":"heart-rate","u":"bpm","v":80}]"#;
    assert!(matches!(
        field_error(UnverifiedPack::from_json(unknown)).2,
        Problem::UnknownUnit(_)
    ));
}

#[test]
fn nan_and_infinity_are_refused_in_cbor() {
    use ciborium::Value as Cbor;
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for label in [2i64, 6, -3, -5] {
            let mut fields = vec![
                (Cbor::Integer((-2).into()), Cbor::Text("d:".into())),
                (Cbor::Integer(0.into()), Cbor::Text("spo2".into())),
                (Cbor::Integer(1.into()), Cbor::Text("%".into())),
            ];
            for (code, value) in [(-3i64, 1.7e9), (2, 97.0)] {
                let value = if code == label { bad } else { value };
                fields.push((Cbor::Integer(code.into()), Cbor::Float(value)));
            }
            fields.push((Cbor::Integer(label.into()), Cbor::Float(bad)));
            fields.dedup_by(|a, b| a.0 == b.0);
            let mut bytes = Vec::new();
            ciborium::ser::into_writer(&Cbor::Array(vec![Cbor::Map(fields)]), &mut bytes)
                .expect("encodes");
            let result = UnverifiedPack::from_cbor(&bytes);
            assert!(
                result.is_err(),
                "label {label} value {bad} accepted: {result:?}"
            );
        }
    }
}

#[test]
fn json_rejects_nan_tokens_and_overflowing_numbers() {
    for json in [
        r#"[{"bn":"d:","bt":1700000000,"n":"spo2","u":"%","v":NaN}]"#,
        r#"[{"bn":"d:","bt":1700000000,"n":"spo2","u":"%","v":1e400}]"#,
        r#"[{"bn":"d:","bt":1700000000,"n":"spo2","u":"%","v":"97"}]"#,
        r#"{"bn":"d:"}"#,
        r#"[]"#,
        r#"[{"bn":"d:","bn":"e:"}]"#,
    ] {
        assert!(
            UnverifiedPack::from_json(json.as_bytes()).is_err(),
            "{json}"
        );
    }
}

#[test]
fn oversized_packs_are_refused_before_parsing() {
    let huge = vec![b' '; PACK_BYTES_MAX + 1];
    assert_eq!(
        UnverifiedPack::from_json(&huge),
        Err(PackError::TooLarge {
            size: PACK_BYTES_MAX + 1,
            max: PACK_BYTES_MAX
        })
    );
    let mut records = String::from("[");
    for i in 0..=RECORDS_MAX {
        if i > 0 {
            records.push(',');
        }
        records.push_str(r#"{"n":"x"}"#);
    }
    records.push(']');
    assert!(matches!(
        UnverifiedPack::from_json(records.as_bytes()),
        Err(PackError::Malformed { .. })
    ));
}

#[test]
fn forged_altered_and_unsigned_packs_fail_verification() {
    let key = DeviceKey::generate();
    let other = DeviceKey::generate();
    let pack = sample_pack(&key);

    let parsed = UnverifiedPack::from_json(&pack.to_json()).expect("parses");
    assert!(matches!(
        parsed.verify(&other.public()),
        Err(PackError::BadSignature { .. })
    ));

    // One hundredth of a degree changed after signing.
    let altered = String::from_utf8(pack.to_json())
        .expect("utf8")
        .replacen("38.12", "38.11", 1);
    let parsed = UnverifiedPack::from_json(altered.as_bytes()).expect("parses");
    assert!(matches!(
        parsed.verify(&key.public()),
        Err(PackError::BadSignature { .. })
    ));

    // A replayed signature under another sequence number.
    let reseq =
        String::from_utf8(pack.to_json())
            .expect("utf8")
            .replacen("\"seq_\":42", "\"seq_\":43", 1);
    let parsed = UnverifiedPack::from_json(reseq.as_bytes()).expect("parses");
    assert!(matches!(
        parsed.verify(&key.public()),
        Err(PackError::BadSignature { .. })
    ));

    let unsigned = br#"[{"bn":"patch-01:","bt":1700000000,"n":"spo2","u":"%","v":97}]"#;
    let parsed = UnverifiedPack::from_json(unsigned).expect("parses");
    assert_eq!(parsed.verify(&key.public()), Err(PackError::Unsigned));
}

proptest! {
    /// Checking packs together gives each the answer checking it alone gives, whichever of
    /// them are forged, signed by another key or unsigned.
    #[test]
    fn batch_verification_answers_each_pack_as_single_verification(
        faults in proptest::collection::vec(0u8..4, 1..12),
    ) {
        let key = DeviceKey::from_seed([1; 32]);
        let other = DeviceKey::from_seed([2; 32]);
        let packs: Vec<(UnverifiedPack, DevicePublicKey)> = faults
            .iter()
            .enumerate()
            .map(|(i, fault)| {
                let mut draft = PackDraft::new(device(), i as u64 + 1);
                draft.push(Metric::HeartRate, T0_MS + i as i64, Value::Scalar(700 + i as i32));
                let json = String::from_utf8(draft.sign(&key).to_json()).expect("utf8");
                let json = match fault {
                    // Altered after signing.
                    1 => json.replacen("\"v\":", "\"v\":1", 1),
                    // Unsigned.
                    2 => json.replacen(",\"sig_\"", ",\"x_sig\"", 1),
                    _ => json,
                };
                let parsed = UnverifiedPack::from_json(json.as_bytes()).expect("parses");
                let enrolled = if *fault == 3 { other.public() } else { key.public() };
                (parsed, enrolled)
            })
            .collect();
        let alone: Vec<_> = packs
            .iter()
            .cloned()
            .map(|(pack, key)| pack.verify(&key))
            .collect();
        let together = UnverifiedPack::verify_all(packs);
        prop_assert_eq!(&together, &alone);
        for (result, fault) in together.iter().zip(&faults) {
            prop_assert_eq!(result.is_ok(), *fault == 0);
        }
    }
}

fn arbitrary_reading() -> impl Strategy<Value = (Metric, i64, Value)> {
    let scalar = proptest::sample::select(&Metric::ALL[..8]).prop_flat_map(|metric| {
        let (min, max) = metric.plausible_range();
        (Just(metric), min..=max).prop_map(|(metric, v)| (metric, Value::Scalar(v)))
    });
    let position = (
        -GeoFix::LAT_UDEG_MAX..=GeoFix::LAT_UDEG_MAX,
        -GeoFix::LON_UDEG_MAX..=GeoFix::LON_UDEG_MAX,
        0..=GeoFix::ACCURACY_M_MAX,
    )
        .prop_map(|(lat_udeg, lon_udeg, accuracy_m)| {
            (
                Metric::Position,
                Value::Position(GeoFix {
                    lat_udeg,
                    lon_udeg,
                    accuracy_m,
                }),
            )
        });
    (prop_oneof![scalar, position], 0i64..86_400_000)
        .prop_map(|((metric, value), offset_ms)| (metric, T0_MS + offset_ms, value))
}

proptest! {
    #[test]
    fn every_plausible_pack_round_trips_exactly(
        readings in proptest::collection::vec(arbitrary_reading(), 1..20),
        sequence: u64,
        seed: [u8; 32],
    ) {
        let key = DeviceKey::from_seed(seed);
        let mut draft = PackDraft::new(device(), sequence);
        // Positions at one time merge; keep one per time so the round trip is one-to-one.
        let mut seen = std::collections::HashSet::new();
        for (metric, time_ms, value) in readings {
            if metric == Metric::Position && !seen.insert(time_ms) {
                continue;
            }
            draft.push(metric, time_ms, value);
        }
        let pack = draft.sign(&key);
        for bytes in [pack.to_json(), pack.to_cbor()] {
            let format = if bytes.first() == Some(&b'[') { Format::Json } else { Format::Cbor };
            let parsed = UnverifiedPack::parse(&bytes, format).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(parsed.verify(&key.public()), Ok(pack.clone()));
        }
    }

    #[test]
    fn no_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = UnverifiedPack::from_json(&bytes);
        let _ = UnverifiedPack::from_cbor(&bytes);
    }

    #[test]
    fn no_panic_on_mutated_valid_packs(
        seed: [u8; 32],
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cbor: bool,
    ) {
        let pack = sample_pack(&DeviceKey::from_seed(seed));
        let mut bytes = if cbor { pack.to_cbor() } else { pack.to_json() };
        for (index, byte) in flips {
            let i = index.index(bytes.len());
            bytes[i] = byte;
        }
        let format = if cbor { Format::Cbor } else { Format::Json };
        if let Ok(parsed) = UnverifiedPack::parse(&bytes, format) {
            let _ = parsed.verify(&DeviceKey::from_seed(seed).public());
        }
    }
}

/// A pack as an independent SenML writer produces it (`kpn-senml`, `cbor2`): RFC 8428's integer
/// labels, whole numbers as CBOR integers, fractions as decimal fractions (tag 4), and the
/// device named by an RFC 9039 URN. Only Vigil's signature is added, computed by the device
/// over the typed readings. Regression: `invalid type: integer 1, expected float`.
fn foreign_cbor(device: &str, signature: &[u8; 64], temperature: ciborium::Value) -> Vec<u8> {
    use ciborium::Value as Cbor;
    let int = |i: i64| Cbor::Integer(i.into());
    let decimal = |exponent: i64, mantissa: i64| {
        Cbor::Tag(4, Box::new(Cbor::Array(vec![int(exponent), int(mantissa)])))
    };
    let records = vec![
        Cbor::Map(vec![
            (int(-2), Cbor::Text(format!("{device}:"))),
            (int(-3), int(1_700_000_000)),
            (Cbor::Text("seq_".into()), int(9)),
            (
                Cbor::Text("sig_".into()),
                Cbor::Text(URL_SAFE_NO_PAD.encode(signature)),
            ),
            (int(0), Cbor::Text("body-temperature".into())),
            (int(1), Cbor::Text("Cel".into())),
            (int(2), temperature),
        ]),
        Cbor::Map(vec![
            (int(0), Cbor::Text("heart-rate".into())),
            (int(1), Cbor::Text("beat/min".into())),
            (int(6), int(1)),
            (int(2), int(88)),
        ]),
        Cbor::Map(vec![
            (int(0), Cbor::Text("spo2".into())),
            (int(1), Cbor::Text("%".into())),
            (int(6), decimal(-1, 25)),
            (int(2), decimal(-1, 973)),
        ]),
    ];
    let mut bytes = Vec::new();
    ciborium::ser::into_writer(&Cbor::Array(records), &mut bytes).expect("writes to a Vec");
    bytes
}

#[test]
fn integers_decimal_fractions_and_device_urns_from_other_writers_verify() {
    let key = DeviceKey::from_seed([3; 32]);
    let device: DeviceId = "urn:dev:mac:0024befffe804ff1".parse().expect("URN id");
    let mut draft = PackDraft::new(device.clone(), 9);
    draft
        .push(Metric::BodyTemperature, T0_MS, Value::Scalar(3_800))
        .push(Metric::HeartRate, T0_MS + 1_000, Value::Scalar(880))
        .push(Metric::SpO2, T0_MS + 2_500, Value::Scalar(973));
    let signed = draft.sign(&key);
    use ciborium::Value as Cbor;
    let as_integer = Cbor::Integer(38.into());
    let as_float = Cbor::Float(38.0);
    let as_decimal = Cbor::Tag(
        4,
        Box::new(Cbor::Array(vec![
            Cbor::Integer((-2).into()),
            Cbor::Integer(3_800.into()),
        ])),
    );
    // 38, 38.0 and 4([-2, 3800]) are one reading: the signature over it verifies for each.
    for temperature in [as_integer, as_float, as_decimal] {
        let bytes = foreign_cbor(device.as_str(), &signed.signature, temperature.clone());
        let parsed =
            UnverifiedPack::from_cbor(&bytes).unwrap_or_else(|e| panic!("{temperature:?}: {e}"));
        assert_eq!(parsed.device(), &device);
        let verified = parsed.verify(&key.public()).expect("verifies");
        assert_eq!(verified, signed);
    }
    // And Vigil's own encoders write a URN device that parses back.
    let back = UnverifiedPack::from_json(&signed.to_json()).expect("JSON");
    assert_eq!(back.verify(&key.public()).expect("verifies"), signed);
    let back = UnverifiedPack::from_cbor(&signed.to_cbor()).expect("CBOR");
    assert_eq!(back.verify(&key.public()).expect("verifies"), signed);
}

#[test]
fn cbor_errors_name_the_record_and_field_not_the_decoder() {
    use ciborium::Value as Cbor;
    let signature = [0u8; 64];
    let bad_tag = Cbor::Tag(1, Box::new(Cbor::Integer(5.into())));
    let bad_decimal = Cbor::Tag(4, Box::new(Cbor::Array(vec![Cbor::Integer(1.into())])));
    for (value, expected) in [
        (Cbor::Text("38".into()), "expected a number, got text"),
        (bad_tag, "CBOR tag 1 is not a number"),
        (bad_decimal, "must hold [exponent, mantissa]"),
    ] {
        let bytes = foreign_cbor("urn:dev:ow:10e2073a01080063", &signature, value);
        let error = UnverifiedPack::from_cbor(&bytes).expect_err("refused");
        let text = error.to_string();
        assert!(
            text.starts_with("malformed SenML CBOR: record 0, field \"v\": ")
                && text.contains(expected)
                && !text.contains("Semantic("),
            "{text}"
        );
    }
    let truncated = &foreign_cbor("patch-01", &signature, Cbor::Float(38.0))[..20];
    let error = UnverifiedPack::from_cbor(truncated).expect_err("refused");
    assert!(error.to_string().contains("truncated"), "{error}");
}
