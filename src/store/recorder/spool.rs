//! What the recorder could not write yet: missed ticks and run outcomes the
//! store refused (a full disk, a read-only database, a database out of
//! reach), kept and written as soon as it accepts them again, so no tick
//! ends without a row (issue 11; issue 14's "bounded local spool").
//!
//! Kept in memory and, ahead of that, on disk (`spool_file`) in the state
//! directory's `spool/`: an item is fsync'd there before the recorder counts
//! it as kept, so it outlives the process. The next recorder to start in the
//! state directory takes over the files of processes that ended and writes
//! what they held: an outcome only if its run still reads `running` (a run
//! a peer or the next start already marked `abandoned` is not overwritten),
//! a missed tick through the claim (a tick another process ran is not also
//! recorded missed). Where the directory cannot be written (a full disk:
//! the same one as a SQLite store's), what cannot be put on disk is kept in
//! memory only, with a warning, and lost if the process exits.
//!
//! Where the promise stops: a missed tick is queued for the recorder thread
//! without waiting (its firing has nothing to wait for), so a process killed
//! in the instant before the thread takes it loses it; and a crash between
//! writing kept rows to the store and rewriting the file makes the next
//! start offer them again, which is harmless for outcomes (no longer
//! `running`) and ticks (already claimed) but records a missed run without
//! a tick (a manual run) twice.
//!
//! Bounded: the last [`PER_JOB`] missed ticks of each job (older ones are
//! counted, and the count is written into the oldest kept row's error) and
//! the last [`MAX_FINISHES`] outcomes (an older outcome is dropped with a
//! warning: its run stays `running`, and the next start marks it
//! abandoned). The file holds at most about twice what is kept: past that
//! it is rewritten to what is kept.
//!
//! Knows the store and the recorder's owned rows; nothing of jobs or locks.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use tracing::{info, warn};

use super::spool_file::{Entry, SpoolFile};
use crate::job::{RunId, RunOutcome};
use crate::store::{NewRun, Store, StoreError};

/// Missed ticks kept per job while the store refuses writes.
pub const PER_JOB: usize = 64;
/// Outcomes kept while the store refuses writes.
pub const MAX_FINISHES: usize = 4096;
/// Kept outcomes written in one transaction at most (bounds one commit:
/// each may carry a 64 KiB output tail).
const FLUSH_BATCH: usize = 256;
/// Entries the file may hold beyond twice what is kept before it is
/// rewritten (what the bound dropped stays in the file until then).
const SLACK: usize = 64;

#[derive(Default)]
pub(super) struct Spool {
    missed: BTreeMap<String, JobMissed>,
    finishes: VecDeque<(RunId, RunOutcome)>,
    dropped_finishes: u64,
    /// `None`: in memory only (no directory given, or it cannot be used).
    disk: Option<SpoolFile>,
    /// Something kept is not in the file (a write to it failed).
    behind: bool,
}

#[derive(Default)]
struct JobMissed {
    kept: VecDeque<NewRun>,
    /// Older missed ticks not kept.
    dropped: u64,
}

impl Spool {
    /// The spool of a recorder whose state directory is `state_dir`: its file
    /// in `spool/`, with what processes that ended left there taken over
    /// and offered to `store` at once. A directory that cannot be used
    /// leaves the spool in memory, with a warning.
    pub(super) fn open(state_dir: &Path, store: &Store) -> Spool {
        let dir = state_dir.join("spool");
        let (file, entries) = match SpoolFile::open(&dir) {
            Ok(opened) => opened,
            Err(e) => {
                warn!(dir = %dir.display(), error = %e,
                    "the spool directory cannot be used; what the store refuses is kept in memory only, and lost if jobrun exits");
                return Spool::default();
            }
        };
        let mut spool = Spool {
            disk: Some(file),
            ..Spool::default()
        };
        if entries.is_empty() {
            spool.release_taken();
            return spool;
        }
        for entry in entries {
            spool.load(entry);
        }
        info!(
            outcomes = spool.finishes.len(),
            missed = spool.missed.values().map(|j| j.kept.len()).sum::<usize>(),
            dir = %dir.display(),
            "writing what an earlier jobrun kept while the store refused writes"
        );
        // Written to the store if it takes it; what it refuses is made safe
        // in this process's file before the files taken over go.
        if let Err(e) = spool.flush(store) {
            warn!(error = %e, "the store refuses writes; what an earlier jobrun kept stays kept");
        }
        if spool
            .disk
            .as_ref()
            .is_some_and(|d| d.frames() != spool.kept())
        {
            spool.sync_file();
        }
        if !spool.behind {
            spool.release_taken();
        }
        spool
    }

