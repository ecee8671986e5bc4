//! `jobrun daemon`: the scheduler loop. The only place with tokio's `select!`,
//! signals and shutdown.
//!
//! It sleeps until the next tick (never polls; it re-reads the wall clock at
//! least once a minute so suspend and clock steps are noticed), hands every due
//! job to `fire` concurrently, and on SIGTERM/SIGINT stops scheduling, stops
//! the running jobs and records them before exiting.
//!
//! Besides ticks, the loop starts runs for the other triggers: `@reboot` and
//! `run_on_start` jobs and missed ticks (`catch_up`) at start, watched file
//! changes (see [`watch`]), and the chained jobs a finished run names. Every
//! one goes through `fire` like a scheduled run.

mod clock_watch;
mod loaded;
pub mod memory;
pub mod output;
#[cfg(test)]
mod panic_tests;
pub mod reboot;
mod recovery;
pub mod reload;
mod state_check;
mod timer;
pub mod watch;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::clock::Clock;
use crate::fire::{self, ActiveRuns, FireContext, FireResult, StopReason};
use crate::job::{Firing, Trigger, DEFAULT_WATCH_DEBOUNCE};
use crate::lock;
use crate::plan::Plan;
use crate::recorder::Recorder;
use crate::runner;
use crate::store::{Retention, Store};
use clock_watch::{ClockWatch, Pass};

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
    /// A forward clock jump up to this long fires each job that missed ticks
    /// once (`catch-up`); a longer one only warns (SPEC 2).
    pub max_catch_up: Duration,
    /// Where the once-per-boot marker for `@reboot` jobs lives.
    pub reboot_marker_dir: PathBuf,
    /// Reap orphaned zombies (jobrun is PID 1, or `--reap`).
    pub reap: bool,
    /// How to re-read the sources on SIGHUP and on changes; `None` never reloads.
    pub reload: Option<reload::ReloadOptions>,
    /// How much run history the daemon keeps (pruned at start and hourly).
    pub retention: Retention,
}

