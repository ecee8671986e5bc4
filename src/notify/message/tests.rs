//! Which deliveries each run event gives, and what they carry.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::*;
use crate::job::{NotifyOn, NotifySpec, RunId, RunStatus, Trigger};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("a valid instant")
}

fn spec(on: &[NotifyOn], webhook: bool, ping: bool) -> NotifySpec {
    NotifySpec {
        on: on.to_vec(),
        webhook: webhook.then(|| "https://hooks.example/jobrun".to_string()),
        ping: ping.then(|| "https://hc.example/uuid?x=1".to_string()),
    }
}

fn finished(status: RunStatus, attempt: u32) -> RunEvent {
    RunEvent::Finished {
        job: "backup".into(),
        run_id: RunId(7),
        trigger: Trigger::Schedule,
        tick: Some(at("2026-05-01T03:00:00Z")),
        attempt,
        status,
        exit_code: (status == RunStatus::Failed).then_some(3),
        signal: None,
        duration: Some(Duration::from_millis(1500)),
        error: (status == RunStatus::Failed).then(|| "exit status 3".to_string()),
        started_at: Some(at("2026-05-01T03:00:00.2Z")),
        finished_at: at("2026-05-01T03:00:01.7Z"),
        replaced: false,
    }
}

fn whats(d: &[Delivery]) -> Vec<&str> {
    d.iter().map(|d| d.what.as_str()).collect()
}

const ALL: [NotifyOn; 5] = NotifyOn::ALL;

#[test]
fn a_failure_gives_one_webhook_and_one_fail_ping_with_every_field() {
    let d = deliveries(
        &finished(RunStatus::Failed, 1),
        &spec(&NotifyOn::DEFAULT, true, true),
        1,
        "web-1",
        |_| panic!("a failure asks for no history"),
    );
    assert_eq!(whats(&d), ["failure", "ping/fail"]);
    let Request::Webhook { url, body } = &d[0].request else {
        panic!("{d:?}")
    };
    assert_eq!(url, "https://hooks.example/jobrun");
    let body: serde_json::Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(
        body,
        serde_json::json!({
            "event": "failure", "job": "backup", "run_id": 7, "status": "failed",
            "exit_code": 3, "signal": null, "duration_ms": 1500, "host": "web-1",
            "tick": "2026-05-01T03:00:00Z", "error": "exit status 3",
            "trigger": "schedule", "attempt": 1
        })
    );
    // The ping's suffix goes before its query.
    assert_eq!(
        d[1].request,
        Request::Ping {
            url: "https://hc.example/uuid/fail?x=1".into()
        }
    );
}

#[test]
fn a_failure_that_will_be_retried_tells_nothing_until_its_last_attempt() {
    let s = spec(&ALL, true, true);
    for status in [RunStatus::Failed, RunStatus::TimedOut, RunStatus::Killed] {
        let first = deliveries(&finished(status, 1), &s, 3, "h", |_| false);
        assert!(first.is_empty(), "{status}: {first:?}");
        let last = deliveries(&finished(status, 3), &s, 3, "h", |_| false);
        assert_eq!(whats(&last), ["failure", "ping/fail"], "{status}");
    }
}

#[test]
fn a_success_after_a_failure_is_a_recovery_once() {
    let s = spec(&NotifyOn::DEFAULT, true, true);
    let mut asked = Vec::new();
    let d = deliveries(&finished(RunStatus::Succeeded, 1), &s, 1, "h", |id| {
        asked.push(id);
        true
    });
    assert_eq!(asked, [RunId(7)]);
    assert_eq!(whats(&d), ["recovery", "ping"]);
    assert_eq!(
        d[1].request,
        Request::Ping {
            url: "https://hc.example/uuid?x=1".into()
        }
    );
    // After a success: not a recovery, and `success` is not asked for.
    let d = deliveries(&finished(RunStatus::Succeeded, 1), &s, 1, "h", |_| false);
    assert_eq!(whats(&d), ["ping"]);
    // With both: a recovery is told as `recovery` only, any other as `success`.
    let both = spec(&[NotifyOn::Recovery, NotifyOn::Success], true, false);
    let d = deliveries(&finished(RunStatus::Succeeded, 1), &both, 1, "h", |_| true);
    assert_eq!(whats(&d), ["recovery"]);
    let d = deliveries(&finished(RunStatus::Succeeded, 1), &both, 1, "h", |_| false);
    assert_eq!(whats(&d), ["success"]);
    // Without `recovery` in `on`, the history is not read.
    let success = spec(&[NotifyOn::Success], true, false);
    let d = deliveries(&finished(RunStatus::Succeeded, 1), &success, 1, "h", |_| {
        panic!("not asked")
    });
    assert_eq!(whats(&d), ["success"]);
}

