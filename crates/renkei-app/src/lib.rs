//! Use cases of Renkei. Every operation takes the acting user ([`Actor`]), checks what that user
//! may do, calls the store, and writes the audit event in the same transaction as the change.
//!
//! Architecture invariant: the web layer and the binary reach storage only through this crate;
//! no function here returns a stored secret (password hash, TOTP secret) to a caller.

pub mod api;
pub mod audit;
pub mod auth;
mod card_proof;
pub mod consent;
pub mod directory;
mod error;
pub mod fhir;
pub mod fhir_directory;
pub mod files;
pub mod identity;
pub mod intake;
pub mod interop;
pub mod jahis_intake;
pub mod link_review;
pub mod medication;
pub mod notices;
mod secrets;
#[cfg(feature = "testing")]
pub mod testing;
mod throttle;
pub mod viewer;
pub mod wopi;
pub mod wopi_proof;

use std::sync::Arc;

use renkei_core::audit::{AuditEvent, AuditOutcome};
use renkei_core::facility::OidRoot;
use renkei_core::time::{Clock, Timestamp};
use renkei_core::user::Role;
pub use renkei_store::Backend;
use renkei_store::Store;

pub use error::{AppError, Result};

/// Settings that shape the use cases (all have defaults that suit a small network).
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// Name shown in the portal and in authenticator apps (`Renkei` by default).
    pub network_name: String,
    /// The region's prefecture number (34 for Hiroshima), used in facility OIDs.
    pub region_prefecture: u8,
    pub oid_root: OidRoot,
    /// A session unused for this long ends (guideline: no long idle sessions).
    pub session_idle_seconds: i64,
    /// Failed logins in a row before the account locks.
    pub lockout_threshold: i64,
    pub lockout_seconds: i64,
    /// Failed logins from one client address (any accounts) within `lockout_seconds` after
    /// which that address may not try again until the window passes: one host cannot guess
    /// across many accounts or lock them all. Generous, because a hospital's staff often share
    /// one NAT address.
    pub source_lockout_threshold: u32,
    /// Card reads (accepted or not) one user may make in ten minutes; more are refused and
    /// the operator is alerted.
    pub card_reads_per_user: u32,
    /// The same for all the users of one facility.
    pub card_reads_per_facility: u32,
    /// What a card typed by hand (no QR code) must come with.
    pub manual_card_check: ManualCardCheck,
    /// Whether every WOPI request must carry a valid proof (an office discovery document is
    /// configured): until its keys are loaded, WOPI requests are refused.
    pub wopi_proof_required: bool,
    /// The package insert (添付文書) of a drug by YJ code: a URL with `{yj}` in it, set by the
    /// operator (`package_insert_url`); empty, drug names are not linked.
    pub package_insert_url: String,
    /// The first retry of a failed webhook waits this long; each next one twice as long.
    pub webhook_retry_seconds: i64,
    /// The office server's editor URL (Collabora's `urlsrc` from its WOPI discovery, for example
    /// `https://office.example.jp/browser/dist/cool.html?`), to which `WOPISrc=` is appended;
    /// empty, HM-Box files are not edited in place.
    pub office_url: String,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            network_name: "Renkei".to_string(),
            region_prefecture: 34,
            oid_root: OidRoot::default(),
            session_idle_seconds: 30 * 60,
            lockout_threshold: 5,
            lockout_seconds: 15 * 60,
            source_lockout_threshold: 50,
            card_reads_per_user: 30,
            card_reads_per_facility: 120,
            manual_card_check: ManualCardCheck::Either,
            wopi_proof_required: false,
            package_insert_url: String::new(),
            webhook_retry_seconds: 60,
            office_url: String::new(),
        }
    }
}

