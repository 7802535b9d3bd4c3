//! Audit-trail throughput: appends (one transaction each, as every login and change does) and
//! chain verification, on SQLite and — when `RENKEI_TEST_DATABASE_URL` is set — PostgreSQL.
//!
//! `cargo bench -p renkei-store --bench audit` prints events per second; nothing is asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use renkei_core::audit::{AuditEvent, AuditKey, AuditOutcome, ChainVerifier};
use renkei_core::time::Timestamp;
use renkei_store::Store;

const EVENTS: usize = 5_000;
const CONCURRENCY: usize = 8;

fn event(i: usize) -> AuditEvent {
    AuditEvent {
        at: Timestamp(i as i64),
        user_id: Some(1),
        login_id: "bench.user".into(),
        facility_id: Some(1),
        profession: Some("doctor".into()),
        action: "auth.login".into(),
        target: format!("user:{i}"),
        outcome: AuditOutcome::Success,
        detail: "totp".into(),
        client: "127.0.0.1".into(),
        emergency: false,
    }
}

async fn run(name: &str, store: Store) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (worker..EVENTS).step_by(CONCURRENCY) {
                s.append_audit(event(i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let append = started.elapsed();
    let started = Instant::now();
    let mut v = ChainVerifier::new(AuditKey::new(vec![9; 32]).unwrap());
    let mut after = 0;
    loop {
        let page = store.audit_chain_page(after, 5_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        page.iter().for_each(|e| v.push(e));
    }
    let report = v.finish(Some(store.audit_head().await.unwrap()));
    assert!(report.is_intact());
    let verify = started.elapsed();
    println!(
        "{name:<10} append: {:>8.0} events/s ({EVENTS} events, {CONCURRENCY} writers, durable commits)   verify: {:>9.0} events/s",
        EVENTS as f64 / append.as_secs_f64(),
        EVENTS as f64 / verify.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let key = AuditKey::new(vec![9; 32]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    run("sqlite", Store::open(&url, key.clone()).await.unwrap()).await;
    if let Ok(url) = std::env::var("RENKEI_TEST_DATABASE_URL") {
        let schema = format!("renkei_bench_{}", std::process::id());
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&pool)
            .await
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        run(
            "postgres",
            Store::open(&format!("{url}{sep}options[search_path]={schema}"), key)
                .await
                .unwrap(),
        )
        .await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&pool)
            .await
            .unwrap();
    } else {
        println!("postgres   skipped (set RENKEI_TEST_DATABASE_URL)");
    }
}
