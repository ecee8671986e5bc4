//! Runs one job process and supervises it to the end: spawning (own process
//! group, clean signal state, chosen user, working directory, exact
//! environment, standard input), streaming its output line by line while
//! keeping a bounded tail, enforcing the timeout, stopping on request, and
//! recording how it ended.
//!
//! This room knows processes, signals and bytes of output. It must not know
//! SQLite, the schedule, locks or the store: `fire` composes
//! lock -> claim -> [`start`] -> [`Running::wait`] -> store, and decides what
//! a [`RunOutcome`] means for the run's recorded status.
//!
//! Decisions worth knowing before changing anything here:
//!
//! - **Process group.** The child leads its own group, so a timeout or a stop
//!   reaches everything it started (`sleep 100 &` included), and a Ctrl-C
//!   meant for the daemon's terminal never reaches jobs directly.
//! - **Termination.** SIGTERM to the group, then SIGKILL to the group once
//!   `kill_grace` has passed and anything in the group is still alive (even if
//!   the direct child already exited).
//! - **Pipes held by background processes.** After the direct child ends, the
//!   output is read until end-of-file for at most [`DRAIN_GRACE`]. A job that
//!   leaves a background process holding its stdout (the classic
//!   `@reboot server &`) is then finished; its output pipes go on being read
//!   and streamed to the sink by detached tasks until that process closes
//!   them, but no longer count toward the run. cron would instead keep the run
//!   open until the background process exits; closing the pipes would kill it
//!   with SIGPIPE on its next write. Neither is what such a job means.
//! - **Bounded memory.** Output is read in 64 KiB pieces; a line
//!   longer than [`LINE_CAP`] reaches the sink in pieces of at most
//!   [`LINE_CAP`] bytes; the tail is a ring buffer of `tail_bytes`. Nothing
//!   else accumulates, whatever the job prints.
//! - **Another user.** Resolved before the fork (passwd entry and the
//!   supplementary groups, as `initgroups` would compute them), so the forked
//!   child only makes async-signal-safe system calls: `setgroups`, `setgid`,
//!   `setuid`, then `chdir` into the working directory with the user's rights.

pub mod descriptors;
mod spawn;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::{CString, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc::{self, c_int};
use nix::sys::signal::{self, killpg, SigSet, SigmaskHow, Signal};
use nix::unistd::{Gid, Pid, Uid};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// The shell for [`Program::Shell`] when a job names none, as cron uses.
pub const DEFAULT_SHELL: &str = "/bin/sh";
/// SIGTERM -> SIGKILL delay when a caller has no configured value.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(10);
/// How much of the end of a run's output is kept when a caller has no
/// configured value.
pub const DEFAULT_TAIL_BYTES: usize = 64 * 1024;
/// The longest piece of a line handed to the sink; longer lines arrive in
/// several pieces so a job printing one huge line cannot grow memory.
pub const LINE_CAP: usize = 16 * 1024;
/// How long to keep reading output after the direct child ended, waiting for
/// end-of-file, before the run is considered finished (see the module docs).
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Bytes asked of a pipe per read: one default Linux pipe buffer.
const READ_CHUNK: usize = 64 * 1024;
/// Where a bare program name is looked for when the job has no `PATH`
/// (glibc's execvp default).
const DEFAULT_PATH: &str = "/bin:/usr/bin";
/// How often the group is probed while waiting for it to die after SIGTERM.
const GROUP_POLL: Duration = Duration::from_millis(50);

/// What to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// `shell -c command`.
    Shell { shell: String, command: String },
    /// Executed directly; the first element is looked up in the child's `PATH`
    /// (from [`RunRequest::env`]) unless it contains a `/`, in which case it is
    /// relative to the working directory.
    Argv(Vec<String>),
}

impl Program {
    /// `command` run by [`DEFAULT_SHELL`].
    pub fn shell(command: impl Into<String>) -> Self {
        Program::Shell {
            shell: DEFAULT_SHELL.to_string(),
            command: command.into(),
        }
    }

    /// The executable's name, for error messages.
    fn executable(&self) -> &str {
        match self {
            Program::Shell { shell, .. } => shell,
            Program::Argv(argv) => argv.first().map_or("", String::as_str),
        }
    }
}

/// Everything needed to run one job process.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The job's name, handed to the sink with every line and used in logs
    /// and errors.
    pub job: String,
    pub program: Program,
    /// The child's complete environment: nothing of jobrun's own environment
    /// reaches the child unless it is here (the caller merges jobrun's
    /// environment, the source's variables and the `JOBRUN_*` variables).
    pub env: BTreeMap<String, String>,
    /// Names in [`env`](Self::env) that the job's definition set explicitly.
    /// When the runner switches to another [`user`](Self::user) it sets
    /// `HOME`, `USER` and `LOGNAME` from that user's passwd entry, as cron
    /// does, overriding what `env` holds (typically jobrun's own values)
    /// except for the names listed here.
    pub explicit_env: BTreeSet<String>,
    /// Working directory; `None` keeps jobrun's (or see
    /// [`home_workdir`](Self::home_workdir)).
    pub workdir: Option<PathBuf>,
    /// With no [`workdir`](Self::workdir), run in the child's `HOME` (its
    /// final environment's, after the switch to [`user`](Self::user)), or in
    /// `/` when that cannot be entered, as Debian's cron does: crontab jobs.
    pub home_workdir: bool,
    /// Run as this user. Needs jobrun to run as root unless it is the user
    /// jobrun already runs as (then nothing changes, environment included).
    pub user: Option<String>,
    /// Bytes for the child's standard input; `None` gives it `/dev/null`.
    pub stdin: Option<Vec<u8>>,
    /// Counted from the start; then the group is terminated.
    pub timeout: Option<Duration>,
    /// Delay between SIGTERM and SIGKILL on timeout or stop.
    pub kill_grace: Duration,
    /// How many bytes of the end of the combined output to keep.
    pub tail_bytes: usize,
}

impl RunRequest {
    /// A request with an empty environment, no user, workdir, stdin or
    /// timeout, and the default kill grace and tail size.
    pub fn new(job: impl Into<String>, program: Program) -> Self {
        RunRequest {
            job: job.into(),
            program,
            env: BTreeMap::new(),
            explicit_env: BTreeSet::new(),
            workdir: None,
            home_workdir: false,
            user: None,
            stdin: None,
            timeout: None,
            kill_grace: DEFAULT_KILL_GRACE,
            tail_bytes: DEFAULT_TAIL_BYTES,
        }
    }
}

/// Which of the job's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Receives a job's output as it arrives.
///
/// Called from tokio worker threads, concurrently for the two streams: it
/// should hand the line on quickly (print it, queue it), not block.
pub trait OutputSink: Send + Sync {
    /// One line without its `\n`, or a piece of at most [`LINE_CAP`] bytes of
    /// a longer line. A final line without a newline is delivered at end of
    /// output. Bytes are passed as the job wrote them (not necessarily UTF-8).
    fn line(&self, job: &str, stream: Stream, line: &[u8]);
}