/// How often the daemon records that it is alive (`jobrun status`). Once a
/// minute, on the wake-up that re-reads the clock anyway (`MAX_SLEEP`), so
/// an idle daemon wakes once a minute and not more (issue 6).
pub const HEARTBEAT: Duration = Duration::from_secs(60);
/// A wake-up this close to the next heartbeat beats at once instead of
/// waking again for it: beats coalesce with ticks and clock checks.
const BEAT_SLACK: Duration = Duration::from_secs(5);
/// How often the history is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

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
    let host = fire::this_host();
    let started = clock.now();
    // Read with `started`: start-up work before the loop (recovery, pruning)
    // must not look like a clock jump at its first pass.
    let started_mono = clock.monotonic();
    // Subscribed with `started`: a hand-moved clock moved during start-up
    // wakes the loop's first sleep.
    let mut moved = clock.moved();
    let ctx = Arc::new(FireContext {
        recorder: Recorder::start(Arc::clone(&store)).context("starting the recorder thread")?,
        store: Arc::clone(&store),
        locks_dir: lock::locks_dir(&opts.state_dir),
        clock: Arc::clone(&clock),
        owner: fire::owner_id(&host, started),
        host,
        sink: Arc::new(output::StdoutSink::new(
            opts.json_output,
            Arc::clone(&clock),
        )),
        base_env: opts.base_env,
        tail_bytes: opts.tail_bytes,
        active: ActiveRuns::default(),
        limits: fire::Limits::for_this_process(),
    });
    state_check::check_state(&store, &ctx.locks_dir)?;
    recovery::recover_abandoned(&ctx)?;
    let mut plan = Arc::new(opts.plan);
    info!(
        jobs = plan.jobs().len(),
        state = %opts.state_dir.display(),
        "daemon started"
    );
    // Before this daemon's first heartbeat: the last one on record tells
    // when the downtime began.
    let catch_up = missed_ticks(&ctx, &plan, started);

    let reaper = opts.reap.then(|| tokio::spawn(reap_orphans_forever()));
    // The first pruning happens here rather than on a pool thread, which
    // would linger and wake the idle daemon again when it exits; the hourly
    // ones ride on the loop's wake-ups (see `prune_in_background`).
    prune(&ctx, started, opts.retention);
    let mut next_prune = tokio::time::Instant::now() + PRUNE_EVERY;
    let mut tasks: JoinSet<Done> = JoinSet::new();
    start_reboot_jobs(
        &mut tasks,
        &ctx,
        &plan,
        (&opts.reboot_marker_dir, &opts.state_dir),
        started,
    );
    for job in plan
        .jobs()
        .iter()
        .filter(|j| j.spec.enabled && j.spec.run_on_start)
        // A job with a missed tick runs once at start, for that tick: its
        // catch-up run is its start run too (two would only skip each other).
        .filter(|j| !catch_up.iter().any(|f| f.job == j.name))
    {
        spawn_firing(
            &mut tasks,
            &ctx,
            &plan,
            Firing::new(job.name.clone(), None, Trigger::Start),
        );
    }
    for firing in catch_up {
        spawn_firing(&mut tasks, &ctx, &plan, firing);
    }
    let mut watches = watch::JobWatches::default();
    watches.update(&plan);
    if !watches.is_empty() {
        info!(
            jobs = watches.len(),
            "watching files for jobs with `watch:`"
        );
    }
    let mut queues: HashMap<String, watch::WatchQueue> = HashMap::new();

    tokio::pin!(shutdown);
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let mut watcher = opts.reload.as_ref().map(|r| reload::watch(&r.watch));
    let mut reloads = opts
        .reload
        .map(|r| reload::Reloads::new(r, &plan, watches.armer()));
    loaded::record(&ctx, &plan, &reload::problems(&reloads), started).await;
    let mut reload_at: Option<tokio::time::Instant> = None;
    let mut ticks = NextTick::default();
    let mut watch = ClockWatch::new(started, started_mono, opts.max_catch_up);
    let pid = std::process::id();
    let mut next_beat = tokio::time::Instant::now();
    let mut timer = timer::LoopTimer::new(clock.is_system_realtime());
    loop {
        // The heartbeat rides on whatever woke the loop (after the previous
        // pass handed out its firings), so it never costs a wake-up of its own.
        if tokio::time::Instant::now() + BEAT_SLACK >= next_beat {
            let now = clock.now();
            // With no run going, the write is made right here: nothing on
            // the runtime waits for it, and waking the recorder thread (or a
            // `block_in_place` pool thread) would be a second wake-up of an
            // idle daemon. With runs going, it queues with their records.
            let beat = if tasks.is_empty() {
                ctx.store.beat(&ctx.owner, pid, &ctx.host, started, now)
            } else {
                let (owner, host) = (ctx.owner.clone(), ctx.host.clone());
                ctx.recorder
                    .call(move |store| store.beat(&owner, pid, &host, started, now))
                    .await
            };
            if let Err(e) = beat {
                warn!(error = %e, "recording the heartbeat");
            }
            fire::flush_log_summaries(&ctx);
            next_beat = tokio::time::Instant::now() + HEARTBEAT;
        }
        // Hourly; up to a minute late, since it waits for a wake-up.
        if tokio::time::Instant::now() >= next_prune {
            prune_in_background(&ctx, clock.now(), opts.retention);
            next_prune = tokio::time::Instant::now() + PRUNE_EVERY;
        }
        let now = clock.now();
        // A tick already due (woken for something else at it) sleeps zero.
        let next_tick = ticks.after(&plan, watch.cursor());
        let sleep = match next_tick {
            // Wake a little early and finish the wait precisely below: the
            // runtime's timer is only as fine as a millisecond, and rounds up.
            Some(next) => until(now, next).saturating_sub(FINE_WAIT).min(MAX_SLEEP),
            None => MAX_SLEEP,
        }
        .min(next_beat.saturating_duration_since(tokio::time::Instant::now()));
        let deadline = chrono::Duration::from_std(sleep)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let watch_due = queues.values().filter_map(|q| q.due()).min();
        tokio::select! {
            () = &mut shutdown => break,
            wake = timer.sleep_until(now, deadline) => match (wake, next_tick) {
                (timer::Wake::ClockStepped, _) => debug!("the wall clock was set; reading it again"),
                (timer::Wake::Deadline, Some(next)) => wait_precisely(clock.as_ref(), next),
                (timer::Wake::Deadline, None) => {}
            },
            Ok(()) = changed(&mut moved) => {}
            _ = hangup.recv() => reload::request(&mut reloads, "SIGHUP"),
            (new, prepared) = reload::next_plan(&mut reloads) => {
                plan = new;
                loaded::record(&ctx, &plan, &reload::problems(&reloads), started).await;
                if let Some(w) = &mut watcher {
                    w.refresh();
                }
                watches.update_prepared(&plan, prepared);
                queues.retain(|name, _| plan.get(name).is_some_and(|j| j.spec.watch.is_some()));
            }
            Some(change) = watches.changes.recv() => {
                if change.rearm {
                    watches.rearm(&change.job);
                }
                if change.relevant {
                    if let Some(job) = plan.get(&change.job) {
                        debug!(job = %change.job, path = %change.path.display(), "watched path changed");
                        queues.entry(change.job.clone()).or_default().changed(
                            change.path,
                            std::time::Instant::now(),
                            debounce_of(job),
                        );
                    }
                }
            }
            () = sleep_until(watch_due.map(tokio::time::Instant::from_std)) => {
                let now = std::time::Instant::now();
                for (name, queue) in queues.iter_mut() {
                    if queue.due().is_none_or(|d| d > now) {
                        continue;
                    }
                    // A job that chains to this one is running (a renewal
                    // before its reload): its chained run will see these
                    // changes, so wait for it rather than run in between.
                    if chain_parent_running(&ctx, &plan, name).await {
                        queue.postpone(now + WATCH_PARENT_POLL);
                        continue;
                    }
                    let handled_from = last_success_start(&ctx, name).await;
                    if let Some(batch) = queue.take(now, handled_from) {
                        info!(job = %name, paths = batch.paths.len(), "watched files changed");
                        let firing = Firing {
                            changed: batch.paths,
                            changed_truncated: batch.truncated,
                            changes_seen: Some(wall_time_of(&ctx, batch.first_seen)),
                            ..Firing::new(name.clone(), None, Trigger::Watch)
                        };
                        spawn_firing(&mut tasks, &ctx, &plan, firing);
                    }
                }
            }
            Some(()) = source_changed(&mut watcher) => {
                reload_at.get_or_insert_with(|| tokio::time::Instant::now() + reload::DEBOUNCE);
            }
            () = sleep_until(reload_at) => {
                reload_at = None;
                reload::request(&mut reloads, "file change");
            }
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                match joined {
                    Ok(done) => {
                        if done.trigger == Trigger::Watch {
                            if let (Some(queue), Some(job)) = (queues.get_mut(&done.job), plan.get(&done.job)) {
                                queue.finished(std::time::Instant::now(), debounce_of(job));
                            }
                        }
                        for firing in done.chained {
                            info!(job = %firing.job, parent = firing.parent.unwrap_or_default(), "starting chained job");
                            spawn_firing(&mut tasks, &ctx, &plan, firing);
                        }
                    }
                    Err(e) => error!(error = %e, "a firing task panicked"),
                }
            }
        }
        // Whatever woke the loop, the ticks that came due meanwhile are handled
        // below: a reload or a finished run at a tick must not skip it.
        match watch.pass(clock.now(), clock.monotonic()) {
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
                    spawn_firing(&mut tasks, &ctx, &plan, firing);
                }
            }
            Pass::Scheduled {
                after,
                upto,
                handed_out,
            } => {
                for (job, tick) in ticks.due(&plan, after, upto) {
                    if clock_watch::ran_before(&ctx.store, handed_out, &job.name, tick) {
                        continue;
                    }
                    let firing = Firing::new(job.name.clone(), Some(tick), Trigger::Schedule);
                    spawn_firing(&mut tasks, &ctx, &plan, firing);
                }
            }
        }
        if watch.jumped() {
            // The heartbeat is by the wall clock: after a jump, beat at once.
            next_beat = tokio::time::Instant::now();
        }
    }

    shut_down(&ctx, &mut tasks, opts.shutdown_grace).await;
    if let Err(e) = ctx.store.daemon_stopped(&ctx.owner, clock.now()) {
        warn!(error = %e, "recording the daemon's stop");
    }
    if let Some(reaper) = reaper {
        reaper.abort();
        runner::reap_orphans();
    }
    Ok(())
}

