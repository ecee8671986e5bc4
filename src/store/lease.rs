//! A job's lease: what a run holds from before its claim until its outcome
//! is recorded, so that a second process sees the job as busy, and a
//! `running` row whose lease nobody holds belongs to a dead owner.
//!
//! The store hands leases out ([`Store::lease`](super::Store::lease)); a
//! backend provides them with something that dies with its holder, so a
//! crashed jobrun never leaves a job leased:
//! - SQLite: a `flock` on `STATE_DIR/locks/JOB.lock` (the kernel drops it
//!   when the process dies);
//! - PostgreSQL: this process's own leases in memory ([`LocalLeases`]), and
//!   for one run at a time, no lease while a run of the job is going on any
//!   live host. Across hosts the database decides at the claim (a partial
//!   unique index for `forbid`), and a dead host's runs are resolved when its
//!   lease row expires: a session advisory lock would die with a connection,
//!   not with its daemon (a SIGSTOPped daemon would hold it for ever), and
//!   gives no fencing token (see `store::postgres`).
//!
//! Both have the same two modes, so [`LeaseMode`] means the same on each.
//! Dropping a [`Lease`] releases it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
    /// The PostgreSQL backend's: this process's hold on the job (see
    /// [`LocalLeases`]).
    Local { _hold: LocalHold },
}

impl Lease {
    pub(super) fn flock(lock: RunLock) -> Lease {
        Lease {
            _held: Held::Flock { _lock: lock },
        }
    }
}

/// The leases of one process, in memory: what the PostgreSQL backend hands
/// out. Across processes and hosts a lease would be the wrong tool there (a
/// stopped daemon would hold it for ever, see `store::postgres`): the
/// database decides `forbid` at the claim (a partial unique index), and a
/// dead daemon's runs are resolved by its peers when its lease row expires.
/// Within the process the two modes mean what they mean for a flock.
#[derive(Debug, Default, Clone)]
pub struct LocalLeases {
    /// Per job: `None` exclusively held, `Some(n)` shared by `n` holders.
    held: Arc<Mutex<HashMap<String, Option<usize>>>>,
}

impl LocalLeases {
    /// Takes `job`'s lease in `mode` if this process does not hold it in a
    /// conflicting mode.
    pub fn take(&self, job: &str, mode: LeaseMode) -> Option<Lease> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        match (held.get_mut(job), mode) {
            (None, LeaseMode::Exclusive) => {
                held.insert(job.to_string(), None);
            }
            (None, LeaseMode::Shared) => {
                held.insert(job.to_string(), Some(1));
            }
            (Some(Some(n)), LeaseMode::Shared) => *n += 1,
            (Some(_), _) => return None,
        }
        Some(Lease {
            _held: Held::Local {
                _hold: LocalHold {
                    leases: self.clone(),
                    job: job.to_string(),
                },
            },
        })
    }
}

/// One holder's part of a [`LocalLeases`] entry; let go when dropped.
#[derive(Debug)]
struct LocalHold {
    leases: LocalLeases,
    job: String,
}

impl Drop for LocalHold {
    fn drop(&mut self) {
        let mut held = self.leases.held.lock().unwrap_or_else(|p| p.into_inner());
        match held.get_mut(&self.job) {
            Some(Some(n)) if *n > 1 => *n -= 1,
            _ => {
                held.remove(&self.job);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_leases_exclude_as_a_flock_does_and_let_go_when_dropped() {
        let leases = LocalLeases::default();
        let one = leases.take("j", LeaseMode::Shared).unwrap();
        let two = leases.take("j", LeaseMode::Shared).unwrap();
        assert!(leases.take("j", LeaseMode::Exclusive).is_none());
        drop(one);
        assert!(leases.take("j", LeaseMode::Exclusive).is_none());
        drop(two);
        let ex = leases.take("j", LeaseMode::Exclusive).unwrap();
        assert!(leases.take("j", LeaseMode::Shared).is_none());
        assert!(leases.take("other", LeaseMode::Exclusive).is_some());
        drop(ex);
        assert!(leases.take("j", LeaseMode::Shared).is_some());
    }
}
