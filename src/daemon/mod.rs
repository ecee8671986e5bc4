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
mod executor;
mod housekeeping;
mod loaded;
pub mod memory;
mod next_tick;
pub mod output;
#[cfg(test)]
mod panic_tests;
pub mod reboot;
mod recovery;
pub mod reload;
mod start_up;
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
use crate::fire::{self, ActiveRuns, FireContext};
use crate::job::{Firing, Trigger, DEFAULT_WATCH_DEBOUNCE};
use crate::lock;
use crate::plan::Plan;
use crate::recorder::Recorder;
use crate::runner;
use crate::store::{Retention, Store};
use clock_watch::{ClockWatch, Pass};
use executor::{shut_down, spawn_firing, Done};
use housekeeping::{prune, prune_in_background, reap_orphans_forever};
use next_tick::NextTick;
use start_up::{missed_ticks, start_reboot_jobs};

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
    // A job with a missed tick runs once at start, for that tick: its
    // catch-up run is its start run too (two would only skip each other).
    let caught_up: std::collections::HashSet<&str> =
        catch_up.iter().map(|f| f.job.as_str()).collect();
    for job in plan
        .jobs()
        .iter()
        .filter(|j| j.spec.enabled && j.spec.run_on_start)
        .filter(|j| !caught_up.contains(j.name.as_str()))
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

fn debounce_of(job: &crate::plan::Job) -> Duration {
    job.spec
        .watch
        .as_ref()
        .map_or(DEFAULT_WATCH_DEBOUNCE, |w| w.debounce)
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
