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

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use renkei_core::audit::{self, AuditEvent, AuditKey};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use crate::clinical::{
    self, IncomingMessage, IngestJob, IngestOutcome, NewAttachment, NewItem, PatientRecord,
};
use crate::identity::{Person, PersonLink};
use crate::{Facility, Result, StoreError, spool};

/// Connections kept open between uses (more are opened when many callers come at once).
const IDLE: usize = 8;

/// A spool file this long is retired (deleted once its events are in the chain) and a new one
/// begun.
const SPOOL_LIMIT: u64 = 64 << 20;

/// A few in-process connections to the store's SQLite file, and the audit writer.
pub(crate) struct Direct {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// The FHIR create group commit's connection, always the same one: a connection keeps its
    /// page cache across its own commits but drops it after another connection's, and with
    /// the ingest taking whichever pooled connection was free, every group began by reading
    /// its index pages again (pread).
    ingest: Mutex<Option<Connection>>,
    /// The audit writer's queue, behind the spool file: events are written to the spool and
    /// sent to the writer under one lock, so the writer sees them in the file's order.
    audit: Mutex<Spool>,
    /// Dropped with the store, which ends the checkpointer (see [`checkpoint`]).
    _checkpointer: std::sync::mpsc::Sender<()>,
}

/// This process's current spool file and the audit writer's queue.
struct Spool {
    dir: PathBuf,
    /// `<pid>-<start time>`: with the generation, a name no other process or run uses.
    stem: String,
    generation: u32,
    current: Arc<SpoolFile>,
    len: u64,
    line: String,
    queue: Arc<AuditQueue>,
}

