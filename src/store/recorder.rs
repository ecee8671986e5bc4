//! The recorder: one thread that makes every store call of the firing path,
//! so async tasks await their claim, start mark or outcome instead of
//! blocking a runtime worker on SQLite.
//!
//! Why a thread of its own: the store is one SQLite connection that every
//! call waits for anyway, and `block_in_place` around each call made the
//! runtime start a thread per waiting firing (1,000 jobs on one tick: 500
//! threads and 50 MiB). Here calls queue, and the queue is ordered for
//! latency: claims and start marks (on the way from a tick to a command) go
//! before outcomes. Calls that wait together are written together: the
//! waiting claims and start marks in one transaction (one commit instead of
//! one per run), the waiting outcomes in another (one fsync for the lot).
//!
//! What cannot be written because the store refuses writes (a missed tick,
//! an outcome) is kept in a bounded spool (`spool`) and written when it
//! accepts them again: the thread tries again every [`SPOOL_RETRY`] while
//! the spool holds something. Started with a state directory
//! ([`Recorder::start_spooled`]: the daemon, `jobrun run`), the spool is
//! written ahead to `STATE_DIR/spool/` (`spool_file`) and outlives the
//! process: the next recorder to start there writes what an ended process
//! kept, before its caller goes on (so before a daemon's start-up marks
//! runs left `running` abandoned).
//!
//! The store's async door, not one backend's: it makes its calls through the
//! backend-neutral [`Store`] (see the module doc of [`crate::store`]).
//!
//! Knows the store and a reply channel; nothing of jobs, locks or processes.

mod spool;
mod spool_file;
#[cfg(test)]
mod spool_tests;

pub use spool::{MAX_FINISHES, PER_JOB};

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::{NewRun, Operation, Started, Store, StoreError};
use crate::job::{RunId, RunOutcome, RunStatus};

type Call = Box<dyn FnOnce(&Store) + Send>;

enum Request {
    /// Reads and other calls on the way to a command: done first.
    Urgent(Call),
    /// A claim: the waiting ones are written together, with the start marks.
    Claim(NewRun, ClaimReply),
    /// A start mark.
    Start(Started, StartReply),
    /// An outcome to record; waiting ones are written together.
    Finish(RunId, RunOutcome, oneshot::Sender<Result<(), StoreError>>),
    /// A tick jobrun could not claim or start: written, or spooled until
    /// the store accepts writes. Nobody waits for it.
    Missed(NewRun),
}

#[derive(Default)]
struct Queue {
    urgent: VecDeque<Request>,
    finishes: VecDeque<Request>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// The handle async code uses; the thread ends when it is dropped.
pub struct Recorder {
    shared: Arc<Shared>,
    /// Closed by the thread when it has written all it could and ended.
    ended: Mutex<std::sync::mpsc::Receiver<()>>,
}

/// How long dropping the handle waits for the thread to write what is
/// queued and spooled (a `jobrun run` about to exit, a daemon stopping).
const DRAIN_ON_DROP: Duration = Duration::from_secs(5);

/// Outcomes written in one transaction at most (bounds one commit's time).
const FINISH_BATCH: usize = 256;
/// How often the spool is offered to the store again while it holds rows.
pub const SPOOL_RETRY: Duration = Duration::from_secs(1);

impl Recorder {
    /// Starts the recorder thread for `store`, with its spool in memory only
    /// (lost if the process exits).
    pub fn start(store: Arc<Store>) -> std::io::Result<Recorder> {
        Recorder::start_with(store, None)
    }

    /// Starts the recorder thread for `store`, with its spool written ahead
    /// to `state_dir/spool/`. What processes that ended left there is offered
    /// to the store before this returns (kept for later if it refuses). A
    /// directory that cannot be used leaves the spool in memory, with a
    /// warning: never an error.
    pub fn start_spooled(store: Arc<Store>, state_dir: &Path) -> std::io::Result<Recorder> {
        Recorder::start_with(store, Some(state_dir.to_path_buf()))
    }

