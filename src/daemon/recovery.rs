//! Start-up recovery: the `running` rows whose owner is shown dead are
//! recorded `abandoned`, and a job process group such an owner left running
//! on this host is stopped.
//!
//! A free lock is not proof of death: the files in `locks/` can be deleted
//! under a live daemon (a tmp cleaner, an operator), and then a second
//! daemon's lock is free while the first one's run goes on. A run is
//! abandoned only when its owner is shown dead: on this host, its pid is gone
//! or now belongs to a process that started after the owner did; on another
//! host, it stopped or its heartbeat is stale. A held lock still proves a live
//! owner.
//!
//! Must not know schedules or how a job is started.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::fire::FireContext;
use crate::lock::{self, LockMode};
use crate::procfs;
use crate::runner;
use crate::store::{DaemonRecord, RunRecord};

use super::HEARTBEAT;

/// How far a process's start (from `/proc`, to about a second) may be from a
/// recorded start for the process to be taken for the recorded one.
const START_SLACK: f64 = 3.0;

/// A daemon on another host whose last heartbeat is older than this is dead
/// (it beats once a minute).
const STALE_AFTER: chrono::Duration = chrono::Duration::seconds(3 * HEARTBEAT.as_secs() as i64);

/// Whether a run's owner is alive, with the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Owner {
    Alive(String),
    Dead(String),
}

/// What the verdict is drawn from (the lookups are passed in so that the
/// rules are tested without processes or a database).
pub(super) struct Evidence<'a> {
    pub this_host: &'a str,
    pub own_pid: u32,
    pub now: DateTime<Utc>,
    /// The owner's heartbeat record, if it ever beat.
    pub heartbeat: Option<&'a DaemonRecord>,
    /// When a live process started (seconds since the epoch), `None` if gone.
    pub process_started: &'a dyn Fn(u32) -> Option<f64>,
}

/// The parts of an owner id (`host:pid:start`, see `fire::owner_id`).
fn parse_owner(owner: &str) -> Option<(&str, u32, DateTime<Utc>)> {
    let (host, rest) = owner.split_once(':')?;
    let (pid, start) = rest.split_once(':')?;
    Some((host, pid.parse().ok()?, start.parse().ok()?))
}

/// Judges the owner of `run` (whose lock is free).
pub(super) fn owner_state(run: &RunRecord, e: &Evidence<'_>) -> Owner {
    if let Some((host, pid, start)) = parse_owner(&run.owner) {
        if host == e.this_host {
            if pid == e.own_pid {
                return Owner::Dead(format!("its process id {pid} is now this daemon's"));
            }
            let start = start.timestamp_millis() as f64 / 1000.0;
            return match (e.process_started)(pid) {
                None => Owner::Dead(format!("its process {pid} is gone")),
                // The owner recorded its start after its process began, so a
                // process that began later is another program with its pid.
                Some(at) if at > start + START_SLACK => Owner::Dead(format!(
                    "its process id {pid} now belongs to a program started later"
                )),
                Some(_) => Owner::Alive(format!("its process {pid} is still running")),
            };
        }
    }
    match e.heartbeat {
        Some(d) if d.stopped_at.is_some() => Owner::Dead("it stopped".into()),
        Some(d) if e.now - d.last_beat > STALE_AFTER => Owner::Dead(format!(
            "its last heartbeat was at {}",
            d.last_beat.to_rfc3339()
        )),
        Some(d) => Owner::Alive(format!(
            "its heartbeat at {} is recent",
            d.last_beat.to_rfc3339()
        )),
        // Another host's process that never beat (`jobrun run`): nothing but
        // the lock is known, as before heartbeats.
        None => Owner::Dead("it left no heartbeat and its lock is free".into()),
    }
}

