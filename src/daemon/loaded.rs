//! Records in the state what the daemon runs (its jobs, and its sources'
//! errors and warnings), at start and after each reload, so `jobrun status`
//! needs nothing but the state (issue 12); and moves the runs of crontab jobs
//! whose derived name changed to their new name. Knows the plan and the
//! store's record; decides nothing about health (that is `crate::health`).

use std::sync::Arc;

use tracing::{info, warn};

use crate::fire::FireContext;
use crate::job::{Diagnostic, Severity};
use crate::plan::Plan;
use crate::store::Loaded;

/// What `plan` and `problems` say, as the store keeps it.
pub fn summary(plan: &Plan, problems: &[Diagnostic]) -> Loaded {
    let of = |severity: Severity| {
        problems
            .iter()
            .filter(|d| d.severity == severity)
            .map(ToString::to_string)
            .collect()
    };
    Loaded {
        jobs: plan.jobs().iter().map(|j| j.name.clone()).collect(),
        errors: of(Severity::Error),
        warnings: of(Severity::Warning),
    }
}

/// Moves the runs of renamed crontab jobs to their current names (see
/// `Store::follow_names`) at start, before anything reads them (catch-up,
/// pruning, claims); after a reload see [`follow_reloaded_names`]. A failure
/// is logged: the runs stay under the old name, where `history OLD-NAME`
/// still finds them.
pub fn follow_names(store: &crate::store::Store, plan: &Plan) {
    log_followed(store.follow_names(&plan.derived_names(), || plan.legacy_names()));
}

fn log_followed(result: Result<usize, crate::store::StoreError>) {
    match result {
        Ok(0) => {}
        Ok(runs) => info!(
            runs,
            "runs of renamed crontab jobs moved to their new names"
        ),
        Err(e) => warn!(error = %e, "moving renamed crontab jobs' runs to their new names"),
    }
}

/// Moves the runs of renamed crontab jobs to their current names after a
/// reload, through the recorder thread (like [`record`], so the loop never
/// waits on SQLite). Called before the new plan's record.
pub async fn follow_reloaded_names(ctx: &FireContext, plan: &Arc<Plan>) {
    let names = plan.derived_names();
    let for_legacy = Arc::clone(plan);
    log_followed(
        ctx.recorder
            .call(move |store| store.follow_names(&names, || for_legacy.legacy_names()))
            .await,
    );
}

/// Writes the summary to the daemon's row (through the recorder thread, so
/// the loop never waits on SQLite behind runs' records). A failure is logged:
/// `status` then shows what was recorded before.
pub async fn record(
    ctx: &FireContext,
    plan: &Plan,
    problems: &[Diagnostic],
    started: chrono::DateTime<chrono::Utc>,
) {
    let loaded = summary(plan, problems);
    let (owner, host, now) = (ctx.owner.clone(), ctx.host.clone(), ctx.clock.now());
    let pid = std::process::id();
    let result = ctx
        .recorder
        .call(move |store| store.record_loaded(&owner, pid, &host, started, now, &loaded))
        .await;
    if let Err(e) = result {
        warn!(error = %e, "recording what the daemon loaded (for `jobrun status`)");
    }
}