/// Applies the history retention.
fn prune(ctx: &FireContext, now: DateTime<Utc>, retention: Retention) {
    match ctx.store.prune(now, retention) {
        Ok(0) => {}
        Ok(removed) => info!(removed, "pruned the run history"),
        Err(e) => warn!(error = %e, "pruning the run history"),
    }
}

/// Applies the history retention on a pool thread, so a long deletion never
/// holds up a tick. (Not its own timer task: the loop's wake-ups start it,
/// so it costs the idle daemon no wake-up of its own.)
fn prune_in_background(ctx: &Arc<FireContext>, now: DateTime<Utc>, retention: Retention) {
    let ctx = Arc::clone(ctx);
    drop(tokio::task::spawn_blocking(move || {
        prune(&ctx, now, retention);
    }));
}

/// As PID 1, every orphan in the container becomes our child: reap the
/// zombies on every SIGCHLD, never touching our own jobs (see
/// `runner::reap_orphans`). Signals that arrive together are merged into
/// one, but one pass reaps every zombie there is, so nothing waits: no
/// periodic wake-up is needed (the idle daemon stays asleep), unless SIGCHLD
/// cannot be watched at all.
async fn reap_orphans_forever() {
    let mut sigchld = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "cannot watch SIGCHLD; reaping orphans every few seconds");
            None
        }
    };
    let mut every = tokio::time::interval(Duration::from_secs(5));
    let mut first = true;
    loop {
        // The first pass takes the zombies that were there before us.
        match (&mut sigchld, std::mem::take(&mut first)) {
            (_, true) => {}
            (Some(sig), false) => {
                if sig.recv().await.is_none() {
                    return;
                }
            }
            (None, false) => {
                every.tick().await;
            }
        }
        match tokio::task::spawn_blocking(runner::reap_orphans).await {
            Ok(0) | Err(_) => {}
            Ok(n) => tracing::debug!(reaped = n, "reaped orphaned processes"),
        }
    }
}

