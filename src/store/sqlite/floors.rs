//! Claim floors (schema 7, `migrations/sqlite/0007_claim_floors.sql`):
//! claims outlive history pruning (issue 14, guarantee 10).
//!
//! A tick's claim is its `runs` row, so pruning a run would free its tick.
//! Pruning therefore raises each job's floor to the newest tick among the
//! runs it removed (never lowers it), in the transaction that removes them,
//! and every tick at or before a job's floor counts as claimed: the claim's
//! insert (`runs.rs`) refuses it and `tick_claimed` reads it as taken.
//! Conservative (a genuinely missed tick older than retention can no longer
//! be caught up) and bounded (one row per job). A renamed job's floor moves
//! with it (`names.rs`).
//!
//! Owns the SQL of `claim_floors`.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Params, Transaction, TransactionBehavior};

use super::sql;
use crate::store::{Operation, StoreError};

/// Raises `job`'s floor to `tick` (text, as `runs.tick`); never lowers it.
fn raise(tx: &Transaction<'_>, job: &str, tick: &str) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "INSERT INTO claim_floors (job, tick) VALUES (?1, ?2)
         ON CONFLICT (job) DO UPDATE SET tick = max(tick, excluded.tick)",
    )?
    .execute(params![job, tick])
}

/// Runs `delete`, a `DELETE FROM runs ... RETURNING job, tick`, in one
/// immediate transaction that also raises the floor of each job it removed
/// runs of to the newest tick among them: a crash never leaves a pruned
/// tick without its floor. Returns how many runs were removed.
pub(super) fn delete_runs(
    conn: &mut Connection,
    delete: &str,
    values: impl Params,
    doing: &'static str,
) -> Result<usize, StoreError> {
    let failed = || sql(Operation::Prune, doing);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failed())?;
    let mut newest: HashMap<String, String> = HashMap::new();
    let mut removed = 0;
    {
        let mut stmt = tx.prepare_cached(delete).map_err(failed())?;
        let mut rows = stmt.query(values).map_err(failed())?;
        while let Some(row) = rows.next().map_err(failed())? {
            removed += 1;
            let (job, tick): (String, Option<String>) =
                (row.get(0).map_err(failed())?, row.get(1).map_err(failed())?);
            if let Some(tick) = tick {
                let slot = newest.entry(job).or_default();
                if tick > *slot {
                    *slot = tick;
                }
            }
        }
    }
    for (job, tick) in &newest {
        raise(&tx, job, tick).map_err(sql(Operation::Prune, "raising a claim floor"))?;
    }
    tx.commit().map_err(failed())?;
    Ok(removed)
}

