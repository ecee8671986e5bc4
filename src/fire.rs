//! One firing from start to end: lock -> claim -> wait until ready -> run ->
//! record, then its retries.
//!
//! Every trigger (schedule, manual, reboot, catch-up, chain, watch, retry,
//! start) comes through here, so they share the same guarantees: the command
//! never starts unless its claim is committed, a tick is claimed at most once
//! across every process sharing the state directory, and every claimed run
//! ends with a recorded outcome.
//!
//! Composes `lock`, `store`, `readiness`, `signal` and `runner`; knows nothing
//! of schedules or of the daemon's loop.

pub mod limits;
mod log_limit;
mod missed;
#[cfg(test)]
mod tests;
mod unwind;

pub use limits::Limits;
pub use missed::flush_log_summaries;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::job::{
    Command, Concurrency, Firing, IfNotRunning, RunStatus, SignalSpec, SourceKind, Trigger,
    DEFAULT_REQUIRES_TIMEOUT,
};
use crate::lock::{self, LockMode, RunLock};
use crate::plan::Job;
use crate::readiness::{self, Readiness};
use crate::recorder::{Claim, Outcome, Recorder};
use crate::runner::{
    self, OutputSink, Program, RunEnd, RunRequest, Stopper, Stream, DEFAULT_KILL_GRACE,
    DEFAULT_SHELL,
};
use crate::signal::{self, SignalOutcome};
use crate::store::{RunRecord, Store};

/// How long a firing waits for a process that holds a job's lock to record
/// what it is doing, before calling the job busy.
const HOLDER_WAIT: Duration = Duration::from_secs(2);
const HOLDER_POLL: Duration = Duration::from_millis(10);
/// How often a watch run looks whether the job's current run has ended.
const WATCH_WAIT_POLL: Duration = Duration::from_millis(200);

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
    /// Makes the firing path's store calls on a thread of its own.
    pub recorder: Recorder,
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
    /// How many runs may hold descriptors at once, and the firing path's
    /// rate-limited warnings.
    pub limits: Limits,
}

/// What became of a firing.
#[derive(Debug, Clone, PartialEq)]
pub enum FireResult {
    /// Another process (or an earlier firing) has this tick; nothing recorded.
    Lost,
    /// Recorded as skipped, with the reason.
    Skipped { run_id: i64, reason: String },
    /// Not claimed through a failure of jobrun's own (out of descriptors,
    /// the store refusing writes): recorded `missed`, at once or when the
    /// store accepts writes again, so its row id is not known here.
    Missed { reason: String },
    /// The run ended (or could not start) and was recorded.
    Finished {
        run_id: i64,
        status: RunStatus,
        exit_code: Option<i32>,
        signal: Option<i32>,
        /// Why jobrun ended or failed the run itself ("not ready: ...").
        error: Option<String>,
        /// Stopped because a newer run took its place (`concurrency: replace`).
        replaced: bool,
    },
}

impl FireResult {
    /// The recorded run, if there is one.
    pub fn run_id(&self) -> Option<i64> {
        match self {
            FireResult::Lost | FireResult::Missed { .. } => None,
            FireResult::Skipped { run_id, .. } | FireResult::Finished { run_id, .. } => {
                Some(*run_id)
            }
        }
    }

    fn finished(run_id: i64, status: RunStatus, error: Option<String>) -> FireResult {
        FireResult::Finished {
            run_id,
            status,
            exit_code: None,
            signal: None,
            error,
            replaced: false,
        }
    }

    /// A run that did not do its work for a reason another attempt may not
    /// meet: it failed, timed out, was not ready, or was killed by something
    /// other than jobrun's `replace`. Shutdown and skips are not retried.
    fn is_retryable(&self) -> bool {
        matches!(
            self,
            FireResult::Finished { status, replaced: false, .. }
                if matches!(status, RunStatus::Failed | RunStatus::TimedOut | RunStatus::Killed)
        )
    }
}

