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
    ctx.active.stop_all(StopReason::Shutdown);
    let job = job("late", "true");
    fire(&ctx, &job, &scheduled(&job, 0)).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(
        matches!(
            seen.as_slice(),
            [RunEvent::Finished {
                status: RunStatus::Interrupted,
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
