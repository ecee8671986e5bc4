//! The job's lock and its holder: a busy `forbid` job skips with the
//! holder's run as its reason, the same tick is never run twice, `replace`
//! stops the older run for the newer, and a `watch:` run waits for the
//! current run instead of being skipped.

use super::*;

use crate::job::Concurrency;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_of_a_forbid_job_still_running_is_skipped_with_the_holders_run() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let go = dir.path().join("go");
    let job = job("slow", &wait_for(&go));
    assert_eq!(job.spec.concurrency, Concurrency::Forbid, "the default");
    let first = spawn_fire(&ctx, &job, scheduled(&job, 0));
    let holder = until_started(&ctx, "slow").await;

    let result = fire(&ctx, &job, &scheduled(&job, 60)).await.unwrap();
    let FireResult::Skipped { run_id, reason } = result else {
        panic!("not skipped: {result:?}");
    };
    let pid = holder.pid.unwrap();
    assert_eq!(
        reason,
        format!(
            "already running (run {}, pid {pid} on h, started {})",
            holder.id,
            tick(0).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    );
    let skipped = ctx.store.get(run_id).unwrap().unwrap();
    assert_eq!(skipped.status, RunStatus::Skipped);
    assert_eq!(skipped.tick, Some(tick(60)));
    assert_eq!(skipped.error.as_deref(), Some(reason.as_str()));
    assert_eq!(skipped.pid, None, "a skipped tick starts nothing");

    std::fs::write(&go, "").unwrap();
    let first = first.await.unwrap().unwrap();
    assert_eq!(status_of(&first), RunStatus::Succeeded, "the holder ran on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tick_a_running_run_holds_is_lost_not_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let go = dir.path().join("go");
    let job = job("once", &wait_for(&go));
    let first = spawn_fire(&ctx, &job, scheduled(&job, 0));
    until_started(&ctx, "once").await;
    // A second daemon (or a catch-up) fires the same tick.
    let again = fire(&ctx, &job, &scheduled(&job, 0)).await.unwrap();
    assert_eq!(again, FireResult::Lost);
    assert_eq!(runs_of(&ctx, "once").len(), 1, "nothing recorded");
    std::fs::write(&go, "").unwrap();
    assert_eq!(
        status_of(&first.await.unwrap().unwrap()),
        RunStatus::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_stops_the_older_run_and_runs_the_newer() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let started = dir.path().join("started");
    let out = dir.path().join("out");
    // The first run finds no marker and sleeps; the second writes `out`.
    let mut job = job(
        "newest-wins",
        &format!(
            "if [ -e '{m}' ]; then echo \"$JOBRUN_RUN_ID\" > '{o}'; else touch '{m}'; exec sleep 30; fi",
            m = started.display(),
            o = out.display()
        ),
    );
    std::sync::Arc::make_mut(&mut job.spec).concurrency = Concurrency::Replace;
    std::sync::Arc::make_mut(&mut job.spec).kill_grace = Some(Duration::from_secs(5));
    let older = spawn_fire(&ctx, &job, scheduled(&job, 0));
    let older_run = until_started(&ctx, "newest-wins").await;
    eventually("the first run to be in its sleep", || started.exists()).await;

    let newer = tokio::time::timeout(
        Duration::from_secs(20),
        fire(&ctx, &job, &scheduled(&job, 60)),
    )
    .await
    .expect("the newer run does not wait out the older one's 30 s")
    .unwrap();
    assert_eq!(status_of(&newer), RunStatus::Succeeded);
    let newer_id = newer.run_id().unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().trim(),
        newer_id.to_string(),
        "the newer run's command ran"
    );

    let older = older.await.unwrap().unwrap();
    let FireResult::Finished {
        run_id,
        replaced,
        outcome: RunOutcome { status, error, .. },
        ..
    } = &older
    else {
        panic!("not finished: {older:?}");
    };
    assert_eq!(*run_id, older_run.id);
    assert_eq!(*status, RunStatus::Killed);
    assert!(*replaced, "{older:?}");
    assert_eq!(
        error.as_deref(),
        Some("replaced by a newer run (concurrency: replace)")
    );
    let record = ctx.store.get(older_run.id).unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Killed);
    assert_eq!(record.signal, Some(libc_sigterm()));
    // Nothing of the older run's process group is left.
    let pid = older_run.pid.unwrap() as i32;
    assert!(nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), None).is_err());
    // A run that was replaced is not retried and starts no `on_failure`.
    assert!(!older.is_retryable());
}

