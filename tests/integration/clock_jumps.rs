//! Clock jumps and suspend (SPEC 2), with the daemon booted in-process on a
//! hand-moved clock: a forward jump within --max-catch-up runs each job that
//! missed ticks once, a larger one only warns, a backward jump re-runs nothing.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use jobrun::clock::FakeClock;
use jobrun::daemon::{self, DaemonOptions};
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

fn runs(state: &std::path::Path) -> Vec<RunRecord> {
    match Store::open_existing(state).expect("open store") {
        Some(store) => store.history(&HistoryFilter::default()).expect("history"),
        None => Vec::new(),
    }
}

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, h, m, s).unwrap()
}

#[test]
fn forward_jumps_catch_up_once_large_ones_warn_and_backward_ones_rerun_nothing() {
    let logs = captured_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("jobs.yaml");
    std::fs::write(
        &config,
        "jobs:\n  - name: minutely\n    schedule: \"* * * * *\"\n    command: \"true\"\n  - name: five\n    schedule: \"*/5 * * * *\"\n    command: \"exit 0\"\n",
    )
    .expect("write jobs");
    let set = source::read_all(&SourceOptions {
        configs: vec![config],
        ..Default::default()
    });
    let (plan, diagnostics) = Plan::build(set, chrono_tz::UTC);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let state = dir.path().join("state");
    let clock = FakeClock::new(at(12, 0, 30));
    let options = DaemonOptions {
        plan,
        state_dir: state.clone(),
        base_env: std::env::vars().collect(),
        shutdown_grace: Duration::from_secs(5),
        tail_bytes: 1024,
        json_output: false,
        max_catch_up: Duration::from_secs(3 * 3600),
        reboot_marker_dir: dir.path().join("run"),
        reap: false,
        reload: None,
        retention: Default::default(),
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = runtime.spawn(daemon::run(options, Arc::new(clock.clone()), async {
        let _ = stopped.await;
    }));
    wait_for(Duration::from_secs(10), "the state directory", || {
        state.join("jobrun.db").exists().then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(runs(&state).is_empty(), "nothing is due at 12:00:30");

    // +10 minutes: every job missed ticks; each runs once, for its latest one.
    clock.advance(chrono::Duration::minutes(10));
    let caught_up = wait_for(Duration::from_secs(10), "catch-up runs", || {
        let r = runs(&state);
        (r.len() >= 2 && r.iter().all(|r| r.finished_at.is_some())).then_some(r)
    });
    std::thread::sleep(Duration::from_millis(300));
    let after_first = runs(&state);
    assert_eq!(after_first.len(), 2, "{after_first:?}");
    for run in &caught_up {
        assert_eq!(run.trigger, "catch-up");
        assert_eq!(run.tick, Some(at(12, 10, 0)), "{run:?}");
    }

    // +5 hours: beyond --max-catch-up: nothing runs, one warning.
    clock.advance(chrono::Duration::hours(5));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(runs(&state).len(), 2);

    // -1 hour, then forward again over ticks that already passed: nothing reruns.
    clock.advance(chrono::Duration::hours(-1));
    std::thread::sleep(Duration::from_millis(500));
    clock.advance(chrono::Duration::minutes(30));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(runs(&state).len(), 2, "{:?}", runs(&state));

    let _ = stop.send(());
    runtime
        .block_on(daemon)
        .expect("daemon task")
        .expect("daemon ran");
    let text =
        String::from_utf8_lossy(&logs.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    let count = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count("more than --max-catch-up"), 1, "{text}");
    assert_eq!(
        count("running each job that missed ticks once"),
        1,
        "{text}"
    );
    assert_eq!(count("wall clock moved backwards"), 1, "{text}");
}