/// Why a job could not be started, or could not be followed to its end.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("starting job {job}: {program}: command not found")]
    NotFound { job: String, program: String },
    #[error("starting job {job}: the command is empty")]
    EmptyCommand { job: String },
    #[error("starting job {job}: working directory {}: {source}", path.display())]
    Workdir {
        job: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("starting job {job}: unknown user {user}")]
    UnknownUser { job: String, user: String },
    #[error("starting job {job}: looking up user {user}: {source}")]
    UserLookup {
        job: String,
        user: String,
        source: crate::users::UsersError,
    },
    #[error("starting job {job}: running as user {user} needs jobrun to run as root")]
    NotRoot { job: String, user: String },
    /// `setup` names what the child did before executing `program` (a user
    /// switch, a directory change), since the failing step cannot be told
    /// apart from inside the fork.
    #[error("starting job {job}: {program}{setup}: {source}")]
    Spawn {
        job: String,
        program: String,
        setup: String,
        source: io::Error,
    },
    #[error("waiting for job {job}: {source}")]
    Wait { job: String, source: io::Error },
}

impl RunError {
    /// Whether the start failed for want of a resource of jobrun's or the
    /// machine's (descriptors, processes, memory), not through the job.
    pub fn is_exhaustion(&self) -> bool {
        match self {
            RunError::Spawn { source, .. } | RunError::Workdir { source, .. } => {
                descriptors::is_exhaustion(source)
            }
            _ => false,
        }
    }
}

/// How the job's direct child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    fn from_status(status: ExitStatus) -> Self {
        match status.code() {
            Some(code) => Exit::Code(code),
            None => Exit::Signal(
                status
                    .signal()
                    .expect("wait without WUNTRACED reports only exits and terminating signals"),
            ),
        }
    }

    pub fn code(self) -> Option<i32> {
        match self {
            Exit::Code(code) => Some(code),
            Exit::Signal(_) => None,
        }
    }

    pub fn signal(self) -> Option<i32> {
        match self {
            Exit::Code(_) => None,
            Exit::Signal(signal) => Some(signal),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(signal) => write!(f, "signal {signal}"),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunEnd {
    /// The job exited on its own with this code.
    Exited(i32),
    /// The job was killed by this signal, not sent by the runner.
    Signaled(i32),
    /// The timeout expired and the runner terminated the job, which then
    /// ended this way (usually `Signal(15)`, or `Signal(9)` after the grace).
    TimedOut { exit: Exit },
    /// [`Stopper::stop`] was called and the runner terminated the job, which
    /// then ended this way.
    Stopped { exit: Exit },
}

impl RunEnd {
    /// The direct child's exit code or signal, whatever ended it.
    pub fn exit(self) -> Exit {
        match self {
            RunEnd::Exited(code) => Exit::Code(code),
            RunEnd::Signaled(signal) => Exit::Signal(signal),
            RunEnd::TimedOut { exit } | RunEnd::Stopped { exit } => exit,
        }
    }

    /// Whether the job ended on its own with code 0.
    pub fn success(self) -> bool {
        self == RunEnd::Exited(0)
    }
}

impl fmt::Display for RunEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunEnd::Exited(code) => write!(f, "exited with code {code}"),
            RunEnd::Signaled(signal) => write!(f, "killed by signal {signal}"),
            RunEnd::TimedOut { exit } => write!(f, "timed out ({exit})"),
            RunEnd::Stopped { exit } => write!(f, "stopped ({exit})"),
        }
    }
}

/// The result of a run that was started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub end: RunEnd,
    /// Every byte read from stdout and stderr until the run finished.
    pub output_bytes: u64,
    /// The last `tail_bytes` of the combined output, in arrival order.
    pub tail: Vec<u8>,
    /// From the spawn to the direct child's exit.
    pub duration: Duration,
}

/// How far a stop request has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum StopLevel {
    None,
    /// SIGTERM to the group, SIGKILL after the kill grace.
    Terminate,
    /// SIGKILL to the group now (a daemon whose shutdown grace ran out).
    Kill,
}

/// Asks a running job to stop: SIGTERM to its process group, SIGKILL after
/// the kill grace. Cloneable, so a daemon can keep one per running job.
#[derive(Debug, Clone)]
pub struct Stopper {
    requested: watch::Sender<StopLevel>,
}

impl Stopper {
    /// Requests the stop; [`Running::wait`] carries it out. Idempotent, and
    /// harmless once the job has ended.
    pub fn stop(&self) {
        self.requested.send_if_modified(|level| {
            let raise = *level < StopLevel::Terminate;
            if raise {
                *level = StopLevel::Terminate;
            }
            raise
        });
    }

    /// Sends SIGKILL to the group now, without waiting for the kill grace
    /// (also during a stop or timeout already under way).
    pub fn kill(&self) {
        self.requested.send_replace(StopLevel::Kill);
    }
}

/// A started job. Record [`pid`](Self::pid) before awaiting
/// [`wait`](Self::wait), which supervises the job to its end.
///
/// Dropping it (or the `wait` future) before the job ended kills the job's
/// process group with SIGKILL: a job is never left running unsupervised.
#[derive(Debug)]
pub struct Running {
    job: Arc<str>,
    pid: u32,
    child: Child,
    started: Instant,
    timeout: Option<Duration>,
    kill_grace: Duration,
    stop: watch::Sender<StopLevel>,
    stdin_task: Option<JoinHandle<()>>,
    stdout_task: JoinHandle<()>,
    stderr_task: JoinHandle<()>,
    capture: Arc<Mutex<Capture>>,
    guard: GroupGuard,
}

