//! Chaining: which jobs a finished run starts, linked to it.

use super::*;

use crate::job::ChainLink;

fn link(name: &str) -> ChainLink {
    ChainLink {
        job: name.into(),
        origin: Origin::new("jobs.yaml", 9),
    }
}

#[test]
fn a_run_starts_its_success_or_failure_jobs_linked_to_it() {
    let mut parent = job("parent", "true");
    std::sync::Arc::make_mut(&mut parent.spec).on_success = vec![link("report"), link("cleanup")];
    std::sync::Arc::make_mut(&mut parent.spec).on_failure = vec![link("alert")];
    let finished = |status| FireResult::Finished {
        run_id: RunId(12),
        outcome: RunOutcome::ended_early(status, tick(0), None, None),
        replaced: false,
    };
    let names = |result: &FireResult| -> Vec<String> {
        chained(&parent, result)
            .into_iter()
            .map(|f| f.job)
            .collect()
    };
    assert_eq!(
        names(&finished(RunStatus::Succeeded)),
        ["report", "cleanup"]
    );
    for status in [RunStatus::Failed, RunStatus::TimedOut, RunStatus::Killed] {
        assert_eq!(names(&finished(status)), ["alert"], "{status:?}");
    }
    assert!(names(&finished(RunStatus::Interrupted)).is_empty());
    let skipped = FireResult::Skipped {
        run_id: RunId(12),
        reason: "already running".into(),
    };
    assert!(names(&skipped).is_empty());
    assert!(names(&FireResult::Lost).is_empty());

    let firing = chained(&parent, &finished(RunStatus::Succeeded)).remove(0);
    assert_eq!(firing.trigger, Trigger::Chain);
    assert_eq!(firing.parent, Some(RunId(12)));
    assert_eq!((firing.tick, firing.attempt), (None, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_and_chain_gives_every_chained_firing_at_once_and_none_when_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let mut parent = job("parent", "true");
    std::sync::Arc::make_mut(&mut parent.spec).on_success = vec![link("b"), link("c")];
    let firing = Firing::new("parent", None, Trigger::Manual);
    let (result, next) = fire_and_chain(&ctx, &parent, &firing).await.unwrap();
    assert_eq!(status_of(&result), RunStatus::Succeeded);
    let names: Vec<&str> = next.iter().map(|f| f.job.as_str()).collect();
    assert_eq!(names, ["b", "c"], "both, to be started together");
    assert!(next.iter().all(|f| f.parent == result.run_id()));

    // A stopping process runs what it was given, but starts no chain.
    ctx.active.stop_all(StopReason::Shutdown);
    let (_, next) = fire_and_chain(&ctx, &parent, &firing).await.unwrap();
    assert!(next.is_empty());
}

#[test]
fn only_a_job_in_the_plan_and_enabled_is_runnable() {
    let yaml = |name: &str, enabled: bool| {
        let mut j = job(name, "true").spec;
        std::sync::Arc::make_mut(&mut j).enabled = enabled;
        j
    };
    let (plan, _) = crate::plan::Plan::build(
        crate::job::SourceSet {
            jobs: vec![yaml("on", true), yaml("off", false)],
            ..Default::default()
        },
        chrono_tz::UTC,
    );
    let runnable_name = |name: &str| {
        runnable(&plan, &Firing::new(name, None, Trigger::Chain)).map(|j| j.name.clone())
    };
    assert_eq!(runnable_name("on").as_deref(), Some("on"));
    assert_eq!(runnable_name("off"), None, "disabled");
    assert_eq!(runnable_name("gone"), None, "not in the plan (any more)");
}
