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
        self.t.spawn_daemon_env(args, &[("FLEET_HOST", host)])
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

#[test]
fn three_hosts_run_every_tick_exactly_once_in_the_database_and_the_jobs_record() {
    let Some(db) = TestDb::create("fleet: three hosts, every tick once") else {
        return;
    };
    let f = Fleet::new(&db.url);
    let command = record_to("ticks.txt");
    f.jobs(
        "jobs.yaml",
        &[("tick", "* * * * * *", &command, "concurrency: allow")],
    );
    let hosts = ["host-a", "host-b", "host-c"];
    let daemons: Vec<Daemon> = hosts.iter().map(|h| f.host(h, "jobs.yaml")).collect();
    f.wait_alive(&hosts);
    let first = wait_for(
        Duration::from_secs(30),
        "a tick after all three are up",
        || f.lines("ticks.txt").last().map(|(tick, _)| *tick),
    );
    // 20 s of ticks, counted by the jobs themselves.
    let end = first + chrono::Duration::seconds(20);
    wait_for(Duration::from_secs(60), "20 s of ticks", || {
        f.lines("ticks.txt")
            .iter()
            .any(|(tick, _)| *tick >= end)
            .then_some(())
    });
    stop_all(daemons);

    let lines = f.lines("ticks.txt");
    no_tick_twice(&lines);
    // Up to `end`: the daemons stop one after another, and a run stopped
    // between its claim and its command leaves a gap that is no loss.
    let mut ticks: Vec<DateTime<Utc>> = lines
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t <= end)
        .collect();
    ticks.sort();
    for pair in ticks.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::seconds(1),
            "a tick was missed while the daemons ran: {lines:?}"
        );
    }
    let rows = f.history("tick");
    one_row_per_tick(&rows);
    let by_tick: BTreeMap<DateTime<Utc>, &Value> = rows.iter().map(|r| (tick(r), r)).collect();
    for (t, host) in &lines {
        let row = by_tick
            .get(t)
            .unwrap_or_else(|| panic!("tick {t} ran on {host} without a row: {rows:?}"));
        assert_eq!(row["host"], host.as_str(), "the row names its host: {row}");
        assert!(
            row["status"] == "succeeded" || row["status"] == "interrupted",
            "{row}"
        );
    }
    for r in &rows {
        let t = tick(r);
        assert!(hosts.contains(&r["host"].as_str().unwrap_or("")), "{r}");
        if r["status"] == "succeeded" {
            assert!(
                lines.iter().any(|(l, _)| *l == t),
                "a succeeded run the job never made: {r}"
            );
        }
        assert_ne!(r["status"], "running", "left running: {r}");
    }
}

#[test]
fn status_and_history_show_every_host_its_state_and_last_beat() {
    let Some(db) = TestDb::create("fleet: status and history") else {
        return;
    };
    let f = Fleet::new(&db.url);
    let command = record_to("ticks.txt");
    f.jobs(
        "jobs.yaml",
        &[("tick", "* * * * * *", &command, "concurrency: allow")],
    );
    let hosts = ["replica-one", "replica-two", "replica-three"];
    let mut daemons: Vec<Daemon> = hosts.iter().map(|h| f.host(h, "jobs.yaml")).collect();
    f.wait_alive(&hosts);
    let members = f.members();
    for h in hosts {
        let m = &members[h];
        assert!(m["pid"].is_number(), "{m}");
        assert!(m["epoch"].is_number(), "{m}");
        assert!(time(m, "started_at").is_some(), "{m}");
    }
    // The last beat moves with the heartbeat (1 s).
    let beat = time(&members["replica-one"], "last_beat").expect("a last beat");
    wait_for(Duration::from_secs(10), "a newer beat", || {
        let m = f.members();
        (time(&m["replica-one"], "last_beat").expect("a last beat") > beat).then_some(())
    });
    let text = f.status_text();
    for h in hosts {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(h))
            .unwrap_or_else(|| panic!("status does not show {h}:\n{text}"));
        assert!(line.contains("alive"), "{h} is alive:\n{text}");
    }

    wait_for(Duration::from_secs(30), "three runs", || {
        (f.history("tick").len() >= 3).then_some(())
    });
    let text = f.jobrun(&["history", "tick"]).expect_code(0).stdout;
    let header = text.lines().next().unwrap_or_default();
    assert!(
        header.to_lowercase().contains("host"),
        "history has a host column:\n{text}"
    );
    for r in f.history("tick") {
        let host = r["host"].as_str().expect("each run names its host");
        assert!(hosts.contains(&host), "{r}");
    }
    let newest = f.history("tick").pop().expect("runs");
    assert!(
        text.contains(newest["host"].as_str().unwrap_or("?")),
        "{text}"
    );

    // A clean stop shows as stopped; the others stay alive.
    let three = daemons.pop().expect("three daemons");
    three.signal(Signal::SIGTERM);
    let (code, log) = three.wait(Duration::from_secs(30));
    assert_eq!(code, 0, "{log}");
    let members = f.members();
    assert_eq!(members["replica-three"]["state"], "stopped", "{members:?}");
    assert_eq!(members["replica-one"]["state"], "alive", "{members:?}");
    let text = f.status_text();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("replica-three"))
        .unwrap_or_else(|| panic!("status forgets a stopped host:\n{text}"));
    assert!(line.contains("stopped"), "{text}");
    stop_all(daemons);
}

