//! Test support (feature `testing`): stores on a temporary SQLite file, and on a fresh
//! PostgreSQL schema when `RENKEI_TEST_DATABASE_URL` is set. With `RENKEI_TEST_REQUIRE_POSTGRES=1`
//! (set by `.ci/run`) a missing URL is an error, so the PostgreSQL suite cannot silently skip.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use renkei_core::audit::AuditKey;

use crate::Store;

/// A store for one test, and what must live as long as it.
pub struct TestStore {
    pub store: Store,
    /// A URL that reaches the same database (and schema) for raw access in tests.
    pub raw_url: String,
    pub schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

pub fn test_key() -> AuditKey {
    AuditKey::new(vec![42u8; 32]).unwrap()
}

pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("renkei.db").display());
    let store = Store::open(&url, test_key()).await.unwrap();
    TestStore {
        store,
        raw_url: url,
        schema: None,
        _dir: Some(dir),
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A store in a new schema of the PostgreSQL at `RENKEI_TEST_DATABASE_URL`, or `None` (skip).
pub async fn postgres() -> Option<TestStore> {
    let Ok(url) = std::env::var("RENKEI_TEST_DATABASE_URL") else {
        if std::env::var("RENKEI_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            panic!("RENKEI_TEST_REQUIRE_POSTGRES=1 but RENKEI_TEST_DATABASE_URL is not set");
        }
        eprintln!("RENKEI_TEST_DATABASE_URL not set: PostgreSQL variant skipped");
        return None;
    };
    let nanos = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let schema = format!(
        "renkei_t_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        nanos % 1_000_000
    );
    let pool = sqlx::PgPool::connect(&url)
        .await
        .expect("PostgreSQL at RENKEI_TEST_DATABASE_URL is reachable");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{sep}options[search_path]={schema}");
    let store = Store::open(&scoped, test_key()).await.unwrap();
    Some(TestStore {
        store,
        raw_url: scoped,
        schema: Some(schema),
        _dir: None,
    })
}

impl TestStore {
    /// Removes the PostgreSQL schema of a passed test (a failed one is kept for inspection).
    pub async fn finish(self) {
        let Some(schema) = &self.schema else { return };
        self.store.close().await;
        let url = std::env::var("RENKEI_TEST_DATABASE_URL").unwrap();
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
}

/// Declares `async fn NAME(s: &Store)` as two tests, `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let t = $crate::testing::sqlite().await;
                super::$name(&t).await;
                t.finish().await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(t) = $crate::testing::postgres().await {
                    super::$name(&t).await;
                    t.finish().await;
                }
            }
        }
    };
}
