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
//! the spool holds something.
//!
//! The store's async door, not one backend's: it makes its calls through the
//! backend-neutral [`Store`] (see the module doc of [`crate::store`]).
//!
//! Knows the store and a reply channel; nothing of jobs, locks or processes.

mod spool;

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::{Finish, NewRun, Operation, Store, StoreError};
use crate::job::{RunStatus, Trigger};

/// A claim to make, owning its values (it crosses to the recorder thread).
#[derive(Debug, Clone)]
pub struct Claim {
    pub job: String,
    pub trigger: Trigger,
    pub tick: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub at: DateTime<Utc>,
    pub host: String,
    pub owner: String,
    pub error: Option<String>,
    pub parent_id: Option<i64>,
    pub attempt: u32,
}

impl Claim {
    pub(crate) fn as_new_run(&self) -> NewRun<'_> {
        NewRun {
            job: &self.job,
            trigger: self.trigger,
            tick: self.tick,
            status: self.status,
            at: self.at,
            host: &self.host,
            owner: &self.owner,
            error: self.error.as_deref(),
            parent_id: self.parent_id,
            attempt: self.attempt,
        }
    }
}

/// How a run ended, owning its values.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: RunStatus,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: Option<i64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub output_bytes: u64,
    pub output_tail: Vec<u8>,
    pub error: Option<String>,
}

impl Outcome {
    pub(crate) fn as_finish(&self) -> Finish<'_> {
        Finish {
            status: self.status,
            finished_at: self.finished_at,
            duration_ms: self.duration_ms,
            exit_code: self.exit_code,
            signal: self.signal,
            output_bytes: self.output_bytes,
            output_tail: &self.output_tail,
            error: self.error.as_deref(),
        }
    }
}

type Call = Box<dyn FnOnce(&Store) + Send>;

