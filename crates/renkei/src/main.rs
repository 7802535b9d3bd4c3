//! `renkei`: the one binary of the Renkei regional health information exchange.

mod anchor;
mod args;
mod checks;
mod commands;
mod config;
mod demo;
mod discovery;
mod fhir_bench;
mod generate;
mod import;
mod intake;
mod jahis_watch;
mod limits;
mod mllp;
mod mllp_auth;
mod serve;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use renkei_app::App;
use renkei_core::audit::AuditKey;
use renkei_core::time::{Clock, FixedClock, SystemClock, Timestamp};
use renkei_store::Store;

use crate::args::{Cli, ServeArgs};
use crate::config::{FileConfig, Overrides, Settings};

/// See the note on `mimalloc` in this crate's Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RENKEI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("エラー: 非同期ランタイムを起動できません: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("エラー: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn settings(cli: &Cli, serve: Option<&ServeArgs>) -> Result<Settings> {
    let file = FileConfig::load(cli.config.as_deref())?;
    let o = Overrides {
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
        listen: serve.and_then(|s| s.listen.clone()),
        tls_cert: serve.and_then(|s| s.tls_cert.clone()),
        tls_key: serve.and_then(|s| s.tls_key.clone()),
    };
    config::resolve(file, o)
}

/// The clock: the system clock, or a fixed instant from `RENKEI_FIXED_CLOCK` (RFC 3339) for
/// reproducible tests and demonstrations.
fn clock() -> Result<Arc<dyn Clock>> {
    match std::env::var("RENKEI_FIXED_CLOCK") {
        Ok(text) => {
            let at = Timestamp::parse_rfc3339(&text).with_context(|| {
                format!("RENKEI_FIXED_CLOCK「{text}」は RFC 3339 の日時ではありません")
            })?;
            tracing::warn!(at = %at.rfc3339(), "the clock is fixed (RENKEI_FIXED_CLOCK): for tests only");
            Ok(Arc::new(FixedClock::new(at)))
        }
        Err(_) => Ok(Arc::new(SystemClock)),
    }
}

/// Reads the audit key, creating it (32 random bytes, owner-only) on first use.
fn audit_key(path: &std::path::Path) -> Result<AuditKey> {
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("ディレクトリ {} を作成できません", dir.display()))?;
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("乱数を取得できません: {e}"))?;
        let hex_key: String = key.iter().map(|b| format!("{b:02x}")).collect();
        write_private(path, hex_key.as_bytes())
            .with_context(|| format!("監査鍵 {} を作成できません", path.display()))?;
        tracing::info!(path = %path.display(), "created a new audit key: back it up with the database");
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("監査鍵 {} を読めません", path.display()))?;
    let text = text.trim();
    let bytes = (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .with_context(|| format!("監査鍵 {} は16進数の文字列ではありません", path.display()))?;
    AuditKey::new(bytes).map_err(|e| anyhow::anyhow!(e))
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Whether a command may start a new region (create the data directory, the audit key and the
/// database) or needs an existing one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Open {
    /// `serve`, the first `admin create-facility`, `admin import-facilities`, the demo and
    /// benchmark seeds.
    CreateIfMissing,
    /// Everything else: a missing database or audit key is an error, and nothing is created.
    Existing,
}

/// The SQLite database file of a `sqlite:` URL.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    Some(PathBuf::from(path))
}

/// Refuses to go on when `mode` needs an existing region and there is none; creates nothing.
fn require_existing(settings: &Settings) -> Result<()> {
    if let Some(db) = sqlite_path(&settings.database_url)
        && !db.exists()
    {
        anyhow::bail!(
            "データベース {} がありません。--data-dir（または --database-url）を確認してください。新しい地域を始めるときは、先に renkei admin create-facility で事務局を登録します",
            db.display()
        );
    }
    if !settings.audit_key_file.exists() {
        anyhow::bail!(
            "監査鍵 {} がありません。データベースと一緒に保管した audit.key を戻してください（新しい鍵では監査ログを検証できません）",
            settings.audit_key_file.display()
        );
    }
    Ok(())
}

/// Opens the store and the application for `settings`.
async fn open(settings: &Settings, mode: Open) -> Result<App> {
    if mode == Open::Existing {
        require_existing(settings)?;
    }
    if settings.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!(
                "データディレクトリ {} を作成できません",
                settings.data_dir.display()
            )
        })?;
        std::fs::create_dir_all(settings.data_dir.join("files")).with_context(|| {
            format!(
                "ファイル保存先 {} を作成できません",
                settings.data_dir.join("files").display()
            )
        })?;
    }
    let key = audit_key(&settings.audit_key_file)?;
    let store = Store::open(&settings.database_url, key)
        .await
        .map_err(|e| open_error(&settings.database_url, &e.to_string()))?;
    let objects = renkei_store::objects::Objects::open(&settings.file_store, &settings.upload_dir)
        .map_err(|e| anyhow::anyhow!("ファイルの保存先を開けません: {e}"))?;
    tracing::info!(store = %objects.describe(), "file store");
    let app = App::new(store, clock()?, settings.app.clone()).with_objects(objects);
    let rekeyed = app
        .refresh_person_keys()
        .await
        .map_err(|e| anyhow::anyhow!("地域共通IDの検索キーを更新できません: {e}"))?;
    if rekeyed > 0 {
        tracing::info!(rekeyed, "person search keys refreshed");
    }
    Ok(app)
}

/// A database that cannot be opened, said for people: what is wrong and what to check, without
/// the driver's codes and source lines (those go to the log at debug level).
fn open_error(url: &str, detail: &str) -> anyhow::Error {
    tracing::debug!(detail, "database open failed");
    let shown = redact(url);
    let lower = detail.to_ascii_lowercase();
    let what = if lower.contains("file is not a database") || lower.contains("(code: 26)") {
        format!(
            "{shown} は SQLite のデータベースではありません。--data-dir / --database-url が別のファイルを指していないか確認してください"
        )
    } else if lower.contains("readonly")
        || lower.contains("read-only")
        || lower.contains("(code: 8)")
    {
        format!(
            "{shown} に書き込めません（読み取り専用です）。ファイルとフォルダの権限を確認してください"
        )
    } else if lower.contains("unable to open") || lower.contains("(code: 14)") {
        format!("{shown} を開けません。フォルダがあり、書き込めるかを確認してください")
    } else if lower.contains("password authentication failed") || lower.contains("no pg_hba.conf") {
        format!(
            "PostgreSQL（{shown}）の認証に失敗しました。ユーザー名とパスワード、pg_hba.conf を確認してください"
        )
    } else if lower.contains("does not exist") {
        format!(
            "PostgreSQL（{shown}）のデータベースまたはユーザーがありません。createdb で作成するか、URL を確認してください"
        )
    } else if url.starts_with("postgres") {
        format!(
            "PostgreSQL（{shown}）に接続できません。サーバーが起動しているか、ホスト名・ポートを確認してください"
        )
    } else {
        format!("データベース（{shown}）を開けません。--database-url を確認してください")
    };
    anyhow::anyhow!(what)
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    commands::run(&cli).await
}
