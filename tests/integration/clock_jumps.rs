//! Clock jumps, suspend and daylight saving (SPEC 2), with the daemon booted
//! in-process on a hand-moved clock: a forward jump within --max-catch-up runs
//! each job that missed ticks once, a larger one only warns; after a backward
//! jump scheduling follows the clock and the claims decide (a tick that ran
//! never runs again, one that never ran does); a fixed time in a DST gap runs
//! beside a per-second job.
//!
//! `FakeClock::advance` steps the wall clock while monotonic time stands
//! still (a step, or a suspend); `FakeClock::pass` lets time pass.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use jobrun::clock::FakeClock;
use jobrun::daemon::{self, DaemonOptions};
use jobrun::job::RunStatus;
use jobrun::plan::Plan;
use jobrun::source::{self, SourceOptions};
use jobrun::store::{HistoryFilter, RunRecord, Store};

use crate::harness::wait_for;

/// The daemon's log lines, captured for this binary (only this module boots a
/// daemon in-process).
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || LogWriter(Arc::clone(&writer)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        buffer
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One in-process daemon at a time: the log is global, and each test counts
/// the lines its own daemon wrote.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn runs(state: &std::path::Path) -> Vec<RunRecord> {
    match Store::open_existing(state).expect("open store") {
        Some(store) => store.history(&HistoryFilter::default()).expect("history"),
        None => Vec::new(),
    }
}

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, h, m, s).unwrap()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

/// A daemon running `yaml` on a hand-moved clock that starts at `start`.
struct Booted {
    clock: FakeClock,
    state: PathBuf,
    runtime: tokio::runtime::Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    daemon: tokio::task::JoinHandle<anyhow::Result<()>>,
    log_from: usize,
    _dir: tempfile::TempDir,
}

impl Booted {
    fn start(yaml: &str, start: DateTime<Utc>) -> Booted {
        let log_from = captured_logs()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("jobs.yaml");
        std::fs::write(&config, yaml).expect("write jobs");
        let set = source::read_all(&SourceOptions {
            configs: vec![config],
            ..Default::default()
        });
        let (plan, diagnostics) = Plan::build(set, chrono_tz::UTC);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let state = dir.path().join("state");
        let clock = FakeClock::new(start);
        let options = DaemonOptions {
            plan,
            state_dir: state.clone(),
            location: jobrun::store::Location::StateDir(state.clone()),
            host: "test-host".into(),
            base_env: std::env::vars().collect(),
            shutdown_grace: Duration::from_secs(5),
            tail_bytes: 1024,
            json_output: false,
            max_catch_up: Duration::from_secs(3 * 3600),
            reboot_marker_dir: dir.path().join("run"),
            reap: false,
            reload: None,
            retention: Default::default(),
            http: None,
        };
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let daemon = runtime.spawn(daemon::run(options, Arc::new(clock.clone()), async {
            let _ = stopped.await;
        }));
        // The first heartbeat comes from the loop, once it watches the clock.
        wait_for(
            Duration::from_secs(60),
            "the daemon's first heartbeat",
            || {
                let store = Store::open_existing(&state).ok()??;
                store.last_daemon_seen().ok()?
            },
        );
        Booted {
            clock,
            state,
            runtime,
            stop,
            daemon,
            log_from,
            _dir: dir,
        }
    }

    fn runs(&self) -> Vec<RunRecord> {
        runs(&self.state)
    }

    /// Waits for the finished run of `job` at `tick`.
    fn ran(&self, job: &str, tick: DateTime<Utc>) -> RunRecord {
        let _dump = DumpLogsOnPanic(self.log_from);
        wait_for(
            Duration::from_secs(60),
            &format!("{job}'s run for {tick}"),
            || {
                self.runs()
                    .into_iter()
                    .find(|r| r.job == job && r.tick == Some(tick) && r.finished_at.is_some())
            },
        )
    }

