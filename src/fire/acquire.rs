//! Taking a job's lease from the store before its claim: the lease is free
//! (run), held by a run of this very tick (lost), or held by another run
//! (busy). A busy lease is answered by the job's `concurrency:`: `forbid`
//! records a skip with the holder's run, `replace` stops the holder and
//! waits for its lease, and a `watch:` run of a `forbid` job waits for the
//! holder to end, so that no change is ever lost.
//!
//! The holder is found through the store's `running` rows whose owner is
//! alive ([`crate::store::owner::owner_alive`]: a row a dead owner left is
//! nobody's, and its pid must never be signalled), polled every
//! [`HOLDER_POLL`] for up to [`HOLDER_WAIT`]: between another process's
//! lease and its claim there is a moment with no record yet.

use std::time::Duration;

use tracing::{info, warn};

use super::active::StopReason;
use super::record::new_run;
use super::{missed, FireContext, FireResult};
use crate::job::{Concurrency, Firing, RunStatus, Trigger};
use crate::plan::Job;
use crate::runner::{self, DEFAULT_KILL_GRACE};
use crate::store::owner::Evidence;
use crate::store::{Lease, LeaseMode, RunRecord, Store, StoreError};

/// How long a firing waits for a process that holds a job's lock to record
/// what it is doing, before calling the job busy.
const HOLDER_WAIT: Duration = Duration::from_secs(2);
const HOLDER_POLL: Duration = Duration::from_millis(10);
/// How often a watch run looks whether the job's current run has ended.
const WATCH_WAIT_POLL: Duration = Duration::from_millis(200);

pub(super) enum Acquired {
    Lease(Lease),
    /// The lease is held by a run of this very tick.
    Lost,
    /// The lease is held by another run (the record of it, once visible).
    Busy(Option<Box<RunRecord>>),
}

pub(super) async fn acquire(
    ctx: &FireContext,
    job: &Job,
    firing: &Firing,
    mode: LeaseMode,
) -> anyhow::Result<Acquired> {
    let mut waited = Duration::ZERO;
    let mut stop_sent = false;
    let grace = job.spec.kill_grace.unwrap_or(DEFAULT_KILL_GRACE);
    loop {
        let lease = ctx
            .store
            .lease(&job.name, mode)
            .map_err(|e| anyhow::Error::new(e).context("taking the job's lock"))?;
        if let Some(lease) = lease {
            return Ok(Acquired::Lease(lease));
        }
        let (name, host, me) = (job.name.clone(), ctx.host.clone(), ctx.owner.clone());
        let now = ctx.clock.now();
        let running: Vec<RunRecord> = ctx
            .recorder
            .call(move |store| live_runs_of(store, &name, &host, &me, now))
            .await
            .map_err(|e| anyhow::Error::new(e).context("reading the job's running runs"))?;
        if firing.tick.is_some() && running.iter().any(|r| r.tick == firing.tick) {
            return Ok(Acquired::Lost);
        }
        // The newest live one: the lease admits one exclusive holder.
        let holder = running.into_iter().next_back();
        match (job.spec.concurrency, holder) {
            (Concurrency::Replace, Some(holder)) => {
                if !stop_sent {
                    stop_holder(ctx, &holder, grace).await;
                    stop_sent = true;
                }
                // Wait for the stopped run to be recorded and let go (on
                // another host, after its next heartbeat reads the request).
                let reach = if ctx.store.is_fleet() {
                    ctx.store.heartbeat_interval()
                } else {
                    Duration::ZERO
                };
                if waited > grace.saturating_add(HOLDER_WAIT).saturating_add(reach) {
                    return Ok(Acquired::Busy(Some(Box::new(holder))));
                }
            }
            // A change must never be lost (systemd #5770): a watch run waits
            // for the job's current run to end instead of being skipped.
            (Concurrency::Forbid, Some(_)) if firing.trigger == Trigger::Watch => {
                if ctx.active.is_stopping() {
                    // Shutting down: the change is not run by this process.
                    return Ok(Acquired::Lost);
                }
                tokio::time::sleep(WATCH_WAIT_POLL).await;
                waited = Duration::ZERO;
                continue;
            }
            (Concurrency::Forbid, Some(holder)) => {
                return Ok(Acquired::Busy(Some(Box::new(holder))))
            }
            // Between another process's lock and its claim there is a moment
            // with no record yet; wait for it rather than guess.
            (_, _) if waited >= HOLDER_WAIT => return Ok(Acquired::Busy(None)),
            _ => {}
        }
        tokio::time::sleep(HOLDER_POLL).await;
        waited += HOLDER_POLL;
    }
}

/// The `running` rows of `job` whose owner is alive, oldest first: a row
/// whose owner died (recorded `abandoned` only at the next daemon start, or
/// by a fleet peer once its lease ran out) holds no lease.
fn live_runs_of(
    store: &Store,
    job: &str,
    host: &str,
    me: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<RunRecord>, StoreError> {
    let mut live = Vec::new();
    for run in store.running()?.into_iter().filter(|r| r.job == job) {
        // Our own runs need no evidence; another process's may need its beat.
        let heartbeat = if run.owner == me || store.is_fleet() {
            None
        } else {
            store.daemon(&run.owner)?
        };
        let evidence = Evidence::here(host, Some(me), now, heartbeat.as_ref());
        if store.owner_liveness(&run.owner, &evidence)?.is_alive() {
            live.push(run);
        }
    }
    Ok(live)
}

/// Stops the run holding a `replace` job's lease: through our own supervisor
/// when it is ours, by signalling its process group when it runs elsewhere
/// on this host, through the fleet's database when it runs on another host.
async fn stop_holder(ctx: &FireContext, holder: &RunRecord, grace: Duration) {
    if ctx.active.stop_run(holder.id, StopReason::Replaced) {
        return;
    }
    if holder.host != ctx.host || ctx.store.is_fleet() {
        let job = holder.job.clone();
        match ctx
            .recorder
            .call(move |store| store.request_stop(&job))
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                warn!(job = %holder.job, run_id = holder.id.0, host = %holder.host, "cannot replace a run on another host")
            }
            Err(e) => {
                warn!(job = %holder.job, run_id = holder.id.0, error = %e, "asking the host of a run to stop it")
            }
        }
        return;
    }
    if let Some(pid) = holder.pid {
        runner::stop_foreign_group(pid, grace);
    }
}

pub(super) async fn skip_busy(
    ctx: &FireContext,
    job: &Job,
    firing: &Firing,
    holder: Option<&RunRecord>,
) -> anyhow::Result<FireResult> {
    let reason = match holder {
        Some(h) => format!(
            "already running (run {}{}, started {})",
            h.id,
            h.pid
                .map(|p| format!(", pid {p} on {}", h.host))
                .unwrap_or_default(),
            h.started_at
                .unwrap_or(h.claimed_at)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        None => "already running (its lock is held)".to_string(),
    };
    let claim = new_run(ctx, job, firing, RunStatus::Skipped, Some(&reason));
    match ctx.recorder.claim(claim).await {
        Ok(Some(run_id)) => {
            info!(job = %job.name, run_id = run_id.0, %reason, "skipped");
            Ok(FireResult::Skipped { run_id, reason })
        }
        Ok(None) => Ok(FireResult::Lost),
        Err(e) => Ok(missed::missed(ctx, job, firing, "not claimed", &e)),
    }
}