#[test]
fn a_killed_hosts_run_is_abandoned_by_a_peer_within_the_lease_and_never_run_again() {
    let Some(db) = TestDb::create("fleet: a killed host") else {
        return;
    };
    let f = Fleet::new(&db.url);
    let command = format!("{}; sleep 30", record_to("runs.txt"));
    // forbid (the default): the run holds the job until it is resolved.
    f.jobs("jobs.yaml", &[("slow", "*/4 * * * * *", &command, "")]);
    let hosts = ["node-1", "node-2", "node-3"];
    let mut daemons: Vec<Daemon> = hosts.iter().map(|h| f.host(h, "jobs.yaml")).collect();
    let mut orphans = Orphans::default();
    let run = wait_for(Duration::from_secs(60), "a run to start", || {
        f.history("slow")
            .into_iter()
            .find(|r| r["status"] == "running" && r["pid"].is_number())
    });
    let victim = run["host"].as_str().expect("the run's host").to_string();
    let at = hosts
        .iter()
        .position(|h| *h == victim)
        .expect("one of ours");
    let killed = daemons.remove(at);
    killed.signal(Signal::SIGKILL);
    let killed_at = wall_now();
    killed.wait(Duration::from_secs(10));
    // The job outlives its daemon, as on a host whose jobrun crashed.
    orphans.0.push(run["pid"].as_i64().expect("pid") as i32);

    let abandoned = wait_for(Duration::from_secs(60), "the run to be abandoned", || {
        f.history("slow")
            .into_iter()
            .find(|r| r["id"] == run["id"] && r["status"] != "running")
    });
    assert_eq!(abandoned["status"], "abandoned", "{abandoned}");
    let resolved = time(&abandoned, "finished_at").expect("an abandoned run has an end");
    let limit = LEASE + Duration::from_secs(5);
    assert!(
        resolved - killed_at <= chrono::Duration::from_std(limit).expect("small"),
        "abandoned {} after the kill, more than lease + 5 s: {abandoned}",
        resolved - killed_at
    );
    eprintln!("abandoned {} after the kill", resolved - killed_at);
    let error = abandoned["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&victim),
        "the error names the dead host: {abandoned}"
    );
    assert!(
        daemons.iter().any(|d| d.log().contains("declared dead")),
        "a peer logs that it declared {victim} dead"
    );

    // The job is free again: a later tick runs on a live host; the
    // abandoned tick does not.
    let t0 = tick(&run);
    let next = wait_for(Duration::from_secs(30), "a later run", || {
        f.history("slow")
            .into_iter()
            .find(|r| tick(r) > t0 && r["status"] != "skipped" && r["pid"].is_number())
    });
    assert_ne!(next["host"], victim.as_str(), "{next}");
    stop_all(daemons);
    let rows = f.history("slow");
    one_row_per_tick(&rows);
    let lines = f.lines("runs.txt");
    no_tick_twice(&lines);
    assert_eq!(
        lines.iter().filter(|(t, _)| *t == t0).count(),
        1,
        "the abandoned tick ran again: {lines:?}"
    );
    let row = rows.iter().find(|r| r["id"] == run["id"]).expect("the row");
    assert_eq!(row["status"], "abandoned", "{row}");
}

