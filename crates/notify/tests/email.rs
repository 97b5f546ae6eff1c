//! E-mail channels against an SMTP sink this test starts on loopback (a line-based server
//! reading EHLO, MAIL, RCPT, DATA): the first RCPT of each recipient is answered 451 (try
//! later) and the retry is taken; the reason's value is in the message only of the channel
//! that allows health data; a 550 (no such mailbox) is final; the delivery log holds one row
//! per attempt.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::servers::{UNKNOWN, start_sink};
use common::{Outcomes, VALUE, fever, settled, until};
use vigil_core::AlertLevel;
use vigil_notify::backoff::Backoff;
use vigil_notify::config::{EmailChannel, SmtpServer, SmtpTls};
use vigil_notify::route::Route;
use vigil_notify::{DeliveryLog, Notifier, NotifyConfig, Status};

fn email(to: &str, allow_health_data: bool) -> EmailChannel {
    EmailChannel {
        name: format!("email:{to}"),
        to: to.into(),
        route: Route::at_least(AlertLevel::Warning),
        allow_health_data,
    }
}

#[tokio::test]
async fn e_mail_is_retried_through_a_local_sink_without_values_unless_allowed() {
    let (addr, sink) = start_sink().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Arc::new(DeliveryLog::open(&dir.path().join("notifications.sqlite")).expect("log"));
    let outcomes = Arc::new(Outcomes::default());
    let mut config = NotifyConfig::empty();
    config.backoff =
        Backoff::new(3, Duration::from_millis(10), Duration::from_millis(40)).expect("valid");
    config.dashboard_url = Some("https://vigil.example.org/".into());
    config.smtp = Some(SmtpServer {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls: SmtpTls::None,
        from: "Vigil <vigil@example.org>".into(),
        credentials: None,
        hello_name: "node.test".into(),
        timeout: Duration::from_secs(5),
    });
    config.emails = vec![
        email("duty@example.org", false),
        email("clinician@example.org", true),
        email(UNKNOWN, false),
    ];
    let notifier = Notifier::start(config, log.clone(), outcomes.clone()).expect("started");
    let event = fever(&"e3".repeat(32));
    assert_eq!(notifier.notify(event.clone()), 3);

    for to in ["duty@example.org", "clinician@example.org"] {
        let channel = format!("email:{to}");
        let rows = settled(&log, &channel, 2).await;
        assert_eq!(rows.len(), 2, "{channel}: {rows:?}");
        assert_eq!(rows[0].status, Status::Retrying);
        assert!(rows[0].detail.contains("451"), "{}", rows[0].detail);
        assert_eq!(rows[1].status, Status::Delivered);
        assert!(rows[1].detail.starts_with("SMTP 250"), "{}", rows[1].detail);
        until("the delivery observed", || {
            (outcomes.count(&channel, Status::Delivered) == 1).then_some(())
        })
        .await;
    }
    let refused = settled(&log, &format!("email:{UNKNOWN}"), 1).await;
    assert_eq!(refused.len(), 1, "a 550 is not retried: {refused:?}");
    assert_eq!(refused[0].status, Status::Failed);
    assert!(refused[0].detail.contains("550"), "{}", refused[0].detail);

    let mails = until("both messages", || {
        let mails = sink.taken();
        (mails.len() == 2).then_some(mails)
    })
    .await;
    for mail in &mails {
        assert_eq!(mail.from, "vigil@example.org");
        assert_eq!(mail.to.len(), 1);
        let allowed = mail.to[0] == "clinician@example.org";
        let text = mail.text();
        assert_eq!(text.contains(VALUE), allowed, "{text}");
        assert_eq!(text.contains("body-temperature"), allowed, "{text}");
        let subject = format!(
            "Subject: Vigil: critical threshold alert for person {}",
            event.person()
        );
        assert!(text.contains(&subject), "{text}");
        assert!(text.contains(&format!("Message-ID: <alert.{}@node.test>", event.id())));
        assert!(
            text.contains(&format!(
                "Dashboard:  https://vigil.example.org/#person/{}\n",
                event.person()
            )),
            "{text}"
        );
        assert_eq!(
            text.contains("does not carry health values"),
            !allowed,
            "{text}"
        );
    }
}
