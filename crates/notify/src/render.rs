//! What a channel is sent: a webhook's JSON body, an e-mail's subject and text.
//!
//! Without `allow_health_data` a message carries the pseudonym, the level, the contract's kind,
//! the basis, times, ids and a dashboard link, and never the alert's reason (the one part of
//! an event that names values): the operator follows the link, and the dashboard checks who
//! may see the readings. With it, the reason is added as the contract gave it.

use serde_json::{Value, json};
use vigil_core::{PersonId, TimestampMs};

use crate::event::{AlertEvent, EscalationEvent, Event};

/// Version of the webhook body's layout; a receiver checks it before reading the rest.
pub const WEBHOOK_BODY_VERSION: u32 = 1;

/// How one channel renders: whether it may carry health values, and where the dashboard is.
#[derive(Clone, Copy, Debug)]
pub struct RenderOptions<'a> {
    pub allow_health_data: bool,
    /// The dashboard's address (`https://vigil.example.org/`); links are left out without it.
    pub dashboard_url: Option<&'a str>,
}

/// The webhook's JSON body.
pub fn webhook_body(event: &Event, options: RenderOptions<'_>) -> Vec<u8> {
    let body = match event {
        Event::Alert(alert) => alert_body(alert, options),
        Event::Escalation(step) => escalation_body(step, options),
    };
    // A `Value` always serialises.
    serde_json::to_vec(&body).unwrap_or_default()
}

fn alert_body(alert: &AlertEvent, options: RenderOptions<'_>) -> Value {
    let mut body = json!({
        "version": WEBHOOK_BODY_VERSION,
        "event": crate::EventKind::Alert.name(),
        "id": alert.id,
        "person": alert.person.to_string(),
        "instance": alert.instance,
        "kind": alert.kind,
        "level": alert.level.code(),
        "level_name": alert.level.name(),
        "basis": alert.basis,
        "reading_time": rfc3339(alert.reading_time_ms),
        "reading_time_ms": alert.reading_time_ms,
        "finalized_ms": alert.finalized_ms,
        "height": alert.height,
        "dashboard": dashboard_link(alert.person, options),
    });
    if let Some(reason) = reason(alert, options) {
        body["reason"] = reason.clone();
    }
    body
}

fn escalation_body(step: &EscalationEvent, options: RenderOptions<'_>) -> Value {
    json!({
        "version": WEBHOOK_BODY_VERSION,
        "event": crate::EventKind::Escalation.name(),
        "id": step.id(),
        "alert": step.alert,
        "person": step.person.to_string(),
        "step": step.step,
        "level": step.level.code(),
        "level_name": step.level.name(),
        "height": step.height,
        "dashboard": dashboard_link(step.person, options),
    })
}

/// An e-mail's subject and plain-text body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailText {
    pub subject: String,
    pub body: String,
}

pub fn email(event: &Event, options: RenderOptions<'_>) -> EmailText {
    match event {
        Event::Alert(alert) => alert_email(alert, options),
        Event::Escalation(step) => escalation_email(step, options),
    }
}

fn alert_email(alert: &AlertEvent, options: RenderOptions<'_>) -> EmailText {
    let kind = alert.kind.as_deref().unwrap_or("contract");
    let subject = format!(
        "Vigil: {} {kind} alert for person {}",
        alert.level.name(),
        alert.person
    );
    let mut body = format!(
        "A {level} alert was finalized on the Vigil ledger.\n\n\
         Person:     {person}\n\
         Level:      {level} ({code})\n\
         Contract:   {kind} ({basis})\n\
         Reading at: {reading}\n\
         Finalized:  {finalized} (block {height})\n\
         Alert id:   {id}\n",
        level = alert.level.name(),
        code = alert.level.code(),
        person = alert.person,
        basis = alert.basis,
        reading = rfc3339(alert.reading_time_ms),
        finalized = rfc3339(alert.finalized_ms),
        height = alert.height,
        id = alert.id,
    );
    if let Some(link) = dashboard_link(alert.person, options) {
        body.push_str(&format!("Dashboard:  {link}\n"));
    }
    match reason(alert, options) {
        Some(reason) => {
            // The node adds the sentence an operator reads ("body temperature 39.20 °C
            // (critical high)") to the contract's reason as `text`.
            if let Some(text) = reason.get("text").and_then(Value::as_str) {
                body.push_str(&format!("\nWhy: {text}\n"));
            }
            let pretty = serde_json::to_string_pretty(reason).unwrap_or_default();
            body.push_str(&format!("\nThe contract's reason:\n{pretty}\n"));
        }
        None => body.push_str(
            "\nThis channel does not carry health values: open the dashboard to see the readings.\n",
        ),
    }
    EmailText { subject, body }
}

fn escalation_email(step: &EscalationEvent, options: RenderOptions<'_>) -> EmailText {
    let subject = format!(
        "Vigil: alert for person {} escalated (step {}, {}), nobody acknowledged it",
        step.person,
        step.step,
        step.level.name()
    );
    let mut body = format!(
        "An open alert nobody acknowledged was escalated by the district's policy; the step is\n\
         finalized on the Vigil ledger.\n\n\
         Person:     {person}\n\
         Step:       {n}\n\
         Level now:  {level} ({code})\n\
         Finalized:  block {height}\n\
         Alert id:   {alert}\n",
        person = step.person,
        n = step.step,
        level = step.level.name(),
        code = step.level.code(),
        height = step.height,
        alert = step.alert,
    );
    if let Some(link) = dashboard_link(step.person, options) {
        body.push_str(&format!("Dashboard:  {link}\n"));
    }
    EmailText { subject, body }
}

