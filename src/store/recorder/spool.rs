//! What the recorder could not write yet: missed ticks and run outcomes kept
//! in memory while the store refuses writes (disk full, read-only), written
//! as soon as it accepts them again, so no tick ends without a row (issue
//! 11; SPEC 7's "bounded local spool").
//!
//! Bounded: the last [`PER_JOB`] missed ticks of each job (older ones are
//! counted, and the count is written into the oldest kept row's error) and
//! [`MAX_FINISHES`] outcomes (a run whose outcome is dropped stays
//! `running`, and the next daemon start marks it abandoned).
//!
//! Knows the store and the recorder's owned rows; nothing of jobs or locks.

use std::collections::{BTreeMap, VecDeque};

use tracing::{info, warn};

use crate::job::{RunId, RunOutcome};
use crate::store::{NewRun, Store, StoreError};

/// Missed ticks kept per job while the store refuses writes.
pub const PER_JOB: usize = 64;
/// Outcomes kept while the store refuses writes.
pub const MAX_FINISHES: usize = 4096;

#[derive(Default)]
pub(super) struct Spool {
    missed: BTreeMap<String, JobMissed>,
    finishes: VecDeque<(RunId, RunOutcome)>,
    dropped_finishes: u64,
}

#[derive(Default)]
struct JobMissed {
    kept: VecDeque<NewRun>,
    /// Older missed ticks not kept.
    dropped: u64,
}

impl Spool {
    pub(super) fn is_empty(&self) -> bool {
        self.missed.is_empty() && self.finishes.is_empty()
    }

    pub(super) fn keep_missed(&mut self, claim: NewRun) {
        let job = self.missed.entry(claim.job.clone()).or_default();
        if job.kept.len() >= PER_JOB {
            job.kept.pop_front();
            job.dropped += 1;
        }
        job.kept.push_back(claim);
    }

    pub(super) fn keep_finish(&mut self, id: RunId, outcome: RunOutcome) {
        if self.finishes.len() >= MAX_FINISHES {
            self.finishes.pop_front();
            self.dropped_finishes += 1;
        }
        self.finishes.push_back((id, outcome));
    }

    /// Writes everything kept, in one transaction per kind; on failure keeps
    /// it all for the next try.
    pub(super) fn flush(&mut self, store: &Store) -> Result<(), StoreError> {
        if !self.finishes.is_empty() {
            store.finish_many(self.finishes.make_contiguous())?;
            info!(
                runs = self.finishes.len(),
                "recorded outcomes kept while the store refused writes"
            );
            self.finishes.clear();
            if self.dropped_finishes > 0 {
                warn!(
                    runs = std::mem::take(&mut self.dropped_finishes),
                    "outcomes dropped while the store refused writes; those runs are marked abandoned at the next start"
                );
            }
        }
        if self.missed.is_empty() {
            return Ok(());
        }
        let mut claims: Vec<NewRun> = Vec::new();
        for job in self.missed.values() {
            for (i, claim) in job.kept.iter().enumerate() {
                let mut claim = claim.clone();
                if i == 0 && job.dropped > 0 {
                    claim.error = Some(format!(
                        "{} ({} earlier missed ticks of this job were not kept while the store refused writes)",
                        claim.error.as_deref().unwrap_or("missed"),
                        job.dropped
                    ));
                }
                claims.push(claim);
            }
        }
        store.claim_and_start_many(&claims, &[])?;
        info!(
            ticks = claims.len(),
            "recorded the ticks missed while the store refused writes"
        );
        self.missed.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{RunStatus, Trigger};
    use chrono::DateTime;

    fn missed(job: &str, s: i64) -> NewRun {
        let at = DateTime::from_timestamp(1_780_000_000 + s, 0).unwrap();
        NewRun {
            job: job.into(),
            trigger: Trigger::Schedule,
            tick: Some(at),
            status: RunStatus::Missed,
            at,
            host: "h".into(),
            owner: "o".into(),
            error: Some("not claimed: disk full".into()),
            parent_id: None,
            attempt: 1,
        }
    }

    #[test]
    fn the_spool_keeps_the_last_ticks_of_each_job_and_counts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut spool = Spool::default();
        for s in 0..1000 {
            spool.keep_missed(missed("busy", s));
        }
        spool.keep_missed(missed("quiet", 0));
        store.refuse_writes_for_tests(true);
        assert!(spool.flush(&store).is_err());
        assert!(!spool.is_empty(), "kept for the next try");
        store.refuse_writes_for_tests(false);
        spool.flush(&store).unwrap();
        assert!(spool.is_empty());
        let busy = store
            .history(&crate::store::HistoryFilter {
                job: Some("busy".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(busy.len(), PER_JOB);
        let oldest = busy.last().unwrap();
        assert_eq!(
            oldest.tick,
            DateTime::from_timestamp(1_780_000_000 + 1000 - PER_JOB as i64, 0)
        );
        let dropped = 1000 - PER_JOB;
        assert!(
            oldest
                .error
                .as_deref()
                .unwrap()
                .contains(&format!("({dropped} earlier missed ticks")),
            "{oldest:?}"
        );
        assert!(busy.iter().all(|r| r.status == RunStatus::Missed));
    }
}
