//! One firing from start to end: lease -> claim -> wait until ready -> run ->
//! record, then its retries.
//!
//! Every trigger (schedule, manual, reboot, catch-up, chain, watch, retry,
//! start) comes through here, so they share the same guarantees: the command
//! never starts unless its claim is committed, a tick is claimed at most once
//! across every process sharing the state directory, and every claimed run
//! ends with a recorded outcome.
//!
//! In parts, in the order a firing meets them: `acquire` (the job's lease
//! from the store, its holder, `replace`), `record` (the claim and the outcome), `execute`
//! (readiness, then the command or the `signal:` job), with `env` (the run's
//! environment), `readiness` (`requires:` checks), `signal_job` (`signal:`
//! jobs), `active` (the runs this process supervises), `retry`, `chain`,
//! `limits` (descriptors), `missed` and `unwind` (runs jobrun itself failed),
//! and `events` (each run's start and end, told to the daemon's subscribers).
//!
//! Composes `store` (leases, claims, the recorder) and `runner`; knows
//! nothing of schedules or of the daemon's loop.

mod acquire;
mod active;
mod chain;
mod env;
pub mod events;
mod execute;
pub mod limits;
mod log_limit;
mod missed;
mod readiness;
mod record;
mod retry;
mod signal_job;
#[cfg(test)]
mod tests;
mod unwind;

pub use active::{ActiveRuns, StopReason};
pub use chain::{chained, fire_and_chain, runnable};
pub use events::{RunEvent, RunEvents};
pub use limits::Limits;
pub use missed::flush_log_summaries;
pub use retry::fire_with_retries;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tracing::{debug, info};

use crate::clock::Clock;
use crate::job::{Concurrency, Firing, RunId, RunOutcome, RunStatus};
use crate::plan::Job;
use crate::plan::Plan;
use crate::runner::Stream;
use crate::store::postgres::fingerprint::fingerprint;
use crate::store::recorder::Recorder;
use crate::store::{Declared, LeaseMode, Location, Store};

use acquire::{acquire, skip_busy, Acquired};
use execute::execute;
use record::new_run;

/// Where the lines of every run go (the daemon's stdout, a terminal): like the
/// runner's sink, plus the run's id for structured logs.
pub trait JobOutput: Send + Sync {
    fn line(&self, job: &str, run_id: RunId, stream: Stream, line: &[u8]);
}

/// This machine's name, recorded with every run and heartbeat.
pub fn this_host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The identity of this jobrun process in the runs it claims:
/// `host:pid:start` (see [`crate::store::owner::owner_id`]).
pub fn owner_id(host: &str, started: DateTime<Utc>) -> String {
    crate::store::owner::owner_id(host, std::process::id(), started)
}

/// Everything a firing needs besides the job.
pub struct FireContext {
    pub store: Arc<Store>,
    /// Makes the firing path's store calls on a thread of its own.
    pub recorder: Recorder,
    pub clock: Arc<dyn Clock>,
    pub host: String,
    /// Identifies this jobrun process in the runs it claims (`host:pid:start`).
    pub owner: String,
    pub sink: Arc<dyn JobOutput>,
    /// jobrun's own environment, the base of every job's (SPEC 6).
    pub base_env: BTreeMap<String, String>,
    pub tail_bytes: usize,
    pub active: ActiveRuns,
    /// How many runs may hold descriptors at once, and the firing path's
    /// rate-limited warnings.
    pub limits: Limits,
    /// Who hears of each run's start and end (metrics, notifications);
    /// empty unless somebody subscribes.
    pub events: RunEvents,
}

