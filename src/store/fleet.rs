//! What the store says of the hosts sharing it: where it is, the fleet and
//! its definitions, a run's owner alive or not, the requests peers send
//! through it (`replace`, an orphaned command). One host's SQLite state
//! answers with what one host means (no fleet, nothing to compare).

use std::collections::HashMap;

use super::{owner, postgres, ClaimCounts, Declared, Fleet, Store, StoreError};

impl Store {
    /// Where the state is, for messages (never a password).
    pub fn describe(&self) -> String {
        match self {
            Store::Sqlite(s) => s.path().display().to_string(),
            Store::Postgres(p) => format!("PostgreSQL {}", p.target()),
        }
    }

    /// The fleet sharing the state (`None` for SQLite: one host).
    pub fn fleet(&self) -> Result<Option<Fleet>, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(None),
            Store::Postgres(p) => p.fleet().map(Some),
        }
    }

    /// How often this process renews its fleet lease (a peer's request to
    /// stop a run reaches it within this); zero for SQLite.
    pub fn heartbeat_interval(&self) -> std::time::Duration {
        match self {
            Store::Sqlite(_) => std::time::Duration::ZERO,
            Store::Postgres(p) => p.heartbeat_interval(),
        }
    }

    /// How this process's fleet claims came out (`None` for SQLite).
    pub fn claim_counts(&self) -> Option<ClaimCounts> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(p) => Some(p.claim_counts()),
        }
    }

    /// Whether `owner` is this process's own fleet registration (a daemon
    /// reading the daemons finds itself among them). False for SQLite,
    /// whose owners the caller compares itself.
    pub fn is_own_registration(&self, owner: &str) -> bool {
        match self {
            Store::Sqlite(_) => false,
            Store::Postgres(p) => {
                p.member().map(|d| d.epoch) == postgres::owner::epoch(owner)
                    && postgres::owner::epoch(owner).is_some()
            }
        }
    }

    /// Whether several hosts share this state (PostgreSQL).
    pub fn is_fleet(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// The definitions this process claims its jobs with (at start and after
    /// each reload): a fleet refuses a host whose definition of a job
    /// differs from its peers'. Nothing to compare on SQLite.
    pub fn declare(&self, jobs: Vec<Declared>) {
        if let Store::Postgres(p) = self {
            p.declare(jobs);
        }
    }

    /// For each job the fleet's live daemons claim, the host and fingerprint
    /// of the definition they claim it with (`check`); empty for SQLite.
    pub fn fleet_definitions(&self) -> Result<HashMap<String, (String, String)>, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(HashMap::new()),
            Store::Postgres(p) => p.fleet_definitions(),
        }
    }

    /// Sets what stops one of this process's runs when a peer asks (a
    /// `replace` job started on another host). SQLite: peers on this host
    /// signal the run's process group themselves.
    pub fn set_stop_handler(&self, handler: postgres::StopHandler) {
        if let Store::Postgres(p) = self {
            p.set_stop_handler(handler);
        }
    }

    /// Sets what stops the command of a run of this host whose daemon a
    /// fleet peer declared dead. SQLite: the next daemon's start-up recovery
    /// does it.
    pub fn set_orphan_handler(&self, handler: postgres::OrphanHandler) {
        if let Store::Postgres(p) = self {
            p.set_orphan_handler(handler);
        }
    }

    /// Asks the host running `job` to stop its run (a `replace` job starting
    /// here). False when the store cannot carry the request (SQLite: the run
    /// is on another host that shares no database with this one).
    pub fn request_stop(&self, job: &str) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(false),
            Store::Postgres(p) => p.request_stop(job),
        }
    }

    /// Whether the owner of a run (or a daemon) is alive, by the store's one
    /// rule: SQLite's [`owner::owner_alive`] (its process on this host, its
    /// heartbeat elsewhere); a fleet member's lease by the server's clock.
    pub fn owner_liveness(
        &self,
        owner_id: &str,
        evidence: &owner::Evidence<'_>,
    ) -> Result<owner::Liveness, StoreError> {
        if let Store::Postgres(p) = self {
            if let Some(verdict) = p.owner_alive(owner_id)? {
                return Ok(match verdict {
                    Ok(why) => owner::Liveness::Alive(why),
                    Err(why) => owner::Liveness::Dead(why),
                });
            }
        }
        Ok(owner::owner_alive(owner_id, evidence))
    }
}
