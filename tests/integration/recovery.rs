//! Start-up recovery with several daemons on one state directory: a run is
//! recorded `abandoned` only when its owner is shown dead, never because its
//! lock is free (issue 11: deleting `locks/` under a live daemon made the next
//! daemon to start kill that daemon's running job).

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::backends::{on_both_backends, Backend};
use crate::harness::{wait_for, Test};

/// A 6-field expression that fires once a day, `secs` seconds from now.
fn once_soon(secs: i64) -> String {
    #[allow(clippy::disallowed_methods)] // tests schedule against the real clock
    let tick: DateTime<Utc> = Utc::now() + chrono::Duration::seconds(secs);
    format!("{} {} {} * * *", tick.second(), tick.minute(), tick.hour())
}

fn run_of(t: &Test, job: &str) -> Option<Value> {
    let out = t
        .run_args(["history", job, "--json", "--limit", "10"])
        .expect_code(0);
    out.json().as_array().and_then(|runs| runs.first().cloned())
}

fn running_pid(t: &Test, job: &str) -> Option<i32> {
    run_of(t, job)
        .filter(|r| r["status"] == "running")
        .and_then(|r| r["pid"].as_i64())
        .map(|pid| pid as i32)
}

fn alive(pid: i32) -> bool {
    u32::try_from(pid).is_ok_and(jobrun::procfs::is_running)
}

fn started(daemon: &crate::harness::Daemon) -> Option<()> {
    daemon.log().contains("daemon started").then_some(())
}

fn a_starting_daemon_leaves_a_live_daemons_runs_alone_when_the_locks_are_deleted(backend: Backend) {
    let schedule = once_soon(3);
    let Some(t) = backend.on(
        Test::new().file(
            "jobs.yaml",
            format!(
                "jobs:\n\
                 \x20 - {{name: short, schedule: \"{schedule}\", command: \"sleep 8\"}}\n\
                 \x20 - {{name: long, schedule: \"{schedule}\", command: \"sleep 60\"}}\n"
            ),
        ),
        "a_starting_daemon_leaves_a_live_daemons_runs_alone_when_the_locks_are_deleted",
    ) else {
        return;
    };
    let args = [&["--config", "{root}/jobs.yaml"][..], t.short_lease()].concat();
    let a = t.spawn_daemon(&args);
    let limit = Duration::from_secs(15);
    let short = wait_for(limit, "short to start", || running_pid(&t, "short"));
    let long = wait_for(limit, "long to start", || running_pid(&t, "long"));

    // A tmp cleaner empties locks/ under the live daemon A; B starts. On
    // PostgreSQL there is no locks/ (A's hold is its lease in the database):
    // B simply starts beside a live A.
    if backend == Backend::Sqlite {
        for entry in std::fs::read_dir(t.path("state/locks")).expect("reading locks/") {
            std::fs::remove_file(entry.expect("an entry").path()).expect("removing a lock file");
        }
    }
    let b = t.spawn_daemon(&args);
    wait_for(limit, "daemon B to finish its start", || started(&b));
    assert!(alive(short) && alive(long), "{}", b.log());
    assert_eq!(running_pid(&t, "long"), Some(long), "{}", b.log());
    let short_run = wait_for(limit, "short to end", || {
        run_of(&t, "short").filter(|r| r["status"] != "running")
    });
    assert_eq!(short_run["status"], "succeeded", "{short_run}\n{}", b.log());

    // A dies for real. SQLite: the next daemon to start shows it dead (its
    // pid is gone), records its run abandoned and stops the job it left
    // behind, all during its start. PostgreSQL: a pid proves nothing in a
    // fleet; once A's lease (7 s) has run out, a live peer (B, or C after a
    // lease of its own beats) declares A dead, records its run abandoned
    // and, A being of this host, stops the job.
    a.signal(Signal::SIGKILL);
    let (code, _) = a.wait(Duration::from_secs(5));
    assert_eq!(code, 128 + 9);
    let c = t.spawn_daemon(&args);
    wait_for(limit, "daemon C to finish its start", || started(&c));
    let long_run = match backend {
        Backend::Sqlite => run_of(&t, "long").expect("long's run"),
        Backend::Postgres => wait_for(
            Duration::from_secs(7 + 7 + 8),
            "A's run to be abandoned",
            || run_of(&t, "long").filter(|r| r["status"] != "running"),
        ),
    };
    assert_eq!(long_run["status"], "abandoned", "{long_run}\n{}", c.log());
    let error = long_run["error"].as_str().unwrap_or_default();
    match backend {
        Backend::Sqlite => assert!(
            error.contains("is gone") && error.contains("was stopped"),
            "{long_run}"
        ),
        Backend::Postgres => assert!(
            error.contains("the daemon on ") && error.contains("lost its lease"),
            "{long_run}"
        ),
    }
    wait_for(limit, "the orphaned job to be stopped", || {
        (!alive(long)).then_some(())
    });
    drop((b, c));
}

on_both_backends!(a_starting_daemon_leaves_a_live_daemons_runs_alone_when_the_locks_are_deleted);
