//! [`PostgresStore`]: the PostgreSQL state behind the store seam, with the
//! same blocking calls as SQLite's, so `fire`, `daemon` and `cli` use it
//! through [`crate::store::Store`] unchanged.
//!
//! The client is async (tokio-postgres); the seam's callers are threads (the
//! recorder, the CLI) and, at start-up, the daemon's loop. The store
//! therefore runs a small runtime of its own (one worker thread, which also
//! drives the connections and the heartbeat task), and each call is a task
//! there whose result the caller waits for on a plain channel: no call ever
//! enters the caller's runtime, so it may come from anywhere.
//!
//! Two connections: the store's (claims, records, reads; re-made on the
//! next call after it broke) and the heartbeat's (see [`super::member`]), so
//! a slow claim never delays a beat. Leases are this process's
//! ([`LocalLeases`]); across hosts the claim decides.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tracing::{info, warn};

use super::fence::Fence;
use super::member::{registered, Member};
use super::shared::{connected, Membership, OrphanHandler, Shared, StopHandler};
use super::{connect, daemons, migrate, runs, sql, Daemon, PgError};
use crate::job::RunId;
use crate::store::lease::LocalLeases;
use crate::store::{ClaimCounts, Declared, Lease, LeaseMode, Operation, StoreError};

/// The PostgreSQL state (see the module doc).
pub struct PostgresStore {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    leases: LocalLeases,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.shared.target)
            .field("host", &self.shared.host)
            .finish_non_exhaustive()
    }
}

fn failed(operation: Operation, doing: &'static str) -> impl FnOnce(PgError) -> StoreError {
    move |e| StoreError::Failed {
        operation,
        doing,
        source: Box::new(e),
    }
}

impl PostgresStore {
    /// Connects and brings the schema to this jobrun's version (several
    /// hosts starting at once migrate once).
    pub fn open(membership: Membership) -> Result<PostgresStore, StoreError> {
        Self::connect(membership, true).map(|s| s.expect("migrated"))
    }

    /// Connects only if the database holds a jobrun state already
    /// (read-only commands create nothing).
    pub fn open_existing(membership: Membership) -> Result<Option<PostgresStore>, StoreError> {
        Self::connect(membership, false)
    }

