//! The scheduler loop's `watch:` component: the jobs' file watches
//! ([`watch::JobWatches`]) and their queues ([`watch::WatchQueue`]), turning
//! changes into watch firings once debounced. The loop hands it each change,
//! asks it when the next queue is due and for the firings then due, and tells
//! it when a watch run ended or a new plan came.
//!
//! Knows the plan, the recorder (through `FireContext`) for the job's last
//! start and its chain parents' runs; nothing of ticks or reloads.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};

use super::file_watch::FileWatch;
use super::watch::{self, Change, JobWatches, WatchQueue};
use crate::fire::FireContext;
use crate::job::{Firing, Trigger, DEFAULT_WATCH_DEBOUNCE};
use crate::plan::Plan;

/// How often a due watch run looks again whether its chain parent ended.
const WATCH_PARENT_POLL: Duration = Duration::from_secs(1);

/// The `watch:` jobs' watches and queues.
pub(super) struct WatchRuns {
    pub(super) watches: JobWatches,
    queues: HashMap<String, WatchQueue>,
}

impl WatchRuns {
    /// Watches the files of `plan`'s `watch:` jobs on `files`.
    pub(super) fn new(files: FileWatch, plan: &Plan) -> WatchRuns {
        let mut watches = JobWatches::new(files);
        watches.update(plan);
        if !watches.is_empty() {
            info!(
                jobs = watches.len(),
                "watching files for jobs with `watch:`"
            );
        }
        WatchRuns {
            watches,
            queues: HashMap::new(),
        }
    }

    /// A new plan: its watches (those `prepared` by the reload taken as
    /// they are), and no queue of a job that lost its `watch:`.
    pub(super) fn update(&mut self, plan: &Plan, prepared: watch::Prepared) {
        self.watches.update_prepared(plan, prepared);
        self.queues
            .retain(|name, _| plan.get(name).is_some_and(|j| j.spec.watch.is_some()));
    }

    /// The next change of a watched path (never, with nothing watched).
    pub(super) async fn next_change(&mut self) -> Option<Change> {
        self.watches.changes.recv().await
    }

    /// Notes `change`: re-arms the job's watches, queues a relevant change.
    pub(super) fn changed(&mut self, plan: &Plan, change: Change) {
        if change.rearm {
            self.watches.rearm(&change.job);
        }
        if !change.relevant {
            return;
        }
        if let Some(job) = plan.get(&change.job) {
            debug!(job = %change.job, path = %change.path.display(), "watched path changed");
            self.queues.entry(change.job.clone()).or_default().changed(
                change.path,
                Instant::now(),
                debounce_of(job),
            );
        }
    }

    /// When the earliest queue is due.
    pub(super) fn due(&self) -> Option<Instant> {
        self.queues.values().filter_map(WatchQueue::due).min()
    }

    /// The watch firings due now.
    pub(super) async fn take_due(&mut self, ctx: &FireContext, plan: &Plan) -> Vec<Firing> {
        let now = Instant::now();
        let mut firings = Vec::new();
        for (name, queue) in self.queues.iter_mut() {
            if queue.due().is_none_or(|d| d > now) {
                continue;
            }
            // A job that chains to this one is running (a renewal
            // before its reload): its chained run will see these
            // changes, so wait for it rather than run in between.
            if chain_parent_running(ctx, plan, name).await {
                queue.postpone(now + WATCH_PARENT_POLL);
                continue;
            }
            let handled_from = last_success_start(ctx, name).await;
            if let Some(batch) = queue.take(now, handled_from) {
                info!(job = %name, paths = batch.paths.len(), "watched files changed");
                firings.push(Firing {
                    changed: batch.paths,
                    changed_truncated: batch.truncated,
                    changes_seen: Some(wall_time_of(ctx, batch.first_seen)),
                    ..Firing::new(name.clone(), None, Trigger::Watch)
                });
            }
        }
        firings
    }

    /// A watch run of `job` ended: changes that came meanwhile run it once more.
    pub(super) fn finished(&mut self, plan: &Plan, job: &str) {
        if let (Some(queue), Some(spec)) = (self.queues.get_mut(job), plan.get(job)) {
            queue.finished(Instant::now(), debounce_of(spec));
        }
    }
}

/// When the latest run of `job` started, by any process sharing the state
/// directory, as an instant of this process's monotonic clock: changes seen
/// before it are already handled (a chained reload after a renewal makes
/// the watch's own run needless).
async fn last_success_start(ctx: &FireContext, job: &str) -> Option<Instant> {
    let name = job.to_string();
    let started = match ctx
        .recorder
        .call(move |store| store.last_success_start(&name))
        .await
    {
        Ok(started) => started?,
        Err(e) => {
            warn!(job, error = %e, "reading the job's last start");
            return None;
        }
    };
    // A start "in the future" (the wall clock was stepped back since) says
    // nothing about what was seen: handled by nothing, rather than by all.
    let ago = (ctx.clock.now() - started).to_std().ok()?;
    Instant::now().checked_sub(ago)
}

/// The wall-clock time of a monotonic instant of the recent past.
fn wall_time_of(ctx: &FireContext, at: Instant) -> DateTime<Utc> {
    let ago = chrono::Duration::from_std(at.elapsed()).unwrap_or_default();
    ctx.clock.now() - ago
}

/// Whether a run of a job that chains to `job` is going, in any process.
async fn chain_parent_running(ctx: &FireContext, plan: &Plan, job: &str) -> bool {
    let parents: Vec<&str> = plan.chain_parents(job).map(|p| p.name.as_str()).collect();
    if parents.is_empty() {
        return false;
    }
    match ctx.recorder.call(|store| store.running()).await {
        Ok(running) => running.iter().any(|r| parents.contains(&r.job.as_str())),
        Err(e) => {
            warn!(job, error = %e, "reading running runs");
            false
        }
    }
}

fn debounce_of(job: &crate::plan::Job) -> Duration {
    job.spec
        .watch
        .as_ref()
        .map_or(DEFAULT_WATCH_DEBOUNCE, |w| w.debounce)
}
