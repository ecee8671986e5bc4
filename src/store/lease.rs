//! A job's lease: what a run holds from before its claim until its outcome
//! is recorded, so that a second process sees the job as busy, and a
//! `running` row whose lease nobody holds belongs to a dead owner.
//!
//! The store hands leases out ([`Store::lease`](super::Store::lease)); a
//! backend provides them with something that dies with its holder, so a
//! crashed jobrun never leaves a job leased:
//! - SQLite: a `flock` on `STATE_DIR/locks/JOB.lock` (the kernel drops it
//!   when the process dies);
//! - PostgreSQL (issue 14): a session advisory lock
//!   (`pg_try_advisory_lock`/`pg_try_advisory_lock_shared` on the job's key,
//!   held on a connection of its own), which the server drops when the
//!   holder's session ends, exactly as a flock dies with its process.
//!
//! Both have the same two modes, so [`LeaseMode`] means the same on each.
//! Dropping a [`Lease`] releases it.

use super::sqlite::lock::RunLock;

/// How a run holds its job's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseMode {
    /// One run at a time (`concurrency: forbid` and `replace`).
    Exclusive,
    /// Runs may overlap (`concurrency: allow`); still excludes an exclusive
    /// holder, so a dead-owner check (exclusive) only succeeds when no run is
    /// alive.
    Shared,
}

/// A held lease on one job; released when dropped (or when its holder dies).
#[derive(Debug)]
#[must_use = "a lease is released as soon as it is dropped"]
pub struct Lease {
    // Held for what it holds: dropping it lets go.
    _held: Held,
}

#[derive(Debug)]
enum Held {
    /// The SQLite backend's: a flock on the job's lock file.
    Flock { _lock: RunLock },
}

impl Lease {
    pub(super) fn flock(lock: RunLock) -> Lease {
        Lease {
            _held: Held::Flock { _lock: lock },
        }
    }
}
