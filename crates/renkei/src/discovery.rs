//! The office server's WOPI discovery document, read at start and every hour after (keys
//! rotate): its proof keys are what every WOPI request must be signed with.

use std::time::Duration;

use renkei_app::App;

/// The most of a discovery document read.
const MAX_BYTES: usize = 4 * 1024 * 1024;

/// Reads the document from an `http(s)://` URL or a local path.
async fn load(source: &str) -> anyhow::Result<String> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let response = client.get(source).send().await?.error_for_status()?;
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BYTES as u64)
        {
            anyhow::bail!("the discovery document is larger than {MAX_BYTES} bytes");
        }
        let bytes = response.bytes().await?;
        anyhow::ensure!(
            bytes.len() <= MAX_BYTES,
            "the discovery document is too large"
        );
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    } else {
        let text = std::fs::read_to_string(source)?;
        anyhow::ensure!(
            text.len() <= MAX_BYTES,
            "the discovery document is too large"
        );
        Ok(text)
    }
}

/// Loads the proof keys now and every hour; a failed load keeps the keys already loaded.
pub async fn run(app: App, source: String) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let keys = load(&source).await.and_then(|xml| {
            renkei_app::wopi_proof::parse_discovery(&xml).map_err(anyhow::Error::msg)
        });
        match keys {
            Ok(keys) => {
                app.set_wopi_proof_keys(Some(keys));
                tracing::info!("WOPI proof keys loaded");
            }
            Err(e) => {
                tracing::warn!(error = %e, "the office server's discovery document could not be read; WOPI requests need its proof keys")
            }
        }
    }
}
