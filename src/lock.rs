//! The per-job file lock in `STATE_DIR/locks/`: the only place that touches
//! flock. A run holds its job's lock from before its claim until it has been
//! recorded, so a second process sees the job as running, and a `running` row
//! whose lock nobody holds belongs to a dead process (its lock died with it).
//!
//! Must not know SQLite, schedules or processes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How a run holds its job's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// One run at a time (`concurrency: forbid` and `replace`).
    Exclusive,
    /// Runs may overlap (`concurrency: allow`); still excludes an exclusive holder,
    /// so a dead-owner check (exclusive) only succeeds when no run is alive.
    Shared,
}

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct RunLock {
    // Held for its flock; closing the file releases it.
    _file: File,
    path: PathBuf,
}

impl RunLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The directory of lock files under a state directory.
pub fn locks_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("locks")
}

/// Tries to take `job`'s lock without waiting. `Ok(None)` when another run
/// holds it (that is not an error: it is the answer).
pub fn try_lock(locks_dir: &Path, job: &str, mode: LockMode) -> io::Result<Option<RunLock>> {
    if !locks_dir.is_dir() {
        // Private like the state directory around it.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(locks_dir)?;
    }
    let path = locks_dir.join(format!("{job}.lock"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)?;
    // Called fully qualified: std's File has methods of the same names since
    // Rust 1.89 that would silently win a method call.
    let result = match mode {
        LockMode::Exclusive => fs2::FileExt::try_lock_exclusive(&file),
        LockMode::Shared => fs2::FileExt::try_lock_shared(&file),
    };
    match result {
        Ok(()) => Ok(Some(RunLock { _file: file, path })),
        // flock's EWOULDBLOCK: somebody else holds it.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_everything_and_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = try_lock(dir.path(), "a", LockMode::Exclusive).unwrap();
        assert!(first.is_some());
        assert!(try_lock(dir.path(), "a", LockMode::Exclusive)
            .unwrap()
            .is_none());
        assert!(try_lock(dir.path(), "a", LockMode::Shared)
            .unwrap()
            .is_none());
        // Another job's lock is independent.
        assert!(try_lock(dir.path(), "b", LockMode::Exclusive)
            .unwrap()
            .is_some());
        drop(first);
        assert!(try_lock(dir.path(), "a", LockMode::Exclusive)
            .unwrap()
            .is_some());
    }

    #[test]
    fn shared_holders_coexist_but_exclude_an_exclusive_one() {
        let dir = tempfile::tempdir().unwrap();
        let a = try_lock(dir.path(), "j", LockMode::Shared).unwrap();
        let b = try_lock(dir.path(), "j", LockMode::Shared).unwrap();
        assert!(a.is_some() && b.is_some());
        assert!(try_lock(dir.path(), "j", LockMode::Exclusive)
            .unwrap()
            .is_none());
        drop((a, b));
        assert!(try_lock(dir.path(), "j", LockMode::Exclusive)
            .unwrap()
            .is_some());
    }

    #[test]
    fn the_lock_file_lives_in_the_locks_dir() {
        let dir = tempfile::tempdir().unwrap();
        let locks = locks_dir(dir.path());
        let lock = try_lock(&locks, "backup", LockMode::Exclusive)
            .unwrap()
            .unwrap();
        assert_eq!(lock.path(), locks.join("backup.lock"));
    }
}