/// Runs the `@reboot` jobs that have not run yet in this boot for this
/// state directory (see [`reboot`]).
fn start_reboot_jobs(
    tasks: &mut JoinSet<Done>,
    ctx: &Arc<FireContext>,
    plan: &Arc<Plan>,
    (marker_dir, state_dir): (&std::path::Path, &std::path::Path),
    started: DateTime<Utc>,
) {
    let jobs: Vec<_> = plan.jobs().iter().filter(|j| j.runs_at_reboot()).collect();
    if jobs.is_empty() {
        return;
    }
    let names = jobs.iter().map(|j| j.name.as_str());
    let claimed: Vec<&str> = match reboot::boot_id() {
        Some(id) => match reboot::claim_boot(marker_dir, &id, state_dir, names) {
            Ok(claimed) => claimed,
            Err(e) => {
                // Better to run @reboot jobs again than never.
                warn!(dir = %marker_dir.display(), error = %e, "cannot keep the @reboot marker; running @reboot jobs");
                jobs.iter().map(|j| j.name.as_str()).collect()
            }
        },
        None => names.collect(),
    };
    if claimed.len() < jobs.len() {
        info!(
            jobs = jobs.len() - claimed.len(),
            "@reboot jobs already ran in this boot"
        );
    }
    for name in claimed {
        // The daemon's start instant is the tick: one claim per boot.
        let firing = Firing::new(name.to_string(), Some(started), Trigger::Reboot);
        spawn_firing(tasks, ctx, plan, firing);
    }
}

