//! The `runs` table: claiming ticks, recording outcomes, and the queries behind
//! `history`, `logs`, `list` and abandoned-run recovery; times as fixed-width
//! RFC 3339 text.

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::{sql, SqliteStore};
use crate::job::{RunId, RunOutcome, RunStatus};
use crate::store::{HistoryFilter, NewRun, Operation, RunRecord, Started, StoreError};

/// A run id is the `runs` table's `INTEGER PRIMARY KEY`.
impl rusqlite::ToSql for RunId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl rusqlite::types::FromSql for RunId {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        i64::column_result(value).map(RunId)
    }
}

/// Inserts a claim; `None` when the (job, tick) key is already taken or the
/// tick is at or before the job's claim floor (`floors.rs`): one lookup of
/// `claim_floors`' primary key, inside the insert.
fn insert_claim(conn: &Connection, run: &NewRun) -> Result<Option<RunId>, StoreError> {
    let finished = (run.status != RunStatus::Running).then(|| fmt_time(run.at));
    // Cached: the statements of the firing path are compiled once, not for
    // every run (a 1,000-job tick makes 3,000 of them).
    let inserted = conn
        .prepare_cached(
            "INSERT INTO runs (job, trigger, tick, claimed_at, finished_at, status, host, owner,
                               error, parent_id, attempt)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11
             WHERE NOT EXISTS (SELECT 1 FROM claim_floors WHERE job = ?1 AND tick >= ?3)
             ON CONFLICT DO NOTHING",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                run.job,
                run.trigger.as_str(),
                run.tick.map(fmt_time),
                fmt_time(run.at),
                finished,
                run.status.as_str(),
                run.host,
                run.owner,
                run.error,
                run.parent_id,
                run.attempt,
            ])
        })
        .map_err(sql(Operation::Claim, "claiming a tick"))?;
    Ok((inserted == 1).then(|| RunId(conn.last_insert_rowid())))
}

fn start_on(conn: &Connection, start: &Started) -> Result<usize, StoreError> {
    conn.prepare_cached("UPDATE runs SET pid = ?2, started_at = ?3 WHERE id = ?1")
        .and_then(|mut stmt| stmt.execute(params![start.run, start.pid, fmt_time(start.at)]))
        .map_err(sql(Operation::Start, "recording a start"))
}

fn finish_on(conn: &Connection, id: RunId, f: &RunOutcome) -> Result<(), StoreError> {
    finish_where(conn, id, f, "").map(drop)
}

/// Writes every field of the outcome on the run `id` if `guard` (SQL after
/// `WHERE id = ?1`) holds; how many rows changed.
fn finish_where(
    conn: &Connection,
    id: RunId,
    f: &RunOutcome,
    guard: &str,
) -> Result<usize, StoreError> {
    conn.prepare_cached(&format!(
        "UPDATE runs SET status = ?2, finished_at = ?3, duration_ms = ?4, exit_code = ?5,
                signal = ?6, output_bytes = ?7, output_tail = ?8, error = ?9
         WHERE id = ?1 {guard}"
    ))
    .and_then(|mut stmt| {
        stmt.execute(params![
            id,
            f.status.as_str(),
            fmt_time(f.finished_at),
            f.duration_ms,
            f.exit_code,
            f.signal,
            i64::try_from(f.output_bytes).unwrap_or(i64::MAX),
            &*f.output_tail,
            f.error,
        ])
    })
    .map_err(sql(Operation::Finish, "recording a finished run"))
}

/// Fixed-width RFC 3339 in UTC, so text order is time order in SQL.
pub(super) fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn parse_time(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

fn opt_time(s: Option<String>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_time).transpose()
}

const COLUMNS: &str = "id, job, trigger, tick, started_at, finished_at, duration_ms, status, \
                       exit_code, signal, pid, host, output_bytes, error, claimed_at, owner, \
                       parent_id, attempt";

