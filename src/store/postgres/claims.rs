//! Claiming a (job, tick, attempt) for the fleet, starting and finishing its
//! run, each conditional on the owner's epoch. See the module doc of
//! [`super`] for the protocol.

use chrono::{DateTime, Utc};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, GenericClient, Transaction};

use super::daemons::{fenced_reason, ALIVE};
pub use super::outcomes::{finish, finish_if_running, start, Finished, Outcome};
use super::{sql, Daemon, PgError};
use crate::job::{RunStatus, Trigger};

/// A tick to claim, or a run that claims no tick.
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    pub job: &'a str,
    /// The scheduled UTC instant (from the schedule, never from a clock);
    /// `None` for runs that claim no tick (manual, chain, watch, start):
    /// they are recorded, and `forbid` and the definition still apply.
    pub tick: Option<DateTime<Utc>>,
    /// 1 for a first attempt.
    pub attempt: u32,
    pub trigger: Trigger,
    /// The run this one follows (a retry's first attempt).
    pub parent_id: Option<i64>,
    /// The fingerprint of the job's definition on this host.
    pub fingerprint: &'a str,
    /// The job's `concurrency:` is `forbid`.
    pub forbid: bool,
}

/// What a claim came to. Only `Run` may start the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// This daemon owns the tick; the run row is `running` (not yet started).
    Run { run_id: i64 },
    /// This daemon owns the tick, but the job is `forbid` and running
    /// elsewhere: the tick is recorded `skipped` once.
    Skipped { run_id: i64, running_on: String },
    /// A peer (or an earlier start of this host) claimed the tick first.
    Lost { winner: String },
    /// The live fleet claims this job with another definition.
    Drift {
        peer_host: String,
        peer_fingerprint: String,
    },
    /// This daemon was declared dead: it must stop claiming and register
    /// again.
    Fenced { reason: String },
    /// [`record_missed`]: the tick's `missed` row is written; nothing starts.
    Recorded { run_id: i64 },
}

/// Claims a tick: the claim and its run row are committed before this
/// returns, so the command may start only after it.
pub async fn claim(
    client: &mut Client,
    me: &Daemon,
    req: &ClaimRequest<'_>,
) -> Result<Claimed, PgError> {
    let mut tx = client
        .transaction()
        .await
        .map_err(sql("starting a claim"))?;
    let claimed = claim_in(&mut tx, me, req).await?;
    // A lost or drifting claim commits too: its declaration of the job's
    // definition is kept, so `status` shows the drift.
    tx.commit().await.map_err(sql("committing a claim"))?;
    Ok(claimed)
}

/// [`claim`] inside the caller's transaction (several claims written
/// together commit together); nothing of it is visible before the commit.
pub async fn claim_in(
    tx: &mut Transaction<'_>,
    me: &Daemon,
    req: &ClaimRequest<'_>,
) -> Result<Claimed, PgError> {
    // Alive, and kept alive until the commit: a peer's expiry waits for us.
    if let Some(fenced) = fenced(tx, me).await? {
        return Ok(fenced);
    }
    claim_in_leased(tx, me, req).await
}

/// `Some(Fenced)` unless the daemon holds its lease, kept so until `tx`
/// ends: checked once for all the claims of one transaction.
pub async fn fenced(tx: &Transaction<'_>, me: &Daemon) -> Result<Option<Claimed>, PgError> {
    if lease_held(tx, me.epoch).await? {
        return Ok(None);
    }
    Ok(Some(Claimed::Fenced {
        reason: fenced_reason(tx, me.epoch).await?,
    }))
}

/// [`claim_in`] in a transaction that [`fenced`] found holding the lease.
pub async fn claim_in_leased(
    tx: &mut Transaction<'_>,
    me: &Daemon,
    req: &ClaimRequest<'_>,
) -> Result<Claimed, PgError> {
    let attempt = i32::try_from(req.attempt).map_err(|_| PgError::Invalid {
        operation: "claiming a tick",
        what: format!("attempt {} is out of range", req.attempt),
    })?;
    if let Some(drift) = check_definition(tx, me, req).await? {
        return Ok(drift);
    }
    if let Some(tick) = req.tick {
        if let Some(lost) = insert_claim(tx, me, req, tick, attempt).await? {
            return Ok(lost);
        }
    }
    let claimed = insert_run(tx, me, req, attempt).await?;
    if let (Some(tick), Claimed::Run { run_id } | Claimed::Skipped { run_id, .. }) =
        (req.tick, &claimed)
    {
        link(tx, req.job, tick, attempt, *run_id).await?;
    }
    Ok(claimed)
}

