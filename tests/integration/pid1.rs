//! jobrun as PID 1 (a container's entrypoint): orphans are reaped, jobs' exit
//! statuses are never stolen. Runs in a new PID namespace via `unshare`, which
//! needs root; reported as ignored otherwise (`cfg(jobrun_root)`, build.rs).

use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::harness::{wait_for, wait_until, Test};

fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn zombies_of(parent: u32) -> Vec<u32> {
    jobrun::procfs::zombie_children(parent)
}

#[test]
#[cfg_attr(not(jobrun_root), ignore = "a PID namespace needs root")]
fn as_pid_1_orphans_are_reaped_and_every_exit_status_is_kept() {
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stderr(Stdio::null())
        .status();
    // As root a PID namespace is expected to work; a probe failure is a
    // failure of the test environment, reported as such rather than passed.
    assert!(
        probe.is_ok_and(|s| s.success()),
        "unshare --pid --fork --mount-proc failed although the tests run as root"
    );
    let t = Test::new();
    // 20 jobs, each second: each run double-forks an orphan (`sleep` in a
    // subshell that exits at once) and exits 7. 10 s is 200 runs.
    let mut yaml = String::from("jobs:\n");
    for i in 0..20 {
        yaml.push_str(&format!(
            "  - name: orphan{i}\n    schedule: \"* * * * * *\"\n    command: \"(sleep 0.3 &); exit 7 # {i}\"\n"
        ));
    }
    t.write("jobs.yaml", &yaml);
    let mut unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(env!("CARGO_BIN_EXE_jobrun"))
        .args(["daemon", "--config"])
        .arg(t.path("jobs.yaml"))
        .arg("--state-dir")
        .arg(t.path("state"))
        .env("TZ", "UTC")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(t.path("daemon.log")).expect("log"),
        ))
        .spawn()
        .expect("unshare");
    let daemon = wait_for(
        Duration::from_secs(5),
        "the daemon in its namespace",
        || children_of(unshare.id()).first().copied(),
    );
    // Ten seconds of orphans, the churn the test is about; then however long
    // a loaded machine needs for the 180 finished runs asserted below.
    std::thread::sleep(Duration::from_secs(10));
    wait_until(Duration::from_secs(120), || {
        std::thread::sleep(Duration::from_millis(500));
        let out = t.run_args(["history", "--json", "--limit", "100000"]);
        let rows = out.json().as_array().cloned().unwrap_or_default();
        rows.iter().filter(|r| r["status"] == "failed").count() >= 180
    });
    // Let the last orphans exit and be reaped: nothing marks that an orphan
    // is reaped (only a zombie left over), so a settle window.
    std::thread::sleep(Duration::from_millis(1500));
    // A job that just exited is a zombie for an instant until its run reaps
    // it; an orphan nobody reaps stays one. Keep what every sample shows.
    let mut zombies = zombies_of(daemon);
    for _ in 0..3 {
        // Samples apart in time (see above).
        std::thread::sleep(Duration::from_millis(300));
        let again = zombies_of(daemon);
        zombies.retain(|z| again.contains(z));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon as i32), Signal::SIGTERM)
        .expect("SIGTERM");
    let status = unshare.wait().expect("wait");
    let log = std::fs::read_to_string(t.path("daemon.log")).unwrap_or_default();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        zombies.is_empty(),
        "zombies left under PID 1: {zombies:?}\n{log}"
    );

    let out = t
        .run_args(["history", "--json", "--limit", "100000"])
        .expect_code(0);
    let rows = out.json().as_array().expect("array").clone();
    let finished: Vec<_> = rows
        .iter()
        .filter(|r| r["status"] != "interrupted")
        .collect();
    assert!(finished.len() >= 180, "only {} runs", finished.len());
    for row in &finished {
        assert_eq!(row["exit_code"], 7, "{row}");
        assert_eq!(row["status"], "failed", "{row}");
    }
}
