//! One firing from start to end: lock -> claim -> run -> record.
//!
//! Scheduled, manual and start-up runs all come through here, so they share
//! the same guarantees: the command never starts unless its claim is committed,
//! a tick is claimed at most once across every process sharing the state
//! directory, and every claimed run ends with a recorded outcome.
//!
//! Composes `lock`, `store` and `runner`; knows nothing of schedules or of the
//! daemon's loop.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::job::{Command, Concurrency, Firing, RunStatus};
use crate::lock::{self, LockMode, RunLock};
use crate::plan::Job;
use crate::runner::{
    self, OutputSink, Program, RunEnd, RunRequest, Stopper, Stream, DEFAULT_KILL_GRACE,
    DEFAULT_SHELL,
};
use crate::store::{Finish, NewRun, RunRecord, Store};

/// How long a firing waits for a process that holds a job's lock to record
/// what it is doing, before calling the job busy.
const HOLDER_WAIT: Duration = Duration::from_secs(2);
const HOLDER_POLL: Duration = Duration::from_millis(10);

/// Runs a store call (SQLite may wait up to its busy timeout for another
/// process's write lock, and fsyncs every commit) without stalling the other
/// tasks of this runtime worker: output pumps, timeouts, the scheduler.
/// Needs the multi-thread runtime, which the daemon and `run` use.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Why a running run is being stopped by jobrun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The daemon is shutting down: recorded `interrupted`.
    Shutdown,
    /// A newer run of a `concurrency: replace` job takes its place: `killed`.
    Replaced,
}

struct Active {
    stopper: Stopper,
    reason: Arc<Mutex<Option<StopReason>>>,
}

/// The runs this process is supervising, so shutdown and `replace` can stop them.
#[derive(Clone, Default)]
pub struct ActiveRuns {
    inner: Arc<Mutex<Registry>>,
}

#[derive(Default)]
struct Registry {
    runs: HashMap<i64, Active>,
    /// Set by [`ActiveRuns::stop_all`]: runs registered afterwards (a firing
    /// that was already past its claim) are stopped as they start.
    stopping: Option<StopReason>,
    killing: bool,
}

