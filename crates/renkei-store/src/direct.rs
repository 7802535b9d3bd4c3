//! The SQLite backend's hottest statements, run in-process through rusqlite instead of through
//! sqlx's connection threads.
//!
//! Why: sqlx runs each SQLite connection on a thread of its own and hands every statement
//! (and every row) across by channel. On this project's 2-core VM that cost 28 context
//! switches and about 1 ms of CPU per FHIR Patient read (`perf stat -e context-switches`
//! while `benches/fhir/run.sh` drove it), where the SQL itself took microseconds. Here the
//! same file is opened by a few rusqlite connections (the same bundled SQLite library that
//! sqlx links, `libsqlite3-sys` 0.37), and:
//! - the per-request reads (a person by common ID or id, a person's links, a facility) run on
//!   the calling thread: WAL readers do not wait for writers, and the rows are in the page cache;
//! - the audit group commit runs on a blocking thread (it waits for fsync and may wait for the
//!   write lock), one hop per batch instead of several per statement.
//!
//! Everything else stays on sqlx, and PostgreSQL never comes here. Both drivers share SQLite's
//! file locks, so transactions of either serialise as before.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use renkei_core::audit::{self, AuditEvent, AuditKey};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use crate::identity::{Person, PersonLink};
use crate::{Facility, Result, StoreError};

/// Connections kept open between uses (more are opened when many callers come at once).
const IDLE: usize = 8;

/// A few in-process connections to the store's SQLite file, and the audit writer.
pub(crate) struct Direct {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    audit: Mutex<std::sync::mpsc::Sender<AuditRequest>>,
}

type AuditRequest = (
    Vec<AuditEvent>,
    tokio::sync::oneshot::Sender<Result<Vec<i64>>>,
);

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct").finish_non_exhaustive()
    }
}

fn failed(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        rusqlite::Error::SqliteFailure(code, _)
            if matches!(
                code.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable("the database is busy".into())
        }
        // SQLite's messages can quote values; keep only the code.
        rusqlite::Error::SqliteFailure(code, _) => StoreError::Internal(format!(
            "database refused the statement (code {})",
            code.extended_code
        )),
        other => StoreError::Internal(format!("database error ({})", kind(&other))),
    }
}

fn kind(e: &rusqlite::Error) -> &'static str {
    match e {
        rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..) => {
            "a value could not be decoded"
        }
        rusqlite::Error::InvalidColumnIndex(_) | rusqlite::Error::InvalidColumnName(_) => {
            "no such column"
        }
        _ => "statement failed",
    }
}

impl Direct {
    /// Opens the file sqlx has already created and migrated.
    pub(crate) fn open(path: PathBuf, key: AuditKey) -> Result<Direct> {
        let (audit, queue) = std::sync::mpsc::channel();
        let d = Direct {
            path,
            idle: Mutex::new(Vec::new()),
            audit: Mutex::new(audit),
        };
        let first = d.connect()?;
        d.give_back(first);
        let writer = d.connect()?;
        std::thread::Builder::new()
            .name("renkei-audit".into())
            .spawn(move || write_audits(writer, key, queue))
            .map_err(|_| StoreError::Unavailable("the audit writer could not start".into()))?;
        Ok(d)
    }

    /// Appends `events` to the audit chain, durably, in order: group commit on the audit
    /// writer's thread. Whatever callers send while a commit is on its way to disk goes in
    /// the next one, together.
    pub(crate) async fn append_audits_grouped(&self, events: Vec<AuditEvent>) -> Result<Vec<i64>> {
        let (done, result) = tokio::sync::oneshot::channel();
        let sent = match self.audit.lock() {
            Ok(q) => q.send((events, done)),
            Err(poisoned) => poisoned.into_inner().send((events, done)),
        };
        if sent.is_err() {
            return Err(StoreError::Unavailable("the audit writer stopped".into()));
        }
        result
            .await
            .map_err(|_| StoreError::Unavailable("the audit writer stopped".into()))?
    }