/// Moves each renamed job's floor to its new name (the later of both when
/// the new name has one). All floors of the moves' old names are read
/// before any is written, so swapped names swap their floors. A `legacy`
/// move (runs of an earlier rule's name, which several jobs may have
/// shared) copies the floor and leaves the old name's in place.
pub(super) fn move_floors(
    tx: &Transaction<'_>,
    moves: &[(&str, &str, Option<i64>)],
) -> Result<(), StoreError> {
    let failed = || sql(Operation::Rename, "moving a renamed job's claim floor");
    let mut floors = Vec::new();
    for (from, to, legacy) in moves {
        let tick: Option<String> = tx
            .query_row(
                "SELECT tick FROM claim_floors WHERE job = ?1",
                [from],
                |r| r.get(0),
            )
            .optional()
            .map_err(failed())?;
        if let Some(tick) = tick {
            floors.push((*from, *to, legacy.is_some(), tick));
        }
    }
    for (from, _, legacy, _) in &floors {
        if !legacy {
            tx.execute("DELETE FROM claim_floors WHERE job = ?1", [from])
                .map_err(failed())?;
        }
    }
    for (_, to, _, tick) in &floors {
        raise(tx, to, tick).map_err(failed())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::job::{DerivedName, RunStatus, Trigger};
    use crate::store::sqlite::SqliteStore;
    use crate::store::{NewRun, Retention};

    impl SqliteStore {
        /// The job's claim floor: every tick at or before it counts as claimed.
        fn claim_floor(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
            let failed = || sql(Operation::History, "reading a claim floor");
            let tick: Option<String> = self
                .conn()
                .query_row("SELECT tick FROM claim_floors WHERE job = ?1", [job], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(failed())?;
            tick.as_deref()
                .map(super::super::runs::parse_time)
                .transpose()
                .map_err(failed())
        }

        /// Raises a job's floor as pruning would.
        fn raise_floor(&self, job: &str, tick: DateTime<Utc>) {
            let mut conn = self.conn();
            let tx = conn.transaction().unwrap();
            raise(&tx, job, &super::super::runs::fmt_time(tick)).unwrap();
            tx.commit().unwrap();
        }
    }

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + minute * 60, 0).unwrap()
    }

    fn run(job: &str, minute: i64, attempt: u32) -> NewRun {
        NewRun {
            job: job.into(),
            trigger: Trigger::Schedule,
            tick: Some(at(minute)),
            status: RunStatus::Skipped,
            at: at(minute),
            host: "h".into(),
            owner: "o".into(),
            error: None,
            parent_id: None,
            attempt,
        }
    }

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        (dir, store)
    }

    fn keep(keep_runs: u32) -> Retention {
        Retention {
            keep_days: 10_000,
            keep_runs,
        }
    }

    #[test]
    fn pruning_raises_the_floor_to_the_newest_removed_tick_and_never_lowers_it() {
        let (_dir, s) = store();
        // Claimed out of tick order: the floor is the newest tick, not the
        // last run removed.
        for minute in [3, 1, 2, 5, 4] {
            s.claim(&run("a", minute, 1)).unwrap().unwrap();
        }
        assert_eq!(s.claim_floor("a").unwrap(), None);
        let now = at(10);
        // Keeps the two newest by id (5, 4): removes 3, 1, 2.
        assert_eq!(s.prune(now, keep(2)).unwrap(), 3);
        assert_eq!(s.claim_floor("a").unwrap(), Some(at(3)));
        for minute in [1, 2, 3] {
            assert!(s.tick_claimed("a", at(minute)).unwrap(), "minute {minute}");
            assert_eq!(s.claim(&run("a", minute, 1)).unwrap(), None);
            assert_eq!(s.claim(&run("a", minute, 2)).unwrap(), None, "any attempt");
        }
        assert_eq!(s.claim(&run("a", 0, 1)).unwrap(), None, "before the floor");
        // Never lowered: not by a lower raise, and a prune raises it only
        // to the newest tick it removed (5:00 and 4:00 go; 6:00 stays).
        s.raise_floor("a", at(1));
        assert_eq!(s.claim_floor("a").unwrap(), Some(at(3)), "never lowered");
        s.claim(&run("a", 6, 1)).unwrap().unwrap();
        assert_eq!(s.prune(now, keep(1)).unwrap(), 2);
        assert_eq!(s.claim_floor("a").unwrap(), Some(at(5)));
        assert!(
            s.claim(&run("a", 7, 1)).unwrap().is_some(),
            "after the floor"
        );
        // A job with no pruned run has no floor; runs without a tick raise none.
        assert_eq!(s.claim_floor("b").unwrap(), None);
        let mut manual = run("c", 0, 1);
        manual.tick = None;
        s.claim(&manual).unwrap().unwrap();
        s.claim(&manual).unwrap().unwrap();
        // One of c's two runs and a's 6:00 go.
        assert_eq!(s.prune(now, keep(1)).unwrap(), 2);
        assert_eq!(s.claim_floor("a").unwrap(), Some(at(6)));
        assert_eq!(s.claim_floor("c").unwrap(), None);
        assert!(s.claim(&manual).unwrap().is_some(), "no tick, no floor");
    }

    #[test]
    fn a_renamed_job_carries_its_floor_and_swapped_names_swap_floors() {
        let (_dir, s) = store();
        let legacy = HashMap::new;
        let named = |key: &str, name: &str| DerivedName {
            key: key.into(),
            name: name.into(),
        };
        s.follow_names(&[named("k1", "a"), named("k2", "b")], legacy)
            .unwrap();
        s.raise_floor("a", at(5));
        s.raise_floor("b", at(2));
        // "c" (a YAML job) has a floor of its own, later than a's.
        s.raise_floor("c", at(9));
        s.follow_names(&[named("k1", "b"), named("k2", "a")], legacy)
            .unwrap();
        assert_eq!(s.claim_floor("b").unwrap(), Some(at(5)));
        assert_eq!(s.claim_floor("a").unwrap(), Some(at(2)));
        assert_eq!(s.claim(&run("b", 4, 1)).unwrap(), None);
        assert!(s.claim(&run("a", 4, 1)).unwrap().is_some());
        // Onto a name with a floor of its own: the later of both.
        s.follow_names(&[named("k1", "c"), named("k2", "a")], legacy)
            .unwrap();
        assert_eq!(s.claim_floor("c").unwrap(), Some(at(9)));
        assert_eq!(s.claim_floor("b").unwrap(), None, "the old name is free");
        s.follow_names(&[named("k1", "c"), named("k2", "d")], legacy)
            .unwrap();
        assert_eq!(s.claim_floor("d").unwrap(), Some(at(2)));
        s.follow_names(&[named("k1", "c"), named("k2", "c2")], legacy)
            .unwrap();
        s.follow_names(&[named("k1", "c2x"), named("k2", "c")], legacy)
            .unwrap();
        // Made at once: c takes c2's floor, not the later of its own.
        assert_eq!(s.claim_floor("c").unwrap(), Some(at(2)));
        assert_eq!(s.claim_floor("c2x").unwrap(), Some(at(9)));
    }
}