/// The winner a claim of a tick at or before its job's claim floor loses to.
pub const PRUNED: &str = "pruned: at or before the job's claim floor";

/// Inserts the key (job, tick, attempt); `Some(Lost)` when it was taken, or
/// when the tick is at or before the job's claim floor (its claim was
/// pruned with its run, see [`super::history::prune`]).
///
/// The floor is read after the insert, by a statement of its own (one
/// lookup of its primary key, one round trip): an insert that waited for a prune deleting
/// the tick's old claim then sees the floor that prune committed. A floor
/// read in the insert's own snapshot would miss it, and the tick would run
/// twice.
async fn insert_claim(
    tx: &tokio_postgres::Transaction<'_>,
    me: &Daemon,
    req: &ClaimRequest<'_>,
    tick: DateTime<Utc>,
    attempt: i32,
) -> Result<Option<Claimed>, PgError> {
    // The firing path's statements are sent typed: with their parameters
    // in one round trip, no prepare (a claim is a handful of them).
    let won = tx
        .query_typed_opt(
            "INSERT INTO claims (job, tick, attempt, owner_epoch, fingerprint)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING 1",
            &[
                (&req.job, Type::TEXT),
                (&tick, Type::TIMESTAMPTZ),
                (&attempt, Type::INT4),
                (&me.epoch, Type::INT8),
                (&req.fingerprint, Type::TEXT),
            ],
        )
        .await
        .map_err(sql("claiming a tick"))?
        .is_some();
    // Typed: sent with its parameters in one round trip, no prepare.
    let floored = tx
        .query_typed_opt(
            "SELECT 1 FROM claim_floors WHERE job = $1 AND tick >= $2",
            &[(&req.job, Type::TEXT), (&tick, Type::TIMESTAMPTZ)],
        )
        .await
        .map_err(sql("reading the job's claim floor"))?;
    if floored.is_some() {
        if won {
            tx.execute(
                "DELETE FROM claims WHERE job = $1 AND tick = $2 AND attempt = $3",
                &[&req.job, &tick, &attempt],
            )
            .await
            .map_err(sql("withdrawing a claim under the claim floor"))?;
        }
        return Ok(Some(Claimed::Lost {
            winner: PRUNED.to_string(),
        }));
    }
    if won {
        return Ok(None);
    }
    // Committed by its winner (the insert waited for it): who won.
    let winner = tx
        .query_opt(
            "SELECT d.host || ' (epoch ' || d.epoch || ')' FROM claims c
             JOIN daemons d ON d.epoch = c.owner_epoch
             WHERE c.job = $1 AND c.tick = $2 AND c.attempt = $3",
            &[&req.job, &tick, &attempt],
        )
        .await
        .map_err(sql("reading who won a claim"))?
        .map(|r| r.get(0))
        .unwrap_or_else(|| "another daemon".to_string());
    Ok(Some(Claimed::Lost { winner }))
}

async fn link(
    tx: &tokio_postgres::Transaction<'_>,
    job: &str,
    tick: DateTime<Utc>,
    attempt: i32,
    run_id: i64,
) -> Result<(), PgError> {
    tx.query_typed(
        "UPDATE claims SET run_id = $4 WHERE job = $1 AND tick = $2 AND attempt = $3",
        &[
            (&job, Type::TEXT),
            (&tick, Type::TIMESTAMPTZ),
            (&attempt, Type::INT4),
            (&run_id, Type::INT8),
        ],
    )
    .await
    .map_err(sql("linking a claim to its run"))?;
    Ok(())
}

