//! Chaining: the runs a finished run starts (`on_success`, `on_failure`).
//!
//! Pure: a job and a result in, firings out; the daemon and `jobrun run`
//! decide when to fire them.

use super::FireResult;
use crate::job::{Firing, RunStatus, Trigger};
use crate::plan::Job;

/// The runs a finished run starts: its job's `on_success` or `on_failure`
/// jobs, as `chain` firings linked to it. A skipped, lost or interrupted
/// run starts none.
pub fn chained(job: &Job, result: &FireResult) -> Vec<Firing> {
    let FireResult::Finished {
        run_id, outcome, ..
    } = result
    else {
        return Vec::new();
    };
    let links = match outcome.status {
        RunStatus::Succeeded => &job.spec.on_success,
        RunStatus::Failed | RunStatus::TimedOut | RunStatus::Killed => &job.spec.on_failure,
        _ => return Vec::new(),
    };
    links
        .iter()
        .map(|link| Firing {
            parent: Some(*run_id),
            ..Firing::new(link.job.clone(), None, Trigger::Chain)
        })
        .collect()
}
