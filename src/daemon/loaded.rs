//! Records in the state what the daemon runs (its jobs, and its sources'
//! errors and warnings), at start and after each reload, so `jobrun status`
//! needs nothing but the state (issue 12). Knows the plan and the store's
//! record; decides nothing about health (that is `crate::health`).

use tracing::warn;

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
