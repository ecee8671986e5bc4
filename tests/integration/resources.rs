//! jobrun short of resources: descriptors (issue 11, defect 12). Every tick
//! ends in a row, and the log says so once rather than once per failure.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::backends::Backend;
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

fn two_hundred_jobs_under_64_descriptors_each_get_a_row_per_tick(backend: Backend) {
    let Some(t) = backend.on(
        Test::new().file("jobs.yaml", jobs_yaml(200, "true")),
        "two_hundred_jobs_under_64_descriptors_each_get_a_row_per_tick",
    ) else {
        return;
    };
    let daemon = t.spawn_daemon_with_nofile(["--config", "{root}/jobs.yaml"], 64, 64);
    // Four ticks complete (a fifth begun), whatever they took.
    wait_for(Duration::from_secs(90), "four complete ticks", || {
        let ticks = rows_per_tick(&t.history_all());
        (ticks.len() >= 5).then_some(())
    });
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(30));
    assert_eq!(code, 0, "{log}");
    let ticks = rows_per_tick(&t.history_all());
    let full: Vec<_> = ticks.values().take(ticks.len() - 1).collect();
    for (tick, statuses) in ticks.iter().take(ticks.len() - 1) {
        let rows: usize = statuses.values().sum();
        assert_eq!(rows, 200, "tick {tick}: {statuses:?}\n{log}");
    }
    // Queued for a slot rather than failed: every run of the ticks before
    // the last succeeded, or (on a machine too loaded to start 200 jobs in
    // a second) was skipped because the job's previous run still held it.
    for statuses in &full {
        assert!(
            statuses.keys().all(|s| s == "succeeded" || s == "skipped"),
            "{ticks:?}\n{log}"
        );
    }
    let succeeded: usize = full.iter().map(|s| s.get("succeeded").unwrap_or(&0)).sum();
    assert!(succeeded >= 200, "{ticks:?}");
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
    let ticks = rows_per_tick(&t.history_all());
    for (tick, statuses) in ticks.iter().take(ticks.len() - 1) {
        assert_eq!(
            statuses.values().sum::<usize>(),
            40,
            "tick {tick}: {statuses:?}"
        );
    }
}

/// Sets the soft limit on file size of process `pid` (the test's own
/// child: no privilege needed).
fn set_file_size_limit(pid: i32, soft: u64) {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit reads the new limit and writes nothing back (null).
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

#[test]
fn ticks_while_the_state_directory_refuses_writes_end_in_missed_rows() {
    let t = Test::new().file("jobs.yaml", jobs_yaml(3, "true"));
    // With SIGXFSZ ignored, a write past the file-size limit fails (EFBIG)
    // instead of killing the writer: a disk that refuses every write to the
    // database, without root (a full tmpfs needs a mount).
    let daemon = t.spawn_daemon_with_pre_exec(["--config", "{root}/jobs.yaml"], || {
        // SAFETY: setting a signal's disposition is async-signal-safe.
        unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
        Ok(())
    });
    wait_for(Duration::from_secs(30), "two ticks on record", || {
        (rows_per_tick(&t.history_all()).len() >= 2).then_some(())
    });
    set_file_size_limit(daemon.pid(), 1);
    let outage = std::time::Instant::now();
    // Three ticks go by with the store refusing writes.
    wait_for(Duration::from_secs(10), "three ticks of outage", || {
        (outage.elapsed() >= Duration::from_secs(3)).then_some(())
    });
    set_file_size_limit(daemon.pid(), libc::RLIM_INFINITY);
    let missed = wait_for(
        Duration::from_secs(30),
        "the missed ticks on record",
        || {
            let out = t
                .run_args(["history", "--status", "missed", "--json"])
                .expect_code(0);
            let missed = out.json().as_array().expect("an array").clone();
            assert!(missed.iter().all(|r| r["status"] == "missed"));
            (missed.len() >= 3 * 2).then_some(missed)
        },
    );
    for row in &missed {
        let error = row["error"].as_str().expect("a missed row says why");
        assert!(error.starts_with("not claimed: "), "{row}");
    }
    // The store is back: later ticks run again.
    let ticks_before = rows_per_tick(&t.history_all()).len();
    wait_for(Duration::from_secs(30), "ticks after the outage", || {
        (rows_per_tick(&t.history_all()).len() >= ticks_before + 2).then_some(())
    });
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(30));
    assert_eq!(code, 0, "{log}");
    // Every tick from the first to the last has a row for every job.
    let ticks = rows_per_tick(&t.history_all());
    let first = ticks
        .keys()
        .next()
        .unwrap()
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap();
    let last = ticks
        .keys()
        .last()
        .unwrap()
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap();
    assert_eq!(
        ticks.len() as i64,
        (last - first).num_seconds() + 1,
        "a tick without a row: {ticks:?}"
    );
    for (tick, statuses) in &ticks {
        assert_eq!(
            statuses.values().sum::<usize>(),
            3,
            "tick {tick}: {statuses:?}"
        );
    }
}

#[test]
fn a_limit_too_low_to_start_jobs_records_every_tick_missed_with_one_warning() {
    let t = Test::new().file("jobs.yaml", jobs_yaml(20, "sleep 0.3"));
    // Too few descriptors left to start a job at all (or at most a few).
    let daemon = t.spawn_daemon_with_nofile(["--config", "{root}/jobs.yaml"], 22, 22);
    wait_for(Duration::from_secs(30), "three complete ticks", || {
        (rows_per_tick(&t.history_all()).len() >= 4).then_some(())
    });
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(30));
    assert_eq!(code, 0, "{log}");
    let rows = t.history_all();
    let ticks = rows_per_tick(&rows);
    for (tick, statuses) in ticks.iter().take(ticks.len() - 1) {
        assert_eq!(
            statuses.values().sum::<usize>(),
            20,
            "tick {tick}: {statuses:?}"
        );
        assert!(
            statuses.keys().all(|s| s == "missed" || s == "succeeded"),
            "tick {tick}: {statuses:?}"
        );
    }
    let missed: Vec<&Value> = rows.iter().filter(|r| r["status"] == "missed").collect();
    assert!(!missed.is_empty(), "{ticks:?}");
    for row in missed {
        let error = row["error"].as_str().unwrap();
        assert!(error.contains("Too many open files"), "{row}");
    }
    let alarms = alarms(&log);
    assert!(alarms.len() <= 3, "{}", alarms.join("\n"));
}

mod two_hundred_jobs_under_64_descriptors_each_get_a_row_per_tick {
    #[test]
    fn on_sqlite() {
        super::two_hundred_jobs_under_64_descriptors_each_get_a_row_per_tick(
            crate::backends::Backend::Sqlite,
        )
    }

    /// Found a PostgreSQL daemon claiming its backlog after SIGTERM (each
    /// claim recorded `interrupted`) and re-registering after its stop
    /// record (one run left `running`); both fixed, and the claim batch made
    /// cheaper (one lease check per batch, the definition in one round trip).
    #[test]
    fn on_postgres() {
        super::two_hundred_jobs_under_64_descriptors_each_get_a_row_per_tick(
            crate::backends::Backend::Postgres,
        )
    }
}
