//! Notices (お知らせ) posted by the operator.

use renkei_core::audit::AuditEvent;

use crate::{Notice, NoticeFields, Result, Store, StoreError, exec_tx, with_db, with_tx};

const COLUMNS: &str = "id, title, body, important, published_from, published_until, created_by, created_at, updated_at";

impl Store {
    pub async fn create_notice(
        &self,
        n: &NoticeFields,
        created_by: i64,
        at: i64,
        mut audit: AuditEvent,
    ) -> Result<Notice> {
        let mut tx = self.begin().await?;
        let id: (i64,) = with_tx!(&mut tx, |c| {
            sqlx::query_as(
                "INSERT INTO notices (title, body, important, published_from, published_until, created_by, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
            )
            .bind(&n.title)
            .bind(&n.body)
            .bind(n.important)
            .bind(n.published_from)
            .bind(n.published_until)
            .bind(created_by)
            .bind(at)
            .fetch_one(&mut *c)
            .await
        })?;
        audit.target = format!("notice:{}", id.0);
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        self.notice(id.0).await
    }

    pub async fn update_notice(
        &self,
        id: i64,
        n: &NoticeFields,
        at: i64,
        audit: AuditEvent,
    ) -> Result<Notice> {
        let mut tx = self.begin().await?;
        let done = exec_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE notices SET title = $1, body = $2, important = $3, published_from = $4, published_until = $5, updated_at = $6 WHERE id = $7",
            )
            .bind(&n.title)
            .bind(&n.body)
            .bind(n.important)
            .bind(n.published_from)
            .bind(n.published_until)
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
        self.notice(id).await
    }

    pub async fn delete_notice(&self, id: i64, audit: AuditEvent) -> Result<()> {
        let mut tx = self.begin().await?;
        let done = exec_tx!(&mut tx, |c| sqlx::query(
            "DELETE FROM notices WHERE id = $1"
        )
        .bind(id)
        .execute(&mut *c)
        .await)?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    pub async fn notice(&self, id: i64) -> Result<Notice> {
        self.one_by(&format!("SELECT {COLUMNS} FROM notices WHERE id = $1"), id)
            .await
    }

    /// Notices published at `now`: important ones first, then newest first.
    pub async fn current_notices(&self, now: i64, limit: i64) -> Result<Vec<Notice>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM notices WHERE published_from <= $1 AND (published_until IS NULL OR published_until > $1)
             ORDER BY important DESC, published_from DESC, id DESC LIMIT $2"
        );
        with_db!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await)
        .map_err(StoreError::from)
    }

    /// Every notice, newest first (for the operator's list).
    pub async fn all_notices(&self, limit: i64) -> Result<Vec<Notice>> {
        let sql =
            format!("SELECT {COLUMNS} FROM notices ORDER BY published_from DESC, id DESC LIMIT $1");
        with_db!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(limit)
        .fetch_all(pool)
        .await)
        .map_err(StoreError::from)
    }
}