fn record(row: &Row<'_>) -> rusqlite::Result<RunRecord> {
    let status: String = row.get(7)?;
    Ok(RunRecord {
        id: row.get(0)?,
        job: row.get(1)?,
        trigger: row.get(2)?,
        tick: opt_time(row.get(3)?)?,
        started_at: opt_time(row.get(4)?)?,
        finished_at: opt_time(row.get(5)?)?,
        duration_ms: row.get(6)?,
        status: RunStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                7,
                rusqlite::types::Type::Text,
                format!("unknown run status {status:?}").into(),
            )
        })?,
        exit_code: row.get(8)?,
        signal: row.get(9)?,
        pid: row.get(10)?,
        host: row.get(11)?,
        output_bytes: u64::try_from(row.get::<_, i64>(12)?).unwrap_or(0),
        error: row.get(13)?,
        claimed_at: parse_time(&row.get::<_, String>(14)?)?,
        owner: row.get(15)?,
        parent_id: row.get(16)?,
        attempt: row.get(17)?,
    })
}

impl SqliteStore {
    /// Claims a run in one immediate transaction against the UNIQUE (job, tick)
    /// key. `Ok(None)` means another process (or an earlier run of this one)
    /// already claimed that tick: the caller must not run it.
    ///
    /// Not flushed to disk before it returns (see `store::unflushed`).
    pub fn claim(&self, run: &NewRun) -> Result<Option<RunId>, StoreError> {
        super::unflushed(&mut self.conn(), |conn| SqliteStore::claim_on(conn, run))
    }

