//! Auth mail through a real SMTP conversation when SMTP is configured, and
//! nothing in the dev outbox then.

use selfdb_tests::{Host, RequestExt, SmtpSink};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn recovery_mail_goes_through_smtp_not_the_outbox() {
    let sink = SmtpSink::start();
    let host = Host::serve()
        .await
        .arg("--smtp-url")
        .arg(format!("smtp://127.0.0.1:{}", sink.port))
        .arg("--smtp-from")
        .arg("Auth <auth@selfdb.test>")
        .start();
    let email = "smtp-user@example.com";
    let signup = host
        .post("/auth/v1/signup")
        .apikey(host.anon_key())
        .json(&json!({"email": email, "password": "smtp-pass-1"}))
        .fetch_status()
        .await;
    assert_eq!(signup, 200);
    let recover = host
        .post("/auth/v1/recover")
        .apikey(host.anon_key())
        .json(&json!({"email": email}))
        .fetch_status()
        .await;
    assert_eq!(recover, 200);

    // The sink's `next` waits (with its deadline) for the message to arrive.
    let message = tokio::task::spawn_blocking(move || sink.next(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("a message reached the SMTP server");
    assert!(message.contains("To: smtp-user@example.com"), "{message}");
    assert!(
        message.contains("From: Auth <auth@selfdb.test>"),
        "{message}"
    );
    assert!(
        message.contains("Subject: Reset your password"),
        "{message}"
    );
    assert!(message.contains("/auth/v1/verify?token="), "{message}");

    let outbox: i64 = host
        .db()
        .await
        .query_one("select count(*) from selfdb.mail_outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        outbox, 0,
        "with SMTP configured, live links stay out of the database"
    );
}