#[test]
fn a_paused_host_is_fenced_its_late_finish_is_refused_and_it_claims_again() {
    let Some(db) = TestDb::create("fleet: a paused host") else {
        return;
    };
    let f = Fleet::new(&db.url);
    let slow = format!("{}; sleep 3", record_to("slow.txt"));
    let ticker = record_to("ticks.txt");
    f.jobs(
        "jobs.yaml",
        &[
            ("slow", "*/5 * * * * *", &slow, ""),
            ("tick", "* * * * * *", &ticker, "concurrency: allow"),
        ],
    );
    let hosts = ["paused", "peer"];
    let daemons: Vec<Daemon> = hosts.iter().map(|h| f.host(h, "jobs.yaml")).collect();
    f.wait_alive(&hosts);
    // The run to pause is the paused host's: wait for one it started.
    let run = wait_for(Duration::from_secs(60), "a run of the paused host", || {
        f.history("slow")
            .into_iter()
            .find(|r| r["status"] == "running" && r["host"] == "paused" && r["pid"].is_number())
    });
    let paused = &daemons[0];
    paused.signal(Signal::SIGSTOP);
    let abandoned = wait_for(
        Duration::from_secs(60),
        "the peer to abandon the paused host's run",
        || {
            f.history("slow")
                .into_iter()
                .find(|r| r["id"] == run["id"] && r["status"] != "running")
        },
    );
    assert_eq!(abandoned["status"], "abandoned", "{abandoned}");
    assert!(
        daemons[1].log().contains("declared dead"),
        "the peer logs the expiry:\n{}",
        daemons[1].log()
    );
    // The job (not stopped: only the daemon is) ends while its daemon sleeps.
    let pid = run["pid"].as_i64().expect("pid");
    wait_for(Duration::from_secs(30), "the job to end", || {
        (!pid_alive(pid)).then_some(())
    });
    paused.signal(Signal::SIGCONT);
    let resumed_at = wall_now();
    wait_for(
        Duration::from_secs(30),
        "the paused host to log `fenced`",
        || paused.log().contains("fenced").then_some(()),
    );
    let again = wait_for(
        Duration::from_secs(60),
        "the paused host to claim again",
        || {
            let mut rows = f.history("tick");
            rows.extend(f.history("slow"));
            rows.into_iter().find(|r| {
                r["host"] == "paused"
                    && r["status"] != "skipped"
                    && time(r, "started_at").is_some_and(|s| s > resumed_at)
            })
        },
    );
    let members = f.members();
    assert_eq!(
        members["paused"]["state"], "alive",
        "re-registered: {members:?}"
    );
    assert!(
        members["paused"]["epoch"].as_i64() > Some(0),
        "{members:?} {again}"
    );
    stop_all(daemons);

    let rows = f.history("slow");
    one_row_per_tick(&rows);
    let row = rows.iter().find(|r| r["id"] == run["id"]).expect("the row");
    assert_eq!(
        row["status"], "abandoned",
        "the fenced host's late finish overwrote the peer's verdict: {row}"
    );
    no_tick_twice(&f.lines("slow.txt"));
    let ticks = f.history("tick");
    one_row_per_tick(&ticks);
    let lines = f.lines("ticks.txt");
    no_tick_twice(&lines);
    let claimed: BTreeSet<DateTime<Utc>> = ticks
        .iter()
        .filter(|r| r["status"] != "missed")
        .map(tick)
        .collect();
    for (t, host) in &lines {
        assert!(
            claimed.contains(t),
            "tick {t} ran on {host} without a claim"
        );
    }
}