/// Records a tick that no host could claim or start (the database was
/// unreachable, say) as `missed` with the reason, after the fact: under the
/// same claim key, so a tick that a peer did run is never also `missed`.
pub async fn record_missed(
    client: &mut Client,
    me: &Daemon,
    req: &ClaimRequest<'_>,
    reason: &str,
) -> Result<Claimed, PgError> {
    let mut tx = client
        .transaction()
        .await
        .map_err(sql("starting to record a missed tick"))?;
    let recorded = record_ended_in(&mut tx, me, req, RunStatus::Missed, reason).await?;
    tx.commit().await.map_err(sql("committing a missed tick"))?;
    Ok(recorded)
}

/// Records a tick (or a run that claims none) that will not run, `missed`
/// or `skipped` with the reason, inside the caller's transaction: under the
/// tick's claim key, so a tick that a peer did run is never also recorded
/// here ([`Claimed::Lost`]).
pub async fn record_ended_in(
    tx: &mut Transaction<'_>,
    me: &Daemon,
    req: &ClaimRequest<'_>,
    status: RunStatus,
    reason: &str,
) -> Result<Claimed, PgError> {
    let Ok(attempt) = i32::try_from(req.attempt) else {
        return Err(PgError::Invalid {
            operation: "recording a tick that will not run",
            what: format!("attempt {} of {} is out of range", req.attempt, req.job),
        });
    };
    if !lease_held(tx, me.epoch).await? {
        return Ok(Claimed::Fenced {
            reason: fenced_reason(tx, me.epoch).await?,
        });
    }
    if let Some(tick) = req.tick {
        if let Some(lost) = insert_claim(tx, me, req, tick, attempt).await? {
            return Ok(lost);
        }
    }
    let ended = status.as_str();
    let trigger = req.trigger.as_str();
    let run_id: i64 = tx
        .query_one(
            "INSERT INTO runs (job, trigger, tick, attempt, parent_id, status, finished_at,
                               host, owner_epoch, forbid, error)
             VALUES ($1, $2, $3, $4, $5, $6, now(), $7, $8, $9, $10) RETURNING id",
            &[
                &req.job,
                &trigger,
                &req.tick,
                &attempt,
                &req.parent_id,
                &ended,
                &me.host,
                &me.epoch,
                &req.forbid,
                &reason,
            ],
        )
        .await
        .map_err(sql("recording a tick that will not run"))?
        .get(0);
    if let Some(tick) = req.tick {
        link(tx, req.job, tick, attempt, run_id).await?;
    }
    Ok(Claimed::Recorded { run_id })
}

/// Declares this daemon's definition of the job and compares it with the
/// earliest live declaration; `Some(Drift)` when they differ.
async fn check_definition(
    tx: &impl GenericClient,
    me: &Daemon,
    req: &ClaimRequest<'_>,
) -> Result<Option<Claimed>, PgError> {
    // One round trip: the declaration, and the earliest live declaration
    // older than it by another daemon (none: this one is the fleet's). The
    // upsert's own row is not visible to the statement's SELECT, so its new
    // `declared_at` comes through RETURNING.
    let first = tx
        .query_typed_opt(
            &format!(
                "WITH mine AS (
                     INSERT INTO definitions (epoch, job, fingerprint) VALUES ($1, $2, $3)
                     ON CONFLICT (epoch, job) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,
                         declared_at = CASE WHEN definitions.fingerprint = EXCLUDED.fingerprint
                                            THEN definitions.declared_at ELSE now() END
                     RETURNING declared_at)
                 SELECT f.fingerprint, d.host FROM definitions f
                 JOIN daemons d ON d.epoch = f.epoch, mine
                 WHERE f.job = $2 AND f.epoch <> $1 AND {ALIVE}
                   AND (f.declared_at, f.epoch) < (mine.declared_at, $1)
                 ORDER BY f.declared_at, f.epoch LIMIT 1"
            ),
            &[
                (&me.epoch, Type::INT8),
                (&req.job, Type::TEXT),
                (&req.fingerprint, Type::TEXT),
            ],
        )
        .await
        .map_err(sql("declaring the job's definition"))?;
    Ok(match first {
        Some(row) if row.get::<_, &str>(0) != req.fingerprint => Some(Claimed::Drift {
            peer_fingerprint: row.get(0),
            peer_host: row.get(1),
        }),
        _ => None,
    })
}

