//! The audit spool of a SQLite file: a routine read's event is crash-safe before the read is
//! answered, in the chain whenever the trail is read, and replayed after a process stops
//! with events still spooled.

use std::time::Duration;

use renkei_core::audit::AuditOutcome;
use renkei_store::*;

use crate::{event, key, verify};

fn read_event(i: usize) -> renkei_core::audit::AuditEvent {
    renkei_core::audit::AuditEvent {
        target: format!("person:{i}"),
        outcome: if i.is_multiple_of(2) {
            AuditOutcome::Success
        } else {
            AuditOutcome::Denied
        },
        detail: format!("fhir Patient\tno {i}"),
        ..event("clinical.read")
    }
}

/// A line of the spool format (the spool module's, written out here as a stopped process
/// would have left it).
fn spool_line(target: &str) -> String {
    format!("1000\t1\toperator\t1\toperator\tclinical.read\t{target}\tsuccess\t\t127.0.0.1\t0\n")
}

fn spool_dir(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("renkei.db.audit-spool")
}

fn spool_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(spool_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

async fn open(dir: &std::path::Path) -> Store {
    Store::open(
        &format!("sqlite://{}", dir.join("renkei.db").display()),
        key(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn spooled_reads_are_in_the_chain_whenever_the_trail_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            if i % 10 == 0 {
                // A change and an emergency read are committed before the answer, in between.
                let e = if i % 20 == 0 {
                    event("consent.update")
                } else {
                    renkei_core::audit::AuditEvent {
                        emergency: true,
                        ..read_event(i)
                    }
                };
                assert!(!e.is_routine_read());
                s.record_audit(e).await.unwrap();
            } else {
                s.record_audit(read_event(i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // No waiting: reading the trail takes in every event recorded before.
    let report = verify(&store).await;
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.checked, 50);
    let of_7 = store.audit_by_target("person:7", 10).await.unwrap();
    assert_eq!(of_7.len(), 1);
    assert_eq!(
        of_7[0].event,
        read_event(7),
        "the event comes back as recorded"
    );
    // Closing the store deletes its spent spool file; nothing is replayed on the next open.
    store.close().await;
    drop(store);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !spool_files(dir.path()).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(spool_files(dir.path()), Vec::<String>::new());
    let again = open(dir.path()).await;
    assert_eq!(verify(&again).await.checked, 50);
}

#[tokio::test]
async fn a_stopped_process_s_spooled_reads_are_replayed_once_and_a_torn_tail_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    store.record_audit(event("auth.login")).await.unwrap();
    store.close().await;
    drop(store);
    // What a process killed after answering three reads leaves behind: its spool file, of
    // which the audit writer had committed the first record (its row says how far), and a
    // record torn by a power loss at the end.
    let first = spool_line("person:1");
    let body = format!(
        "{first}{}{}1000\t1\toper",
        spool_line("person:2"),
        spool_line("person:3")
    );
    std::fs::write(spool_dir(dir.path()).join("999-1-0.spool"), body).unwrap();
    let raw = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("renkei.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("INSERT INTO audit_spool (name, done) VALUES ('999-1-0.spool', $1)")
        .bind(first.len() as i64)
        .execute(&raw)
        .await
        .unwrap();
    sqlx::query("INSERT INTO audit_spool (name, done) VALUES ('998-1-0.spool', 10)")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;

    let store = open(dir.path()).await;
    let report = verify(&store).await;
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.checked, 3, "the login, then persons 2 and 3");
    assert!(
        store
            .audit_by_target("person:1", 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.audit_by_target("person:3", 5).await.unwrap().len(), 1);
    // The replayed file is gone (only this store's own remains), and so are stale rows.
    let files = spool_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(!files.contains(&"999-1-0.spool".to_string()));
    // A second store on the same file (another process, say) leaves the first's spool alone.
    store.record_audit(read_event(4)).await.unwrap();
    let other = open(dir.path()).await;
    // (Whether or not the first store's writer has committed it yet, it is there once.)
    assert_eq!(verify(&store).await.checked, 4);
    assert_eq!(verify(&other).await.checked, 4);
    assert_eq!(other.audit_by_target("person:4", 5).await.unwrap().len(), 1);
}