/// The next change of a source; never resolves without a watcher.
async fn source_changed(watcher: &mut Option<reload::SourceWatcher>) -> Option<()> {
    match watcher {
        Some(w) => w.changes.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Waits for a hand-moved clock to move; never resolves for the real clock.
async fn changed(moved: &mut Option<tokio::sync::watch::Receiver<()>>) -> Result<(), ()> {
    match moved {
        Some(rx) => rx.changed().await.map_err(|_| ()),
        None => std::future::pending().await,
    }
}

/// The last stretch before a tick is waited with the operating system's
/// precise sleep instead of the runtime's millisecond timer.
const FINE_WAIT: Duration = Duration::from_millis(3);

/// Blocks until `tick` when it is at most [`FINE_WAIT`] away: a few
/// milliseconds at most, once per tick, so a job fires within a fraction
/// of a millisecond of its tick rather than one or two after it.
fn wait_precisely(clock: &dyn Clock, tick: DateTime<Utc>) {
    let left = (tick - clock.now()).to_std().unwrap_or_default();
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

/// What a firing task hands back to the loop when it ends.
struct Done {
    job: String,
    trigger: Trigger,
    /// The chained runs its outcome starts.
    chained: Vec<Firing>,
}

/// When the latest run of `job` started, by any process sharing the state
/// directory, as an instant of this process's monotonic clock: changes seen
/// before it are already handled (a chained reload after a renewal makes
/// the watch's own run needless).
async fn last_success_start(ctx: &FireContext, job: &str) -> Option<std::time::Instant> {
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
    std::time::Instant::now().checked_sub(ago)
}

/// The wall-clock time of a monotonic instant of the recent past.
fn wall_time_of(ctx: &FireContext, at: std::time::Instant) -> DateTime<Utc> {
    let ago = chrono::Duration::from_std(at.elapsed()).unwrap_or_default();
    ctx.clock.now() - ago
}

/// How often a due watch run looks again whether its chain parent ended.
const WATCH_PARENT_POLL: Duration = Duration::from_secs(1);

/// Whether a run of a job that chains to `job` is going, in any process.
async fn chain_parent_running(ctx: &FireContext, plan: &Plan, job: &str) -> bool {
    let parents: Vec<&str> = plan
        .jobs()
        .iter()
        .filter(|p| {
            p.spec
                .on_success
                .iter()
                .chain(&p.spec.on_failure)
                .any(|l| l.job == job)
        })
        .map(|p| p.name.as_str())
        .collect();
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

/// The plan's next tick after the loop's cursor, kept until a tick comes due
/// or the plan changes. The loop wakes for every finished run (1,000 times
/// after a 1,000-job tick) and moves its cursor to "now" each time; walking
/// every job on each of those wake-ups (twice: the next tick, and what is
/// due) cost a 1,000-job tick about 180 ms of CPU beside its spawns.
#[derive(Default)]
struct NextTick {
    plan: Option<Arc<Plan>>,
    cursor: Option<DateTime<Utc>>,
    next: Option<DateTime<Utc>>,
    /// How many times the plan was walked for the next tick (for tests).
    walks: u64,
}

impl NextTick {
    /// The earliest tick of the plan strictly after `cursor`.
    fn after(&mut self, plan: &Arc<Plan>, cursor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let same_plan = self.plan.as_ref().is_some_and(|p| Arc::ptr_eq(p, plan));
        if !same_plan || self.cursor != Some(cursor) {
            self.next = plan.next_wakeup(cursor);
            self.plan = Some(Arc::clone(plan));
            self.cursor = Some(cursor);
            self.walks += 1;
        }
        self.next
    }

    /// Each job's latest tick in `(cursor, now]`, as [`Plan::due`]; the
    /// loop's cursor then moves to `now`. When the next tick is after `now`
    /// nothing is due and the plan is not walked: with no tick in between,
    /// the next tick after `now` is the one after `cursor`, so it is kept.
    fn due<'p>(
        &mut self,
        plan: &'p Arc<Plan>,
        cursor: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<(&'p crate::plan::Job, DateTime<Utc>)> {
        if self.after(plan, cursor).is_none_or(|next| next > now) {
            self.cursor = Some(now);
            return Vec::new();
        }
        plan.due(cursor, now)
    }
}

fn debounce_of(job: &crate::plan::Job) -> Duration {
    job.spec
        .watch
        .as_ref()
        .map_or(DEFAULT_WATCH_DEBOUNCE, |w| w.debounce)
}

/// Runs one firing (with its retries) as a task of the loop. A job that a
/// reload removed, or that is disabled, is not run.
fn spawn_firing(
    tasks: &mut JoinSet<Done>,
    ctx: &Arc<FireContext>,
    plan: &Arc<Plan>,
    firing: Firing,
) {
    let ctx = Arc::clone(ctx);
    let plan = Arc::clone(plan);
    tasks.spawn(async move {
        let mut done = Done {
            job: firing.job.clone(),
            trigger: firing.trigger,
            chained: Vec::new(),
        };
        let Some(job) = plan.get(&firing.job).filter(|j| j.spec.enabled) else {
            warn!(job = %firing.job, trigger = firing.trigger.as_str(), "not run: no such enabled job (any more)");
            return done;
        };
        match fire::fire_with_retries(&ctx, job, &firing).await {
            Ok(result) => {
                if !ctx.active.is_stopping() {
                    done.chained = fire::chained(job, &result);
                }
                if let FireResult::Finished { error: Some(error), .. } = &result {
                    debug!(job = %job.name, %error, "run ended by jobrun");
                }
            }
            Err(e) => error!(job = %firing.job, error = format!("{e:#}"), "firing failed"),
        }
        done
    });
}

/// The catch-up firings at start (`catch_up:`): for each job that has it, the
/// latest tick missed while no daemon ran, if it is within the job's window.
/// The claim decides whether it was really missed: a tick another process
/// ran is not run again. A state directory no daemon ever used has no
/// downtime to catch up on.
fn missed_ticks(ctx: &FireContext, plan: &Plan, started: DateTime<Utc>) -> Vec<Firing> {
    if !plan.jobs().iter().any(|j| j.spec.catch_up.is_some()) {
        return Vec::new();
    }
    let last_seen = match ctx.store.last_daemon_seen() {
        Ok(Some(t)) => t,
        Ok(None) => {
            info!("no daemon ran in this state directory before; nothing to catch up");
            return Vec::new();
        }
        Err(e) => {
            warn!(error = %e, "reading when the last daemon ran; nothing caught up");
            return Vec::new();
        }
    };
    // A daemon that died right after its last heartbeat may have missed the
    // ticks up to its next one.
    let down_since = last_seen - chrono::Duration::from_std(HEARTBEAT).unwrap_or_default();
    let mut out = Vec::new();
    for job in plan.jobs().iter().filter(|j| j.spec.enabled) {
        let Some(window) = job.spec.catch_up else {
            continue;
        };
        let window_start = chrono::Duration::from_std(window)
            .ok()
            .and_then(|w| started.checked_sub_signed(w))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let from = down_since.max(window_start);
        let Some(tick) = job.latest_tick(from, started) else {
            continue;
        };
        match ctx.store.tick_claimed(&job.name, tick) {
            Ok(false) => {
                info!(job = %job.name, tick = %tick.to_rfc3339(), "catching up a tick missed while no daemon ran");
                out.push(Firing::new(job.name.clone(), Some(tick), Trigger::CatchUp));
            }
            Ok(true) => {}
            Err(e) => warn!(job = %job.name, error = %e, "reading a tick's claim; not caught up"),
        }
    }
    out
}

/// Stops scheduling, sends SIGTERM to every running job's process group, waits
/// up to `grace`, then SIGKILL; every run is recorded before this returns.
async fn shut_down(ctx: &FireContext, tasks: &mut JoinSet<Done>, grace: Duration) {
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
        // Killed jobs end at once; only a stuck database could hold this up,
        // and then the runs are recorded abandoned at the next start.
        let recorded = tokio::time::timeout(Duration::from_secs(10), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if recorded.is_err() {
            warn!(
                "some runs could not be recorded before exit; the next start marks them abandoned"
            );
        }
    }
    info!("daemon stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(yaml: &str) -> Arc<Plan> {
        let set = crate::source::yaml::parse_yaml(std::path::Path::new("jobs.yaml"), yaml);
        let (plan, diagnostics) = Plan::build(set, chrono_tz::UTC);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        Arc::new(plan)
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn wake_ups_between_ticks_do_not_walk_the_plan() {
        let plan = plan(
            "jobs:\n\
             \x20 - {name: a, schedule: '*/10 * * * * *', command: a}\n\
             \x20 - {name: b, schedule: '*/15 * * * * *', command: b}\n",
        );
        let mut memo = NextTick::default();
        let start = at("2026-11-22T10:00:00Z");
        let mut cursor = start;
        assert_eq!(memo.after(&plan, cursor), Some(at("2026-11-22T10:00:10Z")));
        // A thousand finished runs wake the loop before the next tick.
        for ms in 1..=1000 {
            let now = start + chrono::Duration::milliseconds(ms * 9);
            assert!(memo.due(&plan, cursor, now).is_empty());
            cursor = now;
            assert_eq!(memo.after(&plan, cursor), Some(at("2026-11-22T10:00:10Z")));
        }
        assert_eq!(memo.walks, 1, "the plan was walked once");
        // The tick itself is due, and the next one is found after it.
        let now = at("2026-11-22T10:00:10.001Z");
        let due: Vec<_> = memo
            .due(&plan, cursor, now)
            .into_iter()
            .map(|(job, tick)| (job.name.clone(), tick))
            .collect();
        assert_eq!(due, [("a".to_string(), at("2026-11-22T10:00:10Z"))]);
        assert_eq!(memo.after(&plan, now), Some(at("2026-11-22T10:00:15Z")));
        // Up to and past b's tick and a's next: both due, each once.
        let later = at("2026-11-22T10:00:20Z");
        let mut due: Vec<_> = memo
            .due(&plan, now, later)
            .into_iter()
            .map(|(job, tick)| (job.name.clone(), tick))
            .collect();
        due.sort();
        assert_eq!(
            due,
            [
                ("a".to_string(), at("2026-11-22T10:00:20Z")),
                ("b".to_string(), at("2026-11-22T10:00:15Z")),
            ]
        );
        // A new plan (a reload) is walked again.
        let reloaded = Arc::new((*plan).clone());
        assert_eq!(
            memo.after(&reloaded, later),
            Some(at("2026-11-22T10:00:30Z"))
        );
    }
}
