//! Start-up recovery with several daemons on one state directory: a run is
//! recorded `abandoned` only when its owner is shown dead, never because its
//! lock is free (issue 11: deleting `locks/` under a live daemon made the next
//! daemon to start kill that daemon's running job).

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use nix::sys::signal::Signal;
use serde_json::Value;

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

#[test]
fn a_starting_daemon_leaves_a_live_daemons_runs_alone_when_the_locks_are_deleted() {
    let schedule = once_soon(3);
    let t = Test::new().file(
        "jobs.yaml",
        format!(
            "jobs:\n\
             \x20 - {{name: short, schedule: \"{schedule}\", command: \"sleep 8\"}}\n\
             \x20 - {{name: long, schedule: \"{schedule}\", command: \"sleep 60\"}}\n"
        ),
    );
    let a = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    let limit = Duration::from_secs(15);
    let short = wait_for(limit, "short to start", || running_pid(&t, "short"));
    let long = wait_for(limit, "long to start", || running_pid(&t, "long"));

    // A tmp cleaner empties locks/ under the live daemon A; B starts.
    for entry in std::fs::read_dir(t.path("state/locks")).expect("reading locks/") {
        std::fs::remove_file(entry.expect("an entry").path()).expect("removing a lock file");
    }
    let b = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    wait_for(limit, "daemon B to finish its start", || started(&b));
    assert!(alive(short) && alive(long), "{}", b.log());
    assert_eq!(running_pid(&t, "long"), Some(long), "{}", b.log());
    let short_run = wait_for(limit, "short to end", || {
        run_of(&t, "short").filter(|r| r["status"] != "running")
    });
    assert_eq!(short_run["status"], "succeeded", "{short_run}\n{}", b.log());

    // A dies for real: the next daemon to start shows it dead (its pid is
    // gone), records its run abandoned and stops the job it left behind.
    a.signal(Signal::SIGKILL);
    let (code, _) = a.wait(Duration::from_secs(5));
    assert_eq!(code, 128 + 9);
    let c = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    wait_for(limit, "daemon C to finish its start", || started(&c));
    let long_run = run_of(&t, "long").expect("long's run");
    assert_eq!(long_run["status"], "abandoned", "{long_run}\n{}", c.log());
    assert!(
        long_run["error"]
            .as_str()
            .is_some_and(|e| e.contains("is gone") && e.contains("was stopped")),
        "{long_run}"
    );
    wait_for(limit, "the orphaned job to be stopped", || {
        (!alive(long)).then_some(())
    });
    drop((b, c));
}
