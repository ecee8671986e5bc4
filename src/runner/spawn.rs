//! Starting a job's process with `posix_spawn`, and waiting for it through a
//! pidfd.
//!
//! Why not `std::process::Command`: std forks unless it can prove glibc's
//! `posix_spawn` is safe to use, and in a static binary (the production
//! build, README "Production build") it cannot, so it always forks. A fork
//! copies the daemon's page tables and makes every page it writes next a
//! copy-on-write fault; with 1,000 jobs on one tick that was most of the
//! daemon's CPU (BENCHMARKS.md, change 19). glibc's `posix_spawn` starts the
//! child in the daemon's memory (a vfork-style clone) until it executes.
//!
//! What std's fork path did before exec is done here by spawn attributes:
//! the child leads its own process group, has no blocked signal and every
//! signal at its default disposition, and changes into the working directory
//! (`posix_spawn_file_actions_addchdir_np`, glibc 2.29). Anything more (another
//! user) still takes the fork path (`fork`; `launch` chooses).
//!
//! The exit is seen through a pidfd (Linux 5.3) registered with the runtime,
//! then collected with `waitpid` on the child's own pid. [`available`] says
//! whether this kernel has pidfds; without them jobs take the fork path.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use nix::libc::{self, c_int, pid_t};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::unix::pipe;

/// What to start: every string already a C string, the program a path.
pub(super) struct Spec<'a> {
    pub program: &'a CStr,
    pub argv: &'a [CString],
    pub envp: &'a [CString],
    pub workdir: Option<&'a CStr>,
    /// Give the child a pipe on standard input (else `/dev/null`).
    pub stdin: bool,
}

/// A started child: its pid, the parent's ends of its pipes, and its exit.
pub(super) struct Spawned {
    pub pid: u32,
    pub stdin: Option<pipe::Sender>,
    pub stdout: pipe::Receiver,
    pub stderr: pipe::Receiver,
    pub exit: Exit,
}

/// Whether this kernel can open pidfds (Linux 5.3 and later), checked once.
pub(super) fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| pidfd_open(std::process::id() as pid_t).is_ok())
}

/// Starts `spec`. Must be called within a tokio runtime (the pipes and the
/// pidfd are registered with it).
pub(super) fn spawn(spec: &Spec<'_>) -> io::Result<Spawned> {
    // The child's ends are dup2'ed onto 0, 1 and 2; every descriptor made
    // here is close-on-exec, so none leaks into this or any other job.
    let (out_r, out_w) = pipe_pair()?;
    let (err_r, err_w) = pipe_pair()?;
    let stdin = if spec.stdin { Some(pipe_pair()?) } else { None };
    // The parent's ends join the runtime before the child exists, so that
    // once it does, only the pidfd can still fail (and then it is killed).
    let stdout = pipe::Receiver::from_owned_fd(out_r)?;
    let stderr = pipe::Receiver::from_owned_fd(err_r)?;
    let (stdin_read, stdin_write) = match stdin {
        Some((read, write)) => (Some(read), Some(pipe::Sender::from_owned_fd(write)?)),
        None => (None, None),
    };

    let mut actions = FileActions::new()?;
    match &stdin_read {
        Some(read) => actions.dup2(read.as_raw_fd(), 0)?,
        None => actions.open_null(0)?,
    }
    actions.dup2(out_w.as_raw_fd(), 1)?;
    actions.dup2(err_w.as_raw_fd(), 2)?;
    if let Some(dir) = spec.workdir {
        actions.chdir(dir)?;
    }
    let attr = Attr::new()?;

    let argv = pointers(spec.argv);
    let envp = pointers(spec.envp);
    let mut pid: pid_t = 0;
    // SAFETY: every pointer is valid for the call: the C strings outlive it
    // and both arrays end with a null pointer; `actions` and `attr` are
    // initialised and owned by this frame.
    let rc = unsafe {
        libc::posix_spawn(
            &mut pid,
            spec.program.as_ptr(),
            &actions.0,
            &attr.0,
            argv.as_ptr(),
            envp.as_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // The parent's copies of the child's ends go now, so that end-of-file
    // comes when the job (and whatever it started) closes them.
    drop((out_w, err_w, stdin_read));
    // The child is ours and not yet waited for, so its pid cannot have been
    // reused: the pidfd refers to it.
    let exit = pidfd_open(pid)
        .and_then(|fd| Exit::new(pid, fd))
        .inspect_err(|_| {
            // Rare (out of descriptors): the job must not run unwatched.
            kill_and_reap(pid);
        })?;
    Ok(Spawned {
        pid: u32::try_from(pid).expect("a child's pid is positive"),
        stdin: stdin_write,
        stdout,
        stderr,
        exit,
    })
}

/// The exit of a spawned child, awaited through its pidfd.
pub(super) struct Exit {
    pid: pid_t,
    pidfd: Option<AsyncFd<OwnedFd>>,
    status: Option<ExitStatus>,
}

impl std::fmt::Debug for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exit")
            .field("pid", &self.pid)
            .field("status", &self.status)
            .finish()
    }
}

