//! The job processes this jobrun started, as seen by a PID 1: which children
//! are jobs still waiting for their runs to collect them, reaping every
//! other zombie child (orphans it inherited), and telling a job's process
//! group from a later program given the same pid. `/proc/PID/stat` is read
//! through [`crate::procfs`] only.
//!
//! Must not know how a job is started or what its run records.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};

use nix::unistd::Pid;

/// The job processes this jobrun spawned and has not waited for yet. When
/// jobrun reaps orphans (as PID 1) it leaves these alone: their exit statuses
/// belong to their runs.
static OWN_CHILDREN: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
/// Shared while a job is forked and registered, exclusive while reaping.
static SPAWNING: RwLock<()> = RwLock::new(());

pub(super) fn own_children() -> MutexGuard<'static, BTreeSet<u32>> {
    OWN_CHILDREN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Held (shared) from before a job is started until its pid is in
/// [`own_children`]: until then the reaper must not look (a job that exits at
/// once would otherwise be taken for an orphan and its exit status stolen
/// from its run).
pub(super) fn spawning() -> RwLockReadGuard<'static, ()> {
    SPAWNING.read().unwrap_or_else(|p| p.into_inner())
}

/// Reaps every zombie child of this process that is not one of its own jobs:
/// the orphans a PID 1 inherits (a job's double-forked daemon, say). Never
/// steals a job's exit status: it reads `/proc` to find zombies, and leaves
/// the pids it spawned to their runs. Returns how many were reaped.
pub fn reap_orphans() -> usize {
    let _exclusive = SPAWNING.write().unwrap_or_else(|p| p.into_inner());
    let own = own_children().clone();
    let mut reaped = 0;
    for pid in crate::procfs::zombie_children(std::process::id()) {
        if own.contains(&pid) {
            continue;
        }
        let Ok(raw) = i32::try_from(pid) else {
            continue;
        };
        if let Ok(status) = nix::sys::wait::waitpid(
            Pid::from_raw(raw),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        ) {
            if status != nix::sys::wait::WaitStatus::StillAlive {
                reaped += 1;
            }
        }
    }
    reaped
}

/// When a job process whose group is still there started, in seconds since
/// the Unix epoch (to about a second). `None` when `pid` is gone, is a
/// zombie, or does not lead its own process group (every job does: it runs
/// in a group of its own), so a pid that was reused by some other program is
/// never taken for a job.
pub fn job_group_started(pid: u32) -> Option<f64> {
    let fields = crate::procfs::stat_fields(pid)?;
    // pgrp is field 5, as proc(5) counts them.
    if fields.get(2)?.parse::<u32>().ok()? != pid {
        return None;
    }
    crate::procfs::started(&fields)
}
