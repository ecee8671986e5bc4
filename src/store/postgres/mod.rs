//! The PostgreSQL state: several hosts sharing one schedule, at most one start
//! per (job, tick, attempt) across the fleet (issue 14). A foundation of plain
//! async functions over a [`tokio_postgres::Client`], to be put behind the
//! store seam (issue 13) as its second backend.
//!
//! # Tables (`migrations/postgres/`)
//! - `daemons`: one row per daemon start: host (name or `--host-id`), a
//!   random instance id made by the server (in containers every process is
//!   PID 1), pid, and `epoch`, a number from a sequence that is the fencing
//!   token. `lease_until` is the lease; `dead_at` is set by a peer that
//!   declared the daemon dead, `stopped_at` by a clean stop.
//! - `claims`: the key (job, tick, attempt), the owner's epoch and the job's
//!   definition fingerprint. Apart from `runs`; pruning deletes a claim only
//!   once its run is gone and its tick is at or before its job's floor.
//! - `claim_floors`: per job, the newest tick whose claim pruning may have
//!   deleted ([`history::prune`]); every tick at or before it counts as
//!   claimed, so at-most-once never depends on a deleted row and the claims
//!   table stays bounded.
//! - `runs`: the history of every host, SQLite's columns plus `owner_epoch`,
//!   `forbid`, and the `replace` request (`stop_requested_at`/`_by`, see
//!   [`replace`]).
//! - `definitions`: the fingerprint each daemon claims each job with.
//! - `jobrun_migrations`: the schema version (see [`migrate`]).
//!
//! # The claim ([`claims::claim`])
//! One transaction, committed before the command starts: the claimer's
//! daemon row is read `FOR SHARE` (alive: not dead, not stopped, lease not
//! expired by the server's clock), so no peer can declare it dead until the
//! claim is committed; its definition is compared with the earliest live
//! declaration of the job (another fingerprint is refused and reported);
//! the key is inserted with `ON CONFLICT DO NOTHING` (a lost claim is a value,
//! [`claims::Claimed::Lost`], not an error), then the job's claim floor is
//! read (a tick at or before it is lost to [`claims::PRUNED`]); the run row
//! is inserted `running`. For a `forbid` job a partial unique index allows
//! one running run per job: a second insert fails inside a savepoint, and
//! the tick is recorded `skipped` once, by the host that won its claim.
//!
//! # The lease: rows with server-time expiry, not advisory locks
//! A session advisory lock dies with its connection exactly as a flock dies
//! with its process, and that is the problem: it dies with the *connection*,
//! not with the daemon. A daemon stopped by SIGSTOP keeps its TCP connection
//! and so its lock for ever (its jobs stall and nobody notices); a half-open
//! connection keeps it until the server's keepalive gives up; a pooler in
//! transaction mode loses it at once; and a lock gives no fencing token, so a
//! daemon cannot learn that it lost it. A row with `lease_until = now() +
//! lease`, renewed by heartbeats and compared only with the server's `now()`,
//! expires on time whatever the daemon's state, has a token (`epoch`) that
//! every later write names, and leaves a record of who died and when.
//!
//! # Fencing
//! Heartbeat, claim, start, finish and expiry are each conditional on the
//! caller's epoch being alive. A peer declares a daemon dead (`dead_at`) and
//! marks its `running` runs `abandoned` in one transaction
//! ([`daemons::expire`]); from then on every write of the dead epoch is
//! refused ([`daemons::Beat::Fenced`], [`claims::Claimed::Fenced`],
//! [`claims::Finished::Fenced`]) and the daemon must register again. A run is
//! finished exactly once: finishing requires `status = 'running'` and the
//! owner's epoch, and that no peer has declared the owner dead (a lease that
//! ran out while nobody acted does not lose the outcome; claims and starts
//! need a live lease). Expiry takes no lock on the expirer's own row, so two
//! peers declaring each other dead cannot deadlock. Self-fencing (stop claiming before the server-side lease
//! can expire) is the daemon's: [`LeaseConfig::validate`] refuses a fence
//! deadline that is not safely below the lease.
//!
//! # What is promised, and what is not
//! Promised, on one primary: at most one start per (job, tick, attempt);
//! a dead daemon's runs are resolved by a live peer; a fenced daemon cannot
//! overwrite a peer's writes; `forbid` holds across hosts. Not promised:
//! exactly once (a daemon that dies between its claim and the command's start
//! loses that tick, recorded `abandoned`); with asynchronous replication a
//! failover may lose the newest commits, claims included, so a tick could
//! then run twice: use synchronous commit on a replicated server. Two
//! definitions of a job declared at the very same moment by two hosts may
//! both pass the drift check once; the claim key still lets only one run.
//! Requires PostgreSQL 13 or later (`gen_random_uuid`). No TLS yet: see
//! [`connect`].

