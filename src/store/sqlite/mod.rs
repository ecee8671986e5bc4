//! The SQLite backend: the state directory's `jobrun.db`, opened safely,
//! migrated (`migrations/sqlite/`), and its tables (`runs`: claims and the
//! history; `daemons`: heartbeats and retention; `claim_floors`: what
//! pruning leaves claimed; `job_names`: crontab jobs' names by identity),
//! and its leases: flocks
//! in `STATE_DIR/locks/` (`lock`).
//!
//! Owns every SQL statement and every SQLite setting (WAL, `synchronous`,
//! the busy timeout, the text form of times); none of them leaves this room:
//! errors leave as [`StoreError`] with the `rusqlite` error boxed.
//! Must not know processes, schedules or the clock: times come in as
//! values.

mod daemons;
mod floors;
pub(in crate::store) mod lock;
mod migrate;
mod names;
mod runs;
mod totals;

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{Lease, LeaseMode, Operation, StoreError};

pub use daemons::SqliteBeatWriter;
pub use migrate::LATEST_VERSION;

/// Written into the database header so a foreign SQLite file is never taken
/// for jobrun's ("JBRN").
pub const APPLICATION_ID: i32 = 0x4a42_524e;

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The error of `operation`, `doing` in words, with SQLite's error boxed.
fn sql(operation: Operation, doing: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::Failed {
        operation,
        doing,
        source: Box::new(e),
    }
}

/// The run history of one state directory, in SQLite.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Where the leases' lock files live (`STATE_DIR/locks`).
    locks_dir: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `STATE_DIR/jobrun.db`: the directory is
    /// created 0700 and the database 0600; the schema is migrated to the latest
    /// version. A file that is not jobrun's, is corrupt, or comes from a newer
    /// jobrun is refused without being modified, and so is a state directory
    /// that another user could change (see [`crate::private_dir`]).
    pub fn open(state_dir: &Path) -> Result<SqliteStore, StoreError> {
        let euid = crate::private_dir::euid();
        if let Some(warning) =
            crate::private_dir::ensure(state_dir, crate::private_dir::Links::Follow, euid)?
        {
            tracing::warn!("{warning}");
        }
        SqliteStore::open_database(state_dir)
    }

    fn open_database(state_dir: &Path) -> Result<SqliteStore, StoreError> {
        let path = state_dir.join("jobrun.db");
        let conn = open_connection(&path).map_err(|e| read_only_dir(state_dir, &path, e))?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path,
            locks_dir: lock::locks_dir(state_dir),
        })
    }

    /// Opens the store only if the state directory already has a database
    /// (read-only commands must not create state as a side effect). The
    /// directory's owner and mode are not judged here: reading the history
    /// of a directory jobrun would not write to (root looking at a user's,
    /// say) gives nobody a way in.
    pub fn open_existing(state_dir: &Path) -> Result<Option<SqliteStore>, StoreError> {
        if state_dir.join("jobrun.db").is_file() {
            SqliteStore::open_database(state_dir).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Proves that the database can be written (a daemon's start): a
    /// read-only database, file system or directory is refused here, at once,
    /// rather than failing every tick. Takes the write lock and lets it go;
    /// nothing is changed.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        let conn = self.conn();
        let read_only = |cause: String| StoreError::ReadOnly {
            path: self.path.clone(),
            cause,
        };
        if conn
            .is_readonly(c"main")
            .map_err(|e| read_only(e.to_string()))?
        {
            return Err(read_only("SQLite could open it for reading only".into()));
        }
        conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .map_err(|e| read_only(e.to_string()))
    }

    /// Takes `job`'s lease without waiting: its lock file's flock.
    /// `Ok(None)` when another run holds it.
    pub fn lease(&self, job: &str, mode: LeaseMode) -> Result<Option<Lease>, StoreError> {
        lock::try_lock(&self.locks_dir, job, mode)
            .map(|held| held.map(Lease::flock))
            .map_err(StoreError::Lease)
    }

    /// Creates the locks directory (0700) if it is missing and checks it:
    /// a link, another owner or a world-writable directory is refused.
    /// `Ok(Some(warning))` when others may write to it.
    pub fn prepare_leases(&self) -> Result<Option<String>, StoreError> {
        lock::prepare_dir(&self.locks_dir, crate::private_dir::euid()).map_err(StoreError::LeaseDir)
    }

    /// Where the leases live, for messages: the locks directory.
    pub fn lease_location(&self) -> String {
        self.locks_dir.display().to_string()
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the connection leaves no half-done SQL behind
        // (transactions roll back on drop), so the guard is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Opens, identifies and (when needed) migrates the database at `path`.
fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    check_header(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Unreadable {
        path: path.to_path_buf(),
        source: Box::new(e),
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sql(Operation::Open, "setting the busy timeout"))?;
    // Read-only look first: nothing is written before we know the file is ours.
    let current = migrate::check_identity(&conn, path)?;
    // WAL lets readers (list, history) run while the daemon writes;
    // synchronous=FULL makes a finished run's record survive power loss.
    enable_wal(&conn)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql(Operation::Open, "setting synchronous=FULL"))?;
    let mut conn = conn;
    if !current {
        migrate::migrate(&mut conn, path)?;
    }
    Ok(conn)
}

/// SQLite cannot open a WAL database whose `-wal`/`-shm` files are missing
/// and cannot be created: in a directory jobrun may not write, that is a
/// read-only state directory, not a corrupt database.
fn read_only_dir(state_dir: &Path, path: &Path, e: StoreError) -> StoreError {
    let cannot_open = match &e {
        StoreError::Unreadable { source, .. } | StoreError::Failed { source, .. } => matches!(
            source
                .downcast_ref::<rusqlite::Error>()
                .and_then(rusqlite::Error::sqlite_error_code),
            Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly)
        ),
        _ => false,
    };
    match nix::unistd::access(state_dir, nix::unistd::AccessFlags::W_OK) {
        Err(errno) if cannot_open => StoreError::ReadOnly {
            path: path.to_path_buf(),
            cause: format!(
                "SQLite cannot create its -wal/-shm files beside it: {}",
                errno.desc()
            ),
        },
        _ => e,
    }
}

/// Runs `write` with its commit not waited for on disk (`synchronous=NORMAL`
/// for this write only; every other commit stays `FULL`). In WAL mode the
/// database stays consistent either way; a power cut may only take back the
/// last such commits, and the next `FULL` commit (a finished run) flushes them
/// too. For the writes on the path from a tick to its command (the claim, the
/// start) and the heartbeat: an fsync each put 1,000 jobs on one tick seconds
/// behind it (issue 6), and losing one of them in a power cut is harmless,
/// since every process that could act on it dies with the machine and a
/// restarted daemon does not run the ticks it missed.
fn unflushed<T>(
    conn: &mut Connection,
    write: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // Cached statements: compiling two pragmas for every claim and start
    // showed in a 1,000-job tick's profile.
    let set = |conn: &Connection, sql_text: &str, what: &'static str| {
        conn.prepare_cached(sql_text)
            .and_then(|mut stmt| stmt.execute([]))
            .map(drop)
            .map_err(sql(Operation::Open, what))
    };
    set(
        conn,
        "PRAGMA synchronous = NORMAL",
        "setting synchronous=NORMAL",
    )?;
    let result = write(conn);
    let restored = set(
        conn,
        "PRAGMA synchronous = FULL",
        "setting synchronous=FULL",
    );
    let value = result?;
    restored?;
    Ok(value)
}