impl FireContext {
    /// Opens the store at `location` and starts its recorder thread (its
    /// spool in `state_dir`, this host's own files): the one set-up of the
    /// daemon and of `jobrun run`. `host` is this
    /// process's host (`--host-id`); `started` is when this process started
    /// (part of its owner id); lines of runs go to `sink`; `base_env` is
    /// jobrun's own environment.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        location: &Location,
        state_dir: &std::path::Path,
        host: String,
        clock: Arc<dyn Clock>,
        started: DateTime<Utc>,
        sink: Arc<dyn JobOutput>,
        base_env: BTreeMap<String, String>,
        tail_bytes: usize,
    ) -> anyhow::Result<FireContext> {
        let store = Arc::new(Store::open_at(location).with_context(|| match location {
            Location::StateDir(dir) => format!("opening state directory {}", dir.display()),
            Location::Database(_) => "opening the fleet's PostgreSQL database".to_string(),
        })?);
        Ok(FireContext {
            // Its spool in `state_dir/spool/`, so what the store refuses
            // outlives this process (issue 14, guarantee 8).
            recorder: Recorder::start_spooled(Arc::clone(&store), state_dir)
                .context("starting the recorder thread")?,
            store,
            clock,
            owner: owner_id(&host, started),
            host,
            sink,
            base_env,
            tail_bytes,
            active: ActiveRuns::default(),
            limits: Limits::for_this_process(),
            events: RunEvents::default(),
        })
    }
}

/// Tells a fleet's store the definition of every job of `plan` (at start
/// and after each reload), so that a host whose definition of a job differs
/// from its peers' is refused instead of running it twice. Nothing to do on
/// a store of one host.
pub fn declare(store: &Store, plan: &Plan) {
    if !store.is_fleet() {
        return;
    }
    let zone = plan.default_zone();
    store.declare(
        plan.jobs()
            .iter()
            .map(|job| Declared {
                job: job.name.clone(),
                fingerprint: fingerprint(&job.spec, zone),
                exclusive: job.spec.concurrency != Concurrency::Allow,
            })
            .collect(),
    );
}

impl FireContext {
    /// Lets peers stop this process's runs (a `replace` job started on
    /// another host asks through the fleet's store).
    /// And stops a command of this host left running by a daemon that a
    /// fleet peer declared dead, when it is provably that run's process
    /// group (as start-up recovery does on one host).
    pub fn accept_stop_requests(&self) {
        let active = self.active.clone();
        self.store.set_stop_handler(Arc::new(move |id| {
            active.stop_run(id, StopReason::Replaced);
        }));
        self.store.set_orphan_handler(Arc::new(|run| {
            let (Some(pid), Some(started)) = (run.pid, run.started_at) else {
                return;
            };
            if crate::store::owner::same_process(crate::runner::job_group_started(pid), started) {
                tracing::warn!(job = %run.job, run_id = run.run_id, pid,
                    "stopping the process group a dead daemon of this host left running");
                crate::runner::stop_foreign_group(pid, crate::runner::DEFAULT_KILL_GRACE);
            }
        }));
    }
}

/// What became of a firing.
#[derive(Debug, Clone, PartialEq)]
pub enum FireResult {
    /// Another process (or an earlier firing) has this tick; nothing recorded.
    Lost,
    /// Recorded as skipped, with the reason.
    Skipped { run_id: RunId, reason: String },
    /// Not claimed through a failure of jobrun's own (out of descriptors,
    /// the store refusing writes): recorded `missed`, at once or when the
    /// store accepts writes again, so its row id is not known here.
    Missed { reason: String },
    /// The run ended (or could not start) and was recorded: how, as the
    /// store has it.
    Finished {
        run_id: RunId,
        outcome: RunOutcome,
        /// Stopped because a newer run took its place (`concurrency: replace`).
        replaced: bool,
    },
}

impl FireResult {
    /// The recorded run, if there is one.
    pub fn run_id(&self) -> Option<RunId> {
        match self {
            FireResult::Lost | FireResult::Missed { .. } => None,
            FireResult::Skipped { run_id, .. } | FireResult::Finished { run_id, .. } => {
                Some(*run_id)
            }
        }
    }

    /// How the run ended, if it was run (or could not start).
    pub fn outcome(&self) -> Option<&RunOutcome> {
        match self {
            FireResult::Finished { outcome, .. } => Some(outcome),
            _ => None,
        }
    }

    fn finished(run_id: RunId, outcome: RunOutcome) -> FireResult {
        FireResult::Finished {
            run_id,
            outcome,
            replaced: false,
        }
    }
}

