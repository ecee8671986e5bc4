//! The fleet's run history: `history` over every host's runs (as the SQLite
//! store's [`RunRecord`]s, with each run's host), and pruning by the
//! server's clock that raises the claim floors before it deletes a claim
//! (issue 14, guarantee 10: retention never deletes what at-most-once still
//! depends on).

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use super::{sql, PgError};
use crate::job::{RunId, RunStatus};
use crate::store::{HistoryFilter, Retention, RunRecord};

/// A run's columns as [`record`] reads them; the owner is `HOST#EPOCH`
/// (see [`super::owner`]).
pub(crate) const COLUMNS: &str = "id, job, trigger, tick, started_at, finished_at, duration_ms,
                       status, exit_code, signal, pid, host, output_bytes, error, parent_id,
                       attempt, claimed_at, host || '#' || owner_epoch";

pub(crate) fn record(row: &Row) -> Result<RunRecord, PgError> {
    let status: String = row.get(7);
    let status = RunStatus::parse(&status).ok_or_else(|| PgError::Invalid {
        operation: "reading history",
        what: format!("unknown run status {status:?}"),
    })?;
    Ok(RunRecord {
        id: RunId(row.get(0)),
        job: row.get(1),
        trigger: row.get(2),
        tick: row.get(3),
        started_at: row.get(4),
        finished_at: row.get(5),
        duration_ms: row.get(6),
        status,
        exit_code: row.get(8),
        signal: row.get(9),
        pid: row
            .get::<_, Option<i32>>(10)
            .and_then(|p| u32::try_from(p).ok()),
        host: row.get(11),
        output_bytes: u64::try_from(row.get::<_, i64>(12)).unwrap_or(0),
        error: row.get(13),
        parent_id: row.get::<_, Option<i64>>(14).map(RunId),
        attempt: u32::try_from(row.get::<_, i32>(15)).unwrap_or(1),
        claimed_at: row.get(16),
        owner: row.get(17),
    })
}

/// Every host's runs, newest first, as the filter asks.
pub async fn history(client: &Client, filter: &HistoryFilter) -> Result<Vec<RunRecord>, PgError> {
    let mut conditions = Vec::new();
    let mut values: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    if let Some(job) = &filter.job {
        values.push(Box::new(job.clone()));
        conditions.push(format!("job = ${}", values.len()));
    }
    if let Some(since) = filter.since {
        values.push(Box::new(since));
        conditions.push(format!("claimed_at >= ${}", values.len()));
    }
    if let Some(status) = filter.status {
        values.push(Box::new(status.as_str()));
        conditions.push(format!("status = ${}", values.len()));
    }
    let mut query = format!("SELECT {COLUMNS} FROM runs");
    if !conditions.is_empty() {
        query.push_str(" WHERE ");
        query.push_str(&conditions.join(" AND "));
    }
    query.push_str(" ORDER BY id DESC");
    if let Some(limit) = filter.limit {
        query.push_str(&format!(" LIMIT {limit}"));
    }
    let params: Vec<&(dyn ToSql + Sync)> = values
        .iter()
        .map(|v| v.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = client
        .query(&query, &params)
        .await
        .map_err(sql("querying history"))?;
    rows.iter().map(record).collect()
}

/// Removes finished runs claimed more than `keep_days` ago by the server's
/// clock, and all but the newest `keep_runs` of each job; never a running
/// run. In the same transaction, raises each job's claim floor to the
/// newest tick among the removed runs' claims (never lowers it), then
/// deletes the claims at or before their job's floor whose run is gone:
/// every tick at or before the floor counts as claimed ([`super::claims`]),
/// so no pruned tick can be claimed again, and the claims table stays
/// bounded. Returns how many runs were removed.
pub async fn prune(client: &mut Client, retention: Retention) -> Result<u64, PgError> {
    /// Counts the runs `$DELETE` removed and raises their jobs' floors.
    const RAISING: &str = "WITH gone AS ($DELETE RETURNING job, tick),
             raised AS (
                 INSERT INTO claim_floors (job, tick)
                 SELECT job, max(tick) FROM gone WHERE tick IS NOT NULL GROUP BY job
                 ON CONFLICT (job) DO UPDATE
                     SET tick = GREATEST(claim_floors.tick, EXCLUDED.tick))
             SELECT count(*) FROM gone";
    let days = f64::from(retention.keep_days) * 86_400.0;
    let keep = i64::from(retention.keep_runs);
    let tx = client
        .transaction()
        .await
        .map_err(sql("starting to prune"))?;
    let old: i64 = tx
        .query_one(
            &RAISING.replace(
                "$DELETE",
                "DELETE FROM runs WHERE status <> 'running'
                   AND claimed_at < now() - make_interval(secs => $1)",
            ),
            &[&days],
        )
        .await
        .map_err(sql("pruning old runs"))?
        .get(0);
    let beyond: i64 = tx
        .query_one(
            &RAISING.replace(
                "$DELETE",
                "DELETE FROM runs WHERE id IN (
                     SELECT id FROM (
                         SELECT id, status,
                                row_number() OVER (PARTITION BY job ORDER BY id DESC) AS n
                         FROM runs) ranked
                     WHERE n > $1 AND status <> 'running')",
            ),
            &[&keep],
        )
        .await
        .map_err(sql("pruning runs beyond the per-job limit"))?
        .get(0);
    tx.execute(
        "DELETE FROM claims c USING claim_floors f
         WHERE c.job = f.job AND c.tick <= f.tick
           AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = c.run_id)",
        &[],
    )
    .await
    .map_err(sql("deleting the claims under the claim floors"))?;
    tx.commit().await.map_err(sql("committing the pruning"))?;
    Ok(u64::try_from(old + beyond).unwrap_or(0))
}
