//! The single-run reads and writes of the PostgreSQL state that the store
//! seam asks for besides claims and history: one run, its output, the
//! running runs, each job's latest, whether a tick is claimed, and marking a
//! run `abandoned`. Times are the server's.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::history::{record, COLUMNS};
use super::{sql, PgError};
use crate::job::RunStatus;
use crate::store::{LastRuns, RunRecord, RunTotal, RunTotals};

/// One run, if it is on record.
pub async fn get(client: &impl GenericClient, id: i64) -> Result<Option<RunRecord>, PgError> {
    let row = client
        .query_opt(&format!("SELECT {COLUMNS} FROM runs WHERE id = $1"), &[&id])
        .await
        .map_err(sql("reading a run"))?;
    row.as_ref().map(record).transpose()
}

/// The stored tail of a run's output (empty when none).
pub async fn output_tail(client: &impl GenericClient, id: i64) -> Result<Vec<u8>, PgError> {
    let row = client
        .query_opt("SELECT output_tail FROM runs WHERE id = $1", &[&id])
        .await
        .map_err(sql("reading a run's output"))?;
    Ok(row
        .and_then(|r| r.get::<_, Option<Vec<u8>>>(0))
        .unwrap_or_default())
}

/// Runs recorded as running, on any host, oldest first.
pub async fn running(client: &impl GenericClient) -> Result<Vec<RunRecord>, PgError> {
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM runs WHERE status = 'running' ORDER BY id"),
            &[],
        )
        .await
        .map_err(sql("reading the running runs"))?;
    rows.iter().map(record).collect()
}

/// The latest run of every job that has one.
pub async fn latest_runs(client: &impl GenericClient) -> Result<Vec<RunRecord>, PgError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM runs WHERE id IN (SELECT max(id) FROM runs GROUP BY job)
                 ORDER BY job"
            ),
            &[],
        )
        .await
        .map_err(sql("reading each job's latest run"))?;
    rows.iter().map(record).collect()
}

/// When the latest run of `job` that started and succeeded started.
pub async fn last_success_start(
    client: &impl GenericClient,
    job: &str,
) -> Result<Option<DateTime<Utc>>, PgError> {
    let row = client
        .query_opt(
            "SELECT started_at FROM runs
             WHERE job = $1 AND status = 'succeeded' AND started_at IS NOT NULL
             ORDER BY id DESC LIMIT 1",
            &[&job],
        )
        .await
        .map_err(sql("reading a job's last success"))?;
    Ok(row.map(|r| r.get(0)))
}

/// Whether a first attempt of `job` at `tick` is claimed, by any host, or
/// the tick is at or before the job's claim floor (its claim was pruned), so
/// this stays true after pruning.
pub async fn tick_claimed(
    client: &impl GenericClient,
    job: &str,
    tick: DateTime<Utc>,
) -> Result<bool, PgError> {
    let row = client
        .query_opt(
            "SELECT 1 FROM claims WHERE job = $1 AND tick = $2 AND attempt = 1
             UNION ALL SELECT 1 FROM claim_floors WHERE job = $1 AND tick >= $2 LIMIT 1",
            &[&job, &tick],
        )
        .await
        .map_err(sql("reading a tick's claim"))?;
    Ok(row.is_some())
}

/// Marks a run `abandoned` with the reason, only if it still reads
/// `running`. True if it did.
pub async fn mark_abandoned(
    client: &impl GenericClient,
    id: i64,
    reason: &str,
) -> Result<bool, PgError> {
    let n = client
        .execute(
            "UPDATE runs SET status = 'abandoned', finished_at = now(), error = $2
             WHERE id = $1 AND status = 'running'",
            &[&id, &reason],
        )
        .await
        .map_err(sql("marking a run abandoned"))?;
    Ok(n > 0)
}

/// Whether the jobrun whose runs carry `owner` (`HOST#EPOCH`) is alive by
/// the server's clock: not stopped, not declared dead, its lease not run
/// out; the reason in words either way. `None` for an owner that is not a
/// fleet member's.
pub async fn owner_alive(
    client: &impl GenericClient,
    owner: &str,
) -> Result<Option<Result<String, String>>, PgError> {
    let Some(epoch) = super::owner::epoch(owner) else {
        return Ok(None);
    };
    let row = client
        .query_opt(
            "SELECT stopped_at IS NOT NULL, dead_reason, lease_until > now(),
                    extract(epoch FROM now() - last_beat)::float8
             FROM daemons WHERE epoch = $1",
            &[&epoch],
        )
        .await
        .map_err(sql("reading a daemon's lease"))?;
    Ok(Some(match row {
        None => Err(format!("daemon {owner} is not registered")),
        Some(r) => match (r.get::<_, bool>(0), r.get::<_, Option<String>>(1), r.get(2)) {
            (true, _, _) => Err(format!("daemon {owner} stopped")),
            (_, Some(reason), _) => Err(format!("daemon {owner} was declared dead: {reason}")),
            (_, None, false) => Err(format!("daemon {owner}'s lease ran out")),
            (_, None, true) => Ok(format!(
                "daemon {owner} holds its lease (beat {:.1} s ago)",
                r.get::<_, f64>(3)
            )),
        },
    }))
}

/// How much of an error's text a total keeps (as SQLite's `run_totals`).
const ERROR_START: i32 = 24;

/// Every finished run counted by job, status, trigger and the start of its
/// error, and each job's latest finished run and latest success, over every
/// host (what metrics start from).
pub async fn run_totals(client: &impl GenericClient) -> Result<RunTotals, PgError> {
    let rows = client
        .query(
            "SELECT job, status, trigger, substr(coalesce(error, ''), 1, $1), count(*)
             FROM runs WHERE status <> 'running' GROUP BY 1, 2, 3, 4",
            &[&ERROR_START],
        )
        .await
        .map_err(sql("summing up the run history"))?;
    let counts = rows
        .iter()
        .map(|r| RunTotal {
            job: r.get(0),
            status: RunStatus::parse(r.get(1)).unwrap_or(RunStatus::Failed),
            trigger: r.get(2),
            error_start: r.get(3),
            count: u64::try_from(r.get::<_, i64>(4)).unwrap_or(0),
        })
        .collect();
    let rows = client
        .query(
            "SELECT r.job, r.finished_at, r.exit_code, r.signal,
                    (SELECT max(s.finished_at) FROM runs s
                      WHERE s.job = r.job AND s.status = 'succeeded')
             FROM runs r WHERE r.id IN (
                 SELECT max(id) FROM runs WHERE finished_at IS NOT NULL
                 AND status NOT IN ('running', 'skipped', 'missed') GROUP BY job)",
            &[],
        )
        .await
        .map_err(sql("summing up the run history"))?;
    let last = rows
        .iter()
        .map(|r| LastRuns {
            job: r.get(0),
            finished_at: r.get(1),
            exit_code: r.get(2),
            signal: r.get(3),
            last_success: r.get(4),
        })
        .collect();
    Ok(RunTotals { counts, last })
}