#[test]
fn forbid_across_three_hosts_never_runs_two_at_once() {
    let Some(db) = TestDb::create("fleet: forbid") else {
        return;
    };
    let f = Fleet::new(&db.url);
    // The job checks for itself too: a marker file while it runs.
    let command = format!(
        "if [ -e {{root}}/busy ]; then {}; fi; touch {{root}}/busy; {}; sleep 10; rm {{root}}/busy",
        record_to("overlaps.txt"),
        record_to("runs.txt")
    );
    f.jobs(
        "jobs.yaml",
        &[("long", "*/2 * * * * *", &command, "concurrency: forbid")],
    );
    let hosts = ["fa", "fb", "fc"];
    let daemons: Vec<Daemon> = hosts.iter().map(|h| f.host(h, "jobs.yaml")).collect();
    wait_for(Duration::from_secs(90), "two runs done and skips", || {
        let rows = f.history("long");
        let done = rows.iter().filter(|r| r["status"] == "succeeded").count();
        let skipped = rows.iter().filter(|r| r["status"] == "skipped").count();
        (done >= 2 && skipped >= 3).then_some(())
    });
    stop_all(daemons);

    let rows = f.history("long");
    one_row_per_tick(&rows);
    let mut intervals: Vec<(DateTime<Utc>, DateTime<Utc>, &Value)> = rows
        .iter()
        .filter(|r| r["status"] != "skipped" && r["status"] != "missed")
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
    let skipped: Vec<&Value> = rows.iter().filter(|r| r["status"] == "skipped").collect();
    assert!(!skipped.is_empty());
    let lines = f.lines("runs.txt");
    no_tick_twice(&lines);
    for s in &skipped {
        assert!(
            !lines.iter().any(|(t, _)| *t == tick(s)),
            "a skipped tick ran: {s}"
        );
    }
    assert!(
        f.lines("overlaps.txt").is_empty(),
        "the job saw itself running: {:?}",
        f.lines("overlaps.txt")
    );
}

#[test]
fn a_host_with_another_definition_of_a_job_is_refused_and_reported() {
    let Some(db) = TestDb::create("fleet: drift") else {
        return;
    };
    let f = Fleet::new(&db.url);
    let first = format!("echo first >> {{root}}/which.txt; {}", record_to("out.txt"));
    let second = format!(
        "echo second >> {{root}}/which.txt; {}",
        record_to("out.txt")
    );
    let extra = "concurrency: allow";
    f.jobs("first.yaml", &[("drifty", "* * * * * *", &first, extra)]);
    f.jobs("second.yaml", &[("drifty", "* * * * * *", &second, extra)]);
    let one = f.host("first-host", "first.yaml");
    wait_for(Duration::from_secs(60), "the first host's run", || {
        (!f.history("drifty").is_empty()).then_some(())
    });
    let two = f.host("second-host", "second.yaml");
    wait_for(Duration::from_secs(30), "the refusal in the log", || {
        two.log()
            .lines()
            .any(|l| l.contains("definition") && l.contains("drifty"))
            .then_some(())
    });
    let drift = wait_for(Duration::from_secs(30), "fleet.drift", || {
        let status = f.status();
        status["fleet"]["drift"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["job"] == "drifty").cloned())
    });
    assert_eq!(drift["host"], "second-host", "{drift}");
    assert_eq!(drift["fleet_host"], "first-host", "{drift}");
    assert_ne!(drift["fingerprint"], drift["fleet_fingerprint"], "{drift}");
    let text = f.status_text();
    assert!(
        text.lines()
            .any(|l| l.contains("drifty") && l.contains("second-host")),
        "status shows the drift:\n{text}"
    );
    // `check` against the fleet says the same before a deploy.
    let refused = f.jobrun(&["check", "--config", "{root}/second.yaml"]);
    let said = format!("{}{}", refused.stdout, refused.stderr);
    assert_ne!(
        refused.code, 0,
        "check passes a drifting definition:\n{said}"
    );
    assert!(
        said.lines()
            .any(|l| l.contains("drifty") && l.contains("definition") && l.contains("first-host")),
        "check names the job, its definition and the fleet's host:\n{said}"
    );
    let same = f.jobrun(&["check", "--config", "{root}/first.yaml"]);
    assert_eq!(same.code, 0, "{}{}", same.stdout, same.stderr);
    // Both hosts evaluate the next ticks; only the first definition runs.
    let from = wall_now() + chrono::Duration::seconds(3);
    wait_for(Duration::from_secs(30), "three more ticks", || {
        f.lines("out.txt")
            .iter()
            .any(|(t, _)| *t >= from)
            .then_some(())
    });
    stop_all(vec![one, two]);
    let which = std::fs::read_to_string(f.t.path("which.txt")).unwrap_or_default();
    assert!(
        !which.contains("second"),
        "the second definition ran:\n{which}"
    );
    let rows = f.history("drifty");
    one_row_per_tick(&rows);
    for r in rows.iter().filter(|r| r["status"] != "missed") {
        assert_eq!(r["host"], "first-host", "{r}");
    }
}

