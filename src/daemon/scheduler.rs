//! The scheduler loop: sleeps until the next tick (never polls; it re-reads
//! the wall clock at least once a minute), and at each wake-up hands out the
//! ticks that came due, whatever woke it. Besides the timer it is woken by
//! the shutdown, a hand-moved clock, a new plan from a reload, a watched
//! file, a due watch run and a finished firing; each is one `select!` arm
//! that hands the event to its component.
//!
//! Owns the loop's state (plan, firings, tick cursor, heartbeat and pruning
//! times); the components do the work: [`ClockWatch`] (jumps),
//! [`NextTick`], [`WatchRuns`], [`SourceReloads`], [`Heartbeat`], and the
//! executor that runs each firing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, error, info};

use super::clock_watch::{self, ClockWatch, Pass};
use super::executor::{spawn_firing, Done};
use super::heartbeat::Heartbeat;
use super::housekeeping::prune_in_background;
use super::next_tick::NextTick;
use super::source_reloads::{sleep_until, SourceReloads};
use super::timer::{LoopTimer, Wake};
use super::watch_runs::WatchRuns;
use super::{loaded, HEARTBEAT};
use crate::fire::{self, FireContext};
use crate::job::{Firing, Trigger};
use crate::plan::Plan;
use crate::store::Retention;

/// The longest the loop sleeps without reading the wall clock again.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// A wake-up this close to the next heartbeat beats at once instead of
/// waking again for it: beats coalesce with ticks and clock checks.
const BEAT_SLACK: Duration = Duration::from_secs(5);
/// How often the history is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The last stretch before a tick is waited with the operating system's
/// precise sleep instead of the runtime's millisecond timer.
const FINE_WAIT: Duration = Duration::from_millis(3);

/// The loop and its components.
pub(super) struct Scheduler {
    pub(super) ctx: Arc<FireContext>,
    pub(super) plan: Arc<Plan>,
    pub(super) tasks: JoinSet<Done>,
    pub(super) started: DateTime<Utc>,
    pub(super) retention: Retention,
    pub(super) clock_watch: ClockWatch,
    pub(super) ticks: NextTick,
    pub(super) timer: LoopTimer,
    pub(super) heartbeat: Heartbeat,
    pub(super) watch_runs: WatchRuns,
    pub(super) sources: SourceReloads,
    /// Ticks when a hand-moved clock is moved (tests).
    pub(super) moved: Option<tokio::sync::watch::Receiver<()>>,
    pub(super) next_beat: Instant,
    pub(super) next_prune: Instant,
    /// The record of what the last reload loaded, while it is written.
    pub(super) recording_loaded: Option<tokio::task::JoinHandle<()>>,
    /// `--http`, told of each pass and reload.
    pub(super) http: Option<crate::http::Server>,
}

