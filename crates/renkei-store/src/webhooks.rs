//! Medication-notebook apps, their subscriptions to patients, and the webhook outbox.

use renkei_core::audit::AuditEvent;

use crate::{Result, Store, StoreError, Tx, exec_db, exec_tx, with_db, with_tx};

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct MedicationApp {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub active: bool,
    pub created_at: i64,
}

/// A delivery that is due: where, with which secret, what.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DueDelivery {
    pub id: i64,
    pub url: String,
    pub secret: String,
    pub payload: String,
    pub attempts: i64,
}

impl Store {
    pub async fn create_medication_app(
        &self,
        (name, url, secret): (&str, &str, &str),
        at: i64,
        audit: AuditEvent,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let (id,): (i64,) = with_tx!(&mut tx, |c| {
            sqlx::query_as("INSERT INTO medication_apps (name, url, secret, active, created_at) VALUES ($1, $2, $3, TRUE, $4) RETURNING id")
                .bind(name)
                .bind(url)
                .bind(secret)
                .bind(at)
                .fetch_one(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn medication_apps(&self) -> Result<Vec<MedicationApp>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT id, name, url, active, created_at FROM medication_apps ORDER BY id",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// Subscribes an app to a person (again active if it was before).
    pub async fn subscribe_medication_app(
        &self,
        app_id: i64,
        person_id: i64,
        (at, by): (i64, &str),
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("INSERT INTO medication_subscriptions (app_id, person_id, created_at, created_by, active) VALUES ($1, $2, $3, $4, TRUE) ON CONFLICT (app_id, person_id) DO UPDATE SET active = TRUE")
                .bind(app_id)
                .bind(person_id)
                .bind(at)
                .bind(by)
                .execute(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// Queues a payload for every active subscription of a person to an active app; returns
    /// how many were queued.
    pub async fn enqueue_webhooks(&self, person_id: i64, payload: &str, at: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        let n = enqueue_in(&mut tx, person_id, payload, at).await?;
        tx.commit().await?;
        Ok(n)
    }
}

/// Queues `payload` for every active app subscription of `person_id`, inside `tx`.
pub(crate) async fn enqueue_in(tx: &mut Tx, person_id: i64, payload: &str, at: i64) -> Result<u64> {
    Ok(exec_tx!(tx, |c| {
        sqlx::query("INSERT INTO webhook_deliveries (subscription_id, payload, created_at, attempts, next_attempt_at, last_error) SELECT s.id, $1, $2, 0, $2, '' FROM medication_subscriptions s JOIN medication_apps a ON a.id = s.app_id WHERE s.person_id = $3 AND s.active = TRUE AND a.active = TRUE")
            .bind(payload)
            .bind(at)
            .bind(person_id)
            .execute(&mut *c)
            .await
    })?)
}

impl Store {
    /// Deliveries due at `now` (not delivered, not given up), oldest first.
    pub async fn due_webhooks(&self, now: i64, limit: i64) -> Result<Vec<DueDelivery>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT d.id, a.url, a.secret, d.payload, d.attempts FROM webhook_deliveries d JOIN medication_subscriptions s ON s.id = d.subscription_id JOIN medication_apps a ON a.id = s.app_id WHERE d.delivered_at IS NULL AND d.failed_at IS NULL AND d.next_attempt_at <= $1 ORDER BY d.next_attempt_at, d.id LIMIT $2")
                .bind(now)
                .bind(limit)
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// Records an attempt: delivered, or to be retried at `retry_at` (`None`: given up).
    pub async fn webhook_attempted(
        &self,
        id: i64,
        now: i64,
        outcome: std::result::Result<(), (&str, Option<i64>)>,
    ) -> Result<()> {
        match outcome {
            Ok(()) => exec_db!(&self.db, |pool| {
                sqlx::query("UPDATE webhook_deliveries SET attempts = attempts + 1, delivered_at = $1, last_error = '' WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(pool)
                    .await
            }),
            Err((error, Some(retry_at))) => exec_db!(&self.db, |pool| {
                sqlx::query("UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2 WHERE id = $3")
                    .bind(retry_at)
                    .bind(error)
                    .bind(id)
                    .execute(pool)
                    .await
            }),
            Err((error, None)) => exec_db!(&self.db, |pool| {
                sqlx::query("UPDATE webhook_deliveries SET attempts = attempts + 1, failed_at = $1, last_error = $2 WHERE id = $3")
                    .bind(now)
                    .bind(error)
                    .bind(id)
                    .execute(pool)
                    .await
            }),
        }?;
        Ok(())
    }

    /// (delivered, pending, given up) deliveries, for the operator.
    pub async fn webhook_counts(&self) -> Result<(i64, i64, i64)> {
        with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT COUNT(delivered_at), COUNT(*) - COUNT(delivered_at) - COUNT(failed_at), COUNT(failed_at) FROM webhook_deliveries")
                .fetch_one(pool)
                .await
        })
        .map_err(StoreError::from)
    }
}