/// Runs `firing` and, while it fails and the job's `retry:` allows, tries
/// again after the backoff: each attempt is its own run (trigger `retry`,
/// linked to the first attempt). Returns the last attempt's result.
pub async fn fire_with_retries(
    ctx: &FireContext,
    job: &Job,
    firing: &Firing,
) -> anyhow::Result<FireResult> {
    let mut firing = firing.clone();
    let mut failed: Option<FireResult> = None;
    loop {
        let result = fire(ctx, job, &firing).await?;
        if let (Some(failure), FireResult::Skipped { .. } | FireResult::Lost) = (&failed, &result) {
            // A newer run of the job (the next tick) holds it: the retry is
            // moot, and the outcome to report and chain on is the failure.
            info!(job = %job.name, "no further retry: a newer run of the job took over");
            return Ok(failure.clone());
        }
        let Some(policy) = job.spec.retry else {
            return Ok(result);
        };
        if !result.is_retryable() || firing.attempt >= policy.attempts {
            if result.is_retryable() && policy.attempts > 1 {
                warn!(job = %job.name, attempts = firing.attempt, "failed on every attempt");
            }
            return Ok(result);
        }
        let Some(run_id) = result.run_id() else {
            return Ok(result);
        };
        failed = Some(result.clone());
        let next = firing.attempt + 1;
        let delay = policy.delay_before(next);
        info!(
            job = %job.name,
            run_id,
            attempt = next,
            of = policy.attempts,
            after = %humantime::format_duration(delay),
            "retrying"
        );
        if !sleep_unless_stopping(ctx, delay).await {
            info!(job = %job.name, run_id, "no retry: jobrun is shutting down");
            return Ok(result);
        }
        let first = if firing.attempt == 1 {
            run_id
        } else {
            firing.parent.unwrap_or(run_id)
        };
        firing = Firing {
            trigger: Trigger::Retry,
            parent: Some(first),
            attempt: next,
            ..firing
        };
    }
}

/// Sleeps `delay`; false as soon as the process begins shutting down.
async fn sleep_unless_stopping(ctx: &FireContext, delay: Duration) -> bool {
    let until = crate::clock::deadline(std::time::Instant::now(), delay);
    loop {
        if ctx.active.is_stopping() {
            return false;
        }
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        tokio::time::sleep(left.min(Duration::from_millis(100))).await;
    }
}

/// The runs a finished run starts: its job's `on_success` or `on_failure`
/// jobs, as `chain` firings linked to it. A skipped, lost or interrupted
/// run starts none.
pub fn chained(job: &Job, result: &FireResult) -> Vec<Firing> {
    let FireResult::Finished { run_id, status, .. } = result else {
        return Vec::new();
    };
    let links = match status {
        RunStatus::Succeeded => &job.spec.on_success,
        RunStatus::Failed | RunStatus::TimedOut | RunStatus::Killed => &job.spec.on_failure,
        _ => return Vec::new(),
    };
    links
        .iter()
        .map(|link| Firing {
            parent: Some(*run_id),
            ..Firing::new(link.job.clone(), None, Trigger::Chain)
        })
        .collect()
}

/// Runs one firing of `job` to the end and records it. A panic in jobrun
/// before the claim records the tick `missed`; after it, the run `failed`.
pub async fn fire(ctx: &FireContext, job: &Job, firing: &Firing) -> anyhow::Result<FireResult> {
    unwind::before_claim(ctx, job, firing, fire_once(ctx, job, firing)).await
}