/// Switches the database to WAL (a persistent setting, so usually already on).
/// The switch needs a moment of exclusive access that SQLite's busy handler
/// does not wait for, so a second process opening a new state directory at the
/// same instant retries here instead of failing with "database is locked".
fn enable_wal(conn: &Connection) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    loop {
        let mode: rusqlite::Result<String> =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0));
        match mode {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                return Err(StoreError::Failed {
                    operation: Operation::Open,
                    doing: "enabling WAL",
                    source: format!("journal_mode stayed {mode}").into(),
                })
            }
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(sql(Operation::Open, "enabling WAL")(e)),
        }
    }
}

/// Refuses a file that exists and is not SQLite, before SQLite touches it. A
/// missing database is created here with mode 0600.
fn check_header(path: &Path) -> Result<(), StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::File::open(path) {
        Ok(mut file) => {
            let mut header = [0u8; 16];
            let mut read = 0;
            while read < header.len() {
                match file.read(&mut header[read..]).map_err(open_err)? {
                    0 => break,
                    n => read += n,
                }
            }
            // An empty file is an empty database to SQLite; anything else must
            // carry SQLite's magic.
            if read == 0 || &header[..read] == b"SQLite format 3\0" {
                Ok(())
            } else {
                Err(StoreError::NotSqlite {
                    path: path.to_path_buf(),
                })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(_) => Ok(()),
                // Another process created it first: fine.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(open_err(e)),
            }
        }
        Err(e) => Err(open_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewRun;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn open_creates_a_private_state_dir_and_database() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state/nested");
        let store = SqliteStore::open(&state).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(store.path()), 0o600);
        let conn = store.conn();
        let journal: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, LATEST_VERSION);
    }

    #[test]
    fn unflushed_writes_leave_the_connection_at_synchronous_full() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(tmp.path()).unwrap();
        let at = chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let id = store
            .claim(&NewRun {
                job: "a".into(),
                trigger: crate::job::Trigger::Schedule,
                tick: Some(at),
                status: crate::job::RunStatus::Running,
                at,
                host: "h".into(),
                owner: "o".into(),
                error: None,
                parent_id: None,
                attempt: 1,
            })
            .unwrap()
            .unwrap();
        store
            .mark_started(crate::store::Started {
                run: id,
                pid: Some(42),
                at,
            })
            .unwrap();
        store.beat("o", 1, "h", at, at).unwrap();
        // A lost claim (same tick again) goes through the same path.
        assert_eq!(
            store
                .claim(&NewRun {
                    job: "a".into(),
                    trigger: crate::job::Trigger::Schedule,
                    tick: Some(at),
                    status: crate::job::RunStatus::Running,
                    at,
                    host: "h".into(),
                    owner: "o".into(),
                    error: None,
                    parent_id: None,
                    attempt: 1,
                })
                .unwrap(),
            None
        );
        let sync: i64 = store
            .conn()
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(
            sync, 2,
            "finishes and every other write stay synchronous=FULL"
        );
    }

    #[test]
    fn many_processes_may_open_a_new_state_dir_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || SqliteStore::open(&dir).map(drop))
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
    }

    #[test]
    fn reopening_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(tmp.path()).unwrap());
        drop(SqliteStore::open(tmp.path()).unwrap());
        assert!(SqliteStore::open_existing(tmp.path()).unwrap().is_some());
        let empty = tempfile::tempdir().unwrap();
        assert!(SqliteStore::open_existing(empty.path()).unwrap().is_none());
        assert!(!empty.path().join("jobrun.db").exists());
    }

    #[test]
    fn a_non_sqlite_file_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("jobrun.db");
        std::fs::write(&db, b"precious notes, not a database\n").unwrap();
        let err = SqliteStore::open(tmp.path()).unwrap_err();
        assert!(matches!(err, StoreError::NotSqlite { .. }), "{err}");
        assert_eq!(
            std::fs::read(&db).unwrap(),
            b"precious notes, not a database\n"
        );
        assert!(!tmp.path().join("jobrun.db-wal").exists());
    }

    #[test]
    fn a_corrupt_database_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(tmp.path()).unwrap());
        let db = tmp.path().join("jobrun.db");
        // Keep the magic, destroy the rest of the first page.
        let mut bytes = std::fs::read(&db).unwrap();
        for b in bytes.iter_mut().skip(16).take(84) {
            *b = 0xff;
        }
        std::fs::write(&db, &bytes).unwrap();
        let err = SqliteStore::open(tmp.path()).unwrap_err();
        assert!(matches!(err, StoreError::Unreadable { .. }), "{err}");
        assert_eq!(std::fs::read(&db).unwrap(), bytes);
    }

    #[test]
    fn a_foreign_sqlite_database_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("jobrun.db");
        {
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch("CREATE TABLE photos (id INTEGER); INSERT INTO photos VALUES (1);")
                .unwrap();
        }
        let before = std::fs::read(&db).unwrap();
        let err = SqliteStore::open(tmp.path()).unwrap_err();
        assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
        assert_eq!(std::fs::read(&db).unwrap(), before);
    }

    #[test]
    fn a_database_from_a_newer_jobrun_is_refused_naming_both_versions() {
        let tmp = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(tmp.path()).unwrap());
        let db = tmp.path().join("jobrun.db");
        {
            let conn = Connection::open(&db).unwrap();
            conn.pragma_update(None, "user_version", LATEST_VERSION + 5)
                .unwrap();
        }
        let err = SqliteStore::open(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("schema version {}", LATEST_VERSION + 5)),
            "{err}"
        );
        assert!(
            err.contains(&format!("up to version {LATEST_VERSION}")),
            "{err}"
        );
    }

    #[test]
    fn a_world_writable_state_dir_is_refused_with_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = SqliteStore::open(&state).unwrap_err().to_string();
        assert!(err.contains("world-writable (mode 0777)"), "{err}");
        assert!(err.contains("chmod 0700"), "{err}");
        assert!(!state.join("jobrun.db").exists(), "nothing was created");
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(SqliteStore::open(&state).unwrap().check_writable().is_ok());
        // Read-only commands still read it.
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(SqliteStore::open_existing(&state).unwrap().is_some());
    }
}
