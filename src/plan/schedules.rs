//! Uniting the schedules of a job as its definitions are merged: the same
//! expression in the same zone, written in several places, is one schedule
//! with every place as its origin (so the same tick is never computed twice).
//!
//! Found by look-up, not by scanning the job's schedules: 20,000 crontab
//! entries that run one command at different times merged into one job by
//! comparing each new schedule with all before it (issue 11: every stage
//! linear). Pure: no clock, no I/O.

use std::collections::{HashMap, HashSet};

use chrono_tz::Tz;

use super::PlannedSchedule;
use crate::job::Origin;
use crate::schedule::Schedule;

/// Where each job's schedules are, by job, normalised expression and zone.
///
/// A job is indexed only when its second schedule comes: most jobs have one
/// and are never merged, and indexing them cost a normalised copy of the
/// expression, a copy of the origin and two hash insertions each, a tenth of
/// a plan's build with 100,000 jobs (issue 12).
#[derive(Default)]
pub(super) struct ScheduleIndex {
    by_key: HashMap<(usize, String, Tz), usize>,
    /// The jobs whose schedules are in `by_key`.
    indexed: HashSet<usize>,
    /// Every (job, schedule, origin) recorded for a schedule of an indexed job.
    origins: HashSet<(usize, usize, Origin)>,
}

impl ScheduleIndex {
    /// Adds `schedule`, written at `origin`, to job `job`'s `out`, uniting it
    /// with an identical one.
    pub(super) fn add(
        &mut self,
        job: usize,
        out: &mut Vec<PlannedSchedule>,
        schedule: Schedule,
        origin: Origin,
    ) {
        if out.is_empty() {
            out.push(PlannedSchedule {
                schedule,
                origins: vec![origin],
            });
            return;
        }
        if self.indexed.insert(job) {
            // Not indexed yet: the job has its first schedule only.
            for (at, planned) in out.iter().enumerate() {
                let key = (
                    job,
                    normalize_expr(planned.schedule.expr()),
                    planned.schedule.timezone(),
                );
                self.by_key.insert(key, at);
            }
        }
        let key = (job, normalize_expr(schedule.expr()), schedule.timezone());
        match self.by_key.get(&key) {
            Some(&at) => {
                // The schedule's first origin is recorded when a second comes.
                if let [first] = out[at].origins.as_slice() {
                    self.origins.insert((job, at, first.clone()));
                }
                if self.origins.insert((job, at, origin.clone())) {
                    out[at].origins.push(origin);
                }
            }
            None => {
                let at = out.len();
                self.by_key.insert(key, at);
                out.push(PlannedSchedule {
                    schedule,
                    origins: vec![origin],
                });
            }
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Expressions normalised on this thread: the work of uniting.
    pub(super) static NORMALIZED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn normalize_expr(expr: &str) -> String {
    #[cfg(test)]
    NORMALIZED.with(|n| n.set(n.get() + 1));
    expr.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}
