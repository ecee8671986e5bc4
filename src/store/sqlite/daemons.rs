//! The `daemons` table: each daemon's heartbeat and what it loaded, and
//! pruning of the history.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::runs::{fmt_time, parse_time};
use super::{sql, SqliteStore};
use crate::store::{DaemonRecord, Loaded, Operation, Retention, StoreError};

/// Rows deleted per statement, so other processes' claims never wait long
/// for the write lock.
const PRUNE_BATCH: i64 = 2_000;

/// The write lock of another connection, given up when dropped (tests).
#[cfg(test)]
pub struct WriteLockGuard(rusqlite::Connection);

#[cfg(test)]
impl Drop for WriteLockGuard {
    fn drop(&mut self) {
        let _ = self.0.execute_batch("ROLLBACK");
    }
}

/// The daemon's heartbeat on a connection of its own (see
/// [`SqliteStore::heartbeat_writer`]); owned by the one thread that beats.
pub struct SqliteBeatWriter {
    conn: rusqlite::Connection,
}

impl SqliteBeatWriter {
    /// As [`SqliteStore::beat`], on this connection.
    pub fn beat(
        &self,
        owner: &str,
        pid: u32,
        host: &str,
        started_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        write_beat(&self.conn, owner, pid, host, started_at, now)
    }
}

fn write_beat(
    conn: &rusqlite::Connection,
    owner: &str,
    pid: u32,
    host: &str,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO daemons (owner, pid, host, started_at, last_beat) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (owner) DO UPDATE SET last_beat = excluded.last_beat, stopped_at = NULL",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            owner,
            pid,
            host,
            fmt_time(started_at),
            fmt_time(now)
        ])
    })
    .map(drop)
    .map_err(sql(Operation::Heartbeat, "recording a heartbeat"))
}

impl SqliteStore {
    /// Records that the daemon `owner` is alive at `now` (not flushed to disk
    /// before it returns: a beat lost in a power cut is stale anyway).
    pub fn beat(
        &self,
        owner: &str,
        pid: u32,
        host: &str,
        started_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        super::unflushed(&mut self.conn(), |conn| {
            write_beat(conn, owner, pid, host, started_at, now)
        })
    }

    /// Another connection holding the write lock (`BEGIN IMMEDIATE`) until
    /// the guard is dropped (tests).
    #[cfg(test)]
    pub fn hold_write_lock(&self) -> Result<WriteLockGuard, StoreError> {
        let op = Operation::Heartbeat;
        let conn = rusqlite::Connection::open(&self.path)
            .map_err(sql(op, "opening a second connection"))?;
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(sql(op, "taking the write lock"))?;
        Ok(WriteLockGuard(conn))
    }