    /// What the daemon logged so far.
    fn logs(&self) -> String {
        let logs = captured_logs();
        let text = logs.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&text[self.log_from..]).into_owned()
    }

    /// Waits until the daemon has logged `needle` `n` times.
    fn logged(&self, needle: &str, n: usize) {
        wait_for(Duration::from_secs(60), needle, || {
            (count(&self.logs(), needle) >= n).then_some(())
        });
    }

    /// Stops the daemon; returns what it logged.
    fn stop(self) -> String {
        self.stop_with_runs().0
    }

    /// Stops the daemon; returns what it logged and every run on record.
    fn stop_with_runs(self) -> (String, Vec<RunRecord>) {
        let _ = self.stop.send(());
        self.runtime
            .block_on(self.daemon)
            .expect("daemon task")
            .expect("daemon ran");
        let logs = captured_logs();
        let text = logs.lock().unwrap_or_else(|p| p.into_inner());
        (
            String::from_utf8_lossy(&text[self.log_from..]).into_owned(),
            runs(&self.state),
        )
    }
}

struct DumpLogsOnPanic(usize);

impl Drop for DumpLogsOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = captured_logs();
            let text = logs.lock().unwrap_or_else(|p| p.into_inner());
            eprintln!("daemon log:\n{}", String::from_utf8_lossy(&text[self.0..]));
        }
    }
}

fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

/// Every (job, tick) recorded at most once.
fn assert_no_tick_twice(runs: &[RunRecord]) {
    let mut seen = std::collections::HashSet::new();
    for run in runs.iter().filter(|r| r.tick.is_some()) {
        assert!(
            seen.insert((run.job.clone(), run.tick, run.attempt)),
            "{} ran twice for {:?}: {runs:?}",
            run.job,
            run.tick
        );
    }
}

#[test]
fn forward_jumps_catch_up_once_large_ones_warn_and_backward_ones_rerun_nothing() {
    let _serial = one_at_a_time();
    let daemon = Booted::start(
        "jobs:\n  - name: minutely\n    schedule: \"* * * * *\"\n    command: \"true\"\n  - name: five\n    schedule: \"*/5 * * * *\"\n    command: \"exit 0\"\n",
        at(12, 0, 30),
    );
    // The daemon is up (its first heartbeat); nothing marks "ran nothing":
    // a moment in which a wrong run would show.
    std::thread::sleep(Duration::from_millis(300));
    assert!(daemon.runs().is_empty(), "nothing is due at 12:00:30");

    // +10 minutes: every job missed ticks; each runs once, for its latest one.
    daemon.clock.advance(chrono::Duration::minutes(10));
    let caught_up = wait_for(Duration::from_secs(60), "catch-up runs", || {
        let r = daemon.runs();
        (r.len() >= 2 && r.iter().all(|r| r.finished_at.is_some())).then_some(r)
    });
    // Both catch-up runs ended; a moment in which a third would show.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(daemon.runs().len(), 2, "{:?}", daemon.runs());
    for run in &caught_up {
        assert_eq!(run.trigger, "catch-up");
        assert_eq!(run.tick, Some(at(12, 10, 0)), "{run:?}");
    }

    // -30 minutes, then forward again over the ticks that ran: the claims
    // refuse them, silently.
    daemon.clock.advance(chrono::Duration::minutes(-30));
    daemon.logged("wall clock moved backwards", 1);
    daemon.clock.advance(chrono::Duration::minutes(30));
    daemon.logged("running each job that missed ticks once", 2);
    // The jump's ticks were decided (logged); a moment in which a run
    // wrongly handed out would show.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(daemon.runs().len(), 2, "{:?}", daemon.runs());

    // +5 hours: beyond --max-catch-up: nothing runs, one warning.
    daemon.clock.advance(chrono::Duration::hours(5));
    daemon.logged("more than --max-catch-up", 1);
    // The jump was seen (logged); a moment in which a wrong run would show.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(daemon.runs().len(), 2);

    let text = daemon.stop();
    assert_eq!(count(&text, "more than --max-catch-up"), 1, "{text}");
    assert_eq!(
        count(&text, "running each job that missed ticks once"),
        2,
        "{text}"
    );
    assert_eq!(count(&text, "wall clock moved backwards"), 1, "{text}");
    assert_eq!(count(&text, "skipped"), 0, "{text}");
}

