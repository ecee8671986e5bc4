//! Chaining: the runs a finished run starts (`on_success`, `on_failure`).
//!
//! One behaviour for the daemon and `jobrun run`, both through
//! [`fire_and_chain`]: when a run ends (after its last retry), every job its
//! outcome names starts at once, concurrently, each as its own firing, and
//! each of those starts its own chain as soon as it ends. Nothing waits for a
//! sibling: `on_success: [b, c]` runs `b` and `c` side by side. A process
//! that is stopping starts no chained run. Which chained job may still run
//! (in the plan, enabled) is [`runnable`]'s answer, asked when it starts.

use super::{fire_with_retries, FireContext, FireResult};
use crate::job::{Firing, RunStatus, Trigger};
use crate::plan::{Job, Plan};

/// Runs one firing of `job` with its retries, then gives its result and the
/// chained firings its outcome starts, which the caller starts at once, all
/// of them (none when this process is stopping).
pub async fn fire_and_chain(
    ctx: &FireContext,
    job: &Job,
    firing: &Firing,
) -> anyhow::Result<(FireResult, Vec<Firing>)> {
    let result = fire_with_retries(ctx, job, firing).await?;
    let next = if ctx.active.is_stopping() {
        Vec::new()
    } else {
        chained(job, &result)
    };
    Ok((result, next))
}

/// The job a queued firing (a chained one, say) names, if it may still run:
/// it is in `plan` (a reload may have removed it) and enabled.
pub fn runnable<'a>(plan: &'a Plan, firing: &Firing) -> Option<&'a Job> {
    plan.get(&firing.job).filter(|j| j.spec.enabled)
}

/// The runs a finished run starts: its job's `on_success` or `on_failure`
/// jobs, as `chain` firings linked to it. A skipped, lost or interrupted
/// run starts none.
pub fn chained(job: &Job, result: &FireResult) -> Vec<Firing> {
    let FireResult::Finished {
        run_id, outcome, ..
    } = result
    else {
        return Vec::new();
    };
    let links = match outcome.status {
        RunStatus::Succeeded => &job.spec.on_success,
        RunStatus::Failed | RunStatus::TimedOut | RunStatus::Killed => &job.spec.on_failure,
        _ => return Vec::new(),
    };
    links
        .iter()
        .map(|link| Firing {
            parent: Some(*run_id),
            ..Firing::new(link.job.clone(), None, Trigger::Chain)
        })
        .collect()
}
