//! Housekeeping beside the scheduler loop: pruning the run history and, as
//! PID 1, reaping orphaned processes. It must not know the loop's ticks,
//! firings or reloads.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::shutdown::Stopping;
use crate::fire::FireContext;
use crate::runner;
use crate::store::Retention;

/// Applies the history retention.
pub(super) fn prune(ctx: &FireContext, now: DateTime<Utc>, retention: Retention) {
    match ctx.store.prune(now, retention) {
        Ok(0) => {}
        Ok(removed) => info!(removed, "pruned the run history"),
        Err(e) => warn!(error = %e, "pruning the run history"),
    }
}

/// Applies the history retention on a pool thread, so a long deletion never
/// holds up a tick. (Not its own timer task: the loop's wake-ups start it,
/// so it costs the idle daemon no wake-up of its own.)
pub(super) fn prune_in_background(
    ctx: &Arc<FireContext>,
    now: DateTime<Utc>,
    retention: Retention,
) {
    let ctx = Arc::clone(ctx);
    drop(tokio::task::spawn_blocking(move || {
        prune(&ctx, now, retention);
    }));
}

/// As PID 1, every orphan in the container becomes our child: reap the
/// zombies on every SIGCHLD, never touching our own jobs (see
/// `runner::reap_orphans`), until the daemon stops. Signals that arrive
/// together are merged into one, but one pass reaps every zombie there is,
/// so nothing waits: no periodic wake-up is needed (the idle daemon stays
/// asleep), unless SIGCHLD cannot be watched at all.
pub(super) async fn reap_orphans_until(mut stopping: Stopping) {
    let mut sigchld = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "cannot watch SIGCHLD; reaping orphans every few seconds");
            None
        }
    };
    let mut every = tokio::time::interval(Duration::from_secs(5));
    let mut first = true;
    loop {
        // The first pass takes the zombies that were there before us.
        if !std::mem::take(&mut first) {
            let signalled = async {
                match &mut sigchld {
                    Some(sig) => sig.recv().await.is_some(),
                    None => {
                        every.tick().await;
                        true
                    }
                }
            };
            tokio::select! {
                () = stopping.requested() => return,
                more = signalled => if !more { return },
            }
        }
        match tokio::task::spawn_blocking(runner::reap_orphans).await {
            Ok(0) | Err(_) => {}
            Ok(n) => tracing::debug!(reaped = n, "reaped orphaned processes"),
        }
    }
}