impl ActiveRuns {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops every run, and every run that starts from now on (daemon
    /// shutdown). Returns how many were asked to stop.
    pub fn stop_all(&self, reason: StopReason) -> usize {
        let mut registry = self.lock();
        registry.stopping = Some(reason);
        for run in registry.runs.values() {
            request_stop(run, reason);
        }
        registry.runs.len()
    }

    /// Sends SIGKILL to every run still going (after the shutdown grace).
    pub fn kill_all(&self) {
        let mut registry = self.lock();
        registry.killing = true;
        for run in registry.runs.values() {
            run.stopper.kill();
        }
    }

    pub fn len(&self) -> usize {
        self.lock().runs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once the daemon is shutting down: no new command should start.
    pub fn is_stopping(&self) -> bool {
        self.lock().stopping.is_some()
    }

    fn register(&self, run_id: i64, run: Active) {
        let mut registry = self.lock();
        if let Some(reason) = registry.stopping {
            request_stop(&run, reason);
            if registry.killing {
                run.stopper.kill();
            }
        }
        registry.runs.insert(run_id, run);
    }

    fn unregister(&self, run_id: i64) {
        self.lock().runs.remove(&run_id);
    }

    fn stop_run(&self, id: i64, reason: StopReason) -> bool {
        match self.lock().runs.get(&id) {
            Some(run) => {
                request_stop(run, reason);
                true
            }
            None => false,
        }
    }
}

fn request_stop(run: &Active, reason: StopReason) {
    let mut slot = run.reason.lock().unwrap_or_else(|p| p.into_inner());
    slot.get_or_insert(reason);
    run.stopper.stop();
}

/// Where the lines of every run go (the daemon's stdout, a terminal): like the
/// runner's sink, plus the run's id for structured logs.
pub trait JobOutput: Send + Sync {
    fn line(&self, job: &str, run_id: i64, stream: Stream, line: &[u8]);
}

/// Adapts a [`JobOutput`] to one run.
struct RunOutput {
    run_id: i64,
    inner: Arc<dyn JobOutput>,
}

impl OutputSink for RunOutput {
    fn line(&self, job: &str, stream: Stream, line: &[u8]) {
        self.inner.line(job, self.run_id, stream, line);
    }
}

/// This machine's name, recorded with every run and heartbeat.
pub fn this_host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The identity of this jobrun process in the runs it claims:
/// `host:pid:start`, unique even when a container restarts as PID 1 again.
pub fn owner_id(host: &str, started: DateTime<Utc>) -> String {
    format!(
        "{host}:{}:{}",
        std::process::id(),
        started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}

/// Everything a firing needs besides the job.
pub struct FireContext {
    pub store: Arc<Store>,
    pub locks_dir: PathBuf,
    pub clock: Arc<dyn Clock>,
    pub host: String,
    /// Identifies this jobrun process in the runs it claims (`host:pid:start`).
    pub owner: String,
    pub sink: Arc<dyn JobOutput>,
    /// jobrun's own environment, the base of every job's (SPEC 6).
    pub base_env: BTreeMap<String, String>,
    pub tail_bytes: usize,
    pub active: ActiveRuns,
}

/// What became of a firing.
#[derive(Debug, Clone, PartialEq)]
pub enum FireResult {
    /// Another process (or an earlier firing) has this tick; nothing recorded.
    Lost,
    /// Recorded as skipped, with the reason.
    Skipped { run_id: i64, reason: String },
    /// The run ended (or could not start) and was recorded.
    Finished {
        run_id: i64,
        status: RunStatus,
        exit_code: Option<i32>,
        signal: Option<i32>,
    },
}

/// Runs one firing of `job` to the end and records it.
pub async fn fire(ctx: &FireContext, job: &Job, firing: &Firing) -> anyhow::Result<FireResult> {
    let concurrency = job.spec.concurrency;
    let mode = match concurrency {
        Concurrency::Allow => LockMode::Shared,
        Concurrency::Forbid | Concurrency::Replace => LockMode::Exclusive,
    };
    let lock = match acquire(ctx, job, firing, mode).await? {
        Acquired::Lock(lock) => lock,
        Acquired::Lost => {
            debug!(job = %job.name, tick = ?firing.tick, "tick already claimed elsewhere");
            return Ok(FireResult::Lost);
        }
        Acquired::Busy(holder) => return skip_busy(ctx, job, firing, holder.as_ref()),
    };

    let claim = new_run(ctx, job, firing, RunStatus::Running, None);
    let Some(run_id) = blocking(|| ctx.store.claim(&claim))? else {
        debug!(job = %job.name, tick = ?firing.tick, "tick already claimed");
        return Ok(FireResult::Lost);
    };
    info!(job = %job.name, run_id, trigger = firing.trigger.as_str(), "claimed");
    let result = execute(ctx, job, firing, run_id).await;
    // The lock is held until the outcome is on record: a running row whose lock
    // is free always means its process died.
    drop(lock);
    result
}

enum Acquired {
    Lock(RunLock),
    /// The lock is held by a run of this very tick.
    Lost,
    /// The lock is held by another run (the record of it, once visible).
    Busy(Option<RunRecord>),
}

async fn acquire(
    ctx: &FireContext,
    job: &Job,
    firing: &Firing,
    mode: LockMode,
) -> anyhow::Result<Acquired> {
    let mut waited = Duration::ZERO;
    let mut stop_sent = false;
    let grace = job.spec.kill_grace.unwrap_or(DEFAULT_KILL_GRACE);
    loop {
        if let Some(lock) = lock::try_lock(&ctx.locks_dir, &job.name, mode)? {
            return Ok(Acquired::Lock(lock));
        }
        let running: Vec<RunRecord> = blocking(|| ctx.store.running())?
            .into_iter()
            .filter(|r| r.job == job.name)
            .collect();
        if firing.tick.is_some() && running.iter().any(|r| r.tick == firing.tick) {
            return Ok(Acquired::Lost);
        }
        // The newest: an older `running` row may belong to a process that died
        // (recorded `abandoned` only at the next daemon start).
        let holder = running.into_iter().next_back();
        match (job.spec.concurrency, holder) {
            (Concurrency::Replace, Some(holder)) => {
                if !stop_sent {
                    stop_holder(ctx, &holder, grace);
                    stop_sent = true;
                }
                // Wait for the stopped run to be recorded and let go.
                if waited > grace + HOLDER_WAIT {
                    return Ok(Acquired::Busy(Some(holder)));
                }
            }
            (Concurrency::Forbid, Some(holder)) => return Ok(Acquired::Busy(Some(holder))),
            // Between another process's lock and its claim there is a moment
            // with no record yet; wait for it rather than guess.
            (_, _) if waited >= HOLDER_WAIT => return Ok(Acquired::Busy(None)),
            _ => {}
        }
        tokio::time::sleep(HOLDER_POLL).await;
        waited += HOLDER_POLL;
    }
}

/// Stops the run holding a `replace` job's lock: through our own supervisor when
/// it is ours, by signalling its process group when it runs elsewhere on this host.
fn stop_holder(ctx: &FireContext, holder: &RunRecord, grace: Duration) {
    if ctx.active.stop_run(holder.id, StopReason::Replaced) {
        return;
    }
    if holder.host != ctx.host {
        warn!(job = %holder.job, run_id = holder.id, host = %holder.host, "cannot replace a run on another host");
        return;
    }
    if let Some(pid) = holder.pid {
        runner::stop_foreign_group(pid, grace);
    }
}

/// The claim of `firing`, to run (`Running`) or to record as `Skipped`.
fn new_run<'a>(
    ctx: &'a FireContext,
    job: &'a Job,
    firing: &Firing,
    status: RunStatus,
    error: Option<&'a str>,
) -> NewRun<'a> {
    NewRun {
        job: &job.name,
        trigger: firing.trigger,
        tick: firing.tick,
        status,
        at: ctx.clock.now(),
        host: &ctx.host,
        owner: &ctx.owner,
        error,
    }
}

fn skip_busy(
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
    match blocking(|| ctx.store.claim(&claim))? {
        Some(run_id) => {
            info!(job = %job.name, run_id, %reason, "skipped");
            Ok(FireResult::Skipped { run_id, reason })
        }
        None => Ok(FireResult::Lost),
    }
}

/// Starts the claimed run, supervises it and records the outcome. Every path
/// out of here records the run: it was claimed, so it must not stay `running`.
async fn execute(
    ctx: &FireContext,
    job: &Job,
    firing: &Firing,
    run_id: i64,
) -> anyhow::Result<FireResult> {
    if ctx.active.is_stopping() {
        // Claimed just as the daemon began to shut down: the command never
        // starts, and the claim is closed on record.
        let error = "not started: the daemon was shutting down";
        record(
            ctx,
            run_id,
            RunStatus::Interrupted,
            None,
            None,
            0,
            &[],
            Some(error),
            None,
        )?;
        return Ok(FireResult::Finished {
            run_id,
            status: RunStatus::Interrupted,
            exit_code: None,
            signal: None,
        });
    }
    let request = build_request(ctx, job, firing, run_id);
    let started = std::time::Instant::now();
    let sink = Arc::new(RunOutput {
        run_id,
        inner: Arc::clone(&ctx.sink),
    });
    let running = match runner::start(request, sink) {
        Ok(running) => running,
        Err(e) => {
            let error = format!("could not start: {e}");
            warn!(job = %job.name, run_id, %error, "failed");
            record(
                ctx,
                run_id,
                RunStatus::Failed,
                None,
                None,
                0,
                &[],
                Some(&error),
                None,
            )?;
            return Ok(FireResult::Finished {
                run_id,
                status: RunStatus::Failed,
                exit_code: None,
                signal: None,
            });
        }
    };
    let pid = running.pid();
    if let Err(e) = blocking(|| ctx.store.mark_started(run_id, pid, ctx.clock.now())) {
        // The command already runs; its outcome will still be recorded.
        warn!(job = %job.name, run_id, error = %e, "recording the start failed");
    }
    let reason = Arc::new(Mutex::new(None));
    ctx.active.register(
        run_id,
        Active {
            stopper: running.stopper(),
            reason: Arc::clone(&reason),
        },
    );
    let outcome = running.wait().await;
    ctx.active.unregister(run_id);
    let stop_reason = *reason.lock().unwrap_or_else(|p| p.into_inner());
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            // The exit could not be observed; the runner has killed the group.
            let error = e.to_string();
            warn!(job = %job.name, run_id, %error, "lost track of the job");
            let ms = i64::try_from(started.elapsed().as_millis()).ok();
            record(
                ctx,
                run_id,
                RunStatus::Killed,
                None,
                None,
                0,
                &[],
                Some(&error),
                ms,
            )?;
            return Ok(FireResult::Finished {
                run_id,
                status: RunStatus::Killed,
                exit_code: None,
                signal: None,
            });
        }
    };

    let (status, exit_code, signal, error) = match outcome.end {
        RunEnd::Exited(0) => (RunStatus::Succeeded, Some(0), None, None),
        RunEnd::Exited(code) => (RunStatus::Failed, Some(code), None, None),
        RunEnd::Signaled(sig) => (RunStatus::Killed, None, Some(sig), None),
        RunEnd::TimedOut { exit } => (
            RunStatus::TimedOut,
            exit.code(),
            exit.signal(),
            Some(format!(
                "timed out after {}",
                humantime::format_duration(job.spec.timeout.unwrap_or_default())
            )),
        ),
        RunEnd::Stopped { exit } => match stop_reason {
            Some(StopReason::Replaced) => (
                RunStatus::Killed,
                exit.code(),
                exit.signal(),
                Some("replaced by a newer run (concurrency: replace)".to_string()),
            ),
            _ => (
                RunStatus::Interrupted,
                exit.code(),
                exit.signal(),
                Some("stopped by a shutdown of jobrun (SIGTERM, SIGINT or SIGHUP)".to_string()),
            ),
        },
    };
    let duration_ms = i64::try_from(started.elapsed().as_millis()).ok();
    record(
        ctx,
        run_id,
        status,
        exit_code,
        signal,
        outcome.output_bytes,
        &outcome.tail,
        error.as_deref(),
        duration_ms,
    )?;
    info!(job = %job.name, run_id, status = status.as_str(), exit_code, signal, "finished");
    Ok(FireResult::Finished {
        run_id,
        status,
        exit_code,
        signal,
    })
}

