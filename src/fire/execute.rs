//! Executing a claimed run: wait until its `requires:` checks pass, then
//! send a `signal:` job's signal or start the command, supervise it to its
//! end, and record the outcome. Every path out of here records the run.

use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};

use tracing::{debug, info, warn};

use super::active::{Active, StopReason};
use super::env::build_request;
use super::readiness::{self, Readiness};
use super::record::{end_early, record};
use super::signal_job::{self, SignalOutcome};
use super::{events, limits, missed, FireContext, FireResult, JobOutput};
use crate::job::{
    Command, Firing, IfNotRunning, RunId, RunOutcome, RunStatus, SignalSpec,
    DEFAULT_REQUIRES_TIMEOUT,
};
use crate::plan::Job;
use crate::runner::{self, OutputSink, RunEnd, RunRequest, Stream};
use crate::store::Started;

/// Adapts a [`JobOutput`] to one run.
struct RunOutput {
    run_id: RunId,
    inner: Arc<dyn JobOutput>,
}

impl OutputSink for RunOutput {
    fn line(&self, job: &str, stream: Stream, line: &[u8]) {
        self.inner.line(job, self.run_id, stream, line);
    }
}

/// Starts the claimed run, supervises it and records the outcome. Every path
/// out of here records the run: it was claimed, so it must not stay `running`.
pub(super) async fn execute(
    ctx: &FireContext,
    job: &Job,
    firing: &Firing,
    run_id: RunId,
    slot: &mut limits::Slot,
    started_at: &OnceLock<DateTime<Utc>>,
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
            warn!(job = %job.name, run_id = run_id.0, %error, "not started");
            return end_early(ctx, run_id, status, error, ms).await;
        }
        debug!(job = %job.name, run_id = run_id.0, "ready");
    }
    match &job.spec.command {
        Command::Signal(spec) => {
            send_signal(ctx, job, firing, run_id, spec, started, started_at).await
        }
        Command::Shell(_) | Command::Argv(_) => {
            let at = (firing, started_at);
            run_command(ctx, job, run_id, request, started, slot, at).await
        }
    }
}

/// A `signal:` job's run: no process of its own, only the signal.
async fn send_signal(
    ctx: &FireContext,
    job: &Job,
    firing: &Firing,
    run_id: RunId,
    spec: &SignalSpec,
    started: std::time::Instant,
    started_at: &OnceLock<DateTime<Utc>>,
) -> anyhow::Result<FireResult> {
    let outcome = signal_job::send(spec);
    let ms = i64::try_from(started.elapsed().as_millis()).ok();
    match outcome {
        SignalOutcome::Sent { pid, detail } => {
            // The run has no process of its own: the signalled pid is in its
            // output, never in `pid` (which `replace` would signal).
            let start = Started {
                run: run_id,
                pid: None,
                at: ctx.clock.now(),
            };
            let at = start.at;
            if let Err(e) = ctx.recorder.mark_started(start).await {
                warn!(job = %job.name, run_id = run_id.0, error = %e, "recording the start failed");
            }
            events::started(ctx, &job.name, firing, run_id, at, started_at);
            info!(job = %job.name, run_id = run_id.0, pid, "{detail}");
            let outcome = RunOutcome {
                output_tail: format!("{detail}\n").into_bytes().into(),
                ..RunOutcome::ended_early(RunStatus::Succeeded, ctx.clock.now(), ms, None)
            };
            record(ctx, run_id, &outcome).await;
            Ok(FireResult::finished(run_id, outcome))
        }
        SignalOutcome::NotRunning(why) if spec.if_not_running == IfNotRunning::Skip => {
            let reason = format!("not running: {why}");
            info!(job = %job.name, run_id = run_id.0, %reason, "skipped");
            let outcome = RunOutcome::ended_early(
                RunStatus::Skipped,
                ctx.clock.now(),
                ms,
                Some(reason.clone()),
            );
            record(ctx, run_id, &outcome).await;
            Ok(FireResult::Skipped { run_id, reason })
        }
        SignalOutcome::NotRunning(why) => {
            let error = format!("not running: {why}");
            warn!(job = %job.name, run_id = run_id.0, %error, "failed");
            end_early(ctx, run_id, RunStatus::Failed, error, ms).await
        }
        SignalOutcome::Failed(error) => {
            warn!(job = %job.name, run_id = run_id.0, %error, "failed");
            end_early(ctx, run_id, RunStatus::Failed, error, ms).await
        }
    }
}

/// A command's run: start it, supervise it to its end, record the outcome.
async fn run_command(
    ctx: &FireContext,
    job: &Job,
    run_id: RunId,
    request: RunRequest,
    started: std::time::Instant,
    slot: &mut limits::Slot,
    (firing, started_at): (&Firing, &OnceLock<DateTime<Utc>>),
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
    let start = Started {
        run: run_id,
        pid: Some(pid),
        at: ctx.clock.now(),
    };
    let at = start.at;
    if let Err(e) = ctx.recorder.mark_started(start).await {
        // The command already runs; its outcome will still be recorded.
        missed::warn_limited(ctx, &missed::key("recording a start", &e), || {
            warn!(job = %job.name, run_id = run_id.0, error = %e, "recording the start failed");
        });
    }
    events::started(ctx, &job.name, firing, run_id, at, started_at);
    let reason = Arc::new(Mutex::new(None));
    ctx.active.register(
        run_id,
        Active {
            stopper: running.stopper(),
            reason: Arc::clone(&reason),
        },
    );
    #[cfg(test)]
    super::tests::panic_if_asked(&job.name, false);
    let outcome = running.wait().await;
    ctx.active.unregister(run_id);
    let stop_reason = *reason.lock().unwrap_or_else(|p| p.into_inner());
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            // The exit could not be observed; the runner has killed the group.
            let error = e.to_string();
            warn!(job = %job.name, run_id = run_id.0, %error, "lost track of the job");
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
    // The one shape of how the run ended: recorded and returned as is.
    let ended = RunOutcome {
        status,
        finished_at: ctx.clock.now(),
        duration_ms: i64::try_from(started.elapsed().as_millis()).ok(),
        exit_code,
        signal,
        output_bytes: outcome.output_bytes,
        output_tail: outcome.tail.into(),
        error,
    };
    record(ctx, run_id, &ended).await;
    // A run that went wrong is a warning, so `RUST_LOG=warn` still shows it.
    if status.is_failure() {
        warn!(job = %job.name, run_id = run_id.0, status = status.as_str(), exit_code, signal, "finished");
    } else {
        info!(job = %job.name, run_id = run_id.0, status = status.as_str(), exit_code, signal, "finished");
    }
    Ok(FireResult::Finished {
        run_id,
        outcome: ended,
        replaced,
    })
}
