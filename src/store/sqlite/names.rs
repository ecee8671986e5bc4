//! Crontab jobs' names in the state (schema 6): when a job's derived name
//! changes, its runs move to the new name, so its history, its last run
//! (catch-up) and its (job, tick) claims stay with it, and so does its claim
//! floor (`floors.rs`).
//!
//! Owns the SQL of `job_names` and `legacy_names`
//! (`migrations/sqlite/0006_job_names.sql`). Must not know how names are derived.

use std::collections::HashMap;

use rusqlite::{params, Transaction, TransactionBehavior};

use super::{sql, SqliteStore};
use crate::job::DerivedName;
use crate::store::{Operation, StoreError};

/// The error of following renamed jobs, `doing` in words.
fn rename(doing: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    sql(Operation::Rename, doing)
}

impl SqliteStore {
    /// Records each job's current name under its identity and moves its
    /// runs there from the name they were recorded under: the name recorded
    /// for its identity before, or, for a job recorded for the first time,
    /// the name jobrun's earlier rule gave it (only its runs recorded before
    /// schema 6, and only then). One transaction; every move is
    /// made at once (through a name of its own), so a job taking another's
    /// old name never collects that job's runs. A run whose new name and
    /// tick are already claimed stays where it is. Returns how many runs moved.
    ///
    /// `legacy` gives the earlier rule's names by identity; it is called
    /// only when the state has runs from before schema 6 and a job is new to it.
    pub fn follow_names(
        &self,
        names: &[DerivedName],
        legacy: impl FnOnce() -> HashMap<String, String>,
    ) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(rename("starting to follow renamed jobs"))?;
        let legacy_upto: Option<i64> = tx
            .query_row("SELECT max(upto) FROM legacy_names", [], |r| r.get(0))
            .map_err(rename("reading the legacy names' mark"))?;
        let legacy_upto = legacy_upto.filter(|&upto| upto > 0);
        // Read once, written only where a name changed: a daemon with
        // 100,000 crontab jobs starts and reloads without 100,000 writes.
        let recorded: HashMap<String, String> = {
            let mut stmt = tx
                .prepare("SELECT key, name FROM job_names")
                .map_err(rename("reading the jobs' recorded names"))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(rename("reading the jobs' recorded names"))?;
            rows.collect::<Result<_, _>>()
                .map_err(rename("reading the jobs' recorded names"))?
        };
        let legacy = match legacy_upto {
            Some(_) if names.iter().any(|d| !recorded.contains_key(&d.key)) => legacy(),
            _ => HashMap::new(),
        };
        // (from, to, only runs up to this id)
        let mut moves: Vec<(&str, &str, Option<i64>)> = Vec::new();
        let mut record = tx
            .prepare(
                "INSERT INTO job_names (key, name) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET name = excluded.name",
            )
            .map_err(rename("recording a job's name"))?;
        for d in names {
            match recorded.get(&d.key) {
                Some(before) if *before == d.name => continue,
                Some(before) => moves.push((before, &d.name, None)),
                None => {
                    let earlier = legacy.get(&d.key).filter(|l| **l != d.name);
                    if let (Some(upto), Some(earlier)) = (legacy_upto, earlier) {
                        moves.push((earlier, &d.name, Some(upto)));
                    }
                }
            }
            record
                .execute(params![d.key, d.name])
                .map_err(rename("recording a job's name"))?;
        }
        drop(record);
        let moved = move_runs(&tx, &moves)?;
        super::floors::move_floors(&tx, &moves)?;
        tx.commit().map_err(rename("committing renamed jobs"))?;
        Ok(moved)
    }
}

