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
    pub(crate) fn key(self) -> &'static str {
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
    /// Files that came with the message (documents of the extended storage).
    pub attachments: Vec<NewAttachment>,
}

/// One caller's submission in a group commit ([`Store::ingest_group`]).
#[derive(Clone, Debug)]
pub struct IngestJob {
    pub facility_id: i64,
    pub messages: Vec<IncomingMessage>,
}

/// A file kept with a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAttachment {
    pub name: String,
    pub sha256: String,
    pub bytes: Vec<u8>,
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
    /// When the server stored the message the item came from (µs since the epoch, UTC).
    pub received_at: i64,
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
    ///
    /// Set-based: a few statements per batch rather than per message (lookups, inserts and
    /// status changes each go in chunks), which is what makes an import fast.
    pub async fn ingest(
        &self,
        facility_id: i64,
        received_at: i64,
        batch: &[IncomingMessage],
    ) -> Result<Vec<IngestOutcome>> {
        let mut tx = self.begin_ingest().await?;
        let refs: Vec<&IncomingMessage> = batch.iter().collect();
        let outcomes = ingest_batch(&mut tx, facility_id, received_at, &refs).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    /// As [`ingest`](Store::ingest), with the audit event that `audit_of` makes from the
    /// outcomes, in the same transaction: a batch is never stored without its record.
    pub async fn ingest_audited(
        &self,
        facility_id: i64,
        received_at: i64,
        batch: &[IncomingMessage],
        audit_of: impl FnOnce(&[IngestOutcome]) -> renkei_core::audit::AuditEvent,
    ) -> Result<Vec<IngestOutcome>> {
        let mut tx = self.begin_ingest().await?;
        let refs: Vec<&IncomingMessage> = batch.iter().collect();
        let outcomes = ingest_batch(&mut tx, facility_id, received_at, &refs).await?;
        self.append_audits_in(&mut tx, vec![audit_of(&outcomes)])
            .await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    /// A pharmacy's dispensings for a card-holder, in one transaction with what they cause:
    /// the webhook deliveries to the apps the patient linked (`payloads[i]` for each message
    /// stored or replaced: an outbox, so a crash loses neither) and the audit event
    /// `audit_of` makes from the outcomes. Returns the outcomes and how many deliveries were
    /// queued.
    pub async fn ingest_with_webhooks(
        &self,
        (facility_id, person_id): (i64, i64),
        received_at: i64,
        batch: &[IncomingMessage],
        payloads: &[String],
        audit_of: impl FnOnce(&[IngestOutcome]) -> renkei_core::audit::AuditEvent,
    ) -> Result<(Vec<IngestOutcome>, u64)> {
        let mut tx = self.begin_ingest().await?;
        let refs: Vec<&IncomingMessage> = batch.iter().collect();
        let outcomes = ingest_batch(&mut tx, facility_id, received_at, &refs).await?;
        let mut queued = 0;
        for (o, payload) in outcomes.iter().zip(payloads) {
            if matches!(o, IngestOutcome::Stored | IngestOutcome::Replaced) {
                queued +=
                    crate::webhooks::enqueue_in(&mut tx, person_id, payload, received_at).await?;
            }
        }
        self.append_audits_in(&mut tx, vec![audit_of(&outcomes)])
            .await?;
        tx.commit().await?;
        Ok((outcomes, queued))
    }

    /// Stores the submissions of several callers in one transaction (a group commit: one
    /// fsync for all), each with the audit event that records it, which `audit_of` makes from
    /// the submission's outcomes. The messages of one facility go through one set-based
    /// [`ingest`](Store::ingest) pass. Returns, per job and per message, the outcome and the
    /// id of the message's first active item (0 when it has none). All or nothing.
    pub async fn ingest_group(
        &self,
        received_at: i64,
        jobs: Vec<IngestJob>,
        audit_of: impl Fn(usize, &[(IngestOutcome, i64)]) -> renkei_core::audit::AuditEvent
        + Send
        + 'static,
    ) -> Result<Vec<Vec<(IngestOutcome, i64)>>> {
        // On a SQLite file the whole transaction runs on one in-process connection, on a
        // blocking thread: one hop instead of one per statement.
        if let Some(d) = self.direct.clone() {
            let key = self.audit_key.clone();
            return tokio::task::spawn_blocking(move || {
                d.ingest_group(&key, received_at, &jobs, audit_of)
            })
            .await
            .map_err(|_| StoreError::Internal("the ingest stopped".into()))?;
        }
        let mut tx = self.begin_ingest().await?;
        let results = ingest_jobs(&mut tx, received_at, &jobs).await?;
        let events = results
            .iter()
            .enumerate()
            .map(|(j, r)| audit_of(j, r))
            .collect();
        self.append_audits_in(&mut tx, events).await?;
        tx.commit().await?;
        Ok(results)
    }

    /// Begins an ingest's transaction. On PostgreSQL each lookup is planned for its actual
    /// keys: a generic plan made while the tables were still small (no statistics yet) scans
    /// them whole, which an import notices.
    async fn begin_ingest(&self) -> Result<Tx> {
        let mut tx = self.begin().await?;
        if let Tx::Postgres(t) = &mut tx {
            sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
                .execute(&mut **t)
                .await?;
        }
        Ok(tx)
    }

    /// Applies an ADT^A40 at a facility: the prior patient ID's messages and items move to the
    /// surviving ID (the original bytes still say what was sent), the prior ID's person link moves
    /// too when the surviving ID has none, and the merge is kept. One transaction.
    pub async fn merge_local_patients(
        &self,
        facility_id: i64,
        prior: &str,
        surviving: &str,
        control_id: &str,
        at: i64,
        audit: renkei_core::audit::AuditEvent,
    ) -> Result<u64> {
        let mut tx = self.begin().await?;
        // Applying the same A40 again (a re-sent message) changes nothing.
        let done: Option<(i64,)> = with_tx!(&mut tx, |c| {
            sqlx::query_as("SELECT id FROM patient_merges WHERE facility_id = $1 AND prior_id = $2 AND surviving_id = $3 AND control_id = $4")
                .bind(facility_id)
                .bind(prior)
                .bind(surviving)
                .bind(control_id)
                .fetch_optional(&mut *c)
                .await
        })?;
        if done.is_some() {
            return Ok(0);
        }
        let mut moved = 0;
        for table in ["clinical_messages", "clinical_items"] {
            let sql = format!(
                "UPDATE {table} SET patient_local_id = $1 WHERE facility_id = $2 AND patient_local_id = $3"
            );
            moved += exec_tx!(&mut tx, |c| {
                sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(surviving)
                    .bind(facility_id)
                    .bind(prior)
                    .execute(&mut *c)
                    .await
            })?;
        }
        // Demographics: keep the surviving ID's; if it has none, the prior's become its.
        exec_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE clinical_patients SET patient_local_id = $1 WHERE facility_id = $2 AND patient_local_id = $3
                 AND NOT EXISTS (SELECT 1 FROM clinical_patients s WHERE s.facility_id = $2 AND s.patient_local_id = $1)",
            )
            .bind(surviving)
            .bind(facility_id)
            .bind(prior)
            .execute(&mut *c)
            .await
        })?;
        exec_tx!(&mut tx, |c| {
            sqlx::query(
                "DELETE FROM clinical_patients WHERE facility_id = $1 AND patient_local_id = $2",
            )
            .bind(facility_id)
            .bind(prior)
            .execute(&mut *c)
            .await
        })?;
        // The person link of the prior ID.
        if let Some((link_id, person_id)) =
            crate::identity::active_link(&mut tx, facility_id, prior).await?
        {
            exec_tx!(&mut tx, |c| {
                sqlx::query(
                    "UPDATE person_links SET active = FALSE, unlinked_at = $1 WHERE id = $2",
                )
                .bind(at)
                .bind(link_id)
                .execute(&mut *c)
                .await
            })?;
            if crate::identity::active_link(&mut tx, facility_id, surviving)
                .await?
                .is_none()
            {
                crate::identity::insert_link(
                    &mut tx,
                    person_id,
                    facility_id,
                    surviving,
                    "adt_a40",
                    control_id,
                    at,
                )
                .await?;
            }
        }
        exec_tx!(&mut tx, |c| {
            sqlx::query("INSERT INTO patient_merges (facility_id, prior_id, surviving_id, control_id, merged_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(facility_id)
                .bind(prior)
                .bind(surviving)
                .bind(control_id)
                .bind(at)
                .execute(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(moved)
    }

    /// Refreshes the planner's statistics of the clinical and person tables (after a large
    /// import).
    pub async fn analyze(&self) -> Result<()> {
        match &self.db {
            crate::Db::Postgres(pool) => {
                sqlx::query(
                    "ANALYZE clinical_messages, clinical_items, clinical_patients, persons",
                )
                .execute(pool)
                .await?;
            }
            crate::Db::Sqlite(pool) => {
                sqlx::query("ANALYZE").execute(pool).await?;
            }
        }
        Ok(())
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
                "SELECT i.id, i.message_id, i.category, i.code, i.code_system, i.display, i.effective, i.effective_date, i.end_at, i.status, i.detail, m.received_at
                 FROM clinical_items i JOIN clinical_messages m ON m.id = i.message_id
                 WHERE i.facility_id = $1 AND i.patient_local_id = $2 AND i.active = TRUE
                 ORDER BY i.category, i.effective_date NULLS FIRST, i.id",
            )
            .bind(facility_id)
            .bind(patient_local_id)
            .fetch_all(pool)
            .await
        })?;
        Ok((patient, items))
    }

    /// Whose an active item is: (facility, local patient ID), by the item's id.
    /// The content hash of the message stored under (`facility_id`, `source`, `source_key`),
    /// if any: lets a live sender's re-sent control ID be told apart from a changed one.
    pub async fn stored_message_hash(
        &self,
        facility_id: i64,
        source: &str,
        source_key: &str,
    ) -> Result<Option<String>> {
        let hash: Option<(String,)> = with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT content_hash FROM clinical_messages WHERE facility_id = $1 AND source = $2 AND source_key = $3")
                .bind(facility_id)
                .bind(source)
                .bind(source_key)
                .fetch_optional(pool)
                .await
        })?;
        Ok(hash.map(|(h,)| h))
    }

    pub async fn item_owner(&self, item_id: i64) -> Result<Option<(i64, String)>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT facility_id, patient_local_id FROM clinical_items WHERE id = $1 AND active = TRUE",
            )
            .bind(item_id)
            .fetch_optional(pool)
            .await
        })
        .map_err(StoreError::from)
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

    /// The files kept with a message: (name, bytes), in the order received.
    pub async fn clinical_attachments(&self, message_id: i64) -> Result<Vec<(String, Vec<u8>)>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT name, bytes FROM clinical_attachments WHERE message_id = $1 ORDER BY id",
            )
            .bind(message_id)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// One file kept with a message (by its place among them), if there is one.
    pub async fn clinical_attachment_at(
        &self,
        message_id: i64,
        index: i64,
    ) -> Result<Option<(String, Vec<u8>)>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT name, bytes FROM clinical_attachments WHERE message_id = $1 ORDER BY id LIMIT 1 OFFSET $2",
            )
            .bind(message_id)
            .bind(index)
            .fetch_optional(pool)
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

