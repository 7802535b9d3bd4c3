//! The clinical repository: messages with their original bytes, mapped items, patients.
//!
//! Versions of one order share an `order_key`. Among the current (`1`) versions the latest
//! `occurred_at` wins and the others become `superseded`; history files (`2`) are kept inactive;
//! a deletion (`0`) retracts every version of its order. Only items of the winning version are
//! `active`, which is what readers see.

use crate::{Result, Store, StoreError, Tx, exec_tx, with_db, with_tx};

/// A mapped item ready to store.
#[derive(Clone, Debug, PartialEq)]
pub struct NewItem {
    pub category: String,
    pub code: String,
    pub code_system: String,
    pub display: String,
    pub effective: Option<String>,
    pub effective_date: Option<String>,
    pub end_at: Option<String>,
    pub status: String,
    /// JSON.
    pub detail: String,
}

/// Demographics as the sending facility records them.
#[derive(Clone, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct PatientRecord {
    pub patient_local_id: String,
    pub kanji_name: String,
    pub kana_name: String,
    pub birth_date: Option<String>,
    pub sex: String,
    pub postal_code: String,
    pub address: String,
    pub phone: String,
}

/// How a message's version relates to others of its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// A current version (SS-MIX2 flag 1, or a live message).
    Current,
    /// An earlier version kept as history (flag 2).
    History,
    /// Deletes the order (flag 0).
    Delete,
}

impl Condition {
    fn key(self) -> &'static str {
        match self {
            Condition::Current => "1",
            Condition::History => "2",
            Condition::Delete => "0",
        }
    }
}

/// One message to keep.
#[derive(Clone, Debug)]
pub struct IncomingMessage {
    /// `ssmix2`, `mllp`, …
    pub source: String,
    /// Unique per source: the storage-relative path, or `sender|control id`.
    pub source_key: String,
    pub order_key: String,
    pub data_kind: String,
    pub condition: Condition,
    /// Comparable text (`yyyyMMddHHmmssfff` or MSH-7): the later version wins.
    pub occurred_at: String,
    pub content_hash: String,
    pub raw: Vec<u8>,
    pub message_type: String,
    pub control_id: String,
    pub patient_local_id: String,
    pub warnings: String,
    pub items: Vec<NewItem>,
    pub demographics: Option<PatientRecord>,
}

/// What happened to one incoming message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngestOutcome {
    /// New: stored.
    Stored,
    /// Seen before with the same content: nothing changed.
    Unchanged,
    /// Seen before with other content: replaced.
    Replaced,
}

/// An item as readers get it.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct StoredItem {
    pub id: i64,
    pub message_id: i64,
    pub category: String,
    pub code: String,
    pub code_system: String,
    pub display: String,
    pub effective: Option<String>,
    pub effective_date: Option<String>,
    pub end_at: Option<String>,
    pub status: String,
    pub detail: String,
}

/// A stored message without its bytes.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredMessage {
    pub id: i64,
    pub source: String,
    pub source_key: String,
    pub order_key: String,
    pub data_kind: String,
    pub condition: String,
    pub message_type: String,
    pub control_id: String,
    pub patient_local_id: String,
    pub status: String,
}

