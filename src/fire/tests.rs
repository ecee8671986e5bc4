//! Tests of the firing path against a real store and real processes
//! (`sh -c`), in this process: a tempdir store, a [`FakeClock`] standing
//! still at [`tick`]`(0)`. The helpers are here; the tests of each part of
//! `fire` are in the submodules named after it.

use super::*;

mod acquire;
mod active;
mod chain;
mod env;
mod events;
mod execute;
mod retry;

/// A test-only fault: a job whose name starts with this panics in its firing
/// once its command runs (compiled into test builds only)...
const PANIC_PREFIX: &str = "test-panic-";
/// ... or, with this prefix, before its claim.
const PANIC_BEFORE_CLAIM: &str = "test-panic-before-claim";

pub(super) fn panic_if_asked(job: &str, before_claim: bool) {
    if job.starts_with(PANIC_BEFORE_CLAIM) == before_claim && job.starts_with(PANIC_PREFIX) {
        panic!("a test-only panic in the firing of {job}");
    }
}

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::retry::sleep_unless_stopping;
use crate::clock::FakeClock;
use crate::job::{Command, JobSpec, Origin, Requirement, RetryPolicy, RunId, SourceKind, Trigger};
use crate::store::RunRecord;

struct Quiet;

impl JobOutput for Quiet {
    fn line(&self, _: &str, _: RunId, _: Stream, _: &[u8]) {}
}

fn context(dir: &std::path::Path) -> Arc<FireContext> {
    context_with(dir, Arc::new(Quiet))
}

/// A context whose runs' lines go to `sink`.
fn context_with(dir: &std::path::Path, sink: Arc<dyn JobOutput>) -> Arc<FireContext> {
    let store = Arc::new(Store::open(&dir.join("state")).unwrap());
    Arc::new(FireContext {
        recorder: Recorder::start(Arc::clone(&store)).unwrap(),
        store,
        clock: Arc::new(FakeClock::new(tick(0))),
        host: "h".into(),
        owner: "h:1:t".into(),
        sink,
        base_env: BTreeMap::from([("PATH".to_string(), "/usr/bin:/bin".to_string())]),
        tail_bytes: 1024,
        active: ActiveRuns::default(),
        limits: Limits::sized(1 << 16, 1 << 16, 0),
        events: RunEvents::default(),
    })
}

fn job(name: &str, command: &str) -> Job {
    let mut spec = JobSpec::new(
        Command::Shell(command.into()),
        SourceKind::Yaml,
        Origin::new("jobs.yaml", 1),
    );
    spec.name = Some(name.into());
    Job {
        name: name.into(),
        spec: std::sync::Arc::new(spec),
        schedules: Vec::new(),
        origins: Vec::new(),
    }
}

fn tick(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000 + s, 0).unwrap()
}

fn scheduled(job: &Job, s: i64) -> Firing {
    Firing::new(job.name.clone(), Some(tick(s)), Trigger::Schedule)
}

fn runs_of(ctx: &FireContext, job: &str) -> Vec<RunRecord> {
    ctx.store
        .history(&crate::store::HistoryFilter {
            job: Some(job.into()),
            ..Default::default()
        })
        .unwrap()
}

