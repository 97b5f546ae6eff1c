//! Webhook channels against an HTTP receiver this test starts on loopback: the first attempt
//! is answered 503 and the retry 200; each request's signature verifies with the channel's
//! secret; the reason's value is in the body only of the channel that allows health data;
//! the delivery log holds one row per attempt; a refusal is not retried, an unreachable
//! receiver is retried until the schedule runs out, and a receiver that never answers holds
//! up only its own channel.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::servers::{Receiver, Script};
use common::{Outcomes, VALUE, fever, settled, until};
use vigil_core::AlertLevel;
use vigil_notify::backoff::Backoff;
use vigil_notify::config::WebhookChannel;
use vigil_notify::route::Route;
use vigil_notify::signature::{self, Secret};
use vigil_notify::{DeliveryLog, Notifier, NotifyConfig, Status};

fn secret(byte: u8) -> Secret {
    Secret::new(vec![byte; 32]).expect("long enough")
}

fn webhook(
    name: &str,
    url: reqwest::Url,
    secret: Secret,
    allow_health_data: bool,
) -> WebhookChannel {
    WebhookChannel {
        name: name.into(),
        url,
        secret,
        route: Route::at_least(AlertLevel::Warning),
        allow_health_data,
    }
}

/// Attempts 10 ms apart at first: the schedule is the library's, the waits the test's.
fn quick(attempts: u32) -> Backoff {
    Backoff::new(
        attempts,
        Duration::from_millis(10),
        Duration::from_millis(40),
    )
    .expect("valid")
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

#[tokio::test]
async fn a_failed_delivery_is_retried_signed_and_logged_without_values_unless_allowed() {
    let receiver = Receiver::start(Script::from([
        ("/redacted", vec![Some(503), Some(200)]),
        ("/allowed", vec![Some(503), Some(204)]),
    ]))
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Arc::new(DeliveryLog::open(&dir.path().join("notifications.sqlite")).expect("log"));
    let outcomes = Arc::new(Outcomes::default());
    let mut config = NotifyConfig::empty();
    config.backoff = quick(4);
    config.dashboard_url = Some("https://vigil.example.org/".into());
    config.webhooks = vec![
        webhook("redacted", receiver.url("/redacted"), secret(1), false),
        webhook("allowed", receiver.url("/allowed"), secret(2), true),
    ];
    let notifier = Notifier::start(config, log.clone(), outcomes.clone()).expect("started");

    let event = fever(&"e1".repeat(32));
    assert_eq!(notifier.notify(event.clone()), 2);

    for (channel, path, key, allowed) in [
        ("redacted", "/redacted", secret(1), false),
        ("allowed", "/allowed", secret(2), true),
    ] {
        let rows = settled(&log, channel, 2).await;
        let summary: Vec<_> = rows
            .iter()
            .map(|d| (d.attempt, d.status, d.detail.as_str()))
            .collect();
        let accepted = if allowed {
            "HTTP 204 No Content"
        } else {
            "HTTP 200 OK"
        };
        assert_eq!(
            summary,
            [
                (1, Status::Retrying, "HTTP 503 Service Unavailable"),
                (2, Status::Delivered, accepted),
            ],
            "{channel}"
        );
        assert!(
            rows.iter()
                .all(|d| d.event_id == event.id() && d.event == "alert")
        );

        let requests = receiver.requests_to(path);
        assert_eq!(requests.len(), 2, "{channel}: one request per attempt");
        for (n, request) in requests.iter().enumerate() {
            let header = &request.headers["vigil-signature"];
            assert_eq!(
                signature::verify(&key, header, &request.body, now_s(), 60),
                Ok(()),
                "{channel}: attempt {n} verifies"
            );
            // Another channel's secret does not verify it.
            assert!(signature::verify(&secret(9), header, &request.body, now_s(), 60).is_err());
            assert_eq!(request.headers["vigil-event-id"], event.id());
            assert_eq!(request.headers["vigil-event"], "alert");
            assert_eq!(request.headers["vigil-attempt"], (n + 1).to_string());
            assert_eq!(request.headers["content-type"], "application/json");
            let text = String::from_utf8(request.body.clone()).expect("utf-8");
            assert_eq!(text.contains(VALUE), allowed, "{channel}: {text}");
            assert_eq!(
                text.contains("body-temperature"),
                allowed,
                "{channel}: {text}"
            );
            let body: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            assert_eq!(body["id"], event.id());
            assert_eq!(body["level_name"], "critical");
            assert_eq!(body["kind"], "threshold");
            assert_eq!(body["person"], event.person().to_string());
            assert!(
                body["dashboard"]
                    .as_str()
                    .is_some_and(|link| link.ends_with(&format!("#person/{}", event.person())))
            );
        }
        // The same body both times; a fresh signature each time.
        assert_eq!(requests[0].body, requests[1].body);
        until("the outcomes observed", || {
            (outcomes.count(channel, Status::Retrying) == 1
                && outcomes.count(channel, Status::Delivered) == 1)
                .then_some(())
        })
        .await;
    }
    assert_eq!(log.len().expect("count"), 4);
}

#[tokio::test]
async fn a_refusal_is_final_and_an_unreachable_receiver_runs_out_of_attempts() {
    let receiver = Receiver::start(Script::from([("/refuse", vec![Some(400)])])).await;
    // A port that was free a moment ago: connections to it are refused.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.local_addr().expect("bound")
    };
    let log = Arc::new(DeliveryLog::in_memory().expect("log"));
    let outcomes = Arc::new(Outcomes::default());
    let mut config = NotifyConfig::empty();
    config.backoff = quick(3);
    config.webhooks = vec![
        webhook("refused", receiver.url("/refuse"), secret(1), false),
        webhook(
            "unreachable",
            format!("http://{closed}/hook").parse().expect("a URL"),
            secret(2),
            false,
        ),
    ];
    let notifier = Notifier::start(config, log.clone(), outcomes.clone()).expect("started");
    notifier.notify(fever(&"e2".repeat(32)));

    let refused = settled(&log, "refused", 1).await;
    assert_eq!(refused.len(), 1, "a 400 is not retried");
    assert_eq!(refused[0].status, Status::Failed);
    assert_eq!(refused[0].detail, "HTTP 400 Bad Request");

    let unreachable = settled(&log, "unreachable", 3).await;
    let statuses: Vec<_> = unreachable.iter().map(|d| (d.attempt, d.status)).collect();
    assert_eq!(
        statuses,
        [
            (1, Status::Retrying),
            (2, Status::Retrying),
            (3, Status::Failed)
        ]
    );
    assert!(
        unreachable[0].detail.starts_with("could not connect"),
        "{}",
        unreachable[0].detail
    );
    assert!(
        !unreachable.iter().any(|d| d.detail.contains("/hook")),
        "no URL in the log"
    );
    // The observer hears of an attempt just after the log has it.
    until("both failures observed", || {
        (outcomes.count("unreachable", Status::Failed) == 1
            && outcomes.count("refused", Status::Failed) == 1)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_receiver_that_never_answers_holds_up_only_its_own_channel() {
    let receiver = Receiver::start(Script::from([
        ("/stuck", vec![None]),
        ("/fast", vec![Some(200)]),
    ]))
    .await;
    let log = Arc::new(DeliveryLog::in_memory().expect("log"));
    let mut config = NotifyConfig::empty();
    config.backoff = quick(2);
    config.queue_max = 1;
    config.webhooks = vec![
        webhook("stuck", receiver.url("/stuck"), secret(1), false),
        webhook("fast", receiver.url("/fast"), secret(2), false),
    ];
    let notifier =
        Notifier::start(config, log.clone(), Arc::new(vigil_notify::NoObserver)).expect("started");
    // The stuck channel takes the first event into its task and waits on the receiver.
    notifier.notify(fever(&"a0".repeat(32)));
    until("the stuck receiver holds a request", || {
        (!receiver.requests_to("/stuck").is_empty()).then_some(())
    })
    .await;
    // The fast channel delivers each at once; the stuck one queues one and drops the rest.
    for n in 1..=3u8 {
        notifier.notify(fever(&format!("{n:02x}").repeat(32)));
        let delivered = settled(&log, "fast", usize::from(n) + 1).await;
        assert!(delivered.iter().all(|d| d.status == Status::Delivered));
    }
    let stuck = until("two events dropped by the stuck channel", || {
        let rows = common::attempts(&log, "stuck");
        (rows.len() >= 2).then_some(rows)
    })
    .await;
    assert!(
        stuck
            .iter()
            .all(|d| d.status == Status::Dropped && d.attempt == 0),
        "{stuck:?}"
    );
    assert_eq!(stuck[0].detail, "the channel's queue is full");
    assert_eq!(receiver.requests_to("/stuck").len(), 1);
}

#[tokio::test]
async fn channels_get_only_their_levels() {
    let receiver = Receiver::start(Script::from([("/critical", vec![Some(200)])])).await;
    let log = Arc::new(DeliveryLog::in_memory().expect("log"));
    let mut config = NotifyConfig::empty();
    let mut channel = webhook("critical", receiver.url("/critical"), secret(1), false);
    channel.route = Route::at_least(AlertLevel::Critical);
    config.webhooks = vec![channel];
    let notifier =
        Notifier::start(config, log.clone(), Arc::new(vigil_notify::NoObserver)).expect("started");
    let vigil_notify::Event::Alert(mut warning) = fever(&"0w".repeat(32)) else {
        unreachable!("an alert")
    };
    warning.level = AlertLevel::Warning;
    assert_eq!(notifier.notify(vigil_notify::Event::Alert(warning)), 0);
    assert_eq!(notifier.notify(fever(&"0c".repeat(32))), 1);
    let rows = settled(&log, "critical", 1).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].event_id, "0c".repeat(32));
}