/// The application: a store, a clock and the configuration. Cheap to clone.
#[derive(Clone)]
pub struct App {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: Arc<AppConfig>,
    /// Audit events waiting for the next group commit (see [`App::append_audit`]).
    audit_queue: Arc<GroupQueue<AuditEvent, i64>>,
    /// FHIR submissions waiting for the next group commit (see [`App::fhir_write`]).
    write_queue: Arc<GroupQueue<WriteJob, WriteResult>>,
    /// Bearer tokens recently looked up (see [`App::api_caller`]).
    pub(crate) token_cache: Arc<api::TokenCache>,
    /// Where file bytes live (consultation cases, HM-Box); see [`App::with_objects`].
    objects: Option<renkei_store::objects::Objects>,
    busy_uploads: Arc<files::BusyUploads>,
    /// Failed logins per client address (see [`AppConfig::source_lockout_threshold`]).
    pub(crate) login_sources: Arc<throttle::WindowCounts>,
    /// Card reads per user and per facility (see [`AppConfig::card_reads_per_user`]).
    pub(crate) card_reads: Arc<throttle::WindowCounts>,
    /// The office server's WOPI proof keys, from its discovery document (see
    /// [`App::set_wopi_proof_keys`]).
    wopi_keys: Arc<std::sync::RwLock<Option<wopi_proof::ProofKeys>>>,
}

/// What proves, for a card typed by hand, that the patient or the card is present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManualCardCheck {
    /// The verification code printed on the card.
    Code,
    /// The patient's name and birth date, matching the person.
    NameAndBirthDate,
    /// Either of them.
    Either,
}

type Waiter<R> = tokio::sync::oneshot::Sender<std::result::Result<R, String>>;

/// Work waiting for the next group commit, and the lock of whoever is committing.
pub(crate) struct GroupQueue<J, R> {
    pending: std::sync::Mutex<Vec<(J, Waiter<R>)>>,
    writer: Arc<tokio::sync::Mutex<()>>,
    /// Told whenever a job joins `pending` (see [`GroupQueue::gather`]).
    joined: tokio::sync::Notify,
    /// How many jobs the last group committed.
    last: std::sync::atomic::AtomicUsize,
}