/// Runs one firing of `job` to the end and records it. A panic in jobrun
/// before the claim records the tick `missed`; after it, the run `failed`.
/// Its start and its end are published to `ctx.events`.
pub async fn fire(ctx: &FireContext, job: &Job, firing: &Firing) -> anyhow::Result<FireResult> {
    let started = std::sync::OnceLock::new();
    let result =
        unwind::before_claim(ctx, job, firing, fire_once(ctx, job, firing, &started)).await;
    if let Ok(result) = &result {
        events::settled(ctx, job, firing, result, started.get().copied());
    }
    result
}

async fn fire_once(
    ctx: &FireContext,
    job: &Job,
    firing: &Firing,
    started: &std::sync::OnceLock<DateTime<Utc>>,
) -> anyhow::Result<FireResult> {
    #[cfg(test)]
    tests::panic_if_asked(&job.name, true);
    let concurrency = job.spec.concurrency;
    let mode = match concurrency {
        Concurrency::Allow => LeaseMode::Shared,
        Concurrency::Forbid | Concurrency::Replace => LeaseMode::Exclusive,
    };
    // A slot before the lock, the run's first descriptor: under a low
    // descriptor limit runs wait here rather than fail (see `limits`).
    let mut slot = match ctx.limits.slot().await {
        Ok(slot) => slot,
        Err(waiting) => {
            let error = std::io::Error::other(format!(
                "{waiting} runs already wait for descriptors (jobs outlast their ticks under a low open-file limit)"
            ));
            return Ok(missed::missed(ctx, job, firing, "not started", &error));
        }
    };
    let lease = match acquire(ctx, job, firing, mode).await {
        Ok(Acquired::Lease(lease)) => lease,
        Ok(Acquired::Lost) => {
            debug!(job = %job.name, tick = ?firing.tick, "tick already claimed elsewhere");
            return Ok(FireResult::Lost);
        }
        Ok(Acquired::Busy(holder)) => return skip_busy(ctx, job, firing, holder.as_deref()).await,
        Err(e) => return Ok(missed::missed(ctx, job, firing, "not claimed", e.as_ref())),
    };

    if let Some(seen) = firing.changes_seen {
        // Checked again now that the lease is ours: a run that held it (a
        // chained reload, another daemon's watch run) may have handled them.
        let name = job.name.clone();
        let last = match ctx
            .recorder
            .call(move |store| store.last_success_start(&name))
            .await
        {
            Ok(last) => last,
            Err(e) => return Ok(missed::missed(ctx, job, firing, "not claimed", &e)),
        };
        if let Some(started) = last {
            if started >= seen {
                debug!(job = %job.name, "changes already handled by a run that started after them");
                return Ok(FireResult::Lost);
            }
        }
    }
    if ctx.active.is_stopping() {
        // Shutting down: a firing still waiting for its claim (a backlog
        // behind a slow store) claims nothing, so no row says a tick ran
        // that never did; the next start's catch-up sees it as downtime.
        debug!(job = %job.name, tick = ?firing.tick, "not claimed: the daemon is shutting down");
        return Ok(FireResult::Lost);
    }
    let claim = new_run(ctx, job, firing, RunStatus::Running, None);
    let run_id = match ctx.recorder.claim(claim).await {
        Ok(Some(run_id)) => run_id,
        Ok(None) => {
            debug!(job = %job.name, tick = ?firing.tick, "tick already claimed");
            return Ok(FireResult::Lost);
        }
        Err(e) => return Ok(missed::missed(ctx, job, firing, "not claimed", &e)),
    };
    info!(job = %job.name, run_id = run_id.0, trigger = firing.trigger.as_str(), "claimed");
    // From here the run must end on record, whatever happens to this firing.
    let result = unwind::after_claim(
        ctx,
        job,
        run_id,
        execute(ctx, job, firing, run_id, &mut slot, started),
    )
    .await;
    // The lease is held until the outcome is on record: a running row whose
    // lease is free always means its owner died.
    drop(lease);
    result
}