/// Starts the job described by `req`, streaming its output to `sink`.
///
/// Must be called within a tokio runtime (output is read by spawned tasks, so
/// it streams even before [`Running::wait`] is awaited). Blocks briefly for
/// the passwd and group look-ups when `req.user` is set.
pub fn start(req: RunRequest, sink: Arc<dyn OutputSink>) -> Result<Running, RunError> {
    let job: Arc<str> = Arc::from(req.job.as_str());
    let program_name = req.program.executable().to_string();

    // The program and its argv (the first element is argv[0]).
    let argv: Vec<OsString> = match &req.program {
        Program::Shell { shell, command } => {
            vec![shell.into(), "-c".into(), command.into()]
        }
        Program::Argv(argv) if argv.is_empty() => {
            return Err(RunError::EmptyCommand { job: req.job });
        }
        Program::Argv(argv) => argv.iter().map(OsString::from).collect(),
    };
    // A bare name is looked up in the job's PATH here, as execvp would
    // (glibc's default path when the job has none). `None`: left to execvp
    // in a forked child (a PATH with relative directories).
    let program: Option<OsString> = {
        let first = &argv[0];
        if first.as_bytes().contains(&b'/') {
            Some(first.clone())
        } else {
            let path = req.env.get("PATH").map_or(DEFAULT_PATH, String::as_str);
            search_path(&first.to_string_lossy(), path).map(PathBuf::into_os_string)
        }
    };

    let identity = match &req.user {
        Some(user) => resolve_user(&req.job, user, nix::unistd::geteuid())?,
        None => None,
    };

    let mut env = req.env;
    if let Some(identity) = &identity {
        for (key, value) in [
            ("HOME", identity.home.clone()),
            ("USER", identity.name.clone()),
            ("LOGNAME", identity.name.clone()),
        ] {
            if !req.explicit_env.contains(key) {
                env.insert(key.to_string(), value);
            }
        }
    }

    // Checked here so that a missing directory is reported as such: from
    // inside the fork, every failure comes back as a bare errno.
    let dir = match &req.workdir {
        Some(path) => Some(path.clone()),
        None if req.home_workdir => Some(home_dir(env.get("HOME").map(String::as_str))),
        None => None,
    };
    let workdir = match &dir {
        Some(path) => Some(check_workdir(&req.job, path)?),
        None => None,
    };

    let setup = match (&req.user, &dir) {
        (Some(user), Some(dir)) if identity.is_some() => {
            format!(" (as user {user}, in {})", dir.display())
        }
        (Some(user), None) if identity.is_some() => format!(" (as user {user})"),
        (_, Some(dir)) => format!(" (in {})", dir.display()),
        _ => String::new(),
    };
    let spawn_error = |source: io::Error| {
        if source.kind() == io::ErrorKind::NotFound {
            RunError::NotFound {
                job: req.job.clone(),
                program: program_name.clone(),
            }
        } else {
            RunError::Spawn {
                job: req.job.clone(),
                program: program_name.clone(),
                setup: setup.clone(),
                source,
            }
        }
    };

    // Until the child is in OWN_CHILDREN, the reaper must not look (a job that
    // exits at once would otherwise be taken for an orphan and its exit status
    // stolen from its run).
    let spawning = SPAWNING.read().unwrap_or_else(|p| p.into_inner());
    let started_child = match (&program, &identity) {
        // The fast way, whenever nothing but what spawn attributes can do is
        // needed between fork and exec (see `spawn`).
        // A job whose descriptor limit must differ from jobrun's (raised)
        // forks: spawn attributes cannot set a limit (see `descriptors`).
        (Some(program), None)
            if spawn::available() && !fork_only() && descriptors::job_limit().is_none() =>
        {
            let c = |s: &OsString| {
                CString::new(s.as_bytes()).map_err(|_| {
                    spawn_error(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "an argument contains a NUL byte",
                    ))
                })
            };
            let program = c(program)?;
            let argv = argv.iter().map(c).collect::<Result<Vec<_>, _>>()?;
            let envp = env
                .iter()
                .map(|(k, v)| c(&OsString::from(format!("{k}={v}"))))
                .collect::<Result<Vec<_>, _>>()?;
            let spawned = spawn::spawn(&spawn::Spec {
                program: &program,
                argv: &argv,
                envp: &envp,
                workdir: workdir.as_deref(),
                stdin: req.stdin.is_some(),
            })
            .map_err(spawn_error)?;
            StartedChild {
                pid: spawned.pid,
                stdin: spawned
                    .stdin
                    .map(|p| Box::new(p) as Box<dyn AsyncWrite + Send + Unpin>),
                stdout: Box::new(spawned.stdout),
                stderr: Box::new(spawned.stderr),
                exit: Child::Spawned(spawned.exit),
            }
        }
        _ => fork(
            program.as_ref().unwrap_or(&argv[0]),
            &argv,
            &env,
            identity,
            workdir,
            req.stdin.is_some(),
        )
        .map_err(spawn_error)?,
    };
    let StartedChild {
        pid,
        stdin,
        stdout,
        stderr,
        exit: child,
    } = started_child;
    let started = Instant::now();
    own_children().insert(pid);
    drop(spawning);
    let guard = GroupGuard {
        pgid: Pid::from_raw(i32::try_from(pid).expect("pids fit in pid_t")),
        armed: true,
    };
    debug!(job = %job, pid, "started");

    let stdin_task = match (stdin, req.stdin) {
        (Some(mut pipe), Some(bytes)) => {
            let job = job.clone();
            Some(tokio::spawn(async move {
                // A job that exits without reading all of its input is not an
                // error: cron ignores that too.
                let result = match pipe.write_all(&bytes).await {
                    Ok(()) => pipe.shutdown().await,
                    Err(e) => Err(e),
                };
                match result {
                    Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                        warn!(job = %job, error = %e, "writing the job's standard input");
                    }
                    _ => {}
                }
            }))
        }
        _ => None,
    };

    let capture = Arc::new(Mutex::new(Capture::new(req.tail_bytes)));
    let stdout_task = tokio::spawn(pump(
        stdout,
        Stream::Stdout,
        job.clone(),
        sink.clone(),
        capture.clone(),
    ));
    let stderr_task = tokio::spawn(pump(
        stderr,
        Stream::Stderr,
        job.clone(),
        sink,
        capture.clone(),
    ));

    Ok(Running {
        job,
        pid,
        child,
        started,
        timeout: req.timeout,
        kill_grace: req.kill_grace,
        stop: watch::Sender::new(StopLevel::None),
        stdin_task,
        stdout_task,
        stderr_task,
        capture,
        guard,
    })
}

/// Whether this thread's jobs must take the fork path: only ever in tests
/// (`tests::forked`), which check the fork path on a machine with pidfds.
#[cfg(not(test))]
fn fork_only() -> bool {
    false
}

#[cfg(test)]
fn fork_only() -> bool {
    tests::fork_only()
}

/// A child just started, by either way: its pid, the parent's ends of its
/// pipes, and its exit to wait for.
struct StartedChild {
    pid: u32,
    stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    stdout: Box<dyn AsyncRead + Send + Unpin>,
    stderr: Box<dyn AsyncRead + Send + Unpin>,
    exit: Child,
}

/// The job's direct child, started by [`spawn`] or by std's fork.
#[derive(Debug)]
enum Child {
    Spawned(spawn::Exit),
    Forked(tokio::process::Child),
}

impl Child {
    async fn wait(&mut self) -> io::Result<ExitStatus> {
        match self {
            Child::Spawned(exit) => exit.wait().await,
            Child::Forked(child) => child.wait().await,
        }
    }
}

