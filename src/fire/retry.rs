//! Retries: a failed run is fired again after the job's `retry:` backoff,
//! each attempt its own run (trigger `retry`, linked to the first attempt),
//! until one succeeds, the attempts run out or jobrun shuts down.
//!
//! The delays themselves are [`RetryPolicy::delay_before`](crate::job::RetryPolicy::delay_before);
//! this module only loops over [`fire`] with them.

use std::time::Duration;

use tracing::{info, warn};

use super::{fire, FireContext, FireResult};
use crate::job::{Firing, RunStatus, Trigger};
use crate::plan::Job;

impl FireResult {
    /// A run that did not do its work for a reason another attempt may not
    /// meet: it failed, timed out, was not ready, or was killed by something
    /// other than jobrun's `replace`. Shutdown and skips are not retried.
    pub(super) fn is_retryable(&self) -> bool {
        matches!(
            self,
            FireResult::Finished { outcome, replaced: false, .. }
                if matches!(outcome.status, RunStatus::Failed | RunStatus::TimedOut | RunStatus::Killed)
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
        let Some(policy) = job.spec.retry.as_deref().copied() else {
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
            run_id = run_id.0,
            attempt = next,
            of = policy.attempts,
            after = %humantime::format_duration(delay),
            "retrying"
        );
        if !sleep_unless_stopping(ctx, delay).await {
            info!(job = %job.name, run_id = run_id.0, "no retry: jobrun is shutting down");
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
pub(super) async fn sleep_unless_stopping(ctx: &FireContext, delay: Duration) -> bool {
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