impl Exit {
    fn new(pid: pid_t, pidfd: OwnedFd) -> io::Result<Exit> {
        // SAFETY: an OwnedFd is a valid, open descriptor that always returns
        // the same number, and the AsyncFd owns it until dropped.
        let pidfd = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Exit {
            pid,
            pidfd: Some(pidfd),
            status: None,
        })
    }

    /// Waits for the child to exit and collects its status (once; later
    /// calls return the same status).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let pidfd = self
            .pidfd
            .as_ref()
            .expect("the pidfd is kept until the status is collected");
        loop {
            // A pidfd is readable once its process has exited.
            let mut ready = pidfd.readable().await?;
            match try_reap(self.pid)? {
                Some(status) => {
                    self.status = Some(status);
                    self.pidfd = None;
                    return Ok(status);
                }
                None => ready.clear_ready(),
            }
        }
    }
}

impl Drop for Exit {
    /// A child dropped before its exit was collected is reaped in the
    /// background, so it never stays a zombie.
    fn drop(&mut self) {
        let Some(pidfd) = self.pidfd.take() else {
            return;
        };
        let pid = self.pid;
        if let Ok(Some(_)) = try_reap(pid) {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                while let Ok(mut ready) = pidfd.readable().await {
                    match try_reap(pid) {
                        Ok(None) => ready.clear_ready(),
                        _ => return,
                    }
                }
            });
        }
    }
}

/// `waitpid(pid, WNOHANG)`: the status once the child has exited.
fn try_reap(pid: pid_t) -> io::Result<Option<ExitStatus>> {
    let mut status: c_int = 0;
    loop {
        // SAFETY: a plain system call writing into a local.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        match rc {
            0 => return Ok(None),
            rc if rc == pid => return Ok(Some(ExitStatus::from_raw(status))),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

fn kill_and_reap(pid: pid_t) {
    // SAFETY: signals our own, not yet reaped child (its group is its pid).
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
    }
}

fn pidfd_open(pid: pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // (close-on-exec by definition), which the OwnedFd then owns.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::other("pidfd out of range"))?;
    // SAFETY: `fd` was just returned by pidfd_open, is open, and is owned by
    // nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A close-on-exec pipe, (read end, write end), both at descriptor 3 or
/// above: a descriptor that is already 0, 1 or 2 (a daemon started with a
/// closed standard stream) would be dup2'ed onto itself, which keeps its
/// close-on-exec flag on some C libraries.
fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [c_int; 2] = [-1; 2];
    // SAFETY: pipe2 fills the two descriptors, owned right below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by
    // nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(read)?, above_stdio(write)?))
}

fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor (>= 3), owned below.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl succeeded, so `new` is an open descriptor owned by
    // nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// A null-terminated array of pointers into `strings`.
fn pointers(strings: &[CString]) -> Vec<*mut libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr().cast_mut())
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect()
}

fn check(rc: c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

struct FileActions(libc::posix_spawn_file_actions_t);

impl FileActions {
    fn new() -> io::Result<Self> {
        // SAFETY: an all-zero action list is a valid bit pattern for this
        // plain C struct; it is initialised by the call below before any
        // other use.
        let mut raw: libc::posix_spawn_file_actions_t = unsafe { std::mem::zeroed() };
        // SAFETY: `raw` is a live local; destroyed in Drop only when this init
        // succeeded.
        check(unsafe { libc::posix_spawn_file_actions_init(&mut raw) })?;
        Ok(FileActions(raw))
    }

    fn dup2(&mut self, fd: RawFd, to: RawFd) -> io::Result<()> {
        // SAFETY: an initialised action list; the call copies its arguments.
        check(unsafe { libc::posix_spawn_file_actions_adddup2(&mut self.0, fd, to) })
    }

    fn open_null(&mut self, to: RawFd) -> io::Result<()> {
        // SAFETY: as above; glibc copies the path.
        check(unsafe {
            libc::posix_spawn_file_actions_addopen(
                &mut self.0,
                to,
                c"/dev/null".as_ptr(),
                libc::O_RDONLY,
                0,
            )
        })
    }

    fn chdir(&mut self, dir: &CStr) -> io::Result<()> {
        // SAFETY: as above; glibc copies the path.
        check(unsafe { libc::posix_spawn_file_actions_addchdir_np(&mut self.0, dir.as_ptr()) })
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised in new().
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

/// Spawn attributes: own process group, empty signal mask, every signal at
/// its default disposition (the reserved ones glibc keeps aside).
struct Attr(libc::posix_spawnattr_t);

impl Attr {
    fn new() -> io::Result<Self> {
        // SAFETY: initialised by the call before any other use; the signal
        // sets are filled by sigemptyset/sigfillset before they are read.
        unsafe {
            let mut raw: libc::posix_spawnattr_t = std::mem::zeroed();
            check(libc::posix_spawnattr_init(&mut raw))?;
            let mut attr = Attr(raw);
            let mut none: libc::sigset_t = std::mem::zeroed();
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigfillset(&mut all);
            check(libc::posix_spawnattr_setsigmask(&mut attr.0, &none))?;
            check(libc::posix_spawnattr_setsigdefault(&mut attr.0, &all))?;
            check(libc::posix_spawnattr_setpgroup(&mut attr.0, 0))?;
            let flags = libc::POSIX_SPAWN_SETPGROUP
                | libc::POSIX_SPAWN_SETSIGMASK
                | libc::POSIX_SPAWN_SETSIGDEF;
            check(libc::posix_spawnattr_setflags(
                &mut attr.0,
                libc::c_short::try_from(flags).expect("spawn flags fit a short"),
            ))?;
            Ok(attr)
        }
    }
}

impl Drop for Attr {
    fn drop(&mut self) {
        // SAFETY: initialised in new().
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
}