    /// A connection of its own for the daemon's heartbeat, waiting at most
    /// `busy` for another process's write lock: a beat must never queue
    /// behind this process's claims (which share the store's connection) nor
    /// wait long for a `jobrun prune`; one that cannot be written is written
    /// at the next beat.
    pub fn heartbeat_writer(
        &self,
        busy: std::time::Duration,
    ) -> Result<SqliteBeatWriter, StoreError> {
        let op = Operation::Heartbeat;
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql(op, "opening the heartbeat's connection"))?;
        conn.busy_timeout(busy)
            .map_err(sql(op, "setting the heartbeat's busy timeout"))?;
        // Beats are never flushed (see `beat`); the WAL is already on.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql(op, "setting synchronous=NORMAL"))?;
        Ok(SqliteBeatWriter { conn })
    }

    /// Records what the daemon `owner` loaded (at start, and after each
    /// reload); creates its row if it has not beaten yet.
    pub fn record_loaded(
        &self,
        owner: &str,
        pid: u32,
        host: &str,
        started_at: DateTime<Utc>,
        now: DateTime<Utc>,
        loaded: &Loaded,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(loaded).map_err(|e| StoreError::Failed {
            operation: Operation::Heartbeat,
            doing: "recording what the daemon loaded",
            source: Box::new(e),
        })?;
        self.conn()
            .execute(
                "INSERT INTO daemons (owner, pid, host, started_at, last_beat, loaded) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (owner) DO UPDATE SET loaded = excluded.loaded",
                params![owner, pid, host, fmt_time(started_at), fmt_time(now), json],
            )
            .map_err(sql(Operation::Heartbeat, "recording what the daemon loaded"))?;
        Ok(())
    }

    /// Records a clean shutdown of the daemon `owner`.
    pub fn daemon_stopped(&self, owner: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE daemons SET stopped_at = ?2 WHERE owner = ?1",
                params![owner, fmt_time(now)],
            )
            .map_err(sql(Operation::Heartbeat, "recording a daemon stop"))?;
        Ok(())
    }

    /// Every daemon that has not stopped cleanly, latest beat first.
    /// The last moment any daemon of this state directory is known to have
    /// been scheduling: its clean stop, or its last heartbeat. `None` when no
    /// daemon ever ran here. The start of a downtime, for `catch_up`.
    pub fn last_daemon_seen(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let last: Option<String> = self
            .conn()
            .query_row(
                "SELECT max(coalesce(stopped_at, last_beat)) FROM daemons",
                [],
                |r| r.get(0),
            )
            .map_err(sql(Operation::Daemons, "querying daemons"))?;
        last.as_deref()
            .map(parse_time)
            .transpose()
            .map_err(sql(Operation::Daemons, "reading a daemon's time"))
    }

    /// Shrinks the WAL file back to nothing once the pruned pages are in the
    /// database. On a connection of its own with a short busy timeout: a
    /// TRUNCATE checkpoint waits for readers, and must not hold up this
    /// process's claims (which share the store's connection) while it does.
    /// Not done now is not an error: the next prune tries again.
    fn truncate_wal(&self) {
        let result = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|conn| {
            conn.busy_timeout(std::time::Duration::from_secs(1))?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
        });
        match result {
            Ok(0) => {}
            Ok(_) => tracing::debug!("WAL not truncated: other connections were busy"),
            Err(e) => tracing::debug!(error = %e, "WAL not truncated"),
        }
    }

    pub fn daemons(&self) -> Result<Vec<DaemonRecord>, StoreError> {
        self.query_daemons("WHERE stopped_at IS NULL ORDER BY last_beat DESC", [])
    }

    /// The daemon `owner` as it last reported itself, stopped or not; `None`
    /// when it never recorded a heartbeat (a `jobrun run` process does not).
    pub fn daemon(&self, owner: &str) -> Result<Option<DaemonRecord>, StoreError> {
        Ok(self.query_daemons("WHERE owner = ?1", [owner])?.pop())
    }

    fn query_daemons(
        &self,
        filter: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<DaemonRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT owner, pid, host, started_at, last_beat, stopped_at, loaded FROM daemons {filter}"
            ))
            .map_err(sql(Operation::Daemons, "querying daemons"))?;
        let rows = stmt
            .query_map(params, |r| {
                Ok(DaemonRecord {
                    owner: r.get(0)?,
                    pid: r.get(1)?,
                    host: r.get(2)?,
                    started_at: parse_time(&r.get::<_, String>(3)?)?,
                    last_beat: parse_time(&r.get::<_, String>(4)?)?,
                    stopped_at: r
                        .get::<_, Option<String>>(5)?
                        .as_deref()
                        .map(parse_time)
                        .transpose()?,
                    // Unreadable (written by a newer version): as if none.
                    loaded: r
                        .get::<_, Option<String>>(6)?
                        .and_then(|j| serde_json::from_str(&j).ok()),
                })
            })
            .map_err(sql(Operation::Daemons, "querying daemons"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql(Operation::Daemons, "reading daemons"))
    }

    /// Applies the retention: removes finished runs older than `keep_days` and
    /// all but the newest `keep_runs` of each job (never a `running` one),
    /// raising each job's claim floor to the newest tick removed (so no
    /// pruned tick can be claimed again, see `floors.rs`), then truncates
    /// the WAL so the files on disk shrink back. Returns how many runs were
    /// removed.
    pub fn prune(&self, now: DateTime<Utc>, retention: Retention) -> Result<u64, StoreError> {
        let cutoff = fmt_time(now - chrono::Duration::days(i64::from(retention.keep_days)));
        let mut removed = 0u64;
        loop {
            let n = super::floors::delete_runs(
                &mut self.conn(),
                "DELETE FROM runs WHERE id IN (
                     SELECT id FROM runs WHERE status != 'running' AND claimed_at < ?1 LIMIT ?2)
                 RETURNING job, tick",
                params![cutoff, PRUNE_BATCH],
                "pruning old runs",
            )?;
            removed += n as u64;
            if (n as i64) < PRUNE_BATCH {
                break;
            }
        }
        let jobs: Vec<String> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare("SELECT job FROM runs GROUP BY job HAVING count(*) > ?1")
                .map_err(sql(Operation::Prune, "counting runs per job"))?;
            let rows = stmt
                .query_map([retention.keep_runs], |r| r.get(0))
                .map_err(sql(Operation::Prune, "counting runs per job"))?;
            rows.collect::<Result<_, _>>()
                .map_err(sql(Operation::Prune, "counting runs per job"))?
        };
        for job in jobs {
            loop {
                // The id of the newest run that no longer fits, found through
                // the (job, id) index.
                let n = super::floors::delete_runs(
                    &mut self.conn(),
                    "DELETE FROM runs WHERE id IN (
                         SELECT id FROM runs WHERE job = ?1 AND status != 'running' AND id <= (
                             SELECT id FROM runs WHERE job = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)
                         LIMIT ?3)
                     RETURNING job, tick",
                    params![job, retention.keep_runs, PRUNE_BATCH],
                    "pruning runs beyond the per-job limit",
                )?;
                removed += n as u64;
                if (n as i64) < PRUNE_BATCH {
                    break;
                }
            }
        }
        self.truncate_wal();
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{RunId, RunOutcome, RunStatus, Trigger};
    use crate::store::{HistoryFilter, NewRun};
    use chrono::TimeZone;

    fn t(day: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, day, 0, 0, s).unwrap()
    }

    fn add(store: &SqliteStore, job: &str, at: DateTime<Utc>, finished: bool) -> RunId {
        let id = store
            .claim(&NewRun {
                job: job.into(),
                trigger: Trigger::Schedule,
                tick: Some(at),
                status: RunStatus::Running,
                at,
                host: "h".into(),
                owner: "o".into(),
                error: None,
                parent_id: None,
                attempt: 1,
            })
            .unwrap()
            .unwrap();
        if finished {
            store
                .finish(
                    id,
                    &RunOutcome {
                        status: RunStatus::Succeeded,
                        finished_at: at,
                        duration_ms: Some(1),
                        exit_code: Some(0),
                        signal: None,
                        output_bytes: 0,
                        output_tail: std::sync::Arc::from(&b""[..]),
                        error: None,
                    },
                )
                .unwrap();
        }
        id
    }

    #[test]
    fn prune_keeps_the_newest_runs_per_job_recent_runs_and_running_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let old_running = add(&store, "a", t(1, 0), false);
        for s in 1..=10 {
            add(&store, "a", t(20, s), true);
            add(&store, "b", t(20, s), true);
        }
        add(&store, "c", t(1, 5), true); // older than keep_days
        let removed = store
            .prune(
                t(30, 0),
                Retention {
                    keep_days: 20,
                    keep_runs: 3,
                },
            )
            .unwrap();
        let left = |job: &str| {
            store
                .history(&HistoryFilter {
                    job: Some(job.into()),
                    ..Default::default()
                })
                .unwrap()
        };
        let a: Vec<RunId> = left("a").iter().map(|r| r.id).collect();
        assert_eq!(a.len(), 4, "3 newest + the running one: {a:?}");
        assert!(a.contains(&old_running), "a running run is never pruned");
        assert_eq!(left("b").len(), 3);
        assert!(left("c").is_empty(), "older than keep_days");
        assert_eq!(removed, 7 + 7 + 1);
        assert_eq!(
            std::fs::metadata(dir.path().join("jobrun.db-wal"))
                .map(|m| m.len())
                .unwrap_or(0),
            0,
            "the WAL is truncated after pruning"
        );
    }

    #[test]
    fn heartbeats_are_upserted_and_a_clean_stop_hides_the_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.beat("h:1:x", 1, "h", t(1, 0), t(1, 0)).unwrap();
        store.beat("h:1:x", 1, "h", t(1, 0), t(1, 10)).unwrap();
        let daemons = store.daemons().unwrap();
        assert_eq!(daemons.len(), 1);
        assert_eq!(daemons[0].last_beat, t(1, 10));
        store.daemon_stopped("h:1:x", t(1, 11)).unwrap();
        assert!(store.daemons().unwrap().is_empty());
        let stopped = store.daemon("h:1:x").unwrap().expect("still on record");
        assert_eq!(stopped.stopped_at, Some(t(1, 11)));
        assert!(store.daemon("h:2:y").unwrap().is_none());
    }

    #[test]
    fn what_a_daemon_loaded_is_recorded_before_and_after_its_beats() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let loaded = Loaded {
            jobs: vec!["a".into()],
            errors: vec!["/etc/crontab:3: bad".into()],
            warnings: Vec::new(),
        };
        store
            .record_loaded("h:1:x", 1, "h", t(1, 0), t(1, 0), &loaded)
            .unwrap();
        store.beat("h:1:x", 1, "h", t(1, 0), t(1, 10)).unwrap();
        let d = store.daemon("h:1:x").unwrap().unwrap();
        assert_eq!(d.loaded.as_ref(), Some(&loaded));
        assert_eq!(d.last_beat, t(1, 10));
        let fixed = Loaded {
            jobs: vec!["a".into(), "b".into()],
            ..Loaded::default()
        };
        store
            .record_loaded("h:1:x", 1, "h", t(1, 0), t(1, 20), &fixed)
            .unwrap();
        let d = store.daemon("h:1:x").unwrap().unwrap();
        assert_eq!(d.loaded, Some(fixed));
        assert_eq!(d.last_beat, t(1, 10), "recording what it loaded is no beat");
    }
}