/// Keys per lookup or status statement.
const CHUNK: usize = 400;
/// Rows per multi-row INSERT. Measured on SQLite (19,656 generated messages): 400 item rows per
/// statement took 6.8 s, 100 took 3.9 s, 25–50 about 2.8 s; statements that large cost more per
/// row than they save in round trips.
const ITEM_ROWS: usize = 40;
const MESSAGE_ROWS: usize = 25;

/// `($1,$2,…),(…)` for `rows` rows of `width` parameters, numbered from `$first`.
pub(crate) fn placeholders(rows: usize, width: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        if r > 0 {
            out.push(',');
        }
        out.push('(');
        for c in 0..width {
            if c > 0 {
                out.push(',');
            }
            out.push('$');
            out.push_str(&(first + r * width + c).to_string());
        }
        out.push(')');
    }
    out
}

/// `$first,…` for an IN list.
fn list(n: usize, first: usize) -> String {
    (0..n)
        .map(|i| format!("${}", first + i))
        .collect::<Vec<_>>()
        .join(",")
}

/// One version of an order, as the resolution sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Version {
    id: i64,
    occurred_at: String,
    condition: Condition,
}

/// The status every version of one order ends in: the latest current version wins, unless a
/// deletion at least as late retracts the order; history stays history.
fn resolve(versions: &[Version]) -> Vec<(i64, &'static str)> {
    let latest_delete = versions
        .iter()
        .filter(|v| v.condition == Condition::Delete)
        .map(|v| v.occurred_at.as_str())
        .max();
    let winner = versions
        .iter()
        .filter(|v| v.condition == Condition::Current)
        .max_by(|a, b| a.occurred_at.cmp(&b.occurred_at).then(a.id.cmp(&b.id)))
        .map(|v| v.id);
    versions
        .iter()
        .map(|v| {
            let status = match v.condition {
                Condition::History => "history",
                Condition::Delete => "retracted",
                Condition::Current
                    if latest_delete.is_some_and(|d| d >= v.occurred_at.as_str()) =>
                {
                    "retracted"
                }
                Condition::Current if Some(v.id) == winner => "current",
                Condition::Current => "superseded",
            };
            (v.id, status)
        })
        .collect()
}

