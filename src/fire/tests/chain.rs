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
    parent.spec.on_success = vec![link("report"), link("cleanup")];
    parent.spec.on_failure = vec![link("alert")];
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
