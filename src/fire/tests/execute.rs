//! Executing a claimed run: how each way a run ends is recorded, and the
//! runs jobrun ends itself (`end_early`): not started at shutdown, not
//! ready, a `signal:` job with no process.

use super::*;

use crate::job::{IfNotRunning, SignalSpec};

/// A claimed run of `job` (tick 0), as `fire` claims it before executing.
async fn claimed(ctx: &FireContext, job: &Job) -> RunId {
    let claim = new_run(ctx, job, &scheduled(job, 0), RunStatus::Running, None);
    ctx.recorder.claim(claim).await.unwrap().expect("claimed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_early_records_the_reason_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let job = job("early", "true");
    let run_id = claimed(&ctx, &job).await;
    let result = record::end_early(
        &ctx,
        run_id,
        RunStatus::Failed,
        "not ready: db:5432 refused".into(),
        Some(1234),
    )
    .await
    .unwrap();
    assert_eq!(
        result,
        FireResult::Finished {
            run_id,
            outcome: RunOutcome::ended_early(
                RunStatus::Failed,
                tick(0),
                Some(1234),
                Some("not ready: db:5432 refused".into()),
            ),
            replaced: false,
        }
    );
    let run = ctx.store.get(run_id).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("not ready: db:5432 refused"));
    assert_eq!(run.duration_ms, Some(1234));
    assert_eq!(run.finished_at, Some(tick(0)), "the context's clock");
    assert_eq!((run.exit_code, run.signal, run.pid), (None, None, None));
    assert_eq!(run.output_bytes, 0);
    assert!(ctx.store.output_tail(run_id).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_still_unclaimed_as_jobrun_shuts_down_claims_nothing_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let marker = dir.path().join("ran");
    let job = job("late", &format!("touch '{}'", marker.display()));
    ctx.active.stop_all(StopReason::Shutdown);
    let result = fire(&ctx, &job, &scheduled(&job, 0)).await.unwrap();
    // No row says the tick ran or was cut short: the next start's catch-up
    // sees it as downtime (a backlog behind a slow store is not claimed and
    // recorded `interrupted` by the thousand).
    assert_eq!(result, FireResult::Lost);
    assert!(!marker.exists(), "the command ran");
    assert!(runs_of(&ctx, "late").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_requirement_never_holds_fails_not_ready_without_running() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let marker = dir.path().join("ran");
    let missing = dir.path().join("never");
    let mut job = job("needs-file", &format!("touch '{}'", marker.display()));
    std::sync::Arc::make_mut(&mut job.spec).requires = vec![Requirement::File(missing.clone())];
    std::sync::Arc::make_mut(&mut job.spec).requires_timeout = Some(Duration::from_millis(100));
    let result = fire(&ctx, &job, &scheduled(&job, 0)).await.unwrap();
    let FireResult::Finished {
        outcome: RunOutcome { status, error, .. },
        ..
    } = &result
    else {
        panic!("not finished: {result:?}");
    };
    assert_eq!(*status, RunStatus::Failed);
    let error = error.as_deref().unwrap();
    assert!(error.starts_with("not ready: "), "{error}");
    assert!(error.contains(&*missing.to_string_lossy()), "{error}");
    assert!(!marker.exists(), "the command ran");
    let run = &runs_of(&ctx, "needs-file")[0];
    assert_eq!((run.status, run.pid), (RunStatus::Failed, None));
    assert_eq!(run.error.as_deref(), Some(error));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requirement_that_holds_lets_the_command_run() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let marker = dir.path().join("ran");
    let mut job = job("needs-command", &format!("touch '{}'", marker.display()));
    std::sync::Arc::make_mut(&mut job.spec).requires =
        vec![Requirement::Command("test -n \"$JOBRUN_JOB\"".into())];
    let result = fire(&ctx, &job, &scheduled(&job, 0)).await.unwrap();
    assert_eq!(status_of(&result), RunStatus::Succeeded);
    assert!(marker.exists(), "the command did not run");
}

fn signal_job(name: &str, pidfile: PathBuf, if_not_running: IfNotRunning) -> Job {
    let mut job = job(name, "");
    std::sync::Arc::make_mut(&mut job.spec).command = Command::Signal(Box::new(SignalSpec {
        pidfile,
        signal: "HUP".into(),
        process: None,
        if_not_running,
    }));
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_job_with_no_process_is_skipped_or_failed_as_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let pidfile = dir.path().join("app.pid");

    let skip = signal_job("hup-skip", pidfile.clone(), IfNotRunning::Skip);
    let result = fire(&ctx, &skip, &scheduled(&skip, 0)).await.unwrap();
    let FireResult::Skipped { run_id, reason } = &result else {
        panic!("not skipped: {result:?}");
    };
    assert!(reason.starts_with("not running: "), "{reason}");
    let run = ctx.store.get(*run_id).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Skipped);
    assert_eq!(run.error.as_deref(), Some(reason.as_str()));

    let fail = signal_job("hup-fail", pidfile, IfNotRunning::Fail);
    let result = fire(&ctx, &fail, &scheduled(&fail, 0)).await.unwrap();
    let FireResult::Finished {
        outcome: RunOutcome { status, error, .. },
        ..
    } = &result
    else {
        panic!("not finished: {result:?}");
    };
    assert_eq!(*status, RunStatus::Failed);
    assert!(error.as_deref().unwrap().starts_with("not running: "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_job_signals_the_process_of_its_pidfile() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    // A process of our own that notes the HUP it gets, and says when its
    // trap is in place.
    let (ready, got) = (dir.path().join("ready"), dir.path().join("got-hup"));
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap 'touch \"{}\"; exit 0' HUP; touch \"{}\"; while :; do sleep 0.02; done",
            got.display(),
            ready.display()
        ))
        .spawn()
        .unwrap();
    eventually("the trap to be in place", || ready.exists()).await;
    let pidfile = dir.path().join("app.pid");
    std::fs::write(&pidfile, format!("{}\n", child.id())).unwrap();
    let job = signal_job("hup", pidfile, IfNotRunning::Fail);
    let result = fire(&ctx, &job, &scheduled(&job, 0)).await.unwrap();
    assert_eq!(status_of(&result), RunStatus::Succeeded, "{result:?}");
    assert!(child.wait().unwrap().success(), "not ended by its HUP trap");
    assert!(got.exists(), "the process did not get the HUP");
    let run_id = result.run_id().unwrap();
    let run = ctx.store.get(run_id).unwrap().unwrap();
    assert_eq!(run.pid, None, "a signal job has no process of its own");
    let tail = String::from_utf8(ctx.store.output_tail(run_id).unwrap()).unwrap();
    assert!(tail.contains(&child.id().to_string()), "{tail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_way_a_command_ends_is_recorded_as_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let failed = job("exits-7", "exit 7");
    let result = fire(&ctx, &failed, &scheduled(&failed, 0)).await.unwrap();
    let FireResult::Finished {
        outcome:
            RunOutcome {
                status,
                exit_code,
                signal,
                error,
                ..
            },
        ..
    } = result
    else {
        panic!("not finished: {result:?}");
    };
    assert_eq!(
        (status, exit_code, signal, error),
        (RunStatus::Failed, Some(7), None, None)
    );

    let killed = job("kills-itself", "kill -KILL $$");
    let result = fire(&ctx, &killed, &scheduled(&killed, 0)).await.unwrap();
    let FireResult::Finished {
        outcome: RunOutcome { status, signal, .. },
        ..
    } = result
    else {
        panic!("not finished: {result:?}");
    };
    assert_eq!((status, signal), (RunStatus::Killed, Some(9)));

    let mut slow = job("too-slow", "sleep 30");
    std::sync::Arc::make_mut(&mut slow.spec).timeout = Some(Duration::from_millis(200));
    std::sync::Arc::make_mut(&mut slow.spec).kill_grace = Some(Duration::from_secs(5));
    let result = fire(&ctx, &slow, &scheduled(&slow, 0)).await.unwrap();
    let FireResult::Finished {
        outcome: RunOutcome { status, error, .. },
        ..
    } = result
    else {
        panic!("not finished: {result:?}");
    };
    assert_eq!(status, RunStatus::TimedOut);
    assert_eq!(error.as_deref(), Some("timed out after 200ms"));
    let run = &runs_of(&ctx, "too-slow")[0];
    assert_eq!(run.status, RunStatus::TimedOut);
    assert!(run.pid.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outcome_a_firing_returns_is_the_one_the_store_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let job = job("shape", "echo one; echo two >&2; exit 3");
    let result = fire(&ctx, &job, &scheduled(&job, 0)).await.unwrap();
    let (Some(run_id), Some(outcome)) = (result.run_id(), result.outcome()) else {
        panic!("not finished: {result:?}");
    };
    let run = ctx.store.get(run_id).unwrap().unwrap();
    assert_eq!(
        (outcome.status, outcome.exit_code, outcome.signal),
        (RunStatus::Failed, Some(3), None)
    );
    assert_eq!(
        (
            run.status,
            run.exit_code,
            run.signal,
            run.finished_at,
            run.duration_ms,
            run.output_bytes,
            run.error.as_ref(),
        ),
        (
            outcome.status,
            outcome.exit_code,
            outcome.signal,
            Some(outcome.finished_at),
            outcome.duration_ms,
            outcome.output_bytes,
            outcome.error.as_ref(),
        )
    );
    assert_eq!(
        ctx.store.output_tail(run_id).unwrap(),
        &*outcome.output_tail
    );
    assert_eq!(outcome.output_bytes, 8);
}
