//! The cached next tick of the plan, so the loop's many wake-ups do not walk
//! every job each time. It must not know firings, runs or the clock.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::plan::Plan;

/// The plan's next tick after the loop's cursor, kept until a tick comes due
/// or the plan changes. The loop wakes for every finished run (1,000 times
/// after a 1,000-job tick) and moves its cursor to "now" each time; walking
/// every job on each of those wake-ups (twice: the next tick, and what is
/// due) cost a 1,000-job tick about 180 ms of CPU beside its spawns.
#[derive(Default)]
pub(super) struct NextTick {
    plan: Option<Arc<Plan>>,
    cursor: Option<DateTime<Utc>>,
    next: Option<DateTime<Utc>>,
    /// How many times the plan was walked for the next tick (for tests).
    pub(super) walks: u64,
}

impl NextTick {
    /// The earliest tick of the plan strictly after `cursor`.
    pub(super) fn after(
        &mut self,
        plan: &Arc<Plan>,
        cursor: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let same_plan = self.plan.as_ref().is_some_and(|p| Arc::ptr_eq(p, plan));
        if !same_plan || self.cursor != Some(cursor) {
            self.next = plan.next_wakeup(cursor);
            self.plan = Some(Arc::clone(plan));
            self.cursor = Some(cursor);
            self.walks += 1;
        }
        self.next
    }

    /// Each job's latest tick in `(cursor, now]`, as [`Plan::due`]; the
    /// loop's cursor then moves to `now`. When the next tick is after `now`
    /// nothing is due and the plan is not walked: with no tick in between,
    /// the next tick after `now` is the one after `cursor`, so it is kept.
    pub(super) fn due<'p>(
        &mut self,
        plan: &'p Arc<Plan>,
        cursor: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<(&'p crate::plan::Job, DateTime<Utc>)> {
        if self.after(plan, cursor).is_none_or(|next| next > now) {
            self.cursor = Some(now);
            return Vec::new();
        }
        plan.due(cursor, now)
    }
}
