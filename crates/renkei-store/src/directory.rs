//! Provider directory: facilities.

use renkei_core::audit::AuditEvent;

use crate::{
    Facility, FacilityFields, FacilityQuery, Result, Store, StoreError, exec_tx, like_pattern,
    with_db, with_tx,
};

const COLUMNS: &str = "id, code, facility_type, name, name_kana, postal_code, address, phone, discloses, issues_hm_card, issues_disclosure_card, max_accounts, active, created_at, updated_at";

impl Store {
    /// Registers a facility and records `audit` (its target set to the new facility) with it.
    pub async fn create_facility(
        &self,
        f: &FacilityFields,
        at: i64,
        mut audit: AuditEvent,
    ) -> Result<Facility> {
        let mut tx = self.begin().await?;
        let id: (i64,) = with_tx!(&mut tx, |c| {
            sqlx::query_as(
                "INSERT INTO facilities (code, facility_type, name, name_kana, postal_code, address, phone, discloses, issues_hm_card, issues_disclosure_card, max_accounts, active, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) RETURNING id",
            )
            .bind(&f.code)
            .bind(&f.facility_type)
            .bind(&f.name)
            .bind(&f.name_kana)
            .bind(&f.postal_code)
            .bind(&f.address)
            .bind(&f.phone)
            .bind(f.discloses)
            .bind(f.issues_hm_card)
            .bind(f.issues_disclosure_card)
            .bind(f.max_accounts)
            .bind(f.active)
            .bind(at)
            .fetch_one(&mut *c)
            .await
        })?;
        audit.target = format!("facility:{}", id.0);
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        self.facility(id.0).await
    }

    pub async fn update_facility(
        &self,
        id: i64,
        f: &FacilityFields,
        at: i64,
        audit: AuditEvent,
    ) -> Result<Facility> {
        let mut tx = self.begin().await?;
        let done = exec_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE facilities SET code = $1, facility_type = $2, name = $3, name_kana = $4, postal_code = $5, address = $6,
                 phone = $7, discloses = $8, issues_hm_card = $9, issues_disclosure_card = $10, max_accounts = $11, active = $12, updated_at = $13
                 WHERE id = $14",
            )
            .bind(&f.code)
            .bind(&f.facility_type)
            .bind(&f.name)
            .bind(&f.name_kana)
            .bind(&f.postal_code)
            .bind(&f.address)
            .bind(&f.phone)
            .bind(f.discloses)
            .bind(f.issues_hm_card)
            .bind(f.issues_disclosure_card)
            .bind(f.max_accounts)
            .bind(f.active)
            .bind(at)
            .bind(id)
            .execute(&mut *c)
            .await
        })?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        self.facility(id).await
    }

    pub async fn facility(&self, id: i64) -> Result<Facility> {
        if let Some(d) = &self.direct {
            return d.facility(id)?.ok_or(StoreError::NotFound);
        }
        self.one_by(
            &format!("SELECT {COLUMNS} FROM facilities WHERE id = $1"),
            id,
        )
        .await
    }

    pub async fn facility_by_code(&self, code: &str) -> Result<Option<Facility>> {
        self.optional_by(
            &format!("SELECT {COLUMNS} FROM facilities WHERE code = $1"),
            code.to_string(),
        )
        .await
    }

    /// Facilities matching `q`, ordered by type and code, and how many match in all.
    pub async fn search_facilities(&self, q: &FacilityQuery) -> Result<(Vec<Facility>, i64)> {
        const WHERE: &str = " WHERE ($1 IS NULL OR name LIKE $1 ESCAPE '\\' OR name_kana LIKE $1 ESCAPE '\\' OR address LIKE $1 ESCAPE '\\' OR code LIKE $1 ESCAPE '\\')
              AND ($2 IS NULL OR facility_type = $2)
              AND ($3 IS NULL OR discloses = $3)
              AND ($4 = FALSE OR active = TRUE)";
        let text = q
            .text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(like_pattern);
        let list_sql = format!(
            "SELECT {COLUMNS} FROM facilities{WHERE} ORDER BY facility_type, code, id LIMIT $5 OFFSET $6"
        );
        let count_sql = format!("SELECT COUNT(*) FROM facilities{WHERE}");
        let rows: Vec<Facility> = with_db!(&self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(list_sql.as_str()))
                .bind(&text)
                .bind(&q.facility_type)
                .bind(q.discloses)
                .bind(q.active_only)
                .bind(q.limit)
                .bind(q.offset)
                .fetch_all(pool)
                .await
        })?;
        let total: (i64,) = with_db!(&self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(count_sql.as_str()))
                .bind(&text)
                .bind(&q.facility_type)
                .bind(q.discloses)
                .bind(q.active_only)
                .fetch_one(pool)
                .await
        })?;
        Ok((rows, total.0))
    }
}