#[test]
fn after_a_large_backward_jump_unclaimed_ticks_run_and_claimed_ones_never_twice() {
    let _serial = one_at_a_time();
    let start = at(12, 0, 0) + chrono::Duration::milliseconds(500);
    let daemon = Booted::start(
        "jobs:\n  - name: tick\n    schedule: \"* * * * * *\"\n    command: \"true\"\n",
        start,
    );
    for s in 1..=3 {
        daemon.clock.pass(secs(1));
        daemon.ran("tick", at(12, 0, s));
    }
    // Five hours back: those ticks were never claimed, and run as they come.
    daemon.clock.advance(chrono::Duration::hours(-5));
    daemon.logged("wall clock moved backwards", 1);
    for s in 4..=6 {
        daemon.clock.pass(secs(1));
        daemon.ran("tick", at(7, 0, s));
    }
    // Four seconds back, over ticks that ran (07:00:04-06) and one that did
    // not (07:00:03); then on to one that is new (07:00:07).
    daemon.clock.advance(secs(-4));
    daemon.logged("wall clock moved backwards", 2);
    // 07:00:03 must be its own wake-up (a window over it and later ticks
    // runs only the latest): wait for its run before moving on.
    daemon.clock.pass(secs(1));
    daemon.ran("tick", at(7, 0, 3));
    // 07:00:04-06 are refused without a trace; a slow daemon seeing them as
    // one window changes nothing, so a short pause per second is enough.
    for _ in 0..4 {
        daemon.clock.pass(secs(1));
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.ran("tick", at(7, 0, 7));
    // A moment in which a tick run twice would show.
    std::thread::sleep(Duration::from_millis(300));
    let runs = daemon.runs();
    assert_no_tick_twice(&runs);
    let mut ticks: Vec<_> = runs.iter().filter_map(|r| r.tick).collect();
    ticks.sort();
    let want: Vec<_> = [
        at(7, 0, 3),
        at(7, 0, 4),
        at(7, 0, 5),
        at(7, 0, 6),
        at(7, 0, 7),
    ]
    .into_iter()
    .chain((1..=3).map(|s| at(12, 0, s)))
    .collect();
    assert_eq!(ticks, want, "{runs:?}");
    assert!(runs.iter().all(|r| r.trigger == "schedule"), "{runs:?}");

    let text = daemon.stop();
    assert_eq!(count(&text, "wall clock moved backwards"), 2, "{text}");
    // A tick refused by its claim leaves no row and no warning.
    assert_eq!(count(&text, "skipped"), 0, "{text}");
    assert_eq!(count(&text, " WARN ") - 2, 0, "{text}");
}

#[test]
fn a_step_back_over_a_tick_that_ran_leaves_a_replace_jobs_current_run_alone() {
    let _serial = one_at_a_time();
    let start = at(12, 0, 0) + chrono::Duration::milliseconds(500);
    let daemon = Booted::start(
        "jobs:\n  - name: slow\n    schedule: \"*/5 * * * * *\"\n    command: \"sleep 30\"\n    concurrency: replace\n",
        start,
    );
    let started = |tick: DateTime<Utc>| {
        wait_for(
            Duration::from_secs(60),
            &format!("the run for {tick}"),
            || {
                daemon
                    .runs()
                    .into_iter()
                    .find(|r| r.tick == Some(tick) && r.started_at.is_some())
            },
        )
    };
    daemon.clock.pass(secs(5));
    started(at(12, 0, 5));
    // The 12:00:10 run replaces the 12:00:05 one.
    daemon.clock.pass(secs(5));
    started(at(12, 0, 10));
    daemon.ran("slow", at(12, 0, 5));
    // Back over 12:00:05, which ran: handed out again, it is refused before
    // the job's lock is taken, so the running 12:00:10 run is not replaced.
    daemon.clock.advance(secs(-6));
    daemon.logged("wall clock moved backwards", 1);
    daemon.clock.pass(secs(1));
    // The refused tick leaves no trace (by design); a moment in which a
    // wrongly replaced run would show.
    std::thread::sleep(Duration::from_millis(700));
    // Still running when the daemon stops: interrupted by the shutdown, not
    // killed to make way for a tick that had already run.
    let (_, runs) = daemon.stop_with_runs();
    let current = runs
        .iter()
        .find(|r| r.tick == Some(at(12, 0, 10)))
        .expect("the 12:00:10 run");
    assert_eq!(current.status, RunStatus::Interrupted, "{runs:?}");
    assert_eq!(runs.len(), 2, "{runs:?}");
}

#[test]
fn a_suspend_is_caught_up_at_once_and_the_next_tick_runs_as_scheduled() {
    let _serial = one_at_a_time();
    let start = at(12, 0, 1) + chrono::Duration::milliseconds(500);
    let daemon = Booted::start(
        "jobs:\n  - name: five\n    schedule: \"*/5 * * * * *\"\n    command: \"true\"\n",
        start,
    );
    // 145 s of suspend: the wall clock moves on, monotonic time does not.
    daemon.clock.advance(secs(145));
    let caught_up = daemon.ran("five", at(12, 2, 25));
    assert_eq!(caught_up.trigger, "catch-up");
    // Time passes to the next tick: it runs as scheduled, not as a catch-up.
    daemon.clock.pass(chrono::Duration::milliseconds(3500));
    let next = daemon.ran("five", at(12, 2, 30));
    assert_eq!(next.trigger, "schedule");
    let runs = daemon.runs();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let text = daemon.stop();
    assert_eq!(
        count(&text, "running each job that missed ticks once"),
        1,
        "{text}"
    );
}

#[test]
fn after_a_suspend_the_heartbeat_is_written_at_once() {
    let _serial = one_at_a_time();
    let start = at(12, 0, 1);
    let daemon = Booted::start(
        "jobs:\n  - name: hourly\n    schedule: \"0 * * * *\"\n    command: \"true\"\n",
        start,
    );
    // 145 s of suspend: a heartbeat 145 s old (or older, up to a minute
    // more) could make `status` or a starting peer take the daemon for dead.
    daemon.clock.advance(secs(145));
    let state = daemon.state.clone();
    wait_for(
        Duration::from_secs(5),
        "a heartbeat after the resume",
        || {
            let store = Store::open_existing(&state).ok()??;
            let seen = store.last_daemon_seen().ok()??;
            (seen >= start + secs(145)).then_some(())
        },
    );
    daemon.stop();
}

/// The heartbeat is written off the loop (issue 13): a `jobrun prune` (here,
/// a connection of the test's) holding SQLite's write lock while a beat is
/// due delays the beat and the runs' records, never the loop's ticks. A
/// loop stalled on the beat would hand the ticks of the stall out as one
/// window, and only its latest tick would run.
#[test]
fn a_held_write_lock_delays_no_tick_of_a_per_second_job() {
    let _serial = one_at_a_time();
    let start = at(12, 0, 0) + chrono::Duration::milliseconds(500);
    let daemon = Booted::start(
        "jobs:\n  - name: every-second\n    schedule: \"* * * * * *\"\n    concurrency: allow\n    command: \"true\"\n",
        start,
    );
    daemon.clock.pass(secs(1));
    daemon.ran("every-second", at(12, 0, 1));
    let prune = rusqlite::Connection::open(daemon.state.join("jobrun.db")).expect("open");
    prune
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    // A clock step makes a heartbeat due at once, while the lock is held.
    daemon.clock.advance(secs(3));
    // While the lock is held nothing can be recorded, so no event shows the
    // loop's progress: the pauses let the loop see each second on its own.
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        daemon.clock.pass(secs(1));
        std::thread::sleep(Duration::from_millis(300));
    }
    prune.execute_batch("ROLLBACK").expect("let the lock go");
    // 12:00:04 was caught up; each second after it was handed out on time.
    for s in 4..=7 {
        daemon.ran("every-second", at(12, 0, s));
    }
    let (_, runs) = daemon.stop_with_runs();
    assert_no_tick_twice(&runs);
}