#[test]
#[cfg_attr(
    not(jobrun_root),
    ignore = "starts a cluster as the postgres user: needs root"
)]
fn cut_connections_and_a_server_restart_mid_run_lose_no_outcome_and_run_nothing_twice() {
    let Some(pg) = PgCluster::start("fleet: server restart") else {
        return;
    };
    let f = Fleet::new(&pg.url());
    let slow = format!("{}; sleep 5", record_to("slow.txt"));
    let ticker = record_to("ticks.txt");
    f.jobs(
        "jobs.yaml",
        &[
            ("slow", "*/10 * * * * *", &slow, ""),
            ("tick", "* * * * * *", &ticker, "concurrency: allow"),
        ],
    );
    let hosts = ["db-a", "db-b"];
    let daemons: Vec<Daemon> = hosts
        .iter()
        .map(|h| f.host_on(h, "jobs.yaml", &pg.url_for(h)))
        .collect();
    let run = wait_for(Duration::from_secs(60), "a run of slow", || {
        f.history("slow")
            .into_iter()
            .find(|r| r["status"] == "running" && r["pid"].is_number())
    });
    let holder = run["host"].as_str().expect("host").to_string();
    assert!(pg.cut(&holder) >= 1, "{holder} had no connection to cut");
    pg.restart();
    let restarted = Instant::now();
    let back_at = wall_now();
    let resumed = wait_for(Duration::from_secs(60), "runs to resume", || {
        f.history("tick")
            .into_iter()
            .find(|r| tick(r) > back_at && r["status"] == "succeeded")
    });
    let took = restarted.elapsed();
    eprintln!("runs resumed {took:?} after the restart");
    assert!(
        took < Duration::from_secs(15),
        "runs resumed {took:?} after the restart: {resumed}"
    );
    let finished = wait_for(Duration::from_secs(60), "the run's outcome", || {
        f.history("slow")
            .into_iter()
            .find(|r| r["id"] == run["id"] && r["status"] != "running")
    });
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(finished["exit_code"], 0, "{finished}");
    stop_all(daemons);

    for job in ["slow", "tick"] {
        one_row_per_tick(&f.history(job));
    }
    no_tick_twice(&f.lines("slow.txt"));
    let lines = f.lines("ticks.txt");
    no_tick_twice(&lines);
    let claimed: BTreeSet<DateTime<Utc>> = f
        .history("tick")
        .iter()
        .filter(|r| r["status"] != "missed")
        .map(tick)
        .collect();
    for (t, host) in &lines {
        assert!(
            claimed.contains(t),
            "tick {t} ran on {host} without a claim"
        );
    }
}

