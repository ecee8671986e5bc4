//! Recording: the claim of a firing (to run, or to record as skipped) and
//! the outcome of its run, through the recorder. An outcome the store
//! refuses now is kept in the recorder's spool and written later.

use tracing::warn;

use super::{missed, FireContext, FireResult};
use crate::job::{Firing, RunId, RunOutcome, RunStatus};
use crate::plan::Job;
use crate::store::NewRun;

/// The claim of `firing`, to run (`Running`) or to record as `Skipped`.
pub(super) fn new_run(
    ctx: &FireContext,
    job: &Job,
    firing: &Firing,
    status: RunStatus,
    error: Option<&str>,
) -> NewRun {
    NewRun {
        job: job.name.clone(),
        trigger: firing.trigger,
        tick: firing.tick,
        status,
        at: ctx.clock.now(),
        host: ctx.host.clone(),
        owner: ctx.owner.clone(),
        error: error.map(str::to_string),
        parent_id: firing.parent,
        attempt: firing.attempt,
    }
}

/// Records a run that jobrun ended itself, with no output of its own (not
/// started, not ready, a signal job's failure, a lost child), and its result.
pub(super) async fn end_early(
    ctx: &FireContext,
    run_id: RunId,
    status: RunStatus,
    error: String,
    duration_ms: Option<i64>,
) -> anyhow::Result<FireResult> {
    let outcome = RunOutcome::ended_early(status, ctx.clock.now(), duration_ms, Some(error));
    record(ctx, run_id, &outcome).await;
    Ok(FireResult::finished(run_id, outcome))
}

/// Records how the run `run_id` ended. A store that refuses the write (full,
/// read-only) keeps the outcome in the recorder's spool, written when it
/// accepts writes again, so this never fails.
pub(super) async fn record(ctx: &FireContext, run_id: RunId, outcome: &RunOutcome) {
    // A clone of a few words: the output tail is shared, not copied.
    if let Err(e) = ctx.recorder.finish(run_id, outcome.clone()).await {
        missed::warn_limited(ctx, &missed::key("recording an outcome", &e), || {
            warn!(
                run_id = run_id.0,
                status = outcome.status.as_str(),
                error = %e,
                "the outcome could not be recorded now; it is kept and written when the store accepts writes again"
            );
        });
    }
}