impl Store {
    /// Keeps a batch of messages in one transaction (all or nothing), applying versions.
    pub async fn ingest(
        &self,
        facility_id: i64,
        received_at: i64,
        batch: &[IncomingMessage],
    ) -> Result<Vec<IngestOutcome>> {
        let mut tx = self.begin().await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for m in batch {
            outcomes.push(ingest_one(&mut tx, facility_id, received_at, m).await?);
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// A facility's patient: demographics and the active items, by category and date.
    pub async fn patient_record(
        &self,
        facility_id: i64,
        patient_local_id: &str,
    ) -> Result<(Option<PatientRecord>, Vec<StoredItem>)> {
        let patient: Option<PatientRecord> = with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT patient_local_id, kanji_name, kana_name, birth_date, sex, postal_code, address, phone
                 FROM clinical_patients WHERE facility_id = $1 AND patient_local_id = $2",
            )
            .bind(facility_id)
            .bind(patient_local_id)
            .fetch_optional(pool)
            .await
        })?;
        let items: Vec<StoredItem> = with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT id, message_id, category, code, code_system, display, effective, effective_date, end_at, status, detail
                 FROM clinical_items WHERE facility_id = $1 AND patient_local_id = $2 AND active = TRUE
                 ORDER BY category, effective_date NULLS FIRST, id",
            )
            .bind(facility_id)
            .bind(patient_local_id)
            .fetch_all(pool)
            .await
        })?;
        Ok((patient, items))
    }

    /// The local patient IDs of a facility that have records.
    pub async fn clinical_patients(&self, facility_id: i64) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT DISTINCT patient_local_id FROM clinical_messages WHERE facility_id = $1 ORDER BY patient_local_id",
            )
            .bind(facility_id)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Every message of a facility (without bytes), in arrival order.
    pub async fn clinical_messages(&self, facility_id: i64) -> Result<Vec<StoredMessage>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT id, source, source_key, order_key, data_kind, condition, message_type, control_id, patient_local_id, status
                 FROM clinical_messages WHERE facility_id = $1 ORDER BY id",
            )
            .bind(facility_id)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// The original bytes of a message, exactly as received.
    pub async fn clinical_message_bytes(&self, id: i64) -> Result<Vec<u8>> {
        let row: (Vec<u8>,) = self
            .one_by("SELECT raw FROM clinical_messages WHERE id = $1", id)
            .await?;
        Ok(row.0)
    }
}

