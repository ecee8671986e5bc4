//! The state behind every run: leases, claims, run history, heartbeats,
//! retention, behind one backend-neutral API (SPEC 4). `cli`, `daemon` and
//! `fire` know only this module's [`Store`], its owned values ([`records`]),
//! [`StoreError`], a job's [`Lease`] and the one answer to "is this owner
//! alive?" ([`owner::owner_alive`]); no backend's types (a `rusqlite::Error`,
//! a text time, a pragma) cross it (the layout test keeps `rusqlite` inside
//! `store/sqlite/`).
//!
//! At most once rests on two things, both handed out here: the job's
//! [`Lease`] (held from before the claim until the outcome is recorded;
//! a `flock` for SQLite, a session advisory lock for PostgreSQL: both die
//! with their holder, see [`lease`]) and the claim (a unique (job, tick,
//! attempt) key, [`Store::claim`]).
//!
//! Backends, each in a room of its own: [`sqlite`] (the state directory's
//! `jobrun.db`, migrations in `migrations/sqlite/`), the embedded default;
//! PostgreSQL (issue 14) lands beside it as `store/postgres/`.
//!
//! ## Why an enum, not a trait
//!
//! [`Store`] is `enum Store { Sqlite(SqliteStore) }`, later
//! `Postgres(PostgresStore)`, and each method matches on it:
//! - the set of backends is closed and known to this crate, so a `match` is
//!   checked for exhaustiveness: adding `Postgres` makes the compiler list
//!   every operation it still lacks, where a trait's default methods would
//!   silently inherit SQLite's behaviour;
//! - backends differ in how they wait (SQLite's calls block; a tokio
//!   PostgreSQL client's are `async`). An enum lets each method be sync or
//!   async as its callers need and lets a backend add its own inherent
//!   methods (SQLite's `refuse_writes_for_tests`), where a `dyn Backend`
//!   must be object safe (no generic or `async fn` methods without boxing
//!   every future) and fixes one calling convention for all;
//! - no caller outside this crate plugs in a backend, so a trait's openness
//!   buys nothing. Static dispatch also keeps the firing path's 3,000 calls
//!   per 1,000-job tick free of virtual calls (not measurable, but free).
//!
//! ## The async door
//!
//! [`recorder`] is the store's async API for the firing path: one thread
//! that makes the firing path's store calls, so async tasks await them.
//! It lives here, not under `sqlite/`, because it is written against this
//! neutral API only, and what it adds is backend-neutral policy: claims
//! before outcomes, the waiting ones written together, and a bounded spool
//! of what the store refused (issue 14 asks the same "fail closed, lose
//! nothing" spool of PostgreSQL).
//!
//! Must not know processes, schedules or the clock: times come in as
//! values.

pub mod lease;
pub mod owner;
pub mod postgres;
pub mod recorder;
pub mod records;
pub mod sqlite;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::job::{DerivedName, RunId, RunOutcome};

pub use lease::{Lease, LeaseMode};
pub use records::{
    DaemonRecord, HistoryFilter, LastRuns, Loaded, NewRun, Retention, RunRecord, RunTotal,
    RunTotals, Started,
};
pub use sqlite::{SqliteStore, LATEST_VERSION};

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
            | StoreError::Unreadable { .. } => Operation::Open,
        }
    }
}

/// The state of one state directory (later: of one database shared by
/// several hosts). See the module doc for why this is an enum.
#[derive(Debug)]
pub enum Store {
    /// The state directory's `jobrun.db`.
    Sqlite(SqliteStore),
}

/// The daemon's heartbeat on a connection of its own, for the one thread
/// that beats (see [`Store::heartbeat_writer`]).
pub enum BeatWriter {
    Sqlite(sqlite::SqliteBeatWriter),
}

impl BeatWriter {
    /// As [`Store::beat`], on the writer's own connection.
    pub fn beat(
        &self,
        owner: &str,
        pid: u32,
        host: &str,
        started_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        match self {
            BeatWriter::Sqlite(w) => w.beat(owner, pid, host, started_at, now),
        }
    }
}

/// Calls the same method on whichever backend `$store` is.
macro_rules! on_backend {
    ($store:expr, $b:ident => $call:expr) => {
        match $store {
            Store::Sqlite($b) => $call,
        }
    };
}