async fn fire_once(ctx: &FireContext, job: &Job, firing: &Firing) -> anyhow::Result<FireResult> {
    #[cfg(test)]
    tests::panic_if_asked(&job.name, true);
    let concurrency = job.spec.concurrency;
    let mode = match concurrency {
        Concurrency::Allow => LockMode::Shared,
        Concurrency::Forbid | Concurrency::Replace => LockMode::Exclusive,
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
    let lock = match acquire(ctx, job, firing, mode).await {
        Ok(Acquired::Lock(lock)) => lock,
        Ok(Acquired::Lost) => {
            debug!(job = %job.name, tick = ?firing.tick, "tick already claimed elsewhere");
            return Ok(FireResult::Lost);
        }
        Ok(Acquired::Busy(holder)) => return skip_busy(ctx, job, firing, holder.as_deref()).await,
        Err(e) => return Ok(missed::missed(ctx, job, firing, "not claimed", e.as_ref())),
    };

    if let Some(seen) = firing.changes_seen {
        // Checked again now that the lock is ours: a run that held it (a
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
    let claim = new_run(ctx, job, firing, RunStatus::Running, None);
    let run_id = match ctx.recorder.claim(claim).await {
        Ok(Some(run_id)) => run_id,
        Ok(None) => {
            debug!(job = %job.name, tick = ?firing.tick, "tick already claimed");
            return Ok(FireResult::Lost);
        }
        Err(e) => return Ok(missed::missed(ctx, job, firing, "not claimed", &e)),
    };
    info!(job = %job.name, run_id, trigger = firing.trigger.as_str(), "claimed");
    // From here the run must end on record, whatever happens to this firing.
    let result = unwind::after_claim(
        ctx,
        job,
        run_id,
        execute(ctx, job, firing, run_id, &mut slot),
    )
    .await;
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
    Busy(Option<Box<RunRecord>>),
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
        let lock = lock::try_lock(&ctx.locks_dir, &job.name, mode)
            .map_err(|e| anyhow::Error::new(e).context("taking the job's lock"))?;
        if let Some(lock) = lock {
            return Ok(Acquired::Lock(lock));
        }
        let running: Vec<RunRecord> = ctx
            .recorder
            .call(|store| store.running())
            .await
            .map_err(|e| anyhow::Error::new(e).context("reading the job's running runs"))?
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
                if waited > grace.saturating_add(HOLDER_WAIT) {
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
fn new_run(
    ctx: &FireContext,
    job: &Job,
    firing: &Firing,
    status: RunStatus,
    error: Option<&str>,
) -> Claim {
    Claim {
        job: job.name.clone(),
        trigger: firing.trigger,
        tick: firing.tick,
        status,
        at: ctx.clock.now(),
        host: ctx.host.clone(),
        owner: ctx.owner.clone(),
        error: error.map(str::to_string),
        parent_id: firing.parent,
        attempt: firing.attempt,
    }
}

async fn skip_busy(
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
            info!(job = %job.name, run_id, %reason, "skipped");
            Ok(FireResult::Skipped { run_id, reason })
        }
        Ok(None) => Ok(FireResult::Lost),
        Err(e) => Ok(missed::missed(ctx, job, firing, "not claimed", &e)),
    }
}

/// Starts the claimed run, supervises it and records the outcome. Every path
/// out of here records the run: it was claimed, so it must not stay `running`.
async fn execute(
    ctx: &FireContext,
    job: &Job,
    firing: &Firing,
    run_id: i64,
    slot: &mut limits::Slot,
) -> anyhow::Result<FireResult> {
    if ctx.active.is_stopping() {
        // Claimed just as the daemon began to shut down: the command never
        // starts, and the claim is closed on record.
        let error = "not started: the daemon was shutting down".to_string();
        return end_early(ctx, run_id, RunStatus::Interrupted, error, None).await;
    }
    let request = build_request(ctx, job, firing, run_id);
    let started = std::time::Instant::now();
    if !job.spec.requires.is_empty() {
        let timeout = job
            .spec
            .requires_timeout
            .unwrap_or(DEFAULT_REQUIRES_TIMEOUT);
        let ready = readiness::wait_ready(
            &job.spec.requires,
            timeout,
            &|command| readiness::command_request(&request, command),
            &|| ctx.active.is_stopping(),
        )
        .await;
        let ms = i64::try_from(started.elapsed().as_millis()).ok();
        let (status, error) = match ready {
            Readiness::Ready => (None, String::new()),
            Readiness::NotReady(why) => (Some(RunStatus::Failed), format!("not ready: {why}")),
            Readiness::Stopped => (
                Some(RunStatus::Interrupted),
                "not started: the daemon shut down while waiting for readiness".to_string(),
            ),
        };
        if let Some(status) = status {
            warn!(job = %job.name, run_id, %error, "not started");
            return end_early(ctx, run_id, status, error, ms).await;
        }
        debug!(job = %job.name, run_id, "ready");
    }
    match &job.spec.command {
        Command::Signal(spec) => send_signal(ctx, job, run_id, spec, started).await,
        Command::Shell(_) | Command::Argv(_) => {
            run_command(ctx, job, run_id, request, started, slot).await
        }
    }
}

/// A `signal:` job's run: no process of its own, only the signal.
async fn send_signal(
    ctx: &FireContext,
    job: &Job,
    run_id: i64,
    spec: &SignalSpec,
    started: std::time::Instant,
) -> anyhow::Result<FireResult> {
    let outcome = signal::send(spec);
    let ms = i64::try_from(started.elapsed().as_millis()).ok();
    match outcome {
        SignalOutcome::Sent { pid, detail } => {
            // The run has no process of its own: the signalled pid is in its
            // output, never in `pid` (which `replace` would signal).
            if let Err(e) = ctx
                .recorder
                .mark_started(run_id, None, ctx.clock.now())
                .await
            {
                warn!(job = %job.name, run_id, error = %e, "recording the start failed");
            }
            info!(job = %job.name, run_id, pid, "{detail}");
            let tail = format!("{detail}\n");
            record(
                ctx,
                run_id,
                RunStatus::Succeeded,
                None,
                None,
                0,
                tail.as_bytes(),
                None,
                ms,
            )
            .await?;
            Ok(FireResult::finished(run_id, RunStatus::Succeeded, None))
        }
        SignalOutcome::NotRunning(why) if spec.if_not_running == IfNotRunning::Skip => {
            let reason = format!("not running: {why}");
            info!(job = %job.name, run_id, %reason, "skipped");
            record(
                ctx,
                run_id,
                RunStatus::Skipped,
                None,
                None,
                0,
                &[],
                Some(&reason),
                ms,
            )
            .await?;
            Ok(FireResult::Skipped { run_id, reason })
        }
        SignalOutcome::NotRunning(why) => {
            let error = format!("not running: {why}");
            warn!(job = %job.name, run_id, %error, "failed");
            end_early(ctx, run_id, RunStatus::Failed, error, ms).await
        }
        SignalOutcome::Failed(error) => {
            warn!(job = %job.name, run_id, %error, "failed");
            end_early(ctx, run_id, RunStatus::Failed, error, ms).await
        }
    }
}

/// A command's run: start it, supervise it to its end, record the outcome.
async fn run_command(
    ctx: &FireContext,
    job: &Job,
    run_id: i64,
    request: RunRequest,
    started: std::time::Instant,
    slot: &mut limits::Slot,
) -> anyhow::Result<FireResult> {
    let sink = Arc::new(RunOutput {
        run_id,
        inner: Arc::clone(&ctx.sink),
    });
    let running = match runner::start(request, sink) {
        Ok(running) => {
            slot.started();
            running
        }
        Err(e) => {
            let (status, error) = missed::start_failed(ctx, job, run_id, &e);
            let ms = i64::try_from(started.elapsed().as_millis()).ok();
            return end_early(ctx, run_id, status, error, ms).await;
        }
    };
    let pid = running.pid();
    if let Err(e) = ctx
        .recorder
        .mark_started(run_id, Some(pid), ctx.clock.now())
        .await
    {
        // The command already runs; its outcome will still be recorded.
        missed::warn_limited(ctx, &missed::key("recording a start", &e), || {
            warn!(job = %job.name, run_id, error = %e, "recording the start failed");
        });
    }
    let reason = Arc::new(Mutex::new(None));
    ctx.active.register(
        run_id,
        Active {
            stopper: running.stopper(),
            reason: Arc::clone(&reason),
        },
    );
    #[cfg(test)]
    tests::panic_if_asked(&job.name, false);
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
            return end_early(ctx, run_id, RunStatus::Killed, error, ms).await;
        }
    };

    let replaced = stop_reason == Some(StopReason::Replaced);
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
        RunEnd::Stopped { exit } if replaced => (
            RunStatus::Killed,
            exit.code(),
            exit.signal(),
            Some("replaced by a newer run (concurrency: replace)".to_string()),
        ),
        RunEnd::Stopped { exit } => (
            RunStatus::Interrupted,
            exit.code(),
            exit.signal(),
            Some("stopped by a shutdown of jobrun (SIGTERM, SIGINT or SIGHUP)".to_string()),
        ),
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
    )
    .await?;
    // A run that went wrong is a warning, so `RUST_LOG=warn` still shows it.
    if status.is_failure() {
        warn!(job = %job.name, run_id, status = status.as_str(), exit_code, signal, "finished");
    } else {
        info!(job = %job.name, run_id, status = status.as_str(), exit_code, signal, "finished");
    }
    Ok(FireResult::Finished {
        run_id,
        status,
        exit_code,
        signal,
        error,
        replaced,
    })
}

