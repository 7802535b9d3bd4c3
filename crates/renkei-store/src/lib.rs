//! Storage: one interface ([`Store`]) over SQLite (the embedded default) and PostgreSQL (the
//! scale path), chosen by the database URL. Each backend has its own migrations under
//! `migrations/<backend>/`.
//!
//! Architecture invariant: this is the only crate that contains SQL or talks to a database. It
//! knows nothing of consent, sessions in the web sense, or HTTP; it stores and fetches values and
//! keeps each change and its audit event in one transaction.
//!
//! Every query is written once with `$n` placeholders and runs on both backends (sqlx's SQLite
//! driver understands `$n`). The [`with_db!`] and [`with_tx!`] macros expand one body per backend.

pub mod api;
mod audit;
pub mod clinical;
pub mod consent;
mod direct;
mod directory;
mod error;
pub mod files;
pub mod identity;
mod institutions;
mod jahis_parts;
pub mod link_reviews;
mod migrate;
mod models;
mod notices;
pub mod objects;
mod sessions;
mod spool;
#[cfg(feature = "testing")]
pub mod testing;
mod users;
pub mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use renkei_core::audit::AuditKey;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use error::StoreError;
pub use jahis_parts::SplitPart;
pub use models::*;

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Runs `$body` with `$conn` bound to the pool of whichever backend is open.
macro_rules! with_db {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            $crate::Db::Sqlite($conn) => $body,
            $crate::Db::Postgres($conn) => $body,
        }
    };
}
pub(crate) use with_db;

/// Runs `$body` with `$conn` bound to the connection of an open transaction.
macro_rules! with_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use with_tx;

/// Like [`with_db!`] for statements: yields the number of rows affected.
macro_rules! exec_db {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            $crate::Db::Sqlite($conn) => $body.map(|r| r.rows_affected()),
            $crate::Db::Postgres($conn) => $body.map(|r| r.rows_affected()),
        }
    };
}
pub(crate) use exec_db;

/// Like [`with_tx!`] for statements: yields the number of rows affected.
macro_rules! exec_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                $body.map(|r| r.rows_affected())
            }
            $crate::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body.map(|r| r.rows_affected())
            }
        }
    };
}
pub(crate) use exec_tx;

impl Tx {
    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await.map_err(StoreError::from),
            Tx::Postgres(t) => t.commit().await.map_err(StoreError::from),
        }
    }
}

/// Which backend a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The storage interface. Cheap to clone (pools are shared).
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) db: Db,
    pub(crate) audit_key: AuditKey,
    /// On SQLite (a file), the hot statements' in-process connections (see [`direct`]).
    pub(crate) direct: Option<std::sync::Arc<direct::Direct>>,
}

impl Store {
    /// Opens `url` (`sqlite://path` or `postgres://…`), applies pending migrations and returns
    /// the store. A SQLite file is created if missing; its directory must exist.
    pub async fn open(url: &str, audit_key: AuditKey) -> Result<Store> {
        let mut file = None;
        let db = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(format!("SQLite の URL を解釈できません: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a commit is on disk before it is acknowledged, even in WAL mode.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                // 64 MiB page cache per connection (default 2 MiB): index updates during large
                // imports stay in memory.
                .pragma("cache_size", "-65536")
                .pragma("temp_store", "memory");
            let name = options.get_filename();
            if !name.as_os_str().is_empty() && name.as_os_str() != ":memory:" {
                file = Some(name.to_path_buf());
            }
            // A file's checkpoints are the store's checkpointer thread's (see `direct`), not
            // whichever commit takes the WAL past 1,000 pages.
            let options = if file.is_some() {
                options
                    .pragma("wal_autocheckpoint", "0")
                    .pragma("journal_size_limit", "67108864")
            } else {
                options
            };
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                // An embedded database's connection cannot go stale: no ping before each use
                // (on SQLite every statement is a round trip to the connection's thread).
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .map_err(|e| {
                    StoreError::Unavailable(format!("SQLite データベースを開けません: {e}"))
                })?;
            Db::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url).map_err(|e| {
                StoreError::Config(format!("PostgreSQL の URL を解釈できません: {e}"))
            })?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(|e| {
                    StoreError::Unavailable(format!("PostgreSQL に接続できません: {e}"))
                })?;
            Db::Postgres(pool)
        } else {
            return Err(StoreError::Config(
                "データベース URL は sqlite:// または postgres:// で始めてください".to_string(),
            ));
        };
        let mut store = Store {
            db,
            audit_key,
            direct: None,
        };
        store.migrate().await?;
        if let Some(path) = file {
            store.direct = Some(std::sync::Arc::new(direct::Direct::open(
                path,
                store.audit_key.clone(),
            )?));
        }
        Ok(store)
    }

    /// A MAC under the deployment's key for `purpose` (card secrets and verification codes):
    /// see [`renkei_core::audit::keyed_mac`].
    pub fn keyed_mac(&self, purpose: &str, parts: &[&str]) -> Vec<u8> {
        renkei_core::audit::keyed_mac(&self.audit_key, purpose, parts)
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Answers when the database answers (used by `/healthz`).
    pub async fn ping(&self) -> Result<()> {
        exec_db!(&self.db, |pool| sqlx::query("SELECT 1").execute(pool).await)?;
        Ok(())
    }

    pub async fn close(&self) {
        with_db!(&self.db, |pool| pool.close().await)
    }

    /// Begins a write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`),
    /// so two writers queue on the busy timeout instead of failing on a lock upgrade.
    pub(crate) async fn begin(&self) -> Result<Tx> {
        Ok(match &self.db {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }
}

impl Store {
    /// The row of `T` selected by `sql` with one parameter, or `None`. For the "one record by
    /// key" reads that every table has.
    pub(crate) async fn optional_by<T, V>(&self, sql: &str, value: V) -> Result<Option<T>>
    where
        T: Send
            + Unpin
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
        V: Send
            + 'static
            + for<'q> sqlx::Encode<'q, sqlx::Sqlite>
            + sqlx::Type<sqlx::Sqlite>
            + for<'q> sqlx::Encode<'q, sqlx::Postgres>
            + sqlx::Type<sqlx::Postgres>,
    {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        with_db!(&self.db, |pool| sqlx::query_as(sql)
            .bind(value)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::from)
    }

    /// Like [`Store::optional_by`], with a missing row as [`StoreError::NotFound`].
    pub(crate) async fn one_by<T, V>(&self, sql: &str, value: V) -> Result<T>
    where
        T: Send
            + Unpin
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
        V: Send
            + 'static
            + for<'q> sqlx::Encode<'q, sqlx::Sqlite>
            + sqlx::Type<sqlx::Sqlite>
            + for<'q> sqlx::Encode<'q, sqlx::Postgres>
            + sqlx::Type<sqlx::Postgres>,
    {
        self.optional_by(sql, value)
            .await?
            .ok_or(StoreError::NotFound)
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern and wraps it in `%…%`.
pub(crate) fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}
