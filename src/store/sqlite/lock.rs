//! The SQLite backend's leases (see [`crate::store::lease`]): per-job file
//! locks in `STATE_DIR/locks/`, the only place that touches flock. A run
//! holds its job's lock from before its claim until it has been recorded, so
//! a second process sees the job as running, and a `running` row whose lock
//! nobody holds belongs to a dead process (its lock died with it).
//!
//! Lock files are opened without following links (`O_NOFOLLOW`) and must be
//! regular files: a link placed in `locks/` (even a dangling one) would
//! otherwise make jobrun create or lock a file elsewhere. The directory is
//! created 0700 and checked by [`crate::private_dir`] at daemon start.
//!
//! Must not know SQL, schedules or processes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::private_dir::{self, Links};
use crate::store::LeaseMode as LockMode;

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct RunLock {
    // Held for its flock; closing the file releases it.
    _file: File,
}

/// The directory of lock files under a state directory.
pub fn locks_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("locks")
}

/// Creates the locks directory (0700) if it is missing and checks it for a
/// jobrun running as `euid`: a link, another owner or a world-writable
/// directory is refused. `Ok(Some(warning))` when others may write to it.
pub fn prepare_dir(locks_dir: &Path, euid: u32) -> Result<Option<String>, private_dir::DirError> {
    private_dir::ensure(locks_dir, Links::Refuse, euid)
}

/// Tries to take `job`'s lock without waiting. `Ok(None)` when another run
/// holds it (that is not an error: it is the answer).
pub fn try_lock(locks_dir: &Path, job: &str, mode: LockMode) -> io::Result<Option<RunLock>> {
    if std::fs::symlink_metadata(locks_dir).is_err() {
        prepare_dir(locks_dir, private_dir::euid()).map_err(io::Error::other)?;
    }
    // Names are checked where they are read; a name that could leave
    // `locks/` is still never joined to it.
    if job.is_empty() || job.contains('/') || job.contains('\0') || job == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{job:?} cannot name a lock file in {}", locks_dir.display()),
        ));
    }
    let path = locks_dir.join(format!("{job}.lock"));
    let file = open_lock_file(&path)?;
    // Called fully qualified: std's File has methods of the same names since
    // Rust 1.89 that would silently win a method call.
    let result = match mode {
        LockMode::Exclusive => fs2::FileExt::try_lock_exclusive(&file),
        LockMode::Shared => fs2::FileExt::try_lock_shared(&file),
    };
    match result {
        Ok(()) => Ok(Some(RunLock { _file: file })),
        // flock's EWOULDBLOCK: somebody else holds it.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens (creating) a lock file, refusing a link or anything but a regular
/// file in its place, with the fix in the error.
fn open_lock_file(path: &Path) -> io::Result<File> {
    let refused = |what: &str| {
        io::Error::other(format!(
            "{} is {what}, and jobrun uses only regular files of its own as locks \
             (a link there could make it create or lock another file); remove it",
            path.display()
        ))
    };
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // A FIFO in its place must not block the opener.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(file) => file,
        // O_NOFOLLOW's answer for a link, dangling or not.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(refused("a symbolic link")),
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Err(refused("not a regular file"));
    }
    Ok(file)
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
        let _lock = try_lock(&locks, "backup", LockMode::Exclusive)
            .unwrap()
            .unwrap();
        assert!(locks.join("backup.lock").is_file());
    }

    #[test]
    fn a_symlink_in_the_locks_dir_is_refused_and_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let locks = locks_dir(dir.path());
        std::fs::create_dir(&locks).unwrap();
        let target = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, locks.join("job.lock")).unwrap();
        let err = try_lock(&locks, "job", LockMode::Exclusive).unwrap_err();
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        assert!(err.to_string().contains("remove it"), "{err}");
        assert!(!target.exists(), "the link's target was created");
        // A link to an existing file is refused just the same.
        std::fs::write(&target, "precious").unwrap();
        assert!(try_lock(&locks, "job", LockMode::Exclusive).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
    }

    #[test]
    fn a_fifo_or_directory_in_place_of_a_lock_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(
            &dir.path().join("fifo.lock"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("dir.lock")).unwrap();
        for job in ["fifo", "dir"] {
            let err = try_lock(dir.path(), job, LockMode::Exclusive).unwrap_err();
            assert!(
                err.to_string().contains("not a regular file") || err.raw_os_error().is_some(),
                "{err}"
            );
        }
    }

    #[test]
    fn the_locks_dir_is_created_private_and_a_linked_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let locks = locks_dir(dir.path());
        assert!(prepare_dir(&locks, private_dir::euid()).unwrap().is_none());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&locks).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
        let other = tempfile::tempdir().unwrap();
        std::fs::remove_dir(&locks).unwrap();
        std::os::unix::fs::symlink(other.path(), &locks).unwrap();
        let err = prepare_dir(&locks, private_dir::euid()).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    #[test]
    fn a_job_name_never_leads_out_of_the_locks_dir() {
        let dir = tempfile::tempdir().unwrap();
        let locks = locks_dir(dir.path());
        for name in ["../escape", "a/b", ""] {
            let err = try_lock(&locks, name, LockMode::Exclusive).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name}");
        }
        assert!(!dir.path().join("escape.lock").exists());
    }
}