#[test]
#[cfg_attr(
    not(jobrun_root),
    ignore = "starts a cluster as the postgres user: needs root"
)]
fn while_the_server_is_down_nothing_starts_and_its_ticks_are_recorded_missed() {
    let Some(pg) = PgCluster::start("fleet: server down") else {
        return;
    };
    let f = Fleet::new(&pg.url());
    let ticker = record_to("ticks.txt");
    f.jobs(
        "jobs.yaml",
        &[("tick", "* * * * * *", &ticker, "concurrency: allow")],
    );
    let hosts = ["down-a", "down-b"];
    let daemons: Vec<Daemon> = hosts
        .iter()
        .map(|h| f.host_on(h, "jobs.yaml", &pg.url_for(h)))
        .collect();
    wait_for(Duration::from_secs(60), "three ticks", || {
        (f.lines("ticks.txt").len() >= 3).then_some(())
    });
    pg.stop();
    let down_at = wall_now();
    // The scenario: the server stays down for 20 s.
    std::thread::sleep(Duration::from_secs(20));
    pg.start_again();
    let up_at = wall_now();
    let resumed = wait_for(Duration::from_secs(60), "runs to resume", || {
        f.history("tick")
            .into_iter()
            .find(|r| tick(r) > up_at && r["status"] == "succeeded")
    });
    let resumed_tick = tick(&resumed);
    // Every tick of the outage gets its row (the daemons record the ticks
    // they could not claim once the server is back).
    let complete = wait_until(Duration::from_secs(60), || {
        gaps(&f.history("tick"), resumed_tick).is_empty()
    });
    stop_all(daemons);
    let rows = f.history("tick");
    one_row_per_tick(&rows);
    let missed: Vec<&Value> = rows.iter().filter(|r| r["status"] == "missed").collect();
    let in_outage = missed
        .iter()
        .filter(|r| tick(r) > down_at && tick(r) < up_at)
        .count();
    assert!(
        in_outage >= 10,
        "{in_outage} ticks of a 20 s outage recorded missed: {rows:#?}"
    );
    for m in &missed {
        let error = m["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "a missed row says why: {m}");
    }
    let lines = f.lines("ticks.txt");
    no_tick_twice(&lines);
    let claimed: BTreeSet<DateTime<Utc>> = rows
        .iter()
        .filter(|r| r["status"] != "missed")
        .map(tick)
        .collect();
    for (t, host) in &lines {
        assert!(
            claimed.contains(t),
            "tick {t} ran on {host} without a claim (the server was down {down_at}..{up_at})"
        );
    }
    let gaps = gaps(&rows, resumed_tick);
    assert!(
        complete && gaps.is_empty(),
        "ticks without a row (the server was down {down_at}..{up_at}): {gaps:?}"
    );
}

#[test]
fn replace_stops_the_run_on_whichever_host_holds_it() {
    let Some(db) = TestDb::create("fleet: replace across hosts") else {
        return;
    };
    let f = Fleet::new(&db.url);
    let command = format!("{}; sleep 30", record_to("runs.txt"));
    f.jobs(
        "jobs.yaml",
        &[(
            "newest",
            "*/3 * * * * *",
            &command,
            "concurrency: replace\nkill_grace: 1s",
        )],
    );
    let hosts = ["rep-a", "rep-b"];
    let daemons: Vec<Daemon> = hosts.iter().map(|h| f.host(h, "jobs.yaml")).collect();
    // A run replaced by one that started on the other host: the request
    // went through the database.
    let (old, new) = wait_for(
        Duration::from_secs(120),
        "a run replaced from the other host",
        || {
            let rows = f.history("newest");
            let started: Vec<&Value> = rows.iter().filter(|r| r["pid"].is_number()).collect();
            started.windows(2).find_map(|pair| {
                (pair[0]["status"] == "killed" && pair[0]["host"] != pair[1]["host"])
                    .then(|| (pair[0].clone(), pair[1].clone()))
            })
        },
    );
    let error = old["error"].as_str().unwrap_or_default();
    assert!(error.contains("replaced"), "{old}");
    stop_all(daemons);

    let rows = f.history("newest");
    one_row_per_tick(&rows);
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
            "two runs of a replace job at once:\n{}\n{}\n(replaced {old} by {new})",
            pair[0].2,
            pair[1].2
        );
    }
    no_tick_twice(&f.lines("runs.txt"));
}

/// Starts the one host of a spool scenario on `pg`, waits for a run of
/// `slow` (a 6 s job), stops the server and waits for the job to end while
/// it is down; the daemon and the run.
fn run_ends_while_the_server_is_down(f: &Fleet, pg: &PgCluster) -> (Daemon, Value) {
    let slow = format!("{}; sleep 6", record_to("slow.txt"));
    f.jobs("jobs.yaml", &[("slow", "*/10 * * * * *", &slow, "")]);
    let daemon = f.host_on("spool-host", "jobs.yaml", &pg.url_for("spool-host"));
    let run = wait_for(Duration::from_secs(60), "a run of slow", || {
        f.history("slow")
            .into_iter()
            .find(|r| r["status"] == "running" && r["pid"].is_number())
    });
    pg.stop();
    let pid = run["pid"].as_i64().expect("pid");
    assert!(
        pid_alive(pid),
        "the job ended before the server was down (a loaded machine?): the scenario did not happen"
    );
    wait_for(Duration::from_secs(30), "the job to end", || {
        (!pid_alive(pid)).then_some(())
    });
    (daemon, run)
}