/// The statements of an ingest, so that one [`ingest_batch`] runs over sqlx (both backends)
/// and over the SQLite file's in-process connection (`direct.rs`, for group commits). Lists are
/// at most [`CHUNK`] long; row sets at most [`MESSAGE_ROWS`] / [`ITEM_ROWS`].
pub(crate) trait IngestSql {
    /// `(source_key, id, content_hash)` of the stored messages with these keys.
    async fn known(
        &mut self,
        facility_id: i64,
        source: &str,
        keys: &[&str],
    ) -> Result<Vec<(String, i64, String)>>;
    /// Deletes the rows of `table` (items or attachments) of these messages.
    async fn delete_of_messages(&mut self, table: &str, ids: &[i64]) -> Result<()>;
    /// Rewrites a stored message with a new version of its content.
    async fn rewrite_message(
        &mut self,
        id: i64,
        m: &IncomingMessage,
        received_at: i64,
    ) -> Result<()>;
    /// Inserts new messages; returns `(id, source_key)` of each.
    async fn insert_messages(
        &mut self,
        facility_id: i64,
        received_at: i64,
        ms: &[&IncomingMessage],
    ) -> Result<Vec<(i64, String)>>;
    /// `(id, order_key, occurred_at, condition, status)` of the current versions and the
    /// deletions of these orders.
    async fn versions(
        &mut self,
        facility_id: i64,
        order_keys: &[&str],
    ) -> Result<Vec<(i64, String, String, String, String)>>;
    async fn set_status(&mut self, status: &str, ids: &[i64]) -> Result<()>;
    async fn deactivate_items(&mut self, message_ids: &[i64]) -> Result<()>;
    async fn insert_items(
        &mut self,
        facility_id: i64,
        rows: &[(i64, bool, &IncomingMessage, &NewItem)],
    ) -> Result<()>;
    async fn insert_attachment(&mut self, message_id: i64, a: &NewAttachment) -> Result<()>;
    /// Keeps `d` as the patient's demographics unless what is stored is later.
    async fn upsert_patient(
        &mut self,
        facility_id: i64,
        m: &IncomingMessage,
        d: &PatientRecord,
        message_id: i64,
    ) -> Result<()>;
    /// `(source_key, id of its first active item)` of the stored messages with these keys.
    async fn first_items(
        &mut self,
        facility_id: i64,
        source: &str,
        keys: &[&str],
    ) -> Result<Vec<(String, i64)>>;
}