impl<J, R> Default for GroupQueue<J, R> {
    fn default() -> Self {
        GroupQueue {
            pending: std::sync::Mutex::new(Vec::new()),
            writer: Arc::default(),
            joined: tokio::sync::Notify::new(),
            last: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

/// The longest a writer waits for the callers of the last group to join the next one.
const GATHER: std::time::Duration = std::time::Duration::from_millis(1);

impl<J: Send + 'static, R: Send + 'static> GroupQueue<J, R> {
    /// Group commit: `job` joins the queue, and whoever holds the writer lock next runs
    /// everything queued through `run` (one transaction, one fsync) and hands each job its
    /// own result. `run` goes on in a task of its own, so a caller that goes away (a dropped
    /// connection) does not cut short the others' commit.
    pub(crate) async fn submit<F, Fut>(&self, job: J, run: F) -> std::result::Result<R, String>
    where
        F: FnOnce(Vec<J>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = std::result::Result<Vec<R>, String>> + Send + 'static,
    {
        let (done, mut result) = tokio::sync::oneshot::channel();
        self.pending().push((job, done));
        self.joined.notify_one();
        // Either another writer's batch takes this job (and its result comes), or this caller
        // gets the lock first and writes the batch itself. A caller whose job was taken must
        // not wait for the lock: that would queue it behind later batches.
        let writer = tokio::select! {
            biased;
            r = &mut result => return r.unwrap_or_else(|_| Err("the writer stopped".into())),
            w = self.writer.clone().lock_owned() => w,
        };
        // Let the callers that are ready to join do so before the batch closes: after a
        // commit, the answered callers' next submissions arrive a moment apart.
        for _ in 0..2 {
            tokio::task::yield_now().await;
        }
        self.gather().await;
        let batch = std::mem::take(&mut *self.pending());
        if batch.is_empty() {
            // An earlier writer took this job with its own.
            drop(writer);
        } else {
            self.last
                .store(batch.len(), std::sync::atomic::Ordering::Relaxed);
            let (jobs, waiters): (Vec<J>, Vec<Waiter<R>>) = batch.into_iter().unzip();
            tracing::debug!(jobs = jobs.len(), "group commit");
            let commit = run(jobs);
            tokio::spawn(async move {
                let outcome = commit.await;
                drop(writer);
                match outcome {
                    Ok(results) if results.len() == waiters.len() => {
                        for (waiter, r) in waiters.into_iter().zip(results) {
                            let _ = waiter.send(Ok(r));
                        }
                    }
                    Ok(_) => {
                        for waiter in waiters {
                            let _ = waiter.send(Err("a group commit lost a result".into()));
                        }
                    }
                    Err(message) => {
                        for waiter in waiters {
                            let _ = waiter.send(Err(message.clone()));
                        }
                    }
                }
            });
        }
        match result.await {
            Ok(r) => r,
            Err(_) => Err("the writer stopped".into()),
        }
    }

    /// Waits, up to [`GATHER`], until as many jobs are pending as the last group held. Under
    /// steady load the callers of one group come back together, but not at once: the first
    /// found the writer free and committed alone, and the rest waited for that commit to make
    /// their own (FHIR creates, wrk -c8: groups of 1 and 7 in turn, 5.1 jobs per commit on
    /// average). When fewer come, the next group is smaller and so is the next wait's goal;
    /// a lone caller never waits.
    async fn gather(&self) {
        let goal = self.last.load(std::sync::atomic::Ordering::Relaxed);
        let pending = || self.pending().len();
        if pending() >= goal {
            return;
        }
        let deadline = tokio::time::Instant::now() + GATHER;
        loop {
            let joined = self.joined.notified();
            if pending() >= goal {
                return;
            }
            tokio::select! {
                _ = joined => {}
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// The queue (a panic elsewhere while it was held leaves it usable).
    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<(J, Waiter<R>)>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a group commit gives one FHIR submission: when it was stored, and per message the
/// outcome and the first active item's id.
pub(crate) type WriteResult = (i64, Vec<(renkei_store::clinical::IngestOutcome, i64)>);

/// A FHIR submission waiting for its group commit: the facility's messages, and what its
/// audit event says (who, about whom, how many entries).
pub(crate) struct WriteJob {
    pub(crate) ingest: renkei_store::clinical::IngestJob,
    pub(crate) actor: Actor,
    pub(crate) target: String,
    pub(crate) entries: usize,
}

impl App {
    /// Records an audit event before returning. On a SQLite file the store's audit writer
    /// groups concurrent callers' events into one commit, and a routine read's event is spooled
    /// (crash-safe) rather than waited for (see [`renkei_store::Store::record_audit`]). On
    /// PostgreSQL the events of concurrent callers share one transaction and one fsync here.
    /// Events that must commit with a change use the store's in-transaction append instead.
    pub(crate) async fn append_audit(&self, event: AuditEvent) -> Result<()> {
        if self.store.groups_audit_commits() {
            return Ok(self.store.record_audit(event).await?);
        }
        let store = self.store.clone();
        self.audit_queue
            .submit(event, move |events| async move {
                store
                    .append_audit_batch(events)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
            .map(|_| ())
            .map_err(AppError::Unavailable)
    }

    pub fn new(store: Store, clock: Arc<dyn Clock>, config: AppConfig) -> Self {
        App {
            store,
            clock,
            config: Arc::new(config),
            audit_queue: Arc::default(),
            write_queue: Arc::default(),
            token_cache: Arc::default(),
            objects: None,
            busy_uploads: Arc::default(),
            login_sources: Arc::default(),
            card_reads: Arc::default(),
            wopi_keys: Arc::default(),
        }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Today in Japan (`YYYY-MM-DD`).
    pub fn now_jst_date(&self) -> String {
        self.now().jst_date()
    }

    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// Ready when the database answers.
    pub async fn ready(&self) -> Result<()> {
        self.store.ping().await.map_err(AppError::from)
    }

    pub async fn shutdown(&self) {
        self.store.close().await
    }

    pub(crate) fn event(
        &self,
        actor: &Actor,
        action: &str,
        target: String,
        outcome: AuditOutcome,
        detail: &str,
    ) -> AuditEvent {
        AuditEvent {
            at: self.now(),
            user_id: actor.user_id,
            login_id: actor.login_id.clone(),
            facility_id: actor.facility_id,
            profession: actor.profession.clone(),
            action: action.to_string(),
            target,
            outcome,
            detail: detail.to_string(),
            client: actor.client.clone(),
            emergency: actor.emergency,
        }
    }
}

/// Who is acting: a logged-in user, or the system itself (command line, jobs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub login_id: String,
    pub name: String,
    pub facility_id: Option<i64>,
    pub profession: Option<String>,
    pub role: Role,
    pub emergency: bool,
    pub client: String,
}

impl Actor {
    /// The operator acting through the command line on the server itself.
    pub fn system(what: &str) -> Actor {
        Actor {
            user_id: None,
            login_id: format!("system:{what}"),
            name: "システム".to_string(),
            facility_id: None,
            profession: None,
            role: Role::Operator,
            emergency: false,
            client: "local".to_string(),
        }
    }

    pub fn is_operator(&self) -> bool {
        self.role == Role::Operator
    }

    pub(crate) fn require_operator(&self) -> Result<()> {
        if self.is_operator() {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    type Runs = Arc<std::sync::Mutex<Vec<usize>>>;

    /// Submits `job` after `delay` yields, recording the size of the group that commits it.
    fn submit_later(
        q: &Arc<GroupQueue<u32, u32>>,
        runs: &Runs,
        job: u32,
        delay: usize,
    ) -> tokio::task::JoinHandle<std::result::Result<u32, String>> {
        let (q, runs) = (q.clone(), runs.clone());
        tokio::spawn(async move {
            for _ in 0..delay {
                tokio::task::yield_now().await;
            }
            q.submit(job, move |jobs| {
                if let Ok(mut r) = runs.lock() {
                    r.push(jobs.len());
                }
                async move { Ok(jobs) }
            })
            .await
        })
    }

    async fn results(
        tasks: Vec<tokio::task::JoinHandle<std::result::Result<u32, String>>>,
    ) -> Vec<u32> {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task").expect("committed"));
        }
        out
    }

    fn sizes(runs: &Runs) -> Vec<usize> {
        runs.lock().expect("runs").clone()
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_groups_callers_commit_together_again() {
        let q = Arc::new(GroupQueue::<u32, u32>::default());
        q.last.store(3, Ordering::Relaxed);
        let runs = Runs::default();
        // They come back a moment apart: later than the writer's own two yields.
        let tasks = (0..3)
            .map(|i| submit_later(&q, &runs, i, i as usize * 10))
            .collect();
        assert_eq!(results(tasks).await, vec![0, 1, 2]);
        assert_eq!(sizes(&runs), vec![3]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_caller_does_not_wait_and_fewer_callers_lower_the_goal() {
        let q = Arc::new(GroupQueue::<u32, u32>::default());
        let runs = Runs::default();
        let start = tokio::time::Instant::now();
        assert_eq!(results(vec![submit_later(&q, &runs, 7, 0)]).await, vec![7]);
        assert_eq!(
            start.elapsed(),
            std::time::Duration::ZERO,
            "nothing to wait for"
        );

        // The last group held 3, but only one caller comes: it commits after the gather wait,
        // and the next writer waits for one.
        q.last.store(3, Ordering::Relaxed);
        let start = tokio::time::Instant::now();
        assert_eq!(results(vec![submit_later(&q, &runs, 8, 0)]).await, vec![8]);
        assert!(start.elapsed() >= GATHER);
        assert_eq!(q.last.load(Ordering::Relaxed), 1);
        assert_eq!(sizes(&runs), vec![1, 1]);
    }
}