/// Records a run that jobrun ended itself, with no output of its own (not
/// started, not ready, a signal job's failure, a lost child), and its result.
async fn end_early(
    ctx: &FireContext,
    run_id: i64,
    status: RunStatus,
    error: String,
    duration_ms: Option<i64>,
) -> anyhow::Result<FireResult> {
    record(
        ctx,
        run_id,
        status,
        None,
        None,
        0,
        &[],
        Some(&error),
        duration_ms,
    )
    .await?;
    Ok(FireResult::finished(run_id, status, Some(error)))
}

#[allow(clippy::too_many_arguments)]
async fn record(
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
    let outcome = Outcome {
        status,
        finished_at: ctx.clock.now(),
        duration_ms,
        exit_code,
        signal,
        output_bytes,
        output_tail: tail.to_vec(),
        error: error.map(str::to_string),
    };
    // A store that refuses the write (full, read-only) keeps the outcome
    // in the recorder's spool, written when it accepts writes again.
    if let Err(e) = ctx.recorder.finish(run_id, outcome).await {
        missed::warn_limited(ctx, &missed::key("recording an outcome", &e), || {
            warn!(
                run_id,
                status = status.as_str(),
                error = %e,
                "the outcome could not be recorded now; it is kept and written when the store accepts writes again"
            );
        });
    }
    Ok(())
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
    env.insert("JOBRUN_ATTEMPT".into(), firing.attempt.to_string());
    if let Some(parent) = firing.parent {
        env.insert("JOBRUN_PARENT_RUN_ID".into(), parent.to_string());
    }
    if !firing.changed.is_empty() {
        // Retries of a watch run carry its changes too.
        let (paths, cut) = changed_paths(&firing.changed);
        env.insert("JOBRUN_CHANGED".into(), paths);
        if cut || firing.changed_truncated {
            env.insert("JOBRUN_CHANGED_TRUNCATED".into(), "1".into());
        }
    }
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
        // Never started: a signal job's request only carries the user,
        // environment and directory for its readiness command checks.
        Command::Signal(_) => Program::Argv(Vec::new()),
    };
    RunRequest {
        job: job.name.clone(),
        program,
        env,
        explicit_env: job.spec.env.keys().cloned().collect(),
        workdir: job.spec.workdir.clone(),
        // Crontab jobs run in the user's HOME, as cron runs them (SPEC 9);
        // a YAML job without `workdir` stays in jobrun's directory.
        home_workdir: job.spec.kind == SourceKind::Crontab,
        user: job.spec.user.clone(),
        stdin: job.spec.stdin.clone().map(String::into_bytes),
        timeout: job.spec.timeout,
        kill_grace: job.spec.kill_grace.unwrap_or(DEFAULT_KILL_GRACE),
        tail_bytes: ctx.tail_bytes,
    }
}

/// The most bytes `JOBRUN_CHANGED` holds: Linux refuses to start a program
/// with one environment string over 128 KiB (E2BIG).
const CHANGED_CAP: usize = 64 * 1024;

/// `JOBRUN_CHANGED`: the changed paths, one per line, each once, in order,
/// and whether some were left out to stay under [`CHANGED_CAP`].
fn changed_paths(paths: &[PathBuf]) -> (String, bool) {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = String::new();
    for p in paths.iter().filter(|p| seen.insert(*p)) {
        let p = p.to_string_lossy();
        if out.len() + p.len() + 1 > CHANGED_CAP {
            return (out, true);
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&p);
    }
    (out, false)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
