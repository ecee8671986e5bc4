//! The notifier end to end within the crate: events offered by the
//! subscriber reach a local HTTP receiver (a thread reading requests from a
//! `TcpListener`), retried and counted as the policy says. The receiver is
//! shared with `deliver`'s tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::fire::RunEvent;
use crate::job::{
    Command, Dialect, JobSpec, NotifyOn, NotifySpec, Origin, RunId, RunStatus, ScheduleSpec,
    SourceKind, SourceSet, Trigger,
};

/// One request the receiver read.
#[derive(Debug, Clone)]
pub(super) struct Received {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) body: String,
}

/// How the receiver answers a request.
#[derive(Debug, Clone, Copy)]
pub(super) enum Answer {
    Status(u16),
    /// Close the connection without a word.
    Close,
}

/// A local HTTP server on a thread: each request is sent on the channel,
/// then answered as `answer` says and the connection closed.
pub(super) fn receiver(
    answer: impl Fn(&Received) -> Answer + Send + 'static,
) -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_string();
            let path = parts.next().unwrap_or_default().to_string();
            let mut length = 0;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let received = Received {
                method,
                path,
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            let reply = answer(&received);
            if tx.send(received).is_err() {
                return;
            }
            if let Answer::Status(code) = reply {
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        }
    });
    (url, rx)
}

/// A plan of one job with `notify` (and `retry.attempts` when given).
pub(super) fn plan_with(notify: NotifySpec, attempts: Option<u32>) -> Arc<Plan> {
    let origin = Origin::new("jobs.yaml", 1);
    let mut spec = JobSpec::new(
        Command::Shell("false".into()),
        SourceKind::Yaml,
        origin.clone(),
    );
    spec.name = Some("backup".into());
    spec.schedules.push(ScheduleSpec {
        expr: "@daily".into(),
        dialect: Dialect::Yaml,
        timezone: None,
        origin,
    });
    spec.notify = Some(Arc::new(notify));
    spec.retry = attempts.map(|attempts| {
        Box::new(crate::job::RetryPolicy {
            attempts,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(1),
        })
    });
    let (plan, diagnostics) = Plan::build(
        SourceSet {
            jobs: vec![Arc::new(spec)],
            ..Default::default()
        },
        chrono_tz::UTC,
    );
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    Arc::new(plan)
}

pub(super) fn failed(job: &str, run_id: i64) -> RunEvent {
    RunEvent::Finished {
        job: job.into(),
        run_id: RunId(run_id),
        trigger: Trigger::Schedule,
        tick: None,
        attempt: 1,
        status: RunStatus::Failed,
        exit_code: Some(1),
        signal: None,
        duration: Some(Duration::from_millis(5)),
        error: None,
        started_at: None,
        finished_at: chrono::DateTime::UNIX_EPOCH,
        replaced: false,
    }
}

pub(super) fn store() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(dir.path()).expect("a store");
    (dir, Arc::new(store))
}

const QUICK: Policy = Policy {
    timeout: Duration::from_secs(5),
    attempts: 3,
    backoff: Duration::from_millis(20),
};

fn webhook_and_ping(url: &str) -> NotifySpec {
    NotifySpec {
        on: NotifyOn::DEFAULT.to_vec(),
        webhook: Some(format!("{url}/hook")),
        ping: Some(format!("{url}/ping/abc")),
    }
}

#[test]
fn a_failure_reaches_the_webhook_and_the_ping_once_each() {
    let (url, requests) = receiver(|_| Answer::Status(200));
    let (_dir, store) = store();
    let plan = plan_with(webhook_and_ping(&url), None);
    let notifier = Notifier::with_policy(store, "web-1".into(), &plan, QUICK);
    let subscriber = notifier.subscriber();
    subscriber(&failed("backup", 7));
    // A job without `notify:` (or not in the plan) is not queued at all.
    subscriber(&failed("other", 8));
    let mut got: Vec<Received> = (0..2)
        .map(|_| {
            requests
                .recv_timeout(Duration::from_secs(10))
                .expect("a request")
        })
        .collect();
    got.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("POST", "/hook")
    );
    let body: serde_json::Value = serde_json::from_str(&got[0].body).expect("JSON");
    assert_eq!(body["event"], "failure");
    assert_eq!(body["run_id"], 7);
    assert_eq!(body["host"], "web-1");
    assert_eq!(
        (got[1].method.as_str(), got[1].path.as_str()),
        ("GET", "/ping/abc/fail")
    );
    notifier.drain();
    assert!(requests.try_recv().is_err(), "one request each");
    assert_eq!(
        notifier.counters().results(),
        [("sent", 2), ("failed", 0), ("dropped", 0)]
    );
}

#[test]
fn a_refusing_receiver_is_tried_as_often_as_the_policy_says_then_counted_once() {
    let (url, requests) = receiver(|r| {
        if r.path == "/hook" {
            Answer::Status(500)
        } else {
            Answer::Close
        }
    });
    let (_dir, store) = store();
    let plan = plan_with(webhook_and_ping(&url), None);
    let notifier = Notifier::with_policy(store, "h".into(), &plan, QUICK);
    notifier.subscriber()(&failed("backup", 1));
    let got: Vec<String> = (0..6)
        .map(|_| {
            requests
                .recv_timeout(Duration::from_secs(10))
                .expect("a request")
                .path
        })
        .collect();
    assert_eq!(got.iter().filter(|p| *p == "/hook").count(), 3, "{got:?}");
    assert_eq!(
        got.iter().filter(|p| *p == "/ping/abc/fail").count(),
        3,
        "{got:?}"
    );
    notifier.drain();
    assert!(requests.try_recv().is_err(), "no fourth try");
    let counters = notifier.counters();
    assert_eq!(
        counters.results(),
        [("sent", 0), ("failed", 2), ("dropped", 0)]
    );
    assert_eq!(counters.retried.load(Ordering::Relaxed), 4);
}

#[test]
fn a_failure_that_will_be_retried_waits_for_its_last_attempt() {
    let (url, requests) = receiver(|_| Answer::Status(204));
    let (_dir, store) = store();
    let plan = plan_with(webhook_and_ping(&url), Some(2));
    let notifier = Notifier::with_policy(store, "h".into(), &plan, QUICK);
    let subscriber = notifier.subscriber();
    subscriber(&failed("backup", 1));
    let mut last = failed("backup", 2);
    if let RunEvent::Finished { attempt, .. } = &mut last {
        *attempt = 2;
    }
    subscriber(&last);
    notifier.drain();
    let got: Vec<Received> = requests.try_iter().collect();
    assert_eq!(got.len(), 2, "{got:?}");
    let hook = got.iter().find(|r| r.path == "/hook").expect("the webhook");
    assert!(hook.body.contains("\"run_id\":2"), "{}", hook.body);
}

#[test]
fn a_reload_changes_what_is_notified() {
    let (url, requests) = receiver(|_| Answer::Status(200));
    let (_dir, store) = store();
    let plan = plan_with(webhook_and_ping(&url), None);
    let notifier = Notifier::with_policy(store, "h".into(), &plan, QUICK);
    let mut quiet = webhook_and_ping(&url);
    quiet.webhook = None;
    notifier.set_plan(&plan_with(quiet, None));
    notifier.subscriber()(&failed("backup", 1));
    notifier.drain();
    let got: Vec<String> = requests.try_iter().map(|r| r.path).collect();
    assert_eq!(got, ["/ping/abc/fail"]);
}
