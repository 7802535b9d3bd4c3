//! 名寄せ reviews: links whose incoming demographics disagree with the person (see the
//! migration `link_reviews`).

use renkei_core::audit::AuditEvent;

use crate::identity::Person;
use crate::{Result, Store, StoreError, exec_tx, with_db};

/// A review, open or resolved.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct LinkReview {
    pub id: i64,
    pub facility_id: i64,
    pub patient_local_id: String,
    pub person_id: i64,
    /// Comma-separated field names (氏名, カナ氏名, 生年月日, 性別).
    pub fields: String,
    pub signature: String,
    pub opened_at: i64,
    pub resolved_at: Option<i64>,
    pub resolved_by: String,
    /// `confirmed` (same person) or `unlinked`; empty while open.
    pub resolution: String,
}

/// A disagreement found at intake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLinkReview {
    pub facility_id: i64,
    pub patient_local_id: String,
    pub person_id: i64,
    pub fields: String,
    pub signature: String,
}

const COLUMNS: &str = "id, facility_id, patient_local_id, person_id, fields, signature, opened_at, resolved_at, resolved_by, resolution";

impl Store {
    /// The persons some of a facility's patient IDs are linked to now: `(patient ID, person)`.
    pub async fn linked_persons(
        &self,
        facility_id: i64,
        patient_local_ids: &[String],
    ) -> Result<Vec<(String, Person)>> {
        let mut out = Vec::new();
        for chunk in patient_local_ids.chunks(500) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT l.patient_local_id, p.id, p.common_id, p.kanji_name, p.kana_name, p.birth_date, p.sex, p.issuer_facility, p.created_at, p.merged_into, p.phone, p.postal_code, p.address
                 FROM person_links l JOIN persons p ON p.id = l.person_id
                 WHERE l.facility_id = $1 AND l.active = TRUE AND l.patient_local_id IN ({})",
                marks.join(",")
            );
            let rows: Vec<LinkedRow> = with_db!(&self.db, |pool| {
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(facility_id);
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(pool).await
            })?;
            out.extend(rows.into_iter().map(LinkedRow::split));
        }
        Ok(out)
    }

    /// Opens reviews, each with its audit event, unless one is already open for the patient ID
    /// or the same disagreement (signature) was confirmed before. Returns how many opened.
    pub async fn open_link_reviews(
        &self,
        reviews: &[(NewLinkReview, AuditEvent)],
        at: i64,
    ) -> Result<usize> {
        let mut opened = 0;
        let mut tx = self.begin().await?;
        for (r, audit) in reviews {
            let n = exec_tx!(&mut tx, |c| {
                sqlx::query(
                "INSERT INTO link_reviews (facility_id, patient_local_id, person_id, fields, signature, opened_at)
                 SELECT $1, $2, $3, $4, $5, $6
                 WHERE NOT EXISTS (SELECT 1 FROM link_reviews WHERE facility_id = $1 AND patient_local_id = $2
                     AND (resolved_at IS NULL OR (resolution = 'confirmed' AND person_id = $3 AND signature = $5)))"
            )
            .bind(r.facility_id)
            .bind(&r.patient_local_id)
            .bind(r.person_id)
            .bind(&r.fields)
            .bind(&r.signature)
            .bind(at)
            .execute(&mut *c)
            .await
            })?;
            if n > 0 {
                self.append_audit_in(&mut tx, audit.clone()).await?;
                opened += 1;
            }
        }
        tx.commit().await?;
        Ok(opened)
    }

    /// Reviews, newest first: open ones only, or all; of one facility, or of every one.
    pub async fn link_reviews(
        &self,
        facility_id: Option<i64>,
        open_only: bool,
        limit: i64,
    ) -> Result<Vec<LinkReview>> {
        let mut filters = Vec::new();
        if facility_id.is_some() {
            filters.push("facility_id = $2");
        }
        if open_only {
            filters.push("resolved_at IS NULL");
        }
        let filter = if filters.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", filters.join(" AND "))
        };
        let sql = format!("SELECT {COLUMNS} FROM link_reviews {filter} ORDER BY id DESC LIMIT $1");
        with_db!(&self.db, |pool| {
            let q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(limit);
            match facility_id {
                Some(f) => q.bind(f),
                None => q,
            }
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// The open reviews of links to a person (for the viewer's warning).
    pub async fn open_link_reviews_of(&self, person_id: i64) -> Result<Vec<LinkReview>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM link_reviews WHERE person_id = $1 AND resolved_at IS NULL ORDER BY id"
        );
        with_db!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(person_id)
        .fetch_all(pool)
        .await)
        .map_err(StoreError::from)
    }

    pub async fn link_review(&self, id: i64) -> Result<LinkReview> {
        self.one_by(
            &format!("SELECT {COLUMNS} FROM link_reviews WHERE id = $1"),
            id,
        )
        .await
    }

    /// Resolves an open review: `confirmed` keeps the link; `unlinked` also closes the link
    /// (kept as history), in the same transaction as the audit event.
    pub async fn resolve_link_review(
        &self,
        id: i64,
        (resolution, by): (&str, &str),
        at: i64,
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let n = exec_tx!(&mut tx, |c| {
            sqlx::query(
            "UPDATE link_reviews SET resolved_at = $1, resolved_by = $2, resolution = $3 WHERE id = $4 AND resolved_at IS NULL"
        )
        .bind(at)
        .bind(by)
        .bind(resolution)
        .bind(id)
        .execute(&mut *c)
        .await
        })?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        if resolution == "unlinked" {
            exec_tx!(&mut tx, |c| {
                sqlx::query(
                "UPDATE person_links SET active = FALSE, unlinked_at = $1
                 WHERE active = TRUE AND (facility_id, patient_local_id, person_id) IN
                     (SELECT facility_id, patient_local_id, person_id FROM link_reviews WHERE id = $2)"
            )
            .bind(at)
            .bind(id)
            .execute(&mut *c)
            .await
            })?;
        }
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }
}

/// A row of [`Store::linked_persons`].
#[derive(sqlx::FromRow)]
struct LinkedRow {
    patient_local_id: String,
    #[sqlx(flatten)]
    person: Person,
}

impl LinkedRow {
    fn split(self) -> (String, Person) {
        (self.patient_local_id, self.person)
    }
}
