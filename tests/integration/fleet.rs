//! The fleet end to end (issue 14, "How it is built and tested"): several
//! daemons as different `--host-id`s on one PostgreSQL database, each with a
//! state directory of its own (they stand for different hosts), under the
//! faults the issue names: a killed host, a paused host, cut connections and
//! a restarted or stopped server (a throwaway cluster, `pg_cluster`), a
//! `forbid` job longer than its period, two definitions of one job.
//!
//! Short leases (`--heartbeat 1s --fence 3s --lease 8s`) and seconds-field
//! schedules keep each scenario to seconds. Every wait is on something
//! observable (history rows, lines the jobs write, log lines); the only fixed
//! sleep is the outage that a scenario is about. The jobs write
//! `$JOBRUN_TICK $FLEET_HOST` lines, so each run says which host ran it and
//! the database can be checked against the jobs' own record.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::harness::{wait_for, wait_until, Daemon, Output, Test};
use crate::pg_cluster::PgCluster;
use crate::postgres::testdb::TestDb;

/// Short leases, for every daemon of these tests.
const LEASES: [&str; 6] = ["--heartbeat", "1s", "--fence", "3s", "--lease", "8s"];
/// The `--lease` of [`LEASES`].
const LEASE: Duration = Duration::from_secs(8);

/// A job line: the tick and the host that ran it, appended to `{root}/FILE`.
fn record_to(file: &str) -> String {
    format!("echo \"$JOBRUN_TICK $FLEET_HOST\" >> {{root}}/{file}")
}

#[allow(clippy::disallowed_methods)] // tests compare the daemons' times with the real clock
fn wall_now() -> DateTime<Utc> {
    Utc::now()
}

/// One test's fleet: its tree, and the database every host and every
/// command of the test uses.
struct Fleet {
    t: Test,
    url: String,
}

impl Fleet {
    fn new(url: &str) -> Fleet {
        Fleet {
            t: Test::new(),
            url: url.to_string(),
        }
    }

    /// Writes `rel` with the jobs given as (name, schedule, command, extra
    /// YAML lines at job indentation).
    fn jobs(&self, rel: &str, jobs: &[(&str, &str, &str, &str)]) {
        let mut text = String::from("jobs:\n");
        for (name, schedule, command, extra) in jobs {
            text.push_str(&format!(
                "  - name: {name}\n    schedule: \"{schedule}\"\n    command: '{}'\n",
                command.replace('\'', "''")
            ));
            for line in extra.lines() {
                text.push_str(&format!("    {line}\n"));
            }
        }
        self.t.write(rel, &text);
    }

    /// Starts host `host` on the fleet's database with the job file `rel`.
    fn host(&self, host: &str, rel: &str) -> Daemon {
        self.host_on(host, rel, &self.url)
    }

    /// Starts host `host` on `url`: its own state directory, the short
    /// leases, and `FLEET_HOST` in its jobs' environment.
    fn host_on(&self, host: &str, rel: &str, url: &str) -> Daemon {
        self.host_with(host, rel, url, &[])
    }

    /// Starts host `host` on `url` with `env` added to its environment.
    fn host_with(&self, host: &str, rel: &str, url: &str, env: &[(&str, &str)]) -> Daemon {
        let state = format!("{{root}}/hosts/{host}");
        let config = format!("{{root}}/{rel}");
        let mut args = vec![
            "--database",
            url,
            "--host-id",
            host,
            "--state-dir",
            &state,
            "--config",
            &config,
        ];
        args.extend(LEASES);
        let mut all = vec![("FLEET_HOST", host)];
        all.extend(env);
        self.t.spawn_daemon_env(args, &all)
    }

    /// jobrun `args` against the fleet's database.
    fn jobrun(&self, args: &[&str]) -> Output {
        let mut all = vec!["--database", self.url.as_str()];
        all.extend(args);
        self.t.run_args(all)
    }

    /// Every run of `job` in the database, oldest first.
    #[track_caller]
    fn history(&self, job: &str) -> Vec<Value> {
        let out = self
            .jobrun(&["history", job, "--json", "--limit", "1000000"])
            .expect_code(0);
        let mut rows = out.json().as_array().expect("history is an array").clone();
        rows.reverse();
        rows
    }

    /// `status --json` (exit 0 when healthy, 1 when not: both print it).
    #[track_caller]
    fn status(&self) -> Value {
        let out = self.jobrun(&["status", "--json"]);
        assert!(
            out.code == 0 || out.code == 1,
            "status: exit {}\n{}",
            out.code,
            out.stderr
        );
        out.json()
    }

    /// `status` as text (exit 0 or 1, as for [`Fleet::status`]).
    #[track_caller]
    fn status_text(&self) -> String {
        let out = self.jobrun(&["status"]);
        assert!(
            out.code == 0 || out.code == 1,
            "status: exit {}\n{}",
            out.code,
            out.stderr
        );
        out.stdout
    }

    /// The fleet's members in `status --json`, by host (the newest epoch of
    /// each host).
    #[track_caller]
    fn members(&self) -> BTreeMap<String, Value> {
        let status = self.status();
        members_of(&status)
            .unwrap_or_else(|| panic!("status --json has no fleet.members: {status}"))
    }