#[allow(clippy::too_many_arguments)]
fn record(
    ctx: &FireContext,
    run_id: i64,
    status: RunStatus,
    exit_code: Option<i32>,
    signal: Option<i32>,
    output_bytes: u64,
    tail: &[u8],
    error: Option<&str>,
    duration_ms: Option<i64>,
) -> anyhow::Result<()> {
    let finish = Finish {
        status,
        finished_at: ctx.clock.now(),
        duration_ms,
        exit_code,
        signal,
        output_bytes,
        output_tail: tail,
        error,
    };
    // The outcome is known: try hard to record it before the lock is let go
    // (a run left `running` would later read as abandoned).
    let mut attempt = 1;
    loop {
        match blocking(|| ctx.store.finish(run_id, &finish)) {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 3 => {
                warn!(run_id, attempt, error = %e, "recording the outcome failed; retrying");
                std::thread::sleep(Duration::from_millis(500));
                attempt += 1;
            }
            Err(e) => {
                tracing::error!(run_id, status = status.as_str(), error = %e, "the outcome could not be recorded");
                return Err(e.into());
            }
        }
    }
}

/// The job's environment (SPEC 6): jobrun's own, then the source's variables,
/// then the `JOBRUN_*` variables.
fn build_request(ctx: &FireContext, job: &Job, firing: &Firing, run_id: i64) -> RunRequest {
    let mut env = ctx.base_env.clone();
    env.extend(job.spec.env.clone());
    env.insert("JOBRUN_JOB".into(), job.name.clone());
    env.insert("JOBRUN_RUN_ID".into(), run_id.to_string());
    env.insert(
        "JOBRUN_TICK".into(),
        firing.tick.map(rfc3339).unwrap_or_default(),
    );
    env.insert("JOBRUN_TRIGGER".into(), firing.trigger.as_str().into());
    let program = match &job.spec.command {
        Command::Shell(command) => Program::Shell {
            shell: job
                .spec
                .shell
                .clone()
                .unwrap_or_else(|| DEFAULT_SHELL.into()),
            command: command.clone(),
        },
        Command::Argv(argv) => Program::Argv(argv.clone()),
    };
    RunRequest {
        job: job.name.clone(),
        program,
        env,
        explicit_env: job.spec.env.keys().cloned().collect(),
        workdir: job.spec.workdir.clone(),
        user: job.spec.user.clone(),
        stdin: job.spec.stdin.clone().map(String::into_bytes),
        timeout: job.spec.timeout,
        kill_grace: job.spec.kill_grace.unwrap_or(DEFAULT_KILL_GRACE),
        tail_bytes: ctx.tail_bytes,
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