impl Scheduler {
    /// Runs until `shutdown` completes (the caller then stops the running
    /// firings).
    pub(super) async fn run(&mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            #[cfg(test)]
            if let Some(http) = &self.http {
                http.view.liveness.wait_while_held().await;
            }
            self.housekeeping();
            let now = self.ctx.clock.now();
            // A tick already due (woken for something else at it) sleeps zero.
            let next_tick = self.ticks.after(&self.plan, self.clock_watch.cursor());
            let deadline = self.deadline(now, next_tick);
            if let Some(http) = &self.http {
                http.view.liveness.sleeps_until(deadline);
            }
            let watch_due = self.watch_runs.due().map(Instant::from_std);
            tokio::select! {
                () = &mut shutdown => break,
                wake = self.timer.sleep_until(now, deadline) => match (wake, next_tick) {
                    (Wake::ClockStepped, _) => debug!("the wall clock was set; reading it again"),
                    (Wake::Deadline, Some(next)) => wait_precisely(self, next),
                    (Wake::Deadline, None) => {}
                },
                Ok(()) = changed(&mut self.moved) => {}
                (plan, prepared) = self.sources.next_plan() => {
                    self.plan = plan;
                    if let Some(http) = &self.http {
                        let ok = super::listener::no_errors(&self.sources.problems());
                        http.view.reloaded(&self.plan, ok);
                    }
                    self.record_loaded();
                    self.watch_runs.update(&self.plan, prepared);
                }
                Some(change) = self.watch_runs.next_change() => self.watch_runs.changed(&self.plan, change),
                () = sleep_until(watch_due) => {
                    for firing in self.watch_runs.take_due(&self.ctx, &self.plan).await {
                        spawn_firing(&mut self.tasks, &self.ctx, &self.plan, firing);
                    }
                }
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => match joined {
                    Ok(done) => self.finished(done),
                    Err(e) => error!(error = %e, "a firing task panicked"),
                },
            }
            // Whatever woke the loop, the ticks that came due meanwhile are
            // handled here: a reload or a finished run at a tick must not skip it.
            self.hand_out_ticks();
        }
    }

    /// The heartbeat and the hourly pruning, riding on whatever woke the
    /// loop (after the previous pass handed out its firings), so neither
    /// costs a wake-up of its own; neither waits for SQLite here.
    fn housekeeping(&mut self) {
        if Instant::now() + BEAT_SLACK >= self.next_beat {
            self.heartbeat.beat(self.ctx.clock.now());
            fire::flush_log_summaries(&self.ctx);
            self.next_beat = Instant::now() + HEARTBEAT;
        }
        // Hourly; up to a minute late, since it waits for a wake-up.
        if Instant::now() >= self.next_prune {
            prune_in_background(&self.ctx, self.ctx.clock.now(), self.retention);
            self.next_prune = Instant::now() + PRUNE_EVERY;
        }
    }

    /// When the loop wakes at the latest: a little before the next tick
    /// (the rest is waited precisely), a minute from now, or the next beat.
    fn deadline(&self, now: DateTime<Utc>, next_tick: Option<DateTime<Utc>>) -> DateTime<Utc> {
        let sleep = match next_tick {
            // Wake a little early and finish the wait precisely: the
            // runtime's timer is only as fine as a millisecond, and rounds up.
            Some(next) => until(now, next).saturating_sub(FINE_WAIT).min(MAX_SLEEP),
            None => MAX_SLEEP,
        }
        .min(self.next_beat.saturating_duration_since(Instant::now()));
        chrono::Duration::from_std(sleep)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Moves renamed crontab jobs' runs to their new names, then records
    /// what the new plan runs (for `status`), on a task of its own, after
    /// the previous record: the recorder may be waiting for a write lock,
    /// which must not hold up the loop.
    fn record_loaded(&mut self) {
        // At once, before the new plan's first claim: an in-memory update.
        crate::fire::declare(&self.ctx.store, &self.plan);
        let (ctx, plan) = (Arc::clone(&self.ctx), Arc::clone(&self.plan));
        let (problems, started) = (self.sources.problems(), self.started);
        let previous = self.recording_loaded.take();
        self.recording_loaded = Some(tokio::spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            loaded::follow_reloaded_names(&ctx, &plan).await;
            loaded::record(&ctx, &plan, &problems, started).await;
        }));
    }

    /// A firing ended: its watch queue is told, and its chained runs start.
    fn finished(&mut self, done: Done) {
        if done.trigger == Trigger::Watch {
            self.watch_runs.finished(&self.plan, &done.job);
        }
        for firing in done.chained {
            info!(job = %firing.job, parent = firing.parent.map_or(0, |p| p.0), "starting chained job");
            spawn_firing(&mut self.tasks, &self.ctx, &self.plan, firing);
        }
    }

    /// Hands out the ticks due since the last pass, as scheduled or, after
    /// a forward jump, as a catch-up.
    fn hand_out_ticks(&mut self) {
        let (ctx, plan) = (&self.ctx, &self.plan);
        match self
            .clock_watch
            .pass(ctx.clock.now(), ctx.clock.monotonic())
        {
            Pass::Idle => {}
            Pass::CatchUp {
                after,
                upto,
                by,
                handed_out,
            } => {
                let mut due = plan.due(after, upto);
                due.retain(|(job, tick)| {
                    !clock_watch::ran_before(&ctx.store, handed_out, &job.name, *tick)
                });
                info!(
                    by = %clock_watch::fmt_span(by),
                    jobs = due.len(),
                    "wall clock jumped forward (or the machine was suspended); running each job that missed ticks once"
                );
                for (job, tick) in due {
                    let firing = Firing::new(job.name.clone(), Some(tick), Trigger::CatchUp);
                    spawn_firing(&mut self.tasks, ctx, plan, firing);
                }
            }
            Pass::Scheduled {
                after,
                upto,
                handed_out,
            } => {
                for (job, tick) in self.ticks.due(plan, after, upto) {
                    if clock_watch::ran_before(&ctx.store, handed_out, &job.name, tick) {
                        continue;
                    }
                    let firing = Firing::new(job.name.clone(), Some(tick), Trigger::Schedule);
                    spawn_firing(&mut self.tasks, ctx, plan, firing);
                }
            }
        }
        if self.clock_watch.jumped() {
            // The heartbeat is by the wall clock: after a jump, beat at once.
            self.next_beat = Instant::now();
        }
    }
}

/// Waits for a hand-moved clock to move; never resolves for the real clock.
async fn changed(moved: &mut Option<tokio::sync::watch::Receiver<()>>) -> Result<(), ()> {
    match moved {
        Some(rx) => rx.changed().await.map_err(|_| ()),
        None => std::future::pending().await,
    }
}

/// Blocks until `tick` when it is at most [`FINE_WAIT`] away: a few
/// milliseconds at most, once per tick, so a job fires within a fraction
/// of a millisecond of its tick rather than one or two after it.
fn wait_precisely(scheduler: &Scheduler, tick: DateTime<Utc>) {
    let left = (tick - scheduler.ctx.clock.now())
        .to_std()
        .unwrap_or_default();
    if !left.is_zero() && left <= FINE_WAIT {
        std::thread::sleep(left);
    }
}

/// Time from `now` until `t`, rounded up to the millisecond so the timer never
/// wakes a hair before the tick.
fn until(now: DateTime<Utc>, t: DateTime<Utc>) -> Duration {
    let micros = (t - now).num_microseconds().unwrap_or(i64::MAX).max(0) as u64;
    Duration::from_millis(micros.div_ceil(1000))
}