enum Request {
    /// Reads and other calls on the way to a command: done first.
    Urgent(Call),
    /// A claim: the waiting ones are written together, with the start marks.
    Claim(Claim, ClaimReply),
    /// A start mark (run id, pid, when).
    Start(StartMark, StartReply),
    /// An outcome to record; waiting ones are written together.
    Finish(i64, Outcome, oneshot::Sender<Result<(), StoreError>>),
    /// A tick jobrun could not claim or start: written, or spooled until
    /// the store accepts writes. Nobody waits for it.
    Missed(Claim),
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
    /// Starts the recorder thread for `store`.
    pub fn start(store: Arc<Store>) -> std::io::Result<Recorder> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        let (ending, ended) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("jobrun-recorder".into())
            .spawn(move || {
                serve(&store, &worker);
                drop(ending);
            })?;
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
    pub async fn claim(&self, claim: Claim) -> Result<Option<i64>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.push(Request::Claim(claim, tx));
        rx.await.unwrap_or_else(|_| Err(unanswered()))
    }

    /// Records a start ([`Store::mark_started`]), committed with the claims
    /// and starts that wait alongside it.
    pub async fn mark_started(
        &self,
        id: i64,
        pid: Option<u32>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.push(Request::Start((id, pid, at), tx));
        rx.await.unwrap_or_else(|_| Err(unanswered()))
    }

    /// Records a tick as missed (its claim, with the status and reason set):
    /// at once if the store accepts it, else when it does again. Does not
    /// wait.
    pub fn record_missed(&self, claim: Claim) {
        self.push(Request::Missed(claim));
    }

    /// Records an outcome; returns once it is committed (with the outcomes
    /// that waited alongside it). On an error the outcome is kept in the
    /// spool and written when the store accepts writes again.
    pub async fn finish(&self, id: i64, outcome: Outcome) -> Result<(), StoreError> {
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
fn serve(store: &Store, shared: &Shared) {
    let mut spool = spool::Spool::default();
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
                // Closed, and nothing left to do but a last try at the spool.
                drop(queue);
                if let Err(e) = spool.flush(store) {
                    tracing::error!(
                        error = %e,
                        "rows kept while the store refused writes are lost at exit; runs left `running` are marked abandoned at the next start"
                    );
                }
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
    for request in urgent {
        match request {
            Request::Urgent(call) => call(store),
            Request::Claim(claim, reply) => claims.push((claim, reply)),
            Request::Start(mark, reply) => starts.push((mark, reply)),
            Request::Missed(claim) => spool.keep_missed(claim),
            Request::Finish(..) => unreachable!("outcomes are queued apart"),
        }
    }
    write_claims_and_starts(store, claims, starts);
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
    let batch: Vec<(i64, Finish<'_>)> = rows.iter().map(|(id, o)| (*id, o.as_finish())).collect();
    match store.finish_many(&batch) {
        Ok(()) => {
            for reply in replies {
                let _ = reply.send(Ok(()));
            }
        }
        // The batch is rolled back: write each alone, so one bad row
        // cannot cost the others their record; what the store refuses
        // is kept for when it accepts writes again.
        Err(_) => {
            for (((id, finish), reply), (_, outcome)) in batch.iter().zip(replies).zip(&rows) {
                let written = store.finish(*id, finish);
                if written.is_err() {
                    spool.keep_finish(*id, outcome.clone());
                }
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

type StartMark = (i64, Option<u32>, DateTime<Utc>);
type ClaimReply = oneshot::Sender<Result<Option<i64>, StoreError>>;
type StartReply = oneshot::Sender<Result<(), StoreError>>;

/// The claims and start marks that waited together: one transaction, one
/// commit (a tick of 1,000 jobs queues hundreds at once). Should the batch
/// fail, each is written alone, so one cannot cost the others.
fn write_claims_and_starts(
    store: &Store,
    claims: Vec<(Claim, ClaimReply)>,
    starts: Vec<(StartMark, StartReply)>,
) {
    let alone = |claims: Vec<(Claim, oneshot::Sender<_>)>,
                 starts: Vec<(StartMark, oneshot::Sender<_>)>| {
        for (claim, reply) in claims {
            answer_claim(store, &claim, reply, store.claim(&claim.as_new_run()));
        }
        for ((id, pid, at), reply) in starts {
            let _ = reply.send(store.mark_started(id, pid, at));
        }
    };
    if claims.len() + starts.len() <= 1 {
        return alone(claims, starts);
    }
    let runs: Vec<NewRun<'_>> = claims.iter().map(|(c, _)| c.as_new_run()).collect();
    let marks: Vec<StartMark> = starts.iter().map(|(m, _)| *m).collect();
    match store.claim_and_start_many(&runs, &marks) {
        Ok(ids) => {
            drop(runs);
            for ((claim, reply), id) in claims.into_iter().zip(ids) {
                answer_claim(store, &claim, reply, Ok(id));
            }
            for (_, reply) in starts {
                let _ = reply.send(Ok(()));
            }
        }
        Err(_) => {
            drop(runs);
            alone(claims, starts);
        }
    }
}

/// Hands a claim's result to its firing. A firing that is gone by then
/// (dropped while it waited) will never run or record the run it won: the
/// row is closed here instead of staying `running`.
fn answer_claim(
    store: &Store,
    claim: &Claim,
    reply: ClaimReply,
    result: Result<Option<i64>, StoreError>,
) {
    let Err(Ok(Some(id))) = reply.send(result) else {
        return;
    };
    if claim.status != RunStatus::Running {
        return;
    }
    let finish = Finish {
        status: RunStatus::Interrupted,
        finished_at: claim.at,
        duration_ms: None,
        exit_code: None,
        signal: None,
        output_bytes: 0,
        output_tail: &[],
        error: Some("not started: its firing ended before the claim was answered"),
    };
    if let Err(e) = store.finish_if_running(id, &finish) {
        tracing::warn!(run_id = id, error = %e, "closing a claim nobody waits for");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(job: &str, tick: DateTime<Utc>) -> Claim {
        Claim {
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

    fn outcome(at: DateTime<Utc>) -> Outcome {
        Outcome {
            status: RunStatus::Succeeded,
            finished_at: at,
            duration_ms: Some(5),
            exit_code: Some(0),
            signal: None,
            output_bytes: 3,
            output_tail: b"ok\n".to_vec(),
            error: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_firings_claim_and_record_through_one_thread() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
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
                    .mark_started(id, Some(100 + i), tick)
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
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
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
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tick = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        for batch in [1, 3] {
            let claims: Vec<(Claim, ClaimReply)> = (0..batch)
                .map(|i| {
                    let (tx, rx) = oneshot::channel();
                    drop(rx); // the firing was dropped while it waited
                    (claim(&format!("gone{batch}-{i}"), tick), tx)
                })
                .collect();
            write_claims_and_starts(&store, claims, Vec::new());
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