#[test]
fn a_fixed_time_in_the_dst_gap_runs_once_beside_a_per_second_job() {
    let _serial = one_at_a_time();
    // Berlin, 2025-03-30: 02:00 CET becomes 03:00 CEST at 01:00:00Z, so 02:30
    // never happens and runs at 03:00 CEST, the first instant after the gap.
    let gap_end = Utc.with_ymd_and_hms(2025, 3, 30, 1, 0, 0).unwrap();
    let start = gap_end - secs(4) + chrono::Duration::milliseconds(500);
    let daemon = Booted::start(
        "defaults:\n  timezone: Europe/Berlin\njobs:\n  - name: gap\n    schedule: \"30 2 * * *\"\n    command: \"true\"\n  - name: every-second\n    schedule: \"* * * * * *\"\n    command: \"exit 0\"\n",
        start,
    );
    // The per-second job keeps the loop waking every second across the gap.
    for s in -3..=3 {
        daemon.clock.pass(secs(1));
        daemon.ran("every-second", gap_end + secs(s));
    }
    let gap = daemon.ran("gap", gap_end);
    assert_eq!(gap.trigger, "schedule");
    let runs = daemon.runs();
    assert_eq!(
        runs.iter().filter(|r| r.job == "gap").count(),
        1,
        "{runs:?}"
    );
    assert_no_tick_twice(&runs);
    daemon.stop();
}

