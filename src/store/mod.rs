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
//! Claims outlive history pruning (issue 14, guarantee 10): when
//! [`Store::prune`] removes runs, it raises each job's *claim floor* to the
//! newest tick among them (never lowers it; one row per job,
//! `claim_floors`), and every tick at or before a job's floor counts as
//! claimed, whatever the attempt: [`Store::claim`] refuses it and
//! [`Store::tick_claimed`] reads it as taken, so a clock stepping back over
//! pruned ticks or a restart's catch-up never runs one twice. Conservative:
//! a tick older than what retention keeps that was genuinely missed can no
//! longer be caught up (nor retried). A renamed job's floor moves with it.
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

mod error;
mod fleet;
pub mod lease;
pub mod owner;
#[cfg(test)]
pub(crate) mod parity;
pub mod postgres;
pub mod recorder;
pub mod records;
pub mod sqlite;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::job::{DerivedName, RunId, RunOutcome};

pub use error::{BackendError, Operation, StoreError};
pub use lease::{Lease, LeaseMode};
pub use postgres::{Membership, PostgresStore};
pub use records::{
    ClaimCounts, DaemonRecord, Declared, DefinitionDrift, Fleet, FleetMember, HistoryFilter,
    LastRuns, Loaded, NewRun, Retention, RunRecord, RunTotal, RunTotals, Started,
};
pub use sqlite::{SqliteStore, LATEST_VERSION};

/// The state of one state directory (later: of one database shared by
/// several hosts). See the module doc for why this is an enum.
#[derive(Debug)]
pub enum Store {
    /// The state directory's `jobrun.db`.
    Sqlite(SqliteStore),
    /// A PostgreSQL database shared by several hosts (`--database`).
    Postgres(PostgresStore),
}

/// Where the state is: a state directory's SQLite file, or a PostgreSQL
/// database shared by a fleet.
#[derive(Debug, Clone)]
pub enum Location {
    StateDir(PathBuf),
    Database(Membership),
}

