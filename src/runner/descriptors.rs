//! jobrun's own open-file limit (`RLIMIT_NOFILE`) against its jobs'.
//!
//! Every run costs jobrun a few descriptors of its own (the job's lock, the
//! pipes of its output, a pidfd), so many runs at once can exhaust a soft
//! limit of 1,024 (systemd's default) or less, and a run that cannot get
//! them is lost (issue 11: 200 jobs under a limit of 64 left 44-47 rows a
//! tick). jobrun may raise its soft limit up to the hard one; its jobs must
//! still get the limit jobrun was started with (a raised soft limit leaks
//! into programs that `select()` on descriptors or close every one up to the
//! limit).
//!
//! How the jobs keep the original limit, and why the raise is lazy:
//! `posix_spawn` has no attribute for resource limits, and restoring the
//! child's limit with `prlimit` after the spawn is a race (the child has
//! already executed its program, and may have read the limit or started
//! children of its own, before the parent's call lands). So a job whose
//! limit must differ from jobrun's takes the fork path, which sets the limit
//! in the child before it executes. Forking costs the daemon CPU on every
//! start (BENCHMARKS.md, change 19), so jobrun raises its limit only when
//! the runs going at once need it ([`raise`], called by the start limiter in
//! `fire`); until then every job starts with `posix_spawn` as before.
//!
//! Knows only the process's limits; nothing of jobs, runs or the store.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use nix::libc;

/// The limit jobrun was started with: what every job gets.
static ORIGINAL: OnceLock<libc::rlimit> = OnceLock::new();
/// Set once jobrun has raised its limit: until then a start costs no
/// system call to find out.
static RAISED: AtomicBool = AtomicBool::new(false);

fn current() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limit into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

/// The soft and hard limits now, remembering the first ones seen as the
/// jobs' limit. Call it before [`raise`].
pub fn limits() -> io::Result<(u64, u64)> {
    let now = current()?;
    ORIGINAL.get_or_init(|| now);
    Ok((now.rlim_cur, now.rlim_max))
}

/// Raises jobrun's soft limit to its hard limit; from now on jobs start on
/// the fork path, which gives them the original limit back. Returns the new
/// soft limit.
pub fn raise() -> io::Result<u64> {
    let now = current()?;
    ORIGINAL.get_or_init(|| now);
    if now.rlim_cur >= now.rlim_max {
        return Ok(now.rlim_cur);
    }
    let raised = libc::rlimit {
        rlim_cur: now.rlim_max,
        rlim_max: now.rlim_max,
    };
    // SAFETY: setrlimit reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(io::Error::last_os_error());
    }
    RAISED.store(true, Ordering::Release);
    Ok(raised.rlim_max)
}

/// The limit a job must be given before it executes, when it differs from
/// jobrun's own (jobrun raised its limit); `None` when the job inherits
/// jobrun's as it is.
pub(super) fn job_limit() -> Option<libc::rlimit> {
    if !RAISED.load(Ordering::Acquire) {
        return None;
    }
    let original = *ORIGINAL.get()?;
    let now = current().ok()?;
    (now.rlim_cur != original.rlim_cur).then_some(original)
}

/// Sets `limit` in a forked child, before exec: one system call, allocating
/// nothing (async-signal-safe).
pub(super) fn set_in_child(limit: &libc::rlimit) -> io::Result<()> {
    // SAFETY: setrlimit reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How many descriptors this process has open now (`/proc/self/fd`); `None`
/// where that cannot be read.
pub fn open_count() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    // The directory's own descriptor is one of the entries.
    Some((entries.count() as u64).saturating_sub(1))
}

/// Whether a failure to start is the machine's or jobrun's lack of a
/// resource (descriptors, processes, memory) rather than the job's fault.
pub fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN | libc::ENOMEM)
    )
}