    fn start_with(store: Arc<Store>, state_dir: Option<PathBuf>) -> std::io::Result<Recorder> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        let (ending, ended) = std::sync::mpsc::channel::<()>();
        let (opened, spool_open) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("jobrun-recorder".into())
            .spawn(move || {
                // On this thread, as every store call of the recorder.
                let spool = match state_dir {
                    Some(dir) => spool::Spool::open(&dir, &store),
                    None => spool::Spool::default(),
                };
                drop(opened);
                serve(&store, &worker, spool);
                drop(ending);
            })?;
        // Closed once the spool is open and what it found was offered.
        let _ = spool_open.recv();
        Ok(Recorder {
            shared,
            ended: Mutex::new(ended),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.shared.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, request: Request) {
        let mut queue = self.lock();
        match request {
            Request::Finish(..) => queue.finishes.push_back(request),
            _ => queue.urgent.push_back(request),
        }
        drop(queue);
        self.shared.ready.notify_one();
    }

    /// Runs `f` on the recorder thread, ahead of waiting outcomes. A call
    /// lost with a batch that panicked is an error, never a panic here.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.push(Request::Urgent(Box::new(move |store| {
            let _ = tx.send(f(store));
        })));
        rx.await.unwrap_or_else(|_| Err(unanswered()))
    }

    /// Claims a run ([`Store::claim`]); claims that wait together are
    /// committed together.
    pub async fn claim(&self, claim: NewRun) -> Result<Option<RunId>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.push(Request::Claim(claim, tx));
        rx.await.unwrap_or_else(|_| Err(unanswered()))
    }

    /// Records a start ([`Store::mark_started`]), committed with the claims
    /// and starts that wait alongside it.
    pub async fn mark_started(&self, start: Started) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.push(Request::Start(start, tx));
        rx.await.unwrap_or_else(|_| Err(unanswered()))
    }

    /// Records a tick as missed (its claim, with the status and reason set):
    /// at once if the store accepts it, else when it does again. Does not
    /// wait.
    pub fn record_missed(&self, claim: NewRun) {
        self.push(Request::Missed(claim));
    }

    /// Records an outcome; returns once it is committed (with the outcomes
    /// that waited alongside it). On an error the outcome is kept in the
    /// spool and written when the store accepts writes again.
    pub async fn finish(&self, id: RunId, outcome: RunOutcome) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.push(Request::Finish(id, outcome, tx));
        rx.await.unwrap_or_else(|_| Err(unanswered()))
    }
}

impl Drop for Recorder {
    /// Lets the thread write what is still queued or spooled before the
    /// process exits (bounded: a store that refuses writes fails at once).
    fn drop(&mut self) {
        self.lock().closed = true;
        self.shared.ready.notify_one();
        let ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        let _ = ended.recv_timeout(DRAIN_ON_DROP);
    }
}

/// The thread: urgent calls first, then the waiting outcomes in batches.
fn serve(store: &Store, shared: &Shared, mut spool: spool::Spool) {
    loop {
        let (urgent, finishes) = {
            let mut queue = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            while queue.urgent.is_empty() && queue.finishes.is_empty() && !queue.closed {
                if spool.is_empty() {
                    queue = shared.ready.wait(queue).unwrap_or_else(|p| p.into_inner());
                    continue;
                }
                let (q, waited) = shared
                    .ready
                    .wait_timeout(queue, SPOOL_RETRY)
                    .unwrap_or_else(|p| p.into_inner());
                queue = q;
                if waited.timed_out() {
                    break;
                }
            }
            if queue.urgent.is_empty() && queue.finishes.is_empty() && queue.closed {
                // Closed, and nothing left to do but a last try at the spool;
                // what the store still refuses stays in the spool's file.
                drop(queue);
                if !spool.is_empty() {
                    let _ = spool.flush(store);
                }
                spool.close();
                return;
            }
            let urgent: Vec<Request> = queue.urgent.drain(..).collect();
            let take = if urgent.is_empty() {
                queue.finishes.len().min(FINISH_BATCH)
            } else {
                0
            };
            let finishes: Vec<Request> = queue.finishes.drain(..take).collect();
            (urgent, finishes)
        };
        // A panic in one batch (a bug, never a store error: those are
        // values) must not end the thread: every later claim and outcome
        // would go unanswered. Its callers get an error; the thread goes on.
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            serve_batch(store, &mut spool, urgent, finishes);
        }));
        if served.is_err() {
            tracing::error!("a call on the recorder thread panicked; its callers get an error");
        }
    }
}

