//! Retries: the backoff between attempts, how attempts are linked and
//! recorded, and when jobrun stops retrying.

use super::*;

use std::sync::Mutex;

/// Records when each line of each run arrived.
#[derive(Default)]
struct Lines(Mutex<Vec<(RunId, Instant, String)>>);

impl JobOutput for Lines {
    fn line(&self, _: &str, run_id: RunId, _: Stream, line: &[u8]) {
        let text = String::from_utf8_lossy(line).trim_end().to_string();
        self.0.lock().unwrap().push((run_id, Instant::now(), text));
    }
}

fn failing_with_retries(name: &str, command: &str, policy: RetryPolicy) -> Job {
    let mut job = job(name, command);
    std::sync::Arc::make_mut(&mut job.spec).retry = Some(Box::new(policy));
    job
}

#[test]
fn the_backoff_doubles_from_the_first_retry_up_to_the_cap() {
    let policy = RetryPolicy {
        attempts: 8,
        backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(10),
    };
    let delays: Vec<u64> = (2..=8)
        .map(|next| policy.delay_before(next).as_secs())
        .collect();
    assert_eq!(delays, [1, 2, 4, 8, 10, 10, 10]);
    // Attempt 1 is never waited for; asked anyway, it is the plain backoff.
    assert_eq!(policy.delay_before(1), Duration::from_secs(1));
    // A cap below the backoff wins from the first retry on.
    let capped = RetryPolicy {
        max_backoff: Duration::from_millis(500),
        ..policy
    };
    assert_eq!(capped.delay_before(2), Duration::from_millis(500));
    // Far attempts saturate at the cap instead of overflowing.
    let uncapped = RetryPolicy {
        attempts: u32::MAX,
        backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(3600),
    };
    assert_eq!(uncapped.delay_before(40), Duration::from_secs(3600));
    assert_eq!(uncapped.delay_before(u32::MAX), Duration::from_secs(3600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_is_retried_after_each_backoff_as_linked_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let lines = Arc::new(Lines::default());
    let ctx = context_with(dir.path(), Arc::clone(&lines) as Arc<dyn JobOutput>);
    let policy = RetryPolicy {
        attempts: 3,
        backoff: Duration::from_millis(200),
        max_backoff: Duration::from_millis(300),
    };
    let job = failing_with_retries("flaky", "echo \"attempt $JOBRUN_ATTEMPT\"; exit 3", policy);
    let result = fire_with_retries(&ctx, &job, &scheduled(&job, 0))
        .await
        .unwrap();

    let mut runs = runs_of(&ctx, "flaky");
    runs.reverse(); // oldest first
    assert_eq!(runs.len(), 3, "{runs:?}");
    let first = runs[0].id;
    assert_eq!(
        result.run_id(),
        Some(runs[2].id),
        "the last attempt's result"
    );
    assert_eq!(status_of(&result), RunStatus::Failed);
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run.attempt, i as u32 + 1, "{run:?}");
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.exit_code, Some(3));
        assert_eq!(run.tick, Some(tick(0)), "a retry keeps its first tick");
        let (trigger, parent) = if i == 0 {
            ("schedule", None)
        } else {
            ("retry", Some(first))
        };
        assert_eq!((run.trigger.as_str(), run.parent_id), (trigger, parent));
    }

    // Each attempt started no sooner than its backoff after the one before:
    // 200 ms, then 400 ms capped at 300 ms.
    let lines = lines.0.lock().unwrap().clone();
    let texts: Vec<&str> = lines.iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(texts, ["attempt 1", "attempt 2", "attempt 3"]);
    let ids: Vec<RunId> = lines.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(ids, runs.iter().map(|r| r.id).collect::<Vec<_>>());
    for (pair, delay) in lines.windows(2).zip([200, 300]) {
        let gap = pair[1].1 - pair[0].1;
        assert!(
            gap >= Duration::from_millis(delay),
            "attempt {} came {gap:?} after the one before, not {delay} ms",
            pair[1].2
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_ends_the_retries() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let policy = RetryPolicy {
        attempts: 5,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
    };
    let job = failing_with_retries("second-time", "[ \"$JOBRUN_ATTEMPT\" -ge 2 ]", policy);
    let result = fire_with_retries(&ctx, &job, &scheduled(&job, 0))
        .await
        .unwrap();
    assert_eq!(status_of(&result), RunStatus::Succeeded);
    let statuses: Vec<RunStatus> = runs_of(&ctx, "second-time")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [RunStatus::Succeeded, RunStatus::Failed]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retry_is_started_once_jobrun_shuts_down() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let policy = RetryPolicy {
        attempts: 3,
        backoff: Duration::from_secs(600),
        max_backoff: Duration::from_secs(600),
    };
    let job = failing_with_retries("patient", "exit 1", policy);
    let task = {
        let (ctx, job) = (Arc::clone(&ctx), job.clone());
        tokio::spawn(async move { fire_with_retries(&ctx, &job, &scheduled(&job, 0)).await })
    };
    eventually("the first attempt to fail", || {
        runs_of(&ctx, "patient")
            .first()
            .is_some_and(|r| r.status == RunStatus::Failed)
    })
    .await;
    ctx.active.stop_all(StopReason::Shutdown);
    let result = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the backoff ends with the shutdown, not after 10 minutes")
        .unwrap()
        .unwrap();
    assert_eq!(status_of(&result), RunStatus::Failed);
    assert_eq!(runs_of(&ctx, "patient").len(), 1);
}

#[test]
fn only_runs_that_failed_on_their_own_are_retried() {
    let finished = |status, replaced| FireResult::Finished {
        run_id: RunId(1),
        outcome: RunOutcome::ended_early(status, tick(0), None, None),
        replaced,
    };
    for status in [RunStatus::Failed, RunStatus::TimedOut, RunStatus::Killed] {
        assert!(finished(status, false).is_retryable(), "{status:?}");
    }
    // Killed by jobrun's `replace`: the newer run does the work.
    assert!(!finished(RunStatus::Killed, true).is_retryable());
    for status in [RunStatus::Succeeded, RunStatus::Interrupted] {
        assert!(!finished(status, false).is_retryable(), "{status:?}");
    }
    let skipped = FireResult::Skipped {
        run_id: RunId(1),
        reason: "already running".into(),
    };
    assert!(!skipped.is_retryable());
    assert!(!FireResult::Lost.is_retryable());
    assert!(!FireResult::Missed {
        reason: "no descriptors".into()
    }
    .is_retryable());
}