    fn connect(membership: Membership, create: bool) -> Result<Option<PostgresStore>, StoreError> {
        let open = |e: PgError| StoreError::Database {
            source: Box::new(e),
        };
        membership
            .lease
            .validate()
            .map_err(|what| open(PgError::BadUrl(what)))?;
        let config = connect::config(&membership.url).map_err(open)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("jobrun-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Database {
                source: Box::new(e),
            })?;
        let shared = Arc::new(Shared {
            target: connect::target(&config),
            config,
            host: membership.host,
            pid: std::process::id(),
            lease: membership.lease,
            wall: membership.wall,
            kind: membership.kind,
            conn: tokio::sync::Mutex::new(None),
            member: Mutex::new(Member::new(Fence::new(membership.lease))),
            definitions: RwLock::new(HashMap::new()),
            stop_handler: Mutex::new(None),
            orphan_handler: Mutex::new(None),
            claims: Default::default(),
            closing: AtomicBool::new(false),
            #[cfg(test)]
            refuse: AtomicBool::new(false),
        });
        let store = PostgresStore {
            shared,
            runtime: Some(runtime),
            leases: LocalLeases::default(),
        };
        let exists = store
            .call(move |s| async move {
                let mut guard = s.client().await?;
                let client = connected(&mut guard)?;
                let version = migrate::version(client).await?;
                if version == 0 && !create {
                    return Ok(false);
                }
                migrate::migrate(client).await?;
                Ok(true)
            })
            .map_err(open)?;
        Ok(exists.then_some(store))
    }

    /// Runs `f` on the store's runtime and waits for it.
    fn call<T, F, Fut>(&self, f: F) -> Result<T, PgError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Shared>) -> Fut,
        Fut: Future<Output = Result<T, PgError>> + Send + 'static,
    {
        let lost = || PgError::Invalid {
            operation: "calling the database",
            what: "the store's runtime is gone".into(),
        };
        let runtime = self.runtime.as_ref().ok_or_else(lost)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let future = f(Arc::clone(&self.shared));
        runtime.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv().map_err(|_| lost())?
    }

    pub(super) fn op<T, F, Fut>(
        &self,
        operation: Operation,
        doing: &'static str,
        f: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Shared>) -> Fut,
        Fut: Future<Output = Result<T, PgError>> + Send + 'static,
    {
        self.call(f).map_err(failed(operation, doing))
    }

    /// How this process's claims came out since it started.
    pub fn claim_counts(&self) -> ClaimCounts {
        let [won, lost, fenced, refused] = &self.shared.claims;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClaimCounts {
            won: get(won),
            lost: get(lost),
            fenced: get(fenced),
            refused: get(refused),
        }
    }

    /// How often the heartbeat task renews the lease.
    pub fn heartbeat_interval(&self) -> std::time::Duration {
        self.shared.lease.heartbeat
    }

    /// Where the database is (never the password), for messages.
    pub fn target(&self) -> &str {
        &self.shared.target
    }

    /// Proves the database takes writes: registers this process with the
    /// fleet (a daemon's start) on a primary, not a read-only standby.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        self.op(
            Operation::Heartbeat,
            "registering with the fleet",
            |s| async move {
                let mut guard = s.client().await?;
                let client = connected(&mut guard)?;
                let read_only: String = client
                    .query_one("SHOW transaction_read_only", &[])
                    .await
                    .map_err(sql("checking that the database takes writes"))?
                    .get(0);
                if read_only == "on" {
                    return Err(PgError::Invalid {
                        operation: "checking that the database takes writes",
                        what: "the server is read-only (a standby?); point --database at the \
                               primary"
                            .into(),
                    });
                }
                registered(&s, client).await.map(drop)
            },
        )
    }

    /// This process's lease on `job` (see [`LocalLeases`]); for one run at a
    /// time, also `None` while a run of the job is going anywhere in the
    /// fleet, so `forbid` skips and `replace` stops it before claiming (the
    /// claim's unique index still decides a race).
    pub fn lease(&self, job: &str, mode: LeaseMode) -> Result<Option<Lease>, StoreError> {
        let Some(lease) = self.leases.take(job, mode) else {
            return Ok(None);
        };
        if mode == LeaseMode::Shared {
            return Ok(Some(lease));
        }
        let job = job.to_string();
        let busy = self.op(
            Operation::Lease,
            "looking for a running run of the job",
            |s| async move {
                let mut guard = s.client().await?;
                let row = connected(&mut guard)?
                    .query_opt(
                        "SELECT 1 FROM runs r JOIN daemons d ON d.epoch = r.owner_epoch
                         WHERE r.job = $1 AND r.status = 'running' AND d.dead_at IS NULL
                         LIMIT 1",
                        &[&job],
                    )
                    .await
                    .map_err(sql("looking for a running run of the job"))?;
                Ok(row.is_some())
            },
        )?;
        Ok((!busy).then_some(lease))
    }

    /// Where the leases live, for messages.
    pub fn lease_location(&self) -> String {
        format!(
            "this process's memory (the PostgreSQL database at {} decides across hosts)",
            self.shared.target
        )
    }

    /// The definitions this process claims jobs with (at start and after
    /// each reload).
    pub fn declare(&self, jobs: Vec<Declared>) {
        let mut known = self
            .shared
            .definitions
            .write()
            .unwrap_or_else(|p| p.into_inner());
        *known = jobs.into_iter().map(|d| (d.job.clone(), d)).collect();
    }

    /// Sets what stops a run a peer asked to stop.
    pub fn set_stop_handler(&self, handler: StopHandler) {
        *self
            .shared
            .stop_handler
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(handler);
    }

    /// Sets what stops an orphaned command of this host (see
    /// [`OrphanHandler`]).
    pub fn set_orphan_handler(&self, handler: OrphanHandler) {
        *self
            .shared
            .orphan_handler
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(handler);
    }

    /// Asks whichever host holds run `id` to stop it (a `replace` job's new
    /// run). True if the request was recorded.
    pub fn request_stop(&self, job: &str) -> Result<bool, StoreError> {
        let job = job.to_string();
        self.op(
            Operation::Claim,
            "asking a run on another host to stop",
            |s| async move {
                let mut guard = s.client().await?;
                let client = connected(&mut guard)?;
                let me = registered(&s, client).await?;
                let asked = super::replace::request_stop(client, &me, &job).await?;
                for r in &asked {
                    info!(job = %r.job, run_id = r.run_id, host = %r.host, "asked the host running it to stop it (concurrency: replace)");
                }
                Ok(!asked.is_empty())
            },
        )
    }

    /// Marks run `id` abandoned, only if it still reads `running`.
    pub fn mark_abandoned(&self, id: RunId, reason: &str) -> Result<bool, StoreError> {
        let reason = reason.to_string();
        self.op(
            Operation::Finish,
            "marking a run abandoned",
            |s| async move {
                let mut guard = s.client().await?;
                runs::mark_abandoned(connected(&mut guard)?, id.0, &reason).await
            },
        )
    }

    /// Records what this daemon loaded, on its row.
    pub fn record_loaded(&self, loaded: &crate::store::Loaded) -> Result<(), StoreError> {
        let text = serde_json::to_string(loaded).unwrap_or_default();
        self.op(
            Operation::Heartbeat,
            "recording what the daemon loaded",
            |s| async move {
                let mut guard = s.client().await?;
                let client = connected(&mut guard)?;
                let me = registered(&s, client).await?;
                client
                    .execute(
                        "UPDATE daemons SET loaded = $2 WHERE epoch = $1",
                        &[&me.epoch, &text],
                    )
                    .await
                    .map_err(sql("recording what the daemon loaded"))?;
                Ok(())
            },
        )
    }

    /// Records a clean stop: the heartbeat ends, and the row says stopped
    /// (peers then declare nothing dead).
    pub fn stopped(&self) -> Result<(), StoreError> {
        self.shared.closing.store(true, Ordering::Relaxed);
        self.op(
            Operation::Heartbeat,
            "recording the daemon's stop",
            |s| async move {
                // Kept: outcomes still coming in are written under this
                // epoch (finishing needs only that no peer declared it dead).
                let me = s.member().me.clone();
                let Some(me) = me else { return Ok(()) };
                let mut guard = s.client().await?;
                daemons::stop(connected(&mut guard)?, &me).await
            },
        )
    }

    /// This process's current registration, if any (tests).
    pub fn member(&self) -> Option<Daemon> {
        self.shared.member().me.clone()
    }

    /// Makes every write fail, or lets writes through again (tests).
    #[cfg(test)]
    pub fn refuse_writes_for_tests(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::Relaxed);
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        let registered = self.shared.member().me.is_some();
        if registered && !self.shared.is_closing() {
            // A `jobrun run` ending: its row says stopped, not dead.
            if let Err(e) = self.stopped() {
                warn!(error = %e, "recording this process's stop in the fleet's database");
            }
        }
        self.shared.closing.store(true, Ordering::Relaxed);
        if let Some(runtime) = self.runtime.take() {
            // Never blocks, whatever thread or runtime drops the store.
            runtime.shutdown_background();
        }
    }
}
