//! `jobrun run NAME`: run a job now, through the same lock, claim and record
//! path as scheduled runs; exits with the job's exit code.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tokio::task::JoinSet;

use super::{load_plan, report_problems, Env, GlobalArgs, EXIT_FAILURE, EXIT_OK};
use crate::clock::{Clock, SystemClock};
use crate::fire::JobOutput;
use crate::fire::{self, FireContext, FireResult, StopReason};
use crate::job::{Firing, RunId, RunOutcome, RunStatus, Trigger};
use crate::plan::{Job, Plan};
use crate::runner::Stream;
use crate::runner::DEFAULT_TAIL_BYTES;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The job to run.
    pub name: String,
}

/// Passes the job's output through unchanged: stdout to stdout, stderr to stderr.
struct PassThrough;

impl JobOutput for PassThrough {
    fn line(&self, _job: &str, _run_id: RunId, stream: Stream, line: &[u8]) {
        // A closed terminal must not stop the job; its output is still recorded.
        let _ = match stream {
            Stream::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(line).and_then(|()| out.write_all(b"\n"))
            }
            Stream::Stderr => {
                let mut err = std::io::stderr().lock();
                err.write_all(line).and_then(|()| err.write_all(b"\n"))
            }
        };
    }
}

/// A chained job's name, and what its firing came to (`None`: not run).
type ChainedRun = (String, Result<(FireResult, Vec<Firing>)>);

/// Runs the job with its retries, then the jobs its outcome chains to (and
/// theirs) as the daemon does (see [`fire::fire_and_chain`]): every job a
/// finished run names starts at once, side by side, and this waits for all
/// of them. The result is the named job's.
async fn run_with_chain(
    ctx: &Arc<FireContext>,
    plan: &Arc<Plan>,
    job: &Job,
    firing: &Firing,
) -> Result<FireResult> {
    let (result, chained) = fire::fire_and_chain(ctx, job, firing).await?;
    let mut tasks: JoinSet<Option<ChainedRun>> = JoinSet::new();
    let start = |tasks: &mut JoinSet<_>, next: Firing| {
        let (ctx, plan) = (Arc::clone(ctx), Arc::clone(plan));
        tasks.spawn(async move {
            if ctx.active.is_stopping() {
                return None;
            }
            let chained = fire::runnable(&plan, &next)?;
            eprintln!("jobrun: starting chained job {}", chained.name);
            let fired = fire::fire_and_chain(&ctx, chained, &next).await;
            Some((chained.name.clone(), fired))
        });
    };
    for next in chained {
        start(&mut tasks, next);
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Some((name, Ok((r, chained))))) => {
                if let FireResult::Finished {
                    run_id, outcome, ..
                } = &r
                {
                    eprintln!(
                        "jobrun: chained job {name} (run {run_id}): {}",
                        outcome.status
                    );
                }
                for next in chained {
                    start(&mut tasks, next);
                }
            }
            Ok(Some((name, Err(e)))) => eprintln!("jobrun: chained job {name}: {e:#}"),
            Ok(None) => {}
            Err(e) => eprintln!("jobrun: a chained job's task failed: {e}"),
        }
    }
    Ok(result)
}

pub fn run(global: &GlobalArgs, env: &Env, args: &RunArgs) -> Result<i32> {
    let (plan, diagnostics, _) = load_plan(global, env)?;
    report_problems(&diagnostics);
    // Shared with the tasks of chained runs.
    let plan = Arc::new(plan);
    let Some(job) = plan.get(&args.name) else {
        let names: Vec<&str> = plan.jobs().iter().map(|j| j.name.as_str()).collect();
        bail!(
            "no job named {:?}; the jobs are: {}",
            args.name,
            names.join(", ")
        );
    };
    let mut location = super::location(global, env)?;
    if let crate::store::Location::Database(member) = &mut location {
        member.kind = crate::store::postgres::daemons::Kind::Run;
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ctx = Arc::new(FireContext::open(
        &location,
        &super::state_dir(global, env)?,
        super::host_id(global),
        Arc::clone(&clock),
        clock.now(),
        Arc::new(PassThrough),
        std::env::vars().collect::<BTreeMap<_, _>>(),
        DEFAULT_TAIL_BYTES,
    )?);
    // Runs of a crontab job recorded under an earlier name move to its name
    // first, so the run is recorded, and its history read, under one name.
    if let Err(e) = ctx
        .store
        .follow_names(&plan.derived_names(), || plan.legacy_names())
    {
        tracing::warn!(error = %e, "moving renamed crontab jobs' runs to their new names");
    }
    crate::fire::declare(&ctx.store, &plan);
    let firing = Firing::new(job.name.clone(), None, Trigger::Manual);
    // Two workers: output written to a slow terminal or pipe must not hold up
    // the timer that enforces the job's timeout.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        let fire = run_with_chain(&ctx, &plan, job, &firing);
        tokio::pin!(fire);
        // The job runs in its own process group, so Ctrl-C and a terminal
        // hang-up reach only jobrun: stop the job (SIGTERM, SIGKILL after its
        // kill_grace) and record it, rather than leave it running unwatched.
        loop {
            tokio::select! {
                result = &mut fire => break result,
                _ = term.recv() => { ctx.active.stop_all(StopReason::Shutdown); }
                _ = int.recv() => { ctx.active.stop_all(StopReason::Shutdown); }
                _ = hup.recv() => { ctx.active.stop_all(StopReason::Shutdown); }
            }
        }
    })?;
    // A fleet's member only while the run went: its row says stopped.
    if let Err(e) = ctx
        .store
        .is_fleet()
        .then(|| ctx.store.daemon_stopped(&ctx.owner, clock.now()))
        .transpose()
    {
        tracing::warn!(error = %e, "recording the end of this run's membership");
    }
    Ok(match result {
        FireResult::Finished {
            run_id,
            outcome:
                RunOutcome {
                    status,
                    exit_code,
                    signal,
                    error,
                    ..
                },
            ..
        } => {
            if status != RunStatus::Succeeded {
                eprintln!(
                    "jobrun: run {run_id} of {}: {status}{}{}",
                    job.name,
                    match (exit_code, signal) {
                        (Some(code), _) => format!(" (exit {code})"),
                        (_, Some(sig)) => format!(" (signal {sig})"),
                        _ => String::new(),
                    },
                    error.map(|e| format!(": {e}")).unwrap_or_default()
                );
            }
            match (exit_code, signal) {
                (Some(code), _) => code,
                // The shell's convention for a child killed by a signal.
                (None, Some(sig)) => 128 + sig,
                (None, None) if status == RunStatus::Succeeded => EXIT_OK,
                (None, None) => EXIT_FAILURE,
            }
        }
        FireResult::Skipped { run_id, reason } => {
            eprintln!(
                "jobrun: {} not started: {reason} (recorded as run {run_id}, skipped)",
                job.name
            );
            EXIT_FAILURE
        }
        FireResult::Lost => {
            eprintln!(
                "jobrun: {} not started: its run was claimed elsewhere",
                job.name
            );
            EXIT_FAILURE
        }
        FireResult::Missed { reason } => {
            eprintln!("jobrun: {} not started (missed): {reason}", job.name);
            EXIT_FAILURE
        }
    })
}
