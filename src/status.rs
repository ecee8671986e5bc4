//! The status of a state directory, as `jobrun status` prints it and the
//! daemon's `/status` and `/healthz` serve it: the live daemon (by its
//! heartbeat), the jobs it runs with each one's latest run, and the verdict
//! of [`crate::health`]. One reading of the store, shared by both, so the
//! command and the endpoint can never disagree.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::health;
use crate::store::owner::{owner_alive, Evidence};
use crate::store::{DaemonRecord, Fleet, RunRecord, Store};

/// How often the daemon records that it is alive (`jobrun status`). Once a
/// minute, on the wake-up that re-reads the clock anyway, so an idle daemon's
/// loop wakes once a minute and not more (issue 6).
pub const HEARTBEAT: Duration = Duration::from_secs(60);

/// A beat older than this means the daemon is gone: two missed heartbeats
/// (a daemon beats every [`HEARTBEAT`], on its once-a-minute wake-up; a
/// wake-up can come a little late under load). On this host a dead daemon is
/// noticed at once anyway, by its missing process.
pub const STALE_AFTER: Duration = HEARTBEAT
    .saturating_mul(2)
    .saturating_add(Duration::from_secs(30));

/// A daemon is alive when it beat within [`STALE_AFTER`] and its owner is
/// alive by the store's one rule ([`crate::store::owner::owner_alive`]: on
/// this host, its process still runs and is the one that started). `me`:
/// the asking process's own owner id, when it is a daemon itself.
pub fn alive(daemon: &DaemonRecord, now: DateTime<Utc>, host: &str, me: Option<&str>) -> bool {
    let fresh = now - daemon.last_beat
        <= chrono::Duration::from_std(STALE_AFTER).unwrap_or(chrono::Duration::MAX);
    fresh && owner_alive(&daemon.owner, &Evidence::here(host, me, now, Some(daemon))).is_alive()
}

/// The first live daemon of the state, if any (`me` as for [`alive`]); in
/// a fleet, the first that holds its lease by the database server's clock.
pub fn live_daemon(
    store: &Store,
    now: DateTime<Utc>,
    me: Option<&str>,
) -> Result<Option<DaemonRecord>> {
    let host = crate::fire::this_host();
    for d in store.daemons().context("reading daemon heartbeats")? {
        let live = if store.is_fleet() {
            let evidence = Evidence::here(&host, me, now, Some(&d));
            store.owner_liveness(&d.owner, &evidence)?.is_alive()
        } else {
            alive(&d, now, &host, me)
        };
        if live {
            return Ok(Some(d));
        }
    }
    Ok(None)
}

/// What the store says: the live daemon and every job's latest run.
pub struct Report {
    pub daemon: Option<DaemonRecord>,
    latest: Vec<RunRecord>,
    /// The fleet sharing a PostgreSQL state (`None` for SQLite).
    pub fleet: Option<Fleet>,
}

/// One job and its latest run, if it has one.
#[derive(Serialize)]
pub struct JobStatus<'a> {
    pub name: &'a str,
    pub last_run: Option<&'a RunRecord>,
}

/// The JSON of `jobrun status --json` and of `/status`.
#[derive(Serialize)]
pub struct StatusJson<'a> {
    healthy: bool,
    /// `healthy`, `degraded` or `unhealthy`.
    state: health::State,
    /// Why it is not healthy, one line each.
    reasons: &'a [String],
    daemon: Option<&'a DaemonRecord>,
    jobs: &'a [JobStatus<'a>],
    /// The fleet sharing a PostgreSQL state (absent for SQLite).
    #[serde(skip_serializing_if = "Option::is_none")]
    fleet: Option<&'a Fleet>,
}

impl Report {
    /// Reads the status at `now` from `store` (`None`: a state directory
    /// with no store yet, so no daemon and no runs); `me` as for [`alive`].
    pub fn read(store: Option<&Store>, now: DateTime<Utc>, me: Option<&str>) -> Result<Report> {
        Ok(match store {
            Some(store) => Report {
                daemon: live_daemon(store, now, me)?,
                latest: store.latest_runs().context("reading the run history")?,
                fleet: store.fleet().context("reading the fleet")?,
            },
            None => Report {
                daemon: None,
                latest: Vec::new(),
                fleet: None,
            },
        })
    }

    /// The jobs the daemon runs with their latest run; without a record of
    /// them (no daemon, or an older one), every job with a run.
    pub fn jobs(&self) -> Vec<JobStatus<'_>> {
        match self.daemon.as_ref().and_then(|d| d.loaded.as_ref()) {
            Some(l) => {
                // By name, not a scan of every run per job (issue 12: linear).
                let mut by_job: HashMap<&str, &RunRecord> =
                    HashMap::with_capacity(self.latest.len());
                for r in &self.latest {
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
            None => self
                .latest
                .iter()
                .map(|r| JobStatus {
                    name: &r.job,
                    last_run: Some(r),
                })
                .collect(),
        }
    }

    /// The verdict of [`health::judge`] on `jobs` (from [`Report::jobs`]),
    /// with `daemon_alive` as the caller judges it (`jobrun status`: a live
    /// daemon on record; the daemon itself: its loop is not stuck).
    pub fn verdict(&self, jobs: &[JobStatus<'_>], daemon_alive: bool) -> health::Verdict {
        let no_errors = Vec::new();
        let loaded = self.daemon.as_ref().and_then(|d| d.loaded.as_ref());
        health::judge(
            daemon_alive,
            loaded.map_or(&no_errors, |l| &l.errors),
            jobs.iter()
                .filter_map(|j| j.last_run.map(|r| (j.name, r.status))),
        )
    }

    /// The JSON shape of `verdict` and `jobs`.
    pub fn json<'a>(
        &'a self,
        verdict: &'a health::Verdict,
        jobs: &'a [JobStatus<'a>],
    ) -> StatusJson<'a> {
        StatusJson {
            healthy: verdict.healthy(),
            state: verdict.state,
            reasons: &verdict.reasons,
            daemon: self.daemon.as_ref(),
            jobs,
            fleet: self.fleet.as_ref(),
        }
    }
}
