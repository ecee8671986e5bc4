//! The PostgreSQL store's writes on the firing path, through the seam: a
//! batch of claims and start marks in one transaction (in one key order on
//! every host, the lease checked once), and outcomes, each written once. What
//! a claim came to is logged and counted here ([`settle`]).

use std::sync::atomic::Ordering;
use std::time::Instant;

use tracing::{debug, error, info, warn};

use super::claims::{self, ClaimRequest, Claimed, Finished, Outcome};
use super::member::registered;
use super::shared::{connected, Shared};
use super::store::PostgresStore;
use super::{sql, Daemon, PgError};
use crate::job::{RunId, RunOutcome, RunStatus};
use crate::store::{NewRun, Operation, Started, StoreError};

impl PostgresStore {
    /// Claims and start marks written in one transaction; see
    /// `Store::claim_and_start_many`. A claim another host won, a tick
    /// recorded `skipped` because a `forbid` job runs elsewhere, and a
    /// definition the fleet does not share are all "not yours" (`None`),
    /// each logged; a fenced daemon's claims are an error (the firing path
    /// then records the tick `missed` once it can).
    pub fn claim_and_start_many(
        &self,
        runs: &[NewRun],
        starts: &[Started],
    ) -> Result<Vec<Option<RunId>>, StoreError> {
        let runs = runs.to_vec();
        let starts = starts.to_vec();
        self.op(Operation::Claim, "claiming", |s| async move {
            s.check_refused()?;
            let fenced_itself = {
                let member = s.member();
                member.me.is_some() && !member.fence.may_claim(Instant::now())
            };
            if !runs.is_empty() && fenced_itself {
                s.claims[2].fetch_add(runs.len() as u64, Ordering::Relaxed);
                return Err(self_fenced(&s));
            }
            let mut guard = s.client().await?;
            let client = connected(&mut guard)?;
            let me = registered(&s, client).await?;
            if !runs.is_empty() && !s.member().fence.may_claim(Instant::now()) {
                s.claims[2].fetch_add(runs.len() as u64, Ordering::Relaxed);
                return Err(self_fenced(&s));
            }
            let mut tx = client
                .transaction()
                .await
                .map_err(sql("starting a claim"))?;
            // Once for the whole batch: the lease is then held until the commit.
            let fenced = match runs.iter().any(|r| r.status == RunStatus::Running) {
                true => claims::fenced(&tx, &me).await?,
                false => None,
            };
            // Keys are inserted in one order on every host (job, tick,
            // attempt): a peer's batch of the same tick then waits for this
            // one instead of deadlocking with it (two hosts' recorders queue
            // a tick's claims in different orders; a deadlock cost
            // `deadlock_timeout`, 1 s by default, and a batch claimed again
            // one by one). Answers go back in the callers' order.
            let mut order: Vec<usize> = (0..runs.len()).collect();
            order.sort_by_key(|&i| (runs[i].job.as_str(), runs[i].tick, runs[i].attempt));
            let mut ids = vec![None; runs.len()];
            for i in order {
                let run = &runs[i];
                let declared = s.declared(&run.job);
                let req = ClaimRequest {
                    job: &run.job,
                    tick: run.tick,
                    attempt: run.attempt,
                    trigger: run.trigger,
                    parent_id: run.parent_id.map(|p| p.0),
                    fingerprint: &declared.fingerprint,
                    forbid: declared.exclusive,
                };
                let claimed = match run.status {
                    RunStatus::Running => match &fenced {
                        Some(fenced) => fenced.clone(),
                        None => claims::claim_in_leased(&mut tx, &me, &req).await?,
                    },
                    ended => {
                        let reason = run.error.as_deref().unwrap_or("");
                        claims::record_ended_in(&mut tx, &me, &req, ended, reason).await?
                    }
                };
                ids[i] = settle(&s, &me, run, claimed)?;
            }
            for start in &starts {
                let done = claims::start(&tx, &me, start.run.0, start.pid).await?;
                if done != Finished::Recorded {
                    warn!(run_id = start.run.0, result = ?done, "a run's start was not recorded");
                }
            }
            tx.commit().await.map_err(sql("committing a claim"))?;
            Ok(ids)
        })
    }

    /// Records that a claimed run's command started.
    pub fn mark_started(&self, start: Started) -> Result<(), StoreError> {
        self.claim_and_start_many(&[], &[start]).map(drop)
    }

