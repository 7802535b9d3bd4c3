//! The audit trail: append inside the caller's transaction, search, and read the chain in order.

use renkei_core::audit::{self, AuditEvent, AuditOutcome, ChainedAuditEvent};
use renkei_core::time::Timestamp;

use crate::{AuditQuery, Result, Store, StoreError, Tx, exec_db, exec_tx, with_db};

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    at: i64,
    user_id: Option<i64>,
    login_id: String,
    facility_id: Option<i64>,
    profession: Option<String>,
    action: String,
    target: String,
    outcome: String,
    detail: String,
    client: String,
    emergency: bool,
    prev_hash: String,
    hash: String,
}

impl AuditRow {
    fn into_chained(self) -> ChainedAuditEvent {
        ChainedAuditEvent {
            seq: self.seq,
            event: AuditEvent {
                at: Timestamp(self.at),
                user_id: self.user_id,
                login_id: self.login_id,
                facility_id: self.facility_id,
                profession: self.profession,
                action: self.action,
                target: self.target,
                // An unknown outcome key cannot be produced by Renkei; reading it as a failure
                // makes the hash disagree, so verification reports the row.
                outcome: AuditOutcome::from_key(&self.outcome).unwrap_or(AuditOutcome::Failure),
                detail: self.detail,
                client: self.client,
                emergency: self.emergency,
            },
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

const COLUMNS: &str = "seq, at, user_id, login_id, facility_id, profession, action, target, outcome, detail, client, emergency, prev_hash, hash";

impl Store {
    /// Appends one event in its own transaction.
    pub async fn append_audit(&self, event: AuditEvent) -> Result<i64> {
        let mut tx = self.begin().await?;
        let seq = self.append_audit_in(&mut tx, event).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Appends events in order in one transaction (a group commit: one fsync for many);
    /// returns their sequence numbers. On a SQLite file the store's audit writer also groups
    /// the events of concurrent callers (see [`Store::groups_audit_commits`]).
    pub async fn append_audit_batch(&self, events: Vec<AuditEvent>) -> Result<Vec<i64>> {
        if let Some(d) = &self.direct {
            return d.append_audits_grouped(events).await;
        }
        let mut tx = self.begin().await?;
        let seqs = self.append_audits_in(&mut tx, events).await?;
        tx.commit().await?;
        Ok(seqs)
    }

    /// Records one event: on a SQLite file a routine read's event is spooled (crash-safe at
    /// once, in the chain with the audit writer's next group commit, see
    /// [`AuditEvent::is_routine_read`]) and any other event is committed before this returns,
    /// grouped with concurrent callers'; on PostgreSQL the event commits in its own transaction.
    pub async fn record_audit(&self, event: AuditEvent) -> Result<()> {
        match &self.direct {
            Some(d) if event.is_routine_read() => d.spool_audits(vec![event]).await,
            Some(d) => d.append_audits_grouped(vec![event]).await.map(|_| ()),
            None => self.append_audit(event).await.map(|_| ()),
        }
    }

    /// Waits until every spooled event is in the chain, so that what the trail shows includes
    /// every read answered before.
    async fn settle_audits(&self) -> Result<()> {
        match &self.direct {
            Some(d) => d.settle_audits().await,
            None => Ok(()),
        }
    }

    /// Whether [`Store::append_audit_batch`] itself joins concurrent callers' events into one
    /// commit (a SQLite file's audit writer), so that callers need not queue them first.
    pub fn groups_audit_commits(&self) -> bool {
        self.direct.is_some()
    }

    /// Appends one event inside `tx`, so that it commits or rolls back with the change it records.
    /// The head row is locked for the rest of the transaction, which serialises appends.
    pub(crate) async fn append_audit_in(&self, tx: &mut Tx, event: AuditEvent) -> Result<i64> {
        let seqs = self.append_audits_in(tx, vec![event]).await?;
        seqs.first()
            .copied()
            .ok_or_else(|| StoreError::Internal("no audit sequence number".into()))
    }

    /// Appends events in order inside `tx`: the head is read once, the events go in many rows
    /// per statement, and the head is written once.
    pub(crate) async fn append_audits_in(
        &self,
        tx: &mut Tx,
        events: Vec<AuditEvent>,
    ) -> Result<Vec<i64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (mut seq, mut hash): (i64, String) = match tx {
            Tx::Sqlite(t) => {
                sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_one(&mut **t)
                    .await?
            }
            Tx::Postgres(t) => {
                sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
                    .fetch_one(&mut **t)
                    .await?
            }
        };
        let mut linked = Vec::with_capacity(events.len());
        for event in events {
            let l = audit::link(&self.audit_key, seq, &hash, event);
            (seq, hash) = (l.seq, l.hash.clone());
            linked.push(l);
        }
        // 14 parameters a row; 64 rows keep a statement well under every backend's limit.
        for chunk in linked.chunks(64) {
            let sql = format!(
                "INSERT INTO audit_events (seq, at, user_id, login_id, facility_id, profession, action, target, outcome, detail, client, emergency, prev_hash, hash) VALUES {}",
                crate::clinical::placeholders(chunk.len(), 14, 1)
            );
            exec_tx!(tx, |c| {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                for l in chunk {
                    let e = &l.event;
                    q = q
                        .bind(l.seq)
                        .bind(e.at.0)
                        .bind(e.user_id)
                        .bind(&e.login_id)
                        .bind(e.facility_id)
                        .bind(&e.profession)
                        .bind(&e.action)
                        .bind(&e.target)
                        .bind(e.outcome.key())
                        .bind(&e.detail)
                        .bind(&e.client)
                        .bind(e.emergency)
                        .bind(&l.prev_hash)
                        .bind(&l.hash);
                }
                q.execute(&mut *c).await
            })?;
        }
        let mac = audit::head_mac(&self.audit_key, seq, &hash);
        exec_tx!(tx, |c| {
            sqlx::query("UPDATE audit_head SET seq = $1, hash = $2, mac = $3 WHERE id = 1")
                .bind(seq)
                .bind(&hash)
                .bind(&mac)
                .execute(&mut *c)
                .await
        })?;
        Ok(linked.iter().map(|l| l.seq).collect())
    }

    /// Events matching `q`, newest first, and how many match in all.
    pub async fn search_audit(&self, q: &AuditQuery) -> Result<(Vec<ChainedAuditEvent>, i64)> {
        self.settle_audits().await?;
        const WHERE: &str = " WHERE ($1 IS NULL OR login_id = $1)
              AND ($2 IS NULL OR facility_id = $2)
              AND ($3 IS NULL OR action LIKE $3 ESCAPE '\\')
              AND ($4 IS NULL OR outcome = $4)
              AND ($5 IS NULL OR at >= $5)
              AND ($6 IS NULL OR at < $6)
              AND ($7 = FALSE OR emergency = TRUE)";
        let prefix = q.action_prefix.as_ref().map(|p| {
            let mut s = crate::like_pattern(p);
            s.remove(0);
            s
        });
        let list_sql = format!(
            "SELECT {COLUMNS} FROM audit_events{WHERE} ORDER BY seq DESC LIMIT $8 OFFSET $9"
        );
        let count_sql = format!("SELECT COUNT(*) FROM audit_events{WHERE}");
        let rows: Vec<AuditRow> = with_db!(&self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(list_sql.as_str()))
                .bind(&q.login_id)
                .bind(q.facility_id)
                .bind(&prefix)
                .bind(&q.outcome)
                .bind(q.from)
                .bind(q.to)
                .bind(q.emergency_only)
                .bind(q.limit)
                .bind(q.offset)
                .fetch_all(pool)
                .await
        })?;
        let total: (i64,) = with_db!(&self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(count_sql.as_str()))
                .bind(&q.login_id)
                .bind(q.facility_id)
                .bind(&prefix)
                .bind(&q.outcome)
                .bind(q.from)
                .bind(q.to)
                .bind(q.emergency_only)
                .fetch_one(pool)
                .await
        })?;
        Ok((
            rows.into_iter().map(AuditRow::into_chained).collect(),
            total.0,
        ))
    }

    /// Events about one target (a person's record: who read what, when), newest first.
    pub async fn audit_by_target(
        &self,
        target: &str,
        limit: i64,
    ) -> Result<Vec<ChainedAuditEvent>> {
        self.settle_audits().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_events WHERE target = $1 ORDER BY seq DESC LIMIT $2"
        );
        let rows: Vec<AuditRow> = with_db!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(target)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        Ok(rows.into_iter().map(AuditRow::into_chained).collect())
    }

    /// Up to `limit` events with `seq > after`, in sequence order: the chain, page by page.
    pub async fn audit_chain_page(&self, after: i64, limit: i64) -> Result<Vec<ChainedAuditEvent>> {
        self.settle_audits().await?;
        let sql =
            format!("SELECT {COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2");
        let rows: Vec<AuditRow> = with_db!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        Ok(rows.into_iter().map(AuditRow::into_chained).collect())
    }

    /// The head record with its seal: the last sequence number, hash and MAC written.
    pub async fn audit_head_sealed(&self) -> Result<(i64, String, String)> {
        self.settle_audits().await?;
        let head: Option<(i64, String, String)> = with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT seq, hash, mac FROM audit_head WHERE id = 1")
                .fetch_optional(pool)
                .await
        })?;
        head.ok_or_else(|| StoreError::Internal("the audit head record is missing".to_string()))
    }

    /// Seals a head record that has no seal yet, under this store's key: run only by the open
    /// that adds the seal column (a new database, or one from before seals).
    pub(crate) async fn seal_audit_head(&self) -> Result<()> {
        let (seq, hash): (i64, String) = with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(pool)
                .await
        })?;
        let mac = audit::head_mac(&self.audit_key, seq, &hash);
        exec_db!(&self.db, |pool| {
            sqlx::query("UPDATE audit_head SET mac = $1 WHERE id = 1 AND mac = '' AND seq = $2")
                .bind(&mac)
                .bind(seq)
                .execute(pool)
                .await
        })?;
        Ok(())
    }

    /// Whether the database holds a region (any facility): then an empty audit trail means
    /// the trail was emptied, since creating a facility is audited.
    pub async fn holds_a_region(&self) -> Result<bool> {
        let n: i64 = with_db!(&self.db, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM facilities LIMIT 1) AS f")
                .fetch_one(pool)
                .await
        })?;
        Ok(n > 0)
    }

    /// The head record: the last sequence number and hash written.
    pub async fn audit_head(&self) -> Result<(i64, String)> {
        self.settle_audits().await?;
        let head: Option<(i64, String)> = with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_optional(pool)
                .await
        })?;
        head.ok_or_else(|| StoreError::Internal("the audit head record is missing".to_string()))
    }
}
