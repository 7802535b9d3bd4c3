//! Watched folders for pharmacies' receipt computers (調剤レセコン): each configured folder is
//! polled; a file that has not changed since the previous poll is imported for its pharmacy (the card-holder is
//! found from the file name or the file's patient record, see
//! [`renkei_app::App::import_medication_file`]) and then moved to `done/`, or to `failed/`
//! beside a `<name>.error.txt` that says why.
//!
//! Polling rather than file-system events: receipt computers export to shared folders (SMB,
//! NFS) where inotify sees nothing, and a poll every few seconds costs one directory listing.
//! A file is moved only after its dispensings are stored, so a crash in between imports it
//! again on restart, which changes nothing (re-sent dispensings are not duplicated).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use renkei_app::{Actor, App, AppError};

/// One watched folder and the pharmacy whose exports arrive there.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    pub dir: PathBuf,
    /// The pharmacy's 10-digit medical-institution code.
    pub facility: String,
}

/// What a file looked like at the previous poll: (length, modification time).
type Seen = HashMap<PathBuf, (u64, Option<SystemTime>)>;

/// Runs for the life of the server.
pub async fn run(app: App, watches: Vec<Watch>, every: Duration) {
    let mut folders = Vec::new();
    for w in watches {
        let system = Actor::system("jahis-watch");
        match app.facility_id_by_code(&system, &w.facility).await {
            Ok(id) => {
                let actor = Actor {
                    facility_id: Some(id),
                    ..system
                };
                for sub in ["done", "failed"] {
                    if let Err(e) = std::fs::create_dir_all(w.dir.join(sub)) {
                        tracing::error!(dir = %w.dir.display(), error = %e, "watched folder unusable");
                    }
                }
                tracing::info!(dir = %w.dir.display(), facility = %w.facility, "watching for medication files");
                folders.push((w.dir, actor, Seen::new()));
            }
            Err(e) => {
                tracing::error!(facility = %w.facility, code = e.code(), "watched folder's pharmacy is not registered; folder ignored");
            }
        }
    }
    if folders.is_empty() {
        return;
    }
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        for (dir, actor, seen) in &mut folders {
            scan(&app, dir, actor, seen).await;
        }
    }
}

/// Imports every settled file in `dir`: one whose length and modification time are the same as
/// at the previous poll (the writer's clock may differ from ours on a share, so file times are
/// compared with each other, never with the clock).
pub async fn scan(app: &App, dir: &Path, actor: &Actor, seen: &mut Seen) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "watched folder unreadable");
            return;
        }
    };
    let mut now_seen = Seen::new();
    let mut files: Vec<PathBuf> = Vec::new();
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part") {
            continue;
        }
        let Ok(m) = e.metadata() else { continue };
        if !m.is_file() {
            continue;
        }
        let path = e.path();
        let look = (m.len(), m.modified().ok());
        if seen.get(&path) == Some(&look) {
            files.push(path);
        } else {
            now_seen.insert(path, look);
        }
    }
    *seen = now_seen;
    files.sort();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(file = %name, error = %e, "medication file unreadable; retried later");
                continue;
            }
        };
        let result = app.import_medication_file(actor, &name, &bytes).await;
        if let Ok(report) = &result {
            note_expired(dir, &report.expired);
        }
        let failure = match result {
            Ok(report) if report.errors.is_empty() => {
                // A part of a split QR code is held until the rest arrives (see the report's
                // pending codes); the file itself is done.
                tracing::info!(
                    file = %name,
                    stored = report.dispensings_stored,
                    unchanged = report.dispensings_unchanged,
                    split_codes_waiting = report.pending.len(),
                    warnings = report.warnings.len(),
                    "medication file imported"
                );
                None
            }
            Ok(report) => Some(
                report
                    .errors
                    .into_iter()
                    .map(|(_, e)| e)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            Err(AppError::Invalid(m)) => Some(m),
            Err(e) => {
                // The store or the network failed: leave the file where it is, for next time.
                tracing::warn!(file = %name, code = e.code(), "medication file not imported; retried later");
                continue;
            }
        };
        let target = match &failure {
            None => dir.join("done"),
            Some(why) => {
                // Messages name lines and problems, never patient data: safe to log and keep.
                tracing::warn!(file = %name, %why, "medication file refused");
                let note = free_name(&dir.join("failed"), &format!("{name}.error.txt"));
                if let Err(e) = std::fs::write(&note, format!("{why}\n")) {
                    tracing::warn!(file = %name, error = %e, "error note not written");
                }
                dir.join("failed")
            }
        };
        if let Err(e) = std::fs::rename(&path, free_name(&target, &name)) {
            tracing::error!(file = %name, error = %e, "medication file could not be moved out of the watched folder");
        }
    }
}

/// `dir/name`, or `dir/name.1`, `dir/name.2`… when taken.
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|n| dir.join(format!("{name}.{n}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Split QR codes given up for want of their other parts: a note in `failed/` says so (the
/// parts' files are already in `done/`).
fn note_expired(dir: &Path, expired: &[String]) {
    for why in expired {
        tracing::warn!(%why, "split medication code given up");
        let note = free_name(&dir.join("failed"), "split-code.expired.txt");
        if let Err(e) = std::fs::write(&note, format!("{why}\n")) {
            tracing::warn!(error = %e, "expiry note not written");
        }
    }
}