#[test]
#[cfg_attr(
    not(jobrun_root),
    ignore = "starts a cluster as the postgres user: needs root"
)]
fn a_run_that_ends_while_the_server_is_down_has_its_outcome_written_when_it_is_back() {
    let Some(pg) = PgCluster::start("fleet: outcome spooled") else {
        return;
    };
    let f = Fleet::new(&pg.url());
    let (daemon, run) = run_ends_while_the_server_is_down(&f, &pg);
    pg.start_again();
    let done = wait_for(Duration::from_secs(60), "the outcome", || {
        f.history("slow")
            .into_iter()
            .find(|r| r["id"] == run["id"] && r["status"] != "running")
    });
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["exit_code"], 0, "{done}");
    stop_all(vec![daemon]);
}

#[test]
#[cfg_attr(
    not(jobrun_root),
    ignore = "starts a cluster as the postgres user: needs root"
)]
fn a_run_that_ends_while_the_server_is_down_keeps_its_outcome_across_a_daemon_restart() {
    let Some(pg) = PgCluster::start("fleet: outcome spooled across a restart") else {
        return;
    };
    let f = Fleet::new(&pg.url());
    let (daemon, run) = run_ends_while_the_server_is_down(&f, &pg);
    // The daemon restarts before the server is back (a deploy, say): the
    // outcome it holds must outlive it (issue 14, guarantee 8).
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(60));
    pg.start_again();
    let again = f.host_on("spool-host", "jobs.yaml", &pg.url_for("spool-host"));
    let done = wait_for(
        LEASE + Duration::from_secs(60),
        "the run to be resolved",
        || {
            f.history("slow")
                .into_iter()
                .find(|r| r["id"] == run["id"] && r["status"] != "running")
        },
    );
    assert_eq!(
        done["status"],
        "succeeded",
        "the outcome of a run that ended while the server was down did not survive a daemon \
         restart: {done}\nthe first daemon (exit {code}):\n{log}\nthe second:\n{}",
        again.log()
    );
    stop_all(vec![again]);
}

#[test]
#[cfg_attr(
    not(jobrun_root),
    ignore = "starts a cluster as the postgres user: needs root"
)]
fn an_outage_longer_than_the_lease_does_not_resolve_a_live_hosts_run() {
    let Some(pg) = PgCluster::start("fleet: outage longer than the lease") else {
        return;
    };
    let f = Fleet::new(&pg.url());
    let long = format!("{}; sleep 25", record_to("long.txt"));
    f.jobs("jobs.yaml", &[("long", "*/5 * * * * *", &long, "")]);
    let hosts = ["live-a", "live-b"];
    let daemons: Vec<Daemon> = hosts
        .iter()
        .map(|h| f.host_on(h, "jobs.yaml", &pg.url_for(h)))
        .collect();
    let run = wait_for(Duration::from_secs(60), "a run of long", || {
        f.history("long")
            .into_iter()
            .find(|r| r["status"] == "running" && r["pid"].is_number())
    });
    pg.stop();
    // The scenario: the server is down for longer than the lease, so every
    // lease has run out when it is back, while both hosts live.
    std::thread::sleep(LEASE + Duration::from_secs(4));
    pg.start_again();
    let pid = run["pid"].as_i64().expect("pid");
    assert!(
        pid_alive(pid),
        "the job ended during the outage (a loaded machine?): the scenario did not happen"
    );
    let done = wait_for(Duration::from_secs(60), "the run's outcome", || {
        f.history("long")
            .into_iter()
            .find(|r| r["id"] == run["id"] && r["status"] != "running")
    });
    assert_eq!(
        done["status"], "succeeded",
        "a live host's run was resolved after an outage: {done}"
    );
    for d in &daemons {
        assert!(
            !d.log().contains("declared dead"),
            "a live peer was declared dead after the outage:\n{}",
            d.log()
        );
    }
    stop_all(daemons);
    let rows = f.history("long");
    one_row_per_tick(&rows);
    no_tick_twice(&f.lines("long.txt"));
}