/// The real daemon, its wall clock stepped by libfaketime (monotonic time
/// left alone, as a real step leaves it): five hours back, a per-second job
/// runs again at once, for ticks that were never claimed, and no tick that
/// ran runs twice.
#[test]
#[cfg_attr(
    not(jobrun_faketime),
    ignore = "needs libfaketime (apt-get install faketime, then touch build.rs)"
)]
fn a_real_daemon_stepped_back_five_hours_by_libfaketime_runs_unclaimed_ticks_at_once() {
    let offset = |t: &crate::harness::Test, text: &str| {
        // Written whole and renamed, so libfaketime never reads half a file.
        t.write("offset.tmp", text);
        std::fs::rename(t.path("offset.tmp"), t.path("offset")).expect("rename");
    };
    let t = crate::harness::Test::new().file(
        "jobs.yaml",
        "jobs:\n  - name: tick\n    schedule: \"* * * * * *\"\n    command: \"true\"\n",
    );
    offset(&t, "+0\n");
    let t = t
        .env(
            "LD_PRELOAD",
            option_env!("JOBRUN_LIBFAKETIME").unwrap_or_default(),
        )
        .env("FAKETIME_TIMESTAMP_FILE", "{root}/offset")
        .env("FAKETIME_NO_CACHE", "1")
        .env("DONT_FAKE_MONOTONIC", "1");
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    let state = t.path("state");
    let before = wait_for(Duration::from_secs(20), "three runs", || {
        let r = runs(&state);
        (r.iter().filter(|r| r.finished_at.is_some()).count() >= 3).then_some(r)
    });
    let latest_before = before.iter().filter_map(|r| r.tick).max().expect("ticks");
    offset(&t, "-5h\n");
    let after = wait_for(Duration::from_secs(60), "a run five hours back", || {
        let r = runs(&state);
        r.iter()
            .any(|r| {
                r.finished_at.is_some()
                    && r.tick
                        .is_some_and(|t| t < latest_before - chrono::Duration::hours(4))
            })
            .then_some(r)
    });
    assert_no_tick_twice(&after);
    assert!(
        daemon.log().contains("wall clock moved backwards"),
        "{}",
        daemon.log()
    );
}

/// The real daemon started by libfaketime seconds before Berlin's 2025
/// spring-forward gap, with a per-second job beside `30 2 * * *`: the gap job
/// runs once, at 03:00 CEST (01:00:00Z).
#[test]
#[cfg_attr(
    not(jobrun_faketime),
    ignore = "needs libfaketime (apt-get install faketime, then touch build.rs)"
)]
fn a_real_daemon_runs_the_gap_job_beside_a_per_second_job_under_libfaketime() {
    let t = crate::harness::Test::new()
        .file(
            "jobs.yaml",
            "defaults:\n  timezone: Europe/Berlin\njobs:\n  - name: gap\n    schedule: \"30 2 * * *\"\n    command: \"true\"\n  - name: every-second\n    schedule: \"* * * * * *\"\n    command: \"exit 0\"\n",
        )
        .file("start", "@2025-03-30 00:59:56\n")
        .env("LD_PRELOAD", option_env!("JOBRUN_LIBFAKETIME").unwrap_or_default())
        .env("FAKETIME_TIMESTAMP_FILE", "{root}/start")
        // Read once: the start time is not re-read (and re-applied) later.
        .env("FAKETIME_CACHE_DURATION", "86400")
        .env("DONT_FAKE_MONOTONIC", "1");
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    let state = t.path("state");
    let gap_end = Utc.with_ymd_and_hms(2025, 3, 30, 1, 0, 0).unwrap();
    let runs = wait_for(Duration::from_secs(20), "runs past the gap", || {
        let r = runs(&state);
        r.iter()
            .any(|r| r.job == "every-second" && r.tick.is_some_and(|t| t >= gap_end + secs(2)))
            .then_some(r)
    });
    let gap: Vec<_> = runs.iter().filter(|r| r.job == "gap").collect();
    assert_eq!(gap.len(), 1, "{runs:?}\n{}", daemon.log());
    assert_eq!(gap[0].tick, Some(gap_end));
    assert_eq!(gap[0].trigger, "schedule");
}
