//! What the store says went wrong: [`StoreError`], naming the
//! [`Operation`] and keeping the backend's own error boxed
//! ([`BackendError`]), so no backend's type crosses the seam.

use std::path::PathBuf;

/// What a backend said went wrong: its own error, boxed, so its message and
/// its chain of causes are kept without its type in any signature here.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The store's operations, for telling errors apart without reading their
/// text (each error also says, in words, what it was doing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Opening the store and checking that it is jobrun's.
    Open,
    /// Bringing the schema to this jobrun's version.
    Migrate,
    /// Taking a job's lease.
    Lease,
    /// Claiming a run (or recording a tick as skipped or missed).
    Claim,
    /// Recording that a claimed run started.
    Start,
    /// Recording how a run ended (or marking it abandoned).
    Finish,
    /// Recording a daemon's heartbeat, what it loaded, or its stop.
    Heartbeat,
    /// Reading runs: history, running runs, a run's output.
    History,
    /// Reading the daemons' heartbeats.
    Daemons,
    /// Applying the retention.
    Prune,
    /// Moving renamed crontab jobs' runs to their new names.
    Rename,
    /// A call the recorder lost (its batch panicked: a bug in jobrun).
    Lost,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state directory: {0}")]
    StateDir(#[from] crate::private_dir::DirError),
    #[error(
        "{path} cannot be written ({cause}), and jobrun records every run there; make the state \
         directory and its files writable by jobrun's user (check the mount, the owner and the \
         mode), or choose another --state-dir"
    )]
    ReadOnly { path: PathBuf, cause: String },
    #[error("opening {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a SQLite database; refusing to use or change it (move it away, or choose another --state-dir)")]
    NotSqlite { path: PathBuf },
    #[error("{path} is a SQLite database of another program (application id {found:#x}); refusing to use or change it (choose another --state-dir)")]
    Foreign { path: PathBuf, found: i32 },
    #[error("{path} has schema version {found}, newer than this jobrun understands (up to version {known}); upgrade jobrun, or use another --state-dir")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "{path} cannot be read as a database ({source}); it may be corrupt; it was not changed"
    )]
    Unreadable { path: PathBuf, source: BackendError },
    #[error("migrating {path} to schema version {version}: {source}")]
    Migrate {
        path: PathBuf,
        version: i64,
        source: BackendError,
    },
    /// Where the leases live cannot be used (SQLite: `locks/`), as checked.
    #[error(transparent)]
    LeaseDir(crate::private_dir::DirError),
    /// A lease could not be taken (not: is held by another run); the
    /// backend's error as it says it (SQLite's leases are files, so an I/O
    /// error; another backend wraps its own with `io::Error::other`).
    #[error(transparent)]
    Lease(std::io::Error),
    /// The PostgreSQL database cannot be used (its URL, the server, its
    /// schema); the backend's error says which.
    #[error("{source}")]
    Database { source: BackendError },
    /// An operation the backend failed; `doing` says it in words.
    #[error("database {doing}: {source}")]
    Failed {
        operation: Operation,
        doing: &'static str,
        source: BackendError,
    },
}

impl StoreError {
    /// The operation that failed.
    pub fn operation(&self) -> Operation {
        match self {
            StoreError::Failed { operation, .. } => *operation,
            StoreError::Migrate { .. } => Operation::Migrate,
            StoreError::LeaseDir(_) | StoreError::Lease(_) => Operation::Lease,
            StoreError::StateDir(_)
            | StoreError::ReadOnly { .. }
            | StoreError::Open { .. }
            | StoreError::NotSqlite { .. }
            | StoreError::Foreign { .. }
            | StoreError::TooNew { .. }
            | StoreError::Database { .. }
            | StoreError::Unreadable { .. } => Operation::Open,
        }
    }
}
