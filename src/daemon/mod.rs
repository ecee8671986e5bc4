//! `jobrun daemon`: the scheduler loop. The only place with tokio's `select!`,
//! signals and shutdown.
//!
//! It sleeps until the next tick (never polls; it re-reads the wall clock at
//! least once a minute so suspend and clock steps are noticed), hands every due
//! job to `fire` concurrently, and on SIGTERM/SIGINT stops scheduling, stops
//! the running jobs and records them before exiting.

pub mod output;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::fire::{self, ActiveRuns, FireContext, FireResult, StopReason};
use crate::job::{Firing, Trigger};
use crate::lock::{self, LockMode};
use crate::plan::Plan;
use crate::store::Store;

/// The longest the loop sleeps without reading the wall clock again.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// What the daemon needs to run, resolved by the command line.
pub struct DaemonOptions {
    pub plan: Plan,
    pub state_dir: PathBuf,
    /// jobrun's own environment, the base of every job's.
    pub base_env: BTreeMap<String, String>,
    /// How long running jobs get after SIGTERM at shutdown before SIGKILL.
    pub shutdown_grace: Duration,
    pub tail_bytes: usize,
    pub json_output: bool,
}

/// Runs the daemon until `shutdown` completes, then stops running jobs and
/// records them. Public so tests can boot a daemon in-process.
pub async fn run(
    opts: DaemonOptions,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let store = Arc::new(
        Store::open(&opts.state_dir)
            .with_context(|| format!("opening state directory {}", opts.state_dir.display()))?,
    );
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let started = clock.now();
    let ctx = Arc::new(FireContext {
        store: Arc::clone(&store),
        locks_dir: lock::locks_dir(&opts.state_dir),
        clock: Arc::clone(&clock),
        owner: format!(
            "{host}:{}:{}",
            std::process::id(),
            started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
        host,
        sink: Arc::new(output::StdoutSink {
            json: opts.json_output,
            clock: Arc::clone(&clock),
        }),
        base_env: opts.base_env,
        tail_bytes: opts.tail_bytes,
        active: ActiveRuns::default(),
    });
    recover_abandoned(&ctx)?;
    let plan = Arc::new(opts.plan);
    info!(
        jobs = plan.jobs().len(),
        state = %opts.state_dir.display(),
        "daemon started"
    );

    let mut tasks: JoinSet<()> = JoinSet::new();
    for job in plan.jobs().iter().filter(|j| j.runs_at_reboot()) {
        // One claim per daemon start: the start instant is the tick.
        let firing = Firing {
            job: job.name.clone(),
            tick: Some(started),
            trigger: Trigger::Reboot,
        };
        spawn_firing(&mut tasks, &ctx, &plan, firing);
    }

    tokio::pin!(shutdown);
    let mut cursor = started;
    loop {
        let now = clock.now();
        let sleep = match plan.next_wakeup(cursor) {
            Some(next) => until(now, next).min(MAX_SLEEP),
            None => MAX_SLEEP,
        };
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(sleep) => {}
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = joined {
                    error!(error = %e, "a firing task panicked");
                }
                continue;
            }
        }
        let now = clock.now();
        if now < cursor {
            // The wall clock went back: ticks up to `cursor` were handled; the
            // claims would refuse them anyway.
            warn!(
                by_ms = (cursor - now).num_milliseconds(),
                "wall clock moved backwards"
            );
            continue;
        }
        for (job, tick) in plan.due(cursor, now) {
            let firing = Firing {
                job: job.name.clone(),
                tick: Some(tick),
                trigger: Trigger::Schedule,
            };
            spawn_firing(&mut tasks, &ctx, &plan, firing);
        }
        cursor = now;
    }

    shut_down(&ctx, &mut tasks, opts.shutdown_grace).await;
    Ok(())
}

/// Time from `now` until `t`, rounded up to the millisecond so the timer never
/// wakes a hair before the tick.
fn until(now: DateTime<Utc>, t: DateTime<Utc>) -> Duration {
    let micros = (t - now).num_microseconds().unwrap_or(i64::MAX).max(0) as u64;
    Duration::from_millis(micros.div_ceil(1000))
}

fn spawn_firing(tasks: &mut JoinSet<()>, ctx: &Arc<FireContext>, plan: &Arc<Plan>, firing: Firing) {
    let ctx = Arc::clone(ctx);
    let plan = Arc::clone(plan);
    tasks.spawn(async move {
        let Some(job) = plan.get(&firing.job) else {
            return;
        };
        match fire::fire(&ctx, job, &firing).await {
            Ok(FireResult::Lost)
            | Ok(FireResult::Skipped { .. })
            | Ok(FireResult::Finished { .. }) => {}
            Err(e) => error!(job = %firing.job, error = format!("{e:#}"), "firing failed"),
        }
    });
}

/// Marks the `running` rows whose process is gone as `abandoned`. A run holds
/// its job's lock until it is recorded, so a running row whose lock can be
/// taken exclusively has no live owner.
fn recover_abandoned(ctx: &FireContext) -> Result<()> {
    for run in ctx.store.running().context("reading running runs")? {
        let Some(_lock) = lock::try_lock(&ctx.locks_dir, &run.job, LockMode::Exclusive)
            .context("checking a job's lock")?
        else {
            continue; // alive in another process sharing this state directory
        };
        let reason = format!(
            "the jobrun process that ran it ({}) ended while it ran",
            run.owner
        );
        if ctx.store.mark_abandoned(run.id, ctx.clock.now(), &reason)? {
            warn!(job = %run.job, run_id = run.id, "marked abandoned");
        }
    }
    Ok(())
}

/// Stops scheduling, sends SIGTERM to every running job's process group, waits
/// up to `grace`, then SIGKILL; every run is recorded before this returns.
async fn shut_down(ctx: &FireContext, tasks: &mut JoinSet<()>, grace: Duration) {
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
        while tasks.join_next().await.is_some() {}
    }
    info!("daemon stopped");
}
