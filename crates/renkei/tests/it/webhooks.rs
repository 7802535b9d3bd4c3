//! Webhooks to a medication-notebook app: registered by the operator, linked to a card-holder,
//! sent when a pharmacy's dispensing arrives, signed with the app's secret, and retried after a
//! failure.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use crate::{renkei, start_with, stderr, stdout};

#[derive(Default)]
struct Received {
    attempts: usize,
    delivered: Vec<(HeaderMap, String)>,
}

#[tokio::test]
async fn a_subscribed_app_gets_signed_dispensings_after_a_retry() {
    let fixtures = crate::fixture("jahis-rx-parser/fixtures");
    // The app's receiver: fails the first delivery, accepts the next.
    let received = Arc::new(Mutex::new(Received::default()));
    let state = received.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                let mut r = state.lock().unwrap();
                r.attempts += 1;
                if r.attempts == 1 {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                r.delivered.push((headers, body));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let dir = crate::demo_dir();
    let d = dir.path();
    let config = d.join("renkei.toml");
    std::fs::write(
        &config,
        "webhook_poll_seconds = 1\nwebhook_retry_seconds = 1\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();
    // The system clock: a retry waits for time to pass.
    let _server = start_with(
        d,
        &["--listen", "127.0.0.1:0", "--demo", "--config", &config],
        false,
    );
    let registered = renkei(
        d,
        &[
            "admin",
            "create-medication-app",
            "--name",
            "おくすりアプリ",
            "--url",
            &hook,
        ],
    );
    assert!(registered.status.success(), "{}", stderr(&registered));
    let out = stdout(&registered);
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("署名の鍵: "))
        .and_then(|l| l.split('（').next())
        .unwrap()
        .to_string();
    let app_id = crate::id_of(&registered).to_string();
    let draft = renkei_core::facility::FacilityCode::parse("3440103040").unwrap();
    let pharmacy = format!("344010304{}", draft.expected_check_digit());
    let linked = renkei(
        d,
        &[
            "admin",
            "subscribe-medication-app",
            "--facility",
            &pharmacy,
            "--card",
            "34000000018",
            "--app",
            &app_id,
        ],
    );
    assert!(linked.status.success(), "{}", stderr(&linked));
    // The pharmacy's export for the card-holder (its patient record is the card's person).
    let minimal = std::fs::read_to_string(fixtures.join("tc-minimal-valid.txt")).unwrap();
    let file = d.join("export.txt");
    std::fs::write(
        &file,
        crate::for_card_holder(d, "34000000018", &minimal, ""),
    )
    .unwrap();
    let imported = renkei(
        d,
        &[
            "import",
            "jahis",
            file.to_str().unwrap(),
            "--facility",
            &pharmacy,
            "--card",
            "34000000018",
        ],
    );
    assert!(
        imported.status.success(),
        "{}{}",
        stdout(&imported),
        stderr(&imported)
    );

    let started = Instant::now();
    while received.lock().unwrap().delivered.is_empty()
        && started.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = received.lock().unwrap();
    assert_eq!(
        r.delivered.len(),
        1,
        "delivered after {} attempts",
        r.attempts
    );
    assert_eq!(r.attempts, 2, "one failure, then the retry");
    let (headers, body) = &r.delivered[0];
    let payload: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(payload["event"], "medication.dispensing");
    assert_eq!(payload["common_id"], "34000000018");
    assert!(payload["jahis"].as_str().unwrap().contains("ノルバスク"));
    assert_eq!(
        payload["fhir"]["entry"][0]["resource"]["resourceType"],
        "MedicationDispense"
    );
    // The signature verifies with the secret.
    let signature = headers["x-renkei-signature"].to_str().unwrap();
    let t: i64 = signature
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        signature,
        renkei_app::medication::sign_webhook(&secret, t, body),
        "HMAC-SHA256 of t.body"
    );
}
