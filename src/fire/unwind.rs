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

use super::FireContext;
use crate::job::RunStatus;
use crate::store::Finish;

/// Polls a future, turning a panic inside it into `Err(message)`.
pub(super) struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> CatchUnwind<F> {
    pub(super) fn new(future: F) -> Self {
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
pub(super) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Records `run_id` as `status` with `error`, unless it is recorded already.
/// Written directly (not through the recorder's queue): it may run while
/// the firing unwinds or is dropped, with nothing left to await it.
pub(super) fn end_if_running(ctx: &FireContext, run_id: i64, status: RunStatus, error: &str) {
    let finish = Finish {
        status,
        finished_at: ctx.clock.now(),
        duration_ms: None,
        exit_code: None,
        signal: None,
        output_bytes: 0,
        output_tail: &[],
        error: Some(error),
    };
    match ctx.store.finish_if_running(run_id, &finish) {
        Ok(true) => warn!(
            run_id,
            status = status.as_str(),
            error,
            "run ended by jobrun"
        ),
        Ok(false) => {}
        Err(e) => {
            error!(run_id, error = %e, "recording how a run ended; the next start marks it abandoned")
        }
    }
}

/// Armed from the claim until the firing's outcome is settled: dropped
/// armed, the firing was cancelled, and the run is recorded `interrupted`.
pub(super) struct ClaimGuard<'a> {
    ctx: &'a FireContext,
    run_id: i64,
    armed: bool,
}

impl<'a> ClaimGuard<'a> {
    pub(super) fn new(ctx: &'a FireContext, run_id: i64) -> Self {
        ClaimGuard {
            ctx,
            run_id,
            armed: true,
        }
    }

    pub(super) fn disarm(mut self) {
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