    /// Waits until every host in `hosts` is an alive member of the fleet.
    #[track_caller]
    fn wait_alive(&self, hosts: &[&str]) {
        wait_for(Duration::from_secs(60), "every host to be alive", || {
            // No fleet before the first daemon has made the schema.
            let members = members_of(&self.status())?;
            hosts
                .iter()
                .all(|h| members.get(*h).is_some_and(|m| m["state"] == "alive"))
                .then_some(())
        });
    }

    /// The (tick, host) lines of a job's side-effect file.
    fn lines(&self, rel: &str) -> Vec<(DateTime<Utc>, String)> {
        std::fs::read_to_string(self.t.path(rel))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let (tick, host) = l.split_once(' ').unwrap_or((l, ""));
                let tick = tick
                    .parse()
                    .unwrap_or_else(|e| panic!("{rel}: line {l:?}: {e}"));
                (tick, host.to_string())
            })
            .collect()
    }
}

/// The members of a `status --json` by host (the newest epoch of each
/// host); `None` without a fleet.
fn members_of(status: &Value) -> Option<BTreeMap<String, Value>> {
    let mut by_host: BTreeMap<String, Value> = BTreeMap::new();
    for m in status["fleet"]["members"].as_array()? {
        let host = m["host"].as_str().expect("a member's host").to_string();
        let newer = by_host
            .get(&host)
            .is_none_or(|old| old["epoch"].as_i64() < m["epoch"].as_i64());
        if newer {
            by_host.insert(host, m.clone());
        }
    }
    Some(by_host)
}

/// A history row's time field.
fn time(row: &Value, field: &str) -> Option<DateTime<Utc>> {
    row[field].as_str().map(|s| {
        s.parse()
            .unwrap_or_else(|e| panic!("{field} {s:?} of {row}: {e}"))
    })
}

fn tick(row: &Value) -> DateTime<Utc> {
    time(row, "tick").unwrap_or_else(|| panic!("a scheduled run without a tick: {row}"))
}

/// Fails unless no tick of `rows` has two rows.
#[track_caller]
fn one_row_per_tick(rows: &[Value]) {
    let mut seen: BTreeMap<DateTime<Utc>, &Value> = BTreeMap::new();
    for r in rows {
        if let Some(first) = seen.insert(tick(r), r) {
            panic!("two rows for one tick:\n{first}\n{r}");
        }
    }
}

/// Fails unless no tick was written twice by the jobs.
#[track_caller]
fn no_tick_twice(lines: &[(DateTime<Utc>, String)]) {
    let mut seen = BTreeSet::new();
    for (tick, host) in lines {
        assert!(
            seen.insert(*tick),
            "tick {tick} ran twice (again on {host}): {lines:?}"
        );
    }
}

/// Fails unless every tick the jobs wrote has a claimed row in `rows` (not
/// `missed`): no command started without a claim.
#[track_caller]
fn every_run_claimed(lines: &[(DateTime<Utc>, String)], rows: &[Value]) {
    let claimed: BTreeSet<DateTime<Utc>> = rows
        .iter()
        .filter(|r| r["status"] != "missed")
        .map(tick)
        .collect();
    for (t, host) in lines {
        assert!(
            claimed.contains(t),
            "tick {t} ran on {host} without a claim: {rows:#?}"
        );
    }
}

/// Stops every daemon with SIGTERM and fails unless each exits 0.
#[track_caller]
fn stop_all(daemons: Vec<Daemon>) {
    for d in &daemons {
        d.signal(Signal::SIGTERM);
    }
    for d in daemons {
        let (code, log) = d.wait(Duration::from_secs(30));
        assert_eq!(code, 0, "a daemon's exit code; its log:\n{log}");
    }
}

/// The process groups of jobs whose daemon was killed (they outlive it):
/// killed when the test ends, passed or failed.
#[derive(Default)]
struct Orphans(Vec<i32>);

impl Drop for Orphans {
    fn drop(&mut self) {
        for &pgid in &self.0 {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

/// Fails unless the runs of `rows` whose command started (they have a pid)
/// ran one after another: no start before the previous run's end.
#[track_caller]
fn never_two_at_once(rows: &[Value]) {
    let mut intervals: Vec<(DateTime<Utc>, DateTime<Utc>, &Value)> = rows
        .iter()
        .filter(|r| r["pid"].is_number())
        .map(|r| {
            let start = time(r, "started_at").unwrap_or_else(|| panic!("no start: {r}"));
            let end = time(r, "finished_at").unwrap_or_else(|| panic!("no end: {r}"));
            (start, end, r)
        })
        .collect();
    intervals.sort_by_key(|(start, _, _)| *start);
    for pair in intervals.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "two runs at once:\n{}\n{}",
            pair[0].2,
            pair[1].2
        );
    }
}

/// The seconds from the first row's tick up to `until` that have no row.
fn gaps(rows: &[Value], until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let ticks: BTreeSet<DateTime<Utc>> = rows.iter().map(tick).collect();
    let Some(mut t) = ticks.first().copied() else {
        return Vec::new();
    };
    let mut gaps = Vec::new();
    while t < until {
        if !ticks.contains(&t) {
            gaps.push(t);
        }
        t += chrono::Duration::seconds(1);
    }
    gaps
}

fn pid_alive(pid: i64) -> bool {
    u32::try_from(pid).is_ok_and(jobrun::procfs::is_running)
}

mod hosts;
mod server;
