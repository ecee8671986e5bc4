//! Ticks jobrun could not claim or start through a failure of its own.
//!
//! Out of descriptors, the state directory full or read-only: on 9377199
//! such a firing logged an error and left no row, so the tick vanished from
//! the history (issue 11). Here it is recorded `missed` with the reason (by
//! the recorder: at once, or from its spool when the store accepts writes
//! again), and the warning is rate-limited, since every firing of a tick
//! meets the same failure.
//!
//! Knows the recorder and the log limiter; nothing of processes.

use std::time::Instant;

use tracing::warn;

use super::record::new_run;
use super::{FireContext, FireResult};
use crate::job::{Firing, RunStatus};
use crate::plan::Job;

/// Records `firing` of `job` as missed because `what` failed with `error`.
pub(super) fn missed(
    ctx: &FireContext,
    job: &Job,
    firing: &Firing,
    what: &str,
    error: &(dyn std::error::Error + 'static),
) -> FireResult {
    let mut reason = format!("{what}: {error}");
    let mut cause = error.source();
    // Causes the outer message does not already say (an `anyhow` context
    // shows only itself; a store error shows its cause).
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !reason.contains(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        cause = inner.source();
    }
    warn_limited(ctx, &key(what, error), || {
        warn!(
            job = %job.name,
            tick = ?firing.tick,
            trigger = firing.trigger.as_str(),
            %reason,
            "missed"
        );
    });
    let claim = new_run(ctx, job, firing, RunStatus::Missed, Some(&reason));
    ctx.recorder.record_missed(claim);
    FireResult::Missed { reason }
}

/// How a claimed run that could not start ends, logged rate-limited. Out of
/// descriptors or processes is jobrun's failure, not the job's: the tick is
/// `missed`, with the reason, and one line stands for every job; a job's own
/// failure (a missing program) is `failed` and keeps a line of its own.
pub(super) fn start_failed(
    ctx: &FireContext,
    job: &Job,
    run_id: crate::job::RunId,
    e: &crate::runner::RunError,
) -> (RunStatus, String) {
    let (status, key) = if e.is_exhaustion() {
        (RunStatus::Missed, key("could not start", e))
    } else {
        (
            RunStatus::Failed,
            key(&format!("could not start {}", job.name), e),
        )
    };
    let error = format!("could not start: {e}");
    warn_limited(ctx, &key, || {
        warn!(job = %job.name, run_id = run_id.0, %error, status = status.as_str(), "not started");
    });
    (status, error)
}

/// What identifies "the same error" across jobs: what failed and the
/// innermost cause (the outer messages name the job).
pub(super) fn key(what: &str, error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    format!("{what}: {cause}")
}

/// Runs `log` for the first occurrence of `key` in an interval; later ones
/// are counted and summed up in one line (see `log_limit`).
pub(super) fn warn_limited(ctx: &FireContext, key: &str, log: impl FnOnce()) {
    let admitted = ctx.limits.log.admit(key, Instant::now(), |repeated| {
        warn!(
            repeated,
            error = key,
            "the same error again, not logged one by one"
        );
    });
    if admitted {
        log();
    }
}

/// Logs the summaries of errors whose interval is over (the daemon calls
/// this on its heartbeat, so a count is never held back for long).
pub fn flush_log_summaries(ctx: &FireContext) {
    for (key, repeated) in ctx.limits.log.flush(Instant::now()) {
        warn!(repeated, error = %key, "the same error again, not logged one by one");
    }
}