    fn connect(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Unavailable(format!("SQLite を開けません ({})", kind(&e))))?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(failed)?;
        // As the sqlx pool: a commit is on disk before it is acknowledged. No mmap: the file
        // grows with every commit, and remapping it cost TLB shootdowns on the create path.
        conn.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -16384; PRAGMA temp_store = memory;",
        )
        .map_err(failed)?;
        Ok(conn)
    }

    fn take(&self) -> Result<Connection> {
        let idle = match self.idle.lock() {
            Ok(mut idle) => idle.pop(),
            Err(poisoned) => poisoned.into_inner().pop(),
        };
        match idle {
            Some(c) => Ok(c),
            None => self.connect(),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = match self.idle.lock() {
            Ok(idle) => idle,
            Err(poisoned) => poisoned.into_inner(),
        };
        if idle.len() < IDLE && conn.is_autocommit() {
            idle.push(conn);
        }
    }

    /// Runs `f` on a connection of the pool, on this thread.
    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.take()?;
        let out = f(&conn);
        self.give_back(conn);
        out.map_err(failed)
    }

    pub(crate) fn person_by_common_id(&self, common_id: &str) -> Result<Option<Person>> {
        self.person_where("SELECT id, common_id, kanji_name, kana_name, birth_date, sex, issuer_facility, created_at, merged_into, phone, postal_code, address FROM persons WHERE common_id = ?1", &common_id)
    }

    pub(crate) fn person(&self, id: i64) -> Result<Option<Person>> {
        self.person_where("SELECT id, common_id, kanji_name, kana_name, birth_date, sex, issuer_facility, created_at, merged_into, phone, postal_code, address FROM persons WHERE id = ?1", &id)
    }

    fn person_where(&self, sql: &str, value: &dyn rusqlite::ToSql) -> Result<Option<Person>> {
        self.with(|c| c.prepare_cached(sql)?.query_row([value], person).optional())
    }

    pub(crate) fn links_of(&self, person_id: i64) -> Result<Vec<PersonLink>> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, person_id, facility_id, patient_local_id, source, linked_at, linked_by, unlinked_at, active FROM person_links WHERE person_id = ?1 ORDER BY id",
            )?;
            let rows = st.query_map(params![person_id], |r| {
                Ok(PersonLink {
                    id: r.get(0)?,
                    person_id: r.get(1)?,
                    facility_id: r.get(2)?,
                    patient_local_id: r.get(3)?,
                    source: r.get(4)?,
                    linked_at: r.get(5)?,
                    linked_by: r.get(6)?,
                    unlinked_at: r.get(7)?,
                    active: r.get(8)?,
                })
            })?;
            rows.collect()
        })
    }

    pub(crate) fn facility(&self, id: i64) -> Result<Option<Facility>> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, code, facility_type, name, name_kana, postal_code, address, phone, discloses, issues_hm_card, issues_disclosure_card, max_accounts, active, created_at, updated_at FROM facilities WHERE id = ?1",
            )?;
            st.query_row(params![id], |r| {
                Ok(Facility {
                    id: r.get(0)?,
                    code: r.get(1)?,
                    facility_type: r.get(2)?,
                    name: r.get(3)?,
                    name_kana: r.get(4)?,
                    postal_code: r.get(5)?,
                    address: r.get(6)?,
                    phone: r.get(7)?,
                    discloses: r.get(8)?,
                    issues_hm_card: r.get(9)?,
                    issues_disclosure_card: r.get(10)?,
                    max_accounts: r.get(11)?,
                    active: r.get(12)?,
                    created_at: r.get(13)?,
                    updated_at: r.get(14)?,
                })
            })
            .optional()
        })
    }
}

/// The audit writer: takes every request waiting, commits them in one transaction (one fsync),
/// answers each with its sequence numbers, and goes on while requests keep coming. Ends when
/// the store is dropped.
fn write_audits(
    mut conn: Connection,
    key: AuditKey,
    queue: std::sync::mpsc::Receiver<AuditRequest>,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while let Ok(more) = queue.try_recv() {
            batch.push(more);
        }
        let sizes: Vec<usize> = batch.iter().map(|(e, _)| e.len()).collect();
        let mut events = Vec::with_capacity(sizes.iter().sum());
        let mut waiters = Vec::with_capacity(batch.len());
        for (e, w) in batch {
            events.extend(e);
            waiters.push(w);
        }
        match append_audits(&mut conn, &key, events) {
            Ok(seqs) => {
                let mut rest = seqs.as_slice();
                for (waiter, n) in waiters.into_iter().zip(sizes) {
                    let (mine, after) = rest.split_at(n.min(rest.len()));
                    rest = after;
                    let _ = waiter.send(Ok(mine.to_vec()));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for waiter in waiters {
                    let _ = waiter.send(Err(StoreError::Unavailable(message.clone())));
                }
            }
        }
    }
}

/// Appends `events` to the audit chain in one transaction, in order; returns their sequence
/// numbers.
fn append_audits(
    conn: &mut Connection,
    key: &AuditKey,
    events: Vec<AuditEvent>,
) -> Result<Vec<i64>> {
    (|| {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (mut seq, mut hash): (i64, String) = tx
            .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let mut seqs = Vec::with_capacity(events.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO audit_events (seq, at, user_id, login_id, facility_id, profession, action, target, outcome, detail, client, emergency, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            for event in events {
                let l = audit::link(key, seq, &hash, event);
                let e = &l.event;
                insert.execute(params![
                    l.seq,
                    e.at.0,
                    e.user_id,
                    e.login_id,
                    e.facility_id,
                    e.profession,
                    e.action,
                    e.target,
                    e.outcome.key(),
                    e.detail,
                    e.client,
                    e.emergency,
                    l.prev_hash,
                    l.hash,
                ])?;
                seqs.push(l.seq);
                (seq, hash) = (l.seq, l.hash);
            }
        }
        tx.prepare_cached("UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1")?
            .execute(params![seq, hash])?;
        tx.commit()?;
        Ok(seqs)
    })()
    .map_err(failed)
}

fn person(r: &Row<'_>) -> rusqlite::Result<Person> {
    Ok(Person {
        id: r.get(0)?,
        common_id: r.get(1)?,
        kanji_name: r.get(2)?,
        kana_name: r.get(3)?,
        birth_date: r.get(4)?,
        sex: r.get(5)?,
        issuer_facility: r.get(6)?,
        created_at: r.get(7)?,
        merged_into: r.get(8)?,
        phone: r.get(9)?,
        postal_code: r.get(10)?,
        address: r.get(11)?,
    })
}