async fn ingest_one(
    tx: &mut Tx,
    facility_id: i64,
    received_at: i64,
    m: &IncomingMessage,
) -> Result<IngestOutcome> {
    let existing: Option<(i64, String)> = with_tx!(tx, |c| {
        sqlx::query_as("SELECT id, content_hash FROM clinical_messages WHERE facility_id = $1 AND source = $2 AND source_key = $3")
            .bind(facility_id)
            .bind(&m.source)
            .bind(&m.source_key)
            .fetch_optional(&mut *c)
            .await
    })?;
    let (id, outcome) = match existing {
        Some((_, hash)) if hash == m.content_hash => return Ok(IngestOutcome::Unchanged),
        Some((id, _)) => {
            exec_tx!(tx, |c| sqlx::query(
                "DELETE FROM clinical_items WHERE message_id = $1"
            )
            .bind(id)
            .execute(&mut *c)
            .await)?;
            exec_tx!(tx, |c| {
                sqlx::query(
                    "UPDATE clinical_messages SET order_key = $1, data_kind = $2, condition = $3, occurred_at = $4, content_hash = $5, raw = $6,
                     message_type = $7, control_id = $8, patient_local_id = $9, warnings = $10, received_at = $11, status = 'pending' WHERE id = $12",
                )
                .bind(&m.order_key)
                .bind(&m.data_kind)
                .bind(m.condition.key())
                .bind(&m.occurred_at)
                .bind(&m.content_hash)
                .bind(&m.raw)
                .bind(&m.message_type)
                .bind(&m.control_id)
                .bind(&m.patient_local_id)
                .bind(&m.warnings)
                .bind(received_at)
                .bind(id)
                .execute(&mut *c)
                .await
            })?;
            (id, IngestOutcome::Replaced)
        }
        None => {
            let row: (i64,) = with_tx!(tx, |c| {
                sqlx::query_as(
                    "INSERT INTO clinical_messages (facility_id, source, source_key, order_key, data_kind, condition, occurred_at, content_hash, raw,
                     message_type, control_id, patient_local_id, status, warnings, received_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', $13, $14) RETURNING id",
                )
                .bind(facility_id)
                .bind(&m.source)
                .bind(&m.source_key)
                .bind(&m.order_key)
                .bind(&m.data_kind)
                .bind(m.condition.key())
                .bind(&m.occurred_at)
                .bind(&m.content_hash)
                .bind(&m.raw)
                .bind(&m.message_type)
                .bind(&m.control_id)
                .bind(&m.patient_local_id)
                .bind(&m.warnings)
                .bind(received_at)
                .fetch_one(&mut *c)
                .await
            })?;
            (row.0, IngestOutcome::Stored)
        }
    };
    // Where this version stands among the others of its order.
    let (status, active) = match m.condition {
        Condition::History => ("history", false),
        Condition::Delete => {
            retract_order(tx, facility_id, &m.order_key).await?;
            ("retracted", false)
        }
        Condition::Current => {
            let newer: Option<(i64,)> = with_tx!(tx, |c| {
                sqlx::query_as(
                    "SELECT id FROM clinical_messages WHERE facility_id = $1 AND order_key = $2 AND id <> $3
                     AND ((status = 'current' AND occurred_at > $4) OR (status = 'retracted' AND condition = '0' AND occurred_at >= $4)) LIMIT 1",
                )
                .bind(facility_id)
                .bind(&m.order_key)
                .bind(id)
                .bind(&m.occurred_at)
                .fetch_optional(&mut *c)
                .await
            })?;
            if newer.is_some() {
                ("superseded", false)
            } else {
                supersede_others(tx, facility_id, &m.order_key, id).await?;
                ("current", true)
            }
        }
    };
    exec_tx!(tx, |c| sqlx::query(
        "UPDATE clinical_messages SET status = $1 WHERE id = $2"
    )
    .bind(status)
    .bind(id)
    .execute(&mut *c)
    .await)?;
    for item in &m.items {
        exec_tx!(tx, |c| {
            sqlx::query(
                "INSERT INTO clinical_items (message_id, facility_id, patient_local_id, category, code, code_system, display, effective, effective_date, end_at, status, detail, active)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(id)
            .bind(facility_id)
            .bind(&m.patient_local_id)
            .bind(&item.category)
            .bind(&item.code)
            .bind(&item.code_system)
            .bind(&item.display)
            .bind(&item.effective)
            .bind(&item.effective_date)
            .bind(&item.end_at)
            .bind(&item.status)
            .bind(&item.detail)
            .bind(active)
            .execute(&mut *c)
            .await
        })?;
    }
    if active && let Some(d) = &m.demographics {
        exec_tx!(tx, |c| {
            sqlx::query(
                "INSERT INTO clinical_patients (facility_id, patient_local_id, kanji_name, kana_name, birth_date, sex, postal_code, address, phone, occurred_at, message_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (facility_id, patient_local_id) DO UPDATE SET kanji_name = excluded.kanji_name, kana_name = excluded.kana_name,
                   birth_date = excluded.birth_date, sex = excluded.sex, postal_code = excluded.postal_code, address = excluded.address,
                   phone = excluded.phone, occurred_at = excluded.occurred_at, message_id = excluded.message_id
                 WHERE clinical_patients.occurred_at <= excluded.occurred_at",
            )
            .bind(facility_id)
            .bind(&m.patient_local_id)
            .bind(&d.kanji_name)
            .bind(&d.kana_name)
            .bind(&d.birth_date)
            .bind(&d.sex)
            .bind(&d.postal_code)
            .bind(&d.address)
            .bind(&d.phone)
            .bind(&m.occurred_at)
            .bind(id)
            .execute(&mut *c)
            .await
        })?;
    }
    Ok(outcome)
}

async fn retract_order(tx: &mut Tx, facility_id: i64, order_key: &str) -> Result<()> {
    exec_tx!(tx, |c| {
        sqlx::query(
            "UPDATE clinical_items SET active = FALSE WHERE message_id IN (SELECT id FROM clinical_messages WHERE facility_id = $1 AND order_key = $2)",
        )
        .bind(facility_id)
        .bind(order_key)
        .execute(&mut *c)
        .await
    })?;
    exec_tx!(tx, |c| {
        sqlx::query("UPDATE clinical_messages SET status = 'retracted' WHERE facility_id = $1 AND order_key = $2 AND status = 'current'")
            .bind(facility_id)
            .bind(order_key)
            .execute(&mut *c)
            .await
    })?;
    Ok(())
}

async fn supersede_others(tx: &mut Tx, facility_id: i64, order_key: &str, keep: i64) -> Result<()> {
    exec_tx!(tx, |c| {
        sqlx::query(
            "UPDATE clinical_items SET active = FALSE WHERE active = TRUE AND message_id IN
             (SELECT id FROM clinical_messages WHERE facility_id = $1 AND order_key = $2 AND id <> $3 AND status = 'current')",
        )
        .bind(facility_id)
        .bind(order_key)
        .bind(keep)
        .execute(&mut *c)
        .await
    })?;
    exec_tx!(tx, |c| {
        sqlx::query("UPDATE clinical_messages SET status = 'superseded' WHERE facility_id = $1 AND order_key = $2 AND id <> $3 AND status = 'current'")
            .bind(facility_id)
            .bind(order_key)
            .bind(keep)
            .execute(&mut *c)
            .await
    })?;
    Ok(())
}