/// One pass of the thread: the urgent calls, the claims and start marks,
/// the spool, then a batch of outcomes.
fn serve_batch(
    store: &Store,
    spool: &mut spool::Spool,
    urgent: Vec<Request>,
    finishes: Vec<Request>,
) {
    let mut claims = Vec::new();
    let mut starts = Vec::new();
    let mut missed = Vec::new();
    for request in urgent {
        match request {
            Request::Urgent(call) => call(store),
            Request::Claim(claim, reply) => claims.push((claim, reply)),
            Request::Start(mark, reply) => starts.push((mark, reply)),
            Request::Missed(claim) => missed.push(claim),
            Request::Finish(..) => unreachable!("outcomes are queued apart"),
        }
    }
    write_claims_and_starts(store, claims, starts);
    // Straight to the store when nothing waits before them; to the spool
    // (its file first) when the store refuses them or others wait.
    if !missed.is_empty()
        && (!spool.is_empty() || store.claim_and_start_many(&missed, &[]).is_err())
    {
        spool.keep_missed(missed);
    }
    if !spool.is_empty() {
        // Missed ticks just queued, or rows kept from before: a store
        // that refuses them still does, and they stay for the next try.
        let _ = spool.flush(store);
    }
    if finishes.is_empty() {
        return;
    }
    let mut rows = Vec::with_capacity(finishes.len());
    let mut replies = Vec::with_capacity(finishes.len());
    for request in finishes {
        if let Request::Finish(id, outcome, reply) = request {
            rows.push((id, outcome));
            replies.push(reply);
        }
    }
    match store.finish_many(&rows) {
        Ok(()) => {
            for reply in replies {
                let _ = reply.send(Ok(()));
            }
        }
        // The batch is rolled back: write each alone, so one bad row
        // cannot cost the others their record; what the store refuses
        // is kept for when it accepts writes again, in the spool's file
        // before its firing hears that it was refused.
        Err(_) => {
            let mut refused = Vec::new();
            let mut answers = Vec::with_capacity(replies.len());
            for ((id, outcome), reply) in rows.into_iter().zip(replies) {
                let written = store.finish(id, &outcome);
                if written.is_err() {
                    refused.push((id, outcome));
                }
                answers.push((reply, written));
            }
            if !refused.is_empty() {
                spool.keep_finishes(refused);
            }
            for (reply, written) in answers {
                let _ = reply.send(written);
            }
        }
    }
}

/// The error a caller gets when its call was lost with a batch that
/// panicked on the recorder thread.
fn unanswered() -> StoreError {
    StoreError::Failed {
        operation: Operation::Lost,
        doing: "recording",
        source: "the recorder thread failed while serving this call (a bug in jobrun)".into(),
    }
}

type ClaimReply = oneshot::Sender<Result<Option<RunId>, StoreError>>;
type StartReply = oneshot::Sender<Result<(), StoreError>>;

/// The claims and start marks that waited together: one transaction, one
/// commit (a tick of 1,000 jobs queues hundreds at once). Should the batch
/// fail, each is written alone, so one cannot cost the others.
fn write_claims_and_starts(
    store: &Store,
    claims: Vec<(NewRun, ClaimReply)>,
    starts: Vec<(Started, StartReply)>,
) {
    let alone = |claims: Vec<(NewRun, ClaimReply)>, starts: Vec<(Started, StartReply)>| {
        for (claim, reply) in claims {
            let result = store.claim(&claim);
            answer_claim(store, &claim, reply, result);
        }
        for (start, reply) in starts {
            let _ = reply.send(store.mark_started(start));
        }
    };
    if claims.len() + starts.len() <= 1 {
        return alone(claims, starts);
    }
    let (runs, claim_replies): (Vec<NewRun>, Vec<ClaimReply>) = claims.into_iter().unzip();
    let (marks, start_replies): (Vec<Started>, Vec<StartReply>) = starts.into_iter().unzip();
    match store.claim_and_start_many(&runs, &marks) {
        Ok(ids) => {
            for ((claim, reply), id) in runs.iter().zip(claim_replies).zip(ids) {
                answer_claim(store, claim, reply, Ok(id));
            }
            for reply in start_replies {
                let _ = reply.send(Ok(()));
            }
        }
        Err(_) => alone(
            runs.into_iter().zip(claim_replies).collect(),
            marks.into_iter().zip(start_replies).collect(),
        ),
    }
}

/// Hands a claim's result to its firing. A firing that is gone by then
/// (dropped while it waited) will never run or record the run it won: the
/// row is closed here instead of staying `running`.
fn answer_claim(
    store: &Store,
    claim: &NewRun,
    reply: ClaimReply,
    result: Result<Option<RunId>, StoreError>,
) {
    let Err(Ok(Some(id))) = reply.send(result) else {
        return;
    };
    if claim.status != RunStatus::Running {
        return;
    }
    let outcome = RunOutcome::ended_early(
        RunStatus::Interrupted,
        claim.at,
        None,
        Some("not started: its firing ended before the claim was answered".into()),
    );
    if let Err(e) = store.finish_if_running(id, &outcome) {
        tracing::warn!(run_id = %id, error = %e, "closing a claim nobody waits for");
    }
}

