//! The storage story suite: every story runs on SQLite, and on the PostgreSQL at
//! `RENKEI_TEST_DATABASE_URL` (each run in a fresh schema). The PostgreSQL variants are ignored
//! unless the run includes ignored tests (`--run-ignored all`); then a missing URL fails them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use renkei_core::audit::{AuditEvent, AuditKey, AuditOutcome, ChainReport, ChainVerifier};
use renkei_core::institution::parse_master_row;
use renkei_core::time::Timestamp;
use renkei_store::*;

mod objects;
mod spool;
mod stories;

pub use renkei_store::testing::TestStore as Harness;

pub fn key() -> AuditKey {
    renkei_store::testing::test_key()
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

pub use renkei_store::on_both_backends as story;