impl IngestSql for Tx {
    async fn known(
        &mut self,
        facility_id: i64,
        source: &str,
        keys: &[&str],
    ) -> Result<Vec<(String, i64, String)>> {
        // PostgreSQL gets one array parameter (one plan, index lookups); SQLite an IN list.
        Ok(match self {
            Tx::Postgres(t) => {
                sqlx::query_as("SELECT source_key, id, content_hash FROM clinical_messages WHERE facility_id = $1 AND source = $2 AND source_key = ANY($3)")
                    .bind(facility_id)
                    .bind(source)
                    .bind(keys.to_vec())
                    .fetch_all(&mut **t)
                    .await?
            }
            Tx::Sqlite(t) => {
                let sql = known_sql(keys.len());
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(facility_id).bind(source);
                for k in keys {
                    q = q.bind(*k);
                }
                q.fetch_all(&mut **t).await?
            }
        })
    }

    async fn delete_of_messages(&mut self, table: &str, ids: &[i64]) -> Result<()> {
        let sql = delete_of_messages_sql(table, ids.len());
        exec_tx!(self, |c| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for id in ids {
                q = q.bind(*id);
            }
            q.execute(&mut *c).await
        })?;
        Ok(())
    }

    async fn rewrite_message(
        &mut self,
        id: i64,
        m: &IncomingMessage,
        received_at: i64,
    ) -> Result<()> {
        exec_tx!(self, |c| {
            sqlx::query(REWRITE_MESSAGE)
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
        Ok(())
    }

    async fn insert_messages(
        &mut self,
        facility_id: i64,
        received_at: i64,
        ms: &[&IncomingMessage],
    ) -> Result<Vec<(i64, String)>> {
        let sql = insert_messages_sql(ms.len());
        let rows: Vec<(i64, String)> = with_tx!(self, |c| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
            for m in ms {
                q = q
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
                    .bind("pending")
                    .bind(&m.warnings)
                    .bind(received_at);
            }
            q.fetch_all(&mut *c).await
        })?;
        Ok(rows)
    }

    async fn versions(
        &mut self,
        facility_id: i64,
        order_keys: &[&str],
    ) -> Result<Vec<(i64, String, String, String, String)>> {
        Ok(match self {
            Tx::Postgres(t) => {
                let sql = format!(
                    "SELECT id, order_key, occurred_at, condition, status FROM clinical_messages WHERE facility_id = $1 AND order_key = ANY($2) {WANTED_VERSIONS}"
                );
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(facility_id)
                    .bind(order_keys.to_vec())
                    .fetch_all(&mut **t)
                    .await?
            }
            Tx::Sqlite(t) => {
                let sql = versions_sql(order_keys.len());
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(facility_id);
                for k in order_keys {
                    q = q.bind(*k);
                }
                q.fetch_all(&mut **t).await?
            }
        })
    }

    async fn set_status(&mut self, status: &str, ids: &[i64]) -> Result<()> {
        let sql = set_status_sql(ids.len());
        exec_tx!(self, |c| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(status);
            for id in ids {
                q = q.bind(*id);
            }
            q.execute(&mut *c).await
        })?;
        Ok(())
    }

    async fn deactivate_items(&mut self, message_ids: &[i64]) -> Result<()> {
        let sql = deactivate_sql(message_ids.len());
        exec_tx!(self, |c| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for id in message_ids {
                q = q.bind(*id);
            }
            q.execute(&mut *c).await
        })?;
        Ok(())
    }

    async fn insert_items(
        &mut self,
        facility_id: i64,
        rows: &[(i64, bool, &IncomingMessage, &NewItem)],
    ) -> Result<()> {
        let sql = insert_items_sql(rows.len());
        exec_tx!(self, |c| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for (id, active, m, item) in rows {
                q = q
                    .bind(*id)
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
                    .bind(*active);
            }
            q.execute(&mut *c).await
        })?;
        Ok(())
    }

    async fn insert_attachment(&mut self, message_id: i64, a: &NewAttachment) -> Result<()> {
        exec_tx!(self, |c| {
            sqlx::query(INSERT_ATTACHMENT)
                .bind(message_id)
                .bind(&a.name)
                .bind(a.bytes.len() as i64)
                .bind(&a.sha256)
                .bind(&a.bytes)
                .execute(&mut *c)
                .await
        })?;
        Ok(())
    }

    async fn upsert_patient(
        &mut self,
        facility_id: i64,
        m: &IncomingMessage,
        d: &PatientRecord,
        message_id: i64,
    ) -> Result<()> {
        exec_tx!(self, |c| {
            sqlx::query(UPSERT_PATIENT)
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
                .bind(message_id)
                .execute(&mut *c)
                .await
        })?;
        Ok(())
    }

    async fn first_items(
        &mut self,
        facility_id: i64,
        source: &str,
        keys: &[&str],
    ) -> Result<Vec<(String, i64)>> {
        Ok(match self {
            Tx::Postgres(t) => {
                sqlx::query_as("SELECT m.source_key, MIN(i.id) FROM clinical_messages m JOIN clinical_items i ON i.message_id = m.id AND i.active = TRUE WHERE m.facility_id = $1 AND m.source = $2 AND m.source_key = ANY($3) GROUP BY m.source_key")
                    .bind(facility_id)
                    .bind(source)
                    .bind(keys.to_vec())
                    .fetch_all(&mut **t)
                    .await?
            }
            Tx::Sqlite(t) => {
                let sql = first_items_sql(keys.len());
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(facility_id)
                    .bind(source);
                for k in keys {
                    q = q.bind(*k);
                }
                q.fetch_all(&mut **t).await?
            }
        })
    }
}

