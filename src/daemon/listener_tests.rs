//! `--http` in a daemon booted in-process: `/healthz` answers 503 while the
//! scheduler loop is stuck and 200 again when it moves. The loop is made
//! stuck by the test-only hold of [`crate::http::Liveness`] (compiled into
//! test builds only), which keeps it at the top of its pass as a blocked
//! loop would stay; SIGSTOP cannot do it, since it stops the whole process
//! and the listener with it. What this tests: that the handler notices a
//! loop that does not come back by its deadline, and that a loop that
//! passes clears it; not what would make a real loop stick.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::{run, DaemonOptions};
use crate::clock::SystemClock;
use crate::http::{HttpOptions, Liveness};
use crate::plan::Plan;
use crate::store::Retention;

/// `GET path` on `addr`: the status code and the body.
fn get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let code = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((code, body))
}

/// Polls `GET path` (off the runtime's workers, which serve it) until it
/// answers `code` with a body containing `text` (bounded); the body.
async fn until(addr: std::net::SocketAddr, path: &'static str, code: u16, text: &str) -> String {
    let start = Instant::now();
    loop {
        let got = tokio::task::spawn_blocking(move || get(addr, path))
            .await
            .unwrap();
        match got {
            Some((c, body)) if c == code && body.contains(text) => return body,
            // Generous: the whole suite runs beside it on a loaded machine.
            other => assert!(
                start.elapsed() < Duration::from_secs(60),
                "{path} never answered {code}: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_503_while_the_loop_is_stuck_and_200_when_it_moves_again() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "jobs:\n  - {name: tick, schedule: '* * * * * *', command: 'true'}\n";
    let set = crate::source::yaml::parse_yaml(std::path::Path::new("jobs.yaml"), yaml);
    let (plan, diagnostics) = Plan::build(set, chrono_tz::UTC);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let liveness = Arc::new(Liveness::default());
    let http = HttpOptions {
        stuck_after: Duration::from_millis(500),
        liveness: Arc::clone(&liveness),
        // Port 0: the system picks a free one.
        ..HttpOptions::new(([127, 0, 0, 1], 0).into(), false)
    };
    let bound = Arc::clone(&http.bound);
    let options = DaemonOptions {
        plan,
        state_dir: dir.path().join("state"),
        location: crate::store::Location::StateDir(dir.path().join("state")),
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
        http: Some(http),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(run(options, Arc::new(SystemClock), async move {
        let _ = stopped.await;
    }));
    let start = Instant::now();
    let addr = loop {
        if let Some(addr) = bound.get() {
            break *addr;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never bound");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Healthy once the job's first run succeeded.
    until(addr, "/healthz", 200, "\"state\":\"healthy\"").await;

    // The loop has passed (it handed out the tick of a recorded run).
    let ran = "jobrun_job_runs_total{job=\"tick\",status=\"succeeded\"";
    until(addr, "/metrics", 200, ran).await;
    liveness.hold(true);
    let body = until(addr, "/healthz", 503, "the scheduler loop is stuck").await;
    assert!(body.contains("\"state\":\"unhealthy\""), "{body}");

    liveness.hold(false);
    let body = until(addr, "/healthz", 200, "").await;
    assert!(!body.contains("stuck"), "{body}");
    stop.send(()).unwrap();
    daemon.await.unwrap().unwrap();
}
