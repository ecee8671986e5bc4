//! `recovery`: whether a job's run before a given one failed, read from the
//! store's history rather than remembered, so it holds across a restart and
//! across hosts sharing the state (the failed run may have been another
//! daemon's). Read on the notifier's thread, never on the firing path.

use tracing::warn;

use crate::job::{RunId, RunStatus};
use crate::store::{HistoryFilter, RunRecord, Store};

/// How many of the job's latest runs are read to find the one before: a
/// failure further back than this many skipped or interrupted runs is not
/// seen.
const LOOK_BACK: usize = 200;

/// Whether `job`'s last finished run before `run_id` (earlier attempts of
/// the same firing left aside) failed. A history that cannot be read says
/// no: a missing `recovery` is better than a false one.
pub(super) fn previous_failed(store: &Store, job: &str, run_id: RunId) -> bool {
    let filter = HistoryFilter {
        job: Some(job.to_string()),
        limit: Some(LOOK_BACK),
        ..HistoryFilter::default()
    };
    match store.history(&filter) {
        Ok(runs) => failed_before(runs, run_id),
        Err(e) => {
            warn!(job, error = %e, "reading the history for a recovery notification; not told as one");
            false
        }
    }
}

/// [`previous_failed`] on the rows read.
fn failed_before(mut runs: Vec<RunRecord>, run_id: RunId) -> bool {
    runs.sort_by_key(|r| std::cmp::Reverse(r.id.0));
    let Some(this) = runs.iter().find(|r| r.id == run_id) else {
        return false;
    };
    // A retry's attempts are one firing: the first attempt is its parent.
    let first = match (this.trigger.as_str(), this.parent_id) {
        ("retry", Some(parent)) => parent,
        _ => this.id,
    };
    let same_firing =
        |r: &RunRecord| r.id == first || (r.trigger == "retry" && r.parent_id == Some(first));
    runs.iter()
        .filter(|r| r.id.0 < run_id.0 && !same_firing(r))
        .find_map(|r| match r.status {
            RunStatus::Succeeded => Some(false),
            RunStatus::Failed | RunStatus::TimedOut | RunStatus::Killed | RunStatus::Abandoned => {
                Some(true)
            }
            // Not a verdict on the job: look further back.
            RunStatus::Running
            | RunStatus::Skipped
            | RunStatus::Interrupted
            | RunStatus::Missed => None,
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: i64, status: RunStatus, trigger: &str, parent: Option<i64>) -> RunRecord {
        RunRecord {
            id: RunId(id),
            job: "j".into(),
            trigger: trigger.into(),
            tick: None,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            status,
            exit_code: None,
            signal: None,
            pid: None,
            host: "h".into(),
            output_bytes: 0,
            error: None,
            parent_id: parent.map(RunId),
            attempt: 1,
            claimed_at: chrono::DateTime::UNIX_EPOCH,
            owner: "o".into(),
        }
    }

    #[test]
    fn the_last_verdict_before_the_run_decides() {
        use RunStatus::*;
        let s = |id, status| run(id, status, "schedule", None);
        // failed, skipped, interrupted, then this success: a recovery.
        let runs = vec![
            s(1, Failed),
            s(2, Skipped),
            s(3, Interrupted),
            s(4, Succeeded),
        ];
        assert!(failed_before(runs, RunId(4)));
        // A success in between: not one.
        let runs = vec![s(1, Failed), s(2, Succeeded), s(3, Succeeded)];
        assert!(!failed_before(runs, RunId(3)));
        // Newer runs do not count; an unknown run is not a recovery.
        let runs = vec![s(1, Succeeded), s(2, Succeeded), s(3, TimedOut)];
        assert!(!failed_before(runs.clone(), RunId(2)));
        assert!(!failed_before(runs, RunId(99)));
        // The first run of a job recovers from nothing.
        assert!(!failed_before(vec![s(1, Succeeded)], RunId(1)));
        // Rows come newest first from the store; order does not matter.
        let runs = vec![s(5, Succeeded), s(4, Killed), s(3, Succeeded)];
        assert!(failed_before(runs, RunId(5)));
    }

    #[test]
    fn earlier_attempts_of_the_same_firing_are_not_the_failure_before() {
        use RunStatus::*;
        // Run 2 succeeded; its attempt 1 (run 1) failed: no recovery from
        // a failure nobody was told of.
        let runs = vec![
            run(1, Failed, "schedule", None),
            run(2, Succeeded, "retry", Some(1)),
        ];
        assert!(!failed_before(runs, RunId(2)));
        // But a firing that failed on every attempt, then a later success: yes.
        let runs = vec![
            run(1, Failed, "schedule", None),
            run(2, Failed, "retry", Some(1)),
            run(3, Failed, "schedule", None),
            run(4, Succeeded, "retry", Some(3)),
        ];
        assert!(failed_before(runs, RunId(4)));
    }
}
