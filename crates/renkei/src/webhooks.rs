//! Delivers queued webhooks to medication-notebook apps: a POST of the JSON payload, signed
//! with the app's secret (`X-Renkei-Signature: t=…,v1=…`), every few seconds. A 2xx answer
//! delivers; anything else is retried with back-off by the use case.

use std::time::Duration;

use renkei_app::App;

/// Runs for the life of the server.
pub async fn run(app: App, every: Duration) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook client could not be built; webhooks are not sent");
            return;
        }
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let due = match app.due_webhooks(50).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(code = e.code(), "webhook queue unreadable");
                continue;
            }
        };
        for d in due {
            let seconds = app.now().0 / 1_000_000;
            let signature = renkei_app::medication::sign_webhook(&d.secret, seconds, &d.payload);
            let sent = client
                .post(&d.url)
                .header("content-type", "application/json")
                .header("x-renkei-signature", signature)
                .header("x-renkei-delivery", d.id.to_string())
                .body(d.payload.clone())
                .send()
                .await;
            // Errors name the kind of failure only: never the payload (patient data).
            let result = match sent {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
                Err(e) if e.is_timeout() => Err("timeout".to_string()),
                Err(e) if e.is_connect() => Err("connection refused or unreachable".to_string()),
                Err(_) => Err("request failed".to_string()),
            };
            if let Err(why) = &result {
                tracing::info!(delivery = d.id, attempt = d.attempts + 1, %why, "webhook not delivered");
            }
            if let Err(e) = app.webhook_attempted(&d, result).await {
                tracing::warn!(code = e.code(), "webhook attempt not recorded");
            }
        }
    }
}
