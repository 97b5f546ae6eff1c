//! A reading as a FHIR R4 Observation (vital-signs profile where one exists). Pure.

use serde_json::Value as Json;
use vigil_core::{Metric, PersonId, Reading, TimestampMs, Value};

/// The pseudonym and device identifier systems used in `subject` and `device`.
pub const PSEUDONYM_SYSTEM: &str = "urn:vigil:pseudonym";
pub const DEVICE_SYSTEM: &str = "urn:vigil:device";
/// Metrics without a LOINC vital-sign code are coded in Vigil's own system.
pub const METRIC_SYSTEM: &str = "urn:vigil:metric";

struct Coding {
    loinc: Option<(&'static str, &'static str)>,
    profile: Option<&'static str>,
    ucum: &'static str,
    divisor: f64,
}

fn coding(metric: Metric) -> Coding {
    let vital = |loinc, display, profile, ucum, divisor| Coding {
        loinc: Some((loinc, display)),
        profile: Some(profile),
        ucum,
        divisor,
    };
    let local = |ucum, divisor| Coding {
        loinc: None,
        profile: None,
        ucum,
        divisor,
    };
    match metric {
        Metric::BodyTemperature => vital("8310-5", "Body temperature", "bodytemp", "Cel", 100.0),
        Metric::HeartRate => vital("8867-4", "Heart rate", "heartrate", "/min", 10.0),
        Metric::RespirationRate => vital("9279-1", "Respiratory rate", "resprate", "/min", 10.0),
        Metric::SpO2 => vital(
            "59408-5",
            "Oxygen saturation in Arterial blood by Pulse oximetry",
            "oxygensat",
            "%",
            10.0,
        ),
        Metric::SystolicBp => vital(
            "8480-6",
            "Systolic blood pressure",
            "vitalsigns",
            "mm[Hg]",
            1.0,
        ),
        Metric::RrInterval | Metric::SignalUnusable => local("ms", 1.0),
        Metric::Consciousness | Metric::SupplementalOxygen => local("1", 1.0),
        Metric::Position => local("deg", 1e6),
    }
}

/// The Observation for one reading, as a JSON value. `id` is the record's sequence number in
/// the store. The same document as [`write_observation`] writes (it is parsed from it), so the
/// two can never drift apart.
pub fn observation(id: impl std::fmt::Display, person: PersonId, reading: &Reading) -> Json {
    let mut out = Vec::with_capacity(OBSERVATION_BYTES_TYPICAL);
    write_observation(&mut out, id, person, reading);
    // What we just wrote is valid JSON by construction (see `write_observation`).
    serde_json::from_slice(&out).unwrap_or(Json::Null)
}

/// Bytes of a typical Observation, to size buffers.
pub const OBSERVATION_BYTES_TYPICAL: usize = 768;

