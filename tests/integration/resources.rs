//! jobrun short of resources: descriptors (issue 11, defect 12). Every tick
//! ends in a row, and the log says so once rather than once per failure.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{wait_for, Test};

fn jobs_yaml(count: usize, command: &str) -> String {
    let mut yaml = String::from("jobs:\n");
    for i in 0..count {
        yaml.push_str(&format!(
            "  - name: job{i:03}\n    schedule: '* * * * * *'\n    command: '{command}; : {i}'\n"
        ));
    }
    yaml
}

fn history(t: &Test) -> Vec<Value> {
    let out = t
        .run_args(["history", "--json", "--limit", "1000000"])
        .expect_code(0);
    out.json().as_array().expect("history is an array").clone()
}

/// Rows per tick, and per status within each tick.
fn rows_per_tick(rows: &[Value]) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut ticks: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for row in rows {
        let tick = row["tick"].as_str().expect("scheduled runs have a tick");
        let status = row["status"].as_str().expect("a status").to_string();
        *ticks
            .entry(tick.to_string())
            .or_default()
            .entry(status)
            .or_default() += 1;
    }
    ticks
}

/// The daemon's WARN and ERROR lines.
fn alarms(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect()
}

#[test]
fn two_hundred_jobs_under_64_descriptors_each_get_a_row_per_tick() {
    let t = Test::new().file("jobs.yaml", jobs_yaml(200, "true"));
    let daemon = t.spawn_daemon_with_nofile(["--config", "{root}/jobs.yaml"], 64, 64);
    // Four ticks complete (a fifth begun), whatever they took.
    wait_for(Duration::from_secs(90), "four complete ticks", || {
        let ticks = rows_per_tick(&history(&t));
        (ticks.len() >= 5).then_some(())
    });
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(30));
    assert_eq!(code, 0, "{log}");
    let ticks = rows_per_tick(&history(&t));
    let full: Vec<_> = ticks.values().take(ticks.len() - 1).collect();
    for (tick, statuses) in ticks.iter().take(ticks.len() - 1) {
        let rows: usize = statuses.values().sum();
        assert_eq!(rows, 200, "tick {tick}: {statuses:?}\n{log}");
    }
    // Queued for a slot rather than failed: the ticks before the last ran.
    let succeeded: usize = full.iter().map(|s| s.get("succeeded").unwrap_or(&0)).sum();
    assert_eq!(succeeded, 200 * full.len(), "{ticks:?}");
    let alarms = alarms(&log);
    assert!(
        alarms.len() <= 5,
        "{} WARN/ERROR lines:\n{}",
        alarms.len(),
        alarms.join("\n")
    );
}

#[test]
fn jobs_keep_the_open_file_limit_jobrun_was_started_with() {
    let t = Test::new();
    std::fs::create_dir_all(t.path("limits")).unwrap();
    // 40 runs at once need more descriptors than 64: jobrun raises its own
    // soft limit, and each job still sees the 64 it was started with.
    t.write(
        "jobs.yaml",
        &jobs_yaml(
            40,
            "ulimit -Sn > {root}/limits/$JOBRUN_JOB.$JOBRUN_RUN_ID; sleep 0.5",
        ),
    );
    let daemon = t.spawn_daemon_with_nofile(["--config", "{root}/jobs.yaml"], 64, 4096);
    wait_for(Duration::from_secs(60), "two ticks of every job", || {
        (std::fs::read_dir(t.path("limits")).unwrap().count() >= 80).then_some(())
    });
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", daemon.pid())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a limit for open files");
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(30));
    assert_eq!(code, 0, "{log}");
    assert!(
        open_files.split_whitespace().nth(3) == Some("4096"),
        "jobrun raised its soft limit: {open_files}\n{log}"
    );
    for entry in std::fs::read_dir(t.path("limits")).unwrap() {
        let path = entry.unwrap().path();
        let seen = std::fs::read_to_string(&path).unwrap();
        assert_eq!(seen.trim(), "64", "{}", path.display());
    }
    let ticks = rows_per_tick(&history(&t));
    for (tick, statuses) in ticks.iter().take(ticks.len() - 1) {
        assert_eq!(
            statuses.values().sum::<usize>(),
            40,
            "tick {tick}: {statuses:?}"
        );
    }
}
