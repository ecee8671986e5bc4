//! The daemon and `run` end to end: claims, locks, recording, signals.
//! Schedules use a seconds field so every test finishes in seconds.

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::backends::{on_both_backends, Backend};
use crate::harness::{wait_for, wait_until, Daemon, Test};

/// A 6-field expression that fires once a day, `secs` seconds from now, and
/// that instant.
fn once_soon(secs: i64) -> (String, DateTime<Utc>) {
    #[allow(clippy::disallowed_methods)] // tests schedule against the real clock
    let now = Utc::now();
    let tick = (now + chrono::Duration::seconds(secs))
        .with_nanosecond(0)
        .expect("zero nanoseconds is valid");
    (
        format!("{} {} {} * * *", tick.second(), tick.minute(), tick.hour()),
        tick,
    )
}

/// A daemon that is up before the one tick of its job: `write` writes the
/// job file for a schedule, `spawn` starts the daemon. On a loaded machine
/// the daemon may come up after a tick chosen a few seconds ahead (and the
/// job would then wait a day): then that daemon is stopped and the next try
/// gets a later tick. The daemon looks for ticks from the instant it read
/// before it logged "daemon started" or recorded itself in the state (which
/// `status` shows, under any `RUST_LOG`), so a tick still ahead then fires.
fn daemon_before_tick(
    t: &Test,
    write: impl Fn(&str),
    spawn: impl Fn() -> Daemon,
) -> (Daemon, DateTime<Utc>) {
    for lead in [2, 5, 15] {
        let (schedule, tick) = once_soon(lead);
        write(&schedule);
        let mut daemon = spawn();
        wait_for(Duration::from_secs(60), "the daemon to start", || {
            let up = daemon.log().contains("daemon started")
                || !t.run_args(["status", "--json"]).json()["daemon"].is_null();
            (up || daemon.exited().is_some()).then_some(())
        });
        #[allow(clippy::disallowed_methods)] // compared with the real clock's tick
        let now = Utc::now();
        if now + chrono::Duration::milliseconds(200) < tick {
            return (daemon, tick);
        }
        daemon.signal(Signal::SIGKILL);
        daemon.wait(Duration::from_secs(10));
    }
    panic!("the daemon never came up within 15 s of starting");
}

fn running_run(t: &Test, job: &str) -> Option<Value> {
    t.history(job)
        .into_iter()
        .find(|r| r["status"] == "running" && r["pid"].is_number())
}

fn pid_alive(pid: i32) -> bool {
    // A zombie has exited; only its table entry is left for its parent.
    u32::try_from(pid).is_ok_and(jobrun::procfs::is_running)
}

fn job_file(t: &Test, name: &str, schedule: &str, command: &str, extra: &str) {
    t.write(
        "jobs.yaml",
        &format!(
            "jobs:\n  - name: {name}\n    schedule: \"{schedule}\"\n    command: '{}'\n{extra}",
            command.replace('\'', "''")
        ),
    );
}