/// Appends the Observation for one reading to `out` as compact JSON.
///
/// Written by hand, not through `serde_json::Value`: building a map per reading cost more than
/// encrypting and storing it, and ingestion writes one per accepted reading. Every string
/// written is either a constant, a pseudonym (hex) or a device id (`[A-Za-z0-9._-]`, checked at
/// parse time), so none needs escaping; numbers go through serde_json, as before.
pub fn write_observation(
    out: &mut Vec<u8>,
    id: impl std::fmt::Display,
    person: PersonId,
    reading: &Reading,
) {
    let c = coding(reading.metric);
    let name = reading.metric.name();
    out.extend_from_slice(br#"{"resourceType":"Observation","id":""#);
    push_display(out, id);
    out.extend_from_slice(br#"","status":"final""#);
    if let Some(profile) = c.profile {
        out.extend_from_slice(br#","meta":{"profile":["http://hl7.org/fhir/StructureDefinition/"#);
        out.extend_from_slice(profile.as_bytes());
        out.extend_from_slice(
            br#""]},"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}]"#,
        );
    }
    out.extend_from_slice(br#","code":{"coding":["#);
    if let Some((code, display)) = c.loinc {
        push_coding(out, "http://loinc.org", code, Some(display));
        out.push(b',');
        if reading.metric == Metric::SpO2 {
            push_coding(
                out,
                "http://loinc.org",
                "2708-6",
                Some("Oxygen saturation in Arterial blood"),
            );
            out.push(b',');
        }
    }
    push_coding(out, METRIC_SYSTEM, name, None);
    out.extend_from_slice(br#"],"text":""#);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(br#""},"subject":{"identifier":{"system":""#);
    out.extend_from_slice(PSEUDONYM_SYSTEM.as_bytes());
    out.extend_from_slice(br#"","value":""#);
    push_display(out, person);
    out.extend_from_slice(br#""}},"device":{"identifier":{"system":""#);
    out.extend_from_slice(DEVICE_SYSTEM.as_bytes());
    out.extend_from_slice(br#"","value":""#);
    out.extend_from_slice(reading.device.as_str().as_bytes());
    out.extend_from_slice(br#""}},"effectiveDateTime":""#);
    out.extend_from_slice(rfc3339_utc(reading.time_ms).as_bytes());
    out.push(b'"');
    match reading.value {
        Value::Scalar(v) => {
            out.extend_from_slice(br#","valueQuantity":"#);
            push_quantity(out, f64::from(v) / c.divisor, c.ucum);
        }
        Value::Position(fix) => {
            out.extend_from_slice(br#","component":["#);
            let parts = [
                ("latitude", f64::from(fix.lat_udeg) / 1e6, "deg"),
                ("longitude", f64::from(fix.lon_udeg) / 1e6, "deg"),
                ("accuracy", f64::from(fix.accuracy_m), "m"),
            ];
            for (index, (code, value, unit)) in parts.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(br#"{"code":{"coding":["#);
                push_coding(out, METRIC_SYSTEM, code, None);
                out.extend_from_slice(br#"]},"valueQuantity":"#);
                push_quantity(out, value, unit);
                out.push(b'}');
            }
            out.push(b']');
        }
    }
    out.push(b'}');
}

/// The id of the `index`-th Observation of health record `record`: unique in the store, and
/// the record it names is the one to verify against the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservationId {
    pub record: u64,
    pub index: u32,
}

impl std::fmt::Display for ObservationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.record, self.index)
    }
}

/// Appends a `collection` Bundle of one Observation per reading to `out`, as compact JSON:
/// what one health record holds (a device's pack, as the Personal Health Device IG has a
/// gateway upload one Bundle per device report). Entry `i`'s Observation has id `record-i`.
pub fn write_bundle(out: &mut Vec<u8>, record: u64, person: PersonId, readings: &[Reading]) {
    out.extend_from_slice(br#"{"resourceType":"Bundle","type":"collection","entry":["#);
    for (index, reading) in readings.iter().enumerate() {
        let id = ObservationId {
            record,
            index: u32::try_from(index).unwrap_or(u32::MAX),
        };
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"fullUrl":"urn:vigil:observation:"#);
        push_display(out, id);
        out.extend_from_slice(br#"","resource":"#);
        write_observation(out, id, person, reading);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
}

fn push_display(out: &mut Vec<u8>, value: impl std::fmt::Display) {
    use std::io::Write as _;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{value}");
}

fn push_coding(out: &mut Vec<u8>, system: &str, code: &str, display: Option<&str>) {
    out.extend_from_slice(br#"{"system":""#);
    out.extend_from_slice(system.as_bytes());
    out.extend_from_slice(br#"","code":""#);
    out.extend_from_slice(code.as_bytes());
    if let Some(display) = display {
        out.extend_from_slice(br#"","display":""#);
        out.extend_from_slice(display.as_bytes());
    }
    out.extend_from_slice(br#""}"#);
}

fn push_quantity(out: &mut Vec<u8>, value: f64, unit: &str) {
    out.extend_from_slice(br#"{"value":"#);
    // serde_json writes finite floats as JSON numbers (ryu); every value here is a finite
    // fixed-point integer divided by a constant. A non-finite one would become `null`.
    if serde_json::to_writer(&mut *out, &value).is_err() {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(br#","unit":""#);
    out.extend_from_slice(unit.as_bytes());
    out.extend_from_slice(br#"","system":"http://unitsofmeasure.org","code":""#);
    out.extend_from_slice(unit.as_bytes());
    out.extend_from_slice(br#""}"#);
}

/// `YYYY-MM-DDThh:mm:ss.sssZ` from Unix milliseconds, without a clock or a date library
/// (civil-from-days, H. Hinnant's algorithm).
pub fn rfc3339_utc(time_ms: TimestampMs) -> String {
    let days = time_ms.div_euclid(86_400_000);
    let ms_of_day = time_ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, ms) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1_000 % 60,
        ms_of_day % 1_000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

/// Unix milliseconds from the `YYYY-MM-DDThh:mm:ss.sssZ` form [`rfc3339_utc`] writes; `None`
/// for any other form (days-from-civil, H. Hinnant's algorithm).
pub fn parse_rfc3339_utc(text: &str) -> Option<TimestampMs> {
    let b = text.as_bytes();
    if b.len() != 24 || !text.is_ascii() || b[23] != b'Z' {
        return None;
    }
    let layout = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ];
    if layout.iter().any(|&(at, separator)| b[at] != separator) {
        return None;
    }
    let field = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = &text[range];
        digits
            .bytes()
            .all(|d| d.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (h, m, s, ms) = (
        field(11..13)?,
        field(14..16)?,
        field(17..19)?,
        field(20..23)?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 59 {
        return None;
    }
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400_000 + h * 3_600_000 + m * 60_000 + s * 1_000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use vigil_core::GeoFix;

    /// The Observation as it was first written, with `serde_json::json!`: the hand-written
    /// encoder must produce the same document for every metric.
    fn reference_observation(id: u64, person: PersonId, reading: &Reading) -> Json {
        let c = coding(reading.metric);
        let mut codings = Vec::new();
        if let Some((code, display)) = c.loinc {
            codings.push(json!({"system": "http://loinc.org", "code": code, "display": display}));
            if reading.metric == Metric::SpO2 {
                codings.push(json!({"system": "http://loinc.org", "code": "2708-6",
                    "display": "Oxygen saturation in Arterial blood"}));
            }
        }
        codings.push(json!({"system": METRIC_SYSTEM, "code": reading.metric.name()}));
        let quantity = |value: f64, unit: &str| json!({"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit});
        let mut observation = json!({
            "resourceType": "Observation",
            "id": id.to_string(),
            "status": "final",
            "code": {"coding": codings, "text": reading.metric.name()},
            "subject": {"identifier": {"system": PSEUDONYM_SYSTEM, "value": person.to_string()}},
            "device": {"identifier": {"system": DEVICE_SYSTEM, "value": reading.device.as_str()}},
            "effectiveDateTime": rfc3339_utc(reading.time_ms),
        });
        if let Some(profile) = c.profile {
            observation["meta"] =
                json!({"profile": [format!("http://hl7.org/fhir/StructureDefinition/{profile}")]});
            observation["category"] = json!([{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "vital-signs", "display": "Vital Signs"}]}]);
        }
        match reading.value {
            Value::Scalar(v) => {
                observation["valueQuantity"] = quantity(f64::from(v) / c.divisor, c.ucum)
            }
            Value::Position(fix) => {
                let component = |code: &str, value: Json| json!({"code": {"coding": [{"system": METRIC_SYSTEM, "code": code}]}, "valueQuantity": value});
                observation["component"] = json!([
                    component("latitude", quantity(f64::from(fix.lat_udeg) / 1e6, "deg")),
                    component("longitude", quantity(f64::from(fix.lon_udeg) / 1e6, "deg")),
                    component("accuracy", quantity(f64::from(fix.accuracy_m), "m")),
                ]);
            }
        }
        observation
    }

    #[test]
    fn hand_written_json_equals_the_reference_for_every_metric() {
        let person = PersonId::from_bytes([7; 16]);
        for metric in Metric::ALL {
            for value in [
                Value::Scalar(0),
                Value::Scalar(-3),
                Value::Scalar(3_825),
                Value::Position(GeoFix {
                    lat_udeg: -33_868_820,
                    lon_udeg: 151_209_296,
                    accuracy_m: 12,
                }),
            ] {
                let reading = Reading {
                    device: "dev_1.a-b".parse().expect("valid"),
                    metric,
                    time_ms: 1_700_000_000_123,
                    value,
                };
                let fast = observation(42, person, &reading);
                assert_eq!(
                    fast,
                    reference_observation(42, person, &reading),
                    "{metric:?}"
                );
            }
        }
    }

    #[test]
    fn a_bundle_holds_one_observation_per_reading_with_record_scoped_ids() {
        let person = PersonId::from_bytes([3; 16]);
        let readings: Vec<Reading> = [Metric::HeartRate, Metric::SpO2, Metric::BodyTemperature]
            .into_iter()
            .enumerate()
            .map(|(i, metric)| Reading {
                device: "band-7".parse().expect("valid"),
                metric,
                time_ms: 1_700_000_000_000 + i as i64,
                value: Value::Scalar(900 + i as i32),
            })
            .collect();
        let mut out = Vec::new();
        write_bundle(&mut out, 12, person, &readings);
        let bundle: Json = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(bundle["resourceType"], "Bundle");
        assert_eq!(bundle["type"], "collection");
        let entries = bundle["entry"].as_array().expect("entries");
        assert_eq!(entries.len(), 3);
        for (i, (entry, reading)) in entries.iter().zip(&readings).enumerate() {
            let id = ObservationId {
                record: 12,
                index: i as u32,
            };
            assert_eq!(entry["fullUrl"], format!("urn:vigil:observation:12-{i}"));
            assert_eq!(entry["resource"], observation(id, person, reading));
        }
    }

    proptest::proptest! {
        #[test]
        fn dates_parse_back_to_their_instant(time_ms in -62_135_596_800_000i64..253_402_300_799_999) {
            proptest::prop_assert_eq!(parse_rfc3339_utc(&rfc3339_utc(time_ms)), Some(time_ms));
        }
    }

    #[test]
    fn other_date_forms_are_refused() {
        for text in [
            "2023-11-14T22:13:20Z",
            "2023-11-14 22:13:20.123Z",
            "2023-13-14T22:13:20.123Z",
            "2023-11-14T22:13:20.12aZ",
            "2023-11-14T22:13:20.123+",
        ] {
            assert_eq!(parse_rfc3339_utc(text), None, "{text}");
        }
    }

    #[test]
    fn dates_match_known_instants() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_utc(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn temperature_is_a_vital_signs_observation_with_loinc_and_ucum() {
        let person = PersonId::from_bytes([1; 16]);
        let reading = Reading {
            device: "thermo-01".parse().expect("valid"),
            metric: Metric::BodyTemperature,
            time_ms: 1_700_000_000_000,
            value: Value::Scalar(3_825),
        };
        let o = observation(9, person, &reading);
        assert_eq!(o["resourceType"], "Observation");
        assert_eq!(o["code"]["coding"][0]["code"], "8310-5");
        assert_eq!(o["valueQuantity"]["value"], 38.25);
        assert_eq!(o["valueQuantity"]["code"], "Cel");
        assert_eq!(o["category"][0]["coding"][0]["code"], "vital-signs");
        assert_eq!(
            o["meta"]["profile"][0],
            "http://hl7.org/fhir/StructureDefinition/bodytemp"
        );
        assert_eq!(o["subject"]["identifier"]["value"], person.to_string());
    }

    #[test]
    fn positions_are_components() {
        let reading = Reading {
            device: "phone-1".parse().expect("valid"),
            metric: Metric::Position,
            time_ms: 0,
            value: Value::Position(GeoFix {
                lat_udeg: 13_500_000,
                lon_udeg: -2_250_000,
                accuracy_m: 9,
            }),
        };
        let o = observation(1, PersonId::from_bytes([2; 16]), &reading);
        assert_eq!(o["component"][0]["valueQuantity"]["value"], 13.5);
        assert_eq!(o["component"][1]["valueQuantity"]["value"], -2.25);
        assert!(o.get("category").is_none());
    }
}
