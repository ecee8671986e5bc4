//! Schema versions: `migrations/sqlite/NNNN_*.sql`, compiled in and applied in order
//! under `PRAGMA user_version`, each in one immediate transaction so two
//! processes opening a new state directory at once cannot both migrate it.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::{sql, APPLICATION_ID};
use crate::store::{Operation, StoreError};

/// The migrations, in order; version N is the N-th entry.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_runs.sql"),
    include_str!("../../../migrations/sqlite/0002_daemons.sql"),
    include_str!("../../../migrations/sqlite/0003_followups.sql"),
    include_str!("../../../migrations/sqlite/0004_missed.sql"),
    include_str!("../../../migrations/sqlite/0005_daemon_loaded.sql"),
    include_str!("../../../migrations/sqlite/0006_job_names.sql"),
    include_str!("../../../migrations/sqlite/0007_claim_floors.sql"),
];

/// The schema version this jobrun writes.
pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// Reads (never writes) who the database belongs to and which version it has.
/// Refuses foreign, corrupt and newer databases; `true` when it is jobrun's
/// and already at the latest version.
pub(super) fn check_identity(conn: &Connection, path: &Path) -> Result<bool, StoreError> {
    let unreadable = |e: rusqlite::Error| StoreError::Unreadable {
        path: path.to_path_buf(),
        source: Box::new(e),
    };
    // One statement, so the three values come from one snapshot: another
    // process may be migrating a new database at this very moment.
    let (app_id, version, objects): (i32, i64, i64) = conn
        .query_row(
            "SELECT (SELECT application_id FROM pragma_application_id()),
                    (SELECT user_version FROM pragma_user_version()),
                    (SELECT count(*) FROM sqlite_master)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(unreadable)?;
    if app_id == APPLICATION_ID || (app_id == 0 && objects == 0 && version == 0) {
        if version > LATEST_VERSION {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found: version,
                known: LATEST_VERSION,
            });
        }
        // Up to date: nothing to write (read-only commands stay read-only).
        return Ok(app_id == APPLICATION_ID && version == LATEST_VERSION);
    }
    Err(StoreError::Foreign {
        path: path.to_path_buf(),
        found: app_id,
    })
}

/// Applies every migration newer than the database's version.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql(Operation::Migrate, "starting the migration"))?;
    // Read again inside the write lock: another process may have migrated
    // between our identity check and now.
    let current: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sql(Operation::Migrate, "reading the schema version"))?;
    if current > LATEST_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: current,
            known: LATEST_VERSION,
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as i64 + 1;
        let failed = |e: rusqlite::Error| StoreError::Migrate {
            path: path.to_path_buf(),
            version,
            source: Box::new(e),
        };
        tx.execute_batch(migration).map_err(failed)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(failed)?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(sql(Operation::Migrate, "writing the application id"))?;
    tx.commit()
        .map_err(sql(Operation::Migrate, "committing the migration"))
}
