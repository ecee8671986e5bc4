//! `notify:` end to end: a real daemon's webhooks and pings reach a local
//! HTTP receiver started by the test (a thread reading requests from a
//! `TcpListener`): one webhook and one `/fail` ping per failed run, one
//! `recovery` when the job succeeds again (after a restart too), and a
//! receiver that answers 500 and then goes away is retried and given up on
//! without delaying the next tick.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::harness::{wait_for, wait_until, Daemon, Test};

/// One request the receiver read.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    Status(u16),
    /// Answer nothing and stop listening: later requests are refused.
    GoAway,
}

/// A local HTTP server on a thread; `answer` is told how many requests came
/// before this one.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(answer: impl Fn(usize, &Received) -> Answer + Send + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&got);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(received) = read_request(&mut stream) else {
                    continue;
                };
                let before = {
                    let mut seen = seen.lock().expect("the list");
                    seen.push(received.clone());
                    seen.len() - 1
                };
                match answer(before, &received) {
                    Answer::Status(code) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        );
                    }
                    // Dropping the listener refuses every later connection.
                    Answer::GoAway => return,
                }
            }
        });
        Receiver { url, got }
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().expect("the list").clone()
    }

    fn webhooks(&self, event: &str) -> Vec<Value> {
        self.got()
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/hook")
            .map(Received::json)
            .filter(|b| b["event"] == event)
            .collect()
    }

    fn pings(&self, path: &str) -> usize {
        self.got()
            .iter()
            .filter(|r| r.method == "GET" && r.path == path)
            .count()
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Received> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        method,
        path,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn job_file(t: &Test, url: &str, command: &str) {
    t.write(
        "jobs.yaml",
        &format!(
            "jobs:\n  - name: flaky\n    schedule: \"*/2 * * * * *\"\n    command: {command}\n    \
             notify:\n      on: [failure, recovery]\n      webhook: {url}/hook\n      \
             ping: {url}/ping/check-1\n"
        ),
    );
}

fn stop(daemon: Daemon) {
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(20));
    assert_eq!(code, 0, "{log}");
}

fn runs(t: &Test, status: &str) -> Vec<Value> {
    t.history_oldest_first("flaky")
        .into_iter()
        .filter(|r| r["status"] == status)
        .collect()
}

fn ids(values: &[Value], key: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = values.iter().filter_map(|v| v[key].as_i64()).collect();
    ids.sort();
    ids
}

#[test]
fn each_failed_run_gives_one_webhook_and_one_fail_ping() {
    let hook = Receiver::start(|_, _| Answer::Status(200));
    let t = Test::new();
    job_file(&t, &hook.url, "exit 3");
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    wait_for(Duration::from_secs(60), "three failure webhooks", || {
        (hook.webhooks("failure").len() >= 3).then_some(())
    });
    // The stop delivers what the last runs queued.
    stop(daemon);
    let failed = runs(&t, "failed");
    let told = hook.webhooks("failure");
    assert_eq!(
        ids(&told, "run_id"),
        ids(&failed, "id"),
        "one webhook per failed run: {told:?}"
    );
    assert_eq!(hook.pings("/ping/check-1/fail"), failed.len());
    // Each start is pinged too; no run succeeded, nothing recovered.
    assert!(hook.pings("/ping/check-1/start") >= failed.len());
    assert_eq!(hook.pings("/ping/check-1"), 0);
    assert!(hook.webhooks("recovery").is_empty());
    let body = &told[0];
    assert_eq!(body["job"], "flaky");
    assert_eq!(body["status"], "failed");
    assert_eq!(body["exit_code"], 3);
    assert_eq!(body["trigger"], "schedule");
    assert!(
        body["duration_ms"].is_u64() && body["host"].is_string(),
        "{body}"
    );
    let tick: DateTime<Utc> = body["tick"]
        .as_str()
        .expect("a tick")
        .parse()
        .expect("RFC 3339");
    assert_eq!(tick.timestamp() % 2, 0, "{body}");
}