/// Inserts the claimed tick's run: `running`, or `skipped` when the job is
/// `forbid` and a run of it is running anywhere (the partial unique index
/// decides, inside a savepoint).
async fn insert_run(
    tx: &tokio_postgres::Transaction<'_>,
    me: &Daemon,
    req: &ClaimRequest<'_>,
    attempt: i32,
) -> Result<Claimed, PgError> {
    const INSERT: &str = "INSERT INTO runs (job, trigger, tick, attempt, parent_id, status,
                                           host, owner_epoch, forbid, error)
                          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id";
    let trigger = req.trigger.as_str();
    // Only a `forbid` run can meet the partial unique index.
    if req.forbid {
        tx.batch_execute("SAVEPOINT forbid")
            .await
            .map_err(sql("claiming a tick"))?;
    }
    let running = RunStatus::Running.as_str();
    let none: Option<&str> = None;
    let inserted = tx
        .query_typed(
            INSERT,
            &[
                (&req.job, Type::TEXT),
                (&trigger, Type::TEXT),
                (&req.tick, Type::TIMESTAMPTZ),
                (&attempt, Type::INT4),
                (&req.parent_id, Type::INT8),
                (&running, Type::TEXT),
                (&me.host, Type::TEXT),
                (&me.epoch, Type::INT8),
                (&req.forbid, Type::BOOL),
                (&none, Type::TEXT),
            ],
        )
        .await;
    match inserted {
        Ok(rows) => match rows.first() {
            Some(row) => Ok(Claimed::Run { run_id: row.get(0) }),
            None => Err(PgError::Invalid {
                operation: "inserting a claimed run",
                what: "the insert returned no id".into(),
            }),
        },
        Err(e)
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION)
                && e.as_db_error().and_then(|d| d.constraint()) == Some("runs_forbid") =>
        {
            tx.batch_execute("ROLLBACK TO SAVEPOINT forbid")
                .await
                .map_err(sql("claiming a tick"))?;
            let holder = tx
                .query_opt(
                    "SELECT host || ' (run ' || id || ')' FROM runs
                     WHERE job = $1 AND status = 'running' AND forbid",
                    &[&req.job],
                )
                .await
                .map_err(sql("reading which run holds a forbid job"))?
                .map(|r| r.get::<_, String>(0))
                .unwrap_or_else(|| "another host".to_string());
            let error = format!("concurrency: forbid: the job is already running on {holder}");
            let skipped = RunStatus::Skipped.as_str();
            let row = tx
                .query_one(
                    INSERT,
                    &[
                        &req.job,
                        &trigger,
                        &req.tick,
                        &attempt,
                        &req.parent_id,
                        &skipped,
                        &me.host,
                        &me.epoch,
                        &req.forbid,
                        &Some(error.as_str()),
                    ],
                )
                .await
                .map_err(sql("recording a skipped tick"))?;
            tx.execute(
                "UPDATE runs SET finished_at = now() WHERE id = $1",
                &[&row.get::<_, i64>(0)],
            )
            .await
            .map_err(sql("recording a skipped tick"))?;
            Ok(Claimed::Skipped {
                run_id: row.get(0),
                running_on: holder,
            })
        }
        Err(e) => Err(sql("inserting a claimed run")(e)),
    }
}

/// Whether the daemon of `epoch` still holds its lease, kept so until `tx`
/// ends (`FOR SHARE`: a peer's expiry of it waits for the commit).
async fn lease_held(tx: &impl GenericClient, epoch: i64) -> Result<bool, PgError> {
    let alive = tx
        .query_opt(
            &format!("SELECT 1 FROM daemons d WHERE d.epoch = $1 AND {ALIVE} FOR SHARE"),
            &[&epoch],
        )
        .await
        .map_err(sql("checking the daemon's lease"))?;
    Ok(alive.is_some())
}
