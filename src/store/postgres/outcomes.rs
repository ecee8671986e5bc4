//! A claimed run's start and its end, each written only under its
//! condition: the start by its live owner, the outcome once, by its owner
//! while no peer declared it dead (or, for an outcome written late, over a
//! run that still reads `running`). Why a write changed nothing is read
//! back ([`Finished`]). See the module doc of [`super`].

use tokio_postgres::GenericClient;

use super::daemons::{fenced_reason, ALIVE, NOT_DEAD};
use super::{sql, Daemon, PgError};
use crate::job::RunStatus;

/// Whether a conditional write of a run took effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    Recorded,
    /// The owner was declared dead: a peer has resolved the run; nothing
    /// was written.
    Fenced {
        reason: String,
    },
    /// The run is no longer `running` (finished, or abandoned by a peer).
    NotRunning {
        status: String,
    },
}

/// Marks a claimed run's command as started (its pid), by the server's
/// clock, on condition that the caller owns it and is alive.
pub async fn start(
    client: &impl GenericClient,
    me: &Daemon,
    run_id: i64,
    pid: Option<u32>,
) -> Result<Finished, PgError> {
    let pid = pid.and_then(|p| i32::try_from(p).ok());
    let n = client
        .execute(
            &format!(
                "UPDATE runs SET started_at = now(), pid = $3
                 WHERE id = $1 AND owner_epoch = $2 AND status = 'running'
                   AND started_at IS NULL
                   AND EXISTS (SELECT 1 FROM daemons d WHERE d.epoch = $2 AND {ALIVE})"
            ),
            &[&run_id, &me.epoch, &pid],
        )
        .await
        .map_err(sql("recording a run's start"))?;
    refused(client, me, run_id, n, ALIVE).await
}

/// How a run ended (the fields of SQLite's `Finish`; `finished_at` is the
/// server's now).
#[derive(Debug, Clone)]
pub struct Outcome<'a> {
    pub status: RunStatus,
    pub duration_ms: Option<i64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub output_bytes: u64,
    pub output_tail: &'a [u8],
    pub error: Option<&'a str>,
}

/// Records how a run ended, exactly once: only a `running` run, only by its
/// owner, only while no peer has declared the owner dead (a lease that ran
/// out unnoticed does not lose an outcome that nobody else has written).
pub async fn finish(
    client: &impl GenericClient,
    me: &Daemon,
    run_id: i64,
    outcome: &Outcome<'_>,
) -> Result<Finished, PgError> {
    let n = write_outcome(client, run_id, outcome, Some(me.epoch)).await?;
    refused(client, me, run_id, n, NOT_DEAD).await
}

/// Records how a run ended only if it still reads `running`, whoever owns
/// it: an outcome a jobrun inferred, or one its spool kept across a restart
/// (the process that ran it is gone, and the run is still `running` only if
/// no peer resolved it meanwhile). True if it did.
pub async fn finish_if_running(
    client: &impl GenericClient,
    run_id: i64,
    outcome: &Outcome<'_>,
) -> Result<bool, PgError> {
    Ok(write_outcome(client, run_id, outcome, None).await? > 0)
}

/// Writes `outcome` over run `run_id` if it reads `running` and, with an
/// `owner` epoch, if that epoch owns it and no peer declared it dead; how
/// many rows it changed.
async fn write_outcome(
    client: &impl GenericClient,
    run_id: i64,
    outcome: &Outcome<'_>,
    owner: Option<i64>,
) -> Result<u64, PgError> {
    let bytes = i64::try_from(outcome.output_bytes).unwrap_or(i64::MAX);
    let status = outcome.status.as_str();
    client
        .execute(
            &format!(
                "UPDATE runs SET status = $2, finished_at = now(), duration_ms = $3,
                        exit_code = $4, signal = $5, output_bytes = $6, output_tail = $7,
                        error = $8
                 WHERE id = $1 AND status = 'running'
                   AND ($9::bigint IS NULL OR (owner_epoch = $9 AND EXISTS (
                        SELECT 1 FROM daemons d WHERE d.epoch = $9 AND {NOT_DEAD})))"
            ),
            &[
                &run_id,
                &status,
                &outcome.duration_ms,
                &outcome.exit_code,
                &outcome.signal,
                &bytes,
                &outcome.output_tail,
                &outcome.error,
                &owner,
            ],
        )
        .await
        .map_err(sql("recording a run's outcome"))
}

/// Says why a conditional write of a run changed nothing.
async fn refused(
    client: &impl GenericClient,
    me: &Daemon,
    run_id: i64,
    n: u64,
    condition: &str,
) -> Result<Finished, PgError> {
    if n > 0 {
        return Ok(Finished::Recorded);
    }
    let alive = client
        .query_opt(
            &format!("SELECT 1 FROM daemons d WHERE d.epoch = $1 AND {condition}"),
            &[&me.epoch],
        )
        .await
        .map_err(sql("checking the daemon's lease"))?;
    if alive.is_none() {
        return Ok(Finished::Fenced {
            reason: fenced_reason(client, me.epoch).await?,
        });
    }
    let status = client
        .query_opt(
            "SELECT status || CASE WHEN owner_epoch <> $2 THEN ' (owned by epoch '
                                    || owner_epoch || ')' ELSE '' END
             FROM runs WHERE id = $1",
            &[&run_id, &me.epoch],
        )
        .await
        .map_err(sql("reading a run's status"))?
        .map(|r| r.get(0))
        .unwrap_or_else(|| format!("no run {run_id}"));
    Ok(Finished::NotRunning { status })
}