#[test]
fn a_recovery_is_told_once_and_after_a_restart_too() {
    let hook = Receiver::start(|_, _| Answer::Status(200));
    let t = Test::new();
    t.write("failing", "");
    job_file(&t, &hook.url, "test ! -e {root}/failing");
    let first = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    wait_for(Duration::from_secs(60), "a failure webhook", || {
        (!hook.webhooks("failure").is_empty()).then_some(())
    });
    stop(first);
    // Fixed while no daemon runs: the next daemon's first success is the
    // recovery, read from the history.
    std::fs::remove_file(t.path("failing")).expect("removing the flag");
    let second = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    assert!(
        wait_until(Duration::from_secs(60), || runs(&t, "succeeded").len() >= 3),
        "{}",
        second.log()
    );
    stop(second);
    let succeeded = runs(&t, "succeeded");
    let recovered = hook.webhooks("recovery");
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert_eq!(recovered[0]["run_id"], succeeded[0]["id"], "{recovered:?}");
    assert_eq!(recovered[0]["status"], "succeeded");
    // `success` is not in `on`; the ping hears every success.
    assert!(hook.webhooks("success").is_empty());
    assert_eq!(hook.pings("/ping/check-1"), succeeded.len());
    assert_eq!(hook.webhooks("failure").len(), runs(&t, "failed").len());
}

#[test]
fn a_receiver_that_fails_is_retried_and_given_up_on_without_delaying_the_next_tick() {
    // 500 to the first two requests, then it closes: every later try is
    // refused. No delivery ever succeeds.
    let hook = Receiver::start(|before, _| {
        if before < 2 {
            Answer::Status(500)
        } else {
            Answer::GoAway
        }
    });
    let t = Test::new();
    job_file(&t, &hook.url, "exit 1");
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    // Each failed run's two deliveries are tried 3 times over about 3 s,
    // while ticks come every 2 s.
    assert!(
        wait_until(Duration::from_secs(60), || daemon
            .log()
            .matches("notification not delivered; giving up")
            .count()
            >= 4
            && runs(&t, "failed").len() >= 5),
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    stop(daemon);
    // Two answers of 500, a third request closed unanswered, then nothing
    // more reached it.
    assert_eq!(hook.got().len(), 3, "{:?}", hook.got());
    // Logged once per delivery given up, naming no path or token.
    let given_up: Vec<&str> = log.lines().filter(|l| l.contains("giving up")).collect();
    assert!(
        given_up.iter().all(|l| !l.contains("check-1")),
        "{given_up:?}"
    );
    // Every run started on time, retries going on or not.
    for run in runs(&t, "failed") {
        let tick: DateTime<Utc> = run["tick"].as_str().expect("tick").parse().expect("tick");
        let started: DateTime<Utc> = run["started_at"]
            .as_str()
            .expect("started")
            .parse()
            .expect("started");
        let late = (started - tick).num_milliseconds();
        assert!((0..500).contains(&late), "started {late} ms late: {run}");
    }
    // Ticks every 2 s, none skipped while deliveries were retried.
    let ticks: Vec<DateTime<Utc>> = runs(&t, "failed")
        .iter()
        .map(|r| r["tick"].as_str().expect("tick").parse().expect("tick"))
        .collect();
    for pair in ticks.windows(2) {
        assert_eq!(pair[1] - pair[0], chrono::Duration::seconds(2), "{ticks:?}");
    }
}

#[test]
fn check_refuses_a_notify_url_that_is_not_http_with_its_line() {
    let t = Test::new().file(
        "jobs.yaml",
        "jobs:\n  - name: a\n    schedule: \"@daily\"\n    command: \"true\"\n    notify:\n      \
         webhook: file:///etc/passwd\n",
    );
    let out = t
        .run_args(["check", "--config", "{root}/jobs.yaml"])
        .expect_code(1);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("jobs.yaml:5: error: job a: notify.webhook: \"file:///etc/passwd\" is not an http or https URL"),
        "{text}"
    );
}
