//! `jobrun status`: is a daemon alive, did its sources load without error,
//! and how did each job's latest run end? Exit 0 when healthy (the rule is
//! `crate::health`), else 1, so it serves as a container `HEALTHCHECK`.
//! Reads only the state (what the daemon recorded it loaded); creates nothing.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::table::{local_time, new_table, relative};
use super::{default_zone, Env, GlobalArgs, EXIT_FAILURE, EXIT_OK};
use crate::daemon::HEARTBEAT;
use crate::health;

/// A beat older than this means the daemon is gone: two missed heartbeats
/// (a daemon beats every [`HEARTBEAT`], on its once-a-minute wake-up; a
/// wake-up can come a little late under load). On this host a dead daemon is
/// noticed at once anyway, by its missing process.
pub const STALE_AFTER: std::time::Duration = HEARTBEAT
    .saturating_mul(2)
    .saturating_add(std::time::Duration::from_secs(30));
use crate::store::owner::{owner_alive, Evidence};
use crate::store::{DaemonRecord, Fleet, RunRecord, Store};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct StatusJson<'a> {
    healthy: bool,
    /// `healthy`, `degraded` or `unhealthy`.
    state: health::State,
    /// Why it is not healthy, one line each.
    reasons: &'a [String],
    daemon: Option<&'a DaemonRecord>,
    jobs: Vec<JobStatus<'a>>,
    /// The fleet sharing a PostgreSQL state (absent for SQLite).
    #[serde(skip_serializing_if = "Option::is_none")]
    fleet: Option<&'a Fleet>,
}

#[derive(Serialize)]
struct JobStatus<'a> {
    name: &'a str,
    last_run: Option<&'a RunRecord>,
}

/// A daemon is alive when it beat within [`STALE_AFTER`] and its owner is
/// alive by the store's one rule ([`crate::store::owner::owner_alive`]: on
/// this host, its process still runs and is the one that started).
pub fn alive(daemon: &DaemonRecord, now: DateTime<Utc>, host: &str) -> bool {
    let fresh = now - daemon.last_beat
        <= chrono::Duration::from_std(STALE_AFTER).unwrap_or(chrono::Duration::MAX);
    fresh
        && owner_alive(
            &daemon.owner,
            &Evidence::here(host, None, now, Some(daemon)),
        )
        .is_alive()
}

/// The first live daemon of the state, if any (in a fleet: the first that
/// holds its lease by the server's clock).
pub fn live_daemon(store: &Store, now: DateTime<Utc>) -> Result<Option<DaemonRecord>> {
    let host = crate::fire::this_host();
    for d in store.daemons().context("reading daemon heartbeats")? {
        let live = if store.is_fleet() {
            let evidence = Evidence::here(&host, None, now, Some(&d));
            store.owner_liveness(&d.owner, &evidence)?.is_alive()
        } else {
            alive(&d, now, &host)
        };
        if live {
            return Ok(Some(d));
        }
    }
    Ok(None)
}

pub fn run(
    global: &GlobalArgs,
    env: &Env,
    now: DateTime<Utc>,
    args: &StatusArgs,
    out: &mut dyn Write,
) -> Result<i32> {
    // Only the state: the daemon recorded what it loaded, so a HEALTHCHECK
    // needs none of the daemon's source options (any given are not read).
    let zone = default_zone(env).0;
    let (daemon, latest, fleet) = match super::open_existing_store(global, env)? {
        Some(store) => (
            live_daemon(&store, now)?,
            store.latest_runs().context("reading the run history")?,
            store.fleet().context("reading the fleet")?,
        ),
        None => (None, Vec::new(), None),
    };
    let loaded = daemon.as_ref().and_then(|d| d.loaded.as_ref());
    // The jobs the daemon runs; without a record of them (no daemon, or an
    // older one), every job with a run.
    let jobs: Vec<JobStatus> = match loaded {
        Some(l) => {
            // By name, not a scan of every run per job (issue 12: linear).
            let mut by_job: HashMap<&str, &RunRecord> = HashMap::with_capacity(latest.len());
            for r in &latest {
                by_job.entry(r.job.as_str()).or_insert(r);
            }
            l.jobs
                .iter()
                .map(|name| JobStatus {
                    name,
                    last_run: by_job.get(name.as_str()).copied(),
                })
                .collect()
        }
        None => latest
            .iter()
            .map(|r| JobStatus {
                name: &r.job,
                last_run: Some(r),
            })
            .collect(),
    };
    let no_errors = Vec::new();
    let verdict = health::judge(
        daemon.is_some(),
        loaded.map_or(&no_errors, |l| &l.errors),
        jobs.iter()
            .filter_map(|j| j.last_run.map(|r| (j.name, r.status))),
    );
    if args.json {
        let status = StatusJson {
            healthy: verdict.healthy(),
            state: verdict.state,
            reasons: &verdict.reasons,
            daemon: daemon.as_ref(),
            jobs,
            fleet: fleet.as_ref(),
        };
        serde_json::to_writer_pretty(&mut *out, &status)?;
        writeln!(out)?;
    } else {
        match &daemon {
            Some(d) => writeln!(
                out,
                "daemon: running, pid {} on {}, since {} (last beat {})",
                d.pid,
                d.host,
                local_time(d.started_at, zone),
                relative(d.last_beat, now)
            )?,
            None => writeln!(
                out,
                "daemon: not running ({})",
                super::location_text(global, env)?
            )?,
        }
        if let Some(fleet) = &fleet {
            super::fleet_view::write_fleet(out, fleet, now, zone, global.table_width())?;
        }
        let mut table = new_table(
            &["JOB", "LAST RUN", "STATUS", "RESULT"],
            global.table_width(),
        );
        for job in &jobs {
            match job.last_run {
                Some(r) => table.add_row(vec![
                    job.name.to_string(),
                    relative(r.started_at.unwrap_or(r.claimed_at), now),
                    r.status.to_string(),
                    super::history::result_text(r),
                ]),
                None => table.add_row(vec![
                    job.name.to_string(),
                    "never".into(),
                    "-".into(),
                    String::new(),
                ]),
            };
        }
        writeln!(out, "{table}")?;
        if verdict.healthy() {
            writeln!(out, "healthy")?;
        }
        for reason in &verdict.reasons {
            writeln!(out, "{reason}")?;
        }
    }
    Ok(if verdict.healthy() {
        EXIT_OK
    } else {
        EXIT_FAILURE
    })
}