/// The reason, only where the channel allows health data.
fn reason<'e>(alert: &'e AlertEvent, options: RenderOptions<'_>) -> Option<&'e Value> {
    if !options.allow_health_data {
        return None;
    }
    alert.reason.as_ref().map(|r| r.expose())
}

/// The dashboard's page of the person (`#person/<pseudonym>`).
fn dashboard_link(person: PersonId, options: RenderOptions<'_>) -> Option<String> {
    options
        .dashboard_url
        .map(|base| format!("{base}#person/{person}"))
}

/// `ms` since the epoch as RFC 3339 in UTC, to the millisecond (`2023-11-14T22:13:20.000Z`).
pub fn rfc3339(ms: TimestampMs) -> String {
    let seconds = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Howard Hinnant's `civil_from_days`: the proleptic Gregorian date `days` after 1970-01-01.
/// Exact for every `i64` a millisecond timestamp can give.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::sample_alert;
    use vigil_core::{AlertLevel, PersonId};

    const REDACTED: RenderOptions<'static> = RenderOptions {
        allow_health_data: false,
        dashboard_url: Some("https://vigil.example.org/"),
    };
    const ALLOWED: RenderOptions<'static> = RenderOptions {
        allow_health_data: true,
        dashboard_url: Some("https://vigil.example.org/"),
    };

    fn fever() -> Event {
        let reason = json!({"kind": "threshold", "metric": "body-temperature",
            "band": "critical-above", "value": 39057,
            "text": "body temperature 39.06 °C (critical high)"});
        sample_alert(AlertLevel::Critical, PersonId::random(), Some(reason))
    }

    #[test]
    fn no_health_value_in_a_webhook_body_unless_allowed() {
        let event = fever();
        let redacted = String::from_utf8(webhook_body(&event, REDACTED)).expect("utf-8");
        assert!(!redacted.contains("39057"), "{redacted}");
        assert!(!redacted.contains("body-temperature"), "{redacted}");
        let body: Value = serde_json::from_str(&redacted).expect("JSON");
        assert!(body.get("reason").is_none());
        assert_eq!(body["level"], 2);
        assert_eq!(body["level_name"], "critical");
        assert_eq!(body["kind"], "threshold");
        assert_eq!(body["event"], "alert");
        assert_eq!(body["version"], WEBHOOK_BODY_VERSION);
        assert_eq!(body["reading_time"], "2023-11-14T22:13:20.000Z");
        assert_eq!(
            body["dashboard"],
            format!("https://vigil.example.org/#person/{}", event.person())
        );

        let allowed: Value = serde_json::from_slice(&webhook_body(&event, ALLOWED)).expect("JSON");
        assert_eq!(allowed["reason"]["value"], 39057);
    }

    #[test]
    fn no_health_value_in_an_email_unless_allowed() {
        let event = fever();
        let redacted = email(&event, REDACTED);
        for text in [&redacted.subject, &redacted.body] {
            assert!(!text.contains("39057"), "{text}");
            assert!(!text.contains("body-temperature"), "{text}");
        }
        assert!(redacted.subject.contains("critical"));
        assert!(redacted.subject.contains(&event.person().to_string()));
        assert!(redacted.body.contains("does not carry health values"));
        assert!(redacted.body.contains("#person/"));
        assert!(redacted.body.contains("2023-11-14T22:13:21.500Z (block 7)"));

        let allowed = email(&event, ALLOWED);
        assert!(allowed.body.contains("39057"), "{}", allowed.body);
        assert!(
            allowed
                .body
                .contains("Why: body temperature 39.06 °C (critical high)"),
            "{}",
            allowed.body
        );
        assert!(
            !allowed.subject.contains("39057"),
            "values stay out of subjects"
        );
    }

    #[test]
    fn without_a_dashboard_there_is_no_link() {
        let event = fever();
        let options = RenderOptions {
            allow_health_data: false,
            dashboard_url: None,
        };
        let body: Value = serde_json::from_slice(&webhook_body(&event, options)).expect("JSON");
        assert!(body["dashboard"].is_null());
        assert!(!email(&event, options).body.contains("Dashboard"));
    }

    #[test]
    fn an_escalation_names_its_alert_step_and_level_and_nothing_measured() {
        let person = PersonId::random();
        let step = Event::Escalation(EscalationEvent {
            alert: "ab".repeat(32),
            person,
            step: 2,
            level: AlertLevel::Critical,
            height: 40,
        });
        let body: Value = serde_json::from_slice(&webhook_body(&step, ALLOWED)).expect("JSON");
        assert_eq!(body["event"], "escalation");
        assert_eq!(body["id"], format!("{}.escalation.2", "ab".repeat(32)));
        assert_eq!(body["alert"], "ab".repeat(32));
        assert_eq!(body["step"], 2);
        assert_eq!(body["level_name"], "critical");
        assert!(body.get("reason").is_none());
        let mail = email(&step, REDACTED);
        assert!(
            mail.subject.contains("escalated (step 2, critical)"),
            "{}",
            mail.subject
        );
        assert!(mail.body.contains(&"ab".repeat(32)));
        assert!(mail.body.contains(&format!("#person/{person}")));
    }

    #[test]
    fn rfc3339_dates_match_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
        // The extremes neither panic nor overflow.
        let _ = rfc3339(i64::MIN);
        let _ = rfc3339(i64::MAX);
    }
}