impl Store {
    /// Opens (creating if needed) the state directory's store: see
    /// [`SqliteStore::open`].
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        SqliteStore::open(state_dir).map(Store::Sqlite)
    }

    /// Opens the store only if the state directory already has one
    /// (read-only commands must not create state as a side effect).
    pub fn open_existing(state_dir: &Path) -> Result<Option<Store>, StoreError> {
        Ok(SqliteStore::open_existing(state_dir)?.map(Store::Sqlite))
    }

    /// Proves that the store takes writes (a daemon's start): a read-only
    /// store is refused at once rather than failing every tick. Changes
    /// nothing.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        on_backend!(self, b => b.check_writable())
    }

    /// Takes `job`'s lease without waiting (see [`lease`]
    /// for what a lease is on each backend). `Ok(None)` when another run
    /// holds it: that is not an error, it is the answer. The caller holds
    /// it from before the claim until the outcome is recorded.
    pub fn lease(&self, job: &str, mode: LeaseMode) -> Result<Option<Lease>, StoreError> {
        on_backend!(self, b => b.lease(job, mode))
    }

    /// Makes ready where the leases live and checks it (a daemon's start);
    /// `Ok(Some(warning))` when it is usable but others may change it.
    pub fn prepare_leases(&self) -> Result<Option<String>, StoreError> {
        on_backend!(self, b => b.prepare_leases())
    }

    /// Where the leases live, for messages (SQLite: the locks directory).
    pub fn lease_location(&self) -> String {
        on_backend!(self, b => b.lease_location())
    }

    /// Claims a run against the (job, tick, attempt) key. `Ok(None)` means
    /// another process (or an earlier run of this one) already claimed that
    /// tick: the caller must not run it.
    pub fn claim(&self, run: &NewRun) -> Result<Option<RunId>, StoreError> {
        on_backend!(self, b => b.claim(run))
    }

    /// Several claims and start marks written together, each claim decided
    /// as [`claim`](Self::claim) decides it; nothing is claimed unless all
    /// is written.
    pub fn claim_and_start_many(
        &self,
        claims: &[NewRun],
        starts: &[Started],
    ) -> Result<Vec<Option<RunId>>, StoreError> {
        on_backend!(self, b => b.claim_and_start_many(claims, starts))
    }

    /// Records that the claimed run's command started (`pid`: its process
    /// group; `None` for a run with no process of its own).
    pub fn mark_started(&self, start: Started) -> Result<(), StoreError> {
        on_backend!(self, b => b.mark_started(start))
    }

    /// When the latest run of `job` that started and succeeded started.
    pub fn last_success_start(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        on_backend!(self, b => b.last_success_start(job))
    }

    /// Whether a run of `job` for `tick` (a first attempt) is on record.
    pub fn tick_claimed(&self, job: &str, tick: DateTime<Utc>) -> Result<bool, StoreError> {
        on_backend!(self, b => b.tick_claimed(job, tick))
    }

    /// Records how several runs ended, together.
    pub fn finish_many(&self, runs: &[(RunId, RunOutcome)]) -> Result<(), StoreError> {
        on_backend!(self, b => b.finish_many(runs))
    }

    /// Records how a run ended.
    pub fn finish(&self, id: RunId, f: &RunOutcome) -> Result<(), StoreError> {
        on_backend!(self, b => b.finish(id, f))
    }

    /// Records how a run ended only if it still reads `running` (an ending
    /// jobrun infers must never overwrite a recorded one). True if it did.
    pub fn finish_if_running(&self, id: RunId, f: &RunOutcome) -> Result<bool, StoreError> {
        on_backend!(self, b => b.finish_if_running(id, f))
    }

    /// Makes every write fail, or lets writes through again: how tests make
    /// the store refuse writes without root.
    #[cfg(test)]
    pub fn refuse_writes_for_tests(&self, refuse: bool) {
        on_backend!(self, b => b.refuse_writes_for_tests(refuse))
    }

    /// One run, if it is on record.
    pub fn get(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        on_backend!(self, b => b.get(id))
    }

    /// The stored tail of a run's output.
    pub fn output_tail(&self, id: RunId) -> Result<Vec<u8>, StoreError> {
        on_backend!(self, b => b.output_tail(id))
    }

    /// Past runs, newest first.
    pub fn history(&self, filter: &HistoryFilter) -> Result<Vec<RunRecord>, StoreError> {
        on_backend!(self, b => b.history(filter))
    }

    /// The latest run of every job that has one.
    pub fn latest_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        on_backend!(self, b => b.latest_runs())
    }

    /// The history summed up per job, status and trigger, and each job's
    /// latest finished run and success (what metrics start from).
    pub fn run_totals(&self) -> Result<RunTotals, StoreError> {
        on_backend!(self, b => b.run_totals())
    }

    /// Runs recorded as running, oldest first.
    pub fn running(&self) -> Result<Vec<RunRecord>, StoreError> {
        on_backend!(self, b => b.running())
    }

    /// Marks a run whose owner died `abandoned`, only if it still reads
    /// `running`. True if it did.
    pub fn mark_abandoned(
        &self,
        id: RunId,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<bool, StoreError> {
        on_backend!(self, b => b.mark_abandoned(id, at, reason))
    }

    /// Records that the daemon `owner` is alive at `now`.
    pub fn beat(
        &self,
        owner: &str,
        pid: u32,
        host: &str,
        started_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_backend!(self, b => b.beat(owner, pid, host, started_at, now))
    }

    /// Holds the database's write lock from another connection until the
    /// guard is dropped, as another process's `jobrun prune` would (tests).
    #[cfg(test)]
    pub fn hold_write_lock(&self) -> Result<impl Drop, StoreError> {
        on_backend!(self, b => b.hold_write_lock())
    }

    /// A writer of the daemon's heartbeat on a connection of its own, which
    /// waits at most `busy` for another process's write lock (see
    /// `SqliteStore::heartbeat_writer`).
    pub fn heartbeat_writer(&self, busy: std::time::Duration) -> Result<BeatWriter, StoreError> {
        on_backend!(self, b => b.heartbeat_writer(busy).map(BeatWriter::Sqlite))
    }

    /// Records what the daemon `owner` loaded (at start, after each reload).
    pub fn record_loaded(
        &self,
        owner: &str,
        pid: u32,
        host: &str,
        started_at: DateTime<Utc>,
        now: DateTime<Utc>,
        loaded: &Loaded,
    ) -> Result<(), StoreError> {
        on_backend!(self, b => b.record_loaded(owner, pid, host, started_at, now, loaded))
    }

    /// Records each crontab job's current name under its identity and moves
    /// its runs there from the name they were recorded under (see
    /// `SqliteStore::follow_names`); `legacy` gives jobrun's earlier names by
    /// identity and is called only when they are needed. Returns how many
    /// runs moved.
    pub fn follow_names(
        &self,
        names: &[DerivedName],
        legacy: impl FnOnce() -> HashMap<String, String>,
    ) -> Result<usize, StoreError> {
        on_backend!(self, b => b.follow_names(names, legacy))
    }

    /// Records a clean shutdown of the daemon `owner`.
    pub fn daemon_stopped(&self, owner: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        on_backend!(self, b => b.daemon_stopped(owner, now))
    }

    /// The last moment any daemon is known to have been scheduling (its
    /// clean stop or its last heartbeat); `None` when none ever ran.
    pub fn last_daemon_seen(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        on_backend!(self, b => b.last_daemon_seen())
    }

    /// Every daemon that has not stopped cleanly, latest beat first.
    pub fn daemons(&self) -> Result<Vec<DaemonRecord>, StoreError> {
        on_backend!(self, b => b.daemons())
    }

    /// The daemon `owner` as it last reported itself, stopped or not.
    pub fn daemon(&self, owner: &str) -> Result<Option<DaemonRecord>, StoreError> {
        on_backend!(self, b => b.daemon(owner))
    }

    /// Applies the retention (never to a `running` run); returns how many
    /// runs were removed.
    pub fn prune(&self, now: DateTime<Utc>, retention: Retention) -> Result<u64, StoreError> {
        on_backend!(self, b => b.prune(now, retention))
    }
}
