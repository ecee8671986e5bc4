//! Reloading while the daemon runs: SIGHUP and file changes, broken configs,
//! removed jobs, and no tick lost or doubled across reloads.

use std::time::Duration;

use chrono::{DateTime, Utc};
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::harness::{wait_for, Test};

fn history(t: &Test, job: &str) -> Vec<Value> {
    let out = t
        .run_args(["history", job, "--json", "--limit", "100000"])
        .expect_code(0);
    out.json().as_array().expect("history is an array").clone()
}

fn ticks(t: &Test, file: &str) -> Vec<DateTime<Utc>> {
    std::fs::read_to_string(t.path(file))
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().unwrap_or_else(|e| panic!("tick {l:?}: {e}")))
        .collect()
}

const TICKER: &str = "  - name: ticker\n    schedule: \"* * * * * *\"\n    command: echo \"$JOBRUN_TICK\" >> {root}/ticks.txt\n";

#[test]
fn a_broken_config_keeps_the_old_schedule_and_logs_the_error_with_its_line() {
    let t = Test::new();
    t.write("jobs.yaml", &format!("jobs:\n{TICKER}"));
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    wait_for(Duration::from_secs(10), "ticks", || {
        (ticks(&t, "ticks.txt").len() >= 2).then_some(())
    });
    t.write(
        "jobs.yaml",
        "jobs:\n  - name: ticker\n    schedule: [\"* * * * * *\"\n    command: oops\n",
    );
    wait_for(Duration::from_secs(10), "the reload error", || {
        daemon
            .log()
            .contains("its previous version stays in force until it is fixed")
            .then_some(())
    });
    let before = ticks(&t, "ticks.txt").len();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        ticks(&t, "ticks.txt").len() >= before + 2,
        "the old job stopped firing"
    );
    let log = daemon.log();
    assert!(log.contains("jobs.yaml:"), "{log}");
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}

#[test]
fn a_removed_job_finishes_its_running_instance_and_does_not_fire_again() {
    let t = Test::new();
    t.write(
        "jobs.yaml",
        &format!(
            "jobs:\n{TICKER}  - name: slow\n    schedule: \"* * * * * *\"\n    command: sleep 2\n"
        ),
    );
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    let running = wait_for(Duration::from_secs(10), "slow to run", || {
        history(&t, "slow")
            .into_iter()
            .find(|r| r["status"] == "running")
    });
    t.write("jobs.yaml", &format!("jobs:\n{TICKER}"));
    daemon.signal(Signal::SIGHUP);
    wait_for(Duration::from_secs(10), "the reload", || {
        daemon
            .log()
            .contains("configuration reloaded")
            .then_some(())
    });
    let finished = wait_for(
        Duration::from_secs(10),
        "the running instance to end",
        || {
            history(&t, "slow")
                .into_iter()
                .find(|r| r["id"] == running["id"] && r["status"] != "running")
        },
    );
    assert_eq!(
        finished["status"], "succeeded",
        "a reload never disturbs a run"
    );
    let count = history(&t, "slow").len();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        history(&t, "slow").len(),
        count,
        "a removed job fired again"
    );
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}

#[test]
fn a_per_second_job_runs_once_per_tick_across_10_reloads() {
    let t = Test::new();
    t.write("jobs.yaml", &format!("jobs:\n{TICKER}"));
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    wait_for(Duration::from_secs(10), "ticks", || {
        (!ticks(&t, "ticks.txt").is_empty()).then_some(())
    });
    let reloads = || daemon.log().matches("configuration reloaded").count();
    for i in 0..10 {
        let before = reloads();
        if i % 2 == 0 {
            daemon.signal(Signal::SIGHUP);
        } else {
            // A change on disk (same jobs, a new comment) reloads too, once
            // the file has settled.
            t.write("jobs.yaml", &format!("# edit {i}\njobs:\n{TICKER}"));
        }
        wait_for(Duration::from_secs(10), "the reload", || {
            (reloads() > before).then_some(())
        });
    }
    std::thread::sleep(Duration::from_millis(1200));
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
    let mut seen = ticks(&t, "ticks.txt");
    let written = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), written, "a tick ran twice");
    for pair in seen.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::seconds(1),
            "a tick was lost: {seen:?}"
        );
    }
    assert!(written >= 8, "{written} ticks");
    let rows = history(&t, "ticker");
    let succeeded = rows.iter().filter(|r| r["status"] == "succeeded").count();
    assert_eq!(succeeded, written, "one history row per tick");
}

/// Found in review: a wake-up for a reload at a tick used to skip that tick.
#[test]
fn a_storm_of_reloads_loses_no_tick() {
    let t = Test::new();
    t.write("jobs.yaml", &format!("jobs:\n{TICKER}"));
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    wait_for(Duration::from_secs(10), "ticks", || {
        (!ticks(&t, "ticks.txt").is_empty()).then_some(())
    });
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(6) {
        daemon.signal(Signal::SIGHUP);
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(1200));
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(15));
    assert_eq!(code, 0, "{log}");
    let seen = ticks(&t, "ticks.txt");
    assert!(seen.len() >= 6, "{seen:?}");
    for pair in seen.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::seconds(1),
            "a tick was lost: {seen:?}"
        );
    }
}
