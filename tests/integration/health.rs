//! `jobrun status` as a container HEALTHCHECK, and history retention.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::backends::{on_both_backends, Backend};
use crate::harness::{wait_for, Test};

fn status_is_1_without_a_daemon_0_when_healthy_and_1_after_a_failure(backend: Backend) {
    let Some(t) = backend.on(
        Test::new(),
        "status_is_1_without_a_daemon_0_when_healthy_and_1_after_a_failure",
    ) else {
        return;
    };
    t.write(
        "jobs.yaml",
        "jobs:\n  - name: ok\n    schedule: \"* * * * * *\"\n    command: \"true\"\n  - name: flaky\n    command: test -e {root}/fail && exit 1 || exit 0\n",
    );
    let none = t
        .run_args(["status", "--config", "{root}/jobs.yaml"])
        .expect_code(1);
    assert!(none.stdout.contains("not running"), "{}", none.stdout);

    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    let healthy = wait_for(Duration::from_secs(60), "a healthy status", || {
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

fn prune_keeps_the_configured_number_of_runs_per_job(backend: Backend) {
    let Some(t) = backend.on(
        Test::new(),
        "prune_keeps_the_configured_number_of_runs_per_job",
    ) else {
        return;
    };
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
    // SQLite's write-ahead log is truncated after a prune; PostgreSQL's
    // files are the server's business.
    if backend == Backend::Sqlite {
        let wal = t.path("state/jobrun.db-wal");
        assert_eq!(
            std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0),
            0,
            "WAL truncated"
        );
    }
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
        // Each round first fills the history with new runs (at least three),
        // then prunes it; the 3 s are the fill window the test measures.
        let runs = || {
            let out = t.run_args(["history", "tick", "--json", "--limit", "1000"]);
            out.json().as_array().map_or(0, Vec::len)
        };
        let before = runs();
        std::thread::sleep(Duration::from_secs(3));
        wait_for(Duration::from_secs(60), "three new runs", || {
            (runs() >= before + 3).then_some(())
        });
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

/// `jobrun status`'s exit code and output, with no source option at all.
fn bare_status(t: &Test) -> crate::harness::Output {
    t.run_args(["status"])
}

#[test]
fn status_needs_only_the_state_not_the_daemons_source_options() {
    let t = Test::new();
    t.write(
        "jobs.yaml",
        "jobs:\n  - name: tick\n    schedule: \"* * * * * *\"\n    command: \"true\"\n",
    );
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    // As `HEALTHCHECK CMD jobrun status` runs it: no --config.
    let out = wait_for(Duration::from_secs(60), "a healthy bare status", || {
        let out = bare_status(&t);
        (out.code == 0).then_some(out)
    });
    assert!(
        out.stdout.contains("tick"),
        "the daemon's jobs:\n{}",
        out.stdout
    );
    // Source options given are not needed, and do no harm.
    t.run_args(["status", "--config", "{root}/jobs.yaml"])
        .expect_code(0);
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}

#[test]
fn system_crontabs_can_be_named_by_an_environment_variable() {
    let t = Test::new()
        .file("sys/etc/crontab", "")
        .file(
            "sys/etc/cron.d/backup",
            "17 3 * * * root /usr/local/bin/backup\n",
        )
        .env("JOBRUN_SYSTEM_CRONTABS", "{root}/sys");
    let out = t.run_args(["list", "--json"]).expect_code(0);
    assert!(
        out.stdout.contains("/usr/local/bin/backup"),
        "{}",
        out.stdout
    );
}

fn two_jobs(good: &str, bad_schedule: &str) -> String {
    format!(
        "jobs:\n  - name: {good}\n    schedule: \"* * * * * *\"\n    command: touch {{root}}/{good}.ran\n  - name: broken\n    schedule: \"{bad_schedule}\"\n    command: \"true\"\n"
    )
}

#[test]
fn a_source_error_leaves_the_rest_running_and_status_degraded_until_fixed() {
    let t = Test::new();
    t.write("jobs.yaml", &two_jobs("good", "99 * * * *"));
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    wait_for(Duration::from_secs(60), "the good job to run", || {
        t.path("good.ran").exists().then_some(())
    });
    let out = wait_for(Duration::from_secs(60), "a degraded status", || {
        let out = bare_status(&t);
        out.stdout.contains("degraded").then_some(out)
    });
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("degraded: ") && l.contains("jobs.yaml:6")),
        "names the bad line:\n{}",
        out.stdout
    );
    let json = t.run_args(["status", "--json"]).expect_code(1).json();
    assert_eq!(json["state"], "degraded", "{json}");

    t.write("jobs.yaml", &two_jobs("good", "0 3 * * *"));
    daemon.signal(Signal::SIGHUP);
    wait_for(
        Duration::from_secs(15),
        "a healthy status after the fix",
        || (bare_status(&t).code == 0).then_some(()),
    );
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}

#[test]
fn strict_refuses_to_start_on_a_source_error() {
    // `--strict`, and the variable that does the same.
    for (flag, t) in [
        ("--strict", Test::new()),
        ("--log-format=text", Test::new().env("JOBRUN_STRICT", "1")),
    ] {
        t.write("jobs.yaml", &two_jobs("good", "99 * * * *"));
        let daemon = t.spawn_daemon([flag, "--config", "{root}/jobs.yaml"]);
        let (code, log) = daemon.wait(Duration::from_secs(10));
        assert_eq!(code, 2, "{flag}: {log}");
        assert!(log.contains("jobs.yaml:6"), "names the error:\n{log}");
        assert!(!t.path("good.ran").exists());
    }
}

#[test]
fn a_strict_daemon_keeps_its_old_schedule_when_an_edit_breaks_a_source() {
    let t = Test::new();
    t.write(
        "jobs.yaml",
        "jobs:\n  - name: old\n    schedule: \"* * * * * *\"\n    command: echo x >> {root}/old.ran\n",
    );
    let daemon = t.spawn_daemon(["--strict", "--config", "{root}/jobs.yaml"]);
    wait_for(Duration::from_secs(60), "the old job to run", || {
        t.path("old.ran").exists().then_some(())
    });
    // The edit adds a good job and a bad one: lenient mode would run `new`.
    t.write("jobs.yaml", &two_jobs("new", "99 * * * *"));
    daemon.signal(Signal::SIGHUP);
    wait_for(Duration::from_secs(15), "the reload to be refused", || {
        daemon
            .log()
            .contains("--strict refuses a reload")
            .then_some(())
    });
    let runs = || {
        std::fs::read_to_string(t.path("old.ran"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let before = runs();
    wait_for(Duration::from_secs(60), "the old job to run on", || {
        (runs() > before + 1).then_some(())
    });
    assert!(!t.path("new.ran").exists(), "the broken edit was applied");
    let out = bare_status(&t);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("degraded: "), "{}", out.stdout);
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}

on_both_backends!(
    status_is_1_without_a_daemon_0_when_healthy_and_1_after_a_failure,
    prune_keeps_the_configured_number_of_runs_per_job,
);