// The statements both implementations share (SQLite's spelling where they differ).
pub(crate) const REWRITE_MESSAGE: &str = "UPDATE clinical_messages SET order_key = $1, data_kind = $2, condition = $3, occurred_at = $4, content_hash = $5, raw = $6,
                 message_type = $7, control_id = $8, patient_local_id = $9, warnings = $10, received_at = $11, status = 'pending' WHERE id = $12";
pub(crate) const INSERT_ATTACHMENT: &str = "INSERT INTO clinical_attachments (message_id, name, size, sha256, bytes) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const UPSERT_PATIENT: &str = "INSERT INTO clinical_patients (facility_id, patient_local_id, kanji_name, kana_name, birth_date, sex, postal_code, address, phone, occurred_at, message_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (facility_id, patient_local_id) DO UPDATE SET kanji_name = excluded.kanji_name, kana_name = excluded.kana_name,
                   birth_date = excluded.birth_date, sex = excluded.sex, postal_code = excluded.postal_code, address = excluded.address,
                   phone = excluded.phone, occurred_at = excluded.occurred_at, message_id = excluded.message_id
                 WHERE clinical_patients.occurred_at <= excluded.occurred_at";
const WANTED_VERSIONS: &str =
    "AND (status = 'current' OR (status = 'retracted' AND condition = '0'))";

pub(crate) fn insert_messages_sql(rows: usize) -> String {
    format!(
        "INSERT INTO clinical_messages (facility_id, source, source_key, order_key, data_kind, condition, occurred_at, content_hash, raw,
             message_type, control_id, patient_local_id, status, warnings, received_at) VALUES {} RETURNING id, source_key",
        placeholders(rows, 15, 1)
    )
}

pub(crate) fn insert_items_sql(rows: usize) -> String {
    format!(
        "INSERT INTO clinical_items (message_id, facility_id, patient_local_id, category, code, code_system, display, effective, effective_date, end_at, status, detail, active) VALUES {}",
        placeholders(rows, 13, 1)
    )
}

pub(crate) fn known_sql(n: usize) -> String {
    format!(
        "SELECT source_key, id, content_hash FROM clinical_messages WHERE facility_id = $1 AND source = $2 AND source_key IN ({})",
        list(n, 3)
    )
}

pub(crate) fn versions_sql(n: usize) -> String {
    format!(
        "SELECT id, order_key, occurred_at, condition, status FROM clinical_messages WHERE facility_id = $1 AND order_key IN ({}) {WANTED_VERSIONS}",
        list(n, 2)
    )
}

pub(crate) fn delete_of_messages_sql(table: &str, n: usize) -> String {
    format!("DELETE FROM {table} WHERE message_id IN ({})", list(n, 1))
}

pub(crate) fn set_status_sql(n: usize) -> String {
    format!(
        "UPDATE clinical_messages SET status = $1 WHERE id IN ({})",
        list(n, 2)
    )
}

pub(crate) fn deactivate_sql(n: usize) -> String {
    format!(
        "UPDATE clinical_items SET active = FALSE WHERE active = TRUE AND message_id IN ({})",
        list(n, 1)
    )
}

pub(crate) fn first_items_sql(n: usize) -> String {
    format!(
        "SELECT m.source_key, MIN(i.id) FROM clinical_messages m JOIN clinical_items i ON i.message_id = m.id AND i.active = TRUE WHERE m.facility_id = $1 AND m.source = $2 AND m.source_key IN ({}) GROUP BY m.source_key",
        list(n, 3)
    )
}

/// The messages of several jobs, one set-based [`ingest_batch`] per facility and source; per
/// job and message, the outcome and the id of the message's first active item (0: none).
pub(crate) async fn ingest_jobs<S: IngestSql>(
    tx: &mut S,
    received_at: i64,
    jobs: &[IngestJob],
) -> Result<Vec<Vec<(IngestOutcome, i64)>>> {
    use std::collections::{BTreeMap, HashMap};
    let mut results: Vec<Vec<(IngestOutcome, i64)>> = jobs
        .iter()
        .map(|j| vec![(IngestOutcome::Unchanged, 0); j.messages.len()])
        .collect();
    // (facility, source) → the messages, in job order, with where each came from.
    let mut groups: BTreeMap<(i64, &str), Vec<(usize, usize)>> = BTreeMap::new();
    for (j, job) in jobs.iter().enumerate() {
        for (k, m) in job.messages.iter().enumerate() {
            groups
                .entry((job.facility_id, m.source.as_str()))
                .or_default()
                .push((j, k));
        }
    }
    for ((facility_id, source), at) in &groups {
        let batch: Vec<&IncomingMessage> = at.iter().map(|(j, k)| &jobs[*j].messages[*k]).collect();
        let outcomes = ingest_batch(tx, *facility_id, received_at, &batch).await?;
        let mut first_item: HashMap<String, i64> = HashMap::new();
        let keys: Vec<&str> = batch.iter().map(|m| m.source_key.as_str()).collect();
        for chunk in keys.chunks(CHUNK) {
            first_item.extend(tx.first_items(*facility_id, source, chunk).await?);
        }
        for ((j, k), outcome) in at.iter().zip(outcomes) {
            let id = first_item
                .get(&jobs[*j].messages[*k].source_key)
                .copied()
                .unwrap_or(0);
            results[*j][*k] = (outcome, id);
        }
    }
    Ok(results)
}