/// The careful way: std forks, and the child resets its signals, becomes
/// another user if asked, and changes directory before it executes. For a
/// job run as another user, on kernels without pidfds (before Linux 5.3),
/// and for a program left to execvp's search.
fn fork(
    program: &OsString,
    argv: &[OsString],
    env: &BTreeMap<String, String>,
    identity: Option<Identity>,
    workdir: Option<CString>,
    stdin: bool,
) -> io::Result<StartedChild> {
    let mut cmd = Command::new(program);
    cmd.arg0(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .envs(env)
        .process_group(0)
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let last_signal = libc::SIGRTMAX();
    let nofile = descriptors::job_limit();
    let switch = identity.map(|identity| (identity.groups, identity.gid, identity.uid));
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed. It allocates nothing: every value
    // it needs (group list, ids, the directory as a C string) was prepared
    // above, and each call below is a thin wrapper over one system call.
    unsafe {
        cmd.pre_exec(move || {
            reset_signals(last_signal);
            if let Some(limit) = &nofile {
                descriptors::set_in_child(limit)?;
            }
            if let Some((groups, gid, uid)) = &switch {
                // The order matters: groups and gid need the privileges
                // that setuid gives up.
                nix::unistd::setgroups(groups)?;
                nix::unistd::setgid(*gid)?;
                nix::unistd::setuid(*uid)?;
            }
            // After the identity switch, so the user's own rights decide
            // whether the job may enter its directory (as cron enters HOME).
            if let Some(dir) = &workdir {
                nix::unistd::chdir(dir.as_c_str())?;
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let pid = child
        .id()
        .expect("a child that was just spawned has not been waited for");
    Ok(StartedChild {
        pid,
        stdin: child
            .stdin
            .take()
            .map(|p| Box::new(p) as Box<dyn AsyncWrite + Send + Unpin>),
        stdout: Box::new(child.stdout.take().expect("configured as a pipe")),
        stderr: Box::new(child.stderr.take().expect("configured as a pipe")),
        exit: Child::Forked(child),
    })
}

impl Running {
    /// The job's process id, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A handle to request a stop from elsewhere (shutdown, `replace`).
    pub fn stopper(&self) -> Stopper {
        Stopper {
            requested: self.stop.clone(),
        }
    }

    /// Supervises the job to its end: waits for it to exit, or terminates its
    /// group on timeout or stop, then collects the rest of its output.
    ///
    /// An error means the exit could not be observed (someone else reaped the
    /// child); the job's group has then been killed.
    pub async fn wait(self) -> Result<RunOutcome, RunError> {
        let Running {
            job,
            pid,
            mut child,
            started,
            timeout,
            kill_grace,
            stop,
            stdin_task,
            mut stdout_task,
            mut stderr_task,
            capture,
            mut guard,
        } = self;
        let mut stop_requested = stop.subscribe();
        let deadline =
            timeout.map(|t| tokio::time::Instant::from_std(crate::clock::deadline(started, t)));

        enum Trigger {
            Exited(io::Result<ExitStatus>),
            TimedOut,
            Stopped,
        }
        let trigger = tokio::select! {
            // An exit that races a timeout or stop still counts as an exit.
            biased;
            status = child.wait() => Trigger::Exited(status),
            () = sleep_until(deadline) => Trigger::TimedOut,
            // `stop` lives in this frame, so the channel cannot close.
            _ = stop_requested.wait_for(|level| *level >= StopLevel::Terminate) => Trigger::Stopped,
        };
        let (status, end) = match trigger {
            Trigger::Exited(status) => (status, None),
            Trigger::TimedOut => {
                info!(job = %job, pid, "timed out; terminating its process group");
                let status = terminate(&mut child, guard.pgid, kill_grace, &stop).await;
                (status, Some(Ending::TimedOut))
            }
            Trigger::Stopped => {
                info!(job = %job, pid, "stop requested; terminating its process group");
                let status = terminate(&mut child, guard.pgid, kill_grace, &stop).await;
                (status, Some(Ending::Stopped))
            }
        };
        let duration = started.elapsed();
        // Waited for (or lost): no status of it is left to protect.
        own_children().remove(&pid);
        // On error the guard stays armed and kills the group when dropped.
        let status = status.map_err(|source| RunError::Wait {
            job: job.to_string(),
            source,
        })?;
        // Background processes left by a job that exited on its own are the
        // job's business (see the module docs); the run itself is over.
        guard.armed = false;
        if let Some(task) = stdin_task {
            task.abort();
        }

        let drained = tokio::time::timeout(DRAIN_GRACE, async {
            // A reader that panicked (in the sink) has stopped reading: there
            // is nothing more to wait for from it.
            let _ = (&mut stdout_task).await;
            let _ = (&mut stderr_task).await;
        })
        .await;
        if drained.is_err() {
            info!(
                job = %job,
                pid,
                "output still open after the job ended (a background process holds it); \
                 streaming it without counting it toward the run"
            );
        }

        let (output_bytes, tail) = lock(&capture).snapshot();
        let exit = Exit::from_status(status);
        let end = match (end, exit) {
            (None, Exit::Code(code)) => RunEnd::Exited(code),
            (None, Exit::Signal(signal)) => RunEnd::Signaled(signal),
            (Some(Ending::TimedOut), exit) => RunEnd::TimedOut { exit },
            (Some(Ending::Stopped), exit) => RunEnd::Stopped { exit },
        };
        debug!(job = %job, pid, %end, output_bytes, "finished");
        Ok(RunOutcome {
            end,
            output_bytes,
            tail,
            duration,
        })
    }
}

/// Why the runner ended a job itself.
enum Ending {
    TimedOut,
    Stopped,
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// SIGTERM to the group; SIGKILL to the group once `grace` has passed and
/// anything in it is still alive. Returns the direct child's status.
async fn terminate(
    child: &mut Child,
    pgid: Pid,
    grace: Duration,
    stop: &watch::Sender<StopLevel>,
) -> io::Result<ExitStatus> {
    signal_group(pgid, Signal::SIGTERM);
    let deadline = tokio::time::Instant::from_std(crate::clock::deadline(Instant::now(), grace));
    let mut level = stop.subscribe();
    // The grace ends early when a kill is requested (the daemon's shutdown
    // grace ran out before this job's kill grace).
    let grace_over = async {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {}
            _ = level.wait_for(|l| *l == StopLevel::Kill) => {}
        }
    };
    tokio::pin!(grace_over);
    let status = tokio::select! {
        status = child.wait() => status?,
        () = &mut grace_over => {
            signal_group(pgid, Signal::SIGKILL);
            return child.wait().await;
        }
    };
    // The leader is gone but other members (a subshell trapping TERM, a
    // background process) may not be: they get the rest of the grace.
    // Polling stops at the first "no such group", so the id is not probed
    // after it could have been reused.
    while group_alive(pgid) {
        if tokio::time::Instant::now() >= deadline || *stop.borrow() == StopLevel::Kill {
            signal_group(pgid, Signal::SIGKILL);
            break;
        }
        tokio::time::sleep(GROUP_POLL).await;
    }
    Ok(status)
}

/// The job processes this jobrun spawned and has not waited for yet. When
/// jobrun reaps orphans (as PID 1) it leaves these alone: their exit statuses
/// belong to their runs.
static OWN_CHILDREN: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
/// Shared while a job is forked and registered, exclusive while reaping.
static SPAWNING: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn own_children() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    OWN_CHILDREN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reaps every zombie child of this process that is not one of its own jobs:
/// the orphans a PID 1 inherits (a job's double-forked daemon, say). Never
/// steals a job's exit status: it reads `/proc` to find zombies, and leaves
/// the pids it spawned to their runs. Returns how many were reaped.
pub fn reap_orphans() -> usize {
    let _exclusive = SPAWNING.write().unwrap_or_else(|p| p.into_inner());
    let own = own_children().clone();
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut reaped = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if own.contains(&pid) {
            continue;
        }
        let Some(stat) = proc_stat(pid) else {
            continue;
        };
        let (Some(state), Some(ppid)) = (stat.first(), stat.get(1)) else {
            continue;
        };
        if state != "Z" || ppid.parse::<u32>() != Ok(me) {
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

/// The fields of `/proc/PID/stat` after the command name (see [`crate::procfs`]).
pub fn proc_stat(pid: u32) -> Option<Vec<String>> {
    crate::procfs::stat_fields(pid)
}

/// When a job process whose group is still there started, in seconds since
/// the Unix epoch (to about a second). `None` when `pid` is gone, is a
/// zombie, or does not lead its own process group (every job does: it runs
/// in a group of its own), so a pid that was reused by some other program is
/// never taken for a job.
pub fn job_group_started(pid: u32) -> Option<f64> {
    let fields = proc_stat(pid)?;
    // pgrp is field 5, as proc(5) counts them.
    if fields.get(2)?.parse::<u32>().ok()? != pid {
        return None;
    }
    crate::procfs::started(&fields)
}

/// Stops a job process group that this process does not supervise (a run of
/// another jobrun on this host, for `concurrency: replace`): SIGTERM now,
/// SIGKILL after `grace` if the group still exists. Needs a tokio runtime.
pub fn stop_foreign_group(pgid: u32, grace: Duration) {
    let Ok(raw) = i32::try_from(pgid) else {
        return;
    };
    let pgid = Pid::from_raw(raw);
    signal_group(pgid, Signal::SIGTERM);
    tokio::spawn(async move {
        let deadline =
            tokio::time::Instant::from_std(crate::clock::deadline(Instant::now(), grace));
        while group_alive(pgid) {
            if tokio::time::Instant::now() >= deadline {
                signal_group(pgid, Signal::SIGKILL);
                break;
            }
            tokio::time::sleep(GROUP_POLL).await;
        }
    });
}

fn signal_group(pgid: Pid, signal: Signal) {
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => {
            warn!(pgid = pgid.as_raw(), %signal, error = %e, "signalling a job's process group")
        }
    }
}

fn group_alive(pgid: Pid) -> bool {
    // EPERM still means a member exists (one that changed its own user).
    killpg(pgid, None) != Err(Errno::ESRCH)
}

/// Kills the job's process group with SIGKILL when dropped while armed, so an
/// abandoned [`Running`] or `wait` future does not leave the job unsupervised.
#[derive(Debug)]
struct GroupGuard {
    pgid: Pid,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            signal_group(self.pgid, Signal::SIGKILL);
        }
    }
}

/// The first executable file named `name` in the directories of `path`.
/// `None` also for a PATH with a relative directory: execvp resolves that
/// in the job's working directory, so it is left to execvp.
fn search_path(name: &str, path: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if path.split(':').any(|dir| !dir.starts_with('/')) {
        return None;
    }
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| std::path::Path::new(dir).join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs in the forked child: an empty signal mask and every signal's default
/// disposition, real-time signals included (`last_signal` is `SIGRTMAX`, read
/// before the fork). Children inherit both the mask and ignored signals, and
/// the parent ignores SIGPIPE (the Rust runtime does) and may block or ignore
/// others, which would leave e.g. `yes | head -1` running forever.
///
/// glibc refuses to change its two reserved signals (32 and 33); they stay as
/// inherited, as they do under systemd, which resets signals the same way.
fn reset_signals(last_signal: c_int) {
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    for sig in 1..=last_signal {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL registers no handler; a failure (a
        // signal that cannot be changed) leaves that signal as it was.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// A crontab job's directory: its `HOME` when that is a directory, else `/`
/// (Debian's cron ignores a failed `chdir(HOME)` and stays in `/`; a job
/// run as `nobody`, whose home is `/nonexistent`, must still run).
fn home_dir(home: Option<&str>) -> PathBuf {
    match home {
        Some(home) if std::path::Path::new(home).is_dir() => PathBuf::from(home),
        _ => PathBuf::from("/"),
    }
}

fn check_workdir(job: &str, path: &std::path::Path) -> Result<CString, RunError> {
    let error = |source| RunError::Workdir {
        job: job.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(error)?;
    if !meta.is_dir() {
        return Err(error(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| error(io::Error::new(io::ErrorKind::InvalidInput, "contains NUL")))
}

/// Who the child becomes when `user` is another user than jobrun's.
#[derive(Debug)]
struct Identity {
    name: String,
    uid: Uid,
    gid: Gid,
    /// Supplementary groups as `initgroups` computes them (primary included).
    groups: Vec<Gid>,
    home: String,
}

/// Looks `user` up; `None` when it is the user jobrun runs as (`euid`), so
/// nothing needs to change.
fn resolve_user(job: &str, user: &str, euid: Uid) -> Result<Option<Identity>, RunError> {
    let lookup_error = |source| RunError::UserLookup {
        job: job.to_string(),
        user: user.to_string(),
        source,
    };
    let unknown = || RunError::UnknownUser {
        job: job.to_string(),
        user: user.to_string(),
    };
    let entry = crate::users::user_by_name(user)
        .map_err(lookup_error)?
        .ok_or_else(unknown)?;
    if entry.uid == euid.as_raw() {
        return Ok(None);
    }
    if !euid.is_root() {
        return Err(RunError::NotRoot {
            job: job.to_string(),
            user: user.to_string(),
        });
    }
    // Computing the groups reads /etc/group (or NSS), which is not safe after
    // fork in a threaded process; setgroups with the result in the child is
    // what initgroups would do there.
    let groups = crate::users::supplementary_groups(&entry).map_err(lookup_error)?;
    Ok(Some(Identity {
        uid: Uid::from_raw(entry.uid),
        gid: Gid::from_raw(entry.gid),
        groups: groups.into_iter().map(Gid::from_raw).collect(),
        name: entry.name,
        home: entry.home,
    }))
}

/// Reads one output stream to its end: counts it, keeps its share of the
/// tail, and hands it to the sink line by line.
async fn pump<R: AsyncRead + Unpin>(
    mut reader: R,
    stream: Stream,
    job: Arc<str>,
    sink: Arc<dyn OutputSink>,
    capture: Arc<Mutex<Capture>>,
) {
    // Read into spare capacity, never zeroed: a job that prints one line
    // costs a page, not the whole chunk (1,000 jobs at once: 128 MiB of
    // zeroed buffers before).
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut lines = LineSplitter::new(LINE_CAP);
    let mut emit = |line: &[u8]| sink.line(&job, stream, line);
    loop {
        buf.clear();
        let n = match reader.read_buf(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                warn!(job = %job, ?stream, error = %e, "reading the job's output");
                break;
            }
        };
        lock(&capture).record(&buf[..n]);
        lines.push(&buf[..n], &mut emit);
    }
    lines.finish(&mut emit);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave a byte count or a ring buffer in a state
    // worse than slightly stale, so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The byte count and the ring buffer of the last bytes of combined output.
#[derive(Debug)]
struct Capture {
    total: u64,
    tail: VecDeque<u8>,
    cap: usize,
}

impl Capture {
    fn new(cap: usize) -> Self {
        Capture {
            total: 0,
            tail: VecDeque::new(),
            cap,
        }
    }

    fn record(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        if data.len() >= self.cap {
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.cap..]);
        } else {
            let overflow = (self.tail.len() + data.len()).saturating_sub(self.cap);
            self.tail.drain(..overflow);
            self.tail.extend(data);
        }
    }

    fn snapshot(&self) -> (u64, Vec<u8>) {
        (self.total, self.tail.iter().copied().collect())
    }
}

/// Splits a byte stream into lines of at most `cap` bytes, holding at most
/// one partial line.
#[derive(Debug)]
struct LineSplitter {
    line: Vec<u8>,
    cap: usize,
}

impl LineSplitter {
    fn new(cap: usize) -> Self {
        LineSplitter {
            line: Vec::new(),
            cap,
        }
    }

    fn push(&mut self, mut data: &[u8], emit: &mut dyn FnMut(&[u8])) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.append(&data[..end], emit);
                    emit(&self.line);
                    self.line.clear();
                    data = &data[end + 1..];
                }
                None => {
                    self.append(data, emit);
                    data = &[];
                }
            }
        }
    }

    /// Adds bytes with no newline among them. A full buffer is emitted only
    /// when more bytes follow, so a line of exactly `cap` bytes is one piece
    /// and not a piece plus an empty line.
    fn append(&mut self, mut data: &[u8], emit: &mut dyn FnMut(&[u8])) {
        while !data.is_empty() {
            if self.line.len() == self.cap {
                emit(&self.line);
                self.line.clear();
            }
            let take = (self.cap - self.line.len()).min(data.len());
            self.line.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
    }

    /// Emits a last line that had no newline.
    fn finish(&mut self, emit: &mut dyn FnMut(&[u8])) {
        if !self.line.is_empty() {
            emit(&self.line);
            self.line.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    thread_local! {
        static FORK_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Whether this thread's jobs take the fork path (see `forked`).
    pub fn fork_only() -> bool {
        FORK_ONLY.with(|f| f.get())
    }

    /// Runs `f` with this thread's jobs started by std's fork, the way taken
    /// for another user and on kernels without pidfds. For current-thread
    /// tests: `start` runs on the test's own thread.
    async fn forked<F: std::future::Future>(f: F) -> F::Output {
        FORK_ONLY.with(|flag| flag.set(true));
        let out = f.await;
        FORK_ONLY.with(|flag| flag.set(false));
        out
    }

    use super::*;

    /// Collects every line with its stream.
    #[derive(Default)]
    struct Collect {
        lines: Mutex<Vec<(Stream, Vec<u8>)>>,
    }

    impl OutputSink for Collect {
        fn line(&self, job: &str, stream: Stream, line: &[u8]) {
            assert_eq!(job, "testjob");
            self.lines.lock().unwrap().push((stream, line.to_vec()));
        }
    }

    impl Collect {
        fn stream(&self, stream: Stream) -> Vec<String> {
            self.lines
                .lock()
                .unwrap()
                .iter()
                .filter(|(s, _)| *s == stream)
                .map(|(_, l)| String::from_utf8_lossy(l).into_owned())
                .collect()
        }

        fn stdout(&self) -> Vec<String> {
            self.stream(Stream::Stdout)
        }
    }

    fn request(command: &str) -> RunRequest {
        let mut req = RunRequest::new("testjob", Program::shell(command));
        req.env.insert("PATH".into(), "/usr/bin:/bin".into());
        req
    }

    /// Generous upper bound so a broken runner fails instead of hanging.
    const HANG: Duration = Duration::from_secs(120);

    async fn run(req: RunRequest) -> (RunOutcome, Arc<Collect>) {
        let sink = Arc::new(Collect::default());
        let running = start(req, sink.clone()).expect("start");
        let outcome = tokio::time::timeout(HANG, running.wait())
            .await
            .expect("the run ended")
            .expect("wait");
        (outcome, sink)
    }

    /// Gone, or a zombie nobody reaped yet (the test's PID 1 may not reap).
    fn process_gone(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    async fn wait_until_gone(pid: i32) -> bool {
        for _ in 0..100 {
            if process_gone(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    #[test]
    fn splitter_delivers_lines_and_caps_long_ones() {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut split = LineSplitter::new(4);
        let mut emit = |l: &[u8]| out.push(l.to_vec());
        split.push(b"ab\ncd", &mut emit);
        split.push(b"ef\n\nabcd\nabcdefghij", &mut emit);
        split.push(b"k\nxy", &mut emit);
        split.finish(&mut emit);
        let expected: Vec<&[u8]> = vec![
            b"ab", b"cdef", b"", b"abcd", b"abcd", b"efgh", b"ijk", b"xy",
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn capture_keeps_exactly_the_last_bytes() {
        let mut capture = Capture::new(5);
        capture.record(b"abc");
        assert_eq!(capture.snapshot(), (3, b"abc".to_vec()));
        capture.record(b"def");
        assert_eq!(capture.snapshot(), (6, b"bcdef".to_vec()));
        capture.record(b"0123456789");
        assert_eq!(capture.snapshot(), (16, b"56789".to_vec()));
        let mut none = Capture::new(0);
        none.record(b"abc");
        assert_eq!(none.snapshot(), (3, Vec::new()));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn exit_code_is_recorded() {
        let (outcome, _) = run(request("exit 3")).await;
        assert_eq!(outcome.end, RunEnd::Exited(3));
        assert!(!outcome.end.success());
        let (outcome, _) = run(request("true")).await;
        assert!(outcome.end.success());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn terminating_signal_is_recorded() {
        let (outcome, _) = run(request("kill -9 $$")).await;
        assert_eq!(outcome.end, RunEnd::Signaled(9));
        assert_eq!(outcome.end.exit().signal(), Some(9));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn lines_reach_the_sink_in_order_per_stream() {
        let (outcome, sink) = run(request(
            "echo one; echo err1 >&2; echo two; echo err2 >&2; echo; printf last",
        ))
        .await;
        assert_eq!(outcome.end, RunEnd::Exited(0));
        assert_eq!(sink.stdout(), ["one", "two", "", "last"]);
        assert_eq!(sink.stream(Stream::Stderr), ["err1", "err2"]);
        assert_eq!(outcome.output_bytes, 4 + 5 + 4 + 5 + 1 + 4);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn environment_is_exactly_what_was_passed() {
        // Some variable of the test process that must not leak.
        let (parent_var, _) = std::env::vars()
            .find(|(k, _)| k != "PATH")
            .expect("the test process has some environment");
        let mut req = RunRequest::new("testjob", Program::Argv(vec!["env".into()]));
        req.env.insert("PATH".into(), "/usr/bin:/bin".into());
        req.env.insert("JOBRUN_TEST_VAR".into(), "a b=c".into());
        let (outcome, sink) = run(req).await;
        assert_eq!(outcome.end, RunEnd::Exited(0));
        let mut lines = sink.stdout();
        lines.sort();
        assert_eq!(lines, ["JOBRUN_TEST_VAR=a b=c", "PATH=/usr/bin:/bin"]);
        assert!(!lines
            .iter()
            .any(|l| l.starts_with(&format!("{parent_var}="))));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_crontab_job_whose_home_cannot_be_entered_runs_in_the_root_directory() {
        let mut req = request("pwd -P");
        req.home_workdir = true;
        req.env.insert("HOME".into(), "/nonexistent/home".into());
        let (outcome, sink) = run(req).await;
        assert_eq!(outcome.end, RunEnd::Exited(0));
        assert_eq!(sink.stdout(), ["/"]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn workdir_is_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let mut req = request("pwd -P");
        req.workdir = Some(dir.path().to_path_buf());
        let (outcome, sink) = run(req).await;
        assert_eq!(outcome.end, RunEnd::Exited(0));
        let expected = dir.path().canonicalize().unwrap();
        assert_eq!(sink.stdout(), [expected.to_str().unwrap()]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn stdin_bytes_are_delivered() {
        let mut req = request("cat");
        req.stdin = Some(b"hello\nworld\n".to_vec());
        let (outcome, sink) = run(req).await;
        assert_eq!(outcome.end, RunEnd::Exited(0));
        assert_eq!(sink.stdout(), ["hello", "world"]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn unread_stdin_is_not_an_error() {
        let mut req = request("exit 0");
        req.stdin = Some(vec![b'x'; 1024 * 1024]);
        let (outcome, _) = run(req).await;
        assert_eq!(outcome.end, RunEnd::Exited(0));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn stdin_is_dev_null_by_default() {
        let (outcome, sink) = run(request("cat; readlink /proc/self/fd/0")).await;
        assert_eq!(outcome.end, RunEnd::Exited(0));
        assert_eq!(sink.stdout(), ["/dev/null"]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let mut req = request(&format!(
            "sleep 300 & echo $! > {}; wait",
            pidfile.display()
        ));
        req.timeout = Some(Duration::from_secs(3));
        req.kill_grace = Duration::from_secs(5);
        let begun = Instant::now();
        let (outcome, _) = run(req).await;
        assert_eq!(
            outcome.end,
            RunEnd::TimedOut {
                exit: Exit::Signal(15)
            }
        );
        assert!(begun.elapsed() < Duration::from_secs(60));
        let grandchild: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            wait_until_gone(grandchild).await,
            "sleep {grandchild} survived"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_job_ignoring_sigterm_is_killed_after_the_grace() {
        // The timeout leaves the shell seconds to install its trap first.
        let mut req = request("trap '' TERM; sleep 300; echo survived");
        req.timeout = Some(Duration::from_secs(3));
        req.kill_grace = Duration::from_secs(1);
        let begun = Instant::now();
        let (outcome, sink) = run(req).await;
        assert_eq!(
            outcome.end,
            RunEnd::TimedOut {
                exit: Exit::Signal(9)
            }
        );
        assert!(begun.elapsed() >= Duration::from_secs(4));
        assert!(begun.elapsed() < Duration::from_secs(60));
        assert!(sink.stdout().is_empty());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn group_members_outliving_the_leader_are_killed_after_the_grace() {
        // The shell dies of SIGTERM; its background subshell ignores it.
        let mut req = request("(trap '' TERM; sleep 300) & echo $!; wait");
        req.timeout = Some(Duration::from_secs(3));
        req.kill_grace = Duration::from_secs(1);
        let begun = Instant::now();
        let (outcome, sink) = run(req).await;
        assert_eq!(
            outcome.end,
            RunEnd::TimedOut {
                exit: Exit::Signal(15)
            }
        );
        assert!(begun.elapsed() >= Duration::from_secs(4));
        let subshell: i32 = sink.stdout()[0].parse().unwrap();
        assert!(wait_until_gone(subshell).await, "{subshell} survived");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn stop_yields_stopped() {
        let sink = Arc::new(Collect::default());
        let running = start(request("echo ready; sleep 300"), sink.clone()).unwrap();
        let stopper = running.stopper();
        let waiting = tokio::spawn(running.wait());
        // Stop once the shell is surely running its command.
        for _ in 0..100 {
            if !sink.stdout().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stopper.stop();
        let outcome = tokio::time::timeout(HANG, waiting)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            outcome.end,
            RunEnd::Stopped {
                exit: Exit::Signal(15)
            }
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn dropping_a_running_job_kills_its_group() {
        let sink = Arc::new(Collect::default());
        let running = start(request("sleep 300 & echo $!; wait"), sink.clone()).unwrap();
        let mut grandchild = None;
        for _ in 0..200 {
            if let Some(line) = sink.stdout().first() {
                grandchild = Some(line.parse::<i32>().unwrap());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let grandchild = grandchild.expect("the job printed its background pid");
        let leader = running.pid() as i32;
        drop(running);
        assert!(wait_until_gone(grandchild).await);
        assert!(wait_until_gone(leader).await);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_background_process_holding_the_output_does_not_hold_the_run() {
        let begun = Instant::now();
        let (outcome, sink) = run(request("sleep 300 & echo $!")).await;
        assert_eq!(outcome.end, RunEnd::Exited(0));
        assert!(begun.elapsed() < Duration::from_secs(60));
        let background: i32 = sink.stdout()[0].parse().unwrap();
        // The run is over but the background process was left alone.
        assert!(!process_gone(background));
        nix::sys::signal::kill(Pid::from_raw(background), Signal::SIGKILL).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn output_bytes_are_exact_and_the_tail_is_the_end() {
        let mut req = request("head -c 10000000 /dev/zero; printf 'the end'");
        req.tail_bytes = 1000;
        let (outcome, _) = run(req).await;
        assert_eq!(outcome.end, RunEnd::Exited(0));
        assert_eq!(outcome.output_bytes, 10_000_007);
        let mut expected = vec![0u8; 993];
        expected.extend_from_slice(b"the end");
        assert_eq!(outcome.tail, expected);

        // Text that shows where the tail starts.
        let mut req = request("seq 1 100000");
        req.tail_bytes = 100;
        let (outcome, _) = run(req).await;
        let all: String = (1..=100_000).map(|n| format!("{n}\n")).collect();
        assert_eq!(outcome.output_bytes, all.len() as u64);
        assert_eq!(outcome.tail, all.as_bytes()[all.len() - 100..]);

        // Both streams are counted and both reach the tail, each in order.
        // Which of two pipes is read first is up to the scheduler, so the
        // streams use disjoint bytes (stderr: letters and `;`) and are
        // separated again to be compared.
        let mut req = request("seq 1 50000 | tr '0-9\\n' 'a-j;' >&2; seq 50001 100000");
        req.tail_bytes = all.len();
        let (outcome, _) = run(req).await;
        assert_eq!(outcome.output_bytes, all.len() as u64);
        let (stdout, stderr): (Vec<u8>, Vec<u8>) = outcome
            .tail
            .iter()
            .partition(|b| b.is_ascii_digit() || **b == b'\n');
        let expected_stdout: String = (50_001..=100_000).map(|n| format!("{n}\n")).collect();
        let expected_stderr: String = (1..=50_000)
            .map(|n| format!("{n};"))
            .collect::<String>()
            .chars()
            .map(|c| match c.to_digit(10) {
                Some(d) => char::from(b'a' + d as u8),
                None => c,
            })
            .collect();
        assert_eq!(stdout, expected_stdout.as_bytes());
        assert_eq!(stderr, expected_stderr.as_bytes());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_huge_line_arrives_in_bounded_pieces() {
        let size: usize = 5 * 1024 * 1024;
        let (outcome, sink) = run(request(&format!(
            "head -c {size} /dev/zero | tr '\\0' a; echo; echo after"
        )))
        .await;
        assert_eq!(outcome.end, RunEnd::Exited(0));
        assert_eq!(outcome.output_bytes, size as u64 + 7);
        let lines = sink.lines.lock().unwrap();
        let (last, pieces) = lines.split_last().unwrap();
        assert_eq!(last.1, b"after");
        assert_eq!(pieces.len(), size.div_ceil(LINE_CAP));
        assert!(pieces.iter().all(|(_, p)| p.len() <= LINE_CAP));
        assert!(pieces.iter().all(|(_, p)| p.iter().all(|&b| b == b'a')));
        assert_eq!(pieces.iter().map(|(_, p)| p.len()).sum::<usize>(), size);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_job_gets_a_clean_signal_state() {
        the_job_gets_a_clean_signal_state_here().await;
    }

    async fn the_job_gets_a_clean_signal_state_here() {
        // Ignore and block signals here (this thread spawns the child), which
        // the child must not inherit.
        let mut usr1 = SigSet::empty();
        usr1.add(Signal::SIGUSR1);
        let mut old = SigSet::empty();
        signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&usr1), Some(&mut old)).unwrap();
        // SAFETY: ignoring installs no handler; nothing in this test binary
        // uses SIGUSR2 or real-time signals. std resets only SIGPIPE: the
        // real-time one shows that the runner resets them all.
        unsafe {
            signal::signal(Signal::SIGUSR2, signal::SigHandler::SigIgn).unwrap();
            libc::signal(libc::SIGRTMIN() + 1, libc::SIG_IGN);
        }

        let (outcome, sink) = run(request("grep -E '^Sig(Blk|Ign):' /proc/self/status")).await;
        signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None).unwrap();
        assert_eq!(outcome.end, RunEnd::Exited(0));
        let masks: Vec<u64> = sink
            .stdout()
            .iter()
            .map(|l| u64::from_str_radix(l.split_once('\t').unwrap().1, 16).unwrap())
            .collect();
        // Bit n-1 is signal n; glibc's reserved 32 and 33 cannot be reset
        // (and `cargo test` runs with 32 ignored).
        let reserved = (1u64 << 31) | (1u64 << 32);
        assert_eq!(masks.len(), 2);
        assert_eq!(masks[0], 0, "blocked: {:x}", masks[0]);
        assert_eq!(masks[1] & !reserved, 0, "ignored: {:x}", masks[1]);

        let (outcome, sink) = run(request("yes | head -1")).await;
        assert_eq!(outcome.end, RunEnd::Exited(0));
        assert_eq!(sink.stdout(), ["y"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn jobs_start_by_posix_spawn_where_the_kernel_has_pidfds() {
        // Linux 5.3 and later; an older kernel takes the fork path by design.
        let running = start(request("exit 7"), Arc::new(Collect::default())).unwrap();
        if spawn::available() {
            assert!(
                matches!(running.child, Child::Spawned(_)),
                "{:?}",
                running.child
            );
        } else {
            eprintln!("no pidfd_open on this kernel: jobs start by fork");
            assert!(
                matches!(running.child, Child::Forked(_)),
                "{:?}",
                running.child
            );
        }
        let outcome = running.wait().await.unwrap();
        assert_eq!(outcome.end, RunEnd::Exited(7));

        let running =
            forked(async { start(request("exit 7"), Arc::new(Collect::default())).unwrap() }).await;
        assert!(
            matches!(running.child, Child::Forked(_)),
            "{:?}",
            running.child
        );
        assert_eq!(running.wait().await.unwrap().end, RunEnd::Exited(7));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_fork_path_gives_the_same_process_state() {
        forked(async {
            the_job_gets_a_clean_signal_state_here().await;
            let dir = tempfile::tempdir().unwrap();
            let mut req = request("pwd; cat; env | sort");
            req.workdir = Some(dir.path().to_path_buf());
            req.stdin = Some(b"from stdin\n".to_vec());
            req.env.insert("ONLY".into(), "this".into());
            let (outcome, sink) = run(req).await;
            assert_eq!(outcome.end, RunEnd::Exited(0));
            let out = sink.stdout();
            assert_eq!(out[0], dir.path().display().to_string());
            assert_eq!(out[1], "from stdin");
            assert!(out.contains(&"ONLY=this".to_string()), "{out:?}");
            assert!(!out.iter().any(|l| l.starts_with("HOME=")), "{out:?}");
        })
        .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_bare_name_is_found_in_the_jobs_path_or_reported_missing() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("jobrun-test-tool");
        std::fs::write(&tool, "#!/bin/sh\necho found \"$0\"\n").unwrap();
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut req = RunRequest::new("testjob", Program::Argv(vec!["jobrun-test-tool".into()]));
        req.env.insert(
            "PATH".into(),
            format!("/nonexistent:{}:/usr/bin:/bin", dir.path().display()),
        );
        let (outcome, sink) = run(req).await;
        assert_eq!(outcome.end, RunEnd::Exited(0));
        assert_eq!(sink.stdout(), [format!("found {}", tool.display())]);

        let mut req = RunRequest::new("testjob", Program::Argv(vec!["jobrun-test-tool".into()]));
        req.env.insert("PATH".into(), "/usr/bin:/bin".into());
        let err = start(req, Arc::new(Collect::default())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "starting job testjob: jobrun-test-tool: command not found"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn start_failures_say_what_is_wrong() {
        let sink: Arc<dyn OutputSink> = Arc::new(Collect::default());
        let err = start(
            RunRequest::new(
                "testjob",
                Program::Argv(vec!["/nonexistent/jobrun-test".into()]),
            ),
            sink.clone(),
        )
        .unwrap_err();
        assert!(matches!(err, RunError::NotFound { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "starting job testjob: /nonexistent/jobrun-test: command not found"
        );

        let mut req = request("true");
        req.workdir = Some("/nonexistent/dir".into());
        let err = start(req, sink.clone()).unwrap_err();
        assert!(matches!(err, RunError::Workdir { .. }), "{err:?}");
        assert!(err
            .to_string()
            .starts_with("starting job testjob: working directory /nonexistent/dir: "));

        let err = start(
            RunRequest::new("testjob", Program::Argv(vec![])),
            sink.clone(),
        )
        .unwrap_err();
        assert!(matches!(err, RunError::EmptyCommand { .. }), "{err:?}");

        let mut req = request("true");
        req.user = Some("jobrun-no-such-user".into());
        let err = start(req, sink).unwrap_err();
        assert_eq!(
            err.to_string(),
            "starting job testjob: unknown user jobrun-no-such-user"
        );
    }

    #[test]
    fn another_user_needs_root() {
        let Ok(Some(nobody)) = crate::users::user_by_name("nobody") else {
            eprintln!("skipped: no user `nobody` on this system");
            return;
        };
        let other = Uid::from_raw(nobody.uid.wrapping_add(1).max(1));
        let err = resolve_user("testjob", "nobody", other).unwrap_err();
        assert_eq!(
            err.to_string(),
            "starting job testjob: running as user nobody needs jobrun to run as root"
        );
        // The user jobrun already runs as needs no privilege and no change.
        assert!(resolve_user("testjob", "nobody", Uid::from_raw(nobody.uid))
            .unwrap()
            .is_none());
    }

    #[tokio::test(flavor = "multi_thread")]
    #[cfg_attr(
        not(jobrun_root),
        ignore = "running as another user needs the tests to run as root"
    )]
    async fn user_is_set_with_groups_and_identity_variables() {
        let Ok(Some(nobody)) = crate::users::user_by_name("nobody") else {
            eprintln!("skipped: no user `nobody` on this system");
            return;
        };
        let mut req = request("id -u; id -G; echo \"$HOME $USER $LOGNAME\"");
        req.user = Some("nobody".into());
        req.env.insert("HOME".into(), "/root".into());
        req.env.insert("USER".into(), "root".into());
        let (outcome, sink) = run(req).await;
        assert_eq!(outcome.end, RunEnd::Exited(0));
        let lines = sink.stdout();
        assert_eq!(lines[0], nobody.uid.to_string());
        assert!(!lines[1].split_whitespace().any(|g| g == "0"), "{lines:?}");
        let home = &nobody.home;
        assert_eq!(lines[2], format!("{home} nobody nobody"));

        // A directory the user may not enter is refused with the user's rights.
        let private = tempfile::tempdir().unwrap();
        let only_root = std::os::unix::fs::PermissionsExt::from_mode(0o700);
        std::fs::set_permissions(private.path(), only_root).unwrap();
        let mut req = request("true");
        req.user = Some("nobody".into());
        req.workdir = Some(private.path().to_path_buf());
        let err = start(req, Arc::new(Collect::default())).unwrap_err();
        assert!(matches!(err, RunError::Spawn { .. }), "{err:?}");
        let expected = format!(
            "starting job testjob: /bin/sh (as user nobody, in {}): ",
            private.path().display()
        );
        assert!(err.to_string().starts_with(&expected), "{err}");

        // A variable the job's definition set wins over the passwd entry.
        let mut req = request("echo \"$HOME\"");
        req.user = Some("nobody".into());
        req.env.insert("HOME".into(), "/srv/app".into());
        req.explicit_env.insert("HOME".into());
        let (_, sink) = run(req).await;
        assert_eq!(sink.stdout(), ["/srv/app"]);
    }
}