/// Waits (bounded) for `f` to hold, polling: the recorder writes its spool
/// on a thread of its own.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn until_running(ctx: &FireContext) {
    eventually("the run to start", || ctx.active.len() == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_timeout_and_kill_grace_do_not_panic_a_firing() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let ready = dir.path().join("ready");
    std::fs::write(&ready, "yes").unwrap();
    let mut huge = job("huge", "true");
    std::sync::Arc::make_mut(&mut huge.spec).timeout = Some(Duration::MAX);
    std::sync::Arc::make_mut(&mut huge.spec).kill_grace =
        Some(Duration::from_secs(i64::MAX as u64));
    std::sync::Arc::make_mut(&mut huge.spec).requires = vec![Requirement::File(ready)];
    std::sync::Arc::make_mut(&mut huge.spec).requires_timeout = Some(Duration::MAX);
    let result = fire(&ctx, &huge, &scheduled(&huge, 0)).await.unwrap();
    assert!(
        matches!(
            result,
            FireResult::Finished {
                outcome: RunOutcome {
                    status: RunStatus::Succeeded,
                    ..
                },
                ..
            }
        ),
        "{result:?}"
    );

    // Stopped with a kill grace of "forever": the grace is waited on, not added.
    let mut stopped = job("huge-grace", "sleep 30");
    std::sync::Arc::make_mut(&mut stopped.spec).kill_grace = Some(Duration::MAX);
    let firing = scheduled(&stopped, 0);
    let task = {
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move { fire(&ctx, &stopped, &firing).await })
    };
    until_running(&ctx).await;
    ctx.active.stop_all(StopReason::Shutdown);
    let result = task.await.unwrap().unwrap();
    assert!(
        matches!(
            result,
            FireResult::Finished {
                outcome: RunOutcome {
                    status: RunStatus::Interrupted,
                    ..
                },
                ..
            }
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_huge_retry_backoff_does_not_panic_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    ctx.active.stop_all(StopReason::Shutdown);
    assert!(!sleep_unless_stopping(&ctx, Duration::MAX).await);
    let policy = RetryPolicy {
        attempts: 40,
        backoff: Duration::MAX,
        max_backoff: Duration::MAX,
    };
    assert_eq!(policy.delay_before(40), Duration::MAX);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_firing_still_records_its_run() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let job = job("test-panic-after-start", "sleep 30");
    let result = fire(&ctx, &job, &scheduled(&job, 0)).await.unwrap();
    let FireResult::Finished {
        run_id,
        outcome:
            RunOutcome {
                status: RunStatus::Failed,
                error: Some(error),
                ..
            },
        ..
    } = result
    else {
        panic!("not a failed run: {result:?}");
    };
    assert!(
        error.starts_with("jobrun internal error: a test-only panic"),
        "{error}"
    );
    let run = ctx.store.get(run_id).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.as_deref(), Some(error.as_str()));
    assert!(ctx.active.is_empty(), "the registry forgot the run");
    // The job's process group did not outlive its run.
    let pid = run.pid.expect("the command started") as i32;
    eventually("the job's group to be killed", || {
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), None).is_err()
    })
    .await;
    // The next tick of the same job is claimed and runs as usual.
    let next = fire(
        &ctx,
        &self::job("calm", "true"),
        &scheduled(&self::job("calm", "true"), 1),
    )
    .await
    .unwrap();
    assert!(matches!(
        next,
        FireResult::Finished {
            outcome: RunOutcome {
                status: RunStatus::Succeeded,
                ..
            },
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_firing_still_records_its_run() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let long = job("long", "sleep 30");
    let firing = scheduled(&long, 0);
    let task = {
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move { fire(&ctx, &long, &firing).await })
    };
    until_running(&ctx).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let runs = runs_of(&ctx, "long");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Interrupted, "{runs:?}");
    assert!(runs[0].error.as_deref().unwrap().contains("cancelled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_missed_while_the_store_refuses_writes_are_recorded_when_it_accepts_them() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let job = job("every-second", "true");
    ctx.store.refuse_writes_for_tests(true);
    for s in 0..5 {
        let result = fire(&ctx, &job, &scheduled(&job, s)).await.unwrap();
        let FireResult::Missed { reason } = result else {
            panic!("not missed: {result:?}");
        };
        assert!(reason.starts_with("not claimed: "), "{reason}");
        assert!(reason.contains("readonly"), "{reason}");
    }
    assert!(runs_of(&ctx, "every-second").is_empty());
    ctx.store.refuse_writes_for_tests(false);
    eventually("the spooled missed ticks to be written", || {
        runs_of(&ctx, "every-second").len() == 5
    })
    .await;
    let runs = runs_of(&ctx, "every-second");
    for (s, run) in (0..5).rev().zip(&runs) {
        assert_eq!(run.status, RunStatus::Missed);
        assert_eq!(run.tick, Some(tick(s)));
        assert!(run.finished_at.is_some());
        assert!(
            run.error.as_deref().unwrap().contains("readonly"),
            "{run:?}"
        );
    }
    // The store is back: the next tick runs.
    let result = fire(&ctx, &job, &scheduled(&job, 5)).await.unwrap();
    assert!(matches!(
        result,
        FireResult::Finished {
            outcome: RunOutcome {
                status: RunStatus::Succeeded,
                ..
            },
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_the_store_refuses_is_written_when_it_accepts_writes_again() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let marker = dir.path().join("go");
    let job = job(
        "waits",
        &format!("while [ ! -e {} ]; do sleep 0.02; done", marker.display()),
    );
    let firing = scheduled(&job, 0);
    let task = {
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move { fire(&ctx, &job, &firing).await })
    };
    until_running(&ctx).await;
    eventually("the start to be recorded", || {
        runs_of(&ctx, "waits")
            .first()
            .is_some_and(|r| r.pid.is_some())
    })
    .await;
    ctx.store.refuse_writes_for_tests(true);
    std::fs::write(&marker, "").unwrap();
    let result = task.await.unwrap().unwrap();
    assert!(matches!(
        result,
        FireResult::Finished {
            outcome: RunOutcome {
                status: RunStatus::Succeeded,
                ..
            },
            ..
        }
    ));
    assert_eq!(runs_of(&ctx, "waits")[0].status, RunStatus::Running);
    ctx.store.refuse_writes_for_tests(false);
    eventually("the kept outcome to be written", || {
        runs_of(&ctx, "waits")[0].status == RunStatus::Succeeded
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_before_the_claim_records_the_tick_missed() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let job = job("test-panic-before-claim", "true");
    let result = fire(&ctx, &job, &scheduled(&job, 0)).await.unwrap();
    let FireResult::Missed { reason } = result else {
        panic!("not missed: {result:?}");
    };
    assert!(
        reason.starts_with("jobrun internal error: a test-only panic"),
        "{reason}"
    );
    eventually("the missed row", || runs_of(&ctx, &job.name).len() == 1).await;
    let run = &runs_of(&ctx, &job.name)[0];
    assert_eq!((run.status, run.tick), (RunStatus::Missed, Some(tick(0))));
    assert_eq!(run.error.as_deref(), Some(reason.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_store_call_does_not_end_the_recorder_thread() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let lost = ctx
        .recorder
        .call(|_| -> Result<(), crate::store::StoreError> {
            panic!("a test-only panic on the recorder thread")
        })
        .await;
    assert!(lost.is_err(), "the caller gets an error, not a panic");
    // Claims, starts and outcomes are still answered (a dead thread would
    // leave them waiting for good).
    let job = job("after", "true");
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        fire(&ctx, &job, &scheduled(&job, 0)),
    )
    .await
    .expect("the recorder answers")
    .unwrap();
    assert!(matches!(
        result,
        FireResult::Finished {
            outcome: RunOutcome {
                status: RunStatus::Succeeded,
                ..
            },
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_whose_lock_cannot_be_taken_is_recorded_missed() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    // The locks directory cannot be made: a file stands in its place.
    std::fs::write(dir.path().join("state/locks"), "").unwrap();
    let job = job("lockless", "true");
    let result = fire(&ctx, &job, &scheduled(&job, 0)).await.unwrap();
    let FireResult::Missed { reason } = result else {
        panic!("not missed: {result:?}");
    };
    assert!(
        reason.starts_with("not claimed: taking the job's lock: "),
        "{reason}"
    );
    eventually("the missed row", || runs_of(&ctx, "lockless").len() == 1).await;
    let run = &runs_of(&ctx, "lockless")[0];
    assert_eq!((run.status, run.tick), (RunStatus::Missed, Some(tick(0))));
    assert_eq!(run.error.as_deref(), Some(reason.as_str()));
}

/// Fires `firing` of `job` on a task of its own.
fn spawn_fire(
    ctx: &Arc<FireContext>,
    job: &Job,
    firing: Firing,
) -> tokio::task::JoinHandle<anyhow::Result<FireResult>> {
    let ctx = Arc::clone(ctx);
    let job = job.clone();
    tokio::spawn(async move { fire(&ctx, &job, &firing).await })
}

/// A shell command that ends once `marker` exists.
fn wait_for(marker: &std::path::Path) -> String {
    format!("while [ ! -e '{}' ]; do sleep 0.02; done", marker.display())
}

/// Waits until `job`'s newest run has its process id on record, and returns it.
async fn until_started(ctx: &FireContext, job: &str) -> RunRecord {
    eventually("the start to be recorded", || {
        runs_of(ctx, job).first().is_some_and(|r| r.pid.is_some())
    })
    .await;
    runs_of(ctx, job).remove(0)
}

/// The status of a finished result, or a panic naming what it was instead.
#[track_caller]
fn status_of(result: &FireResult) -> RunStatus {
    match result {
        FireResult::Finished {
            outcome: RunOutcome { status, .. },
            ..
        } => *status,
        other => panic!("not a finished run: {other:?}"),
    }
}
