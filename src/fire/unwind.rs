//! A claimed run ends on record even when jobrun itself fails while it runs.
//!
//! Two ways a firing can end without recording its outcome: a panic in
//! jobrun's own code between the claim and the record (on 9377199, a huge
//! `timeout:` overflowed an instant and left the run `running` for good),
//! and the firing being dropped before it ends (the runtime shutting down
//! with the firing still going). [`CatchUnwind`] turns the first into a
//! recorded `failed` run ("jobrun internal error: ..."); [`ClaimGuard`]
//! records the second as `interrupted` when it is dropped still armed. Both
//! record only a run that still reads `running`, so neither ever replaces
//! an outcome already on record.
//!
//! Knows the store and the recorder; nothing of processes or schedules.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::{error, warn};

use super::{missed, FireContext, FireResult};
use crate::job::{Firing, RunId, RunOutcome, RunStatus};
use crate::plan::Job;

/// Runs a firing up to and through its claim: a panic before the claim
/// records the tick `missed` (after it, [`after_claim`] has recorded it).
pub(super) async fn before_claim(
    ctx: &FireContext,
    job: &Job,
    firing: &Firing,
    firing_future: impl Future<Output = anyhow::Result<FireResult>>,
) -> anyhow::Result<FireResult> {
    match CatchUnwind::new(firing_future).await {
        Ok(result) => result,
        Err(panic) => {
            error!(job = %job.name, panic = %panic, "the firing panicked before its claim");
            let error = std::io::Error::other(panic);
            Ok(missed::missed(
                ctx,
                job,
                firing,
                "jobrun internal error",
                &error,
            ))
        }
    }
}

/// Runs a claimed run to its record: a panic ends it `failed` with the
/// panic's message, and a drop before the end ends it `interrupted`.
pub(super) async fn after_claim(
    ctx: &FireContext,
    job: &Job,
    run_id: RunId,
    run: impl Future<Output = anyhow::Result<FireResult>>,
) -> anyhow::Result<FireResult> {
    let guard = ClaimGuard::new(ctx, run_id);
    let result = match CatchUnwind::new(run).await {
        Ok(result) => result,
        Err(panic) => {
            ctx.active.unregister(run_id);
            let message = format!("jobrun internal error: {panic}");
            error!(job = %job.name, run_id = run_id.0, error = %message, "the firing panicked");
            let outcome = end_if_running(ctx, run_id, RunStatus::Failed, &message);
            Ok(FireResult::finished(run_id, outcome))
        }
    };
    guard.disarm();
    result
}

/// Polls a future, turning a panic inside it into `Err(message)`.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> CatchUnwind<F> {
    fn new(future: F) -> Self {
        CatchUnwind(Box::pin(future))
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.get_mut().0.as_mut();
        // Unwind safety: after a panic the future is never polled again; what
        // it shared (the store, the registry of active runs) is reached
        // through poison-tolerant locks.
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Records `run_id` as `status` with `error`, unless it is recorded already,
/// and returns the outcome. Written directly (not through the recorder's
/// queue): it may run while the firing unwinds or is dropped, with nothing
/// left to await it.
fn end_if_running(ctx: &FireContext, run_id: RunId, status: RunStatus, error: &str) -> RunOutcome {
    let outcome = RunOutcome::ended_early(status, ctx.clock.now(), None, Some(error.to_string()));
    match ctx.store.finish_if_running(run_id, &outcome) {
        Ok(true) => warn!(
            run_id = run_id.0,
            status = status.as_str(),
            error,
            "run ended by jobrun"
        ),
        Ok(false) => {}
        Err(e) => {
            error!(run_id = run_id.0, error = %e, "recording how a run ended; the next start marks it abandoned")
        }
    }
    outcome
}

/// Armed from the claim until the firing's outcome is settled: dropped
/// armed, the firing was cancelled, and the run is recorded `interrupted`.
struct ClaimGuard<'a> {
    ctx: &'a FireContext,
    run_id: RunId,
    armed: bool,
}

impl<'a> ClaimGuard<'a> {
    fn new(ctx: &'a FireContext, run_id: RunId) -> Self {
        ClaimGuard {
            ctx,
            run_id,
            armed: true,
        }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.ctx.active.unregister(self.run_id);
        let error = if std::thread::panicking() {
            "jobrun internal error: the firing panicked"
        } else {
            "jobrun stopped supervising the run before it ended (its firing was cancelled)"
        };
        let status = if std::thread::panicking() {
            RunStatus::Failed
        } else {
            RunStatus::Interrupted
        };
        end_if_running(self.ctx, self.run_id, status, error);
    }
}
