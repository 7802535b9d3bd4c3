//! Test support (feature `testing`): stores on a temporary SQLite file, and on a fresh
//! PostgreSQL schema of the server at `RENKEI_TEST_DATABASE_URL`.
//!
//! Tests that need a service Renkei does not embed (PostgreSQL, an S3-compatible server) are
//! declared `#[ignore = "needs …"]`: a plain `cargo nextest run` reports them as skipped, never
//! as passed, and `--run-ignored all` (`cargo test -- --include-ignored`) runs them. Run that
//! way without the service, they fail and say what to install or set.

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

/// A store in a new schema of the PostgreSQL at `RENKEI_TEST_DATABASE_URL`; fails the test,
/// saying what to set, when the variable is missing.
pub async fn postgres() -> TestStore {
    match postgres_if_set().await {
        Some(t) => t,
        None => panic!(
            "RENKEI_TEST_DATABASE_URL is not set: install PostgreSQL and set it (for example \
             postgres://postgres@127.0.0.1:5432/test), or leave the PostgreSQL tests ignored"
        ),
    }
}

/// As [`postgres`], or `None` where `RENKEI_TEST_DATABASE_URL` is not set (for benchmarks,
/// which print that they left PostgreSQL out).
pub async fn postgres_if_set() -> Option<TestStore> {
    let Ok(url) = std::env::var("RENKEI_TEST_DATABASE_URL") else {
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
            #[ignore = "needs PostgreSQL: set RENKEI_TEST_DATABASE_URL and pass --run-ignored all"]
            async fn postgres() {
                let t = $crate::testing::postgres().await;
                super::$name(&t).await;
                t.finish().await;
            }
        }
    };
}

/// A real S3-compatible server for tests: moto (PyPI `moto[server]`) started on a free port,
/// stopped when dropped.
pub struct S3Server {
    child: std::process::Child,
    pub endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// Starts moto; fails the test, saying what to install, where it cannot. Tests that use it
    /// are `#[ignore = "needs moto …"]` so that a plain run reports them as skipped.
    pub async fn start() -> S3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let python = std::env::var("RENKEI_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let child = std::process::Command::new(python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => panic!("cannot start moto ({e}): pip install 'moto[server]'"),
        };
        let mut server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..200 {
            if let Ok(Some(_)) = server.child.try_wait() {
                panic!("moto exited at once: pip install 'moto[server]'");
            }
            if server.request("GET", "/").await.is_ok() {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("moto did not answer on {}", server.endpoint);
    }

    /// A bare HTTP request to the server (bucket creation needs no signature on moto).
    async fn request(&self, method: &str, path: &str) -> std::io::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = self.endpoint.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(host).await?;
        s.write_all(
            format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        if out.starts_with("HTTP/1.1 2") || out.starts_with("HTTP/1.0 2") {
            Ok(out)
        } else {
            Err(std::io::Error::other(out))
        }
    }

    /// Creates a new bucket and returns a file-store configuration for it.
    pub async fn bucket(&self, name: &str) -> crate::objects::ObjectStoreConfig {
        self.request("PUT", &format!("/{name}")).await.unwrap();
        crate::objects::ObjectStoreConfig {
            url: format!("s3://{name}/renkei"),
            endpoint: self.endpoint.clone(),
            region: "ap-northeast-1".into(),
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
            allow_http: true,
        }
    }
}