pub mod claims;
pub mod connect;
pub mod daemons;
pub mod fence;
pub mod fingerprint;
pub mod fleet;
pub mod history;
mod member;
pub mod migrate;
mod names;
pub mod outcomes;
pub mod owner;
mod reads;
pub mod replace;
pub mod runs;
mod shared;
mod store;
mod writes;

pub use shared::{Membership, OrphanHandler, StopHandler, WallClock};
pub use store::PostgresStore;

#[cfg(test)]
mod floors_tests;
#[cfg(test)]
pub(crate) mod testdb;
#[cfg(test)]
mod tests;

use std::time::Duration;

/// How long a daemon's lease, heartbeat and self-fencing deadline are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseConfig {
    /// How often a daemon renews its lease.
    pub heartbeat: Duration,
    /// How long after its last renewal (by the server's clock) a peer may
    /// declare a daemon dead.
    pub lease: Duration,
    /// How long after its last acknowledged heartbeat (by its own monotonic
    /// clock) a daemon stops claiming on its own.
    pub fence: Duration,
}

impl Default for LeaseConfig {
    /// A beat every 5 s; dead after 30 s without one; stop claiming after
    /// 20 s without an acknowledged beat (10 s of margin for a beat's
    /// round-trip and the hosts' clock rates).
    fn default() -> Self {
        LeaseConfig {
            heartbeat: Duration::from_secs(5),
            lease: Duration::from_secs(30),
            fence: Duration::from_secs(20),
        }
    }
}

/// The margin the fence deadline must keep below the lease.
pub const FENCE_MARGIN: Duration = Duration::from_secs(5);

impl LeaseConfig {
    /// Refuses a configuration under which a peer could take over a job that
    /// this daemon still thinks it owns.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat.is_zero() {
            return Err("the heartbeat interval must be above zero".into());
        }
        if self.heartbeat >= self.fence {
            return Err(format!(
                "the heartbeat ({}) must be shorter than the fence deadline ({}), or a daemon \
                 fences itself between two beats",
                humantime::format_duration(self.heartbeat),
                humantime::format_duration(self.fence)
            ));
        }
        if self.fence + FENCE_MARGIN > self.lease {
            return Err(format!(
                "the fence deadline ({}) must be at least {} below the lease ({}), so that a \
                 daemon stops claiming before a peer may declare it dead",
                humantime::format_duration(self.fence),
                humantime::format_duration(FENCE_MARGIN),
                humantime::format_duration(self.lease)
            ));
        }
        Ok(())
    }
}

/// What went wrong talking to PostgreSQL; each names the operation.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("--database: {0}")]
    BadUrl(String),
    #[error("connecting to PostgreSQL at {target}: {source}")]
    Connect {
        target: String,
        source: tokio_postgres::Error,
    },
    #[error(
        "the PostgreSQL database has jobrun schema version {found}, newer than this jobrun \
         understands (up to version {known}); upgrade jobrun on this host"
    )]
    TooNew { found: i64, known: i64 },
    #[error("migrating the PostgreSQL database to schema version {version}: {source}")]
    Migrate {
        version: i64,
        source: tokio_postgres::Error,
    },
    #[error("PostgreSQL {operation}: {source}")]
    Sql {
        operation: &'static str,
        source: tokio_postgres::Error,
    },
    #[error("PostgreSQL {operation}: {what}")]
    Invalid {
        operation: &'static str,
        what: String,
    },
}

pub(crate) fn sql(operation: &'static str) -> impl FnOnce(tokio_postgres::Error) -> PgError {
    move |source| PgError::Sql { operation, source }
}

/// A daemon's identity in the fleet: its host, its start, its fencing token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    pub epoch: i64,
    pub host: String,
    pub instance: String,
}

/// A duration as PostgreSQL `float8` seconds (for `make_interval(secs => $n)`).
pub(crate) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
