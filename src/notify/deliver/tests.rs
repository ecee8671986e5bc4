//! The delivery thread's retries and its last round at a stop.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;
use crate::job::{NotifyOn, NotifySpec};
use crate::notify::tests::{failed, plan_with, receiver, store, Answer};
use crate::notify::Notifier;

#[test]
fn backoff_doubles_from_the_first_wait() {
    let s = Duration::from_secs(1);
    assert_eq!(
        (1..=4).map(|a| backoff(s, a)).collect::<Vec<_>>(),
        [1, 2, 4, 8].map(Duration::from_secs)
    );
    assert_eq!(backoff(s, u32::MAX), Duration::from_secs(1 << 16));
}

#[test]
fn logs_name_the_host_never_the_path_or_credentials() {
    assert_eq!(
        origin("https://hc-ping.com/5d0c-secret"),
        "https://hc-ping.com"
    );
    assert_eq!(
        origin("http://127.0.0.1:9/hook?token=x"),
        "http://127.0.0.1:9"
    );
    assert_eq!(origin("https://user:pw@hooks.example/x"), "hooks.example");
}

#[test]
fn a_stop_tries_every_pending_retry_once_more_at_once() {
    let (url, requests) = receiver(|_| Answer::Status(503));
    let (_dir, store) = store();
    let spec = NotifySpec {
        on: vec![NotifyOn::Failure],
        webhook: Some(format!("{url}/hook")),
        ping: None,
    };
    let plan = plan_with(spec, None);
    // A retry an hour away: only the stop can make it happen now.
    let policy = Policy {
        timeout: Duration::from_secs(5),
        attempts: 3,
        backoff: Duration::from_secs(3600),
    };
    let notifier = Notifier::with_policy(store, "h".into(), &plan, policy);
    notifier.subscriber()(&failed("backup", 1));
    requests
        .recv_timeout(Duration::from_secs(10))
        .expect("the first try");
    notifier.drain();
    assert_eq!(requests.try_iter().count(), 1, "one more try at the stop");
    let counters = notifier.counters();
    assert_eq!(counters.failed.load(Ordering::Relaxed), 1);
    assert_eq!(counters.retried.load(Ordering::Relaxed), 1);
}