/// The daemon's heartbeat on a connection of its own, for the one thread
/// that beats (see [`Store::heartbeat_writer`]).
pub enum BeatWriter {
    Sqlite(sqlite::SqliteBeatWriter),
    /// PostgreSQL's lease is renewed by the store's own heartbeat task,
    /// every `--heartbeat`: the daemon's minute beat writes nothing more.
    Postgres,
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
            BeatWriter::Postgres => Ok(()),
        }
    }
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

    /// Opens (creating if needed) the store at `location`.
    pub fn open_at(location: &Location) -> Result<Store, StoreError> {
        match location {
            Location::StateDir(dir) => Store::open(dir),
            Location::Database(m) => PostgresStore::open(m.clone()).map(Store::Postgres),
        }
    }

    /// Opens the store at `location` only if it holds a jobrun state.
    pub fn open_existing_at(location: &Location) -> Result<Option<Store>, StoreError> {
        match location {
            Location::StateDir(dir) => Store::open_existing(dir),
            Location::Database(m) => {
                Ok(PostgresStore::open_existing(m.clone())?.map(Store::Postgres))
            }
        }
    }

    /// Proves that the store takes writes (a daemon's start): a read-only
    /// store is refused at once rather than failing every tick. Changes
    /// nothing.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.check_writable(),
            Store::Postgres(p) => p.check_writable(),
        }
    }

    /// Takes `job`'s lease without waiting (see [`lease`]
    /// for what a lease is on each backend). `Ok(None)` when another run
    /// holds it: that is not an error, it is the answer. The caller holds
    /// it from before the claim until the outcome is recorded.
    pub fn lease(&self, job: &str, mode: LeaseMode) -> Result<Option<Lease>, StoreError> {
        match self {
            Store::Sqlite(s) => s.lease(job, mode),
            Store::Postgres(p) => p.lease(job, mode),
        }
    }

    /// Makes ready where the leases live and checks it (a daemon's start);
    /// `Ok(Some(warning))` when it is usable but others may change it.
    pub fn prepare_leases(&self) -> Result<Option<String>, StoreError> {
        match self {
            Store::Sqlite(s) => s.prepare_leases(),
            Store::Postgres(_) => Ok(None),
        }
    }

    /// Where the leases live, for messages (SQLite: the locks directory).
    pub fn lease_location(&self) -> String {
        match self {
            Store::Sqlite(s) => s.lease_location(),
            Store::Postgres(p) => p.lease_location(),
        }
    }

    /// Claims a run against the (job, tick, attempt) key. `Ok(None)` means
    /// another process (or an earlier run of this one) already claimed that
    /// tick, or it is at or before the job's claim floor (see the module
    /// doc): the caller must not run it.
    pub fn claim(&self, run: &NewRun) -> Result<Option<RunId>, StoreError> {
        match self {
            Store::Sqlite(s) => s.claim(run),
            Store::Postgres(p) => p
                .claim_and_start_many(std::slice::from_ref(run), &[])
                .map(|ids| ids.into_iter().next().flatten()),
        }
    }

    /// Several claims and start marks written together, each claim decided
    /// as [`claim`](Self::claim) decides it; nothing is claimed unless all
    /// is written.
    pub fn claim_and_start_many(
        &self,
        claims: &[NewRun],
        starts: &[Started],
    ) -> Result<Vec<Option<RunId>>, StoreError> {
        match self {
            Store::Sqlite(s) => s.claim_and_start_many(claims, starts),
            Store::Postgres(p) => p.claim_and_start_many(claims, starts),
        }
    }

    /// Records that the claimed run's command started (`pid`: its process
    /// group; `None` for a run with no process of its own).
    pub fn mark_started(&self, start: Started) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.mark_started(start),
            Store::Postgres(p) => p.mark_started(start),
        }
    }

    /// When the latest run of `job` that started and succeeded started.
    pub fn last_success_start(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self {
            Store::Sqlite(s) => s.last_success_start(job),
            Store::Postgres(p) => p.last_success_start(job),
        }
    }

    /// Whether a run of `job` for `tick` (a first attempt) is on record, or
    /// the tick is at or before the job's claim floor (its run was pruned).
    pub fn tick_claimed(&self, job: &str, tick: DateTime<Utc>) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.tick_claimed(job, tick),
            Store::Postgres(p) => p.tick_claimed(job, tick),
        }
    }

    /// Records how several runs ended, together.
    pub fn finish_many(&self, runs: &[(RunId, RunOutcome)]) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.finish_many(runs),
            Store::Postgres(p) => p.finish_many(runs).map(drop),
        }
    }

    /// Records how a run ended.
    pub fn finish(&self, id: RunId, f: &RunOutcome) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.finish(id, f),
            Store::Postgres(p) => p.finish_many(&[(id, f.clone())]).map(drop),
        }
    }

    /// Records how a run ended only if it still reads `running` (an ending
    /// jobrun infers must never overwrite a recorded one). True if it did.
    pub fn finish_if_running(&self, id: RunId, f: &RunOutcome) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.finish_if_running(id, f),
            Store::Postgres(p) => p
                .finish_many_if_running(&[(id, f.clone())])
                .map(|written| written.first() == Some(&true)),
        }
    }

    /// Several [`finish_if_running`](Self::finish_if_running) together (the
    /// recorder's spool written late): one transaction, nothing recorded
    /// unless all is. For each run, whether it was recorded.
    pub fn finish_many_if_running(
        &self,
        runs: &[(RunId, RunOutcome)],
    ) -> Result<Vec<bool>, StoreError> {
        match self {
            Store::Sqlite(s) => s.finish_many_if_running(runs),
            Store::Postgres(p) => p.finish_many_if_running(runs),
        }
    }

    /// Makes every write fail, or lets writes through again: how tests make
    /// the store refuse writes without root.
    #[cfg(test)]
    pub fn refuse_writes_for_tests(&self, refuse: bool) {
        match self {
            Store::Sqlite(s) => s.refuse_writes_for_tests(refuse),
            Store::Postgres(p) => p.refuse_writes_for_tests(refuse),
        }
    }

    /// One run, if it is on record.
    pub fn get(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.get(id),
            Store::Postgres(p) => p.get(id),
        }
    }

    /// The stored tail of a run's output.
    pub fn output_tail(&self, id: RunId) -> Result<Vec<u8>, StoreError> {
        match self {
            Store::Sqlite(s) => s.output_tail(id),
            Store::Postgres(p) => p.output_tail(id),
        }
    }

    /// Past runs, newest first.
    pub fn history(&self, filter: &HistoryFilter) -> Result<Vec<RunRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.history(filter),
            Store::Postgres(p) => p.history(filter),
        }
    }

    /// The latest run of every job that has one.
    pub fn latest_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.latest_runs(),
            Store::Postgres(p) => p.latest_runs(),
        }
    }

    /// The history summed up per job, status and trigger, and each job's
    /// latest finished run and success (what metrics start from).
    pub fn run_totals(&self) -> Result<RunTotals, StoreError> {
        match self {
            Store::Sqlite(s) => s.run_totals(),
            Store::Postgres(p) => p.run_totals(),
        }
    }

    /// Runs recorded as running, oldest first.
    pub fn running(&self) -> Result<Vec<RunRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.running(),
            Store::Postgres(p) => p.running(),
        }
    }

    /// Marks a run whose owner died `abandoned`, only if it still reads
    /// `running`. True if it did.
    pub fn mark_abandoned(
        &self,
        id: RunId,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.mark_abandoned(id, at, reason),
            Store::Postgres(p) => p.mark_abandoned(id, reason),
        }
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
        match self {
            Store::Sqlite(s) => s.beat(owner, pid, host, started_at, now),
            Store::Postgres(_) => Ok(()),
        }
    }

    /// Holds the database's write lock from another connection until the
    /// guard is dropped, as another process's `jobrun prune` would (tests).
    #[cfg(test)]
    pub fn hold_write_lock(&self) -> Result<impl Drop, StoreError> {
        match self {
            Store::Sqlite(s) => s.hold_write_lock(),
            Store::Postgres(_) => Err(StoreError::Failed {
                operation: Operation::Claim,
                doing: "holding the write lock (a SQLite test helper)",
                source: "not a SQLite store".into(),
            }),
        }
    }

    /// A writer of the daemon's heartbeat on a connection of its own, which
    /// waits at most `busy` for another process's write lock (see
    /// `SqliteStore::heartbeat_writer`).
    pub fn heartbeat_writer(&self, busy: std::time::Duration) -> Result<BeatWriter, StoreError> {
        match self {
            Store::Sqlite(s) => s.heartbeat_writer(busy).map(BeatWriter::Sqlite),
            Store::Postgres(_) => Ok(BeatWriter::Postgres),
        }
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
        match self {
            Store::Sqlite(s) => s.record_loaded(owner, pid, host, started_at, now, loaded),
            Store::Postgres(p) => p.record_loaded(loaded),
        }
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
        match self {
            Store::Sqlite(s) => s.follow_names(names, legacy),
            Store::Postgres(p) => p.follow_names(names),
        }
    }

    /// Records a clean shutdown of the daemon `owner`.
    pub fn daemon_stopped(&self, owner: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.daemon_stopped(owner, now),
            Store::Postgres(p) => p.stopped(),
        }
    }

    /// The last moment any daemon is known to have been scheduling (its
    /// clean stop or its last heartbeat); `None` when none ever ran.
    pub fn last_daemon_seen(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self {
            Store::Sqlite(s) => s.last_daemon_seen(),
            Store::Postgres(p) => p.last_daemon_seen(),
        }
    }

    /// Every daemon that has not stopped cleanly, latest beat first.
    pub fn daemons(&self) -> Result<Vec<DaemonRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.daemons(),
            Store::Postgres(p) => p.daemons(),
        }
    }

    /// The daemon `owner` as it last reported itself, stopped or not.
    pub fn daemon(&self, owner: &str) -> Result<Option<DaemonRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.daemon(owner),
            Store::Postgres(p) => p.daemon(owner),
        }
    }

    /// Applies the retention (never to a `running` run), raising each job's
    /// claim floor to the newest tick removed (see the module doc); returns
    /// how many runs were removed.
    pub fn prune(&self, now: DateTime<Utc>, retention: Retention) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.prune(now, retention),
            Store::Postgres(p) => p.prune(retention),
        }
    }
}
