//! The runs this process is supervising (the active-run registry), so that
//! a daemon shutdown and `concurrency: replace` can stop them, and why each
//! was stopped.
//!
//! Knows the runner's [`Stopper`]; nothing of the store, locks or schedules.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::job::RunId;
use crate::runner::Stopper;

/// Why a running run is being stopped by jobrun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The daemon is shutting down: recorded `interrupted`.
    Shutdown,
    /// A newer run of a `concurrency: replace` job takes its place: `killed`.
    Replaced,
}

pub(super) struct Active {
    pub(super) stopper: Stopper,
    pub(super) reason: Arc<Mutex<Option<StopReason>>>,
}

/// The runs this process is supervising, so shutdown and `replace` can stop them.
#[derive(Clone, Default)]
pub struct ActiveRuns {
    inner: Arc<Mutex<Registry>>,
}

#[derive(Default)]
struct Registry {
    runs: HashMap<RunId, Active>,
    /// Set by [`ActiveRuns::stop_all`]: runs registered afterwards (a firing
    /// that was already past its claim) are stopped as they start.
    stopping: Option<StopReason>,
    killing: bool,
}

impl ActiveRuns {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops every run, and every run that starts from now on (daemon
    /// shutdown). Returns how many were asked to stop.
    pub fn stop_all(&self, reason: StopReason) -> usize {
        let mut registry = self.lock();
        registry.stopping = Some(reason);
        for run in registry.runs.values() {
            request_stop(run, reason);
        }
        registry.runs.len()
    }

    /// Sends SIGKILL to every run still going (after the shutdown grace).
    pub fn kill_all(&self) {
        let mut registry = self.lock();
        registry.killing = true;
        for run in registry.runs.values() {
            run.stopper.kill();
        }
    }

    pub fn len(&self) -> usize {
        self.lock().runs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once the daemon is shutting down: no new command should start.
    pub fn is_stopping(&self) -> bool {
        self.lock().stopping.is_some()
    }

    pub(super) fn register(&self, run_id: RunId, run: Active) {
        let mut registry = self.lock();
        if let Some(reason) = registry.stopping {
            request_stop(&run, reason);
            if registry.killing {
                run.stopper.kill();
            }
        }
        registry.runs.insert(run_id, run);
    }

    pub(super) fn unregister(&self, run_id: RunId) {
        self.lock().runs.remove(&run_id);
    }

    pub(super) fn stop_run(&self, id: RunId, reason: StopReason) -> bool {
        match self.lock().runs.get(&id) {
            Some(run) => {
                request_stop(run, reason);
                true
            }
            None => false,
        }
    }
}

fn request_stop(run: &Active, reason: StopReason) {
    let mut slot = run.reason.lock().unwrap_or_else(|p| p.into_inner());
    slot.get_or_insert(reason);
    run.stopper.stop();
}
