//! The executor: runs each firing (with its retries) as a task of the loop,
//! hands its outcome back as [`Done`], and stops every run at shutdown. It
//! must not know when or why a firing was scheduled.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::fire::{self, FireContext, StopReason};
use crate::job::{Firing, Trigger};
use crate::plan::Plan;

/// What a firing task hands back to the loop when it ends.
pub(super) struct Done {
    pub(super) job: String,
    pub(super) trigger: Trigger,
    /// The chained runs its outcome starts.
    pub(super) chained: Vec<Firing>,
}

/// Runs one firing (with its retries) as a task of the loop. A job that a
/// reload removed, or that is disabled, is not run.
pub(super) fn spawn_firing(
    tasks: &mut JoinSet<Done>,
    ctx: &Arc<FireContext>,
    plan: &Arc<Plan>,
    firing: Firing,
) {
    let ctx = Arc::clone(ctx);
    let plan = Arc::clone(plan);
    tasks.spawn(async move {
        let mut done = Done {
            job: firing.job.clone(),
            trigger: firing.trigger,
            chained: Vec::new(),
        };
        let Some(job) = fire::runnable(&plan, &firing) else {
            warn!(job = %firing.job, trigger = firing.trigger.as_str(), "not run: no such enabled job (any more)");
            return done;
        };
        // Its chained firings are started by the loop, all at once (see
        // `fire::fire_and_chain`).
        match fire::fire_and_chain(&ctx, job, &firing).await {
            Ok((result, chained)) => {
                done.chained = chained;
                if let Some(error) = result.outcome().and_then(|o| o.error.as_ref()) {
                    debug!(job = %job.name, %error, "run ended by jobrun");
                }
            }
            Err(e) => error!(job = %firing.job, error = format!("{e:#}"), "firing failed"),
        }
        done
    });
}

/// Stops scheduling, sends SIGTERM to every running job's process group, waits
/// up to `grace`, then SIGKILL; every run is recorded before this returns.
pub(super) async fn shut_down(ctx: &FireContext, tasks: &mut JoinSet<Done>, grace: Duration) {
    let stopping = ctx.active.stop_all(StopReason::Shutdown);
    info!(running = stopping, "shutting down");
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!(
            running = ctx.active.len(),
            "shutdown grace over; killing the remaining jobs"
        );
        ctx.active.kill_all();
        // Killed jobs end at once; only a stuck database could hold this up,
        // and then the runs are recorded abandoned at the next start.
        let recorded = tokio::time::timeout(Duration::from_secs(10), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if recorded.is_err() {
            warn!(
                "some runs could not be recorded before exit; the next start marks them abandoned"
            );
        }
    }
    info!("daemon stopped");
}
