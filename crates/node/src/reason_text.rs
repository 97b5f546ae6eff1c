//! What an alert's reason says, in words an operator reads: the metric, the value in its
//! everyday unit, the band or zone, and for no-signal the silence in minutes and the last
//! reading's time (UTC here; the dashboard shows it in the operator's time zone).

use vigil_contracts::Reason;
use vigil_contracts::geofence::ZoneEventKind;
use vigil_contracts::threshold::ThresholdReason;
use vigil_core::Metric;

/// A metric's canonical fixed-point scale and everyday unit.
fn everyday(metric: Metric) -> Option<(i32, &'static str, &'static str)> {
    Some(match metric {
        Metric::BodyTemperature => (100, "body temperature", "°C"),
        Metric::HeartRate => (10, "heart rate", "beats/min"),
        Metric::RespirationRate => (10, "respiration rate", "breaths/min"),
        Metric::SpO2 => (10, "SpO₂", "%"),
        Metric::SystolicBp => (1, "systolic blood pressure", "mmHg"),
        Metric::RrInterval => (1, "RR interval", "ms"),
        _ => return None,
    })
}

/// `value / scale` with as many decimals as the scale has, without floating point.
fn fixed(value: i32, scale: i32) -> String {
    if scale <= 1 {
        return value.to_string();
    }
    let sign = if value < 0 { "-" } else { "" };
    let magnitude = value.unsigned_abs();
    let scale = scale.unsigned_abs();
    let digits = scale.ilog10() as usize;
    format!(
        "{sign}{}.{:0digits$}",
        magnitude / scale,
        magnitude % scale,
        digits = digits
    )
}

fn threshold(reason: &ThresholdReason) -> String {
    let band = reason.band.name().replace('-', " ");
    match everyday(reason.metric) {
        Some((scale, name, unit)) => {
            format!("{name} {} {unit} ({band})", fixed(reason.value, scale))
        }
        None => format!("{} {} ({band})", reason.metric.name(), reason.value),
    }
}

/// The operator's sentence for `reason`.
pub fn describe(reason: &Reason) -> String {
    match reason {
        Reason::Threshold(reason) => threshold(reason),
        Reason::News2(reason) => format!(
            "NEWS2 aggregate score {} ({} clinical risk)",
            reason.aggregate,
            reason.band.name().replace('-', " ")
        ),
        Reason::Geofence(reason) => {
            let events: Vec<String> = reason
                .events
                .iter()
                .map(|event| {
                    let verb = match event.event {
                        ZoneEventKind::Left => "left",
                        ZoneEventKind::Returned => "returned to",
                        ZoneEventKind::Entered => "entered",
                        ZoneEventKind::Exited => "exited",
                    };
                    format!("{verb} zone {:?}", event.zone)
                })
                .collect();
            if events.is_empty() {
                "outside the permitted area".to_owned()
            } else {
                events.join("; ")
            }
        }
        Reason::NoSignal(reason) => {
            let last = reason.last_seen_ms.map_or_else(
                || "no reading yet".to_owned(),
                |ms| format!("last reading at {}", vigil_ehr::fhir::rfc3339_utc(ms)),
            );
            match reason.silence_ms {
                Some(silence) => format!("no signal for {} min ({last})", silence / 60_000),
                None => format!("no signal ({last})"),
            }
        }
        Reason::HeartRhythm(reason) => {
            let mut parts = Vec::new();
            if let Some(rate) = &reason.rate {
                parts.push(threshold(rate));
            }
            if let Some(permille) = reason.irregular_permille {
                parts.push(format!(
                    "RR irregularity {} %{}",
                    fixed(i32::from(permille), 10),
                    if reason.irregular {
                        ": irregular rhythm"
                    } else {
                        ""
                    }
                ));
            }
            if reason.signal_unusable {
                parts.push("ECG signal unusable".to_owned());
            }
            if parts.is_empty() {
                "heart rhythm".to_owned()
            } else {
                parts.join("; ")
            }
        }
        Reason::Unchanged { .. } => "level unchanged".to_owned(),
    }
}

/// The reason as the API and the live feed carry it: the contract's reason with its `text`.
pub fn with_text(reason: &Reason) -> serde_json::Value {
    let mut json = serde_json::to_value(reason).unwrap_or_default();
    if let serde_json::Value::Object(fields) = &mut json {
        fields.insert("text".to_owned(), describe(reason).into());
    }
    json
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_contracts::nosignal::NoSignalReason;
    use vigil_contracts::threshold::Band;
    use vigil_core::AlertLevel;

    #[test]
    fn fixed_point_values_read_in_everyday_units() {
        assert_eq!(fixed(3850, 100), "38.50");
        assert_eq!(fixed(1145, 10), "114.5");
        assert_eq!(fixed(-5, 10), "-0.5");
        assert_eq!(fixed(120, 1), "120");
        let fever = Reason::Threshold(ThresholdReason {
            metric: Metric::BodyTemperature,
            band: Band::CriticalHigh,
            value: 3910,
            raw_level: AlertLevel::Critical,
            held: false,
            pending: false,
        });
        assert_eq!(
            describe(&fever),
            "body temperature 39.10 °C (critical high)"
        );
        assert_eq!(
            with_text(&fever)["text"],
            "body temperature 39.10 °C (critical high)"
        );
        assert_eq!(with_text(&fever)["kind"], "threshold");
    }

    #[test]
    fn silence_reads_in_minutes_with_the_last_reading_time() {
        let silent = Reason::NoSignal(NoSignalReason {
            last_seen_ms: Some(1_796_175_398_209),
            silence_ms: Some(120_493),
            level: AlertLevel::Warning,
        });
        let text = describe(&silent);
        assert!(
            text.starts_with("no signal for 2 min (last reading at 2026-"),
            "{text}"
        );
        assert!(!text.contains("1796175398209"), "{text}");
    }
}
