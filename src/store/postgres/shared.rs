//! What the PostgreSQL store's calls and its heartbeat task share: how to
//! reach the database and who this process is in the fleet ([`Membership`]),
//! the store's connection (made again after it broke), the membership state,
//! the declared definitions, the handlers a higher layer sets, the claim
//! counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use chrono::{DateTime, Utc};
use tokio_postgres::{Client, Config};

use super::member::Member;
use super::{connect, daemons, LeaseConfig, PgError};
use crate::job::RunId;
use crate::store::Declared;

/// The host's wall clock, for measuring its offset from the server's (the
/// store reads no clock itself).
pub type WallClock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;
/// Stops one of this process's runs that a peer asked to stop (`replace`).
pub type StopHandler = Arc<dyn Fn(RunId) + Send + Sync>;
/// Stops the command of a run of this host whose daemon was declared dead
/// (its process group may still be running, unsupervised), if it is
/// provably that run's process. Called on the store's runtime.
pub type OrphanHandler = Arc<dyn Fn(&daemons::AbandonedRun) + Send + Sync>;

/// How to reach the fleet's database and who this process is in it.
#[derive(Clone)]
pub struct Membership {
    /// `--database`.
    pub url: String,
    /// `--host-id`, else the host name.
    pub host: String,
    pub lease: LeaseConfig,
    pub wall: WallClock,
    /// A daemon, or a `jobrun run` (not listed among the daemons).
    pub kind: daemons::Kind,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("Membership")
            .field("host", &self.host)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// What the store's calls and the heartbeat task share.
pub(super) struct Shared {
    pub config: Config,
    pub target: String,
    pub host: String,
    pub pid: u32,
    pub lease: LeaseConfig,
    pub wall: WallClock,
    pub kind: daemons::Kind,
    pub(super) conn: tokio::sync::Mutex<Option<Client>>,
    pub(super) member: Mutex<Member>,
    pub(super) definitions: RwLock<HashMap<String, Declared>>,
    pub(super) stop_handler: Mutex<Option<StopHandler>>,
    pub(super) orphan_handler: Mutex<Option<OrphanHandler>>,
    /// won, lost, fenced, refused (see [`ClaimCounts`]).
    pub(super) claims: [AtomicU64; 4],
    pub(super) closing: AtomicBool,
    #[cfg(test)]
    pub(super) refuse: AtomicBool,
}

impl Shared {
    pub fn member(&self) -> MutexGuard<'_, Member> {
        self.member.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }
    pub fn orphan_handler(&self) -> Option<OrphanHandler> {
        self.orphan_handler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    pub fn stop_handler(&self) -> Option<StopHandler> {
        self.stop_handler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    /// The store's connection, made again if it broke.
    pub(super) async fn client(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, PgError> {
        let mut guard = self.conn.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(connect::connect(&self.config).await?);
        }
        Ok(guard)
    }
    pub(super) fn declared(&self, job: &str) -> Declared {
        let known = self.definitions.read().unwrap_or_else(|p| p.into_inner());
        known.get(job).cloned().unwrap_or_else(|| Declared {
            job: job.to_string(),
            // A job this process never declared (it is not in its plan):
            // a fingerprint no definition has, so a fleet that runs the job
            // reports the drift instead of letting it run twice.
            fingerprint: "undeclared".into(),
            exclusive: false,
        })
    }
    #[cfg(test)]
    pub(super) fn check_refused(&self) -> Result<(), PgError> {
        if self.refuse.load(Ordering::Relaxed) {
            return Err(PgError::Invalid {
                operation: "writing",
                what: "writes refused (test)".into(),
            });
        }
        Ok(())
    }
    #[cfg(not(test))]
    pub(super) fn check_refused(&self) -> Result<(), PgError> {
        Ok(())
    }
}

/// The connected client of a call.
pub(super) fn connected(guard: &mut Option<Client>) -> Result<&mut Client, PgError> {
    guard.as_mut().ok_or(PgError::Invalid {
        operation: "connecting",
        what: "no connection".into(),
    })
}
