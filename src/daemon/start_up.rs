//! The daemon's start-up firings: the `@reboot` jobs and the catch-up of
//! ticks missed while no daemon ran. It must not know the loop's wake-ups,
//! reloads or watches.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::executor::{spawn_firing, Done};
use super::{reboot, HEARTBEAT};
use crate::fire::FireContext;
use crate::job::{Firing, Trigger};
use crate::plan::Plan;

/// The firings of the daemon's start: the `@reboot` jobs, the
/// `run_on_start` jobs and the catch-up of missed ticks, as tasks of the
/// returned set. `catch_up`: the [`missed_ticks`].
pub(super) fn start(
    ctx: &Arc<FireContext>,
    plan: &Arc<Plan>,
    dirs: (&std::path::Path, &std::path::Path),
    started: DateTime<Utc>,
    catch_up: Vec<Firing>,
) -> JoinSet<Done> {
    let mut tasks = JoinSet::new();
    start_reboot_jobs(&mut tasks, ctx, plan, dirs, started);
    // A job with a missed tick runs once at start, for that tick: its
    // catch-up run is its start run too (two would only skip each other).
    // By name, not a scan of the catch-up per job (issue 12: linear).
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
            ctx,
            plan,
            Firing::new(job.name.clone(), None, Trigger::Start),
        );
    }
    for firing in catch_up {
        spawn_firing(&mut tasks, ctx, plan, firing);
    }
    tasks
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

/// What a start finds of the downtime before it: the catch-up firings, and
/// per job how many of its ticks fell while no daemon ran and are not run
/// (for `jobrun_job_missed_ticks_total{reason="downtime"}`).
#[derive(Default)]
pub(super) struct Downtime {
    pub catch_up: Vec<Firing>,
    /// From the last moment a daemon was seen to the end of the downtime.
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// Ticks a job counts as missed in one downtime, at most: beyond that the
/// count says "at least" (a per-second job down for a year is not walked).
const DOWNTIME_COUNT_CAP: usize = 10_000;
/// Ticks counted over all jobs, at most (100,000 jobs start in bounded time).
const DOWNTIME_TOTAL_CAP: usize = 1_000_000;

impl Downtime {
    /// Per job, how many ticks fell in the downtime and were not caught up
    /// (only asked for with `--http`: it walks the schedule).
    pub(super) fn missed(&self, plan: &Plan) -> Vec<(String, u64)> {
        let Some((from, until)) = self.window else {
            return Vec::new();
        };
        let caught: std::collections::HashSet<&str> = self
            .catch_up
            .iter()
            .filter(|f| f.tick.is_some_and(|t| t > from))
            .map(|f| f.job.as_str())
            .collect();
        let mut budget = DOWNTIME_TOTAL_CAP;
        let mut out = Vec::new();
        for job in plan.jobs().iter().filter(|j| j.spec.enabled) {
            let fell = job
                .iter_after(from)
                .take_while(|t| *t <= until)
                .take(DOWNTIME_COUNT_CAP.min(budget))
                .count();
            budget -= fell;
            let fell = fell.saturating_sub(usize::from(caught.contains(job.name.as_str())));
            if fell > 0 {
                out.push((job.name.clone(), fell as u64));
            }
        }
        out
    }
}

/// The catch-up firings at start (`catch_up:`): for each job that has it, the
/// latest tick missed while no daemon ran, if it is within the job's window.
/// The claim decides whether it was really missed: a tick another process
/// ran is not run again. A state directory no daemon ever used has no
/// downtime to catch up on.
pub(super) fn missed_ticks(ctx: &FireContext, plan: &Plan, started: DateTime<Utc>) -> Downtime {
    // A daemon already running beside this one (sharing the state directory,
    // or a fleet peer) has run every tick since it started: the downtime, if
    // any, ended when the earliest of them started.
    let until = match crate::status::live_peer(&ctx.store, started, &ctx.owner) {
        Ok(Some(peer)) => peer.started_at.min(started),
        Ok(None) => started,
        Err(e) => {
            warn!(error = %e, "reading whether another daemon runs");
            started
        }
    };
    let last_seen = match ctx.store.last_daemon_seen() {
        Ok(Some(t)) => t,
        Ok(None) => {
            info!("no daemon ran in this state directory before; nothing to catch up");
            return Downtime::default();
        }
        Err(e) => {
            warn!(error = %e, "reading when the last daemon ran; nothing caught up");
            return Downtime::default();
        }
    };
    if last_seen >= until {
        // A live peer was seen since it started (it is the last one seen):
        // no daemon was ever down meanwhile.
        info!("another daemon is running and has been since before the last one stopped; nothing to catch up");
        return Downtime::default();
    }
    // A daemon that died right after its last heartbeat may have missed the
    // ticks up to its next one.
    let down_since = last_seen - chrono::Duration::from_std(HEARTBEAT).unwrap_or_default();
    // Counted from the last moment a daemon was seen (the margin below is
    // for catching up, where the claim decides; a count cannot ask).
    let mut out = Downtime {
        catch_up: Vec::new(),
        window: Some((last_seen, until)),
    };
    for job in plan.jobs().iter().filter(|j| j.spec.enabled) {
        let Some(window) = job.spec.catch_up else {
            continue;
        };
        let window_start = chrono::Duration::from_std(window)
            .ok()
            .and_then(|w| started.checked_sub_signed(w))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let from = down_since.max(window_start);
        // With `jitter`, a tick whose run starts after `started` is not
        // missed: the loop hands it out when it starts.
        let Some(tick) = job.due_tick(from, until) else {
            continue;
        };
        match ctx.store.tick_claimed(&job.name, tick) {
            Ok(false) => {
                info!(job = %job.name, tick = %tick.to_rfc3339(), "catching up a tick missed while no daemon ran");
                out.catch_up
                    .push(Firing::new(job.name.clone(), Some(tick), Trigger::CatchUp));
            }
            Ok(true) => {}
            Err(e) => warn!(job = %job.name, error = %e, "reading a tick's claim; not caught up"),
        }
    }
    out
}
