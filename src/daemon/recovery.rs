//! Start-up recovery: the `running` rows whose owner is shown dead are
//! recorded `abandoned`, and a job process group such an owner left running
//! on this host is stopped.
//!
//! A free lock is not proof of death: the files in `locks/` can be deleted
//! under a live daemon (a tmp cleaner, an operator), and then a second
//! daemon's lock is free while the first one's run goes on. A run is
//! abandoned only when its owner is shown dead: on this host, its pid is gone
//! or now belongs to a process that started after the owner did; on another
//! host, it stopped or its heartbeat is stale. A held lock still proves a live
//! owner.
//!
//! Must not know schedules or how a job is started.

use anyhow::{Context, Result};
use tracing::{info, warn};

use crate::fire::FireContext;
use crate::runner;
use crate::store::owner::{same_process, Evidence, Liveness};
use crate::store::LeaseMode;

/// Marks the `running` rows whose owner is shown dead as `abandoned`, and
/// stops the process group such an owner left running on this host.
pub(super) fn recover_abandoned(ctx: &FireContext) -> Result<()> {
    for run in ctx.store.running().context("reading running runs")? {
        let Some(_lease) = ctx
            .store
            .lease(&run.job, LeaseMode::Exclusive)
            .context("checking a job's lock")?
        else {
            continue; // alive in another process sharing this state directory
        };
        let heartbeat = if ctx.store.is_fleet() {
            None
        } else {
            ctx.store
                .daemon(&run.owner)
                .context("reading a daemon's heartbeat")?
        };
        // Not `me`: this daemon has claimed nothing yet, and a row with its
        // pid is an earlier process's.
        let evidence = Evidence::here(&ctx.host, None, ctx.clock.now(), heartbeat.as_ref());
        let liveness = ctx
            .store
            .owner_liveness(&run.owner, &evidence)
            .context("reading whether a run's owner is alive")?;
        let why = match liveness {
            Liveness::Alive(why) => {
                info!(job = %run.job, run_id = run.id.0, owner = %run.owner, why = %why,
                    "a running run's lock is free but its owner is alive; left to it");
                continue;
            }
            Liveness::Dead(why) => why,
        };
        // Its command may still be running, unsupervised (the daemon was
        // killed with SIGKILL): no timeout, no output, and the free lock
        // would let a new tick start beside it. Stop it, if its process
        // group is still the one this run started.
        let stopped = match (run.pid, run.started_at) {
            (Some(pid), Some(started)) if run.host == ctx.host => {
                let is_the_run = same_process(runner::job_group_started(pid), started);
                if is_the_run {
                    runner::stop_foreign_group(pid, runner::DEFAULT_KILL_GRACE);
                    warn!(job = %run.job, run_id = run.id.0, pid, "stopping the process group a killed jobrun left running");
                }
                is_the_run
            }
            _ => false,
        };
        let reason = format!(
            "the jobrun process that ran it ({}) ended while it ran ({why}){}",
            run.owner,
            if stopped {
                "; its process group, still running, was stopped"
            } else {
                ""
            }
        );
        if ctx.store.mark_abandoned(run.id, ctx.clock.now(), &reason)? {
            warn!(job = %run.job, run_id = run.id.0, "marked abandoned");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::HEARTBEAT;

    /// The owner rule (`store::owner`, tested there) calls another host's
    /// daemon dead after three missed beats of this daemon's heartbeat.
    #[test]
    fn an_owner_is_stale_after_three_missed_heartbeats() {
        assert_eq!(
            crate::store::owner::STALE_AFTER.to_std().unwrap(),
            HEARTBEAT * 3
        );
    }
}
