//! `jobrun daemon`: start-up, the scheduler loop and shutdown.
//!
//! [`run`] opens the state, recovers what a killed daemon left, starts the
//! start-up firings (`@reboot`, `run_on_start`, missed ticks: `start_up`),
//! then runs the scheduler loop (`scheduler`) until SIGTERM/SIGINT, and
//! stops the running jobs and records them before exiting.
//!
//! The loop sleeps until the next tick (never polls; it re-reads the wall
//! clock at least once a minute so suspend and clock steps are noticed) and
//! hands every due job to `fire` concurrently. Its components, each in its
//! own module: `clock_watch` (jumps and suspends), `next_tick`, `timer`,
//! `heartbeat` (written off the loop), `watch_runs` (`watch:` jobs, see
//! [`watch`]), `source_reloads` (SIGHUP and source changes, see
//! [`reload`]), `file_watch` (the one inotify watcher both use), `executor`
//! (firings and chained runs), `housekeeping` (pruning, the PID-1 reaper)
//! and `shutdown` (the one awaitable stop they share). Every run goes
//! through `fire` like a scheduled run.

mod clock_watch;
mod executor;
mod file_watch;
mod heartbeat;
mod housekeeping;
mod listener;
mod loaded;
pub mod memory;
mod next_tick;
pub mod output;
#[cfg(test)]
mod panic_tests;
pub mod reboot;
mod recovery;
pub mod reload;
mod scheduler;
mod shutdown;
mod source_reloads;
mod start_up;
mod state_check;
mod timer;
pub mod watch;
mod watch_runs;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tracing::{info, warn};

use crate::clock::Clock;
use crate::fire::FireContext;
use crate::notify::Notifier;
use crate::plan::Plan;
use crate::runner;
use crate::store::Retention;
use clock_watch::ClockWatch;
use executor::shut_down;
use heartbeat::{Beater, Heartbeat};
use housekeeping::{prune, reap_orphans_until};
use next_tick::NextTick;

/// What the daemon needs to run, resolved by the command line.
pub struct DaemonOptions {
    pub plan: Plan,
    /// Where this host's local files live (the `@reboot` marker's fallback,
    /// the spool).
    pub state_dir: PathBuf,
    /// Where the state is: the state directory, or a fleet's database.
    pub location: crate::store::Location,
    /// This daemon's host in runs and heartbeats (`--host-id`).
    pub host: String,
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
    /// `--http`: the read-only listener, if asked for.
    pub http: Option<crate::http::HttpOptions>,
}

pub use crate::status::HEARTBEAT;
/// How long the daemon's exit waits for the last notifications.
const NOTIFY_DRAIN: Duration = Duration::from_secs(2);
/// How often the history is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Runs the daemon until `shutdown` completes, then stops running jobs and
/// records them. Public so tests can boot a daemon in-process.
pub async fn run(
    opts: DaemonOptions,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let started = clock.now();
    // Read with `started`: start-up work before the loop (recovery, pruning)
    // must not look like a clock jump at its first pass.
    let started_mono = clock.monotonic();
    // Subscribed with `started`: a hand-moved clock moved during start-up
    // wakes the loop's first sleep.
    let moved = clock.moved();
    let ctx = Arc::new(FireContext::open(
        &opts.location,
        &opts.state_dir,
        opts.host,
        Arc::clone(&clock),
        started,
        Arc::new(output::StdoutSink::new(
            opts.json_output,
            Arc::clone(&clock),
        )),
        opts.base_env,
        opts.tail_bytes,
    )?);
    state_check::check_state(&ctx.store)?;
    recovery::recover_abandoned(&ctx)?;
    let plan = Arc::new(opts.plan);
    crate::fire::declare(&ctx.store, &plan);
    ctx.accept_stop_requests();
    // Before the first firing: every run event of a job with `notify:` is
    // handed to the notifier's own thread (never awaited by a firing).
    let notifier = Notifier::new(Arc::clone(&ctx.store), ctx.host.clone(), &plan);
    ctx.events.subscribe(notifier.subscriber());
    // Before anything reads the runs (catch-up, pruning, claims): a renamed
    // crontab job's runs are found under its new name.
    loaded::follow_names(&ctx.store, &plan);
    // Before this daemon's first heartbeat: the last one on record tells
    // when the downtime began.
    let downtime = start_up::missed_ticks(&ctx, &plan, started);
    let http =
        listener::start(opts.http, &ctx, &plan, opts.reload.as_ref(), &opts.location).await?;
    if let Some(http) = &http {
        http.view.metrics.count_notifications(notifier.counters());
        http.view.metrics.downtime(&downtime.missed(&plan));
    }
    let (stop, stopping) = shutdown::channel();
    let reaper = opts
        .reap
        .then(|| tokio::spawn(reap_orphans_until(stopping)));
    // The first pruning happens here rather than on a pool thread, which
    // would linger and wake the idle daemon again when it exits; the hourly
    // ones ride on the loop's wake-ups (see `prune_in_background`).
    prune(&ctx, started, opts.retention);
    let tasks = start_up::start(
        &ctx,
        &plan,
        (&opts.reboot_marker_dir, &opts.state_dir),
        started,
        downtime.catch_up,
    );
    // One watcher (one inotify instance) for every `watch:` job and the reload.
    let files = file_watch::FileWatch::default();
    let watch_runs = watch_runs::WatchRuns::new(files.clone(), &plan);
    let sources =
        source_reloads::SourceReloads::new(opts.reload, &plan, &files, watch_runs.watches.armer())?;
    // Said once SIGHUP is handled: a signal sent on this line reloads.
    info!(
        jobs = plan.jobs().len(),
        state = %ctx.store.describe(),
        "daemon started"
    );
    loaded::record(&ctx, &plan, &sources.problems(), started).await;
    let heartbeat = Heartbeat::start(
        &ctx.store,
        Beater {
            owner: ctx.owner.clone(),
            host: ctx.host.clone(),
            pid: std::process::id(),
            started,
        },
    )
    .context("starting the heartbeat")?;
    let mut scheduler = scheduler::Scheduler {
        ctx: Arc::clone(&ctx),
        plan,
        tasks,
        started,
        retention: opts.retention,
        clock_watch: ClockWatch::new(started, started_mono, opts.max_catch_up),
        ticks: NextTick::default(),
        timer: timer::LoopTimer::new(clock.is_system_realtime()),
        heartbeat,
        watch_runs,
        sources,
        moved,
        next_beat: tokio::time::Instant::now(),
        next_prune: tokio::time::Instant::now() + PRUNE_EVERY,
        recording_loaded: None,
        notifier: Arc::clone(&notifier),
        http,
    };
    scheduler.run(shutdown).await;

    shut_down(&ctx, &mut scheduler.tasks, opts.shutdown_grace).await;
    // The last runs' notifications, for a moment: a receiver that does not
    // answer must not hold up the exit.
    let draining = tokio::task::spawn_blocking(move || notifier.drain());
    if tokio::time::timeout(NOTIFY_DRAIN, draining).await.is_err() {
        warn!("notifications still undelivered at exit are dropped");
    }
    if let Some(recording) = scheduler.recording_loaded.take() {
        let _ = recording.await;
    }
    // No beat after this may overwrite the recorded stop.
    scheduler.heartbeat.stop();
    if let Err(e) = ctx.store.daemon_stopped(&ctx.owner, clock.now()) {
        warn!(error = %e, "recording the daemon's stop");
    }
    // The reaper reaps until the runs are stopped and recorded.
    stop.raise();
    if let Some(reaper) = reaper {
        let _ = reaper.await;
        runner::reap_orphans();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

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
