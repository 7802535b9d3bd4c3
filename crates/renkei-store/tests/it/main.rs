//! The storage story suite: every story runs on SQLite, and on PostgreSQL when
//! `RENKEI_TEST_DATABASE_URL` is set (each run in a fresh schema). With
//! `RENKEI_TEST_REQUIRE_POSTGRES=1` (set by `.ci/run`) a missing URL fails the PostgreSQL stories.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU32, Ordering};

use renkei_core::audit::{AuditEvent, AuditKey, AuditOutcome, ChainReport, ChainVerifier};
use renkei_core::institution::parse_master_row;
use renkei_core::time::Timestamp;
use renkei_store::*;

mod stories;

pub struct Harness {
    pub store: Store,
    /// A raw connection URL for tampering tests (they act as an attacker with database access).
    pub raw_url: String,
    pub schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

pub fn key() -> AuditKey {
    AuditKey::new(vec![42u8; 32]).unwrap()
}

pub async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("renkei.db").display());
    let store = Store::open(&url, key()).await.unwrap();
    Harness {
        store,
        raw_url: url,
        schema: None,
        _dir: Some(dir),
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub async fn postgres() -> Option<Harness> {
    let Ok(url) = std::env::var("RENKEI_TEST_DATABASE_URL") else {
        if std::env::var("RENKEI_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            panic!("RENKEI_TEST_REQUIRE_POSTGRES=1 but RENKEI_TEST_DATABASE_URL is not set");
        }
        eprintln!("RENKEI_TEST_DATABASE_URL not set: PostgreSQL story skipped");
        return None;
    };
    let schema = format!(
        "renkei_t_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        renkei_core::SystemClock.now().0 % 1_000_000
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
    let store = Store::open(&scoped, key()).await.unwrap();
    Some(Harness {
        store,
        raw_url: scoped,
        schema: Some(schema),
        _dir: None,
    })
}

use renkei_core::Clock;

/// Removes a passed story's PostgreSQL schema (a failed one is kept for inspection).
pub async fn drop_schema(h: &Harness) {
    let Some(schema) = &h.schema else { return };
    h.store.close().await;
    let url = std::env::var("RENKEI_TEST_DATABASE_URL").unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

pub fn event(action: &str) -> AuditEvent {
    AuditEvent {
        at: Timestamp(1_000),
        user_id: Some(1),
        login_id: "operator".into(),
        facility_id: Some(1),
        profession: Some("operator".into()),
        action: action.into(),
        target: String::new(),
        outcome: AuditOutcome::Success,
        detail: String::new(),
        client: "127.0.0.1".into(),
        emergency: false,
    }
}

pub async fn verify(store: &Store) -> ChainReport {
    let mut v = ChainVerifier::new(key());
    let mut after = 0;
    loop {
        let page = store.audit_chain_page(after, 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        for e in &page {
            v.push(e);
            after = e.seq;
        }
    }
    v.finish(Some(store.audit_head().await.unwrap()))
}

pub fn facility(code: Option<&str>, name: &str, kind: &str) -> FacilityFields {
    FacilityFields {
        code: code.map(str::to_string),
        facility_type: kind.into(),
        name: name.into(),
        name_kana: String::new(),
        postal_code: "7300011".into(),
        address: "広島市中区基町".into(),
        phone: "082-000-0000".into(),
        discloses: kind == "hospital",
        issues_hm_card: kind == "hospital",
        issues_disclosure_card: false,
        max_accounts: 2,
        active: true,
    }
}

pub fn new_user(facility_id: i64, login: &str) -> NewUser {
    NewUser {
        facility_id,
        login_id: login.into(),
        name: "山田 太郎".into(),
        name_kana: "ヤマダ タロウ".into(),
        profession: "doctor".into(),
        role: "staff".into(),
        password_hash: "$argon2id$fake".into(),
        must_change_password: true,
        emergency: false,
    }
}

pub fn institution(fields: [&str; 5]) -> renkei_core::institution::InstitutionRecord {
    parse_master_row(&fields).unwrap()
}

/// Declares one story as two tests: `<name>_sqlite` and `<name>_postgres`.
#[macro_export]
macro_rules! story {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let h = $crate::sqlite().await;
                super::$name(&h).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(h) = $crate::postgres().await {
                    super::$name(&h).await;
                    $crate::drop_schema(&h).await;
                }
            }
        }
    };
}