#[cfg(test)]
mod tests {
    //! Each runs on both backends (SQLite, and PostgreSQL when a server
    //! answers): the recorder is written against the neutral API only.

    use super::*;
    use crate::job::Trigger;
    use crate::store::parity::backends;
    use chrono::{DateTime, Utc};

    fn claim(job: &str, tick: DateTime<Utc>) -> NewRun {
        NewRun {
            job: job.into(),
            trigger: Trigger::Schedule,
            tick: Some(tick),
            status: RunStatus::Running,
            at: tick,
            host: "h".into(),
            owner: "o".into(),
            error: None,
            parent_id: None,
            attempt: 1,
        }
    }

    fn outcome(at: DateTime<Utc>) -> RunOutcome {
        RunOutcome {
            status: RunStatus::Succeeded,
            finished_at: at,
            duration_ms: Some(5),
            exit_code: Some(0),
            signal: None,
            output_bytes: 3,
            output_tail: Arc::from(&b"ok\n"[..]),
            error: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_firings_claim_and_record_through_one_thread() {
        for backend in backends("recorder: many firings") {
            many_firings_on(Arc::clone(&backend.store)).await;
        }
    }

    async fn many_firings_on(store: Arc<Store>) {
        let recorder = Arc::new(Recorder::start(Arc::clone(&store)).unwrap());
        let tick = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200 {
            let recorder = Arc::clone(&recorder);
            tasks.spawn(async move {
                let id = recorder
                    .claim(claim(&format!("job{i}"), tick))
                    .await
                    .unwrap()
                    .expect("a new tick is won");
                // The same tick again is lost.
                assert_eq!(
                    recorder
                        .claim(claim(&format!("job{i}"), tick))
                        .await
                        .unwrap(),
                    None
                );
                recorder
                    .mark_started(Started {
                        run: id,
                        pid: Some(100 + i),
                        at: tick,
                    })
                    .await
                    .unwrap();
                recorder.finish(id, outcome(tick)).await.unwrap();
                id
            });
        }
        let mut ids = Vec::new();
        while let Some(id) = tasks.join_next().await {
            ids.push(id.unwrap());
        }
        assert_eq!(ids.len(), 200);
        for id in ids {
            let run = store.get(id).unwrap().unwrap();
            assert_eq!(run.status, RunStatus::Succeeded);
            assert_eq!(store.output_tail(id).unwrap(), b"ok\n");
        }
        assert!(store.running().unwrap().is_empty());
    }

    #[tokio::test]
    async fn what_the_store_refused_is_written_when_the_handle_is_dropped() {
        for backend in backends("recorder: refused writes") {
            refused_writes_on(Arc::clone(&backend.store)).await;
        }
    }

    async fn refused_writes_on(store: Arc<Store>) {
        let recorder = Recorder::start(Arc::clone(&store)).unwrap();
        let tick = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let id = recorder.claim(claim("a", tick)).await.unwrap().unwrap();
        store.refuse_writes_for_tests(true);
        assert!(recorder.finish(id, outcome(tick)).await.is_err());
        let mut missed = claim("b", tick);
        missed.status = RunStatus::Missed;
        recorder.record_missed(missed);
        store.refuse_writes_for_tests(false);
        // A `jobrun run` exiting right after: the handle's drop waits for it.
        drop(recorder);
        assert_eq!(store.get(id).unwrap().unwrap().status, RunStatus::Succeeded);
        let b = store
            .history(&crate::store::HistoryFilter {
                job: Some("b".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].status, RunStatus::Missed);
    }

    #[test]
    fn a_claim_whose_firing_is_gone_is_closed_not_left_running() {
        for backend in backends("recorder: gone firings") {
            gone_firings_on(&backend.store);
        }
    }

    fn gone_firings_on(store: &Store) {
        let tick = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        for batch in [1, 3] {
            let claims: Vec<(NewRun, ClaimReply)> = (0..batch)
                .map(|i| {
                    let (tx, rx) = oneshot::channel();
                    drop(rx); // the firing was dropped while it waited
                    (claim(&format!("gone{batch}-{i}"), tick), tx)
                })
                .collect();
            write_claims_and_starts(store, claims, Vec::new());
        }
        let rows = store
            .history(&crate::store::HistoryFilter::default())
            .unwrap();
        assert_eq!(rows.len(), 4);
        for row in rows {
            assert_eq!(row.status, RunStatus::Interrupted, "{row:?}");
        }
        assert!(store.running().unwrap().is_empty());
    }
}