    pub(super) fn is_empty(&self) -> bool {
        self.missed.is_empty() && self.finishes.is_empty()
    }

    /// Keeps missed ticks: on disk first, then in memory.
    pub(super) fn keep_missed(&mut self, claims: Vec<NewRun>) {
        let entries: Vec<Entry> = claims
            .iter()
            .map(|claim| Entry::Missed {
                claim: claim.clone(),
            })
            .collect();
        self.write_ahead(&entries);
        for claim in claims {
            self.hold_missed(claim);
        }
        self.compact_if_large();
    }

    /// Keeps outcomes: on disk first, then in memory.
    pub(super) fn keep_finishes(&mut self, finishes: Vec<(RunId, RunOutcome)>) {
        let entries: Vec<Entry> = finishes
            .iter()
            .map(|(run, outcome)| Entry::Finish {
                run: *run,
                outcome: outcome.clone(),
            })
            .collect();
        self.write_ahead(&entries);
        for (id, outcome) in finishes {
            self.hold_finish(id, outcome);
        }
        self.compact_if_large();
    }

    /// Writes everything kept: each outcome only if its run still reads
    /// `running`, then the missed ticks through their claims in one
    /// transaction. What is written leaves the spool (and its file); on an
    /// error the rest is kept for the next try.
    pub(super) fn flush(&mut self, store: &Store) -> Result<(), StoreError> {
        let before = self.kept();
        let result = self.write_to(store);
        if self.kept() != before || self.behind {
            self.sync_file();
        }
        result
    }

    /// The recorder's end: an empty spool's file is removed; what is still
    /// kept stays in it for the next jobrun that starts in the directory.
    pub(super) fn close(mut self) {
        let Some(disk) = self.disk.take() else {
            if !self.is_empty() {
                error_lost(self.kept());
            }
            return;
        };
        if self.is_empty() && !self.behind {
            disk.remove();
        } else if self.behind {
            error_lost(self.kept());
        } else {
            warn!(
                entries = self.kept(),
                file = %disk.path().display(),
                "what the store refused is kept on disk; the next jobrun to start with this state directory writes it"
            );
        }
    }