    /// Records how runs ended, each exactly once (see [`claims::finish`]): an
    /// outcome of a run a peer already resolved (this daemon was declared
    /// dead meanwhile) is logged and dropped, never written over it.
    pub fn finish_many(&self, done: &[(RunId, RunOutcome)]) -> Result<Vec<bool>, StoreError> {
        let done = done.to_vec();
        self.op(
            Operation::Finish,
            "recording how runs ended",
            |s| async move {
                s.check_refused()?;
                let mut guard = s.client().await?;
                let client = connected(&mut guard)?;
                let me = registered(&s, client).await?;
                let tx = client
                    .transaction()
                    .await
                    .map_err(sql("starting to record outcomes"))?;
                let mut written = Vec::with_capacity(done.len());
                for (id, o) in &done {
                    let result = claims::finish(&tx, &me, id.0, &outcome_of(o)).await?;
                    match &result {
                        Finished::Recorded => {}
                        Finished::Fenced { reason } => warn!(run_id = id.0,
                            status = o.status.as_str(), why = %reason,
                            "an outcome was not recorded: this daemon was declared dead meanwhile, and a peer resolved the run"),
                        Finished::NotRunning { status } => warn!(run_id = id.0,
                            status = o.status.as_str(), now = %status,
                            "an outcome was not recorded: the run no longer reads running"),
                    }
                    written.push(result == Finished::Recorded);
                }
                tx.commit()
                    .await
                    .map_err(sql("committing outcomes"))?;
                Ok(written)
            },
        )
    }

    /// Records how runs ended, each only if it still reads `running`,
    /// whoever owns it (see [`claims::finish_if_running`]).
    pub fn finish_many_if_running(
        &self,
        done: &[(RunId, RunOutcome)],
    ) -> Result<Vec<bool>, StoreError> {
        let done = done.to_vec();
        self.op(
            Operation::Finish,
            "recording how runs ended",
            |s| async move {
                s.check_refused()?;
                let mut guard = s.client().await?;
                let tx = connected(&mut guard)?
                    .transaction()
                    .await
                    .map_err(sql("starting to record outcomes"))?;
                let mut written = Vec::with_capacity(done.len());
                for (id, o) in &done {
                    written.push(claims::finish_if_running(&tx, id.0, &outcome_of(o)).await?);
                }
                tx.commit().await.map_err(sql("committing outcomes"))?;
                Ok(written)
            },
        )
    }
}

/// A run's outcome as the claims module writes it.
fn outcome_of(o: &RunOutcome) -> Outcome<'_> {
    Outcome {
        status: o.status,
        duration_ms: o.duration_ms,
        exit_code: o.exit_code,
        signal: o.signal,
        output_bytes: o.output_bytes,
        output_tail: &o.output_tail,
        error: o.error.as_deref(),
    }
}

/// Why a daemon that has fenced itself claims nothing.
fn self_fenced(s: &Shared) -> PgError {
    PgError::Invalid {
        operation: "claiming a tick",
        what: format!(
            "no heartbeat acknowledged within the fence deadline ({}): this daemon has fenced \
             itself and claims nothing until the database answers again",
            humantime::format_duration(s.lease.fence)
        ),
    }
}

/// What one claim came to, for the seam: the run's id when this process
/// owns it and recorded it, else `None`, with the reason logged.
fn settle(
    s: &Shared,
    me: &Daemon,
    run: &NewRun,
    claimed: Claimed,
) -> Result<Option<RunId>, PgError> {
    let counter = match &claimed {
        Claimed::Run { .. } | Claimed::Recorded { .. } | Claimed::Skipped { .. } => 0,
        Claimed::Lost { .. } => 1,
        Claimed::Fenced { .. } => 2,
        Claimed::Drift { .. } => 3,
    };
    s.claims[counter].fetch_add(1, Ordering::Relaxed);
    Ok(match claimed {
        Claimed::Run { run_id } | Claimed::Recorded { run_id } => Some(RunId(run_id)),
        Claimed::Skipped { run_id, running_on } => {
            info!(job = %run.job, run_id, %running_on,
                "skipped: concurrency forbid, and the job is running on another host");
            None
        }
        Claimed::Lost { winner } => {
            debug!(job = %run.job, tick = ?run.tick, %winner, "claim lost to a peer");
            None
        }
        Claimed::Drift {
            peer_host,
            peer_fingerprint,
        } => {
            let fingerprint = s.declared(&run.job).fingerprint;
            let first = s
                .member()
                .drift_reported
                .insert((run.job.clone(), fingerprint.clone()));
            if first {
                error!(job = %run.job, host = %me.host, %fingerprint, %peer_host, %peer_fingerprint,
                    "refusing to run this job: its definition here differs from the one the fleet claims it with (schedule, zone, command, user or environment); deploy one definition to every host");
            }
            None
        }
        Claimed::Fenced { reason } => {
            s.member().fence.fenced();
            return Err(PgError::Invalid {
                operation: "claiming a tick",
                what: format!("this daemon was fenced ({reason}); it registers again"),
            });
        }
    })
}
