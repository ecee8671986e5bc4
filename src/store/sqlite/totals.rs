//! The run history summed up per job, for counters that must survive a
//! restart (`daemon --http`'s `/metrics`, issue 15): one grouped query at
//! start-up instead of reading every run.

use super::runs::parse_time;
use super::{sql, SqliteStore};
use crate::job::RunStatus;
use crate::store::records::{LastRuns, RunTotal, RunTotals};
use crate::store::{Operation, StoreError};

/// How much of an error's text [`RunTotal::error_start`] keeps: enough to
/// tell "already running", "not ready:" and "not claimed:" apart.
const ERROR_START: usize = 24;

fn fail() -> impl FnOnce(rusqlite::Error) -> StoreError {
    sql(Operation::History, "summing up the run history")
}

impl SqliteStore {
    /// Every finished run counted by job, status, trigger and the start of
    /// its error, and each job's latest finished run and latest success.
    pub fn run_totals(&self) -> Result<RunTotals, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT job, status, trigger, substr(coalesce(error, ''), 1, {ERROR_START}), count(*)
                 FROM runs WHERE status != 'running' GROUP BY 1, 2, 3, 4"
            ))
            .map_err(fail())?;
        let counts = stmt
            .query_map([], |r| {
                let status: String = r.get(1)?;
                Ok(RunTotal {
                    job: r.get(0)?,
                    status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
                    trigger: r.get(2)?,
                    error_start: r.get(3)?,
                    count: r.get::<_, i64>(4)?.try_into().unwrap_or(0),
                })
            })
            .map_err(fail())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail())?;
        // The latest run that did its work or failed at it (not a skip or a
        // missed tick), and the latest success, per job.
        let mut stmt = conn
            .prepare(
                "SELECT r.job, r.finished_at, r.exit_code, r.signal,
                        (SELECT max(s.finished_at) FROM runs s
                          WHERE s.job = r.job AND s.status = 'succeeded')
                 FROM runs r WHERE r.id IN (
                     SELECT max(id) FROM runs WHERE finished_at IS NOT NULL
                     AND status NOT IN ('running', 'skipped', 'missed') GROUP BY job)",
            )
            .map_err(fail())?;
        let last = stmt
            .query_map([], |r| {
                let finished: String = r.get(1)?;
                let success: Option<String> = r.get(4)?;
                Ok(LastRuns {
                    job: r.get(0)?,
                    finished_at: parse_time(&finished)?,
                    exit_code: r.get(2)?,
                    signal: r.get(3)?,
                    last_success: success.as_deref().map(parse_time).transpose()?,
                })
            })
            .map_err(fail())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail())?;
        Ok(RunTotals { counts, last })
    }
}