    fn write_to(&mut self, store: &Store) -> Result<(), StoreError> {
        let (mut written, mut overtaken) = (0, 0);
        while !self.finishes.is_empty() {
            let take = self.finishes.len().min(FLUSH_BATCH);
            let batch: Vec<(RunId, RunOutcome)> = self.finishes.range(..take).cloned().collect();
            let recorded = match store.finish_many_if_running(&batch) {
                Ok(recorded) => recorded,
                Err(e) => {
                    log_written(written);
                    return Err(e);
                }
            };
            for ((id, outcome), recorded) in batch.iter().zip(recorded) {
                if recorded {
                    written += 1;
                } else {
                    overtaken += 1;
                    warn!(run_id = id.0, status = outcome.status.as_str(),
                        "a kept outcome is not written: its run no longer reads `running` (marked abandoned meanwhile)");
                }
            }
            self.finishes.drain(..take);
        }
        log_written(written);
        if written + overtaken > 0 && self.dropped_finishes > 0 {
            warn!(
                runs = std::mem::take(&mut self.dropped_finishes),
                "outcomes dropped while the store refused writes; those runs are marked abandoned at the next start"
            );
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

    fn hold_missed(&mut self, claim: NewRun) {
        let job = self.missed.entry(claim.job.clone()).or_default();
        if job.kept.len() >= PER_JOB {
            job.kept.pop_front();
            job.dropped += 1;
        }
        job.kept.push_back(claim);
    }

    fn hold_finish(&mut self, id: RunId, outcome: RunOutcome) {
        if self.finishes.len() >= MAX_FINISHES {
            if let Some((dropped, _)) = self.finishes.pop_front() {
                warn!(run_id = dropped.0, kept = MAX_FINISHES,
                    "too many outcomes kept while the store refuses writes; the oldest is dropped (its run will be marked abandoned)");
            }
            self.dropped_finishes += 1;
        }
        self.finishes.push_back((id, outcome));
    }

    /// An entry of a file taken over, into memory (the bounds apply).
    fn load(&mut self, entry: Entry) {
        match entry {
            Entry::Finish { run, outcome } => self.hold_finish(run, outcome),
            Entry::Missed { claim } => self.hold_missed(claim),
            Entry::Dropped { job: None, count } => self.dropped_finishes += count,
            Entry::Dropped {
                job: Some(job),
                count,
            } => self.missed.entry(job).or_default().dropped += count,
        }
    }

    /// What is kept, as the file holds it.
    fn entries(&self) -> Vec<Entry> {
        let mut entries: Vec<Entry> = self
            .finishes
            .iter()
            .map(|(run, outcome)| Entry::Finish {
                run: *run,
                outcome: outcome.clone(),
            })
            .collect();
        if self.dropped_finishes > 0 && !self.finishes.is_empty() {
            entries.push(Entry::Dropped {
                job: None,
                count: self.dropped_finishes,
            });
        }
        for (name, job) in &self.missed {
            if job.dropped > 0 {
                entries.push(Entry::Dropped {
                    job: Some(name.clone()),
                    count: job.dropped,
                });
            }
            entries.extend(job.kept.iter().map(|claim| Entry::Missed {
                claim: claim.clone(),
            }));
        }
        entries
    }

    /// How many entries what is kept makes.
    fn kept(&self) -> usize {
        self.finishes.len()
            + usize::from(self.dropped_finishes > 0 && !self.finishes.is_empty())
            + self
                .missed
                .values()
                .map(|j| j.kept.len() + usize::from(j.dropped > 0))
                .sum::<usize>()
    }

    fn write_ahead(&mut self, entries: &[Entry]) {
        let Some(disk) = &mut self.disk else {
            return;
        };
        match disk.append(entries) {
            Ok(()) => {}
            Err(e) => {
                if !self.behind {
                    warn!(file = %disk.path().display(), error = %e,
                        "cannot write to the spool file; what the store refuses is kept in memory only until it can, and lost if jobrun exits");
                }
                self.behind = true;
            }
        }
    }

    /// Rewrites the file when what the bounds dropped makes it large.
    fn compact_if_large(&mut self) {
        let limit = 2 * self.kept() + SLACK;
        if self.disk.as_ref().is_some_and(|d| d.frames() > limit) {
            self.sync_file();
        }
    }

    /// Makes the file hold exactly what is kept.
    fn sync_file(&mut self) {
        let entries = self.entries();
        let Some(disk) = &mut self.disk else {
            return;
        };
        match disk.rewrite(&entries) {
            Ok(()) => {
                if self.behind {
                    info!(file = %disk.path().display(), "the spool file holds what is kept again");
                }
                self.behind = false;
                // What files taken over held is in this one now.
                disk.release_taken();
            }
            Err(e) => {
                if !self.behind {
                    warn!(file = %disk.path().display(), error = %e,
                        "cannot rewrite the spool file; what the store refuses is kept in memory only until it can, and lost if jobrun exits");
                }
                self.behind = true;
            }
        }
    }

    /// Outcomes kept, outcomes dropped, missed ticks kept and dropped (all
    /// jobs), entries in the file.
    #[cfg(test)]
    pub(super) fn counts_for_tests(&self) -> (usize, u64, usize, u64, usize) {
        (
            self.finishes.len(),
            self.dropped_finishes,
            self.missed.values().map(|j| j.kept.len()).sum(),
            self.missed.values().map(|j| j.dropped).sum(),
            self.disk.as_ref().map_or(0, SpoolFile::frames),
        )
    }

    /// The oldest outcome kept.
    #[cfg(test)]
    pub(super) fn first_finish_for_tests(&self) -> Option<RunId> {
        self.finishes.front().map(|(id, _)| *id)
    }

    fn release_taken(&mut self) {
        if let Some(disk) = &mut self.disk {
            disk.release_taken();
        }
    }
}

fn log_written(runs: usize) {
    if runs > 0 {
        info!(
            runs,
            "recorded outcomes kept while the store refused writes"
        );
    }
}

fn error_lost(entries: usize) {
    tracing::error!(
        entries,
        "rows kept in memory while the store refused writes are lost at exit; runs left `running` are marked abandoned at the next start"
    );
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
            spool.keep_missed(vec![missed("busy", s)]);
        }
        spool.keep_missed(vec![missed("quiet", 0)]);
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