    /// The claim's transaction, on the store's one connection.
    fn claim_on(conn: &mut Connection, run: &NewRun) -> Result<Option<RunId>, StoreError> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(Operation::Claim, "starting a claim"))?;
        let id = insert_claim(&tx, run)?;
        tx.commit()
            .map_err(sql(Operation::Claim, "committing a claim"))?;
        Ok(id)
    }

    /// Several claims and start marks in one immediate transaction: what a
    /// tick with many jobs queues at once, written with one commit instead of
    /// one each. Each claim is decided as [`claim`](Self::claim) decides it
    /// (the UNIQUE key, inside the transaction); nothing is claimed unless the
    /// whole transaction commits. Not flushed to disk before it returns.
    pub fn claim_and_start_many(
        &self,
        claims: &[NewRun],
        starts: &[Started],
    ) -> Result<Vec<Option<RunId>>, StoreError> {
        super::unflushed(&mut self.conn(), |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql(Operation::Claim, "starting a claim"))?;
            let ids = claims
                .iter()
                .map(|run| insert_claim(&tx, run))
                .collect::<Result<Vec<_>, _>>()?;
            for start in starts {
                start_on(&tx, start)?;
            }
            tx.commit()
                .map_err(sql(Operation::Claim, "committing claims"))?;
            Ok(ids)
        })
    }

    /// Records that the claimed run's command started. `pid` is the run's
    /// own process (its process group), `None` for a run with no process of
    /// its own (a `signal:` job). Not flushed to disk before it returns: a
    /// lost start leaves a `running` row without a pid, which the next
    /// daemon start marks `abandoned`.
    pub fn mark_started(&self, start: Started) -> Result<(), StoreError> {
        super::unflushed(&mut self.conn(), |conn| start_on(conn, &start))?;
        Ok(())
    }

    /// When the latest run of `job` that started its command (or sent its
    /// signal) and succeeded started, by any process: what it saw is handled.
    pub fn last_success_start(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<String> = self
            .conn()
            .query_row(
                "SELECT started_at FROM runs
                 WHERE job = ?1 AND started_at IS NOT NULL AND status = 'succeeded'
                 ORDER BY id DESC LIMIT 1",
                [job],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(Operation::History, "reading a job's last start"))?;
        at.as_deref()
            .map(parse_time)
            .transpose()
            .map_err(sql(Operation::History, "reading a job's last start"))
    }

    /// Whether a run of `job` for `tick` (a first attempt) is on record, or
    /// the tick is at or before the job's claim floor (its run was pruned).
    pub fn tick_claimed(&self, job: &str, tick: DateTime<Utc>) -> Result<bool, StoreError> {
        self.conn()
            .query_row(
                "SELECT 1 FROM runs WHERE job = ?1 AND tick = ?2 AND attempt = 1
                 UNION ALL SELECT 1 FROM claim_floors WHERE job = ?1 AND tick >= ?2",
                params![job, fmt_time(tick)],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(sql(Operation::History, "reading a tick's claim"))
    }

    /// Records how several runs ended, in one transaction: one fsync for all.
    pub fn finish_many(&self, runs: &[(RunId, RunOutcome)]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(Operation::Finish, "starting to record finished runs"))?;
        for (id, f) in runs {
            finish_on(&tx, *id, f)?;
        }
        tx.commit()
            .map_err(sql(Operation::Finish, "committing finished runs"))
    }

    /// Records how a run ended.
    pub fn finish(&self, id: RunId, f: &RunOutcome) -> Result<(), StoreError> {
        finish_on(&self.conn(), id, f)
    }

    /// Makes every write fail as on a read-only database (`PRAGMA
    /// query_only`), or lets writes through again: how tests make the store
    /// refuse writes without root (a full disk needs a mount).
    #[cfg(test)]
    pub fn refuse_writes_for_tests(&self, refuse: bool) {
        self.conn()
            .pragma_update(None, "query_only", refuse)
            .expect("query_only can always be set");
    }

    /// Records how a run ended only if it still reads `running`: for an
    /// ending jobrun infers (a firing that panicked or was dropped), and an
    /// outcome written late (the recorder's spool), which must never
    /// overwrite an outcome already recorded. True if it did.
    pub fn finish_if_running(&self, id: RunId, f: &RunOutcome) -> Result<bool, StoreError> {
        // Every field, as `finish`: an outcome the recorder kept while the
        // store refused writes has its exit code and output.
        let changed = finish_where(&self.conn(), id, f, "AND status = 'running'")?;
        Ok(changed == 1)
    }

    /// Several [`finish_if_running`](Self::finish_if_running) in one
    /// immediate transaction (one commit, one fsync, where one each made
    /// writing 4,096 kept outcomes take 19 s); whether each was recorded.
    pub fn finish_many_if_running(
        &self,
        runs: &[(RunId, RunOutcome)],
    ) -> Result<Vec<bool>, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(Operation::Finish, "starting to record finished runs"))?;
        let recorded = runs
            .iter()
            .map(|(id, f)| Ok(finish_where(&tx, *id, f, "AND status = 'running'")? == 1))
            .collect::<Result<Vec<bool>, StoreError>>()?;
        tx.commit()
            .map_err(sql(Operation::Finish, "committing finished runs"))?;
        Ok(recorded)
    }

    pub fn get(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM runs WHERE id = ?1"),
                [id],
                record,
            )
            .optional()
            .map_err(sql(Operation::History, "reading a run"))
    }

    /// The stored tail of a run's output.
    pub fn output_tail(&self, id: RunId) -> Result<Vec<u8>, StoreError> {
        let tail: Option<Option<Vec<u8>>> = self
            .conn()
            .query_row("SELECT output_tail FROM runs WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql(Operation::History, "reading a run's output"))?;
        Ok(tail.flatten().unwrap_or_default())
    }

    /// Past runs, newest first.
    pub fn history(&self, filter: &HistoryFilter) -> Result<Vec<RunRecord>, StoreError> {
        let mut conditions = Vec::new();
        let mut values: Vec<String> = Vec::new();
        if let Some(job) = &filter.job {
            values.push(job.clone());
            conditions.push(format!("job = ?{}", values.len()));
        }
        if let Some(since) = filter.since {
            values.push(fmt_time(since));
            conditions.push(format!("claimed_at >= ?{}", values.len()));
        }
        if let Some(status) = filter.status {
            values.push(status.as_str().to_string());
            conditions.push(format!("status = ?{}", values.len()));
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
        self.records(
            &query,
            rusqlite::params_from_iter(values.iter()),
            ("querying history", "reading history"),
        )
    }

    /// The runs `query` (which selects `COLUMNS`) finds; an error says it
    /// was `querying` or `reading` them.
    fn records(
        &self,
        query: &str,
        params: impl rusqlite::Params,
        (querying, reading): (&'static str, &'static str),
    ) -> Result<Vec<RunRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(query)
            .map_err(sql(Operation::History, querying))?;
        let rows = stmt
            .query_map(params, record)
            .map_err(sql(Operation::History, querying))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql(Operation::History, reading))
    }

    /// The latest run of every job that has one.
    pub fn latest_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.records(
            &format!(
                "SELECT {COLUMNS} FROM runs WHERE id IN (SELECT max(id) FROM runs GROUP BY job)"
            ),
            [],
            ("querying latest runs", "reading latest runs"),
        )
    }

    /// Runs recorded as running, oldest first.
    pub fn running(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.records(
            &format!("SELECT {COLUMNS} FROM runs WHERE status = 'running' ORDER BY id"),
            [],
            ("querying running runs", "reading running runs"),
        )
    }

    /// Marks a run whose process died with its owner: only if it still reads
    /// `running`, so a run that finished meanwhile keeps its real outcome.
    pub fn mark_abandoned(
        &self,
        id: RunId,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE runs SET status = 'abandoned', finished_at = ?2, error = ?3
                 WHERE id = ?1 AND status = 'running'",
                params![id, fmt_time(at), reason],
            )
            .map_err(sql(Operation::Finish, "marking a run abandoned"))?;
        Ok(changed == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Trigger;
    use chrono::TimeZone;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, h, m, s).unwrap()
    }

    fn new_run(job: &str, tick: Option<DateTime<Utc>>) -> NewRun {
        NewRun {
            job: job.into(),
            trigger: if tick.is_some() {
                Trigger::Schedule
            } else {
                Trigger::Manual
            },
            tick,
            status: RunStatus::Running,
            at: t(9, 0, 0),
            host: "host-a".into(),
            owner: "host-a:1:x".into(),
            error: None,
            parent_id: None,
            attempt: 1,
        }
    }

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn a_tick_is_claimed_once_per_job() {
        let (_dir, store) = store();
        let tick = Some(t(9, 0, 0));
        assert!(store.claim(&new_run("a", tick)).unwrap().is_some());
        assert_eq!(store.claim(&new_run("a", tick)).unwrap(), None);
        assert!(
            store.claim(&new_run("b", tick)).unwrap().is_some(),
            "other job"
        );
        assert!(
            store
                .claim(&new_run("a", Some(t(9, 1, 0))))
                .unwrap()
                .is_some(),
            "other tick"
        );
        // Manual runs have no tick and never conflict.
        assert!(store.claim(&new_run("a", None)).unwrap().is_some());
        assert!(store.claim(&new_run("a", None)).unwrap().is_some());
    }

    #[test]
    fn a_refused_write_names_its_operation_and_keeps_sqlites_words() {
        let (_dir, store) = store();
        store.refuse_writes_for_tests(true);
        let err = store.claim(&new_run("a", Some(t(9, 0, 0)))).unwrap_err();
        assert_eq!(err.operation(), Operation::Claim);
        let text = err.to_string();
        assert!(text.starts_with("database starting a claim: "), "{text}");
        assert!(text.contains("readonly"), "SQLite's own words: {text}");
        let StoreError::Failed { source, .. } = &err else {
            panic!("{err:?}");
        };
        assert!(source.downcast_ref::<rusqlite::Error>().is_some());
    }

    #[test]
    fn claims_from_two_connections_never_both_win() {
        let dir = tempfile::tempdir().unwrap();
        let first = SqliteStore::open(dir.path()).unwrap();
        let second = SqliteStore::open(dir.path()).unwrap();
        let mut wins = 0;
        for minute in 0..50 {
            let tick = Some(t(10, minute, 0));
            wins += usize::from(first.claim(&new_run("j", tick)).unwrap().is_some());
            wins += usize::from(second.claim(&new_run("j", tick)).unwrap().is_some());
        }
        assert_eq!(wins, 50);
    }

    #[test]
    fn claims_and_starts_batched_in_one_transaction_decide_each_claim() {
        let (_dir, store) = store();
        let early = store
            .claim(&new_run("a", Some(t(9, 0, 0))))
            .unwrap()
            .unwrap();
        let ids = store
            .claim_and_start_many(
                &[
                    new_run("a", Some(t(9, 0, 0))), // taken before the batch
                    new_run("b", Some(t(9, 0, 0))),
                    new_run("b", Some(t(9, 0, 0))), // taken within the batch
                    new_run("c", Some(t(9, 0, 0))),
                ],
                &[Started {
                    run: early,
                    pid: Some(4242),
                    at: t(9, 0, 1),
                }],
            )
            .unwrap();
        assert_eq!(ids.len(), 4);
        assert_eq!(ids[0], None);
        assert!(ids[1].is_some());
        assert_eq!(ids[2], None);
        assert!(ids[3].is_some());
        let running = store.running().unwrap();
        assert_eq!(running.len(), 3);
        let a = running.iter().find(|r| r.id == early).unwrap();
        assert_eq!(a.pid, Some(4242));
        assert_eq!(a.started_at, Some(t(9, 0, 1)));
    }

    #[test]
    fn a_run_is_recorded_from_claim_to_finish() {
        let (_dir, store) = store();
        let id = store
            .claim(&new_run("a", Some(t(9, 0, 0))))
            .unwrap()
            .unwrap();
        store
            .mark_started(Started {
                run: id,
                pid: Some(4242),
                at: t(9, 0, 0),
            })
            .unwrap();
        let running = store.running().unwrap();
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].pid, Some(4242));
        store
            .finish(
                id,
                &RunOutcome {
                    status: RunStatus::Failed,
                    finished_at: t(9, 0, 3),
                    duration_ms: Some(3000),
                    exit_code: Some(3),
                    signal: None,
                    output_bytes: 12,
                    output_tail: std::sync::Arc::from(&b"hello\nworld\n"[..]),
                    error: None,
                },
            )
            .unwrap();
        let run = store.get(id).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.exit_code, Some(3));
        assert_eq!(run.duration_ms, Some(3000));
        assert_eq!(run.output_bytes, 12);
        assert_eq!(run.tick, Some(t(9, 0, 0)));
        assert_eq!(store.output_tail(id).unwrap(), b"hello\nworld\n");
        assert!(store.running().unwrap().is_empty());
        let json = serde_json::to_value(&run).unwrap();
        assert_eq!(json["tick"], "2026-05-01T09:00:00Z");
        assert_eq!(json["status"], "failed");
        assert!(json.get("owner").is_none());
    }

    #[test]
    fn an_outcome_written_late_is_recorded_whole_and_only_over_a_running_run() {
        let (_dir, store) = store();
        let running = store
            .claim(&new_run("a", Some(t(9, 0, 0))))
            .unwrap()
            .unwrap();
        let abandoned = store
            .claim(&new_run("b", Some(t(9, 0, 0))))
            .unwrap()
            .unwrap();
        assert!(store.mark_abandoned(abandoned, t(9, 1, 0), "peer").unwrap());
        let outcome = RunOutcome {
            status: RunStatus::Failed,
            finished_at: t(9, 0, 3),
            duration_ms: Some(3000),
            exit_code: Some(3),
            signal: None,
            output_bytes: 6,
            output_tail: std::sync::Arc::from(&b"late\n"[..]),
            error: None,
        };
        let recorded = store
            .finish_many_if_running(&[(running, outcome.clone()), (abandoned, outcome)])
            .unwrap();
        assert_eq!(recorded, [true, false]);
        let a = store.get(running).unwrap().unwrap();
        assert_eq!(
            (a.status, a.exit_code, a.output_bytes),
            (RunStatus::Failed, Some(3), 6)
        );
        assert_eq!(store.output_tail(running).unwrap(), b"late\n");
        let b = store.get(abandoned).unwrap().unwrap();
        assert_eq!((b.status, b.exit_code), (RunStatus::Abandoned, None));
        assert!(store.output_tail(abandoned).unwrap().is_empty());
    }

    #[test]
    fn a_skipped_tick_is_recorded_finished_with_its_reason() {
        let (_dir, store) = store();
        let mut run = new_run("a", Some(t(9, 0, 0)));
        run.status = RunStatus::Skipped;
        run.error = Some("already running (run 1)".into());
        let id = store.claim(&run).unwrap().unwrap();
        let rec = store.get(id).unwrap().unwrap();
        assert_eq!(rec.status, RunStatus::Skipped);
        assert_eq!(rec.finished_at, Some(t(9, 0, 0)));
        assert_eq!(rec.error.as_deref(), Some("already running (run 1)"));
        assert!(store.running().unwrap().is_empty());
    }

    #[test]
    fn history_filters_and_orders_newest_first() {
        let (_dir, store) = store();
        for minute in 0..5 {
            let mut run = new_run(
                if minute % 2 == 0 { "a" } else { "b" },
                Some(t(9, minute, 0)),
            );
            run.at = t(9, minute, 0);
            let id = store.claim(&run).unwrap().unwrap();
            if minute == 4 {
                store
                    .finish(
                        id,
                        &RunOutcome {
                            status: RunStatus::Succeeded,
                            finished_at: t(9, 4, 1),
                            duration_ms: Some(1000),
                            exit_code: Some(0),
                            signal: None,
                            output_bytes: 0,
                            output_tail: std::sync::Arc::from(&b""[..]),
                            error: None,
                        },
                    )
                    .unwrap();
            }
        }
        let all = store.history(&HistoryFilter::default()).unwrap();
        let ids: Vec<i64> = all.iter().map(|r| r.id.0).collect();
        assert_eq!(ids, [5, 4, 3, 2, 1]);
        let a = store
            .history(&HistoryFilter {
                job: Some("a".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(a.iter().map(|r| r.id.0).collect::<Vec<_>>(), [5, 3, 1]);
        let recent = store
            .history(&HistoryFilter {
                since: Some(t(9, 3, 0)),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(recent.len(), 2);
        let ok = store
            .history(&HistoryFilter {
                status: Some(RunStatus::Succeeded),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(ok.iter().map(|r| r.id.0).collect::<Vec<_>>(), [5]);
        let limited = store
            .history(&HistoryFilter {
                limit: Some(2),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(limited.len(), 2);
        let latest = store.latest_runs().unwrap();
        let mut latest: Vec<(String, i64)> = latest.into_iter().map(|r| (r.job, r.id.0)).collect();
        latest.sort();
        assert_eq!(latest, [("a".to_string(), 5), ("b".to_string(), 4)]);
    }

    #[test]
    fn abandoning_only_touches_running_rows() {
        let (_dir, store) = store();
        let id = store
            .claim(&new_run("a", Some(t(9, 0, 0))))
            .unwrap()
            .unwrap();
        assert!(store.mark_abandoned(id, t(9, 5, 0), "owner died").unwrap());
        assert!(!store.mark_abandoned(id, t(9, 6, 0), "again").unwrap());
        let rec = store.get(id).unwrap().unwrap();
        assert_eq!(rec.status, RunStatus::Abandoned);
        assert_eq!(rec.finished_at, Some(t(9, 5, 0)));
    }

    #[test]
    fn a_version_3_history_migrates_and_accepts_missed_ticks() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join("jobrun.db")).unwrap();
            conn.execute_batch(include_str!("../../../migrations/sqlite/0001_runs.sql"))
                .unwrap();
            conn.execute_batch(include_str!("../../../migrations/sqlite/0002_daemons.sql"))
                .unwrap();
            conn.execute_batch(include_str!(
                "../../../migrations/sqlite/0003_followups.sql"
            ))
            .unwrap();
            conn.pragma_update(None, "user_version", 3).unwrap();
            conn.pragma_update(None, "application_id", super::super::APPLICATION_ID)
                .unwrap();
            conn.execute(
                "INSERT INTO runs (job, trigger, tick, claimed_at, status, host, owner, attempt)
                 VALUES ('old', 'schedule', '2026-05-01T09:00:00.000Z', '2026-05-01T09:00:00.000Z',
                         'succeeded', 'h', 'o', 1)",
                [],
            )
            .unwrap();
            let refused = conn.execute(
                "INSERT INTO runs (job, trigger, claimed_at, status, host, owner)
                 VALUES ('x', 'manual', '2026-05-01T09:00:00.000Z', 'missed', 'h', 'o')",
                [],
            );
            assert!(refused.is_err(), "version 3 knows no `missed`");
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let old = store.history(&HistoryFilter::default()).unwrap();
        assert_eq!(old.len(), 1);
        assert_eq!(
            (old[0].job.as_str(), old[0].status),
            ("old", RunStatus::Succeeded)
        );
        let mut missed = new_run("old", Some(t(9, 1, 0)));
        missed.status = RunStatus::Missed;
        missed.error = Some("not claimed: database or disk is full".into());
        let id = store.claim(&missed).unwrap().expect("a new tick");
        assert!(id > old[0].id, "ids keep growing after the rebuild");
        // The tick key still holds after the rebuild.
        assert_eq!(store.claim(&missed).unwrap(), None);
        let rec = store.get(id).unwrap().unwrap();
        assert_eq!(rec.status, RunStatus::Missed);
        assert!(rec.finished_at.is_some());
    }
}
