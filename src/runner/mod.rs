//! Runs one job process and supervises it to the end: spawning (own process
//! group, clean signal state, chosen user, working directory, exact
//! environment, standard input), streaming its output line by line while
//! keeping a bounded tail, enforcing the timeout, stopping on request, and
//! recording how it ended.
//!
//! This room knows processes, signals and bytes of output. It must not know
//! SQLite, the schedule, locks or the store: `fire` composes
//! lock -> claim -> [`start`] -> [`Running::wait`] -> store, and decides what
//! a [`Report`] means for the run's recorded status (the one
//! `job::RunOutcome`).
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
//!
//! The rooms: this file holds the public types and [`start`]; `argv` (the
//! program and its PATH look-up), `identity` (user look-ups), `prepare`
//! (environment and working directory), `launch` with `spawn` and `fork`
//! (the two ways of starting the child), `output` (pipes, tail, lines),
//! `supervise` (waiting, timeouts, stops, process groups), `children` (the
//! jobs' pids as a PID 1 sees them) and [`descriptors`] (open-file limits).

mod argv;
mod children;
pub mod descriptors;
mod fork;
mod identity;
mod launch;
mod output;
mod prepare;
mod spawn;
mod supervise;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::debug;

pub use children::{job_group_started, reap_orphans};
pub use supervise::stop_foreign_group;

use children::own_children;
use launch::{Child, StartedChild};
use output::Capture;
use supervise::GroupGuard;

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

/// What the runner saw of a run it started and supervised to its end: the
/// process's end and its output. Not how the run is recorded: `fire` turns
/// it into the one `job::RunOutcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
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

    let argv = argv::argv(&req.job, &req.program)?;
    let program = argv::locate(&argv[0], &req.env);

    let identity = match &req.user {
        Some(user) => identity::resolve_user(&req.job, user, nix::unistd::geteuid())?,
        None => None,
    };
    let env = prepare::environment(req.env, &req.explicit_env, identity.as_ref());
    let dir = prepare::directory(req.workdir.as_ref(), req.home_workdir, &env);
    let workdir = match &dir {
        Some(path) => Some(prepare::check_workdir(&req.job, path)?),
        None => None,
    };

    let setup = prepare::setup(req.user.as_ref(), identity.is_some(), dir.as_ref());
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

    // Until the child is in the own children, the reaper must not look (a
    // job that exits at once would otherwise be taken for an orphan and its
    // exit status stolen from its run).
    let spawning = children::spawning();
    let StartedChild {
        pid,
        stdin,
        stdout,
        stderr,
        exit: child,
    } = launch::launch(
        program.as_ref(),
        &argv,
        &env,
        identity,
        workdir,
        req.stdin.is_some(),
    )
    .map_err(spawn_error)?;
    let started = Instant::now();
    own_children().insert(pid);
    drop(spawning);
    let guard = GroupGuard {
        pgid: Pid::from_raw(i32::try_from(pid).expect("pids fit in pid_t")),
        armed: true,
    };
    debug!(job = %job, pid, "started");

    let stdin_task = match (stdin, req.stdin) {
        (Some(pipe), Some(bytes)) => Some(output::feed_stdin(job.clone(), pipe, bytes)),
        _ => None,
    };

    let capture = Arc::new(Mutex::new(Capture::new(req.tail_bytes)));
    let stdout_task = tokio::spawn(output::pump(
        stdout,
        Stream::Stdout,
        job.clone(),
        sink.clone(),
        capture.clone(),
    ));
    let stderr_task = tokio::spawn(output::pump(
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

#[cfg(test)]
mod tests;