#[test]
fn catch_up_after_a_whole_fleet_outage_runs_the_missed_tick_once() {
    let Some(db) = TestDb::create("fleet: catch-up after an outage") else {
        return;
    };
    let f = Fleet::new(&db.url);
    let command = record_to("runs.txt");
    f.jobs(
        "jobs.yaml",
        &[("every10", "*/10 * * * * *", &command, "catch_up: 1h")],
    );
    let hosts = ["cu-a", "cu-b"];
    let start = || -> Vec<Daemon> { hosts.iter().map(|h| f.host(h, "jobs.yaml")).collect() };
    let daemons = start();
    f.wait_alive(&hosts);
    stop_all(daemons);
    // The scenario: the whole fleet is down over a tick.
    let stopped = wall_now();
    let next = f
        .history("every10")
        .iter()
        .map(tick)
        .max()
        .map_or(stopped, |t| t.max(stopped));
    let secs = 10 - next.timestamp().rem_euclid(10);
    let missed = next + chrono::Duration::seconds(secs);
    let missed = missed - chrono::Duration::nanoseconds(missed.timestamp_subsec_nanos().into());
    let wait = (missed - wall_now() + chrono::Duration::milliseconds(500))
        .to_std()
        .unwrap_or_default();
    std::thread::sleep(wait);
    let daemons = start();
    let caught = wait_for(Duration::from_secs(60), "the catch-up run", || {
        f.history("every10")
            .into_iter()
            .find(|r| r["trigger"] == "catch-up" && tick(r) >= missed)
    });
    assert_eq!(tick(&caught), missed, "{caught}");
    // The next scheduled tick after the catch-up: both hosts were up for it.
    wait_for(Duration::from_secs(30), "a scheduled run after", || {
        f.history("every10")
            .into_iter()
            .find(|r| tick(r) > missed && r["status"] == "succeeded")
    });
    stop_all(daemons);
    let rows = f.history("every10");
    one_row_per_tick(&rows);
    // (The fleet's first start may catch up a tick from before it existed:
    // a_fleets_first_start_catches_up_nothing.)
    let catch_ups: Vec<&Value> = rows
        .iter()
        .filter(|r| r["trigger"] == "catch-up" && tick(r) >= missed)
        .collect();
    assert_eq!(catch_ups.len(), 1, "{catch_ups:#?}");
    let lines = f.lines("runs.txt");
    no_tick_twice(&lines);
    assert!(
        lines.iter().any(|(t, _)| *t == missed),
        "the missed tick did not run: {lines:?}"
    );
}

#[test]
#[ignore = "product bug: a host joining a live fleet catches up a tick from before the fleet \
            existed (peer alive: last seen = now, less the 60 s SQLite HEARTBEAT)"]
fn a_fleets_first_start_catches_up_nothing() {
    let Some(db) = TestDb::create("fleet: first start") else {
        return;
    };
    let f = Fleet::new(&db.url);
    // A daily job whose tick was a few seconds before the fleet existed.
    let before = wall_now() - chrono::Duration::seconds(3);
    let schedule = format!(
        "{} {} {} * * *",
        before.second(),
        before.minute(),
        before.hour()
    );
    let command = record_to("runs.txt");
    f.jobs(
        "jobs.yaml",
        &[("daily", &schedule, &command, "catch_up: 1h")],
    );
    // The first host has no earlier daemon: nothing to catch up. The second
    // joins a live fleet: no downtime either.
    let first = f.host("first-a", "jobs.yaml");
    f.wait_alive(&["first-a"]);
    let second = f.host("first-b", "jobs.yaml");
    f.wait_alive(&["first-a", "first-b"]);
    let caught = wait_until(Duration::from_secs(10), || !f.history("daily").is_empty());
    let logs = format!("{}\n{}", first.log(), second.log());
    stop_all(vec![first, second]);
    assert!(
        !caught,
        "the fleet's first start ran a tick from before it existed: {:?}\n{logs}",
        f.history("daily")
    );
}
