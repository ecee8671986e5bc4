//! The daemon survives a firing that panics, and the run still ends on
//! record (issue 11, defect 2): booted in-process, so the test-only panic of
//! `fire` (a job named `test-panic-...`, compiled into test builds only) is
//! reachable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{run, DaemonOptions};
use crate::clock::SystemClock;
use crate::job::RunStatus;
use crate::plan::Plan;
use crate::store::{HistoryFilter, Retention, RunRecord, Store};

fn history(state: &std::path::Path, job: &str) -> Vec<RunRecord> {
    let Ok(store) = Store::open(state) else {
        return Vec::new();
    };
    store
        .history(&HistoryFilter {
            job: Some(job.into()),
            ..Default::default()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_firing_ends_its_run_on_record_and_the_daemon_fires_the_next_tick() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "jobs:\n\
        \x20 - {name: test-panic-every-second, schedule: '* * * * * *', command: 'sleep 30'}\n\
        \x20 - {name: calm, schedule: '* * * * * *', command: 'true'}\n";
    let set = crate::source::yaml::parse_yaml(std::path::Path::new("jobs.yaml"), yaml);
    let (plan, diagnostics) = Plan::build(set, chrono_tz::UTC);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let state = dir.path().join("state");
    let options = DaemonOptions {
        plan,
        state_dir: state.clone(),
        location: crate::store::Location::StateDir(state.clone()),
        host: "test-host".into(),
        base_env: std::env::vars().collect(),
        shutdown_grace: Duration::from_secs(5),
        tail_bytes: 1024,
        json_output: false,
        max_catch_up: Duration::from_secs(60),
        reboot_marker_dir: dir.path().join("reboot"),
        reap: false,
        reload: None,
        retention: Retention::default(),
        http: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(run(options, Arc::new(SystemClock), async move {
        let _ = stopped.await;
    }));
    let start = Instant::now();
    loop {
        let panicked = history(&state, "test-panic-every-second");
        let ended = panicked
            .iter()
            .filter(|r| r.status != RunStatus::Running)
            .count();
        if ended >= 3 && history(&state, "calm").len() >= 3 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "three ticks did not end on record: {panicked:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(()).unwrap();
    daemon.await.unwrap().unwrap();
    let panicked = history(&state, "test-panic-every-second");
    assert!(panicked.len() >= 3);
    for run in &panicked {
        assert_eq!(run.status, RunStatus::Failed, "{run:?}");
        assert!(
            run.error
                .as_deref()
                .unwrap()
                .starts_with("jobrun internal error: a test-only panic"),
            "{run:?}"
        );
    }
    let mut ticks: Vec<_> = panicked.iter().filter_map(|r| r.tick).collect();
    ticks.dedup();
    assert_eq!(ticks.len(), panicked.len(), "one run per tick");
}
