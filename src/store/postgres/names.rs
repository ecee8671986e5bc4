//! Crontab jobs' names in the PostgreSQL state (schema 2, `job_names`): when
//! a job's derived name changes, its runs, its claims and its claim floor
//! move to the new name, as SQLite's `store/sqlite/names.rs` moves runs. A PostgreSQL state
//! never held names from before names were followed, so there are no legacy
//! names to read here.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_postgres::{Client, Transaction};

use super::{sql, PgError};
use crate::job::DerivedName;

/// Records each job's current name under its identity and moves its runs
/// and claims there from the name recorded before. One transaction under a
/// transaction-scoped advisory lock (two hosts reloading at once move each
/// job once); every move goes through a name no job can have, so a job
/// taking another's old name never collects that job's runs. A claim whose
/// new (job, tick, attempt) is already taken stays where it is, and so does
/// its run. Returns how many runs moved.
/// A moved run (alias `r`, moving to job `$1`) keeps its `forbid` mark
/// unless a `forbid` run of the name it moves to is going: the partial
/// unique index allows one, and a rename must neither fail as a whole nor
/// leave the run behind (SQLite moves it; both runs then end as they would).
/// New claims of the name still find the other run and skip.
const KEEP_FORBID: &str = "forbid = r.forbid AND NOT (r.status = 'running' AND EXISTS (
                               SELECT 1 FROM runs o WHERE o.job = $1 AND o.status = 'running'
                                                      AND o.forbid))";

pub async fn follow_names(client: &mut Client, names: &[DerivedName]) -> Result<usize, PgError> {
    /// "JBRNNAME"
    const LOCK: i64 = 0x4a42_524e_4e41_4d45;
    let tx = client
        .transaction()
        .await
        .map_err(sql("starting to follow renamed jobs"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await
        .map_err(sql("taking the rename lock"))?;
    let recorded: HashMap<String, String> = tx
        .query("SELECT key, name FROM job_names", &[])
        .await
        .map_err(sql("reading the jobs' recorded names"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut moves: Vec<(&str, &str)> = Vec::new();
    for d in names {
        match recorded.get(&d.key) {
            Some(before) if *before == d.name => continue,
            Some(before) => moves.push((before, &d.name)),
            None => {}
        }
        tx.execute(
            "INSERT INTO job_names (key, name) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET name = EXCLUDED.name",
            &[&d.key, &d.name],
        )
        .await
        .map_err(sql("recording a job's name"))?;
    }
    let parked = |i: usize| format!("\u{1}moving {i}");
    for (i, (from, _)) in moves.iter().enumerate() {
        let park = parked(i);
        tx.execute("UPDATE runs SET job = $1 WHERE job = $2", &[&park, from])
            .await
            .map_err(sql("moving a renamed job's runs"))?;
        tx.execute("UPDATE claims SET job = $1 WHERE job = $2", &[&park, from])
            .await
            .map_err(sql("moving a renamed job's claims"))?;
    }
    let mut moved = 0;
    for (i, (from, to)) in moves.iter().enumerate() {
        let park = parked(i);
        tx.execute(
            "UPDATE claims c SET job = $1 WHERE job = $2 AND NOT EXISTS (
                 SELECT 1 FROM claims k WHERE k.job = $1 AND k.tick = c.tick
                                          AND k.attempt = c.attempt)",
            &[to, &park],
        )
        .await
        .map_err(sql("moving a renamed job's claims"))?;
        // A run goes with its claim: one whose (tick, attempt) the new name
        // already held stays under the old name, as on SQLite (its history
        // never shows one tick twice).
        moved += tx
            .execute(
                &format!(
                    "UPDATE runs r SET job = $1, {KEEP_FORBID} WHERE job = $2 AND (
                         r.tick IS NULL OR NOT EXISTS (
                         SELECT 1 FROM claims k WHERE k.job = $1 AND k.tick = r.tick
                            AND k.attempt = r.attempt AND k.run_id IS DISTINCT FROM r.id))"
                ),
                &[to, &park],
            )
            .await
            .map_err(sql("moving a renamed job's runs"))?;
        // What the new name had already claimed stays under the old one.
        tx.execute("UPDATE claims SET job = $1 WHERE job = $2", &[from, &park])
            .await
            .map_err(sql("moving a renamed job's claims"))?;
        tx.execute(
            &format!("UPDATE runs r SET job = $1, {KEEP_FORBID} WHERE job = $2"),
            &[from, &park],
        )
        .await
        .map_err(sql("moving a renamed job's runs"))?;
    }
    move_floors(&tx, &moves).await?;
    tx.commit().await.map_err(sql("committing renamed jobs"))?;
    Ok(usize::try_from(moved).unwrap_or(usize::MAX))
}

/// Moves each renamed job's claim floor to its new name (the later of both
/// when the new name has one). Every old name's floor is read and deleted
/// before any is written, so swapped names swap their floors.
async fn move_floors(tx: &Transaction<'_>, moves: &[(&str, &str)]) -> Result<(), PgError> {
    let failed = || sql("moving a renamed job's claim floor");
    let mut floors: Vec<(&str, DateTime<Utc>)> = Vec::new();
    for (from, to) in moves {
        let tick = tx
            .query_opt(
                "DELETE FROM claim_floors WHERE job = $1 RETURNING tick",
                &[from],
            )
            .await
            .map_err(failed())?;
        if let Some(row) = tick {
            floors.push((to, row.get(0)));
        }
    }
    for (to, tick) in floors {
        tx.execute(
            "INSERT INTO claim_floors (job, tick) VALUES ($1, $2)
             ON CONFLICT (job) DO UPDATE SET tick = GREATEST(claim_floors.tick, EXCLUDED.tick)",
            &[&to, &tick],
        )
        .await
        .map_err(failed())?;
    }
    Ok(())
}
