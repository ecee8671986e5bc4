//! `jobrun status` as a container HEALTHCHECK, and history retention.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::harness::{wait_for, Test};

#[test]
fn status_is_1_without_a_daemon_0_when_healthy_and_1_after_a_failure() {
    let t = Test::new();
    t.write(
        "jobs.yaml",
        "jobs:\n  - name: ok\n    schedule: \"* * * * * *\"\n    command: \"true\"\n  - name: flaky\n    command: test -e {root}/fail && exit 1 || exit 0\n",
    );
    let none = t
        .run_args(["status", "--config", "{root}/jobs.yaml"])
        .expect_code(1);
    assert!(none.stdout.contains("not running"), "{}", none.stdout);

    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    let healthy = wait_for(Duration::from_secs(10), "a healthy status", || {
        let out = t.run_args(["status", "--json", "--config", "{root}/jobs.yaml"]);
        (out.code == 0).then_some(out)
    });
    let v = healthy.json();
    assert_eq!(v["healthy"], true);
    assert!(v["daemon"]["pid"].is_number(), "{v}");
    let list = t
        .run_args(["list", "--config", "{root}/jobs.yaml"])
        .expect_code(0);
    assert!(
        list.stdout.starts_with("daemon: running"),
        "{}",
        list.stdout
    );

    t.write("fail", "");
    t.run_args(["run", "flaky", "--config", "{root}/jobs.yaml"])
        .expect_code(1);
    let failing = t
        .run_args(["status", "--config", "{root}/jobs.yaml"])
        .expect_code(1);
    assert!(
        failing.stdout.contains("latest run failed"),
        "{}",
        failing.stdout
    );

    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
    // A cleanly stopped daemon is not alive.
    std::fs::remove_file(t.path("fail")).expect("rm");
    t.run_args(["run", "flaky", "--config", "{root}/jobs.yaml"])
        .expect_code(0);
    t.run_args(["status", "--config", "{root}/jobs.yaml"])
        .expect_code(1);
}

#[test]
fn prune_keeps_the_configured_number_of_runs_per_job() {
    let t = Test::new();
    t.write(
        "jobs.yaml",
        "jobs:\n  - name: a\n    command: \"true\"\n  - name: b\n    command: \"exit 0\"\n",
    );
    for _ in 0..6 {
        t.run_args(["run", "a", "--config", "{root}/jobs.yaml"])
            .expect_code(0);
    }
    t.run_args(["run", "b", "--config", "{root}/jobs.yaml"])
        .expect_code(0);
    let out = t
        .run_args(["prune", "--keep-runs", "3", "--json"])
        .expect_code(0);
    assert_eq!(out.json()["removed"], 3);
    let count = |job: &str| {
        t.run_args(["history", job, "--json"])
            .expect_code(0)
            .json()
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(count("a"), 3);
    assert_eq!(count("b"), 1);
    // The YAML `history:` key applies when no flag is given.
    t.write(
        "jobs.yaml",
        "history:\n  keep_runs: 1\njobs:\n  - name: a\n    command: \"true\"\n  - name: b\n    command: \"exit 0\"\n",
    );
    t.run_args(["prune", "--config", "{root}/jobs.yaml"])
        .expect_code(0);
    assert_eq!(count("a"), 1);
    let wal = t.path("state/jobrun.db-wal");
    assert_eq!(
        std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0),
        0,
        "WAL truncated"
    );
}

#[test]
fn the_database_stops_growing_under_a_per_second_job_with_retention() {
    let t = Test::new();
    t.write(
        "jobs.yaml",
        "jobs:\n  - name: tick\n    schedule: \"* * * * * *\"\n    command: echo tick\n",
    );
    // Fill the history, then prune it to 5 runs again and again: the files
    // must not keep growing.
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    let size = || {
        ["state/jobrun.db", "state/jobrun.db-wal"]
            .iter()
            .map(|f| std::fs::metadata(t.path(f)).map(|m| m.len()).unwrap_or(0))
            .sum::<u64>()
    };
    let mut sizes = Vec::new();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_secs(3));
        t.run_args(["prune", "--keep-runs", "5"]).expect_code(0);
        sizes.push(size());
    }
    daemon.signal(Signal::SIGTERM);
    daemon.wait(Duration::from_secs(10));
    let runs = t
        .run_args(["history", "tick", "--json", "--limit", "1000"])
        .expect_code(0);
    assert!(runs.json().as_array().map_or(0, Vec::len) <= 6);
    assert!(
        sizes[3] <= sizes[1],
        "the database kept growing under retention: {sizes:?}"
    );
}