pub(crate) async fn ingest_batch<S: IngestSql>(
    tx: &mut S,
    facility_id: i64,
    received_at: i64,
    batch: &[&IncomingMessage],
) -> Result<Vec<IngestOutcome>> {
    use std::collections::HashMap;
    let Some(first) = batch.first() else {
        return Ok(Vec::new());
    };
    let source = first.source.as_str();
    if batch.iter().any(|m| m.source != source) {
        return Err(StoreError::Internal("one batch holds one source".into()));
    }
    // 1. What is already stored under these keys.
    let mut known: HashMap<String, (i64, String)> = HashMap::new();
    let keys: Vec<&str> = batch.iter().map(|m| m.source_key.as_str()).collect();
    for chunk in keys.chunks(CHUNK) {
        for (key, id, hash) in tx.known(facility_id, source, chunk).await? {
            known.insert(key, (id, hash));
        }
    }
    // 2. Classify; within the batch the last copy of a key counts.
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, m) in batch.iter().enumerate() {
        last.insert(m.source_key.as_str(), i);
    }
    let mut outcomes = vec![IngestOutcome::Unchanged; batch.len()];
    let mut replaced: Vec<(usize, i64)> = Vec::new();
    let mut fresh: Vec<usize> = Vec::new();
    for (i, m) in batch.iter().enumerate() {
        if last.get(m.source_key.as_str()) != Some(&i) {
            continue;
        }
        match known.get(&m.source_key) {
            Some((_, hash)) if *hash == m.content_hash => {}
            Some((id, _)) => {
                outcomes[i] = IngestOutcome::Replaced;
                replaced.push((i, *id));
            }
            None => {
                outcomes[i] = IngestOutcome::Stored;
                fresh.push(i);
            }
        }
    }
    // 3. Replaced messages: drop their items, rewrite the row.
    let mut ids: HashMap<usize, i64> = HashMap::new();
    for chunk in replaced.chunks(CHUNK) {
        let message_ids: Vec<i64> = chunk.iter().map(|(_, id)| *id).collect();
        for table in ["clinical_items", "clinical_attachments"] {
            tx.delete_of_messages(table, &message_ids).await?;
        }
    }
    for (i, id) in &replaced {
        tx.rewrite_message(*id, batch[*i], received_at).await?;
        ids.insert(*i, *id);
    }
    // 4. New messages, many rows per statement; ids come back with their keys.
    for chunk in fresh.chunks(MESSAGE_ROWS) {
        let ms: Vec<&IncomingMessage> = chunk.iter().map(|i| batch[*i]).collect();
        let rows = tx.insert_messages(facility_id, received_at, &ms).await?;
        let by_key: HashMap<&str, usize> = chunk
            .iter()
            .map(|i| (batch[*i].source_key.as_str(), *i))
            .collect();
        for (id, key) in rows {
            if let Some(i) = by_key.get(key.as_str()) {
                ids.insert(*i, id);
            }
        }
    }
    // 5. Versions: the touched messages with the stored current versions and deletions of their orders.
    let touched: Vec<usize> = replaced
        .iter()
        .map(|(i, _)| *i)
        .chain(fresh.iter().copied())
        .collect();
    let mut orders: HashMap<&str, Vec<Version>> = HashMap::new();
    for i in &touched {
        let m = &batch[*i];
        let id = *ids
            .get(i)
            .ok_or_else(|| StoreError::Internal("a stored message has no id".into()))?;
        orders
            .entry(m.order_key.as_str())
            .or_default()
            .push(Version {
                id,
                occurred_at: m.occurred_at.clone(),
                condition: m.condition,
            });
    }
    let touched_ids: std::collections::HashSet<i64> = ids.values().copied().collect();
    let order_keys: Vec<&str> = orders.keys().copied().collect();
    let mut previously_current: std::collections::HashSet<i64> = std::collections::HashSet::new();
    for chunk in order_keys.chunks(CHUNK) {
        for (id, key, occurred_at, condition, status) in tx.versions(facility_id, chunk).await? {
            if touched_ids.contains(&id) {
                continue;
            }
            if status == "current" {
                previously_current.insert(id);
            }
            let condition = if condition == "0" {
                Condition::Delete
            } else {
                Condition::Current
            };
            if let Some(v) = orders.get_mut(key.as_str()) {
                v.push(Version {
                    id,
                    occurred_at,
                    condition,
                });
            }
        }
    }
    let mut status_of: HashMap<i64, &'static str> = HashMap::new();
    for versions in orders.values() {
        status_of.extend(resolve(versions));
    }
    // 6. Status changes, grouped by status; stored versions that lose their place go inactive.
    let mut by_status: HashMap<&'static str, Vec<i64>> = HashMap::new();
    let mut deactivate: Vec<i64> = Vec::new();
    for (id, status) in &status_of {
        let stored_before = !touched_ids.contains(id);
        if stored_before && previously_current.contains(id) && *status == "current" {
            continue;
        }
        if stored_before && !previously_current.contains(id) {
            continue; // a stored deletion marker stays as it is
        }
        if stored_before {
            deactivate.push(*id);
        }
        by_status.entry(*status).or_default().push(*id);
    }
    for (status, ids) in &by_status {
        for chunk in ids.chunks(CHUNK) {
            tx.set_status(status, chunk).await?;
        }
    }
    for chunk in deactivate.chunks(CHUNK) {
        tx.deactivate_items(chunk).await?;
    }
    // 7. Items of the touched messages, active when their message is current.
    let mut rows: Vec<(i64, bool, &IncomingMessage, &NewItem)> = Vec::new();
    for i in &touched {
        let m: &IncomingMessage = batch[*i];
        let Some(id) = ids.get(i) else { continue };
        let active = status_of.get(id) == Some(&"current");
        rows.extend(m.items.iter().map(|item| (*id, active, m, item)));
    }
    for chunk in rows.chunks(ITEM_ROWS) {
        tx.insert_items(facility_id, chunk).await?;
    }
    // 8. Attachments, byte for byte.
    for i in &touched {
        let (Some(id), m) = (ids.get(i), &batch[*i]) else {
            continue;
        };
        for a in &m.attachments {
            tx.insert_attachment(*id, a).await?;
        }
    }
    // 9. Demographics from current versions: per patient, the latest in the batch, and only if
    //    later than what is stored.
    let mut latest: HashMap<&str, usize> = HashMap::new();
    for i in &touched {
        let m = &batch[*i];
        let current = ids
            .get(i)
            .is_some_and(|id| status_of.get(id) == Some(&"current"));
        if !current || m.demographics.is_none() {
            continue;
        }
        let entry = latest.entry(m.patient_local_id.as_str()).or_insert(*i);
        if batch[*entry].occurred_at <= m.occurred_at {
            *entry = *i;
        }
    }
    let mut chosen: Vec<usize> = latest.into_values().collect();
    chosen.sort_unstable();
    for i in &chosen {
        let m = batch[*i];
        let (Some(id), Some(d)) = (ids.get(i), &m.demographics) else {
            continue;
        };
        tx.upsert_patient(facility_id, m, d, *id).await?;
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: i64, at: &str, condition: Condition) -> Version {
        Version {
            id,
            occurred_at: at.into(),
            condition,
        }
    }

    #[test]
    fn the_latest_current_version_wins_and_deletions_retract() {
        let r = resolve(&[
            v(1, "20110101", Condition::Current),
            v(2, "20110102", Condition::Current),
            v(3, "20100101", Condition::History),
        ]);
        assert_eq!(r, vec![(1, "superseded"), (2, "current"), (3, "history")]);
        let r = resolve(&[
            v(1, "20110101", Condition::Current),
            v(2, "20110102", Condition::Delete),
        ]);
        assert_eq!(r, vec![(1, "retracted"), (2, "retracted")]);
        // A version newer than the deletion stands.
        let r = resolve(&[
            v(1, "20110103", Condition::Current),
            v(2, "20110102", Condition::Delete),
        ]);
        assert_eq!(r, vec![(1, "current"), (2, "retracted")]);
        assert_eq!(placeholders(2, 2, 3), "($3,$4),($5,$6)");
        assert_eq!(list(3, 2), "$2,$3,$4");
    }
}