/// Marks the `running` rows whose owner is shown dead as `abandoned`, and
/// stops the process group such an owner left running on this host.
pub(super) fn recover_abandoned(ctx: &FireContext) -> Result<()> {
    let own_pid = std::process::id();
    for run in ctx.store.running().context("reading running runs")? {
        let Some(_lock) = lock::try_lock(&ctx.locks_dir, &run.job, LockMode::Exclusive)
            .context("checking a job's lock")?
        else {
            continue; // alive in another process sharing this state directory
        };
        let heartbeat = ctx
            .store
            .daemon(&run.owner)
            .context("reading a daemon's heartbeat")?;
        let evidence = Evidence {
            this_host: &ctx.host,
            own_pid,
            now: ctx.clock.now(),
            heartbeat: heartbeat.as_ref(),
            process_started: &procfs::process_started,
        };
        let why = match owner_state(&run, &evidence) {
            Owner::Alive(why) => {
                info!(job = %run.job, run_id = run.id.0, owner = %run.owner, why = %why,
                    "a running run's lock is free but its owner is alive; left to it");
                continue;
            }
            Owner::Dead(why) => why,
        };
        // Its command may still be running, unsupervised (the daemon was
        // killed with SIGKILL): no timeout, no output, and the free lock
        // would let a new tick start beside it. Stop it, if its process
        // group is still the one this run started.
        let stopped = match (run.pid, run.started_at) {
            (Some(pid), Some(started)) if run.host == ctx.host => {
                let is_the_run = runner::job_group_started(pid).is_some_and(|at| {
                    (at - started.timestamp_millis() as f64 / 1000.0).abs() < START_SLACK
                });
                if is_the_run {
                    runner::stop_foreign_group(pid, runner::DEFAULT_KILL_GRACE);
                    warn!(job = %run.job, run_id = run.id.0, pid, "stopping the process group a killed jobrun left running");
                }
                is_the_run
            }
            _ => false,
        };
        let reason = format!(
            "the jobrun process that ran it ({}) ended while it ran ({why}){}",
            run.owner,
            if stopped {
                "; its process group, still running, was stopped"
            } else {
                ""
            }
        );
        if ctx.store.mark_abandoned(run.id, ctx.clock.now(), &reason)? {
            warn!(job = %run.job, run_id = run.id.0, "marked abandoned");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("a time")
    }

    fn run(owner: &str) -> RunRecord {
        RunRecord {
            id: crate::job::RunId(1),
            job: "j".into(),
            trigger: "schedule".into(),
            tick: None,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            status: crate::job::RunStatus::Running,
            exit_code: None,
            signal: None,
            pid: None,
            host: owner.split(':').next().unwrap_or_default().into(),
            output_bytes: 0,
            error: None,
            parent_id: None,
            attempt: 1,
            claimed_at: at("2026-05-01T10:00:00Z"),
            owner: owner.into(),
        }
    }

    fn beat(last: &str, stopped: Option<&str>) -> DaemonRecord {
        DaemonRecord {
            owner: "other:7:2026-05-01T09:00:00.000Z".into(),
            pid: 7,
            host: "other".into(),
            started_at: at("2026-05-01T09:00:00Z"),
            last_beat: at(last),
            stopped_at: stopped.map(at),
            loaded: None,
        }
    }

    fn judge(owner: &str, heartbeat: Option<&DaemonRecord>, started: Option<f64>) -> Owner {
        let lookup = move |_pid: u32| started;
        owner_state(
            &run(owner),
            &Evidence {
                this_host: "here",
                own_pid: 99,
                now: at("2026-05-01T10:05:00Z"),
                heartbeat,
                process_started: &lookup,
            },
        )
    }

    /// 2026-05-01T09:00:00Z, the owner's recorded start, in epoch seconds.
    const OWNER_START: f64 = 1_777_626_000.0;

    #[test]
    fn on_this_host_a_live_owner_process_keeps_its_run_whatever_the_lock_says() {
        let owner = "here:7:2026-05-01T09:00:00.000Z";
        // Started before it recorded itself: the same process.
        assert!(matches!(
            judge(owner, None, Some(OWNER_START - 1.5)),
            Owner::Alive(_)
        ));
        assert!(matches!(judge(owner, None, None), Owner::Dead(w) if w.contains("gone")));
        assert!(matches!(
            judge(owner, None, Some(OWNER_START + 60.0)),
            Owner::Dead(w) if w.contains("started later")
        ));
        // A stale heartbeat does not outvote a live process on this host.
        let stale = beat("2026-05-01T09:00:00Z", None);
        assert!(matches!(
            judge(owner, Some(&stale), Some(OWNER_START)),
            Owner::Alive(_)
        ));
        // This very pid is this daemon: the owner was an earlier process.
        assert!(matches!(
            judge("here:99:2026-05-01T09:00:00.000Z", None, Some(OWNER_START)),
            Owner::Dead(_)
        ));
    }

    #[test]
    fn on_another_host_the_heartbeat_decides() {
        let owner = "other:7:2026-05-01T09:00:00.000Z";
        let fresh = beat("2026-05-01T10:04:00Z", None);
        assert!(matches!(judge(owner, Some(&fresh), None), Owner::Alive(_)));
        let stale = beat("2026-05-01T10:01:00Z", None);
        assert!(matches!(
            judge(owner, Some(&stale), None),
            Owner::Dead(w) if w.contains("last heartbeat")
        ));
        let stopped = beat("2026-05-01T10:04:00Z", Some("2026-05-01T10:04:30Z"));
        assert!(matches!(
            judge(owner, Some(&stopped), None),
            Owner::Dead(w) if w.contains("stopped")
        ));
    }
}