#[test]
fn starts_and_missed_ticks_follow_on_and_pings_follow_every_run() {
    let started = RunEvent::Started {
        job: "backup".into(),
        run_id: RunId(9),
        trigger: Trigger::Schedule,
        tick: Some(at("2026-05-01T03:00:00Z")),
        started_at: at("2026-05-01T03:00:00.1Z"),
        lateness: Some(Duration::from_millis(100)),
    };
    let skipped = RunEvent::Skipped {
        job: "backup".into(),
        run_id: RunId(10),
        trigger: Trigger::Schedule,
        tick: Some(at("2026-05-01T03:01:00Z")),
        reason: "the previous run is still running".into(),
        at: at("2026-05-01T03:01:00Z"),
    };
    let missed = RunEvent::Missed {
        job: "backup".into(),
        trigger: Trigger::Schedule,
        tick: Some(at("2026-05-01T03:02:00Z")),
        reason: "not claimed: database unreachable".into(),
        at: at("2026-05-01T03:02:00Z"),
    };
    let everything = spec(&ALL, true, true);
    assert_eq!(
        whats(&deliveries(&started, &everything, 1, "h", |_| false)),
        ["start", "ping/start"]
    );
    assert_eq!(
        whats(&deliveries(&skipped, &everything, 1, "h", |_| false)),
        ["missed"]
    );
    let d = deliveries(&missed, &everything, 1, "h", |_| false);
    assert_eq!(whats(&d), ["missed"]);
    let Request::Webhook { body, .. } = &d[0].request else {
        panic!("{d:?}")
    };
    let body: serde_json::Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(body["run_id"], serde_json::Value::Null);
    assert_eq!(body["status"], "missed");
    assert_eq!(body["error"], "not claimed: database unreachable");
    // The defaults (failure, recovery) say nothing of these; the ping still
    // hears the start.
    let defaults = spec(&NotifyOn::DEFAULT, true, true);
    assert_eq!(
        whats(&deliveries(&started, &defaults, 1, "h", |_| false)),
        ["ping/start"]
    );
    assert!(deliveries(&skipped, &defaults, 1, "h", |_| false).is_empty());
}

#[test]
fn runs_that_failed_through_no_fault_of_the_job_tell_nothing() {
    let s = spec(&ALL, true, true);
    let interrupted = deliveries(&finished(RunStatus::Interrupted, 1), &s, 1, "h", |_| false);
    assert!(interrupted.is_empty(), "{interrupted:?}");
    let mut replaced = finished(RunStatus::Killed, 1);
    if let RunEvent::Finished { replaced: r, .. } = &mut replaced {
        *r = true;
    }
    assert!(deliveries(&replaced, &s, 1, "h", |_| false).is_empty());
}

#[test]
fn ping_urls_gain_their_suffix_on_the_path() {
    assert_eq!(
        ping_url("https://hc.example/u", "/start"),
        "https://hc.example/u/start"
    );
    assert_eq!(
        ping_url("https://hc.example/u/", "/fail"),
        "https://hc.example/u/fail"
    );
    assert_eq!(
        ping_url("https://hc.example/u?rid=1#x", "/start"),
        "https://hc.example/u/start?rid=1#x"
    );
    assert_eq!(
        ping_url("https://hc.example/u/", ""),
        "https://hc.example/u/"
    );
}
