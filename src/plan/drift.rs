//! Copies of one job whose schedules drifted apart (issue 12): the same
//! command, user and environment in two files, `0 8` in one and `0 9` in the
//! other, is one job that runs at 8 and at 9. That is the merge rule, but
//! rarely what was meant, so it is said by name, with both places.
//!
//! Knows only the merged [`Job`]s; lines of one file that run one command at
//! several times are one intent and are not reported.

use std::collections::BTreeSet;
use std::path::Path;

use crate::job::{Diagnostic, Origin};

use super::Job;

/// One warning per merged job whose files do not all give it the same
/// schedules (expression and zone), naming the first two that differ.
pub(super) fn warn_drifted(jobs: &[Job], diagnostics: &mut Vec<Diagnostic>) {
    for job in jobs.iter().filter(|j| j.is_merged()) {
        // Each file's schedules (indices into `job.schedules`), files in the
        // order of first appearance; few files per job, so a short list.
        let mut files: Vec<(&Path, &Origin, BTreeSet<usize>)> = Vec::new();
        for (k, planned) in job.schedules.iter().enumerate() {
            for origin in &planned.origins {
                match files.iter_mut().find(|(p, _, _)| *p == &*origin.path) {
                    Some((_, _, set)) => {
                        set.insert(k);
                    }
                    None => files.push((&origin.path, origin, BTreeSet::from([k]))),
                }
            }
        }
        let Some(((_, first, mine), rest)) = files.split_first() else {
            continue;
        };
        let Some((_, other, theirs)) = rest.iter().find(|(_, _, s)| s != mine) else {
            continue;
        };
        let describe = |set: &BTreeSet<usize>| {
            set.iter()
                .map(|&k| format!("{:?}", job.schedules[k].schedule.expr().trim()))
                .collect::<Vec<_>>()
                .join(" and ")
        };
        diagnostics.push(Diagnostic::warning(
            Some((*other).clone()),
            format!(
                "job {} is scheduled differently in two places: {first} runs it at {}, \
                 {other} at {}; as one job it runs at all of them (make the copies agree, \
                 or remove one)",
                job.name,
                describe(mine),
                describe(theirs),
            ),
        ));
    }
}
