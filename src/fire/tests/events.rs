//! The run-event hook: what a firing publishes, in order, and that a
//! subscriber can neither fail a run nor cost anything when absent.

use super::*;

use std::sync::Mutex;

use crate::fire::events::RunEvent;

/// Subscribes a recorder of every event to `ctx`.
fn listen(ctx: &FireContext) -> Arc<Mutex<Vec<RunEvent>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    ctx.events.subscribe(Arc::new(move |e: &RunEvent| {
        sink.lock().unwrap().push(e.clone())
    }));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_publishes_started_then_finished_with_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let seen = listen(&ctx);
    let failing = job("fails", "exit 3");
    let result = fire(&ctx, &failing, &scheduled(&failing, 0)).await.unwrap();
    let run_id = result.run_id().expect("recorded");
    let ok = job("works", "true");
    fire(&ctx, &ok, &scheduled(&ok, 0)).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "{seen:#?}");
    assert_eq!(
        seen[0],
        RunEvent::Started {
            job: "fails".into(),
            run_id,
            trigger: Trigger::Schedule,
            tick: Some(tick(0)),
            started_at: tick(0),
            lateness: Some(Duration::ZERO),
        }
    );
    match &seen[1] {
        RunEvent::Finished {
            job,
            run_id: id,
            status,
            exit_code,
            signal,
            started_at,
            finished_at,
            attempt,
            duration,
            ..
        } => {
            assert_eq!(job, "fails");
            assert_eq!(*id, run_id);
            assert_eq!(*status, RunStatus::Failed);
            assert_eq!((*exit_code, *signal), (Some(3), None));
            assert_eq!((*started_at, *finished_at), (Some(tick(0)), tick(0)));
            assert_eq!(*attempt, 1);
            assert!(duration.is_some());
        }
        other => panic!("expected Finished, got {other:?}"),
    }
    assert!(matches!(&seen[2], RunEvent::Started { job, .. } if job == "works"));
    assert!(matches!(
        &seen[3],
        RunEvent::Finished { job, status: RunStatus::Succeeded, exit_code: Some(0), .. } if job == "works"
    ));
    // As recorded: the event says what the history says.
    let recorded = ctx.store.get(run_id).unwrap().unwrap();
    assert_eq!(recorded.status, RunStatus::Failed);
    assert_eq!(recorded.exit_code, Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_never_starts_publishes_only_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let seen = listen(&ctx);
    // Claimed, then never ready: its command never starts.
    let mut job = job("late", "true");
    let spec = std::sync::Arc::make_mut(&mut job.spec);
    spec.requires = vec![crate::job::Requirement::File(dir.path().join("never"))];
    spec.requires_timeout = Some(std::time::Duration::from_millis(100));
    fire(&ctx, &job, &scheduled(&job, 0)).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(
        matches!(
            seen.as_slice(),
            [RunEvent::Finished {
                status: RunStatus::Failed,
                started_at: None,
                ..
            }]
        ),
        "{seen:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_subscriber_does_not_fail_the_run_or_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    ctx.events
        .subscribe(Arc::new(|_: &RunEvent| panic!("a subscriber's bug")));
    let seen = listen(&ctx);
    let job = job("fine", "true");
    let result = fire(&ctx, &job, &scheduled(&job, 0)).await.unwrap();
    assert_eq!(result.outcome().unwrap().status, RunStatus::Succeeded);
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "the second subscriber heard both"
    );
}

#[test]
fn with_no_subscriber_an_event_is_never_built() {
    let events = RunEvents::default();
    assert!(events.is_empty());
    events.publish(|| panic!("built an event nobody hears"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jittered_run_is_late_from_when_it_was_due_not_from_its_tick() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let seen = listen(&ctx);
    let mut spread = job("spread", "true");
    Arc::make_mut(&mut spread.spec).jitter = Some(Duration::from_secs(30));
    // The clock stands at tick(0); the run is for the tick 10 s before.
    let due = spread.start_of(tick(-10));
    assert!(due > tick(-10), "pick a tick with an offset: {due}");
    fire(&ctx, &spread, &scheduled(&spread, -10)).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let Some(RunEvent::Started {
        lateness, tick: t, ..
    }) = seen.first()
    else {
        panic!("{seen:#?}")
    };
    assert_eq!(*t, Some(tick(-10)), "the event keeps the nominal tick");
    assert_eq!(
        *lateness,
        Some((tick(0) - due).to_std().unwrap_or(Duration::ZERO))
    );
    assert_ne!(*lateness, Some(Duration::from_secs(10)));
}