/// A spool file, locked (`flock`) while this process may still commit from it, so that a
/// store opening the same database elsewhere does not replay it.
struct SpoolFile {
    name: String,
    file: File,
    /// How far the file is written (bytes).
    written: std::sync::atomic::AtomicU64,
    /// How far it is known to be on disk (fdatasync), and whether a sync is running.
    sync: Mutex<SyncState>,
    synced: tokio::sync::Notify,
    /// How many fdatasyncs the file has had (groups, not reads).
    syncs: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct SyncState {
    done: u64,
    running: bool,
}

impl SpoolFile {
    fn new(name: String, file: File) -> SpoolFile {
        SpoolFile {
            name,
            file,
            written: std::sync::atomic::AtomicU64::new(0),
            sync: Mutex::new(SyncState::default()),
            synced: tokio::sync::Notify::new(),
            syncs: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Returns once the file is on disk up to `end`: a group sync. The first caller to find
    /// no sync running syncs everything written by then (one fdatasync) and wakes the others;
    /// whoever wrote after that waits for the next. So a read's audit record survives a power
    /// loss before the read is answered, at one fdatasync per group of concurrent reads.
    async fn sync_to(self: &Arc<Self>, end: u64) -> std::io::Result<()> {
        loop {
            let notified = self.synced.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let lead = {
                let mut state = lock(&self.sync);
                if state.done >= end {
                    return Ok(());
                }
                !std::mem::replace(&mut state.running, true)
            };
            if !lead {
                notified.await;
                continue;
            }
            let target = self.written.load(std::sync::atomic::Ordering::Acquire);
            let file = self.clone();
            let result = tokio::task::spawn_blocking(move || {
                file.syncs
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                file.file.sync_data()
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            {
                let mut state = lock(&self.sync);
                state.running = false;
                if result.is_ok() {
                    state.done = state.done.max(target);
                }
            }
            self.synced.notify_waiters();
            result?;
        }
    }
}

enum AuditRequest {
    /// Events to commit; the sender learns their sequence numbers once they are on disk.
    Durable(
        Vec<AuditEvent>,
        tokio::sync::oneshot::Sender<Result<Vec<i64>>>,
    ),
    /// Events already in `file` up to byte `end`: commit them with the next group.
    Spooled {
        events: Vec<AuditEvent>,
        file: Arc<SpoolFile>,
        end: u64,
    },
    /// A spool file nothing more goes to: delete it once what came before is committed.
    Retired(Arc<SpoolFile>),
}

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

/// A spool file error, without the path (it names the data directory, nothing more, but the
/// messages of this module never carry paths or values).
fn spool_failed(what: &str, e: &std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("audit spool: {what} ({:?})", e.kind()))
}

/// Where a database's spool files live: a folder beside it.
fn spool_dir(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".audit-spool");
    db.with_file_name(name)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Spool {
    fn create(dir: &Path, stem: &str, generation: u32) -> Result<Arc<SpoolFile>> {
        let name = format!("{stem}-{generation}.spool");
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(dir.join(&name))
            .map_err(|e| spool_failed("cannot create a spool file", &e))?;
        file.try_lock().map_err(|_| {
            StoreError::Unavailable("audit spool: cannot lock a new spool file".into())
        })?;
        // The new file's name, on disk too: a synced file nobody can find is no record.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| spool_failed("cannot sync the spool folder", &e))?;
        Ok(Arc::new(SpoolFile::new(name, file)))
    }

    /// Writes `self.line` to the end of the current file; returns the file's new length. A
    /// failed write is cut off again, so that the file holds whole records only.
    fn append(&mut self) -> std::io::Result<u64> {
        let mut file = &self.current.file;
        match file.write_all(self.line.as_bytes()) {
            Ok(()) => {
                self.len += self.line.len() as u64;
                self.current
                    .written
                    .store(self.len, std::sync::atomic::Ordering::Release);
                Ok(self.len)
            }
            Err(e) => {
                let _ = self.current.file.set_len(self.len);
                Err(e)
            }
        }
    }

    /// Begins the next spool file; the writer deletes the current one once it is committed.
    fn rotate(&mut self) -> Result<()> {
        let next = Spool::create(&self.dir, &self.stem, self.generation + 1)?;
        self.generation += 1;
        let old = std::mem::replace(&mut self.current, next);
        self.len = 0;
        self.queue.send(AuditRequest::Retired(old))
    }
}

impl Drop for Spool {
    /// Tells the writer that the current file is done with too (it goes once it is committed).
    fn drop(&mut self) {
        let _ = self.queue.send(AuditRequest::Retired(self.current.clone()));
        self.queue.close();
    }
}

impl Direct {
    /// Opens the file sqlx has already created and migrated; replays the audit spools that
    /// stopped processes left behind, then starts this store's audit writer.
    pub(crate) fn open(path: PathBuf, key: AuditKey) -> Result<Direct> {
        let queue = Arc::new(AuditQueue::default());
        let requests = queue.clone();
        let (checkpointer, stop) = std::sync::mpsc::channel();
        let dir = spool_dir(&path);
        std::fs::create_dir_all(&dir).map_err(|e| spool_failed("cannot create the folder", &e))?;
        let mut writer = connect(&path)?;
        recover(&mut writer, &key, &dir)?;
        let started = std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let stem = format!("{}-{started}", std::process::id());
        let current = Spool::create(&dir, &stem, 0)?;
        let d = Direct {
            path,
            idle: Mutex::new(Vec::new()),
            ingest: Mutex::new(None),
            audit: Mutex::new(Spool {
                dir: dir.clone(),
                stem,
                generation: 0,
                current,
                len: 0,
                line: String::new(),
                queue,
            }),
            _checkpointer: checkpointer,
        };
        let first = d.connect()?;
        d.give_back(first);
        let checkpointer = d.connect()?;
        std::thread::Builder::new()
            .name("renkei-checkpoint".into())
            .spawn(move || checkpoint(checkpointer, stop))
            .map_err(|_| StoreError::Unavailable("the checkpointer could not start".into()))?;
        std::thread::Builder::new()
            .name("renkei-audit".into())
            .spawn(move || write_audits(writer, key, dir, requests))
            .map_err(|_| StoreError::Unavailable("the audit writer could not start".into()))?;
        Ok(d)
    }

    /// Appends `events` to the audit chain, durably, in order: group commit on the audit
    /// writer's thread. Whatever callers send while a commit is on its way to disk goes in
    /// the next one, together.
    pub(crate) async fn append_audits_grouped(&self, events: Vec<AuditEvent>) -> Result<Vec<i64>> {
        let (done, result) = tokio::sync::oneshot::channel();
        lock(&self.audit)
            .queue
            .send(AuditRequest::Durable(events, done))?;
        result
            .await
            .map_err(|_| StoreError::Unavailable("the audit writer stopped".into()))?
    }

    /// Records `events` in this process's spool file, on disk before this returns (a group
    /// fdatasync shared by the reads waiting at that moment: a power loss does not lose
    /// them), and hands them to the audit writer, which puts them in the chain with its next
    /// group commit, within [`SPOOL_LINGER`] and a commit. Does not wait for that commit.
    /// Should the spool file refuse the write or the sync, the events are committed durably
    /// before this returns.
    pub(crate) async fn spool_audits(&self, events: Vec<AuditEvent>) -> Result<()> {
        let mut written = None;
        let refused = {
            let mut s = lock(&self.audit);
            let mut line = std::mem::take(&mut s.line);
            line.clear();
            for e in &events {
                spool::encode(e, &mut line);
            }
            s.line = line;
            match s.append() {
                Ok(end) => {
                    let file = s.current.clone();
                    written = Some((file.clone(), end));
                    s.queue.send(AuditRequest::Spooled { events, file, end })?;
                    if s.len >= SPOOL_LIMIT {
                        s.rotate()?;
                    }
                    None
                }
                Err(e) => {
                    tracing::warn!(error = ?e.kind(), "the audit spool refused a write: committing the event before answering");
                    Some(events)
                }
            }
        };
        if let Some(events) = refused {
            self.append_audits_grouped(events).await?;
        }
        if let Some((file, end)) = written
            && let Err(e) = file.sync_to(end).await
        {
            tracing::warn!(error = ?e.kind(), "the audit spool could not be synced: waiting for the commit before answering");
            self.settle_audits().await?;
        }
        Ok(())
    }

    /// Waits until every event spooled so far is in the chain (before the audit trail is read).
    pub(crate) async fn settle_audits(&self) -> Result<()> {
        self.append_audits_grouped(Vec::new()).await.map(|_| ())
    }

    fn connect(&self) -> Result<Connection> {
        connect(&self.path)
    }

    fn take(&self) -> Result<Connection> {
        let idle = lock(&self.idle).pop();
        match idle {
            Some(c) => Ok(c),
            None => self.connect(),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = lock(&self.idle);
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

/// An in-process connection to the database file.
fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Unavailable(format!("SQLite を開けません ({})", kind(&e))))?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(failed)?;
    // As the sqlx pool: a commit is on disk before it is acknowledged. No mmap: the file
    // grows with every commit, and remapping it cost TLB shootdowns on the create path.
    // No checkpoints on commit: the checkpointer thread does them (see CHECKPOINT_EVERY).
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -16384; PRAGMA temp_store = memory; PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864;",
    )
    .map_err(failed)?;
    Ok(conn)
}

/// How often the checkpointer copies what the WAL holds into the database file. Commits do not
/// checkpoint on this file (`wal_autocheckpoint = 0` on every connection): SQLite's default runs
/// the checkpoint inside the commit that takes the WAL past 1,000 pages, and that commit, with
/// every writer queued behind it, then waits while the pages are copied and the database file
/// fsynced (4 ms each on this VM's disk). Run on its own thread, the copy overlaps the next
/// commits (FHIR creates, 2,000 patients, wrk -c8: 2,615-2,871/s with a p99 up to 147 ms
/// checkpointing on commit, 3,006-3,355/s with a p99 of 10-11 ms here); a PASSIVE checkpoint
/// neither waits for nor blocks readers and writers.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The checkpointer: a PASSIVE checkpoint every [`CHECKPOINT_EVERY`] (one with nothing new to
/// copy costs no write), until the store is dropped. When the WAL was wholly copied, the next
/// commit starts it again from the beginning; `journal_size_limit` then cuts a WAL that a burst
/// grew back to 64 MiB.
fn checkpoint(conn: Connection, stop: std::sync::mpsc::Receiver<()>) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY)
    {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %failed(e), "the WAL checkpoint failed; it is tried again");
        }
    }
}

