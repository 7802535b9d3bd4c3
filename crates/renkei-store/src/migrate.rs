//! Migrations are embedded at compile time, one set per backend, and applied on open.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::{Db, Result, Store, StoreError};

const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("../migrations/sqlite/0001_foundation.sql"),
    ),
    (
        2,
        "clinical",
        include_str!("../migrations/sqlite/0002_clinical.sql"),
    ),
    (
        3,
        "attachments",
        include_str!("../migrations/sqlite/0003_attachments.sql"),
    ),
    (
        4,
        "identity",
        include_str!("../migrations/sqlite/0004_identity.sql"),
    ),
    (
        5,
        "merges",
        include_str!("../migrations/sqlite/0005_merges.sql"),
    ),
    (
        6,
        "patient_merges",
        include_str!("../migrations/sqlite/0006_patient_merges.sql"),
    ),
    (
        7,
        "mpi_search",
        include_str!("../migrations/sqlite/0007_mpi_search.sql"),
    ),
    (
        8,
        "api_clients",
        include_str!("../migrations/sqlite/0008_api_clients.sql"),
    ),
    (
        9,
        "consent",
        include_str!("../migrations/sqlite/0009_consent.sql"),
    ),
    (
        10,
        "lab_codes",
        include_str!("../migrations/sqlite/0010_lab_codes.sql"),
    ),
    (
        11,
        "medication_codes",
        include_str!("../migrations/sqlite/0011_medication_codes.sql"),
    ),
    (
        12,
        "webhooks",
        include_str!("../migrations/sqlite/0012_webhooks.sql"),
    ),
    (
        13,
        "api client profession",
        include_str!("../migrations/sqlite/0013_api_client_profession.sql"),
    ),
    (
        14,
        "user tokens",
        include_str!("../migrations/sqlite/0014_user_tokens.sql"),
    ),
    (
        15,
        "files",
        include_str!("../migrations/sqlite/0015_files.sql"),
    ),
    (
        16,
        "wopi",
        include_str!("../migrations/sqlite/0016_wopi.sql"),
    ),
    (
        17,
        "audit spool",
        include_str!("../migrations/sqlite/0017_audit_spool.sql"),
    ),
    (
        18,
        "audit head seal",
        include_str!("../migrations/sqlite/0018_audit_head_seal.sql"),
    ),
    (
        19,
        "jahis split parts",
        include_str!("../migrations/sqlite/0019_jahis_split_parts.sql"),
    ),
    (
        20,
        "link reviews",
        include_str!("../migrations/sqlite/0020_link_reviews.sql"),
    ),
];
const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("../migrations/postgres/0001_foundation.sql"),
    ),
    (
        2,
        "clinical",
        include_str!("../migrations/postgres/0002_clinical.sql"),
    ),
    (
        3,
        "attachments",
        include_str!("../migrations/postgres/0003_attachments.sql"),
    ),
    (
        4,
        "identity",
        include_str!("../migrations/postgres/0004_identity.sql"),
    ),
    (
        5,
        "merges",
        include_str!("../migrations/postgres/0005_merges.sql"),
    ),
    (
        6,
        "patient_merges",
        include_str!("../migrations/postgres/0006_patient_merges.sql"),
    ),
    (
        7,
        "mpi_search",
        include_str!("../migrations/postgres/0007_mpi_search.sql"),
    ),
    (
        8,
        "api_clients",
        include_str!("../migrations/postgres/0008_api_clients.sql"),
    ),
    (
        9,
        "consent",
        include_str!("../migrations/postgres/0009_consent.sql"),
    ),
    (
        10,
        "lab_codes",
        include_str!("../migrations/postgres/0010_lab_codes.sql"),
    ),
    (
        11,
        "medication_codes",
        include_str!("../migrations/postgres/0011_medication_codes.sql"),
    ),
    (
        12,
        "webhooks",
        include_str!("../migrations/postgres/0012_webhooks.sql"),
    ),
    (
        13,
        "api client profession",
        include_str!("../migrations/postgres/0013_api_client_profession.sql"),
    ),
    (
        14,
        "user tokens",
        include_str!("../migrations/postgres/0014_user_tokens.sql"),
    ),
    (
        15,
        "files",
        include_str!("../migrations/postgres/0015_files.sql"),
    ),
    (
        16,
        "wopi",
        include_str!("../migrations/postgres/0016_wopi.sql"),
    ),
    (
        17,
        "audit head seal",
        include_str!("../migrations/postgres/0017_audit_head_seal.sql"),
    ),
    (
        18,
        "jahis split parts",
        include_str!("../migrations/postgres/0018_jahis_split_parts.sql"),
    ),
    (
        19,
        "link reviews",
        include_str!("../migrations/postgres/0019_link_reviews.sql"),
    ),
];

fn migrator(set: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    let migrations = set
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator::with_migrations(migrations)
}

impl Store {
    pub(crate) async fn migrate(&self) -> Result<()> {
        let sealed_before = self.head_seal_migrated().await;
        let result = match &self.db {
            Db::Sqlite(pool) => migrator(SQLITE).run(pool).await,
            Db::Postgres(pool) => migrator(POSTGRES).run(pool).await,
        };
        result.map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
        // The head gets its first seal only in the open that added the column: afterwards an
        // empty seal is a rewritten head, which `audit verify` reports.
        if !sealed_before {
            self.seal_audit_head().await?;
        }
        Ok(())
    }

    /// Whether the migration that added the head's seal had run before this open.
    async fn head_seal_migrated(&self) -> bool {
        let (sql, version) = match &self.db {
            Db::Sqlite(_) => (
                "SELECT COUNT(*) FROM _sqlx_migrations WHERE version = $1",
                18i64,
            ),
            Db::Postgres(_) => (
                "SELECT COUNT(*) FROM _sqlx_migrations WHERE version = $1",
                17i64,
            ),
        };
        let n: std::result::Result<i64, sqlx::Error> = match &self.db {
            Db::Sqlite(pool) => sqlx::query_scalar(sql).bind(version).fetch_one(pool).await,
            Db::Postgres(pool) => sqlx::query_scalar(sql).bind(version).fetch_one(pool).await,
        };
        n.is_ok_and(|n| n > 0)
    }
}
