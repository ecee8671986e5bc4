//! `jobrun run NAME`: run a job now, through the same lock, claim and record
//! path as scheduled runs; exits with the job's exit code.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::{load_plan, report_problems, state_dir, Env, GlobalArgs, EXIT_FAILURE, EXIT_OK};
use crate::clock::{Clock, SystemClock};
use crate::fire::JobOutput;
use crate::fire::{self, ActiveRuns, FireContext, FireResult, StopReason};
use crate::job::{Firing, RunStatus, Trigger};
use crate::lock;
use crate::plan::{Job, Plan};
use crate::recorder::Recorder;
use crate::runner::Stream;
use crate::runner::DEFAULT_TAIL_BYTES;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The job to run.
    pub name: String,
}

/// Passes the job's output through unchanged: stdout to stdout, stderr to stderr.
struct PassThrough;

impl JobOutput for PassThrough {
    fn line(&self, _job: &str, _run_id: i64, stream: Stream, line: &[u8]) {
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

/// Runs the job with its retries, then the jobs its outcome chains to (and
/// theirs), one after another, as the daemon would. The result is the named
/// job's.
async fn run_with_chain(
    ctx: &FireContext,
    plan: &Plan,
    job: &Job,
    firing: &Firing,
) -> Result<FireResult> {
    let result = fire::fire_with_retries(ctx, job, firing).await?;
    let mut queue: VecDeque<Firing> = fire::chained(job, &result).into();
    while let Some(next) = queue.pop_front() {
        if ctx.active.is_stopping() {
            break;
        }
        let Some(chained) = plan.get(&next.job).filter(|j| j.spec.enabled) else {
            continue;
        };
        eprintln!("jobrun: starting chained job {}", chained.name);
        match fire::fire_with_retries(ctx, chained, &next).await {
            Ok(r) => {
                if let FireResult::Finished { run_id, status, .. } = &r {
                    eprintln!(
                        "jobrun: chained job {} (run {run_id}): {status}",
                        chained.name
                    );
                }
                queue.extend(fire::chained(chained, &r));
            }
            Err(e) => eprintln!("jobrun: chained job {}: {e:#}", chained.name),
        }
    }
    Ok(result)
}

pub fn run(global: &GlobalArgs, env: &Env, args: &RunArgs) -> Result<i32> {
    let (plan, diagnostics, _) = load_plan(global, env)?;
    report_problems(&diagnostics);
    let Some(job) = plan.get(&args.name) else {
        let names: Vec<&str> = plan.jobs().iter().map(|j| j.name.as_str()).collect();
        bail!(
            "no job named {:?}; the jobs are: {}",
            args.name,
            names.join(", ")
        );
    };
    let dir = state_dir(global, env)?;
    let store = Arc::new(
        Store::open(&dir).with_context(|| format!("opening state directory {}", dir.display()))?,
    );
    // Runs of a crontab job recorded under an earlier name move to its name
    // first, so the run is recorded, and its history read, under one name.
    if let Err(e) = store.follow_names(&plan.derived_names(), || plan.legacy_names()) {
        tracing::warn!(error = %e, "moving renamed crontab jobs' runs to their new names");
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let host = fire::this_host();
    let ctx = FireContext {
        recorder: Recorder::start(Arc::clone(&store)).context("starting the recorder thread")?,
        store,
        locks_dir: lock::locks_dir(&dir),
        owner: fire::owner_id(&host, clock.now()),
        clock,
        host,
        sink: Arc::new(PassThrough),
        base_env: std::env::vars().collect::<BTreeMap<_, _>>(),
        tail_bytes: DEFAULT_TAIL_BYTES,
        active: ActiveRuns::default(),
        limits: fire::Limits::for_this_process(),
    };
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
    Ok(match result {
        FireResult::Finished {
            run_id,
            status,
            exit_code,
            signal,
            error,
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
