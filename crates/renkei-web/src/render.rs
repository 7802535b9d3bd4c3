//! Decoding work kept off the async workers, and bounded.
//!
//! Why: rendering a DICOM frame or a picture, reading the DICOM files of a document, or turning
//! a large XML document into text is CPU work of up to seconds. On a tokio worker it stalls
//! every other request that worker serves; and with no bound, a few clinicians opening a heavy
//! document at once multiply what one render may take (each is held to
//! `renkei_dicom::RENDER_BUDGET_BYTES`). So such work runs on the blocking pool, at most
//! `available_parallelism().min(4)` jobs at a time; a request that waits longer than [`WAIT`]
//! for a slot gets a 503 asking to try again, instead of queueing without end.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use renkei_app::{App, AppError};
use tokio::sync::Semaphore;

use crate::views::{ErrorPage, Layout, error_page, render};

/// How long a request waits for a free slot before it is answered 503.
pub const WAIT: Duration = Duration::from_secs(10);

/// Why work sent off the async workers did not come back with a value.
#[derive(Debug, PartialEq, Eq)]
pub enum OffWorkerError {
    /// No slot came free within [`WAIT`].
    Busy,
    /// The work panicked (the decoders are behind `catch_unwind`, so this is a bug).
    Crashed,
}

/// The process-wide slots: one per core, at most four.
fn slots() -> Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS
        .get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            Arc::new(Semaphore::new(cores.min(4)))
        })
        .clone()
}

/// Runs `f` on the blocking pool once a slot is free (waiting at most [`WAIT`]).
pub async fn off_worker<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, OffWorkerError> {
    bounded(slots(), WAIT, f).await
}

/// [`off_worker`] with its slots and wait given (for tests). The permit moves into the
/// blocking closure: if the request goes away, the slot stays taken until the work is done,
/// so the bound is on work actually running, not on requests still waiting for it.
async fn bounded<T: Send + 'static>(
    slots: Arc<Semaphore>,
    wait: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, OffWorkerError> {
    let permit = match tokio::time::timeout(wait, slots.acquire_owned()).await {
        Ok(Ok(permit)) => permit,
        // Timed out, or closed (never: the semaphore is not closed).
        Ok(Err(_)) | Err(_) => return Err(OffWorkerError::Busy),
    };
    tokio::task::spawn_blocking(move || {
        let _slot = permit;
        f()
    })
    .await
    .map_err(|_| OffWorkerError::Crashed)
}

/// The page for work that could not run: 503 with a Retry-After when busy.
pub fn refused(app: &App, e: OffWorkerError) -> Response {
    match e {
        OffWorkerError::Busy => {
            tracing::warn!("render slots busy: answered 503");
            let heading = "ただいま混み合っています";
            let page = ErrorPage {
                layout: Layout::anonymous(app, heading, String::new()),
                heading: heading.to_string(),
                message:
                    "画像・文書の表示が混み合っています。しばらくしてからもう一度お試しください。"
                        .to_string(),
            };
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, render(&page)).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            response
        }
        OffWorkerError::Crashed => error_page(app, AppError::Internal("rendering failed".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_request_that_finds_no_slot_in_time_is_busy() {
        let slots = Arc::new(Semaphore::new(1));
        let held = slots.clone().acquire_owned().await.unwrap();
        let r = bounded(slots.clone(), Duration::from_millis(50), || 1).await;
        assert_eq!(r, Err(OffWorkerError::Busy));
        drop(held);
        assert_eq!(bounded(slots, Duration::from_millis(50), || 2).await, Ok(2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_jobs_run_at_once_than_there_are_slots() {
        let slots = Arc::new(Semaphore::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..6)
            .map(|_| {
                let (slots, running, most) = (slots.clone(), running.clone(), most.clone());
                tokio::spawn(bounded(slots, Duration::from_secs(30), move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(40));
                    running.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        for job in jobs {
            assert_eq!(job.await.unwrap(), Ok(()));
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_slot_stays_taken_until_the_work_ends_even_if_the_request_is_gone() {
        let slots = Arc::new(Semaphore::new(1));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let request = bounded(slots.clone(), WAIT, move || {
            let _ = wait.recv();
        });
        // The client goes away shortly after the work started.
        let _ = tokio::time::timeout(Duration::from_millis(100), request).await;
        assert_eq!(slots.available_permits(), 0);
        release.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while slots.available_permits() == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_frees_its_slot() {
        let slots = Arc::new(Semaphore::new(1));
        let r = bounded(slots.clone(), WAIT, || -> u8 { panic!("bug") }).await;
        assert_eq!(r, Err(OffWorkerError::Crashed));
        assert_eq!(slots.available_permits(), 1);
    }
}