fn libc_sigterm() -> i32 {
    nix::sys::signal::Signal::SIGTERM as i32
}

fn watch_firing(job: &Job, changed: &str) -> Firing {
    Firing {
        changed: vec![PathBuf::from(changed)],
        ..Firing::new(job.name.clone(), None, Trigger::Watch)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_run_of_a_busy_forbid_job_waits_for_the_current_run() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let go = dir.path().join("go");
    let job = job("reloader", &wait_for(&go));
    let current = spawn_fire(&ctx, &job, scheduled(&job, 0));
    until_started(&ctx, "reloader").await;

    let watch = spawn_fire(&ctx, &job, watch_firing(&job, "/etc/app.conf"));
    // Longer than a busy `forbid` tick takes to be skipped, and several
    // polls of the watch wait: the change is neither skipped nor dropped.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!watch.is_finished(), "the watch run did not wait");
    assert_eq!(runs_of(&ctx, "reloader").len(), 1, "nothing recorded yet");

    std::fs::write(&go, "").unwrap();
    assert_eq!(
        status_of(&current.await.unwrap().unwrap()),
        RunStatus::Succeeded
    );
    let watched = tokio::time::timeout(Duration::from_secs(20), watch)
        .await
        .expect("the watch run starts once the current run ends")
        .unwrap()
        .unwrap();
    assert_eq!(status_of(&watched), RunStatus::Succeeded);
    let runs = runs_of(&ctx, "reloader");
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0].trigger.as_str(), runs[0].tick), ("watch", None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_run_still_waiting_when_jobrun_shuts_down_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    // The current run outlives the shutdown's SIGTERM, as a slow job does
    // within its kill grace: the watch run still finds it there.
    let mut job = job("reloader", "trap '' TERM; sleep 30");
    std::sync::Arc::make_mut(&mut job.spec).kill_grace = Some(Duration::from_secs(60));
    let current = spawn_fire(&ctx, &job, scheduled(&job, 0));
    until_started(&ctx, "reloader").await;
    let watch = spawn_fire(&ctx, &job, watch_firing(&job, "/etc/app.conf"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!watch.is_finished(), "the watch run did not wait");

    ctx.active.stop_all(StopReason::Shutdown);
    let watched = tokio::time::timeout(Duration::from_secs(20), watch)
        .await
        .expect("the wait ends with the shutdown, not with the current run")
        .unwrap()
        .unwrap();
    assert_eq!(watched, FireResult::Lost);
    ctx.active.kill_all();
    assert_eq!(
        status_of(&current.await.unwrap().unwrap()),
        RunStatus::Interrupted
    );
    assert_eq!(runs_of(&ctx, "reloader").len(), 1, "no watch run recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_run_whose_changes_a_later_run_handled_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let job = job("reloader", "true");
    // A run that succeeded, started (by the fake clock) at tick(0).
    let done = fire(&ctx, &job, &scheduled(&job, 0)).await.unwrap();
    assert_eq!(status_of(&done), RunStatus::Succeeded);

    let mut handled = watch_firing(&job, "/etc/app.conf");
    handled.changes_seen = Some(tick(-5));
    assert_eq!(fire(&ctx, &job, &handled).await.unwrap(), FireResult::Lost);
    assert_eq!(runs_of(&ctx, "reloader").len(), 1);

    // Changes seen after that run started are run.
    let mut new = watch_firing(&job, "/etc/app.conf");
    new.changes_seen = Some(tick(5));
    let result = fire(&ctx, &job, &new).await.unwrap();
    assert_eq!(status_of(&result), RunStatus::Succeeded);
    assert_eq!(runs_of(&ctx, "reloader").len(), 2);
}
