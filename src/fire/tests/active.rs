//! The active-run registry: stopping one run, stopping all, and the runs
//! that register after a shutdown began.

use super::*;

use std::sync::Mutex;

use super::super::active::Active;
use super::super::env::build_request;
use crate::runner::{OutputSink, RunEnd, Running};

/// Starts `command` as a real run and registers it as run `id`.
fn start(ctx: &FireContext, id: RunId, command: &str) -> (Running, Active) {
    let job = job("registered", command);
    let request = build_request(ctx, &job, &scheduled(&job, 0), id);
    let running = crate::runner::start(request, Arc::new(NoLines)).unwrap();
    let active = Active {
        stopper: running.stopper(),
        reason: Arc::new(Mutex::new(None)),
    };
    (running, active)
}

struct NoLines;

impl OutputSink for NoLines {
    fn line(&self, _: &str, _: Stream, _: &[u8]) {}
}

fn reason_of(active: &Active) -> Arc<Mutex<Option<StopReason>>> {
    Arc::clone(&active.reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_run_stops_only_the_run_named_and_keeps_its_first_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let (running, active) = start(&ctx, RunId(1), "sleep 30");
    let reason = reason_of(&active);
    ctx.active.register(RunId(1), active);
    assert_eq!((ctx.active.len(), ctx.active.is_empty()), (1, false));

    assert!(
        !ctx.active.stop_run(RunId(2), StopReason::Replaced),
        "no run 2"
    );
    assert_eq!(*reason.lock().unwrap(), None);
    assert!(ctx.active.stop_run(RunId(1), StopReason::Replaced));
    // A shutdown after the replace does not change why it was stopped.
    assert_eq!(ctx.active.stop_all(StopReason::Shutdown), 1);
    assert_eq!(*reason.lock().unwrap(), Some(StopReason::Replaced));
    let outcome = tokio::time::timeout(Duration::from_secs(20), running.wait())
        .await
        .expect("the stopped run ends")
        .unwrap();
    assert!(
        matches!(outcome.end, RunEnd::Stopped { .. }),
        "{:?}",
        outcome.end
    );
    ctx.active.unregister(RunId(1));
    assert!(ctx.active.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_registered_after_a_shutdown_began_is_stopped_as_it_registers() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    assert!(!ctx.active.is_stopping());
    assert_eq!(ctx.active.stop_all(StopReason::Shutdown), 0);
    assert!(ctx.active.is_stopping());
    // Past its claim when the shutdown began: it registers afterwards.
    let (running, active) = start(&ctx, RunId(5), "trap '' TERM; sleep 30");
    let reason = reason_of(&active);
    ctx.active.kill_all();
    ctx.active.register(RunId(5), active);
    assert_eq!(*reason.lock().unwrap(), Some(StopReason::Shutdown));
    // It ignores SIGTERM, and the kill grace is the default 10 s: only the
    // SIGKILL it got as it registered (kill_all came first) ends it sooner.
    let outcome = tokio::time::timeout(Duration::from_secs(8), running.wait())
        .await
        .expect("killed at once, not after the grace")
        .unwrap();
    assert!(
        matches!(outcome.end, RunEnd::Stopped { .. }),
        "{:?}",
        outcome.end
    );
}
