//! The audit anchor: where the chain stood, written beside the audit key (outside the
//! database), so that `audit verify` notices a chain cut short even by someone who can rewrite
//! the whole database. Each line is sealed under the key ([`renkei_core::audit::Anchor`]); the
//! file only grows. The server writes one every [`EVERY`] and when it stops; every command that
//! opens the region writes one when it closes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use renkei_app::App;
use renkei_core::audit::{Anchor, AuditKey, anchor_line, latest_anchor};
use renkei_core::time::Timestamp;

/// How often the server anchors the chain.
pub const EVERY: Duration = Duration::from_secs(60);

/// The anchor file of a key file: `audit.key` → `audit.anchor`, beside it.
pub fn path_for(key_file: &Path) -> PathBuf {
    key_file.with_extension("anchor")
}

/// The latest anchor, `None` when there is no file yet; an error names a bad line.
pub fn read(key: &AuditKey, path: &Path) -> Result<Option<Anchor>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("{} を読めません", path.display())),
    };
    latest_anchor(key, &text)
        .map_err(|e| anyhow::anyhow!("監査アンカー {} が壊れています: {e}", path.display()))
}

/// Appends where the chain stands now, if it moved since the last anchor, and syncs the file.
pub async fn write(app: &App, key: &AuditKey, path: &Path) -> Result<()> {
    let (seq, hash) = app.audit_head().await?;
    if seq == 0 {
        return Ok(());
    }
    if read(key, path)?.is_some_and(|latest| latest.seq >= seq) {
        return Ok(());
    }
    let at = Timestamp::from_unix_seconds(
        std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    );
    let line = anchor_line(key, &Anchor { seq, hash, at });
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("監査アンカー {} を書けません", path.display()))?;
    file.write_all(line.as_bytes())?;
    file.sync_data()?;
    Ok(())
}

/// The server's anchoring loop (until the task is dropped).
pub async fn run(app: App, key: AuditKey, path: PathBuf) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        if let Err(e) = write(&app, &key, &path).await {
            tracing::warn!(error = %e, "the audit anchor could not be written");
        }
    }
}
