//! The run-event hook: what became of each firing, told to whoever listens
//! (the daemon's metrics, notifications) as it happens.
//!
//! A firing publishes [`RunEvent::Started`] when its command (or `signal:`)
//! starts, and exactly one of [`RunEvent::Finished`], [`RunEvent::Skipped`]
//! or [`RunEvent::Missed`] when it is settled on record; a tick lost to
//! another process publishes nothing. [`RunEvents`] is the fan-out held in
//! [`FireContext`](super::FireContext): subscribers are called in turn on the
//! firing's own task, so each must be quick and must not block (hand work to
//! a channel or a thread of its own); a panicking subscriber is caught and
//! logged, never failing the run. With no subscribers an event is not even
//! built.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::error;

use crate::job::{RunId, RunOutcome, RunStatus, Trigger};

/// One thing that happened to a firing. Owned values: a subscriber may keep it.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// The command started (or the `signal:` was sent).
    Started {
        job: String,
        run_id: RunId,
        trigger: Trigger,
        tick: Option<DateTime<Utc>>,
        started_at: DateTime<Utc>,
        /// From the scheduled tick to the start (`None` for a firing with no
        /// tick; zero for a start before its tick).
        lateness: Option<Duration>,
    },
    /// The claimed run ended (or could not start) and was recorded.
    Finished {
        job: String,
        run_id: RunId,
        trigger: Trigger,
        tick: Option<DateTime<Utc>>,
        attempt: u32,
        status: RunStatus,
        exit_code: Option<i32>,
        signal: Option<i32>,
        duration: Option<Duration>,
        error: Option<String>,
        /// When the command started; `None` when it never did.
        started_at: Option<DateTime<Utc>>,
        finished_at: DateTime<Utc>,
        /// Stopped because a newer run took its place (`concurrency: replace`).
        replaced: bool,
    },
    /// Recorded `skipped` (another run of the job holds it, a `signal:`
    /// job's target is not running).
    Skipped {
        job: String,
        run_id: RunId,
        trigger: Trigger,
        tick: Option<DateTime<Utc>>,
        reason: String,
        at: DateTime<Utc>,
    },
    /// Not claimed or not started through a failure of jobrun's own,
    /// recorded `missed` (its row id is not known here).
    Missed {
        job: String,
        trigger: Trigger,
        tick: Option<DateTime<Utc>>,
        reason: String,
        at: DateTime<Utc>,
    },
}

impl RunEvent {
    /// The job the event is about.
    pub fn job(&self) -> &str {
        match self {
            RunEvent::Started { job, .. }
            | RunEvent::Finished { job, .. }
            | RunEvent::Skipped { job, .. }
            | RunEvent::Missed { job, .. } => job,
        }
    }
}

/// A subscriber: called once per event, on the firing's task.
pub type Subscriber = Arc<dyn Fn(&RunEvent) + Send + Sync>;

/// The fan-out of [`RunEvent`]s: empty by default, subscribed to at set-up.
#[derive(Default, Clone)]
pub struct RunEvents {
    subscribers: Arc<RwLock<Vec<Subscriber>>>,
}

impl RunEvents {
    /// Adds `subscriber`; it sees every event published from now on.
    pub fn subscribe(&self, subscriber: Subscriber) {
        self.subscribers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(subscriber);
    }

    /// Whether anybody listens.
    pub fn is_empty(&self) -> bool {
        self.subscribers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Builds the event with `event` and tells every subscriber; builds
    /// nothing when there are none. Never fails and never panics.
    pub fn publish(&self, event: impl FnOnce() -> RunEvent) {
        self.publish_some(|| Some(event()));
    }

    /// As [`publish`](Self::publish), for a builder that may find nothing to tell.
    pub fn publish_some(&self, event: impl FnOnce() -> Option<RunEvent>) {
        let subscribers = self.subscribers.read().unwrap_or_else(|p| p.into_inner());
        if subscribers.is_empty() {
            return;
        }
        let Some(event) = event() else {
            return;
        };
        for subscriber in subscribers.iter() {
            if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| subscriber(&event))) {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                error!(job = event.job(), panic = %message, "a run-event subscriber panicked");
            }
        }
    }
}

impl std::fmt::Debug for RunEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunEvents").finish_non_exhaustive()
    }
}

/// The `Finished` event of a recorded outcome.
pub(super) fn finished(
    job: &str,
    run_id: RunId,
    firing: &crate::job::Firing,
    outcome: &RunOutcome,
    started_at: Option<DateTime<Utc>>,
    replaced: bool,
) -> RunEvent {
    RunEvent::Finished {
        job: job.to_string(),
        run_id,
        trigger: firing.trigger,
        tick: firing.tick,
        attempt: firing.attempt,
        status: outcome.status,
        exit_code: outcome.exit_code,
        signal: outcome.signal,
        duration: outcome
            .duration_ms
            .and_then(|ms| u64::try_from(ms).ok())
            .map(Duration::from_millis),
        error: outcome.error.clone(),
        started_at,
        finished_at: outcome.finished_at,
        replaced,
    }
}

/// From `tick` to `started_at`, zero when early.
pub(super) fn lateness(tick: Option<DateTime<Utc>>, started_at: DateTime<Utc>) -> Option<Duration> {
    tick.map(|t| (started_at - t).to_std().unwrap_or(Duration::ZERO))
}

/// Publishes the start of `run_id` at `at` and keeps the instant in
/// `started` for its `Finished` event.
pub(super) fn started(
    ctx: &super::FireContext,
    job: &str,
    firing: &crate::job::Firing,
    run_id: RunId,
    at: DateTime<Utc>,
    started: &std::sync::OnceLock<DateTime<Utc>>,
) {
    let _ = started.set(at);
    ctx.events.publish(|| RunEvent::Started {
        job: job.to_string(),
        run_id,
        trigger: firing.trigger,
        tick: firing.tick,
        started_at: at,
        lateness: lateness(firing.tick, at),
    });
}

/// Publishes how a firing was settled (nothing for a lost tick).
pub(super) fn settled(
    ctx: &super::FireContext,
    job: &crate::plan::Job,
    firing: &crate::job::Firing,
    result: &super::FireResult,
    started_at: Option<DateTime<Utc>>,
) {
    use super::FireResult;
    ctx.events.publish_some(|| {
        Some(match result {
            FireResult::Finished {
                run_id,
                outcome,
                replaced,
            } => finished(&job.name, *run_id, firing, outcome, started_at, *replaced),
            FireResult::Skipped { run_id, reason } => RunEvent::Skipped {
                job: job.name.clone(),
                run_id: *run_id,
                trigger: firing.trigger,
                tick: firing.tick,
                reason: reason.clone(),
                at: ctx.clock.now(),
            },
            FireResult::Missed { reason } => RunEvent::Missed {
                job: job.name.clone(),
                trigger: firing.trigger,
                tick: firing.tick,
                reason: reason.clone(),
                at: ctx.clock.now(),
            },
            FireResult::Lost => return None,
        })
    });
}