/// A facility's local lab code as seen in its results, with the JLAC10 code it is mapped to.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct LocalLabCode {
    pub facility_id: i64,
    pub code: String,
    pub code_system: String,
    pub display: String,
    pub jlac10: Option<String>,
}

impl Store {
    /// Every mapping of a local lab code to JLAC10.
    pub async fn lab_code_maps(&self) -> Result<Vec<(i64, String, String)>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT facility_id, local_code, jlac10 FROM lab_code_maps ORDER BY facility_id, local_code")
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// Sets (or with an empty code, removes) a mapping, with its audit event.
    pub async fn set_lab_code_map(
        &self,
        facility_id: i64,
        local_code: &str,
        jlac10: &str,
        (at, by): (i64, &str),
        audit: renkei_core::audit::AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        if jlac10.is_empty() {
            exec_tx!(&mut tx, |c| {
                sqlx::query("DELETE FROM lab_code_maps WHERE facility_id = $1 AND local_code = $2")
                    .bind(facility_id)
                    .bind(local_code)
                    .execute(&mut *c)
                    .await
            })?;
        } else {
            exec_tx!(&mut tx, |c| {
                sqlx::query("INSERT INTO lab_code_maps (facility_id, local_code, jlac10, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (facility_id, local_code) DO UPDATE SET jlac10 = excluded.jlac10, updated_at = excluded.updated_at, updated_by = excluded.updated_by")
                    .bind(facility_id)
                    .bind(local_code)
                    .bind(jlac10)
                    .bind(at)
                    .bind(by)
                    .execute(&mut *c)
                    .await
            })?;
        }
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// The lab codes in facilities' results that are not JLAC10 (what the operator maps), with
    /// their current mapping. Codes only, never patient data.
    pub async fn local_lab_codes(&self) -> Result<Vec<LocalLabCode>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT i.facility_id, i.code, i.code_system, MIN(i.display) AS display, m.jlac10 FROM clinical_items i LEFT JOIN lab_code_maps m ON m.facility_id = i.facility_id AND m.local_code = i.code WHERE i.category = 'lab_result' AND i.code_system <> 'JC10' GROUP BY i.facility_id, i.code, i.code_system, m.jlac10 ORDER BY i.facility_id, i.code LIMIT 2000")
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from)
    }
}

/// One group of a patient's items for overviews (the calendar): items of one category (and,
/// for encounters, one event code) on one day, counted.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ItemDay {
    pub category: String,
    pub code: String,
    pub effective_date: Option<String>,
    pub items: i64,
}