/// The audit writer's queue. A spooled read does not wake the writer while it gathers or
/// commits a group (with a channel, every read woke it: a context switch each); only the first
/// request after the writer went idle, a durable request (someone waits for it) or a full group
/// does.
#[derive(Default)]
struct AuditQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

struct QueueState {
    requests: Vec<AuditRequest>,
    /// The writer waits for the first request of its next group.
    idle: bool,
    /// A durable request is among `requests`.
    urgent: bool,
    /// How many requests fill the group the writer is gathering (see [`AuditQueue::linger`]).
    full_at: usize,
    /// No more requests come (the store is gone), or the writer stopped.
    closed: bool,
}

impl Default for QueueState {
    fn default() -> Self {
        QueueState {
            requests: Vec::new(),
            idle: false,
            urgent: false,
            full_at: SPOOL_GROUP,
            closed: false,
        }
    }
}

impl AuditQueue {
    fn send(&self, request: AuditRequest) -> Result<()> {
        let mut s = lock(&self.state);
        if s.closed {
            return Err(StoreError::Unavailable("the audit writer stopped".into()));
        }
        s.urgent |= matches!(request, AuditRequest::Durable(..));
        s.requests.push(request);
        let wake = s.idle || s.urgent || s.requests.len() >= s.full_at;
        drop(s);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    fn close(&self) {
        lock(&self.state).closed = true;
        self.ready.notify_one();
    }

    /// The writer: waits for at least one request (up to `timeout`, if given) and takes all
    /// there are; also says whether more may come.
    fn first(&self, timeout: Option<Duration>) -> (Vec<AuditRequest>, bool) {
        let mut s = lock(&self.state);
        let deadline = timeout.map(|t| Instant::now() + t);
        while s.requests.is_empty() && !s.closed {
            s.idle = true;
            s = match deadline {
                None => self.ready.wait(s).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.ready
                        .wait_timeout(s, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
        s.idle = false;
        s.urgent = false;
        (std::mem::take(&mut s.requests), !s.closed)
    }

    /// The writer: waits until `deadline`, a durable request or a full group, then takes all
    /// requests there are; also says whether more may come.
    fn linger(&self, deadline: Instant, have: usize) -> (Vec<AuditRequest>, bool) {
        let mut s = lock(&self.state);
        // Senders wake the writer when the group is full, so they must know what full is.
        s.full_at = SPOOL_GROUP.saturating_sub(have);
        while !s.urgent && !s.closed && s.requests.len() < s.full_at {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = self
                .ready
                .wait_timeout(s, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        s.urgent = false;
        s.full_at = SPOOL_GROUP;
        (std::mem::take(&mut s.requests), !s.closed)
    }
}

/// Marks the queue closed when the writer ends, however it ends, so that senders learn it.
struct Closes(Arc<AuditQueue>);

impl Drop for Closes {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// How long the audit writer waits for more events before it commits a group of spooled reads
/// only. Nobody waits for such a commit (the events are in the spool file already), and fewer,
/// larger commits cost far less: each commit writes its own copy of every page it touches into
/// the WAL (one leaf of the `target` index per event, as targets are scattered), fsyncs, and
/// makes every in-process reader drop its page cache. FHIR Patient reads (2,000 patients,
/// wrk -c8): committing as soon as the last commit ended made 2,350 commits/s of 7 events,
/// 91 us of CPU per read and 16,000 reads/s; waiting 20 ms, 60 us and 24,000/s; 100 ms,
/// 56 us and 27,000/s. It is also the longest a spooled read normally stays out of the chain;
/// only a power loss (or a crash of the OS) within it loses the event, as the spool file is in
/// the page cache. PostgreSQL's asynchronous commit accepts a window of the same order.
const SPOOL_LINGER: Duration = Duration::from_millis(100);

/// Enough events for one commit however soon the linger ends.
const SPOOL_GROUP: usize = 4096;

/// Who waits for a durable request, and where its events are in the group.
type Waiter = (tokio::sync::oneshot::Sender<Result<Vec<i64>>>, usize, usize);

/// The group the audit writer is gathering.
struct Group<'a> {
    events: &'a mut Vec<AuditEvent>,
    waiters: &'a mut Vec<Waiter>,
    marks: &'a mut HashMap<String, (Arc<SpoolFile>, u64)>,
    retired: &'a mut Vec<Arc<SpoolFile>>,
}

impl Group<'_> {
    fn add(&mut self, request: AuditRequest) {
        match request {
            AuditRequest::Durable(e, waiter) => {
                self.waiters.push((waiter, self.events.len(), e.len()));
                self.events.extend(e);
            }
            AuditRequest::Spooled {
                events: e,
                file,
                end,
            } => {
                self.events.extend(e);
                self.marks.insert(file.name.clone(), (file, end));
            }
            AuditRequest::Retired(file) => self.retired.push(file),
        }
    }
}

/// The audit writer: takes every request waiting, commits their events in one transaction
/// (one fsync) together with how far each spool file is now in the chain, answers the durable
/// requests with their sequence numbers, and goes on while requests keep coming. Spooled events
/// whose commit failed are tried again with the next group (they are still in their spool
/// file should the process stop first). Ends when the store is dropped.
fn write_audits(mut conn: Connection, key: AuditKey, dir: PathBuf, queue: Arc<AuditQueue>) {
    let _closes = Closes(queue.clone());
    // Spooled events not yet in the chain, and how far into which file they reach.
    let mut carried: Vec<AuditEvent> = Vec::new();
    let mut marks: HashMap<String, (Arc<SpoolFile>, u64)> = HashMap::new();
    let mut retired: Vec<Arc<SpoolFile>> = Vec::new();
    let mut open = true;
    while open {
        // Something left to retry: come back to it even when nothing new arrives.
        let retry =
            (!carried.is_empty() || !retired.is_empty()).then_some(Duration::from_millis(200));
        let (requests, more) = queue.first(retry);
        open = more;
        let mut events = std::mem::take(&mut carried);
        // Durable requests: who waits, and where its events are in `events`.
        let mut waiters = Vec::new();
        let mut group = Group {
            events: &mut events,
            waiters: &mut waiters,
            marks: &mut marks,
            retired: &mut retired,
        };
        requests.into_iter().for_each(|r| group.add(r));
        // Only spooled reads so far: nobody waits for this commit, so it also takes what comes
        // in the next few milliseconds (see SPOOL_LINGER). A durable request ends the wait.
        if open && group.waiters.is_empty() && !group.events.is_empty() {
            let (requests, more) = queue.linger(Instant::now() + SPOOL_LINGER, group.events.len());
            open = more;
            requests.into_iter().for_each(|r| group.add(r));
        }
        let done: Vec<(&str, u64)> = marks
            .values()
            .map(|(f, end)| (f.name.as_str(), *end))
            .collect();
        let result = if events.is_empty() && done.is_empty() {
            Ok(Vec::new())
        } else {
            append_audits(&mut conn, &key, &events, &done)
        };
        match result {
            Ok(seqs) => {
                for (waiter, at, n) in waiters {
                    let _ = waiter.send(Ok(seqs.get(at..at + n).unwrap_or_default().to_vec()));
                }
                marks.clear();
                // Retired files are wholly in the chain now (they were sent after their events).
                for file in retired.drain(..) {
                    forget_spool(&conn, &dir, &file.name);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the audit writer could not commit; spooled events are kept and tried again");
                let message = e.to_string();
                let mut durable = vec![false; events.len()];
                for (waiter, at, n) in waiters {
                    durable[at..at + n].iter_mut().for_each(|d| *d = true);
                    let _ = waiter.send(Err(StoreError::Unavailable(message.clone())));
                }
                carried = events
                    .into_iter()
                    .zip(durable)
                    .filter(|(_, d)| !d)
                    .map(|(e, _)| e)
                    .collect();
            }
        }
    }
    // The store is gone: this process's spool files that are wholly in the chain go too (a
    // file with events still out stays, and the next store to open replays it).
    if carried.is_empty() {
        for file in retired {
            forget_spool(&conn, &dir, &file.name);
        }
    }
}

/// Deletes a spool file whose events are all in the chain, then its row.
fn forget_spool(conn: &Connection, dir: &Path, name: &str) {
    if let Err(e) = std::fs::remove_file(dir.join(name))
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = ?e.kind(), "a spent audit spool file could not be deleted");
        return;
    }
    if let Err(e) = conn.execute("DELETE FROM audit_spool WHERE name = ?1", params![name]) {
        tracing::warn!(error = %failed(e), "a spent audit spool file's row could not be deleted");
    }
}

/// Replays into the chain the spool files that no live process holds (a process that stopped
/// before its audit writer committed everything it had spooled), then deletes them. Returns
/// how many events were replayed.
fn recover(conn: &mut Connection, key: &AuditKey, dir: &Path) -> Result<usize> {
    let entries = std::fs::read_dir(dir).map_err(|e| spool_failed("cannot list the folder", &e))?;
    let mut replayed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| spool_failed("cannot list the folder", &e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !name.ends_with(".spool") {
            continue;
        }
        let mut file = match OpenOptions::new().read(true).write(true).open(entry.path()) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(spool_failed("cannot open a spool file", &e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            // Another store (this process or another) still writes it.
            Err(std::fs::TryLockError::WouldBlock) => continue,
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(spool_failed("cannot lock a spool file", &e));
            }
        }
        let done: u64 = conn
            .query_row(
                "SELECT done FROM audit_spool WHERE name = ?1",
                params![name],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(failed)?
            .map_or(0, |d| u64::try_from(d).unwrap_or(0));
        let mut rest = Vec::new();
        file.seek(SeekFrom::Start(done))
            .and_then(|_| file.read_to_end(&mut rest))
            .map_err(|e| spool_failed("cannot read a spool file", &e))?;
        let (events, used) = spool::decode_all(&rest);
        if !events.is_empty() {
            append_audits(conn, key, &events, &[(name.as_str(), done + used as u64)])?;
            replayed += events.len();
            tracing::warn!(
                events = events.len(),
                "audit events a stopped process had spooled are now in the chain"
            );
        }
        if used < rest.len() {
            tracing::warn!(
                bytes = rest.len() - used,
                "an audit spool file ended in a torn record; it was left out"
            );
        }
        forget_spool(conn, dir, &name);
    }
    // Rows of files deleted before their rows were (a stop in between) are spent as well.
    let on_disk: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| spool_failed("cannot list the folder", &e))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let rows: Vec<String> = conn
        .prepare("SELECT name FROM audit_spool")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(failed)?;
    for row in rows.iter().filter(|r| !on_disk.contains(r)) {
        conn.execute("DELETE FROM audit_spool WHERE name = ?1", params![row])
            .map_err(failed)?;
    }
    Ok(replayed)
}

/// Appends `events` to the audit chain in one transaction, in order, and records how far each
/// spool file (`done`: name, end offset) is in the chain; returns the sequence numbers.
fn append_audits(
    conn: &mut Connection,
    key: &AuditKey,
    events: &[AuditEvent],
    done: &[(&str, u64)],
) -> Result<Vec<i64>> {
    (|| {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let seqs = append_in(&tx, key, events)?;
        {
            let mut mark = tx.prepare_cached(
                "INSERT INTO audit_spool (name, done) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET done = excluded.done",
            )?;
            for (name, end) in done {
                mark.execute(params![name, i64::try_from(*end).unwrap_or(i64::MAX)])?;
            }
        }
        tx.commit()?;
        Ok(seqs)
    })()
    .map_err(failed)
}

/// Appends `events` to the audit chain inside `tx`: the head is read and written once.
fn append_in(
    tx: &rusqlite::Transaction<'_>,
    key: &AuditKey,
    events: &[AuditEvent],
) -> rusqlite::Result<Vec<i64>> {
    let mut seqs = Vec::with_capacity(events.len());
    if events.is_empty() {
        return Ok(seqs);
    }
    let (mut seq, mut hash): (i64, String) = tx
        .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO audit_events (seq, at, user_id, login_id, facility_id, profession, action, target, outcome, detail, client, emergency, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?;
    for e in events {
        let next = seq + 1;
        let h = audit::chain_hash(key, next, &hash, e);
        insert.execute(params![
            next,
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
            hash,
            h,
        ])?;
        seqs.push(next);
        (seq, hash) = (next, h);
    }
    let mac = audit::head_mac(key, seq, &hash);
    tx.prepare_cached("UPDATE audit_head SET seq = ?1, hash = ?2, mac = ?3 WHERE id = 1")?
        .execute(params![seq, hash, mac])?;
    Ok(seqs)
}

impl Direct {
    /// [`Store::ingest_group`](crate::Store::ingest_group) on an in-process connection, on
    /// the calling (blocking) thread: the jobs' messages, then their audit events, in one
    /// transaction.
    pub(crate) fn ingest_group(
        &self,
        key: &AuditKey,
        received_at: i64,
        jobs: &[IngestJob],
        audit_of: impl Fn(usize, &[(IngestOutcome, i64)]) -> AuditEvent,
    ) -> Result<Vec<Vec<(IngestOutcome, i64)>>> {
        use futures_util::FutureExt;
        let mut slot = lock(&self.ingest);
        let conn = match &mut *slot {
            Some(c) => c,
            None => {
                let c = self.connect()?;
                // The ingest's IN lists and multi-row inserts come in one text per size.
                c.set_prepared_statement_cache_capacity(128);
                slot.insert(c)
            }
        };
        (|| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(failed)?;
            let mut sql = DirectTx(&tx);
            // Nothing in it waits: it completes on its first poll.
            let results = clinical::ingest_jobs(&mut sql, received_at, jobs)
                .now_or_never()
                .ok_or_else(|| StoreError::Internal("an in-process ingest waited".into()))??;
            let events: Vec<AuditEvent> = results
                .iter()
                .enumerate()
                .map(|(j, r)| audit_of(j, r))
                .collect();
            append_in(&tx, key, &events).map_err(failed)?;
            tx.commit().map_err(failed)?;
            Ok(results)
        })()
    }
}

/// The ingest's statements on an in-process transaction (SQLite's spelling of each).
struct DirectTx<'a>(&'a rusqlite::Transaction<'a>);

impl DirectTx<'_> {
    fn rows<T>(
        &self,
        sql: &str,
        values: &[&dyn rusqlite::ToSql],
        row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        (|| {
            let mut st = self.0.prepare_cached(sql)?;
            let rows = st.query_map(values, row)?;
            rows.collect::<rusqlite::Result<Vec<T>>>()
        })()
        .map_err(failed)
    }

    fn exec(&self, sql: &str, values: &[&dyn rusqlite::ToSql]) -> Result<()> {
        self.0
            .prepare_cached(sql)
            .and_then(|mut st| st.execute(values))
            .map(|_| ())
            .map_err(failed)
    }
}

impl clinical::IngestSql for DirectTx<'_> {
    async fn known(
        &mut self,
        facility_id: i64,
        source: &str,
        keys: &[&str],
    ) -> Result<Vec<(String, i64, String)>> {
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&facility_id, &source];
        values.extend(keys.iter().map(|k| k as &dyn rusqlite::ToSql));
        self.rows(&clinical::known_sql(keys.len()), &values, |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
    }

    async fn delete_of_messages(&mut self, table: &str, ids: &[i64]) -> Result<()> {
        let sql = clinical::delete_of_messages_sql(table, ids.len());
        let values: Vec<&dyn rusqlite::ToSql> =
            ids.iter().map(|i| i as &dyn rusqlite::ToSql).collect();
        self.exec(&sql, &values)
    }

    async fn rewrite_message(
        &mut self,
        id: i64,
        m: &IncomingMessage,
        received_at: i64,
    ) -> Result<()> {
        self.exec(
            clinical::REWRITE_MESSAGE,
            params![
                m.order_key,
                m.data_kind,
                m.condition.key(),
                m.occurred_at,
                m.content_hash,
                m.raw,
                m.message_type,
                m.control_id,
                m.patient_local_id,
                m.warnings,
                received_at,
                id
            ],
        )
    }

    async fn insert_messages(
        &mut self,
        facility_id: i64,
        received_at: i64,
        ms: &[&IncomingMessage],
    ) -> Result<Vec<(i64, String)>> {
        let keys: Vec<&str> = ms.iter().map(|m| m.condition.key()).collect();
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(ms.len() * 15);
        for (m, condition) in ms.iter().zip(&keys) {
            values.extend_from_slice(&[
                &facility_id,
                &m.source,
                &m.source_key,
                &m.order_key,
                &m.data_kind,
                condition,
                &m.occurred_at,
                &m.content_hash,
                &m.raw,
                &m.message_type,
                &m.control_id,
                &m.patient_local_id,
                &"pending",
                &m.warnings,
                &received_at,
            ]);
        }
        self.rows(&clinical::insert_messages_sql(ms.len()), &values, |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
    }

    async fn versions(
        &mut self,
        facility_id: i64,
        order_keys: &[&str],
    ) -> Result<Vec<(i64, String, String, String, String)>> {
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&facility_id];
        values.extend(order_keys.iter().map(|k| k as &dyn rusqlite::ToSql));
        self.rows(&clinical::versions_sql(order_keys.len()), &values, |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
    }

    async fn set_status(&mut self, status: &str, ids: &[i64]) -> Result<()> {
        let sql = clinical::set_status_sql(ids.len());
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&status];
        values.extend(ids.iter().map(|i| i as &dyn rusqlite::ToSql));
        self.exec(&sql, &values)
    }

    async fn deactivate_items(&mut self, message_ids: &[i64]) -> Result<()> {
        let values: Vec<&dyn rusqlite::ToSql> = message_ids
            .iter()
            .map(|i| i as &dyn rusqlite::ToSql)
            .collect();
        self.exec(&clinical::deactivate_sql(message_ids.len()), &values)
    }

    async fn insert_items(
        &mut self,
        facility_id: i64,
        rows: &[(i64, bool, &IncomingMessage, &NewItem)],
    ) -> Result<()> {
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(rows.len() * 13);
        for (id, active, m, item) in rows {
            values.extend_from_slice(&[
                id,
                &facility_id,
                &m.patient_local_id,
                &item.category,
                &item.code,
                &item.code_system,
                &item.display,
                &item.effective,
                &item.effective_date,
                &item.end_at,
                &item.status,
                &item.detail,
                active,
            ]);
        }
        self.exec(&clinical::insert_items_sql(rows.len()), &values)
    }

    async fn insert_attachment(&mut self, message_id: i64, a: &NewAttachment) -> Result<()> {
        self.exec(
            clinical::INSERT_ATTACHMENT,
            params![
                message_id,
                a.name,
                i64::try_from(a.bytes.len()).unwrap_or(i64::MAX),
                a.sha256,
                a.bytes
            ],
        )
    }

    async fn upsert_patient(
        &mut self,
        facility_id: i64,
        m: &IncomingMessage,
        d: &PatientRecord,
        message_id: i64,
    ) -> Result<()> {
        self.exec(
            clinical::UPSERT_PATIENT,
            params![
                facility_id,
                m.patient_local_id,
                d.kanji_name,
                d.kana_name,
                d.birth_date,
                d.sex,
                d.postal_code,
                d.address,
                d.phone,
                m.occurred_at,
                message_id
            ],
        )
    }

    async fn first_items(
        &mut self,
        facility_id: i64,
        source: &str,
        keys: &[&str],
    ) -> Result<Vec<(String, i64)>> {
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&facility_id, &source];
        values.extend(keys.iter().map(|k| k as &dyn rusqlite::ToSql));
        self.rows(&clinical::first_items_sql(keys.len()), &values, |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn durable() -> AuditRequest {
        let (waiter, _) = tokio::sync::oneshot::channel();
        AuditRequest::Durable(Vec::new(), waiter)
    }

    /// A request that is not durable (a spooled read wakes the writer no differently).
    fn retired(dir: &Path, n: u32) -> AuditRequest {
        AuditRequest::Retired(Spool::create(dir, "test", n).expect("spool file"))
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    /// Many reads spooled at once each return only once their bytes are synced, and they
    /// share the fdatasyncs (a group), rather than one each.
    #[test]
    fn concurrent_spooled_records_share_group_syncs() {
        let dir = tempfile::tempdir().expect("dir");
        let file = Spool::create(dir.path(), "test", 0).expect("spool file");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let written = Arc::new(Mutex::new(0u64));
        rt.block_on(async {
            let mut tasks = Vec::new();
            for _ in 0..64 {
                let (file, written) = (file.clone(), written.clone());
                tasks.push(tokio::spawn(async move {
                    let end = {
                        let mut w = lock(&written);
                        (&file.file).write_all(b"record\n").expect("write");
                        *w += 7;
                        file.written.store(*w, std::sync::atomic::Ordering::Release);
                        *w
                    };
                    file.sync_to(end).await.expect("sync");
                    assert!(
                        lock(&file.sync).done >= end,
                        "returned before its bytes were synced"
                    );
                }));
            }
            for t in tasks {
                t.await.expect("task");
            }
        });
        let syncs = file.syncs.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(lock(&file.sync).done, 64 * 7);
        assert!((1..64).contains(&syncs), "{syncs} syncs for 64 records");
    }

    #[test]
    fn a_durable_request_ends_the_linger() {
        let q = Arc::new(AuditQueue::default());
        let writer = {
            let q = q.clone();
            std::thread::spawn(move || q.linger(far(), 0))
        };
        // Sent before or after the writer began to wait, it is taken at once.
        q.send(durable()).expect("open");
        let (taken, open) = writer.join().expect("writer");
        assert_eq!(taken.len(), 1);
        assert!(open);
    }

    #[test]
    fn the_idle_writer_wakes_for_any_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = Arc::new(AuditQueue::default());
        let writer = {
            let q = q.clone();
            std::thread::spawn(move || q.first(None))
        };
        while !lock(&q.state).idle {
            std::thread::yield_now();
        }
        q.send(retired(dir.path(), 0)).expect("open");
        let (taken, open) = writer.join().expect("writer");
        assert_eq!(taken.len(), 1);
        assert!(open);
        assert!(!lock(&q.state).idle);
    }

    #[test]
    fn a_full_group_or_closing_ends_the_linger() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = Spool::create(dir.path(), "test", 0).expect("spool file");
        let q = Arc::new(AuditQueue::default());
        let writer = {
            let q = q.clone();
            std::thread::spawn(move || q.linger(far(), 10))
        };
        // The writer already waits (it holds 10 events): the request that fills the group
        // wakes it.
        while lock(&q.state).full_at != SPOOL_GROUP - 10 {
            std::thread::yield_now();
        }
        for _ in 0..SPOOL_GROUP - 10 {
            q.send(AuditRequest::Retired(file.clone())).expect("open");
        }
        let (taken, open) = writer.join().expect("writer");
        assert_eq!(taken.len(), SPOOL_GROUP - 10);
        assert!(open);

        let writer = {
            let q = q.clone();
            std::thread::spawn(move || q.linger(far(), 0))
        };
        q.send(retired(dir.path(), 1)).expect("open");
        q.close();
        let (taken, open) = writer.join().expect("writer");
        assert_eq!(taken.len(), 1, "what came before the close is still taken");
        assert!(!open);
    }

    #[test]
    fn requests_are_refused_once_the_writer_has_stopped() {
        let q = Arc::new(AuditQueue::default());
        drop(Closes(q.clone()));
        assert!(matches!(
            q.send(durable()),
            Err(StoreError::Unavailable(m)) if m.contains("stopped")
        ));
        // And an idle writer that is told so does not wait.
        assert!(!q.first(None).1);
    }
}
