//! Recording: the claim of a firing (to run, or to record as skipped) and
//! the outcome of its run, through the recorder. An outcome the store
//! refuses now is kept in the recorder's spool and written later.

use tracing::warn;

use super::{missed, FireContext, FireResult};
use crate::job::{Firing, RunStatus};
use crate::plan::Job;
use crate::store::recorder::{Claim, Outcome};

/// The claim of `firing`, to run (`Running`) or to record as `Skipped`.
pub(super) fn new_run(
    ctx: &FireContext,
    job: &Job,
    firing: &Firing,
    status: RunStatus,
    error: Option<&str>,
) -> Claim {
    Claim {
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
    run_id: i64,
    status: RunStatus,
    error: String,
    duration_ms: Option<i64>,
) -> anyhow::Result<FireResult> {
    record(
        ctx,
        run_id,
        status,
        None,
        None,
        0,
        &[],
        Some(&error),
        duration_ms,
    )
    .await?;
    Ok(FireResult::finished(run_id, status, Some(error)))
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn record(
    ctx: &FireContext,
    run_id: i64,
    status: RunStatus,
    exit_code: Option<i32>,
    signal: Option<i32>,
    output_bytes: u64,
    tail: &[u8],
    error: Option<&str>,
    duration_ms: Option<i64>,
) -> anyhow::Result<()> {
    let outcome = Outcome {
        status,
        finished_at: ctx.clock.now(),
        duration_ms,
        exit_code,
        signal,
        output_bytes,
        output_tail: tail.to_vec(),
        error: error.map(str::to_string),
    };
    // A store that refuses the write (full, read-only) keeps the outcome
    // in the recorder's spool, written when it accepts writes again.
    if let Err(e) = ctx.recorder.finish(run_id, outcome).await {
        missed::warn_limited(ctx, &missed::key("recording an outcome", &e), || {
            warn!(
                run_id,
                status = status.as_str(),
                error = %e,
                "the outcome could not be recorded now; it is kept and written when the store accepts writes again"
            );
        });
    }
    Ok(())
}