/// Moves runs in two steps, each run first to a name no job can have (a NUL
/// byte and the move's number), then to its new name.
fn move_runs(
    tx: &Transaction<'_>,
    moves: &[(&str, &str, Option<i64>)],
) -> Result<usize, StoreError> {
    let parked = |i: usize| format!("\u{0}moving {i}");
    for (i, (from, _, upto)) in moves.iter().enumerate() {
        tx.execute(
            "UPDATE OR IGNORE runs SET job = ?1 WHERE job = ?2 AND (?3 IS NULL OR id <= ?3)",
            params![parked(i), from, upto],
        )
        .map_err(rename("moving a renamed job's runs"))?;
    }
    let mut moved = 0;
    for (i, (from, to, _)) in moves.iter().enumerate() {
        moved += tx
            .execute(
                "UPDATE OR IGNORE runs SET job = ?1 WHERE job = ?2",
                params![to, parked(i)],
            )
            .map_err(rename("moving a renamed job's runs"))?;
        // Runs whose (job, tick) the new name had already claimed stay put.
        tx.execute(
            "UPDATE OR IGNORE runs SET job = ?1 WHERE job = ?2",
            params![from, parked(i)],
        )
        .map_err(rename("moving a renamed job's runs"))?;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::job::{RunId, RunStatus, Trigger};
    use crate::store::{HistoryFilter, NewRun};

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + minute * 60, 0).unwrap()
    }

    fn claim(store: &SqliteStore, job: &str, minute: i64) -> RunId {
        store
            .claim(&NewRun {
                job: job.into(),
                trigger: Trigger::Schedule,
                tick: Some(at(minute)),
                status: RunStatus::Running,
                at: at(minute),
                host: "h".into(),
                owner: "o".into(),
                error: None,
                parent_id: None,
                attempt: 1,
            })
            .unwrap()
            .expect("claimed")
    }

    fn runs_of(store: &SqliteStore, job: &str) -> Vec<RunId> {
        let filter = HistoryFilter {
            job: Some(job.into()),
            ..Default::default()
        };
        let mut ids: Vec<RunId> = store
            .history(&filter)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    fn named(key: &str, name: &str, legacy: &str) -> (DerivedName, String) {
        let d = DerivedName {
            key: key.into(),
            name: name.into(),
        };
        (d, legacy.into())
    }

    /// Follows `names`, each with its earlier rule's name.
    fn follow(store: &SqliteStore, names: &[(DerivedName, String)]) -> usize {
        let derived: Vec<DerivedName> = names.iter().map(|(d, _)| d.clone()).collect();
        let legacy = || {
            names
                .iter()
                .filter(|(_, l)| !l.is_empty())
                .map(|(d, l)| (d.key.clone(), l.clone()))
                .collect()
        };
        store.follow_names(&derived, legacy).unwrap()
    }

    #[test]
    fn runs_recorded_under_the_earlier_rule_move_to_the_new_name_once() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(tmp.path()).unwrap();
        // A state from before schema 6: its runs, then the mark the
        // migration leaves (the last of them).
        let certbot = claim(&store, "sleep", 1);
        let hourly = claim(&store, "run-parts", 2);
        let find = claim(&store, "cat", 2);
        let daily = claim(&store, "run-parts-2", 3);
        store
            .conn()
            .execute("INSERT INTO legacy_names (upto) VALUES (?1)", [daily.0])
            .unwrap();
        // Recorded by this version under the new name already.
        let newer = claim(&store, "certbot", 4);
        let names = [
            named("k1", "certbot", "sleep"),
            named("k2", "run-parts-cron.hourly", "run-parts"),
            named("k3", "run-parts-cron.daily", "run-parts-2"),
            named("k4", "backup", "backup"),
        ];
        assert_eq!(follow(&store, &names), 3);
        assert_eq!(runs_of(&store, "certbot"), [certbot, newer]);
        assert_eq!(runs_of(&store, "run-parts-cron.hourly"), [hourly]);
        assert_eq!(runs_of(&store, "run-parts-cron.daily"), [daily]);
        assert!(runs_of(&store, "sleep").is_empty());

        // Once: a later run under an earlier name is another job's.
        let other = claim(&store, "sleep", 5);
        assert_eq!(follow(&store, &names), 0);
        assert_eq!(runs_of(&store, "sleep"), [other]);

        // A job the first plan did not have finds its runs when it comes.
        let mut more = names.to_vec();
        more.push(named("k5", "munin-2c8703", "cat"));
        assert_eq!(follow(&store, &more), 1);
        assert_eq!(runs_of(&store, "munin-2c8703"), [find]);
    }

    #[test]
    fn a_renamed_job_takes_its_runs_and_two_jobs_can_swap_names() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(tmp.path()).unwrap();
        follow(
            &store,
            &[named("a", "backup", ""), named("b", "report", "")],
        );
        let a = claim(&store, "backup", 1);
        let b = claim(&store, "report", 1);
        // `backup` now shares its base: it gets a suffix, and its runs follow.
        follow(
            &store,
            &[named("a", "backup-1a2b3c", ""), named("b", "report", "")],
        );
        assert_eq!(runs_of(&store, "backup-1a2b3c"), [a]);
        assert!(runs_of(&store, "backup").is_empty());
        // Each takes the other's name at once: neither collects both.
        let moved = follow(
            &store,
            &[named("a", "report", ""), named("b", "backup-1a2b3c", "")],
        );
        assert_eq!(moved, 2);
        assert_eq!(runs_of(&store, "report"), [a]);
        assert_eq!(runs_of(&store, "backup-1a2b3c"), [b]);
    }
}
