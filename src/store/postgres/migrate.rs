//! Schema versions for PostgreSQL: `migrations/postgres/NNNN_*.sql`, compiled
//! in and applied in order, as SQLite's are. The version is the highest row
//! of `jobrun_migrations`. All of it runs in one transaction under a
//! transaction-scoped advisory lock, so several daemons starting at once
//! against a new database migrate it once; a database newer than this jobrun
//! is refused before anything is written.

use tokio_postgres::Client;

use super::{sql, PgError};

/// The migrations, in order; version N is the N-th entry.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_fleet.sql"),
    include_str!("../../../migrations/postgres/0002_member_details.sql"),
];

/// The schema version this jobrun writes.
pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// The advisory lock key every jobrun takes while migrating ("JBRNMIGR").
const MIGRATION_LOCK: i64 = 0x4a42_524e_4d49_4752;

/// Reads the schema version without writing (0 for a database jobrun has
/// never used).
pub async fn version(client: &Client) -> Result<i64, PgError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('jobrun_migrations') IS NOT NULL", &[])
        .await
        .map_err(sql("reading the schema version"))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM jobrun_migrations",
            &[],
        )
        .await
        .map_err(sql("reading the schema version"))?;
    Ok(row.get(0))
}

/// Applies every migration newer than the database's version; returns the
/// versions this call applied (empty when another process already had).
pub async fn migrate(client: &mut Client) -> Result<Vec<i64>, PgError> {
    let tx = client
        .transaction()
        .await
        .map_err(sql("starting the migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(sql("taking the migration lock"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS jobrun_migrations (
             version    BIGINT      PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(sql("creating the schema version table"))?;
    let current: i64 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM jobrun_migrations",
            &[],
        )
        .await
        .map_err(sql("reading the schema version"))?
        .get(0);
    if current > LATEST_VERSION {
        return Err(PgError::TooNew {
            found: current,
            known: LATEST_VERSION,
        });
    }
    let mut applied = Vec::new();
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as i64 + 1;
        let failed = |source| PgError::Migrate { version, source };
        tx.batch_execute(migration).await.map_err(failed)?;
        tx.execute(
            "INSERT INTO jobrun_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(failed)?;
        applied.push(version);
    }
    tx.commit().await.map_err(sql("committing the migration"))?;
    Ok(applied)
}