fn two_daemons_on_one_state_dir_run_every_tick_exactly_once(backend: Backend) {
    let Some(t) = backend.on(
        Test::new(),
        "two_daemons_on_one_state_dir_run_every_tick_exactly_once",
    ) else {
        return;
    };
    job_file(
        &t,
        "tick",
        "* * * * * *",
        "echo \"$JOBRUN_TICK\" >> {root}/ticks.txt",
        "",
    );
    let a = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    let b = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    let tick_lines = || {
        std::fs::read_to_string(t.path("ticks.txt"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    wait_for(Duration::from_secs(60), "the first tick", || {
        (tick_lines() >= 1).then_some(())
    });
    // Both daemons race for every tick for 20 s of wall time, counted from the
    // first tick (not from the spawn, which a loaded machine may delay).
    std::thread::sleep(Duration::from_secs(20));
    // The last ticks' runs may still be starting on a loaded machine.
    wait_until(Duration::from_secs(60), || tick_lines() >= 17);
    a.signal(Signal::SIGTERM);
    b.signal(Signal::SIGTERM);
    let (code_a, log_a) = a.wait(Duration::from_secs(15));
    let (code_b, log_b) = b.wait(Duration::from_secs(15));
    assert_eq!((code_a, code_b), (0, 0), "{log_a}\n{log_b}");

    let text = std::fs::read_to_string(t.path("ticks.txt")).expect("the job wrote ticks");
    let mut ticks: Vec<DateTime<Utc>> = text
        .lines()
        .map(|l| l.parse().unwrap_or_else(|e| panic!("tick {l:?}: {e}")))
        .collect();
    let written = ticks.len();
    ticks.sort();
    ticks.dedup();
    assert_eq!(ticks.len(), written, "a tick ran twice:\n{text}");
    assert!(written >= 17, "only {written} ticks in 20 s:\n{text}");
    for pair in ticks.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::seconds(1),
            "a tick was missed:\n{text}"
        );
    }

    let rows = t.history("tick");
    let mut row_ticks: Vec<String> = rows
        .iter()
        .map(|r| {
            r["tick"]
                .as_str()
                .expect("scheduled runs have a tick")
                .to_string()
        })
        .collect();
    row_ticks.sort();
    let before = row_ticks.len();
    row_ticks.dedup();
    assert_eq!(row_ticks.len(), before, "two history rows for one tick");
    let succeeded: Vec<DateTime<Utc>> = {
        let mut v: Vec<DateTime<Utc>> = rows
            .iter()
            .filter(|r| r["status"] == "succeeded")
            .map(|r| {
                r["tick"]
                    .as_str()
                    .unwrap_or_default()
                    .parse()
                    .expect("tick time")
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        succeeded, ticks,
        "history and the job's own record disagree"
    );
    assert!(
        rows.iter().all(|r| r["status"] != "running"),
        "left running: {rows:?}"
    );
}

fn a_killed_daemon_leaves_an_abandoned_run_that_is_not_run_again(backend: Backend) {
    let Some(t) = backend.on(
        Test::new(),
        "a_killed_daemon_leaves_an_abandoned_run_that_is_not_run_again",
    ) else {
        return;
    };
    let args = [&["--config", "{root}/jobs.yaml"][..], t.short_lease()].concat();
    let (first, tick) = daemon_before_tick(
        &t,
        |schedule| {
            job_file(
                &t,
                "slow",
                schedule,
                "echo started >> {root}/runs.txt; sleep 60",
                "",
            );
        },
        || t.spawn_daemon(&args),
    );
    let run = wait_for(Duration::from_secs(60), "the run to start", || {
        running_run(&t, "slow")
    });
    first.signal(Signal::SIGKILL);
    let (code, _) = first.wait(Duration::from_secs(5));
    assert_eq!(code, 128 + 9);
    let job_pid = run["pid"].as_i64().expect("pid") as i32;

    let second = t.spawn_daemon(&args);
    let started = std::time::Instant::now();
    // How soon the new daemon records the killed one's run abandoned.
    // SQLite: at its start, once the killed daemon's pid is shown gone.
    // PostgreSQL: the new daemon (on the same host id here) does not judge a
    // peer by its pid (in a fleet a pid names nothing); the lease decides.
    // The killed daemon's lease (7 s) runs out, and the new daemon declares
    // peers dead only after a whole lease of its own acknowledged beats
    // (7 s): at most both leases, plus seconds for its start on a loaded
    // machine (about 7 s after its spawn on an idle one: the two overlap).
    let limit = match backend {
        Backend::Sqlite => Duration::from_secs(60),
        Backend::Postgres => Duration::from_secs(7 + 7 + 8),
    };
    let abandoned = wait_for(limit, "the run to be marked abandoned", || {
        t.history("slow")
            .into_iter()
            .find(|r| r["status"] == "abandoned")
    });
    eprintln!(
        "{backend:?}: abandoned {:?} after the new daemon's spawn",
        started.elapsed()
    );
    assert_eq!(abandoned["id"], run["id"]);
    assert_eq!(
        abandoned["tick"]
            .as_str()
            .map(|s| s.parse::<DateTime<Utc>>().ok()),
        Some(Some(tick))
    );
    wait_for(Duration::from_secs(60), "the new daemon's start", || {
        second.log().contains("daemon started").then_some(())
    });
    // Nothing marks "did not rerun the tick": give the new daemon a moment
    // past its start-up catch-up, in which it must not run the tick again.
    std::thread::sleep(Duration::from_millis(1500));
    second.signal(Signal::SIGTERM);
    let (code, log) = second.wait(Duration::from_secs(15));
    assert_eq!(code, 0, "{log}");
    let rows = t.history("slow");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows.iter().all(|r| r["status"] != "running"));
    assert_eq!(
        std::fs::read_to_string(t.path("runs.txt")).unwrap_or_default(),
        "started\n"
    );
    // The job the killed daemon left running was stopped by the new one
    // (gone, or a zombie waiting for whoever adopted it). SQLite: during its
    // start-up recovery, before it logs its start. PostgreSQL: at the beat
    // that declares the killed daemon (of the same host) dead, since the
    // process group provably is the run's: SIGTERM, and SIGKILL after 10 s.
    let stopped = wait_until(Duration::from_secs(15), || !pid_alive(job_pid));
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(job_pid), Signal::SIGKILL);
    assert!(stopped, "the orphaned job {job_pid} is still running");
    let error = abandoned["error"].as_str().unwrap_or_default();
    match backend {
        Backend::Sqlite => assert!(error.contains("was stopped"), "{abandoned}"),
        // The run is abandoned when the lease runs out; the stop comes after.
        Backend::Postgres => {
            let host = abandoned["host"].as_str().expect("a fleet run has a host");
            assert!(
                error.contains(&format!("the daemon on {host} ")) && error.contains("lease"),
                "{abandoned}"
            );
            assert!(log.contains("declared dead"), "{log}");
        }
    }
}

fn sigterm_stops_the_running_job_records_interrupted_and_exits_0(backend: Backend) {
    let Some(t) = backend.on(
        Test::new(),
        "sigterm_stops_the_running_job_records_interrupted_and_exits_0",
    ) else {
        return;
    };
    let (daemon, _) = daemon_before_tick(
        &t,
        |schedule| {
            job_file(
                &t,
                "graceful",
                schedule,
                "trap \"echo TERM >> {root}/term.txt; exit 0\" TERM; : > {root}/trapped; sleep 30 & wait",
                "",
            );
        },
        || t.spawn_daemon(["--config", "{root}/jobs.yaml", "--shutdown-grace", "5s"]),
    );
    wait_for(Duration::from_secs(60), "the run to start", || {
        running_run(&t, "graceful")
    });
    // The job says when its trap is in place.
    wait_for(Duration::from_secs(60), "the job's trap", || {
        t.path("trapped").exists().then_some(())
    });
    let stopped_at = std::time::Instant::now();
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(6),
        "took {:?}",
        stopped_at.elapsed()
    );
    assert_eq!(
        std::fs::read_to_string(t.path("term.txt")).unwrap_or_default(),
        "TERM\n"
    );
    let rows = t.history("graceful");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "interrupted");
    assert!(rows[0]["error"]
        .as_str()
        .unwrap_or_default()
        .contains("shutdown"));
}