impl Store {
    /// A facility's patient's active items grouped by category (encounters also by event) and
    /// day: what a calendar needs, without reading each item.
    pub async fn patient_item_days(
        &self,
        facility_id: i64,
        patient_local_id: &str,
        category: Option<&str>,
    ) -> Result<Vec<ItemDay>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT category, CASE WHEN category = 'encounter' THEN code ELSE '' END AS code, effective_date, COUNT(*) AS items
                 FROM clinical_items WHERE facility_id = $1 AND patient_local_id = $2 AND active = TRUE AND ($3 IS NULL OR category = $3)
                 GROUP BY category, CASE WHEN category = 'encounter' THEN code ELSE '' END, effective_date",
            )
            .bind(facility_id)
            .bind(patient_local_id)
            .bind(category)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// A facility's patient's active items of some categories, optionally within dates (undated
    /// items always) and of some codes.
    pub async fn patient_items_of(
        &self,
        facility_id: i64,
        patient_local_id: &str,
        categories: &[&str],
        (since, until): (Option<&str>, Option<&str>),
        codes: Option<&[String]>,
    ) -> Result<Vec<StoredItem>> {
        if categories.is_empty() || codes.is_some_and(<[String]>::is_empty) {
            // Nothing asked for (and `IN ()` is not SQL).
            return Ok(Vec::new());
        }
        // Placeholders for the lists: $5… for categories, then codes.
        let mut binds: Vec<&str> = categories.to_vec();
        let category_list = (0..categories.len())
            .map(|i| format!("${}", i + 5))
            .collect::<Vec<_>>()
            .join(", ");
        let code_filter = match codes {
            Some(codes) => {
                let start = 5 + categories.len();
                binds.extend(codes.iter().map(String::as_str));
                format!(
                    " AND i.code IN ({})",
                    (0..codes.len())
                        .map(|i| format!("${}", start + i))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            None => String::new(),
        };
        if categories.is_empty() || codes.is_some_and(<[String]>::is_empty) {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT i.id, i.message_id, i.category, i.code, i.code_system, i.display, i.effective, i.effective_date, i.end_at, i.status, i.detail, m.received_at
             FROM clinical_items i JOIN clinical_messages m ON m.id = i.message_id
             WHERE i.facility_id = $1 AND i.patient_local_id = $2 AND i.active = TRUE AND i.category IN ({category_list})
             AND ($3 IS NULL OR i.effective_date IS NULL OR i.effective_date >= $3)
             AND ($4 IS NULL OR i.effective_date IS NULL OR i.effective_date <= $4){code_filter}
             ORDER BY i.effective_date NULLS FIRST, i.id"
        );
        with_db!(&self.db, |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(facility_id)
                .bind(patient_local_id)
                .bind(since)
                .bind(until);
            for b in &binds {
                q = q.bind(*b);
            }
            q.fetch_all(pool).await
        })
        .map_err(StoreError::from)
    }
}

/// What became of a one-time code on redemption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeRedemption {
    /// Valid: now used; the person it was issued for.
    Person(i64),
    Unknown,
    Expired,
    Used,
}

impl Store {
    /// Messages of one source (`jahis`, …) for a facility's patient, oldest first: (occurred at,
    /// the bytes as stored).
    pub async fn patient_messages_of_source(
        &self,
        facility_id: i64,
        patient_local_id: &str,
        source: &str,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT occurred_at, raw FROM clinical_messages WHERE facility_id = $1 AND patient_local_id = $2 AND source = $3 AND status = 'current' ORDER BY occurred_at, id")
                .bind(facility_id)
                .bind(patient_local_id)
                .bind(source)
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// Stores a one-time code (its digest) with the audit event of its issue.
    pub async fn create_medication_code(
        &self,
        code_hash: &str,
        person_id: i64,
        (facility_id, issued_by): (Option<i64>, &str),
        (issued_at, expires_at): (i64, i64),
        audit: renkei_core::audit::AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("INSERT INTO medication_codes (code_hash, person_id, facility_id, issued_by, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(code_hash)
                .bind(person_id)
                .bind(facility_id)
                .bind(issued_by)
                .bind(issued_at)
                .bind(expires_at)
                .execute(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// Uses a one-time code: valid codes are marked used (once: a second use finds it used).
    pub async fn redeem_medication_code(
        &self,
        code_hash: &str,
        now: i64,
        used_by: &str,
    ) -> Result<CodeRedemption> {
        let mut tx = self.begin().await?;
        let row: Option<(i64, i64, Option<i64>)> = with_tx!(&mut tx, |c| {
            sqlx::query_as(
                "SELECT person_id, expires_at, used_at FROM medication_codes WHERE code_hash = $1",
            )
            .bind(code_hash)
            .fetch_optional(&mut *c)
            .await
        })?;
        let outcome = match row {
            None => CodeRedemption::Unknown,
            Some((_, _, Some(_))) => CodeRedemption::Used,
            Some((_, expires, None)) if expires <= now => CodeRedemption::Expired,
            Some((person, _, None)) => {
                let n = exec_tx!(&mut tx, |c| {
                    sqlx::query("UPDATE medication_codes SET used_at = $1, used_by = $2 WHERE code_hash = $3 AND used_at IS NULL")
                        .bind(now)
                        .bind(used_by)
                        .bind(code_hash)
                        .execute(&mut *c)
                        .await
                })?;
                if n == 1 {
                    CodeRedemption::Person(person)
                } else {
                    CodeRedemption::Used
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }
}