fn a_job_ignoring_sigterm_is_killed_after_the_shutdown_grace(backend: Backend) {
    let Some(t) = backend.on(
        Test::new(),
        "a_job_ignoring_sigterm_is_killed_after_the_shutdown_grace",
    ) else {
        return;
    };
    let (daemon, _) = daemon_before_tick(
        &t,
        |schedule| {
            job_file(
                &t,
                "stubborn",
                schedule,
                "trap \"\" TERM; sleep 30",
                "    kill_grace: 30s\n",
            );
        },
        || t.spawn_daemon(["--config", "{root}/jobs.yaml", "--shutdown-grace", "1s"]),
    );
    wait_for(Duration::from_secs(60), "the run to start", || {
        running_run(&t, "stubborn")
    });
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
    let rows = t.history("stubborn");
    assert_eq!(rows[0]["status"], "interrupted", "{rows:?}");
    assert_eq!(rows[0]["signal"], 9, "{rows:?}");
}

fn a_timeout_kills_the_whole_process_group_and_records_timed_out(backend: Backend) {
    let Some(t) = backend.on(
        Test::new(),
        "a_timeout_kills_the_whole_process_group_and_records_timed_out",
    ) else {
        return;
    };
    t.write(
        "jobs.yaml",
        "jobs:\n  - name: hang\n    command: sleep 300 & echo $! > {root}/grandchild.pid; wait\n    timeout: 1s\n    kill_grace: 1s\n",
    );
    let out = t.run_args(["run", "hang", "--config", "{root}/jobs.yaml"]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    let grandchild: i32 = std::fs::read_to_string(t.path("grandchild.pid"))
        .expect("the job wrote its grandchild's pid")
        .trim()
        .parse()
        .expect("a pid");
    wait_for(Duration::from_secs(5), "the grandchild to die", || {
        (!pid_alive(grandchild)).then_some(())
    });
    let rows = t.history("hang");
    assert_eq!(rows[0]["status"], "timed_out", "{rows:?}");
    assert_eq!(rows[0]["trigger"], "manual");
}

fn exit_codes_and_signals_are_recorded_exactly_and_run_returns_them(backend: Backend) {
    let Some(t) = backend.on(
        Test::new(),
        "exit_codes_and_signals_are_recorded_exactly_and_run_returns_them",
    ) else {
        return;
    };
    t.write(
        "jobs.yaml",
        "jobs:\n  - name: three\n    command: echo out; echo err >&2; exit 3\n  - name: killed\n    command: kill -9 $$\n  - name: fine\n    argv: [\"true\"]\n",
    );
    let three = t.run_args(["run", "three", "--config", "{root}/jobs.yaml"]);
    assert_eq!(three.code, 3);
    assert_eq!(three.stdout, "out\n");
    assert!(three.stderr.contains("err\n"), "{}", three.stderr);
    let killed = t.run_args(["run", "killed", "--config", "{root}/jobs.yaml"]);
    assert_eq!(killed.code, 128 + 9);
    t.run_args(["run", "fine", "--config", "{root}/jobs.yaml"])
        .expect_code(0);

    let three = &t.history("three")[0];
    assert_eq!(three["status"], "failed");
    assert_eq!(three["exit_code"], 3);
    assert_eq!(three["signal"], Value::Null);
    assert_eq!(three["tick"], Value::Null);
    assert_eq!(three["output_bytes"], 8);
    let killed = &t.history("killed")[0];
    assert_eq!(killed["status"], "killed");
    assert_eq!(killed["signal"], 9);
    assert_eq!(killed["exit_code"], Value::Null);
    assert_eq!(t.history("fine")[0]["status"], "succeeded");

    let id = three["id"].as_i64().expect("id").to_string();
    let logs = t.run_args(["logs", &id]).expect_code(0);
    assert!(
        logs.stdout.contains("out\n") && logs.stdout.contains("err\n"),
        "{}",
        logs.stdout
    );
    assert!(logs.stdout.contains("exit 3"), "{}", logs.stdout);
}

fn run_is_refused_while_the_daemon_runs_the_job_and_both_agree(backend: Backend) {
    let Some(t) = backend.on(
        Test::new(),
        "run_is_refused_while_the_daemon_runs_the_job_and_both_agree",
    ) else {
        return;
    };
    let (daemon, _) = daemon_before_tick(
        &t,
        |schedule| {
            job_file(&t, "busy", schedule, "sleep 30", "");
        },
        || t.spawn_daemon(["--config", "{root}/jobs.yaml", "--shutdown-grace", "2s"]),
    );
    let running = wait_for(Duration::from_secs(60), "the run to start", || {
        running_run(&t, "busy")
    });
    let refused = t.run_args(["run", "busy", "--config", "{root}/jobs.yaml"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    let run_id = running["id"].as_i64().expect("id");
    assert!(
        refused.stderr.contains("already running"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains(&format!("run {run_id}")),
        "{}",
        refused.stderr
    );
    let rows = t.history("busy");
    let skipped = rows
        .iter()
        .find(|r| r["status"] == "skipped")
        .expect("the refusal is recorded");
    assert_eq!(skipped["trigger"], "manual");
    assert!(skipped["error"]
        .as_str()
        .unwrap_or_default()
        .contains(&format!("run {run_id}")));
    // The daemon's run was not disturbed.
    assert!(rows
        .iter()
        .any(|r| r["id"] == run_id && r["status"] == "running"));
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}

#[test]
fn output_of_any_size_is_counted_exactly_and_its_tail_kept() {
    let t = Test::new();
    let (daemon, _) = daemon_before_tick(
        &t,
        |schedule| {
            t.write(
                "jobs.yaml",
                &format!(
                    "jobs:\n  - name: flood\n    schedule: \"{schedule}\"\n    command: yes \"$(head -c 4095 /dev/zero | tr '\\0' a)\" | head -c 67108864\n  - name: longline\n    schedule: \"{schedule}\"\n    command: head -c 16777216 /dev/zero | tr '\\0' b\n"
                ),
            );
        },
        || t.spawn_daemon(["--config", "{root}/jobs.yaml"]),
    );
    let done = |job: &str| {
        t.history(job)
            .into_iter()
            .find(|r| r["status"] != "running")
    };
    // The daemon's memory while it pumps 1 GiB is measured by
    // `benches/e2e.py --only output` (BENCHMARKS.md), not in a timed test.
    let flood = wait_for(Duration::from_secs(120), "the 64 MiB job to finish", || {
        done("flood")
    });
    let long = wait_for(
        Duration::from_secs(120),
        "the 16 MiB line job to finish",
        || done("longline"),
    );
    daemon.signal(Signal::SIGTERM);
    daemon.wait(Duration::from_secs(10));
    assert_eq!(flood["status"], "succeeded", "{flood}");
    assert_eq!(flood["output_bytes"], 67_108_864u64);
    assert_eq!(long["status"], "succeeded", "{long}");
    assert_eq!(long["output_bytes"], 16_777_216u64);
    let id = long["id"].as_i64().expect("id").to_string();
    let logs = t.run_args(["logs", &id, "--json"]).expect_code(0);
    let output = logs.json()["output"].as_str().expect("output").to_string();
    assert_eq!(output.len(), 64 * 1024);
    assert!(output.bytes().all(|b| b == b'b'));
}

#[test]
fn a_database_from_a_newer_jobrun_is_refused_naming_both_versions() {
    let t = Test::new();
    t.write("jobs.yaml", "jobs:\n  - name: a\n    command: \"true\"\n");
    t.run_args(["run", "a", "--config", "{root}/jobs.yaml"])
        .expect_code(0);
    {
        let conn = rusqlite::Connection::open(t.path("state/jobrun.db")).expect("open");
        conn.pragma_update(None, "user_version", 99)
            .expect("set version");
    }
    let out = t.run_args(["history", "--json"]).expect_code(2);
    assert!(out.stderr.contains("schema version 99"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("up to version {}", jobrun::store::LATEST_VERSION)),
        "{}",
        out.stderr
    );
}

fn replace_stops_the_running_instance_and_allow_overlaps(backend: Backend) {
    let Some(t) = backend.on(
        Test::new(),
        "replace_stops_the_running_instance_and_allow_overlaps",
    ) else {
        return;
    };
    t.write(
        "jobs.yaml",
        "jobs:\n  - name: newest\n    schedule: \"* * * * * *\"\n    command: sleep 30\n    concurrency: replace\n    kill_grace: 1s\n  - name: overlap\n    schedule: \"* * * * * *\"\n    command: sleep 3\n    concurrency: allow\n",
    );
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml", "--shutdown-grace", "2s"]);
    let overlapping = wait_for(Duration::from_secs(60), "overlapping runs", || {
        let running = t
            .history("overlap")
            .into_iter()
            .filter(|r| r["status"] == "running")
            .count();
        (running >= 2).then_some(running)
    });
    assert!(overlapping >= 2);
    let replaced = wait_for(Duration::from_secs(60), "a replaced run", || {
        t.history("newest")
            .into_iter()
            .find(|r| r["status"] == "killed")
    });
    assert!(
        replaced["error"]
            .as_str()
            .unwrap_or_default()
            .contains("replaced"),
        "{replaced}"
    );
    // Never two instances of a `replace` job at once.
    assert!(
        t.history("newest")
            .iter()
            .filter(|r| r["status"] == "running")
            .count()
            <= 1
    );
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
    assert!(t.history("newest").iter().all(|r| r["status"] != "running"));
    assert!(t
        .history("overlap")
        .iter()
        .all(|r| r["status"] != "running"));
}

/// A daemon that runs `greet` (a line on stdout, one on stderr) once and
/// stops: its stdout (job output) and its log.
fn greet_once(t: &Test) -> (String, String) {
    let (daemon, _) = daemon_before_tick(
        t,
        |schedule| {
            job_file(t, "greet", schedule, "echo hello; echo oops >&2", "");
        },
        || t.spawn_daemon_to(["--config", "{root}/jobs.yaml"], Some("daemon.out")),
    );
    wait_for(Duration::from_secs(60), "the run to finish", || {
        t.history("greet")
            .into_iter()
            .find(|r| r["status"] == "succeeded")
    });
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
    let out = std::fs::read_to_string(t.path("daemon.out")).expect("daemon stdout");
    (out, log)
}

#[test]
fn job_output_reaches_the_daemons_stdout_prefixed_and_list_shows_the_last_run() {
    let t = Test::new();
    let (out, log) = greet_once(&t);
    assert!(out.contains(" [greet] stdout: hello\n"), "{out}");
    assert!(out.contains(" [greet] stderr: oops\n"), "{out}");
    assert!(log.contains("claimed"), "the daemon logs to stderr:\n{log}");
    let list = t
        .run_args(["list", "--json", "--config", "{root}/jobs.yaml"])
        .expect_code(0);
    assert_eq!(list.json()[0]["last_status"], "succeeded");
    assert!(list.json()[0]["last_run"].is_string());
}

#[test]
fn reboot_jobs_run_once_per_boot_and_again_in_a_fresh_container() {
    let t = Test::new();
    job_file(
        &t,
        "boot",
        "@reboot",
        "echo \"$JOBRUN_TRIGGER\" >> {root}/boots.txt",
        "",
    );
    let lines = || {
        std::fs::read_to_string(t.path("boots.txt"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let succeeded = || {
        t.history("boot")
            .iter()
            .filter(|r| r["status"] == "succeeded")
            .count()
    };
    // `decided` is the event that shows the daemon is past its @reboot step.
    let start = |marker: &str, decided: &dyn Fn(&Daemon) -> bool| {
        let daemon = t.spawn_daemon([
            "--config",
            "{root}/jobs.yaml",
            "--reboot-marker-dir",
            marker,
        ]);
        wait_for(Duration::from_secs(60), "the @reboot step", || {
            decided(&daemon).then_some(())
        });
        daemon.signal(Signal::SIGTERM);
        let (code, log) = daemon.wait(Duration::from_secs(10));
        assert_eq!(code, 0, "{log}");
    };
    start("{root}/run", &|_| succeeded() >= 1);
    assert_eq!(lines(), 1);
    start("{root}/run", &|d| {
        d.log().contains("@reboot jobs already ran in this boot")
    });
    assert_eq!(
        lines(),
        1,
        "a restart within the same boot does not rerun @reboot"
    );
    start("{root}/fresh-container-run", &|_| succeeded() >= 2);
    assert_eq!(lines(), 2, "a fresh marker directory is a new boot");
    assert_eq!(
        std::fs::read_to_string(t.path("boots.txt")).unwrap_or_default(),
        "reboot\nreboot\n"
    );
    let rows = t.history("boot");
    assert!(
        rows.iter()
            .all(|r| r["trigger"] == "reboot" && r["status"] == "succeeded"),
        "{rows:?}"
    );
}

#[test]
fn json_log_format_gives_one_json_object_per_line_for_events_and_job_lines() {
    let t = Test::new();
    let (daemon, _) = daemon_before_tick(
        &t,
        |schedule| {
            job_file(&t, "talk", schedule, "echo hello; echo world >&2", "");
        },
        || {
            t.spawn_daemon_to(
                ["--config", "{root}/jobs.yaml", "--log-format", "json"],
                Some("daemon.out"),
            )
        },
    );
    let run = wait_for(Duration::from_secs(60), "the run to finish", || {
        t.history("talk")
            .into_iter()
            .find(|r| r["status"] == "succeeded")
    });
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
    let out = std::fs::read_to_string(t.path("daemon.out")).expect("daemon stdout");
    let mut job_lines = Vec::new();
    for line in out.lines().chain(log.lines()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["ts"].is_string() && v["level"].is_string(), "{line}");
        if v["job"] == "talk" && v.get("line").is_some() {
            job_lines.push(v);
        }
    }
    assert_eq!(job_lines.len(), 2, "{out}");
    for v in &job_lines {
        assert_eq!(v["run_id"], run["id"]);
        assert!(v["stream"] == "stdout" || v["stream"] == "stderr");
    }
    assert!(job_lines
        .iter()
        .any(|v| v["line"] == "hello" && v["stream"] == "stdout"));
    assert!(job_lines
        .iter()
        .any(|v| v["line"] == "world" && v["stream"] == "stderr"));
}

#[test]
fn a_flood_of_output_into_an_unread_stdout_never_blocks_the_scheduler() {
    let t = Test::new();
    t.write(
        "jobs.yaml",
        "jobs:\n  - name: flood\n    schedule: \"* * * * * *\"\n    command: yes flood | head -c 50000000\n  - name: ticker\n    schedule: \"* * * * * *\"\n    command: echo \"$JOBRUN_TICK\" >> {root}/ticks.txt\n",
    );
    // The daemon's stdout is a pipe nobody reads: it fills within a moment.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jobrun"))
        .args(["daemon", "--config"])
        .arg(t.path("jobs.yaml"))
        .arg("--state-dir")
        .arg(t.path("state"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("daemon");
    // Long enough for the stdout pipe to fill and the flood to finish, however
    // slow the machine: five ticks recorded and the flood's run on record.
    wait_for(Duration::from_secs(90), "five ticks", || {
        let text = std::fs::read_to_string(t.path("ticks.txt")).unwrap_or_default();
        (text.lines().count() >= 5).then_some(())
    });
    wait_for(Duration::from_secs(90), "a finished flood run", || {
        t.history("flood")
            .iter()
            .any(|r| r["output_bytes"] == 50_000_000u64)
            .then_some(())
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let status = wait_for(Duration::from_secs(15), "the daemon to exit", || {
        child.try_wait().expect("wait")
    });
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(t.path("ticks.txt")).unwrap_or_default();
    let ticks: Vec<DateTime<Utc>> = text.lines().map(|l| l.parse().expect("a tick")).collect();
    assert!(
        ticks.len() >= 4,
        "the ticker stalled behind the flood:\n{text}"
    );
    for pair in ticks.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::seconds(1),
            "a tick was missed:\n{text}"
        );
    }
    let floods = t.history("flood");
    assert!(
        floods.iter().any(|r| r["output_bytes"] == 50_000_000u64),
        "the flood's output is still counted exactly: {floods:?}"
    );
}

/// Found in review: a signalled `jobrun run` used to leave its job running,
/// unsupervised, with its row stuck `running`.
fn a_signalled_run_stops_its_job_and_records_it(backend: Backend) {
    let Some(t) = backend.on(Test::new(), "a_signalled_run_stops_its_job_and_records_it") else {
        return;
    };
    t.write(
        "jobs.yaml",
        "jobs:\n  - name: slow\n    command: sleep 30\n    kill_grace: 2s\n",
    );
    let run_cmd = t.spawn(["run", "slow", "--config", "{root}/jobs.yaml"]);
    let run = wait_for(Duration::from_secs(60), "the run to start", || {
        running_run(&t, "slow")
    });
    run_cmd.signal(Signal::SIGTERM);
    let (code, log) = run_cmd.wait(Duration::from_secs(10));
    assert_eq!(code, 128 + 15, "{log}");
    let rows = t.history("slow");
    assert_eq!(rows[0]["id"], run["id"]);
    assert_eq!(rows[0]["status"], "interrupted", "{rows:?}");
    let pid = run["pid"].as_i64().expect("pid") as i32;
    wait_for(Duration::from_secs(5), "the job to be gone", || {
        (!pid_alive(pid)).then_some(())
    });
}

#[test]
fn a_failing_run_leaves_a_warning_even_at_rust_log_warn() {
    let t = Test::new().env("RUST_LOG", "warn");
    let (daemon, _) = daemon_before_tick(
        &t,
        |schedule| {
            job_file(&t, "broken", schedule, "exit 3", "");
        },
        || t.spawn_daemon(["--config", "{root}/jobs.yaml"]),
    );
    wait_for(Duration::from_secs(60), "the run to fail", || {
        t.history("broken")
            .into_iter()
            .find(|r| r["status"] == "failed")
    });
    // The line is logged right after the run is recorded.
    let line = wait_for(Duration::from_secs(5), "the warning", || {
        daemon
            .log()
            .lines()
            .find(|l| l.contains("finished") && l.contains("broken"))
            .map(str::to_string)
    });
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("failed"), "{line}");
    daemon.signal(Signal::SIGTERM);
    let (code, _) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0);
}

#[test]
fn rust_log_debug_shows_the_debug_lines() {
    let t = Test::new().env("RUST_LOG", "info,jobrun::runner=debug");
    job_file(&t, "tick", "* * * * * *", "true", "");
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    // The runner says at debug level that a job's process started.
    let line = wait_for(Duration::from_secs(60), "a debug line", || {
        daemon
            .log()
            .lines()
            .find(|l| l.contains("DEBUG") && l.contains("started"))
            .map(str::to_string)
    });
    assert!(line.contains("tick"), "{line}");
    daemon.signal(Signal::SIGTERM);
    let (code, _) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0);
}

#[test]
fn job_output_lines_say_when_and_from_which_stream() {
    let t = Test::new();
    let (out, _) = greet_once(&t);
    for (stream, text) in [("stdout", "hello"), ("stderr", "oops")] {
        let line = out
            .lines()
            .find(|l| l.ends_with(&format!("[greet] {stream}: {text}")))
            .unwrap_or_else(|| panic!("no {stream} line:\n{out}"));
        let ts = line.split(' ').next().expect("a first word");
        DateTime::parse_from_rfc3339(ts).unwrap_or_else(|e| panic!("{ts:?} in {line:?}: {e}"));
    }
}

on_both_backends!(
    two_daemons_on_one_state_dir_run_every_tick_exactly_once,
    a_killed_daemon_leaves_an_abandoned_run_that_is_not_run_again,
    sigterm_stops_the_running_job_records_interrupted_and_exits_0,
    exit_codes_and_signals_are_recorded_exactly_and_run_returns_them,
    run_is_refused_while_the_daemon_runs_the_job_and_both_agree,
    replace_stops_the_running_instance_and_allow_overlaps,
    a_job_ignoring_sigterm_is_killed_after_the_shutdown_grace,
    a_timeout_kills_the_whole_process_group_and_records_timed_out,
    a_signalled_run_stops_its_job_and_records_it,
);
